import CustodyCrypto
import CustodyStorage
import Foundation

@testable import CustodyArchive
@testable import CustodyClaims
@testable import CustodyNode

#if canImport(Glibc)
import Glibc
#endif

/// One fuzz target: the outside input it feeds to the package's own parser, and the properties it checks on the
/// result (a violated property traps, which libFuzzer reports as a crash). Inputs are the bytes as they arrive
/// from outside; the seeds under Fuzz/corpus/<name>/ are made by the real code (``Seeds``).
struct FuzzTarget: Sendable {
    let run: @Sendable ([UInt8]) -> Void

    /// The target this process fuzzes, set once before the first input.
    nonisolated(unsafe) static var chosen: FuzzTarget?

    static let all: [String: FuzzTarget] = [
        "bundle": FuzzTarget(run: bundle),
        "import": FuzzTarget(run: importPlan),
        "identity": FuzzTarget(run: identity),
        "note": FuzzTarget(run: note),
        "witness": FuzzTarget(run: witness),
        "signature": FuzzTarget(run: signature),
        "range": FuzzTarget(run: range),
        "journal": FuzzTarget(run: journal),
        "grant": FuzzTarget(run: grant),
        "claims": FuzzTarget(run: claims),
    ]

    /// The time every target checks at (Unix seconds): the seeds are signed for it.
    static let now = 1_800_000_000

    /// A private scratch folder (in /dev/shm, so the per-input files cost no disk I/O).
    static let scratch: String = {
        let base = ProcessInfo.processInfo.environment["CUSTODY_FUZZ_SCRATCH"] ?? "/dev/shm/custody-fuzz-\(getpid())"
        precondition(POSIX.makeDirectories(base) == 0, "custody-fuzz: cannot create \(base)")
        return base
    }()

    /// Writes `bytes` to `name` in the scratch folder and returns its path.
    static func file(_ name: String, _ bytes: [UInt8]) -> String {
        let path = scratch + "/" + name
        let fd = POSIX.open(path, O_WRONLY | O_CREAT | O_TRUNC, 0o600)
        precondition(fd >= 0, "custody-fuzz: cannot write \(path)")
        defer { close(fd) }
        precondition(bytes.withUnsafeBytes { POSIX.writeAll(fd, $0) } == 0, "custody-fuzz: cannot write \(path)")
        return path
    }

    // MARK: - Targets

    /// A bundle file (Docs/SHARING.md), through the preview an import plans with and the full streaming verifier.
    static func bundle(_ bytes: [UInt8]) {
        let path = file("bundle", bytes)
        _ = BundleVerifier.preview(path: path)
        blocking { _ = try? await BundleVerifier.verify(path: path, at: now) }
    }

    /// A file's first bytes, as ingest reads its claims (Docs/FORMAT.md, "The file's claims"): the whole input in
    /// hand, then only its first 512 bytes with the rest reached through reads at offsets (as for a large file).
    static func claims(_ bytes: [UInt8]) {
        func check(_ c: FileClaims) {
            for text in [c.make, c.model, c.software, c.producer, c.creator, c.iso6709].compactMap({ $0 }) {
                precondition(!text.isEmpty && text.utf8.count <= ClaimText.maxBytes, "claims: unbounded text")
                precondition(
                    !text.unicodeScalars.contains { $0.properties.generalCategory == .control },
                    "claims: control character kept"
                )
            }
            if let gps = c.gps {
                precondition(abs(gps.lat) <= 90 && abs(gps.lon) <= 180, "claims: position out of range")
            }
            for time in [c.capturedAt, c.exifOriginal, c.mp4Created, c.pdfCreated, c.pdfModified].compactMap({ $0 }) {
                precondition(ClaimExtractor.sortKey(parsing: time.sortKey) == time.sortKey, "claims: bad sort key")
                if time.precision != .utc {
                    precondition(ClaimTime.iso8601(time.value) == time, "claims: time does not re-parse")
                }
            }
            let json = try? JSONEncoder().encode(c)
            precondition(json.flatMap { try? JSONDecoder().decode(FileClaims.self, from: $0) } == c, "claims: JSON")
        }
        var reads = 0
        var bytesRead = 0
        let read = { (offset: Int64, count: Int) -> [UInt8]? in
            reads += 1
            bytesRead += count
            guard offset >= 0, offset < Int64(bytes.count) else { return nil }
            return Array(bytes[Int(offset)..<min(bytes.count, Int(offset) + count)])
        }
        let whole = ClaimExtractor.extract(head: bytes[...], tail: bytes[...], size: Int64(bytes.count), read: read)
        check(whole)
        let head = ClaimExtractor.extract(head: bytes.prefix(512), tail: [], size: Int64(bytes.count), read: read)
        check(head)
        precondition(reads <= 2 * ClaimExtractor.maxReads, "claims: too many reads")
        precondition(bytesRead <= 2 * ClaimExtractor.maxReadBytes, "claims: too many bytes read")
    }

    /// Runs async library work to its end from libFuzzer's synchronous callback, which runs on the main thread
    /// (never a thread of the Swift concurrency pool, so waiting cannot starve the work): the harness's only
    /// bridge between the two.
    static func blocking(_ body: @escaping @Sendable () async -> Void) {
        let done = DispatchSemaphore(value: 0)
        Task.detached {
            await body()
            done.signal()
        }
        done.wait()
    }

    /// The grantee archive the `import` target plans imports into, and the key of the granter it signs grants
    /// with (``prepare(_:)``).
    nonisolated(unsafe) static var importer: (grantee: Archive.Unlocked, granterKey: SigningKey)?

    /// Sets up what a target needs before the first input: for `import`, a grantee archive in the scratch folder
    /// and a bundle addressed to it, written to `CUSTODY_FUZZ_LIVE_SEED` (the run's own corpus) when set.
    static func prepare(_ name: String) async throws {
        guard name == "import" else { return }
        importer = try await Seeds.importer(
            in: scratch + "/import",
            seed: ProcessInfo.processInfo.environment["CUSTODY_FUZZ_LIVE_SEED"]
        )
    }

    /// A bundle from a stranger, as `bundle import` and `pull` read it: a stranger signs whatever grant they like,
    /// so the input's `G` and `P` records hold *unsigned* grant bodies, which the target signs with the granter's
    /// key (and the end record is recomputed) — mutations of every field of the grant then reach the checks
    /// behind the signature. The result goes through the import plan (made from the records before the objects,
    /// before any verification: where the review's 3 KB crash was; read-only) and the full verifier.
    static func importPlan(_ bytes: [UInt8]) {
        guard let (archive, key) = importer else { return }
        let path = file("import.bundle", resigned(bytes, key: key))
        blocking {
            if let plan = try? await archive.importPlan(path: path, now: now) {
                precondition(plan.bytes >= 0, "the planned import size is negative")
            }
            _ = try? await BundleVerifier.verify(path: path, at: now)
        }
    }

    /// The records of a bundle: type, payload; and whatever follows the last whole record.
    static func records(_ bytes: [UInt8]) -> (records: [(UInt8, [UInt8])], rest: [UInt8])? {
        guard bytes.starts(with: BundleFormat.magic) else { return nil }
        var records: [(UInt8, [UInt8])] = []
        var i = BundleFormat.magic.count
        while bytes.count - i >= 9 {
            let length = bytes[(i + 1)..<(i + 9)].reduce(UInt64(0)) { $0 << 8 | UInt64($1) }
            guard length <= UInt64(bytes.count - i - 9) else { break }
            records.append((bytes[i], Array(bytes[(i + 9)..<(i + 9 + Int(length))])))
            i += 9 + Int(length)
        }
        return (records, Array(bytes[i...]))
    }

    static func isGrant(_ type: UInt8) -> Bool { type == UInt8(ascii: "G") || type == UInt8(ascii: "P") }

    /// `bytes` with each unsigned grant record (no newline) signed by `key`, and each end record recomputed.
    static func resigned(_ bytes: [UInt8], key: SigningKey) -> [UInt8] {
        guard let (records, rest) = records(bytes) else { return bytes }
        var out = BundleFormat.magic
        var count = 0
        for (type, payload) in records {
            var payload = payload
            if type == UInt8(ascii: "Z") {
                let end = BundleFormat.End(records: count, sha256: Encoding.hex(SHA256Hasher.hash(out)))
                payload = (try? Array(Event.encoder.encode(end))) ?? payload
            } else if isGrant(type) && !payload.contains(0x0A) {
                payload += [0x0A] + Array(Encoding.base64(key.signature(for: Grant.signatureDomain + payload)).utf8)
            }
            out += [type] + bigEndianBytes(UInt64(payload.count)) + payload
            if type != UInt8(ascii: "Z") { count += 1 }
        }
        return out + rest
    }

    /// `bytes` with the signature cut off every grant record (the `import` target's seed form).
    static func unsigned(_ bytes: [UInt8]) -> [UInt8] {
        guard let (records, rest) = records(bytes) else { return bytes }
        var out = BundleFormat.magic
        for (type, payload) in records {
            let cut = isGrant(type) ? Array(payload.prefix { $0 != 0x0A }) : payload
            out += [type] + bigEndianBytes(UInt64(cut.count)) + cut
        }
        return out + rest
    }

    /// An identity file (`custody id export` of another body), as `witness add` / `peer add` read it.
    static func identity(_ bytes: [UInt8]) {
        let path = file("identity.json", bytes)
        if let identity = try? Archive.readIdentity(path) {
            precondition(identity.isValid, "readIdentity accepted an identity whose self-signature does not verify")
            // What is printed of an accepted identity is safe for a terminal.
            precondition(
                !TerminalText.escape(identity.name).unicodeScalars.contains(where: OutsideInput.isUnsafeScalar),
                "an escaped name still holds a terminal control"
            )
            // An accepted identity survives a round trip through its own encoding unchanged.
            let again = try? JSONDecoder().decode(Identity.self, from: Data(identity.jsonBytes()))
            precondition(again == identity, "an accepted identity does not round-trip")
        }
    }

    /// A signed note or checkpoint: zero or more lines `key <verifier key>` (C2SP vkey), then the note. The note is
    /// parsed, its body read as a checkpoint, and every signature checked against every key, as a signature and as
    /// a cosignature (tlog-cosignature).
    static func note(_ bytes: [UInt8]) {
        guard bytes.count <= 1 << 17, let text = String(validating: bytes, as: UTF8.self) else { return }
        var rest = Substring(text)
        var keys: [VerifierKey] = []
        while rest.hasPrefix("key "), let newline = rest.firstIndex(of: "\n") {
            if let key = VerifierKey(String(rest[rest.index(rest.startIndex, offsetBy: 4)..<newline])) {
                keys.append(key)
            }
            rest = rest[rest.index(after: newline)...]
        }
        let note = String(rest)
        guard let (body, signatures) = SignedNote.parse(note) else { return }
        precondition(!signatures.isEmpty, "a note parsed without a signature")
        let parsed = Checkpoint.parseBody(body)
        if let parsed {
            // A parsed body is exactly what Custody would write for it.
            precondition(
                SignedNote.checkpointBody(origin: parsed.origin, size: parsed.size, root: parsed.root) == body,
                "a checkpoint body parsed to different text"
            )
        }
        for key in keys {
            if let checkpoint = Checkpoint.verified(note, origin: key.name, publicKey: key.publicKey) {
                precondition(parsed != nil && checkpoint.origin == key.name, "verified a note that is no checkpoint")
            }
            _ = SignedNote.isSigned(note, name: key.name, publicKey: key.publicKey)
            for signature in signatures {
                _ = SignedNote.cosignatureTime(signature, body: body, name: key.name, publicKey: key.publicKey)
            }
        }
    }

    /// A tlog-witness add-checkpoint request body, as `witness cosign` and a node's witness endpoint read it:
    /// optionally the checkpoint cosigned before (the witness's state), a 0x1E byte, then the request. The request
    /// is split into `old N`, the proof and the note, and the proof checked from the previous checkpoint.
    static func witness(_ bytes: [UInt8]) {
        let split = bytes.firstIndex(of: 0x1E)
        let previousBytes = split.map { Array(bytes[..<$0]) } ?? []
        let requestBytes = split.map { Array(bytes[($0 + 1)...]) } ?? bytes
        guard requestBytes.count <= Archive.maxWitnessInput,
            let request = String(validating: requestBytes, as: UTF8.self),
            let (oldSize, proof, note) = try? Archive.parseWitnessRequest(request)
        else { return }
        precondition(proof.count <= 63 && proof.allSatisfy { $0.count == Merkle.hashByteCount }, "proof unbounded")
        guard let (body, _) = SignedNote.parse(note), let current = Checkpoint.parseBody(body) else { return }
        guard let previousText = String(validating: previousBytes, as: UTF8.self),
            let (previousBody, _) = SignedNote.parse(previousText),
            let previous = Checkpoint.parseBody(previousBody)
        else { return }
        // What the witness and a pull's head check decide with: a fork is claimed only with the later tree's own
        // first root, which then differs from the earlier signed one.
        let outcome = Merkle.consistency(
            proof,
            first: oldSize ?? previous.size,
            second: current.size,
            firstRoot: previous.root,
            secondRoot: current.root
        )
        if case .inconsistent(let firstRootOfSecond) = outcome {
            precondition(firstRootOfSecond != previous.root, "a fork claimed for equal roots")
        }
    }

    /// A signed HTTP request (RFC 9421 in Custody's profile): a first line `METHOD AUTHORITY PATH [QUERY]`, header
    /// lines `Name: value`, an empty line, the body. Checked as the node checks it, at ``now``, every key known.
    static func signature(_ bytes: [UInt8]) {
        let text = String(decoding: bytes, as: UTF8.self)
        let (head, body) =
            text.range(of: "\n\n").map { (String(text[..<$0.lowerBound]), Array(text[$0.upperBound...].utf8)) }
            ?? (text, [])
        var lines = head.split(separator: "\n", omittingEmptySubsequences: false)
        guard !lines.isEmpty else { return }
        let start = lines.removeFirst().split(separator: " ", omittingEmptySubsequences: false).map(String.init)
        guard start.count >= 3 else { return }
        var headers: [String: String] = [:]
        for line in lines {
            guard let colon = line.firstIndex(of: ":") else { continue }
            let value = line[line.index(after: colon)...].drop(while: { $0 == " " })
            headers[String(line[..<colon])] = String(value)
        }
        let request = HTTPSignature.Request(
            method: start[0],
            authority: start[1],
            path: start[2],
            query: start.count > 3 ? start[3] : "",
            body: body
        )
        let nonces = NonceCache(startedAt: 0)
        let admitted = try? HTTPSignature.verify(request, headers: headers, now: now, nonces: nonces) { _ in true }
        if let key = admitted {
            precondition(key.count == 32, "a verified request names a key that is not 32 bytes")
            // The same request again is a replay.
            let replay = Result { () throws(HTTPSignature.Refusal) in
                try HTTPSignature.verify(request, headers: headers, now: now, nonces: nonces) { _ in true }
            }
            precondition(replay == .failure(.replayed), "a replayed request was admitted")
        }
    }

    /// A `Range` header for a representation of some size: a first line with the size (decimal), then the header
    /// value. The answer must lie within the representation.
    static func range(_ bytes: [UInt8]) {
        let text = String(decoding: bytes, as: UTF8.self)
        let newline = text.firstIndex(of: "\n")
        let size = newline.flatMap { Int(text[..<$0]) }.map { max(0, $0) } ?? 1000
        let header = newline.map { String(text[text.index(after: $0)...]) } ?? text
        switch NodeServer.byteRange(header, size: size) {
        case .whole: break
        case .unsatisfiable: break
        case .part(let part):
            precondition(part.lowerBound >= 0 && part.upperBound < size, "a range outside the representation")
        }
    }

    /// A journal file (Docs/LEDGER.md frames): scanned from the start, then made clean as an append would
    /// (a torn tail set aside), then scanned again: the second scan ends clean where the first ended.
    static func journal(_ bytes: [UInt8]) {
        let directory = scratch + "/journal"
        _ = try? FileManager.default.removeItem(atPath: directory)
        guard let journal = try? Journal(directory: directory) else { return }
        _ = file("journal/entries", bytes)
        var entries = 0
        guard
            let (end, tail) = try? journal.scan(
                from: .start,
                { entry in
                    precondition(entry.bytes.count <= Journal.maxEntryBytes, "an entry over the limit")
                    entries += 1
                }
            )
        else { return }
        precondition(end.count == entries && end.offset <= Int64(bytes.count), "scan's end does not match its entries")
        guard let clean = try? journal.cleanEnd(hint: .start) else {
            if case .damaged = tail { return }
            preconditionFailure("cleanEnd failed on a journal that is not damaged")
        }
        precondition(clean == end, "cleanEnd disagrees with scan")
        let (again, againTail) = (try? journal.scan(from: .start) { _ in }) ?? (.start, .damaged(offset: -1))
        precondition(again == end && againTail == .clean, "a repaired journal does not scan clean")
    }

    /// Signed grant bytes (a bundle's `G` and `P` records, a node's grant files and heads).
    static func grant(_ bytes: [UInt8]) {
        guard let grant = try? Grant.parse(bytes) else { return }
        _ = grant.isValid(at: now)
        _ = Grant.hash(bytes)
        _ = grant.releasedObjects
    }
}
