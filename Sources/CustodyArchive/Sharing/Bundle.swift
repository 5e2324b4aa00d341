import CCustodySystem
import CustodyCrypto
import Dispatch
import Foundation
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// The offline share bundle: one file, written and read as a stream of records (Docs/SHARING.md).
///
/// ```
/// bundle = "custody-bundle/v1\n" record…
/// record = type (1 byte) ‖ BE64(length) ‖ payload
///   I  the granter's identity file                 (exactly one, first)
///   G  the signed grant                             (exactly one)
///   P  a signed ancestor grant, for a re-share      (one per ancestor, parent first)
///   C  the granter's signed checkpoint (+cosignatures) (exactly one)
///   E  a ledger entry with its inclusion proof      (zero or more, by index)
///   O  an object: name (32 bytes) ‖ stored bytes    (zero or more)
///   Z  the end: {"records": n, "sha256": hex}       (exactly one, last)
/// ```
package enum BundleFormat {
    /// The first bytes of every bundle.
    package static let magic = Array("custody-bundle/v1\n".utf8)

    /// The largest payload of each record type (bounds every allocation while reading).
    static func limit(_ type: UInt8) -> Int? {
        switch type {
        case UInt8(ascii: "I"), UInt8(ascii: "C"): 64 * 1024
        case UInt8(ascii: "G"), UInt8(ascii: "P"): Grant.maxBytes
        case UInt8(ascii: "E"): 1 << 20
        case UInt8(ascii: "O"): 32 + SealedPart.maxContentStoredBytes
        case UInt8(ascii: "Z"): 1024
        default: nil
        }
    }

    /// The longest re-share chain: ancestor grants (`P` records) a bundle may carry.
    package static let maxAncestors = 8
    /// The most bytes the ancestor grants of one bundle may hold together (they are kept while reading).
    package static let maxAncestorBytes = 128 << 20
    /// The most annotation events (tags, notes) of one item a bundle may prove.
    package static let maxAnnotationsPerItem = 4096

    /// A ledger entry record's payload.
    package struct EntryRecord: Codable, Sendable {
        /// Its index in the granter's log.
        package var index: Int
        /// The entry bytes, base64.
        package var entry: String
        /// The inclusion proof against the bundle's checkpoint, base64 hashes.
        package var proof: [String]
    }

    /// The end record's payload.
    package struct End: Codable, Sendable {
        /// Records before this one.
        package var records: Int
        /// SHA-256 of every byte before this record, hex.
        package var sha256: String
    }
}

/// Writes a bundle to a file descriptor, hashing as it goes.
final class BundleWriter {
    private let fd: Int32
    private var hasher = SHA256Hasher()
    private(set) var records = 0
    private(set) var bytes: Int64 = 0

    init(fd: Int32) throws {
        self.fd = fd
        try put(BundleFormat.magic)
    }

    private var writtenBack: Int64 = 0

    private func put(_ data: [UInt8]) throws {
        hasher.update(data)
        let code = data.withUnsafeBytes { POSIX.writeAll(fd, $0) }
        guard code == 0 else { throw ArchiveError.writeFailed("cannot write the bundle", errno: code) }
        bytes += Int64(data.count)
        // Start writing back every 32 MiB, so the final fsync of a multi-GB bundle does not wait for all of it.
        if bytes - writtenBack >= 32 << 20 {
            _ = CCustodySystem_start_writeback(fd, writtenBack, bytes - writtenBack)
            writtenBack = bytes
        }
    }

    /// Writes one record.
    func record(_ type: Character, _ payload: [UInt8]) throws {
        try put([type.asciiValue ?? 0] + bigEndianBytes(UInt64(payload.count)))
        try put(payload)
        records += 1
    }

    /// Writes the end record.
    func finish() throws {
        let end = BundleFormat.End(records: records, sha256: Encoding.hex(hasher.finalize()))
        let payload = try Array(Event.encoder.encode(end))
        let header = [UInt8(ascii: "Z")] + bigEndianBytes(UInt64(payload.count))
        for part in [header, payload] {
            let code = part.withUnsafeBytes { POSIX.writeAll(fd, $0) }
            guard code == 0 else { throw ArchiveError.writeFailed("cannot write the bundle", errno: code) }
            bytes += Int64(part.count)
        }
    }
}

/// Reads a bundle's records in order, bounding every allocation and hashing as it goes.
final class BundleReader {
    private let fd: Int32
    private var buffer: [UInt8] = []
    private var position = 0
    private var hasher = SHA256Hasher()
    /// Records read so far (the end record excluded).
    private(set) var records = 0
    /// Bytes read so far.
    private(set) var offset: Int64 = 0

    /// Opens `path`; checks the magic.
    init(path: String) throws {
        fd = POSIX.open(path, O_RDONLY)
        guard fd >= 0 else {
            let code = errno
            throw ArchiveError(
                code == ENOENT ? .notFound : .badInput,
                "cannot read \(path): \(errnoDescription(code))",
                fix: "check the bundle's path"
            )
        }
        guard let magic = try? read(BundleFormat.magic.count), magic == BundleFormat.magic else {
            close(fd)
            throw ArchiveError(
                .badInput,
                "\(path) is not a Custody bundle (it does not start with \"custody-bundle/v1\")",
                fix: "give a file made by custody bundle export or custody submit"
            )
        }
        hasher.update(BundleFormat.magic)
    }

    deinit { close(fd) }

    /// Reads exactly `count` bytes; `nil` at a clean end of file before any of them.
    private func read(_ count: Int) throws -> [UInt8]? {
        var out = [UInt8]()
        out.reserveCapacity(count)
        while out.count < count {
            if position == buffer.count {
                buffer = [UInt8](repeating: 0, count: 1 << 20)
                let n = buffer.withUnsafeMutableBytes { Glibc.read(fd, $0.baseAddress, $0.count) }
                guard n >= 0 else { throw ArchiveError(.badInput, "cannot read the bundle", fix: "check the file") }
                buffer.removeSubrange(n...)
                position = 0
                if n == 0 {
                    if out.isEmpty { return nil }
                    throw Truncated()
                }
            }
            let take = min(count - out.count, buffer.count - position)
            out += buffer[position..<(position + take)]
            position += take
        }
        offset += Int64(count)
        return out
    }

    struct Truncated: Error {}

    /// One record.
    struct Record {
        var type: UInt8
        var payload: [UInt8]
        /// Byte offset of the record in the file.
        var offset: Int64
    }

    /// The next record, or `nil` at the end of the file; the end record is checked here.
    ///
    /// - Throws: ``ArchiveError`` (bad input) for a truncated file, an unknown type, an over-long record, or an end
    ///   record that does not match what was read.
    func next() throws -> Record? {
        let start = offset
        do {
            guard let header = try read(9) else { return nil }
            let type = header[0]
            let length = header[1...].reduce(UInt64(0)) { $0 << 8 | UInt64($1) }
            guard let limit = BundleFormat.limit(type) else {
                throw ArchiveError(
                    .badInput,
                    "the bundle holds an unknown record type 0x\(String(type, radix: 16)) at byte \(start)",
                    fix: "the file is damaged or not a bundle; ask for it again"
                )
            }
            guard length <= UInt64(limit) else {
                throw ArchiveError(
                    .badInput,
                    "a \(Character(UnicodeScalar(type))) record at byte \(start) claims \(length) bytes, over its limit of \(limit)",
                    fix: "the file is damaged; ask for it again"
                )
            }
            let payload = try read(Int(length)) ?? []
            guard payload.count == Int(length) else { throw Truncated() }
            if type == UInt8(ascii: "Z") {
                guard let end = try? JSONDecoder().decode(BundleFormat.End.self, from: Data(payload)),
                    end.records == records, end.sha256 == Encoding.hex(hasher.finalize())
                else {
                    throw ArchiveError(
                        .badInput,
                        "the bundle's end record does not match its \(records) records (bytes were changed, removed or reordered)",
                        fix: "the file is damaged; ask for it again"
                    )
                }
                guard try read(1) == nil else {
                    throw ArchiveError(.badInput, "the bundle has bytes after its end record", fix: "ask for it again")
                }
            } else {
                hasher.update(header)
                hasher.update(payload)
                records += 1
            }
            return Record(type: type, payload: payload, offset: start)
        } catch is Truncated {
            throw ArchiveError(
                .badInput,
                "the bundle is truncated (it ends inside the record at byte \(start))",
                fix: "copy the whole file again"
            )
        }
    }
}

/// What `bundle verify` found (its `--json` shape).
package struct BundleReport: Encodable, Sendable {
    /// Integrity and validity at the checked time, and — when the caller named the granter — that it is the
    /// granter.
    package var ok: Bool { integrityOK && validNow && (!granterGiven || granterTrusted) }
    /// Whether the caller named the granter (`--granter`): then a mismatch fails the check.
    package var granterGiven = false
    /// The checkpoint's cosignatures, each checked against the witnesses the caller knows.
    package var cosignatures: [CosignatureCheck] = []
    /// Signatures, hashes, proofs and references all check.
    package var integrityOK: Bool
    /// The grant is valid at the checked time.
    package var validNow: Bool
    /// The granter is the identity given with `--granter`.
    package var granterTrusted: Bool
    /// The grant id.
    package var grant: String?
    /// The granter's name and fingerprint.
    package var granter: String?
    /// The grantee's name and fingerprint.
    package var grantee: String?
    /// Items the grant releases.
    package var items = 0
    /// Objects in the bundle.
    package var objects = 0
    /// The time the validity was checked at.
    package var checkedAt: String
    /// `content` or `metadata`.
    package var permission: String?
    /// Not valid after.
    package var expires: String?
    /// What is wrong.
    package var problems: [VerifyProblem] = []

    enum CodingKeys: String, CodingKey {
        case ok, grant, granter, grantee, items, objects, permission, expires, problems, cosignatures
        case integrityOK = "integrity_ok"
        case validNow = "valid_now"
        case granterTrusted = "granter_trusted"
        case checkedAt = "checked_at"
    }

    package func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(ok, forKey: .ok)
        try c.encode(integrityOK, forKey: .integrityOK)
        try c.encode(validNow, forKey: .validNow)
        try c.encode(granterTrusted, forKey: .granterTrusted)
        try c.encode(grant, forKey: .grant)
        try c.encode(granter, forKey: .granter)
        try c.encode(grantee, forKey: .grantee)
        try c.encode(items, forKey: .items)
        try c.encode(objects, forKey: .objects)
        try c.encode(checkedAt, forKey: .checkedAt)
        try c.encode(permission, forKey: .permission)
        try c.encode(expires, forKey: .expires)
        try c.encode(cosignatures, forKey: .cosignatures)
        try c.encode(problems, forKey: .problems)
    }
}

/// One cosignature line of a bundle's checkpoint, as checked.
package struct CosignatureCheck: Encodable, Sendable, Equatable {
    /// The key name of the line (a witness's origin).
    package var witness: String
    /// `valid` (a known witness's key signed this checkpoint), `invalid` (it names a known witness, or the log
    /// itself, and does not verify with that key), or `unchecked` (no key is known for that name).
    package var status: String
    /// The cosignature's time (RFC 3339), when valid.
    package var time: String?
}

/// What a verified bundle holds, for `bundle import`.
package struct BundleContents: Sendable {
    /// The granter's identity.
    package var identity: Identity
    /// The grant and its signed bytes.
    package var grant: Grant
    /// The signed grant bytes.
    package var signedGrant: [UInt8]
    /// The granter's checkpoint.
    package var checkpoint: Checkpoint
    /// Each item's ingest (or import) event in the granter's log.
    package var origins: [ItemID: Event]
    /// Each item's annotation events, in log order.
    package var annotations: [ItemID: [Event]]
    /// Signed ancestor grants of a re-share.
    package var ancestors: [[UInt8]] = []
}

/// Delivers a grant's released objects from outside a bundle file: given the objects, calls the delivery closure
/// with each one's name and bytes (from any thread) and returns when all are delivered or throws.
package typealias ObjectFetcher =
    @Sendable (
        _ objects: [ObjectRef],
        _ deliver: @escaping @Sendable (ObjectName, [UInt8]) -> Void
    ) throws -> Void

/// Checks a bundle as a stream: no keys and no archive needed.
package enum BundleVerifier {
    /// The grant and the granter's events, read from the records before the first object — unchecked but for
    /// signatures — so an import can plan its work before the verifying pass. `nil` when they cannot be read.
    static func preview(
        path: String
    ) -> (grant: Grant, signed: [UInt8], origins: [ItemID: Event], annotations: Set<ObjectName>)? {
        guard let reader = try? BundleReader(path: path) else { return nil }
        var signingKey: [UInt8]?
        var grant: (Grant, [UInt8])?
        var origins: [ItemID: Event] = [:]
        var annotations = Set<ObjectName>()
        while let record = try? reader.next(), record.type != UInt8(ascii: "O"), record.type != UInt8(ascii: "Z") {
            switch record.type {
            case UInt8(ascii: "I"):
                signingKey = (try? JSONDecoder().decode(Identity.self, from: Data(record.payload)))
                    .flatMap { Encoding.bytes(base64: $0.signingKey) }
            case UInt8(ascii: "G"):
                grant = (try? Grant.parse(record.payload)).map { ($0, record.payload) }
            case UInt8(ascii: "E"):
                guard let signingKey,
                    let entryRecord = try? JSONDecoder().decode(
                        BundleFormat.EntryRecord.self,
                        from: Data(record.payload)
                    ),
                    let entry = Encoding.bytes(base64: entryRecord.entry),
                    let event = try? Event.parse(entry, publicKey: signingKey), let item = event.item
                else { continue }
                if event.type == .ingest || event.type == .import { origins[item] = origins[item] ?? event }
                if let ref = event.annotation, event.type == .tag || event.type == .note {
                    annotations.insert(ref.name)
                }
            default: continue
            }
        }
        guard let (parsed, signed) = grant else { return nil }
        return (parsed, signed, origins, annotations)
    }

    /// The text of the bundle's `C` record (the granter's checkpoint), unchecked: a pull compares it with the
    /// witnessed log before importing. `nil` when the records before it cannot be read.
    package static func checkpointNote(path: String) -> String? {
        guard let reader = try? BundleReader(path: path) else { return nil }
        while let record = try? reader.next() {
            switch record.type {
            case UInt8(ascii: "I"), UInt8(ascii: "G"), UInt8(ascii: "P"): continue
            case UInt8(ascii: "C"): return String(validating: record.payload, as: UTF8.self)
            default: return nil
            }
        }
        return nil
    }

    /// Verifies the bundle at `path`.
    ///
    /// - Parameters:
    ///   - path: The bundle.
    ///   - granter: The identity the granter should have (`--granter`); `nil`: the bundle's own is not trusted.
    ///   - witnesses: Signing keys by origin, to check the checkpoint's cosignatures with (others are listed as
    ///     unchecked).
    ///   - expectedGrant: The grant id the caller asked for (a pull): another grant stops the check at once.
    ///   - time: The time to check validity at (Unix seconds).
    ///   - object: Called with each object that checks (name and bytes), for importing: concurrently, from
    ///     worker threads, in no particular order.
    ///   - fetch: For a bundle head (a bundle without object records, as a node serves it): called once the head's
    ///     records are read, with the objects the grant releases; it delivers each object's bytes from elsewhere
    ///     (a peer, over the network), from any thread, and each delivered object is checked exactly like an
    ///     object record. Its errors are thrown.
    /// - Returns: The report, and the contents when the integrity checks pass.
    /// - Throws: ``ArchiveError`` when the file cannot be opened or is not a bundle at all; what `fetch` throws.
    package static func verify(
        path: String,
        granter expected: Identity? = nil,
        witnesses: [String: [UInt8]] = [:],
        expectedGrant: String? = nil,
        at time: Int,
        fetch: ObjectFetcher? = nil,
        object: (@Sendable (ObjectName, [UInt8]) throws -> Void)? = nil
    ) throws -> (BundleReport, BundleContents?) {
        let reader = try BundleReader(path: path)
        let queue = DispatchQueue(label: "custody.bundle.objects", attributes: .concurrent)
        let workers = DispatchGroup()
        let slots = DispatchSemaphore(value: 2 * max(1, ProcessInfo.processInfo.activeProcessorCount))
        let asyncProblems = Mutex<[VerifyProblem]>([])
        let callbackError = Mutex<(any Error)?>(nil)
        defer { workers.wait() }
        var report = BundleReport(
            integrityOK: false,
            validNow: false,
            granterTrusted: false,
            checkedAt: RFC3339.format(time)
        )
        func problem(_ kind: String, _ detail: String, object: String? = nil, item: String? = nil, entry: Int? = nil) {
            report.problems.append(VerifyProblem(kind: kind, object: object, item: item, entry: entry, detail: detail))
        }
        var identity: Identity?
        var grant: Grant?
        var signedGrant: [UInt8] = []
        var checkpoint: Checkpoint?
        var released: [ObjectName: Int64] = [:]
        let seenObjects = Mutex<Set<ObjectName>>([])
        let objectCount = Atomic<Int>(0)
        // Chunk lists the grant releases, with the chunks each item's objects list behind it (SHARING.md section 4).
        let chunkListChecks = Mutex<[ObjectName: [(item: ItemID, chunks: [ObjectName])]]>([:])
        // Every object, from a record or delivered by `fetch`: released, once, of its size, hashing to its name.
        let admit: @Sendable ([ObjectName: Int64], ObjectName, [UInt8]) -> Void = { released, claimed, bytes in
            objectCount.wrappingAdd(1, ordering: .relaxed)
            func fail(_ kind: String, _ detail: String) {
                asyncProblems.withLock { $0.append(VerifyProblem(kind: kind, object: claimed.hex, detail: detail)) }
            }
            guard let size = released[claimed] else {
                return fail("object-unreferenced", "the bundle holds an object the grant does not release")
            }
            guard seenObjects.withLock({ $0.insert(claimed).inserted }) else {
                return fail("object-duplicate", "the object appears twice")
            }
            guard Int64(bytes.count) == size else {
                return fail("object-corrupt", "the object is \(bytes.count) bytes, the grant says \(size)")
            }
            guard ObjectName(of: bytes) == claimed else {
                return fail("object-corrupt", "the object's bytes do not hash to its name")
            }
            // Every item that names this chunk list (identical files share one) is checked against it.
            for check in chunkListChecks.withLock({ $0[claimed] ?? [] }) {
                var seen = Set<ObjectName>()
                let distinct = decodeChunkList(bytes)?.map(\.name).filter { seen.insert($0).inserted }
                if distinct != check.chunks {
                    asyncProblems.withLock {
                        $0.append(
                            VerifyProblem(
                                kind: "scope-mismatch",
                                object: claimed.hex,
                                item: check.item.hex,
                                detail: "the item's released chunks are not its chunk list's distinct chunks in order"
                            )
                        )
                    }
                }
            }
            do {
                try object?(claimed, bytes)
            } catch {
                callbackError.withLock { $0 = $0 ?? error }
            }
        }
        var origins: [ItemID: Event] = [:]
        var annotations: [ItemID: [Event]] = [:]
        // Per item, the objects its proved tag and note events name, in log order (the tail of its released objects).
        var tails: [ItemID: [ObjectRef]] = [:]
        var grantLogged = false
        var lastIndex = -1
        let order: [UInt8] = Array("IGPCEOZ".utf8)
        // The ancestor chain, parent first: each P must be the next grant up the chain, and nothing else.
        var ancestors: [(grant: Grant, signed: [UInt8])] = []
        var ancestorBytes = 0
        var expectedParent: GrantReference?
        var grantedItems = Set<ItemID>()
        var expectedPositions: [ObjectName: Int] = [:]
        var nextObject = 0
        var layoutsKnown = false
        var stage = -1
        readLoop: while true {
            let record: BundleReader.Record
            do {
                guard let next = try reader.next() else {
                    problem("bundle-damaged", "the bundle has no end record (it was cut short)")
                    break
                }
                record = next
            } catch let error as ArchiveError {
                problem("bundle-damaged", error.problem)
                break
            }
            let name = Character(UnicodeScalar(record.type))
            // I, G, then any P, then C; then any E records, any O records, and Z.
            let position = order.firstIndex(of: record.type) ?? 0
            let mandatory: Set<Int> = [0, 1, 3, 6]
            let inOrder =
                position == stage
                ? !mandatory.contains(position)
                : position > stage && !mandatory.contains(where: { $0 > stage && $0 < position })
            guard inOrder else {
                problem(
                    "bundle-damaged",
                    "the \(name) record at byte \(record.offset) is out of order or missing its predecessors"
                )
                break
            }
            if position > 2, stage <= 2, let missing = expectedParent {
                problem("parent-missing", "the bundle lacks the parent grant \(missing.id) this grant re-shares from")
                break
            }
            stage = position
            switch name {
            case "I":
                guard let parsed = try? JSONDecoder().decode(Identity.self, from: Data(record.payload)), parsed.isValid,
                    VerifierKey(parsed.logVerifierKey)?.name == parsed.origin
                else {
                    problem("identity-invalid", "the granter's identity in the bundle is not validly self-signed")
                    break readLoop
                }
                identity = parsed
                report.granter = "\(parsed.name) (\(parsed.fingerprint))"
            case "G":
                switch Grant.parseSignature(record.payload) {
                case .failure(.malformed(let fault)):
                    problem("grant-malformed", "the grant is malformed: \(fault)")
                    break readLoop
                case .failure(.signature):
                    problem("grant-signature", Grant.Fault.signature.error.problem)
                    break readLoop
                case .success(let parsed):
                    guard let identity, parsed.granter.signingKey == identity.signingKey,
                        parsed.granter.boxKey == identity.boxKey
                    else {
                        problem("granter-mismatch", "the grant names another granter than the bundle's identity")
                        break readLoop
                    }
                    if let fault = parsed.formFault {
                        problem("grant-malformed", "the grant is malformed: \(fault)")
                        break readLoop
                    }
                    if let expectedGrant, parsed.id != expectedGrant {
                        problem("grant-unexpected", "the peer sent grant \(parsed.id) for grant \(expectedGrant)")
                        break readLoop
                    }
                    grant = parsed
                    expectedParent = parsed.parent
                    grantedItems = Set(parsed.items.map(\.id))
                    for (position, ref) in parsed.releasedObjects.enumerated() { expectedPositions[ref.name] = position }
                    signedGrant = record.payload
                    report.grant = parsed.id
                    report.grantee = "\(parsed.grantee.name) (\(parsed.grantee.fingerprint))"
                    report.items = parsed.items.count
                    report.permission = parsed.permission
                    report.expires = parsed.expires
                    for ref in parsed.releasedObjects { released[ref.name] = ref.size }
                }
            case "P":
                // Exactly the chain from G's parent up, in order: any other grant is refused at once, unread.
                guard let reference = expectedParent else {
                    problem(
                        "reshare-invalid",
                        "the P record at byte \(record.offset) is not on the grant's parent chain (the chain has ended)"
                    )
                    break readLoop
                }
                ancestorBytes += record.payload.count
                guard ancestors.count < BundleFormat.maxAncestors, ancestorBytes <= BundleFormat.maxAncestorBytes else {
                    problem(
                        "reshare-invalid",
                        "the re-share chain is longer than \(BundleFormat.maxAncestors) grants or \(BundleFormat.maxAncestorBytes >> 20) MiB"
                    )
                    break readLoop
                }
                guard Grant.hash(record.payload) == reference.hash else {
                    problem(
                        "parent-missing",
                        "the P record at byte \(record.offset) is not the parent grant \(reference.id) (its hash differs)"
                    )
                    break readLoop
                }
                guard let parsed = try? Grant.parse(record.payload), parsed.id == reference.id else {
                    problem("grant-signature", "the ancestor grant \(reference.id) is malformed or not validly signed")
                    break readLoop
                }
                ancestors.append((parsed, record.payload))
                expectedParent = parsed.parent
            case "C":
                guard let identity, let key = VerifierKey(identity.logVerifierKey),
                    let parsed = Checkpoint.verified(
                        String(decoding: record.payload, as: UTF8.self),
                        origin: identity.origin,
                        publicKey: key.publicKey
                    )
                else {
                    problem("checkpoint-invalid", "the checkpoint is not signed by the granter's log key")
                    break readLoop
                }
                checkpoint = parsed
                report.cosignatures = checkCosignatures(parsed, logKey: key, witnesses: witnesses)
                for bad in report.cosignatures where bad.status == "invalid" {
                    problem(
                        "cosignature-invalid",
                        "the checkpoint's cosignature by \(TerminalText.escape(bad.witness)) does not verify with that witness's key"
                    )
                }
            case "E":
                guard let identity, let checkpoint, let grant,
                    let signing = Encoding.bytes(base64: identity.signingKey)
                else { break readLoop }
                guard
                    let entryRecord = try? JSONDecoder().decode(
                        BundleFormat.EntryRecord.self,
                        from: Data(record.payload)
                    ),
                    let entry = Encoding.bytes(base64: entryRecord.entry), entryRecord.proof.count <= 64
                else {
                    problem("entry-invalid", "the ledger entry record at byte \(record.offset) is malformed")
                    continue
                }
                let index = entryRecord.index
                guard index > lastIndex else {
                    problem("entry-invalid", "ledger entry \(index) is out of order or repeated", entry: index)
                    continue
                }
                lastIndex = index
                let proof = entryRecord.proof.compactMap { Encoding.bytes(base64: $0) }
                guard proof.count == entryRecord.proof.count, index < checkpoint.size,
                    Merkle.root(
                        fromInclusionProof: proof,
                        leafHash: Merkle.leafHash(entry),
                        index: index,
                        size: checkpoint.size
                    ) == checkpoint.root
                else {
                    problem(
                        "proof-invalid",
                        "ledger entry \(index) is not proved to be in the granter's signed log of size \(checkpoint.size)",
                        entry: index
                    )
                    continue
                }
                guard let event = try? Event.parse(entry, publicKey: signing) else {
                    problem("entry-invalid", "ledger entry \(index) is not signed by the granter", entry: index)
                    continue
                }
                if event.type == .grant, event.grant == GrantReference(id: grant.id, hash: Grant.hash(signedGrant)) {
                    grantLogged = true
                    continue
                }
                // Only events of the grant's items are kept, a bounded number of each: memory stays bounded.
                guard let item = event.item, grantedItems.contains(item) else { continue }
                if event.type == .ingest || event.type == .import {
                    if origins[item] == nil { origins[item] = event }
                } else if event.type == .tag || event.type == .note, let ref = event.annotation {
                    guard (tails[item]?.count ?? 0) < BundleFormat.maxAnnotationsPerItem else {
                        problem(
                            "entry-invalid",
                            "the bundle proves more than \(BundleFormat.maxAnnotationsPerItem) annotations of one item",
                            item: item.hex,
                            entry: index
                        )
                        continue
                    }
                    annotations[item, default: []].append(event)
                    tails[item, default: []].append(ref)
                }
            case "O":
                guard record.payload.count >= 32 else {
                    report.objects += 1
                    problem("bundle-damaged", "the object record at byte \(record.offset) is too short")
                    continue
                }
                guard let claimed = ObjectName(hex: Encoding.hex(record.payload[0..<32])) else { continue }
                if !layoutsKnown, let grant {
                    chunkListChecks.withLock { $0 = chunkListLayouts(grant, origins: origins, tails: tails) }
                    layoutsKnown = true
                }
                // In the grant's order (SHARING.md section 3): each O is a released object after the one before it
                // (skipped ones are reported missing unless they come later: then they are out of order).
                if let position = expectedPositions[claimed], position >= nextObject {
                    nextObject = position + 1
                } else if expectedPositions[claimed] != nil, !seenObjects.withLock({ $0.contains(claimed) }) {
                    problem(
                        "object-order",
                        "the object record at byte \(record.offset) is not the next object the grant releases",
                        object: claimed.hex
                    )
                }
                let bytes = Array(record.payload[32...])
                let releasedNow = released
                // Hashing (and the caller's work, e.g. staging) runs on the workers; reading goes on.
                slots.wait()
                workers.enter()
                queue.async {
                    defer {
                        slots.signal()
                        workers.leave()
                    }
                    admit(releasedNow, claimed, bytes)
                }
            default:
                break readLoop
            }
            if name == "Z" { break }
        }
        workers.wait()
        if let fetch, stage == 6, let grant, callbackError.withLock({ $0 }) == nil {
            if !layoutsKnown {
                chunkListChecks.withLock { $0 = chunkListLayouts(grant, origins: origins, tails: tails) }
            }
            let releasedNow = released
            try fetch(grant.releasedObjects) { name, bytes in admit(releasedNow, name, bytes) }
        }
        if let error = callbackError.withLock({ $0 }) { throw error }
        report.objects += objectCount.load(ordering: .relaxed)
        report.problems += asyncProblems.withLock { $0 }.sorted { ($0.object ?? "") < ($1.object ?? "") }
        let seen = seenObjects.withLock { $0 }
        guard let identity, let grant, let checkpoint, stage == 6 else {
            if report.problems.isEmpty { problem("bundle-damaged", "the bundle is incomplete") }
            return (report, nil)
        }
        // A re-share: the chain of grants back to the original holder (exactly the P records, checked as they
        // came), each link never wider or longer, and never substituting: every object a child releases for an
        // item is one its parent released for that item — only the re-sharer's own proved annotations (its
        // tags, notes and import provenance, in its signed log) come in addition.
        var child = grant
        for (depth, parent) in ancestors.enumerated() {
            let p = parent.grant
            var faults: [String] = []
            if !p.reshare { faults.append("the parent does not allow re-sharing") }
            if p.grantee.signingKey != child.granter.signingKey || p.grantee.boxKey != child.granter.boxKey {
                faults.append("the parent was not granted to this granter")
            }
            if (RFC3339.parse(child.expires) ?? .max) > (RFC3339.parse(p.expires) ?? 0) {
                faults.append("it outlasts the parent")
            }
            if p.permission == "metadata" && child.permission != "metadata" {
                faults.append("it gives content the parent does not")
            }
            let parentItems = Dictionary(p.items.map { ($0.id, Set($0.objects)) }) { first, _ in first }
            if !child.items.allSatisfy({ parentItems[$0.id] != nil }) {
                faults.append("it names items the parent does not")
            }
            for item in child.items {
                guard let allowed = parentItems[item.id] else { continue }
                // The granter's own additions are known only for the first link, from its proved events.
                let own = depth == 0 ? Set(tails[item.id] ?? []) : []
                let core = Set(origins[item.id].map { coreObjects(of: $0, permission: grant.permission) } ?? [])
                let extra = Set(item.objects).subtracting(allowed).subtracting(own)
                if !extra.isEmpty || (!core.isEmpty && !core.isSubset(of: allowed)) {
                    faults.append("it releases objects for item \(item.id) that the parent did not release")
                    break
                }
            }
            if !faults.isEmpty {
                problem(
                    "reshare-invalid",
                    "grant \(child.id) is not a valid re-share of \(p.id): " + faults.joined(separator: "; ")
                )
            }
            child = p
        }
        if !grantLogged {
            problem("grant-unlogged", "the bundle does not prove that the grant is in the granter's log")
        }
        for name in Set(released.keys).subtracting(seen).sorted() {
            problem("object-missing", "an object the grant releases is not in the bundle", object: name.hex)
        }
        for item in grant.items {
            guard let origin = origins[item.id], origin.objects != nil else {
                problem(
                    "item-unproven",
                    "no ingest event of the item is proved in the granter's log",
                    item: item.id.hex
                )
                continue
            }
            // The documented layout (SHARING.md section 2): the origin's objects in order, then every annotation
            // object its proved events name, in log order; chunks behind a chunk list are checked against the
            // list when it arrives.
            if let fault = layoutFault(item, origin: origin, tail: tails[item.id] ?? [], permission: grant.permission) {
                problem("scope-mismatch", fault, item: item.id.hex)
            }
            if grant.permission == "metadata", item.keys.content != nil {
                problem("scope-mismatch", "a metadata-only grant carries a content key", item: item.id.hex)
            }
        }
        report.integrityOK = report.problems.isEmpty
        report.validNow = grant.isValid(at: time)
        if !report.validNow {
            problem(
                "grant-not-valid",
                "the grant is valid from \(grant.created) until \(grant.expires), not at \(RFC3339.format(time))"
            )
        }
        if let expected {
            report.granterGiven = true
            report.granterTrusted =
                expected.signingKey == identity.signingKey && expected.boxKey == identity.boxKey
                && expected.logVerifierKey == identity.logVerifierKey
            if !report.granterTrusted {
                problem(
                    "granter-untrusted",
                    "the bundle's granter (\(identity.fingerprint)) is not the given identity (\(expected.fingerprint))"
                )
            }
        }
        let contents = BundleContents(
            identity: identity,
            grant: grant,
            signedGrant: signedGrant,
            checkpoint: checkpoint,
            origins: origins,
            annotations: annotations,
            ancestors: ancestors.map(\.signed)
        )
        return (report, report.integrityOK ? contents : nil)
    }

    /// The objects of an item's origin event that a grant of `permission` releases first, in order: the metadata
    /// part, then (content) the content part, the chunk list if any, and the inline chunks' distinct names in
    /// stream order.
    static func coreObjects(of origin: Event, permission: String) -> [ObjectRef] {
        guard let objects = origin.objects else { return [] }
        guard permission == "content", let content = objects.content else { return [objects.meta] }
        var core = [objects.meta, content]
        if let list = objects.chunkList { core.append(list) }
        var seen = Set(core.map(\.name))
        for chunk in objects.chunks ?? [] where seen.insert(chunk.name).inserted { core.append(chunk) }
        return core
    }

    /// What is wrong with the order and extent of an item's released objects, or `nil`.
    static func layoutFault(_ item: GrantedItem, origin: Event, tail: [ObjectRef], permission: String) -> String? {
        let core = coreObjects(of: origin, permission: permission)
        let objects = item.objects
        let chunked = permission == "content" && origin.objects?.chunkList != nil
        guard objects.count >= core.count + tail.count, Array(objects.prefix(core.count)) == core,
            Array(objects.suffix(tail.count)) == tail, chunked || objects.count == core.count + tail.count
        else {
            return "the grant's objects for the item are not its signed events' objects in the documented order"
        }
        return nil
    }

    /// For each released chunk list, every item naming it and the chunks each releases behind it (to compare with
    /// the list's distinct chunks when the list itself arrives).
    static func chunkListLayouts(
        _ grant: Grant,
        origins: [ItemID: Event],
        tails: [ItemID: [ObjectRef]]
    ) -> [ObjectName: [(item: ItemID, chunks: [ObjectName])]] {
        guard grant.permission == "content" else { return [:] }
        var layouts: [ObjectName: [(item: ItemID, chunks: [ObjectName])]] = [:]
        for item in grant.items {
            guard let origin = origins[item.id], let list = origin.objects?.chunkList else { continue }
            let core = coreObjects(of: origin, permission: grant.permission).count
            let tail = tails[item.id]?.count ?? 0
            guard item.objects.count >= core + tail else { continue }
            let chunks = item.objects[core..<(item.objects.count - tail)].map(\.name)
            layouts[list.name, default: []].append((item.id, chunks))
        }
        return layouts
    }

    /// Checks each cosignature line of `checkpoint` with the key of the witness it names.
    static func checkCosignatures(
        _ checkpoint: Checkpoint,
        logKey: VerifierKey,
        witnesses: [String: [UInt8]]
    ) -> [CosignatureCheck] {
        guard let (body, signatures) = SignedNote.parse(checkpoint.note) else { return [] }
        let logID = SignedNote.keyID(name: logKey.name, publicKey: logKey.publicKey, type: SignedNote.ed25519Type)
        var checks: [CosignatureCheck] = []
        for signature in signatures {
            if signature.name == logKey.name, signature.payload.count == 68, Array(signature.payload.prefix(4)) == logID,
                SigningKey.isValidSignature(
                    Array(signature.payload.dropFirst(4)),
                    for: Array(body.utf8),
                    publicKey: logKey.publicKey
                )
            {
                continue  // the log's own signature
            }
            guard let key = witnesses[signature.name] else {
                let status = signature.name == logKey.name ? "invalid" : "unchecked"
                checks.append(CosignatureCheck(witness: signature.name, status: status))
                continue
            }
            if let time = SignedNote.cosignatureTime(signature, body: body, name: signature.name, publicKey: key) {
                let seconds = Int(clamping: time)
                checks.append(CosignatureCheck(witness: signature.name, status: "valid", time: RFC3339.format(seconds)))
            } else {
                checks.append(CosignatureCheck(witness: signature.name, status: "invalid"))
            }
        }
        return checks
    }
}
