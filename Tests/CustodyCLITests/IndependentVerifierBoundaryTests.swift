import CustodyArchive
import CustodyCrypto
import CustodyStorage
import CustodyTestSupport
import Foundation
import Testing

/// The bundle rules of Docs/SHARING.md sections 2–4 (issue 11), each written as the attack and checked against
/// both verifiers: the built `custody bundle verify` and the independent Docs/examples/verify_bundle.py, written
/// from the docs alone. Every forged bundle is well formed — its end record is right, written by hand here as
/// section 3 describes — and validly signed by whoever forged it, so only the rule under test can object. Both
/// verifiers must refuse each (exit 1, `ok` false, the documented problem kind) and accept the genuine bundles.
/// Without python3 and PyNaCl the Python half is skipped, and `theIndependentVerifierRuns` says so.
@Suite(.serialized) struct IndependentVerifierBoundaryTests: CLIArchiveSuite {
    let dir = TempDirectory("independent-verifier")
    static let passphrase = "independent verifier"
    static let script = CLI.packageRoot + "/Docs/examples/verify_bundle.py"

    struct Failure: Error, CustomStringConvertible {
        var description: String
    }

    // MARK: - Bodies, grants and bundles, made with the CLI

    /// Creates body `name` and exports its identity as `name.id`. Made in-process only for its small chunks (so that
    /// an item of 1.2 MB needs a chunk list); everything else goes through the CLI.
    private func body(_ name: String) async throws {
        _ = try await Archive.create(
            at: dir.path + "/" + name,
            name: name.uppercased(),
            passphrase: try SecretBytes(copying: Array(Self.passphrase.utf8)),
            kdfPreset: "insecure-test",
            chunkSize: 4096
        )
        let exported = CLI.run(["id", "export", "-o", identity(name)], environment: env(name))
        guard exported.status == 0 else { throw Failure(description: "id export \(name): \(exported.stderr)") }
    }

    private func identity(_ name: String) -> String { dir.path + "/\(name).id" }

    /// Runs `custody arguments` as `name`, expecting success; its JSON output.
    @discardableResult
    private func run(_ name: String, _ arguments: [String]) throws -> [String: Any] {
        let result = CLI.run(arguments, environment: env(name))
        guard result.status == 0 else {
            throw Failure(description: "\(name): custody \(arguments.joined(separator: " ")): \(result.stderr)")
        }
        return result.json ?? [:]
    }

    /// Ingests a folder of `files` into `name` under case `caseID`; the item ids.
    @discardableResult
    private func ingest(_ name: String, _ caseID: String, _ files: [String: [UInt8]]) throws -> [String] {
        let folder = "in-\(name)-\(caseID)"
        for (file, bytes) in files { dir.write("\(folder)/\(file)", bytes) }
        let json = try run(name, ["ingest", dir.path + "/" + folder, "--case", caseID, "--json"])
        return (json["items"] as? [[String: Any]] ?? []).compactMap { $0["id"] as? String }
    }

    /// `grant create` by `name` with `arguments`; the grant id.
    private func grant(_ name: String, _ arguments: [String]) throws -> String {
        let json = try run(name, ["grant", "create", "--purpose", "test"] + arguments + ["--json"])
        guard let id = json["id"] as? String else { throw Failure(description: "grant create printed no id") }
        return id
    }

    /// `bundle export` of `grant` by `name` to `file`; its path.
    private func export(_ name: String, _ grant: String, _ file: String) throws -> String {
        let path = dir.path + "/" + file
        try run(name, ["bundle", "export", grant, "-o", path])
        return path
    }

    /// OHCHR's re-sharable grant of case C to IACHR: three items — one of more than 256 chunks (a chunk list),
    /// one tagged and annotated after ingest — and MALLORY, a stranger. Returns the bundle.
    private func original() async throws -> String {
        for name in ["ohchr", "iachr", "mallory"] { try await body(name) }
        let items = try ingest(
            "ohchr",
            "C",
            [
                "video.bin": (0..<(300 * 4096)).map { UInt8(truncatingIfNeeded: $0 &* 31 &+ $0 >> 9) },
                "statement.txt": Array("Witness W-17 statement".utf8),
                "photo.jpg": (0..<20_000).map { UInt8(truncatingIfNeeded: $0 &* 7) },
            ]
        )
        guard items.count == 3 else { throw Failure(description: "ingest made \(items.count) items") }
        try run("ohchr", ["tag", items[1], "--add", "reviewed"])
        try run("ohchr", ["note", items[1], "chain of custody checked"])
        let id = try grant("ohchr", ["--to", identity("iachr"), "--case", "C", "--expires", "30d", "--reshare"])
        return try export("ohchr", id, "original.bundle")
    }

    /// The original imported by IACHR and re-shared, honestly, to COURT; also IACHR's grant of an item of its own
    /// (case OWN) to COURT. Returns both bundles.
    private func reshare() async throws -> (original: String, child: String, own: String) {
        let original = try await original()
        try await body("court")
        try run("iachr", ["bundle", "import", original, "--trust-granter"])
        try ingest("iachr", "OWN", ["made-up.txt": Array("a statement nobody made".utf8)])
        let child = try grant("iachr", ["--to", identity("court"), "--case", "C", "--expires", "5d"])
        let own = try grant("iachr", ["--to", identity("court"), "--case", "OWN", "--expires", "5d"])
        return (original, try export("iachr", child, "child.bundle"), try export("iachr", own, "own.bundle"))
    }

    /// The signing key of body `name`, to forge as it.
    private func signingKey(_ name: String) throws -> SigningKey {
        let archive = try Archive.open(at: dir.path + "/" + name).unlock(
            passphrase: try SecretBytes(copying: Array(Self.passphrase.utf8))
        )
        return try archive.keys.signing
    }

    // MARK: - The bundle format, by hand (Docs/SHARING.md section 3)

    typealias Record = (type: Character, payload: [UInt8])
    static let magic = Array("custody-bundle/v1\n".utf8)

    /// The records of the bundle at `path`, without its end record.
    private func records(_ path: String) throws -> [Record] {
        let bytes = Fixtures.read(path)
        guard bytes.starts(with: Self.magic) else { throw Failure(description: "\(path) is not a bundle") }
        var out: [Record] = []
        var at = Self.magic.count
        while at + 9 <= bytes.count {
            let length = bytes[(at + 1)..<(at + 9)].reduce(0) { $0 << 8 | Int($1) }
            guard at + 9 + length <= bytes.count else { break }
            let record = (Character(UnicodeScalar(bytes[at])), Array(bytes[(at + 9)..<(at + 9 + length)]))
            if record.0 == "Z" { return out }
            out.append(record)
            at += 9 + length
        }
        throw Failure(description: "\(path) has no end record")
    }

    private static func bigEndian(_ value: Int) -> [UInt8] {
        (0..<8).reversed().map { UInt8(value >> ($0 * 8) & 0xFF) }
    }

    /// Writes `records` as a well-formed bundle — magic, records, and an end record that counts and hashes them —
    /// so that only the deeper rules can object.
    private func write(_ records: [Record], _ name: String) -> String {
        var bytes = Self.magic
        for record in records {
            bytes += [record.type.asciiValue ?? 0] + Self.bigEndian(record.payload.count) + record.payload
        }
        let end = Array(#"{"records":\#(records.count),"sha256":"\#(Encoding.hex(SHA256Hasher.hash(bytes)))"}"#.utf8)
        return dir.write(name, bytes + [UInt8(ascii: "Z")] + Self.bigEndian(end.count) + end)
    }

    /// The grant of a bundle's `G` record.
    private func grant(of records: [Record]) throws -> Grant {
        let payload = try #require(records.first { $0.type == "G" }).payload
        return try Grant.parse(payload)
    }

    /// `records` with `grant` (signed by `key`) for `G`, and the `O` records rebuilt in the new grant's order
    /// from `pool` (object name → stored bytes).
    private func replacingGrant(
        in records: [Record],
        with grant: Grant,
        signedBy key: SigningKey,
        objects pool: [String: [UInt8]]
    ) throws -> [Record] {
        var out = records.filter { $0.type != "O" }
        let index = try #require(out.firstIndex { $0.type == "G" })
        out[index].payload = try grant.signed(by: key)
        for ref in grant.releasedObjects {
            let bytes = try #require(pool[ref.name.hex], "no object \(ref.name.hex) to write")
            out.append(("O", ref.name.bytes + bytes))
        }
        return out
    }

    /// The `O` records of `records` by object name.
    private func objectPool(_ records: [Record]) -> [String: [UInt8]] {
        var pool: [String: [UInt8]] = [:]
        for record in records where record.type == "O" {
            pool[Encoding.hex(record.payload.prefix(32))] = Array(record.payload.dropFirst(32))
        }
        return pool
    }

    // MARK: - Both verifiers

    struct Verdict {
        var verifier: String
        var status: Int32
        var report: [String: Any]?
        var output: String

        var ok: Bool? { report?["ok"] as? Bool }
        var kinds: [String] { (report?["problems"] as? [[String: Any]] ?? []).compactMap { $0["kind"] as? String } }
        var cosignatures: [String] {
            (report?["cosignatures"] as? [[String: Any]] ?? []).compactMap { $0["status"] as? String }.sorted()
        }
    }

    /// `custody bundle verify --json` and, with PyNaCl, `verify_bundle.py verify --json` on `path`.
    private func verdicts(_ path: String, _ options: [String]) -> [Verdict] {
        func verdict(_ name: String, _ result: CLIResult) -> Verdict {
            Verdict(verifier: name, status: result.status, report: result.json, output: result.stdout + result.stderr)
        }
        var out = [verdict("custody bundle verify", CLI.run(["bundle", "verify", path, "--json"] + options))]
        if CLI.pythonHasNaCl {
            let python = CLI.run(
                executable: "/usr/bin/env",
                ["python3", Self.script, "verify", path, "--json"] + options
            )
            out.append(verdict("verify_bundle.py", python))
        }
        return out
    }

    @discardableResult
    private func expectAccepted(
        _ path: String,
        _ options: [String] = [],
        sourceLocation: SourceLocation = #_sourceLocation
    ) -> [Verdict] {
        let all = verdicts(path, options)
        for v in all {
            #expect(
                v.status == 0 && v.ok == true && v.kinds.isEmpty,
                "\(v.verifier) refuses a genuine bundle: \(v.output)",
                sourceLocation: sourceLocation
            )
        }
        return all
    }

    @discardableResult
    private func expectRefused(
        _ path: String,
        _ options: [String] = [],
        as kind: String,
        sourceLocation: SourceLocation = #_sourceLocation
    ) -> [Verdict] {
        let all = verdicts(path, options)
        for v in all {
            #expect(
                v.status == 1 && v.ok == false,
                "\(v.verifier) accepts it: \(v.output)",
                sourceLocation: sourceLocation
            )
            #expect(
                v.kinds.contains(kind),
                "\(v.verifier) reports \(v.kinds), not \(kind): \(v.output)",
                sourceLocation: sourceLocation
            )
        }
        return all
    }

    // MARK: - The attacks

    @Test(
        .enabled(
            if: CLI.pythonHasNaCl,
            "needs python3 with PyNaCl (Scripts/test.sh installs it): without it the other tests of this suite check custody bundle verify alone"
        )
    )
    func theIndependentVerifierRuns() async throws {
        // What is not a bundle at all is unusable input for both (custody: 65 or 66; the script: 2), not a failure.
        let text = dir.write("not-a-bundle.txt", text: "hello")
        let missing = dir.path + "/missing.bundle"
        for (path, code) in [(text, Int32(65)), (missing, Int32(66))] {
            #expect(CLI.run(["bundle", "verify", path]).status == code)
            #expect(CLI.run(executable: "/usr/bin/env", ["python3", Self.script, "verify", path]).status == 2)
        }
    }

    @Test func ancestorRecordsAreExactlyTheParentChainForBothVerifiers() async throws {
        let (original, child, _) = try await reshare()
        expectAccepted(original, ["--granter", identity("ohchr")])
        expectAccepted(child, ["--granter", identity("iachr")])
        let mallory = try signingKey("mallory")
        // A P planted by a stranger: OHCHR's grant rewritten to name MALLORY as grantee, signed by MALLORY.
        var planted = try grant(of: try records(original))
        planted.granter = GrantParty(try Archive.readIdentity(identity("mallory")))
        planted.grantee = planted.granter
        let plant: Record = ("P", try planted.signed(by: mallory))

        // In a bundle that re-shares nothing: the chain has ended before it began.
        var recs = try records(original)
        recs.insert(plant, at: 2)
        expectRefused(write(recs, "extra-p.bundle"), as: "reshare-invalid")
        // After the genuine chain of a re-share.
        let good = try records(child)
        let parent = try #require(good.firstIndex { $0.type == "P" })
        recs = good
        recs.insert(plant, at: parent + 1)
        expectRefused(write(recs, "p-after-chain.bundle"), as: "reshare-invalid")
        // The genuine parent twice: the second is off the chain, which ended at the original holder.
        recs = good
        recs.insert(good[parent], at: parent + 1)
        expectRefused(write(recs, "parent-twice.bundle"), as: "reshare-invalid")
        // Another grant in the parent's place, and no parent at all.
        recs = good
        recs[parent] = plant
        expectRefused(write(recs, "other-parent.bundle"), as: "parent-missing")
        expectRefused(write(good.filter { $0.type != "P" }, "no-parent.bundle"), as: "parent-missing")
    }

    @Test func aReshareCanNarrowButNeverSubstituteForBothVerifiers() async throws {
        let (_, child, own) = try await reshare()
        expectAccepted(child, ["--granter", identity("iachr")])
        let iachr = try signingKey("iachr")
        let good = try records(child)
        let honest = try grant(of: good)
        let pool = objectPool(good).merging(objectPool(try records(own))) { first, _ in first }

        // Made-up metadata and content for a granted item: IACHR's own item's objects under the item's id, the
        // genuine parent grant attached. Every object is in the bundle and validly named.
        var substituted = honest
        substituted.items[0].objects = try grant(of: try records(own)).items[0].objects
        let made = try replacingGrant(in: good, with: substituted, signedBy: iachr, objects: pool)
        expectRefused(write(made, "substituted.bundle"), ["--granter", identity("iachr")], as: "reshare-invalid")

        // Objects the parent released, but for another item: swapped between two items.
        var swapped = honest
        swapped.items[0].objects = honest.items[1].objects
        swapped.items[1].objects = honest.items[0].objects
        let crossed = try replacingGrant(in: good, with: swapped, signedBy: iachr, objects: pool)
        expectRefused(write(crossed, "crossed.bundle"), as: "reshare-invalid")

        // Narrowing is allowed: the same re-share of one item only, honestly re-signed, verifies.
        var narrow = honest
        narrow.items = [honest.items[0]]
        let narrowed = try replacingGrant(in: good, with: narrow, signedBy: iachr, objects: pool)
        // (Its grant event no longer matches the signed grant: the only problem either verifier may report.)
        for v in verdicts(write(narrowed, "narrowed.bundle"), []) {
            #expect(Set(v.kinds) == ["grant-unlogged"], "\(v.verifier): \(v.output)")
        }
    }

    @Test func objectRecordsFollowTheGrantsOrderForBothVerifiers() async throws {
        let original = try await original()
        let good = try records(original)
        let objects = good.indices.filter { good[$0].type == "O" }
        #expect(objects.count >= 5)
        var recs = good
        recs.swapAt(objects[0], objects[2])
        expectRefused(write(recs, "swapped.bundle"), as: "object-order")
        recs = good
        let last = recs.remove(at: objects[objects.count - 1])
        recs.insert(last, at: objects[0])
        expectRefused(write(recs, "last-first.bundle"), as: "object-order")
    }

    @Test func eachItemReleasesExactlyItsDocumentedObjectsForBothVerifiers() async throws {
        let original = try await original()
        let ohchr = try signingKey("ohchr")
        let good = try records(original)
        let honest = try grant(of: good)
        let pool = objectPool(good)
        // The granter itself releases, for an item, another item's metadata part too.
        var extra = honest
        let other = try #require(honest.items[1].objects.first)
        extra.items[0].objects.append(other)
        let widened = try replacingGrant(in: good, with: extra, signedBy: ohchr, objects: pool)
        expectRefused(write(widened, "extra-object.bundle"), as: "scope-mismatch")
        // An item's own objects out of order (metadata part after the content part), records in the new order.
        var reordered = honest
        reordered.items[0].objects.swapAt(0, 1)
        let shuffled = try replacingGrant(in: good, with: reordered, signedBy: ohchr, objects: pool)
        expectRefused(write(shuffled, "item-order.bundle"), as: "scope-mismatch")
    }

    @Test func objectSizesOutsideTheirBoundsAreRefusedByBothVerifiers() async throws {
        let original = try await original()
        let ohchr = try signingKey("ohchr")
        for size in [ObjectRef.maxSize + 1, Int64.max, -1] {
            var recs = try records(original)
            var forged = try grant(of: recs)
            forged.items[0].objects[0].size = size
            let index = try #require(recs.firstIndex { $0.type == "G" })
            recs[index].payload = try forged.signed(by: ohchr)
            expectRefused(write(recs, "size\(size).bundle"), ["--granter", identity("ohchr")], as: "grant-malformed")
        }
    }

    @Test func aForgedCosignatureIsRefusedByBothVerifiersThatKnowTheWitness() async throws {
        for name in ["ohchr", "iachr", "mallory"] { try await body(name) }
        try ingest("ohchr", "C", ["statement.txt": Array("Witness W-17 statement".utf8)])
        let id = try grant("ohchr", ["--to", identity("iachr"), "--case", "C", "--expires", "30d"])
        // IACHR witnesses OHCHR's log; its cosignature is attached to OHCHR's latest checkpoint.
        try run("iachr", ["witness", "add", identity("ohchr")])
        try run("ohchr", ["witness", "add", identity("iachr")])
        let cosigned = CLI.run(["witness", "cosign", dir.path + "/ohchr/log/checkpoint"], environment: env("iachr"))
        #expect(cosigned.status == 0, "\(cosigned.stderr)")
        try run("ohchr", ["witness", "attach", dir.write("cosignature.txt", text: cosigned.stdout)])
        let bundle = try export("ohchr", id, "cosigned.bundle")
        let witness = ["--witness", identity("iachr")]
        for v in expectAccepted(bundle, witness) { #expect(v.cosignatures == ["valid"], "\(v.verifier)") }
        for v in expectAccepted(bundle) { #expect(v.cosignatures == ["unchecked"], "\(v.verifier)") }

        // MALLORY's line in IACHR's name: invalid for whoever knows IACHR's key.
        let good = try records(bundle)
        let index = try #require(good.firstIndex { $0.type == "C" })
        let note = String(decoding: good[index].payload, as: UTF8.self)
        let body = try #require(note.components(separatedBy: "\n\n").first) + "\n"
        let iachr = try Archive.readIdentity(identity("iachr"))
        let ohchr = try Archive.readIdentity(identity("ohchr"))
        let mallory = try signingKey("mallory")
        var recs = good
        recs[index].payload += Array(
            SignedNote.cosignatureLine(body: body, name: iachr.origin, key: mallory, timestamp: 1).utf8
        )
        let forged = write(recs, "forged-cosignature.bundle")
        for v in expectRefused(forged, witness, as: "cosignature-invalid") {
            #expect(v.cosignatures == ["invalid", "valid"], "\(v.verifier)")
        }
        // A second "log signature" under OHCHR's own name that does not verify: invalid for anyone.
        recs = good
        recs[index].payload += Array(SignedNote.signatureLine(body: body, name: ohchr.origin, key: mallory).utf8)
        expectRefused(write(recs, "forged-log-line.bundle"), as: "cosignature-invalid")
    }

    @Test func aGranterOtherThanTheNamedOneFailsBothVerifiers() async throws {
        let original = try await original()
        for v in expectAccepted(original, ["--granter", identity("ohchr")]) {
            #expect(v.report?["granter_trusted"] as? Bool == true, "\(v.verifier)")
        }
        for v in expectAccepted(original) { #expect(v.report?["granter_trusted"] as? Bool == false, "\(v.verifier)") }
        for stranger in ["mallory", "iachr"] {
            for v in expectRefused(original, ["--granter", identity(stranger)], as: "granter-untrusted") {
                #expect(v.report?["integrity_ok"] as? Bool == true, "\(v.verifier): the bundle itself is intact")
            }
        }
    }

    @Test func itemsThatShareAChunkListAreEachCheckedAgainstIt() async throws {
        for name in ["ohchr", "iachr"] { try await body(name) }
        // Two items of the same content (more than 256 chunks) name one and the same chunk-list object.
        let video: [UInt8] = (0..<(300 * 4096)).map { UInt8(truncatingIfNeeded: $0 &* 31 &+ $0 >> 9) }
        try ingest("ohchr", "C", ["a.bin": video, "b.bin": video, "c.txt": Array("statement".utf8)])
        let id = try grant("ohchr", ["--to", identity("iachr"), "--case", "C", "--expires", "30d"])
        let path = try export("ohchr", id, "shared-list.bundle")
        expectAccepted(path)
        let good = try records(path)
        let honest = try grant(of: good)
        let chunked = honest.items.indices.filter { honest.items[$0].objects.count > 10 }
        #expect(chunked.count == 2 && honest.items[chunked[0]].objects[2] == honest.items[chunked[1]].objects[2])
        let small = try #require(honest.items.firstIndex { $0.objects.count < 10 })
        // The first of them releases another item's metadata part among its chunks.
        var forged = honest
        forged.items[try #require(chunked.first)].objects.insert(honest.items[small].objects[0], at: 5)
        let made = try replacingGrant(
            in: good,
            with: forged,
            signedBy: try signingKey("ohchr"),
            objects: objectPool(good)
        )
        for v in verdicts(write(made, "shared-list-forged.bundle"), []) {
            #expect(v.status == 1, "\(v.verifier): \(v.output)")
            #expect(v.kinds.contains("scope-mismatch"), "\(v.verifier) reports \(v.kinds)")
        }
    }

    @Test func aGrantByAMemberIsCheckedAgainstTheProvedRosterByBothVerifiers() async throws {
        for name in ["ohchr", "iachr"] { try await body(name) }
        // A records officer of OHCHR grants; the bundle proves OHCHR's roster events before the grant event.
        var rita = env("ohchr")
        rita["CUSTODY_NEW_PASSPHRASE"] = "rita passphrase"
        let added = CLI.run(
            ["member", "add", "rita", "--role", "records-officer", "--kdf", "insecure-test"],
            environment: rita
        )
        try #require(added.status == 0, "\(added.stderr)")
        rita["CUSTODY_MEMBER"] = "rita"
        rita["CUSTODY_PASSPHRASE"] = "rita passphrase"
        var admin = env("ohchr")
        admin["CUSTODY_MEMBER"] = "admin"
        dir.write("in-rita/statement.txt", text: "Witness W-17 statement")
        #expect(CLI.run(["ingest", dir.path + "/in-rita", "--case", "C"], environment: admin).status == 0)
        let created = CLI.run(
            [
                "grant", "create", "--purpose", "test", "--to", identity("iachr"), "--case", "C", "--expires", "30d",
                "--json",
            ],
            environment: rita
        )
        let id = try #require(created.json?["id"] as? String, "\(created.stderr)")
        let path = dir.path + "/by-rita.bundle"
        #expect(CLI.run(["bundle", "export", id, "-o", path], environment: rita).status == 0)
        for v in expectAccepted(path) {
            let by = v.report?["granted_by"] as? [String: Any]
            #expect(by?["name"] as? String == "rita" && by?["role"] as? String == "records-officer", "\(v.verifier)")
        }
        // Without rita's member-add (entry 1) the bundle no longer proves who she was when she granted.
        let good = try records(path)
        let withoutAdd = good.filter { record in
            guard record.type == "E",
                let json = try? JSONSerialization.jsonObject(with: Data(record.payload)) as? [String: Any]
            else { return true }
            return json["index"] as? Int != 1
        }
        #expect(withoutAdd.count == good.count - 1)
        expectRefused(write(withoutAdd, "roster-cut.bundle"), as: "grant-member-unproven")
    }
}
