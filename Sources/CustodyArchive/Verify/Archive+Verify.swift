import CustodyCrypto
import Dispatch
import Foundation
import Synchronization

/// How thoroughly `verify` checks.
package enum VerifyMode: String, Sendable {
    /// Presence and sizes only.
    case quick
    /// Every object re-hashed against its name (no keys needed).
    case standard
    /// Also decrypts everything and re-checks every SHA-256 (needs the passphrase).
    case deep
}

/// One problem found by `verify`, in the `--json` shape of DESIGN.md.
package struct VerifyProblem: Sendable, Equatable, Codable {
    /// `missing`, `corrupt`, `size-mismatch`, `bad-entry`, `journal-damaged`, `undecryptable`, `sha256-mismatch`,
    /// `commitment-mismatch`, the ledger's kinds (`ledger-mismatch`, `tile-mismatch`, `tile-unexpected`, …) and the
    /// trust kinds (`identity-invalid`, `cosignature-invalid`, `cosignature-unknown`, `witness-state-invalid`):
    /// Docs/LEDGER.md section 14.
    package var kind: String
    /// The object concerned.
    package var object: String?
    /// The item concerned.
    package var item: String?
    /// The journal entry concerned.
    package var entry: Int?
    /// What is wrong.
    package var detail: String
}

/// The outcome of `verify`.
package struct VerifyReport: Sendable {
    /// No problems (orphans and warnings do not count).
    package var ok: Bool { problems.isEmpty }
    /// Objects checked.
    package var objectsChecked = 0
    /// Journal entries read.
    package var entries = 0
    /// Items found.
    package var items = 0
    /// Damage found.
    package var problems: [VerifyProblem] = []
    /// Objects no event names, then leftover temporary files (as paths under `objects/`).
    package var orphans: [String] = []
    /// Things worth knowing that are not damage (e.g. a torn journal tail from a crash).
    package var warnings: [String] = []
    /// The size of the latest signed checkpoint, if there is one.
    package var checkpointSize: Int?
    /// Signed checkpoints whose roots were recomputed from the entries.
    package var checkpointsChecked = 0
    /// For `--sample`: the slice of the name space checked in this run.
    package var sample: VerifySample?
}

/// The slice of object names one `verify --sample P%` run re-hashes: names whose first two bytes, read as a
/// number 0–65535, fall in `[start, start + count)` modulo 65536. Each run starts where the last one ended
/// (`verify-sample.json` in the archive folder), so ⌈100 / P⌉ runs cover every object, as restic's
/// `--read-data-subset n/t` does.
package struct VerifySample: Sendable, Codable, Equatable {
    /// The first position (0–65535).
    package var start: Int
    /// How many positions (1–65536).
    package var count: Int
    /// Where the next run starts.
    package var next: Int { (start + count) % 65536 }
    /// The objects of the archive that fall in it.
    package var objects = 0
    /// All objects the journal names.
    package var totalObjects = 0

    enum CodingKeys: String, CodingKey {
        case start, count, objects
        case totalObjects = "total_objects"
    }

    /// Whether `name` falls in the slice.
    func contains(_ name: ObjectName) -> Bool {
        let position = Int(name.hex.prefix(4), radix: 16) ?? 0
        return (position - start + 65536) % 65536 < count
    }
}

/// The objects the journal names, and which items use them.
struct ReferenceMap {
    var sizes: [ObjectName: Int64] = [:]
    var users: [ObjectName: [String]] = [:]
    var ingests: [(index: Int, event: Event)] = []
    var problems: [VerifyProblem] = []
    var tail: Journal.Tail = .clean
    var entries = 0
    var warnings: [String] = []
    var checkpointSize: Int?
    var checkpointsChecked = 0
    /// The grants `grant` events name whose stored file is the one signed (their grantees may cosign).
    var grants: [GrantReference] = []

    mutating func add(_ ref: ObjectRef, item: String) {
        sizes[ref.name] = ref.size
        users[ref.name, default: []].append(item)
    }
}

extension Archive {

    /// The outcome of `gc`.
    package struct CollectionReport: Sendable {
        /// Orphan objects removed (or that would be, with `dryRun`).
        package var objects: [String] = []
        /// Bytes they held.
        package var bytes: Int64 = 0
        /// Leftover temporary files removed.
        package var temporaryFiles = 0
        /// Links and special files found in the object store, left alone (never followed or removed).
        package var strays: [StrayEntry] = []
    }
}

extension ArchiveContext {
    /// Reads the whole journal, checking every signature, and collects every object it names.
    func referenceMap() throws -> ReferenceMap {
        var map = ReferenceMap()
        var ingested = Set<ItemID>()
        // Appends wait while the ledger is read, so tiles and checkpoints are seen as of one moment.
        let lock = try journal.lockForReading()
        defer { withExtendedLifetime(lock) {} }
        var audit = LedgerAudit(ledger)
        let (end, tail) = try journal.scan(from: .start) { entry in
            audit.add(entry.bytes)
            do {
                let event = try Event.parse(entry.bytes, publicKey: signingPublicKey)
                if let ref = event.annotation, let item = event.item, event.type != .import {
                    guard ingested.contains(item) else {
                        map.problems.append(
                            VerifyProblem(
                                kind: "bad-entry",
                                item: item.hex,
                                entry: entry.index,
                                detail: "a \(event.type) event for an item with no earlier ingest event"
                            )
                        )
                        return
                    }
                    map.add(ref, item: item.hex)
                }
                if let ref = event.sealed { map.add(ref, item: event.grant?.id ?? "-") }
                if let ref = event.notice { map.add(ref, item: event.grant?.id ?? "-") }
                if event.type == .grant, let reference = event.grant,
                    (try? indexedGrant(reference, seq: entry.index)) != nil
                {
                    map.grants.append(reference)
                } else if event.type == .grant, let reference = event.grant {
                    map.problems.append(
                        VerifyProblem(
                            kind: "grant-mismatch",
                            entry: entry.index,
                            detail: "grants/\(reference.id).grant is missing, altered, or not validly signed"
                        )
                    )
                }
                guard event.type == .ingest || event.type == .import else { return }
                if let ref = event.annotation, let item = event.item { map.add(ref, item: item.hex) }
                guard let item = event.item, let objects = event.objects else {
                    map.problems.append(
                        VerifyProblem(kind: "bad-entry", entry: entry.index, detail: "ingest event without objects")
                    )
                    return
                }
                guard ingested.insert(item).inserted else {
                    map.problems.append(
                        VerifyProblem(
                            kind: "replayed-entry",
                            item: item.hex,
                            entry: entry.index,
                            detail: "a second ingest event for the same item (a replayed entry)"
                        )
                    )
                    return
                }
                map.ingests.append((entry.index, event))
                for ref in [objects.meta] + [objects.content].compactMap({ $0 }) + (objects.chunks ?? []) {
                    map.add(ref, item: item.hex)
                }
                if let listRef = objects.chunkList {
                    map.add(listRef, item: item.hex)
                    guard let bytes = try store.read(listRef.name, limit: 64 << 20),
                        ObjectName(of: bytes) == listRef.name,
                        let refs = decodeChunkList(bytes)
                    else {
                        map.problems.append(
                            VerifyProblem(
                                kind: "corrupt",
                                object: listRef.name.hex,
                                item: item.hex,
                                detail: "chunk list is missing or corrupt; its chunks cannot be checked"
                            )
                        )
                        return
                    }
                    for ref in refs { map.add(ref, item: item.hex) }
                }
            } catch let error as ArchiveError {
                map.problems.append(VerifyProblem(kind: "bad-entry", entry: entry.index, detail: error.problem))
            }
        }
        map.entries = end.count
        map.tail = tail
        audit.finish(entries: end.count)
        map.problems += audit.problems
        map.warnings += audit.warnings
        map.checkpointSize = audit.hasCheckpoint ? audit.latestSize : nil
        map.checkpointsChecked = audit.checkpointCount
        if case .damaged(let offset) = tail {
            map.problems.append(
                VerifyProblem(
                    kind: "journal-damaged",
                    entry: end.count,
                    detail: "the journal is damaged at byte \(offset); later entries cannot be read"
                )
            )
        }
        return map
    }

    /// Checks that every item the index lists has its ingest event at the position the index gives.
    fileprivate func indexProblems(_ map: ReferenceMap) throws -> [VerifyProblem] {
        guard POSIX.statPath(indexPath) != nil else { return [] }
        let ingests = Dictionary(map.ingests.map { ($0.index, $0.event.item?.hex) }, uniquingKeysWith: { a, _ in a })
        return try ArchiveIndex(path: indexPath).itemPositions().compactMap { id, seq in
            ingests[seq] == id
                ? nil
                : VerifyProblem(
                    kind: "index-mismatch",
                    item: id,
                    entry: seq,
                    detail:
                        "the index lists item \(id) at log entry \(seq), which is not its ingest event; custody reindex rebuilds the index"
                )
        }
    }

    /// Runs `body` for each of `count` workers: on threads of their own when they wait on a network store,
    /// else on Dispatch's pool.
    static func forEachWorker(_ count: Int, onThreads: Bool, _ body: @escaping @Sendable (Int) -> Void) {
        if onThreads {
            BlockingWork.run(workers: count, body)
        } else {
            DispatchQueue.concurrentPerform(iterations: count, execute: body)
        }
    }

    /// Where the next `--sample` run starts (0 the first time, or when the file is unreadable).
    fileprivate func storedSampleStart() -> Int {
        guard let bytes = try? POSIX.readFile(root + "/verify-sample.json", limit: 1024),
            let stored = try? JSONDecoder().decode(StoredSampleStart.self, from: Data(bytes)),
            (0..<65536).contains(stored.next)
        else { return 0 }
        return stored.next
    }

    /// Checks one object against a listing of the store: presence and size (quick).
    fileprivate static func checkListed(
        _ name: ObjectName,
        expectedSize: Int64,
        listed: [ObjectName: Int64]
    ) -> (String, String)? {
        guard let size = listed[name] else { return ("missing", "object is missing") }
        return size == expectedSize
            ? nil : ("size-mismatch", "object is \(size) bytes, the journal says \(expectedSize)")
    }

    /// Checks one object's bytes against its name (standard and deep).
    ///
    /// - Returns: The problem's kind and detail, or `nil` when the object is sound.
    /// - Throws: ``ArchiveError`` when the store cannot be used (refused credentials, unreachable, no bucket).
    fileprivate static func check(
        _ name: ObjectName,
        expectedSize: Int64,
        in store: any ObjectStore
    ) throws -> (
        String, String
    )? {
        do {
            guard let bytes = try store.read(name, limit: max(Int(expectedSize), 0) + 1) else {
                return ("missing", "object is missing")
            }
            guard ObjectName(of: bytes) == name else { return ("corrupt", "content does not hash to its name") }
            let size = Int64(bytes.count)
            return size == expectedSize
                ? nil : ("size-mismatch", "object is \(size) bytes, the journal says \(expectedSize)")
        } catch let error as ArchiveError {
            switch error.code {
            case .notAuthorised, .temporary, .usage, .notFound: throw error
            default: return ("corrupt", error.problem)
            }
        } catch {
            return ("corrupt", "unreadable")
        }
    }

    /// Removes objects that no journal event names, and leftover temporary files. Needs exclusive access.
    ///
    /// - Throws: ``ArchiveError`` (damaged) when the journal cannot be read in full: then nothing is removed.
    package func collectGarbage(dryRun: Bool) throws -> Archive.CollectionReport {
        var map = try referenceMap()
        if case .torn = map.tail {
            // A torn tail is an append that never completed: set it aside first, as the next write would.
            try journal.repairTornTail()
            map = try referenceMap()
        }
        guard map.problems.isEmpty, map.tail == .clean else {
            throw ArchiveError(
                .damaged,
                "the journal has problems, so no object is provably unused",
                fix: "run custody verify first"
            )
        }
        var report = Archive.CollectionReport()
        var orphans: [(ObjectName, Int64)] = []
        try store.forEachObject { name, size in
            if map.sizes[name] == nil { orphans.append((name, size)) }
        }
        for (name, size) in orphans.sorted(by: { $0.0 < $1.0 }) {
            if !dryRun { try store.remove(name) }
            report.objects.append(name.hex)
            report.bytes += size
        }
        for temp in try store.leftoverTemporaryFiles() {
            if !dryRun { try store.removeTemporaryFile(temp) }
            report.temporaryFiles += 1
        }
        report.strays = try store.strayEntries()
        return report
    }
}

extension ArchiveContext {
    /// Every object an item uses, in the order its ingest event names them (meta, content, chunks).
    package func objectNames(of id: String) throws -> [ObjectName] {
        let event = try ingestEvent(of: resolveItem(id))
        var list: [ObjectRef] = []
        if let ref = event.objects?.chunkList, let bytes = try store.read(ref.name, limit: 64 << 20) {
            list = decodeChunkList(bytes) ?? []
        }
        return event.namedObjects(chunkList: list).map(\.name)
    }
}

extension Archive {
    /// One entry of the custody log, for `custody log`.
    package struct LogEntry: Sendable {
        /// Zero-based position in the log.
        package var index: Int
        /// The signed event.
        package var event: Event
        /// The exact leaf bytes.
        package var bytes: [UInt8]
    }
}

extension ArchiveContext {

    /// Calls `body` for log entries `from..<from+limit`, each with its signature checked.
    ///
    /// - Parameters:
    ///   - from: The first index.
    ///   - limit: How many entries at most.
    ///   - body: Receives each entry in order.
    /// - Throws: ``ArchiveError`` (damaged) at the first entry that is not a validly signed event.
    package func forEachLogEntry(from: Int = 0, limit: Int = .max, _ body: (Archive.LogEntry) throws -> Void) throws {
        var seen = 0
        let (end, tail) = try journal.scan(from: .start) { entry in
            guard entry.index >= from, seen < limit else { return }
            seen += 1
            do {
                try body(
                    Archive.LogEntry(
                        index: entry.index,
                        event: try Event.parse(entry.bytes, publicKey: signingPublicKey),
                        bytes: entry.bytes
                    )
                )
            } catch let error as ArchiveError where error.code == .damaged {
                throw ArchiveError(.damaged, "log entry \(entry.index): \(error.problem)", fix: error.fix)
            }
        }
        if case .damaged(let offset) = tail, seen < limit {
            throw ArchiveError(
                .damaged,
                "the log is damaged at entry \(end.count) (byte \(offset)); later entries cannot be read",
                fix: "run custody verify"
            )
        }
    }
}

extension ArchiveContext {

    /// Checks the archive; see ``VerifyMode``. Never changes anything.
    ///
    /// - Parameters:
    ///   - mode: How thoroughly to check.
    ///   - samplePercent: Re-hash only a rotating slice of about this share of the objects (standard mode): see
    ///     ``VerifySample``.
    ///   - progress: Called from worker threads with (what is counted, done, total) as the work advances:
    ///     `"objects"` first, then, in deep mode, `"items"`.
    /// - Returns: What was checked and every problem found.
    /// - Throws: ``ArchiveError`` when the journal cannot be read, when (deep) the passphrase is wrong, or when
    ///   the store cannot be used at all (refused credentials, unreachable): that is not damage to the evidence,
    ///   and the report would say nothing true.
    package func verify(
        mode: VerifyMode,
        samplePercent: Double? = nil,
        progress: (@Sendable (String, Int, Int) -> Void)? = nil
    ) throws -> VerifyReport {
        // Deep mode needs the secrets: ask once, up front, so a wrong passphrase is exit 77, not damage.
        let deepContext = mode == .deep ? try unlocked() : nil
        let map = try referenceMap()
        var report = VerifyReport(entries: map.entries, items: map.ingests.count, problems: map.problems)
        report.problems += identityProblems() + cosignatureProblems(grants: map.grants) + witnessStateProblems()
        let conflicts = conflictRecordProblems()
        report.problems += conflicts.problems
        report.warnings += conflicts.warnings
        report.warnings += map.warnings
        report.checkpointSize = map.checkpointSize
        report.checkpointsChecked = map.checkpointsChecked
        do {
            report.problems += try indexProblems(map)
        } catch let error as ArchiveError {
            // The index is derived data: a broken one is not damage to the evidence, and verify does not need it.
            report.warnings.append("the index was not checked: \(error.problem); custody reindex rebuilds it")
        }
        if case .torn(let offset, let count) = map.tail {
            report.warnings.append(
                "the journal ends with \(count) bytes of an interrupted append at byte \(offset); the next write sets them aside"
            )
        }
        var names = map.sizes.keys.sorted()
        let store = self.store
        let sizes = map.sizes
        let users = map.users
        var listed: [ObjectName: Int64]?
        if mode == .quick {
            // One listing of the store gives every name and size (one request per thousand objects on S3).
            var found: [ObjectName: Int64] = [:]
            try store.forEachObject { found[$0] = $1 }
            listed = found
        }
        if let samplePercent {
            let count = max(1, min(65536, Int((samplePercent / 100 * 65536).rounded(.up))))
            var sample = VerifySample(start: storedSampleStart(), count: count)
            sample.totalObjects = names.count
            names = names.filter(sample.contains)
            sample.objects = names.count
            report.sample = sample
        }
        let checked = names
        let listing = listed
        let found = Mutex<[VerifyProblem]>([])
        let failure = Mutex<ArchiveError?>(nil)
        let done = Atomic<Int>(0)
        let workerCount = store is S3ObjectStore ? 16 : max(1, ProcessInfo.processInfo.activeProcessorCount)
        Self.forEachWorker(workerCount, onThreads: store is S3ObjectStore) { worker in
            var local: [VerifyProblem] = []
            var index = worker
            while index < checked.count, failure.withLock({ $0 }) == nil {
                let name = checked[index]
                index += workerCount
                let expected = sizes[name] ?? -1
                do {
                    let problem =
                        try listing.map { Self.checkListed(name, expectedSize: expected, listed: $0) }
                        ?? Self.check(name, expectedSize: expected, in: store)
                    if let (kind, detail) = problem {
                        local.append(
                            VerifyProblem(kind: kind, object: name.hex, item: users[name]?.first, detail: detail)
                        )
                    }
                } catch let error as ArchiveError {
                    failure.withLock { $0 = $0 ?? error }
                } catch {
                    failure.withLock {
                        $0 = $0 ?? ArchiveError(.temporary, "cannot read the objects: \(error)", fix: "retry")
                    }
                }
                progress?("objects", done.wrappingAdd(1, ordering: .relaxed).newValue, checked.count)
            }
            let result = local
            found.withLock { $0 += result }
        }
        if let error = failure.withLock({ $0 }) { throw error }
        report.objectsChecked = names.count
        // Name every affected item: an object shared by several items damages all of them.
        for problem in found.withLock({ $0 }).sorted(by: { ($0.object ?? "") < ($1.object ?? "") }) {
            let affected =
                problem.object.flatMap { ObjectName(hex: $0) }.flatMap { users[$0] } ?? [problem.item].compactMap { $0 }
            for item in Set(affected).sorted() {
                var copy = problem
                copy.item = item
                report.problems.append(copy)
            }
        }
        if let listed {
            report.orphans += listed.keys.filter { sizes[$0] == nil }.map(\.hex)
        } else {
            try store.forEachObject { name, _ in
                if sizes[name] == nil { report.orphans.append(name.hex) }
            }
        }
        report.orphans.sort()
        report.orphans += try store.leftoverTemporaryFiles()
        report.warnings += try store.strayEntries().map {
            "\($0), left alone (custody never follows links inside the archive)"
        }
        if let sample = report.sample {
            // The next run goes on from here; written only once this run has checked its whole slice.
            try POSIX.writeFileAtomically(
                root + "/verify-sample.json",
                Array("{\"next\": \(sample.next)}\n".utf8),
                mode: 0o600,
                durable: false
            )
        }
        if mode == .deep {
            // Items are decrypted and checked in parallel (the keys are loaded above); problems keep log order.
            let damaged = Set(report.problems.compactMap(\.item))
            let ingests = map.ingests
            guard let unlocked = deepContext else { preconditionFailure("deep mode unlocks the archive first") }
            let deepProblems = Mutex<[Int: VerifyProblem]>([:])
            let checkedItems = Atomic<Int>(0)
            Self.forEachWorker(workerCount, onThreads: store is S3ObjectStore) { worker in
                var index = worker
                while index < ingests.count {
                    let event = ingests[index].event
                    if let item = event.item, !damaged.contains(item.hex),
                        let problem = unlocked.deepCheck(event, item: item)
                    {
                        deepProblems.withLock { $0[index] = problem }
                    }
                    progress?("items", checkedItems.wrappingAdd(1, ordering: .relaxed).newValue, ingests.count)
                    index += workerCount
                }
            }
            report.problems += deepProblems.withLock { $0 }.sorted { $0.key < $1.key }.map(\.value)
        }
        return report
    }

    /// `identity.json`: an identity file, validly self-signed, naming exactly the name, origin and keys of
    /// `archive.json` (so another body's valid identity swapped in is caught too).
    func identityProblems() -> [VerifyProblem] {
        do {
            _ = try identity()
            return []
        } catch let error as ArchiveError {
            return [VerifyProblem(kind: "identity-invalid", detail: error.problem)]
        } catch {
            return [VerifyProblem(kind: "identity-invalid", detail: "identity.json cannot be read")]
        }
    }

    /// Every signature line of every checkpoint this log stores (`log/checkpoint`, `journal/checkpoints/<size>`):
    /// besides the log's own signature, each must be a valid cosignature of that checkpoint by the body it names —
    /// a known witness (`bodies.json`, role `witness`) or the grantee of one of this archive's grants, the cosigners
    /// `witness attach` accepts.
    ///
    /// - Parameter grants: The grants this log's `grant` events name (their files already checked).
    /// - Returns: A `cosignature-invalid` or `cosignature-unknown` problem per bad line.
    func cosignatureProblems(grants: [GrantReference]) -> [VerifyProblem] {
        var cosigners: [String: [UInt8]] = [:]
        // The grantees' keys are read (from the grant files) only when a line names no known witness.
        var grantees: [String: [UInt8]]?
        func granteeKeys() -> [String: [UInt8]] {
            if let grantees { return grantees }
            var keys: [String: [UInt8]] = [:]
            for reference in grants {
                guard
                    let signed = try? POSIX.readFile(grantsDirectory + "/\(reference.id).grant", limit: Grant.maxBytes),
                    Grant.hash(signed) == reference.hash, let grant = try? Grant.parse(signed),
                    grant.granter.signingKey == config.signingKey,
                    let key = Encoding.bytes(base64: grant.grantee.signingKey), key.count == 32
                else { continue }
                keys[grant.grantee.origin] = key
            }
            grantees = keys
            return keys
        }
        var problems: [VerifyProblem] = []
        let bodies: [KnownBody]
        do {
            bodies = try knownBodies()
        } catch let error as ArchiveError {
            problems.append(
                VerifyProblem(kind: "cosignature-unknown", detail: "\(error.problem); no cosigner is known")
            )
            bodies = []
        } catch {
            bodies = []
        }
        for body in bodies where body.roles.contains(.witness) {
            if let key = body.signingKey { cosigners[body.identity.origin] = key }
        }
        var notes: [(path: String, note: String)] = []
        if let latest = try? ledger.latestCheckpoint() { notes.append(("log/checkpoint", latest.note)) }
        for size in ledger.checkpointSizes() {
            if let stored = try? ledger.storedCheckpoint(size: size) {
                notes.append(("journal/checkpoints/\(size)", stored.note))
            }
        }
        // (Notes that are not validly signed by the log are reported as checkpoint-invalid by the ledger audit.)
        for (path, note) in notes {
            guard let (body, signatures) = SignedNote.parse(note) else { continue }
            for signature in signatures {
                let name = TerminalText.escape(signature.name)
                if signature.name == config.origin {
                    if SignedNote.isValid(signature, body: body, name: config.origin, publicKey: ledger.logPublicKey) {
                        continue
                    }
                    problems.append(
                        VerifyProblem(
                            kind: "cosignature-invalid",
                            detail:
                                "\(path) holds a signature line under this log's own name that does not verify with its log key"
                        )
                    )
                } else if let key = cosigners[signature.name] ?? granteeKeys()[signature.name] {
                    guard SignedNote.cosignatureTime(signature, body: body, name: signature.name, publicKey: key) == nil
                    else { continue }
                    problems.append(
                        VerifyProblem(
                            kind: "cosignature-invalid",
                            detail:
                                "\(path) holds a cosignature by \(name) that does not verify with that witness's key over this checkpoint (forged or altered)"
                        )
                    )
                } else {
                    problems.append(
                        VerifyProblem(
                            kind: "cosignature-unknown",
                            detail:
                                "\(path) holds a signature line by \(name), which is no known witness of this archive (planted, or its witness was never added)"
                        )
                    )
                }
            }
        }
        return problems
    }

    /// What this archive stores about peers' logs: each `witness/<hex>.checkpoint` must be the state file of a known
    /// witness's log (its name the hash of that origin) and hold a checkpoint signed by that log's key.
    func witnessStateProblems() -> [VerifyProblem] {
        guard let names = try? listDirectory(witnessDirectory), !names.isEmpty else { return [] }
        var logs: [String: KnownBody] = [:]
        for body in (try? knownBodies()) ?? [] where body.roles.contains(.witness) {
            let path = witnessStatePath(origin: body.identity.origin)
            logs[String(path.dropFirst(witnessDirectory.count + 1))] = body
        }
        var problems: [VerifyProblem] = []
        for name in names.sorted() where name.hasSuffix(".checkpoint") {
            let shown = "witness/" + TerminalText.escape(name)
            guard let body = logs[name], let logKey = body.logKey else {
                problems.append(
                    VerifyProblem(
                        kind: "witness-state-invalid",
                        detail: "\(shown) is the state of no known witness's log (planted, or its body was never added)"
                    )
                )
                continue
            }
            let path = witnessDirectory + "/" + name
            let regular = POSIX.lstatPath(path).map { POSIX.isRegular($0.st_mode) } ?? false
            let bytes = regular ? try? POSIX.readFile(path, limit: Checkpoint.maxNoteBytes) : nil
            guard let bytes,
                Checkpoint.verified(
                    String(decoding: bytes, as: UTF8.self),
                    origin: body.identity.origin,
                    publicKey: logKey.publicKey
                ) != nil
            else {
                problems.append(
                    VerifyProblem(
                        kind: "witness-state-invalid",
                        detail:
                            "\(shown) is not a checkpoint of \(TerminalText.escape(body.identity.origin)) signed by its log key; witness cosign refuses that log until it is restored from a backup"
                    )
                )
                continue
            }
        }
        return problems
    }

    /// The fork evidence under `witness/conflicts/` (LEDGER.md section 12): each file must hold two checkpoints
    /// validly signed by the log key of one known witness. Evidence that is not validly signed is a problem (it
    /// would accuse a body of a fork it never signed); validly signed checkpoints that do not by themselves prove
    /// a fork (kept before proofs were saved with them) are a warning.
    ///
    /// - Returns: `witness-conflict-invalid` problems, and warnings.
    func conflictRecordProblems() -> (problems: [VerifyProblem], warnings: [String]) {
        let directory = witnessDirectory + "/conflicts"
        guard let names = try? listDirectory(directory), !names.isEmpty else { return ([], []) }
        var logs: [String: [UInt8]] = [:]
        for body in (try? knownBodies()) ?? [] where body.roles.contains(.witness) {
            if let key = body.logKey { logs[body.identity.origin] = key.publicKey }
        }
        var problems: [VerifyProblem] = []
        var warnings: [String] = []
        for name in names.sorted() {
            let shown = "witness/conflicts/" + TerminalText.escape(name)
            let path = directory + "/" + name
            guard let stat = POSIX.lstatPath(path), POSIX.isRegular(stat.st_mode),
                let bytes = try? POSIX.readFile(path, limit: 3 * Checkpoint.maxNoteBytes),
                let text = String(validating: bytes, as: UTF8.self)
            else {
                problems.append(
                    VerifyProblem(
                        kind: "witness-conflict-invalid",
                        detail: "\(shown) is not a readable conflict record"
                    )
                )
                continue
            }
            // "<body>\n\n<signatures>\n" "\n" ["old m\n<hashes>\n" "\n"] "<body>\n\n<signatures>\n"
            let parts = text.components(separatedBy: "\n\n")
            guard parts.count == 4 || parts.count == 5,
                let origin = parts[0].split(separator: "\n", maxSplits: 1).first.map(String.init),
                let key = logs[origin],
                let earlier = Checkpoint.verified(parts[0] + "\n\n" + parts[1] + "\n", origin: origin, publicKey: key),
                let later = Checkpoint.verified(
                    parts[parts.count - 2] + "\n\n" + parts[parts.count - 1],
                    origin: origin,
                    publicKey: key
                )
            else {
                problems.append(
                    VerifyProblem(
                        kind: "witness-conflict-invalid",
                        detail:
                            "\(shown) does not hold two checkpoints signed by the log key of a known witness: it is no evidence of a fork (altered or planted)"
                    )
                )
                continue
            }
            var proven = earlier.size == later.size && earlier.root != later.root
            if parts.count == 5, earlier.size < later.size,
                let (oldSize, proof, _) = try? Self.parseWitnessRequest(parts[2] + "\n\n"), oldSize == earlier.size,
                case .inconsistent = Merkle.consistency(
                    proof,
                    first: earlier.size,
                    second: later.size,
                    firstRoot: earlier.root,
                    secondRoot: later.root
                )
            {
                proven = true
            }
            if !proven {
                warnings.append(
                    "\(shown) holds two validly signed checkpoints of \(TerminalText.escape(origin)) that do not by themselves prove a fork (no proof was kept with them)"
                )
            }
        }
        return (problems, warnings)
    }
}

extension Archive.Unlocked {

    /// Decrypts one item completely and checks its SHA-256 and evidence commitment.
    func deepCheck(_ event: Event, item: ItemID) -> VerifyProblem? {
        do {
            let metadata = try self.metadata(of: event)
            // An item imported with metadata only has no content here to check.
            if event.type == .import, event.objects?.content == nil { return nil }
            let manifest = try contentManifest(of: event)
            var hasher = SHA256Hasher()
            var remaining = manifest.size
            let convergence = keys.convergence
            let ahead = chunkReadAhead(manifest)
            for (index, chunk) in manifest.chunks.enumerated() {
                var plaintext = try decryptChunk(chunk, item: item, readAhead: ahead, at: index)
                // Imported chunks were keyed with the granter's convergence secret, which never leaves it.
                let imported = event.type == .import
                let derived =
                    imported
                    ? [] : plaintext.withUnsafeBytes { ChunkCipher.key(for: $0, convergenceSecret: convergence) }
                guard let recorded = Encoding.bytes(base64: chunk.key), imported || constantTimeEqual(derived, recorded)
                else {
                    return VerifyProblem(
                        kind: "chunk-key-mismatch",
                        object: chunk.object.hex,
                        item: item.hex,
                        detail: "the chunk's key is not the convergent key of its plaintext"
                    )
                }
                let take = Int(min(Int64(plaintext.count), remaining))
                plaintext.withUnsafeBytes { hasher.update(UnsafeRawBufferPointer(rebasing: $0[0..<take])) }
                wipe(&plaintext)
                remaining -= Int64(take)
            }
            let digest = hasher.finalize()
            guard remaining == 0, Encoding.hex(digest) == metadata.sha256, manifest.size == metadata.size else {
                return VerifyProblem(
                    kind: "sha256-mismatch",
                    item: item.hex,
                    detail: "decrypted content does not match its SHA-256"
                )
            }
            guard let nonce = Encoding.bytes(base64: metadata.commitmentNonce),
                Event.commitment(nonce: nonce, sha256: digest, size: metadata.size) == event.commitment
            else {
                return VerifyProblem(
                    kind: "commitment-mismatch",
                    item: item.hex,
                    detail: "the ledger's evidence commitment does not open to this content"
                )
            }
            return nil
        } catch let error as ArchiveError {
            if error.code == .notAuthorised {
                return VerifyProblem(kind: "undecryptable", item: item.hex, detail: error.problem)
            }
            return VerifyProblem(kind: "undecryptable", item: item.hex, detail: error.problem)
        } catch {
            return VerifyProblem(kind: "undecryptable", item: item.hex, detail: "decryption failed")
        }
    }
}

/// The `--sample` rotation kept in `verify-sample.json`.
private struct StoredSampleStart: Decodable { var next: Int }
