import CustodyCrypto
import CustodyTestSupport
import Foundation

@testable import CustodyArchive
@testable import CustodyNode

/// Makes the seed corpus with the real code: two small archives (a granter and a grantee that also witnesses
/// the granter's log), a grant of two small items, its bundle and head, the granter's identity, checkpoints,
/// a witness request, the journal, signed requests and Range headers. Each seed is a few KB at most.
enum Seeds {
    static func make(in output: String) async throws {
        let work = output + "/.work"
        _ = try? FileManager.default.removeItem(atPath: work)
        defer { _ = try? FileManager.default.removeItem(atPath: work) }
        func write(_ target: String, _ name: String, _ bytes: [UInt8]) throws {
            try FileManager.default.createDirectory(atPath: output + "/" + target, withIntermediateDirectories: true)
            try Data(bytes).write(to: URL(fileURLWithPath: output + "/" + target + "/" + name))
        }
        func text(_ target: String, _ name: String, _ string: String) async throws {
            try write(target, name, Array(string.utf8))
        }
        // Files with embedded metadata (the claims tests' fixtures).
        try write("claims", "exif-gps.jpg", ClaimFixtures.jpeg(xmp: "<x xmp:CreateDate=\"2026-01-05T08:00:00Z\"/>"))
        try write("claims", "c2pa.jpg", ClaimFixtures.jpeg(tiff: ClaimFixtures.exifTIFF(offset: nil), c2pa: true))
        try write("claims", "xyz.mp4", ClaimFixtures.mp4(c2pa: true))
        try write(
            "claims",
            "keys.mov",
            ClaimFixtures.mp4(
                version1: true,
                location: nil,
                keys: [
                    ("com.apple.quicktime.location.ISO6709", "+3348.13-07040.16+520.0/"),
                    ("com.apple.quicktime.creationdate", "2026-03-02T10:15:30+0300"),
                ],
                moovLast: true
            )
        )
        try write("claims", "info.pdf", ClaimFixtures.pdf(c2pa: true))
        let (granter, grantee, archive) = try await bodies(in: work)
        let first = try granter.signCheckpoint()

        // Grants, bundles and heads.
        let granterIdentity = try granter.identity()
        let granteeIdentity = try grantee.identity()
        for metadataOnly in [false, true] {
            var request = GrantRequest(
                grantee: granteeIdentity,
                expires: RFC3339.format(FuzzTarget.now + 90 * 86400),
                purpose: "Fuzz seed"
            )
            request.caseID = "C-1"
            request.metadataOnly = metadataOnly
            let (grant, signed, _) = try await granter.createGrant(request)
            let kind = metadataOnly ? "metadata" : "content"
            try write("grant", kind + ".grant", signed)
            for objects in metadataOnly ? [false] : [true, false] {
                let path = work + "/\(kind)-\(objects).bundle"
                _ = try await granter.exportBundle(grant: grant.id, to: path, objects: objects)
                let bytes = Array(try Data(contentsOf: URL(fileURLWithPath: path)))
                try write("bundle", "\(kind)\(objects ? "" : "-head").bundle", bytes)
            }
        }

        // A re-share: the grantee imports a grant that allows it, and grants the item on to a third body; the
        // bundle carries the parent grant as a `P` record.
        let third = try await archive("Body C", "body-c.example/log")
        var reshare = GrantRequest(
            grantee: granteeIdentity,
            expires: RFC3339.format(FuzzTarget.now + 90 * 86400),
            purpose: "Fuzz seed, re-share"
        )
        reshare.caseID = "C-1"
        reshare.reshare = true
        let parent = try await granter.createGrant(reshare)
        _ = try await granter.exportBundle(grant: parent.grant.id, to: work + "/parent.bundle")
        _ = try await grantee.importBundle(path: work + "/parent.bundle", trustGranter: true)
        var child = GrantRequest(
            grantee: try third.identity(),
            expires: RFC3339.format(FuzzTarget.now + 30 * 86400),
            purpose: "Fuzz seed, child"
        )
        child.caseID = "C-1"
        let childGrant = try await grantee.createGrant(child)
        try write("grant", "child.grant", childGrant.signed)
        _ = try await grantee.exportBundle(grant: childGrant.grant.id, to: work + "/child.bundle", objects: false)
        try write(
            "bundle",
            "reshare-head.bundle",
            Array(try Data(contentsOf: URL(fileURLWithPath: work + "/child.bundle")))
        )

        // Identities.
        try write("identity", "body-a.identity.json", try granterIdentity.jsonBytes())
        try write("identity", "body-b.identity.json", try granteeIdentity.jsonBytes())

        // Checkpoints and the witness: the grantee cosigns the first checkpoint, then a later one with a proof.
        _ = try grantee.trust(granterIdentity, role: .witness)
        let firstCosignature = try grantee.cosign(Array(first.note.utf8))
        let latest = try granter.signCheckpoint()
        let proof = try granter.ledger.consistencyProof(from: first.size)
        let cosignature = try grantee.cosign(Array(proof.witnessRequest.utf8))
        // The log's key, then the witness's (a cosignature is made with the witness body's signing key, named by
        // its origin).
        let witnessKey = Identity.verifierKey(
            origin: granteeIdentity.origin,
            publicKey: Encoding.bytes(base64: granteeIdentity.signingKey) ?? []
        )
        let keys = "key \(granterIdentity.logVerifierKey)\nkey \(witnessKey)\n"
        try await text("note", "checkpoint", keys + latest.note)
        try await text("note", "cosigned", keys + latest.note + cosignature.line)
        try await text("note", "first-cosigned", keys + first.note + firstCosignature.line)
        try await text("note", "bare", latest.note)
        try await text("witness", "first-contact", latest.note)
        try await text("witness", "consistency", first.note + "\u{1E}" + proof.witnessRequest)
        try await text("witness", "same-size", latest.note + "\u{1E}" + "old \(latest.size)\n\n" + latest.note)

        // The journal, whole, torn and with a changed byte.
        let journal = Array(try Data(contentsOf: URL(fileURLWithPath: granter.journal.path)))
        let cut = Array(journal.prefix(4096))
        try write("journal", "entries", cut)
        try write("journal", "torn", Array(cut.dropLast(7)))
        var damaged = cut
        damaged[cut.count / 3] ^= 0x20
        try write("journal", "damaged", damaged)

        // Signed requests, as a node's client sends them.
        let key = try SigningKey(seed: SecretBytes(copying: [UInt8](repeating: 7, count: 32)))
        let requests = [
            HTTPSignature.Request(method: "GET", authority: "node-a.example:8443", path: "/v1/grants", query: ""),
            HTTPSignature.Request(
                method: "GET",
                authority: "node-a.example:8443",
                path: "/v1/grants/0123456789abcdef0123456789abcdef/objects/ab",
                query: "from=3"
            ),
            HTTPSignature.Request(
                method: "POST",
                authority: "node-a.example",
                path: "/v1/submissions",
                body: Array("custody-bundle/v1\n".utf8)
            ),
        ]
        for (n, request) in requests.enumerated() {
            let headers = HTTPSignature.sign(
                request,
                key: key,
                created: FuzzTarget.now,
                nonce: Encoding.hex(randomBytes(16))
            )
            var message =
                "\(request.method) \(request.authority) \(request.path)\(request.query.isEmpty ? "" : " " + request.query)\n"
            for (name, value) in headers.sorted(by: { $0.key < $1.key }) { message += "\(name): \(value)\n" }
            message += "\n"
            try write("signature", "request-\(n)", Array(message.utf8) + request.body)
        }

        // Range headers (RFC 9110 forms), for a 1000-byte object unless a size line says otherwise.
        let ranges = [
            "bytes=0-99", "bytes=500-", "bytes=-20", "bytes=0-0", "bytes=999-999", "0\nbytes=0-", "5\nbytes=-9",
        ]
        for (n, range) in ranges.enumerated() { try await text("range", "range-\(n)", range) }

        try await check(output)
    }

    /// A granter holding two small items of case C-1, a grantee, and a maker of more archives, under `work`.
    static func bodies(
        in work: String
    ) async throws -> (
        granter: Archive.Unlocked, grantee: Archive.Unlocked, archive: (String, String) async throws -> Archive.Unlocked
    ) {
        try FileManager.default.createDirectory(atPath: work + "/in", withIntermediateDirectories: true)
        let passphrase = try SecretBytes(copying: Array("fuzz seeds, not a secret".utf8))
        func archive(_ name: String, _ origin: String) async throws -> Archive.Unlocked {
            try await Archive.create(
                at: work + "/" + origin,
                name: name,
                origin: origin,
                passphrase: passphrase,
                kdfPreset: "insecure-test",
                chunkSize: 4096
            )
        }
        let granter = try await archive("Body A", "body-a.example/log")
        let grantee = try await archive("Body B", "body-b.example/log")

        var options = IngestOptions()
        options.fields.caseID = "C-1"
        options.fields.tags = ["detention"]
        let files = [
            ("statement.txt", "A short witness statement.\n"), ("photo.bin", String(repeating: "x", count: 600)),
        ]
        for (name, contents) in files {
            try Data(contents.utf8).write(to: URL(fileURLWithPath: work + "/in/" + name))
        }
        _ = try await granter.ingest(files.map { work + "/in/" + $0.0 }, options: options)
        return (granter, grantee, archive)
    }

    /// For the `import` target: a grantee archive under `work` and the key of a granter, and (when `seed` is given)
    /// a bundle of a content grant from that granter to that grantee, written to `seed` with its grant unsigned
    /// (the target signs it, ``FuzzTarget/resigned(_:key:)``). The import planner only reads bundles addressed to
    /// its own archive, so this seed is made afresh for every process.
    static func importer(
        in work: String,
        seed: String?
    ) async throws -> (grantee: Archive.Unlocked, granterKey: SigningKey) {
        _ = try? FileManager.default.removeItem(atPath: work)
        let (granter, grantee, _) = try await bodies(in: work)
        var request = GrantRequest(
            grantee: try grantee.identity(),
            expires: RFC3339.format(FuzzTarget.now + 90 * 86400),
            purpose: "Fuzz seed"
        )
        request.caseID = "C-1"
        let grant = try await granter.createGrant(request)
        if let seed {
            let path = work + "/live.bundle"
            _ = try await granter.exportBundle(grant: grant.grant.id, to: path)
            let bytes = Array(try Data(contentsOf: URL(fileURLWithPath: path)))
            let key = granter.keys.signing
            let unsigned = FuzzTarget.unsigned(bytes)
            // Signed again as the target signs it, the seed plans an import and verifies.
            let again = FuzzTarget.file("live.bundle", FuzzTarget.resigned(unsigned, key: key))
            let (report, _) = try await BundleVerifier.verify(path: again, at: FuzzTarget.now)
            guard try await grantee.importPlan(path: again, now: FuzzTarget.now) != nil, report.integrityOK else {
                throw Rejected(description: "the import seed, signed again, does not plan an import")
            }
            try Data(unsigned).write(to: URL(fileURLWithPath: seed))
        }
        return (grantee, granter.keys.signing)
    }

    struct Rejected: Error, CustomStringConvertible {
        var description: String
    }

    /// Checks that the valid seeds pass their target's parser all the way (so the fuzzer starts from inputs that
    /// reach the deepest checks), and that the deliberately damaged ones fail.
    static func check(_ output: String) async throws {
        func seed(_ target: String, _ name: String) throws -> [UInt8] {
            Array(try Data(contentsOf: URL(fileURLWithPath: output + "/" + target + "/" + name)))
        }
        func require(_ ok: Bool, _ what: String) throws { if !ok { throw Rejected(description: what) } }
        for name in ["content.bundle", "content-head.bundle", "metadata-head.bundle", "reshare-head.bundle"] {
            let path = FuzzTarget.file("seed.bundle", try seed("bundle", name))
            let (report, _) = try await BundleVerifier.verify(path: path, at: FuzzTarget.now)
            // A head holds no objects (a node serves them one by one): missing objects are its only problems.
            let head = name.contains("-head")
            try require(
                head ? report.problems.allSatisfy { $0.kind == .objectMissing } : report.integrityOK,
                "bundle seed \(name): \(report.problems.map(\.kind))"
            )
        }
        for name in ["content.grant", "metadata.grant", "child.grant"] {
            _ = try Grant.parse(try seed("grant", name))
        }
        for name in ["body-a.identity.json", "body-b.identity.json"] {
            _ = try Archive.readIdentity(FuzzTarget.file("seed.json", try seed("identity", name)))
        }
        for name in ["checkpoint", "cosigned"] {
            let text = String(decoding: try seed("note", name), as: UTF8.self)
            let lines = text.split(separator: "\n", maxSplits: 2, omittingEmptySubsequences: false)
            let log = try VerifierKey(String(lines[0].dropFirst(4))).flatMap { key in
                Checkpoint.verified(String(lines[2]), origin: key.name, publicKey: key.publicKey)
            }
            try require(log != nil, "note seed \(name) does not verify")
            if name == "cosigned", let witness = VerifierKey(String(lines[1].dropFirst(4))), let log {
                let signatures = SignedNote.parse(log.note)?.signatures ?? []
                try require(
                    signatures.contains {
                        SignedNote.cosignatureTime($0, body: log.body, name: witness.name, publicKey: witness.publicKey)
                            != nil
                    },
                    "note seed cosigned carries no valid cosignature"
                )
            }
        }
        let request = try seed("witness", "consistency")
        let split = try request.firstIndex(of: 0x1E) ?? { throw Rejected(description: "witness seed") }()
        let (oldSize, proof, note) = try Archive.parseWitnessRequest(
            String(decoding: request[(split + 1)...], as: UTF8.self)
        )
        let previous = SignedNote.parse(String(decoding: request[..<split], as: UTF8.self)).flatMap {
            Checkpoint.parseBody($0.body)
        }
        let current = SignedNote.parse(note).flatMap { Checkpoint.parseBody($0.body) }
        if let previous, let current {
            try require(
                oldSize == previous.size
                    && Merkle.isConsistent(
                        proof,
                        first: previous.size,
                        second: current.size,
                        firstRoot: previous.root,
                        secondRoot: current.root
                    ),
                "witness seed: the proof does not check"
            )
        } else {
            throw Rejected(description: "witness seed: no checkpoints")
        }
        for n in 0..<3 {
            let text = String(decoding: try seed("signature", "request-\(n)"), as: UTF8.self)
            let head = text.components(separatedBy: "\n\n")[0].split(separator: "\n")
            let start = head[0].split(separator: " ").map(String.init)
            var headers: [String: String] = [:]
            for line in head.dropFirst() {
                let parts = line.split(separator: ":", maxSplits: 1)
                headers[String(parts[0])] = String(parts[1].dropFirst())
            }
            let body = Array(text.utf8.dropFirst(text.components(separatedBy: "\n\n")[0].utf8.count + 2))
            let request = HTTPSignature.Request(
                method: start[0],
                authority: start[1],
                path: start[2],
                query: start.count > 3 ? start[3] : "",
                body: body
            )
            do {
                _ = try HTTPSignature.verify(
                    request,
                    headers: headers,
                    now: FuzzTarget.now,
                    nonces: NonceCache(startedAt: 0)
                ) { _ in true }
            } catch {
                throw Rejected(description: "signature seed request-\(n): \(error)")
            }
        }
        for (name, expectClean) in [("entries", true), ("torn", false), ("damaged", false)] {
            let directory = FuzzTarget.scratch + "/seed-journal"
            _ = try? FileManager.default.removeItem(atPath: directory)
            let journal = try Journal(directory: directory)
            _ = FuzzTarget.file("seed-journal/entries", try seed("journal", name))
            var count = 0
            let (_, tail) = try journal.scan(from: .start) { _ in count += 1 }
            try require(
                (tail == .clean) == expectClean && (count > 0 || !expectClean),
                "journal seed \(name): \(tail), \(count) entries"
            )
        }
    }
}
