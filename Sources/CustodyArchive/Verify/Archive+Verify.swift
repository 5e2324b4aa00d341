import CustodyCrypto
import CustodyStorage
import Foundation
import Synchronization

extension ArchiveContext {
    /// Reads the whole journal, checking every signature, and collects every object it names.
    func referenceMap() async throws -> ReferenceMap {
        var map = ReferenceMap()
        // Chunk lists are objects: read once the journal has been scanned (the scan holds the journal lock).
        var chunkLists: [(ref: ObjectRef, item: ItemID)] = []
        var ingested = Set<ItemID>()
        // Appends wait while the ledger is read, so tiles and checkpoints are seen as of one moment.
        let lock = try journal.lockForReading()
        defer { withExtendedLifetime(lock) {} }
        var audit = LedgerAudit(ledger)
        // The roster as the log builds it: each event is checked against the roster in force at its position.
        var roster = Roster()
        let (end, tail) = try journal.scan(from: .start) { entry in
            audit.add(entry.bytes)
            do {
                let (event, envelope) = try Event.parseEnvelope(entry.bytes, publicKey: signingPublicKey)
                if event.type.changesRoster {
                    do throws(Roster.Problem) {
                        try roster.apply(event, envelope: envelope, at: entry.index, origin: config.origin)
                    } catch {
                        map.problems.append(VerifyProblem(kind: error.kind, entry: entry.index, detail: error.detail))
                    }
                } else if let problem = roster.check(event, envelope: envelope, at: entry.index) {
                    map.problems.append(
                        VerifyProblem(
                            kind: problem.kind,
                            item: event.item?.hex,
                            entry: entry.index,
                            detail: problem.detail
                        )
                    )
                }
                if event.type == .keyRotation { map.rotations.append((entry.index, event)) }
                if event.type == .rewrap {
                    guard let item = event.item, ingested.contains(item), let keys = event.keys, !map.rotations.isEmpty
                    else {
                        map.problems.append(
                            VerifyProblem(
                                kind: .keyRotationInvalid,
                                item: event.item?.hex,
                                entry: entry.index,
                                detail:
                                    "a rewrap event without keys, before any key rotation, or for an item not ingested before it"
                            )
                        )
                        return
                    }
                    map.rewraps[item] = keys
                }
                if let ref = event.annotation, let item = event.item, event.type != .import {
                    guard ingested.contains(item) else {
                        map.problems.append(
                            VerifyProblem(
                                kind: .badEntry,
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
                            kind: .grantMismatch,
                            entry: entry.index,
                            detail: "grants/\(reference.id).grant is missing, altered, or not validly signed"
                        )
                    )
                }
                guard event.type == .ingest || event.type == .import else { return }
                if let ref = event.annotation, let item = event.item { map.add(ref, item: item.hex) }
                guard let item = event.item, let objects = event.objects else {
                    map.problems.append(
                        VerifyProblem(kind: .badEntry, entry: entry.index, detail: "ingest event without objects")
                    )
                    return
                }
                guard ingested.insert(item).inserted else {
                    map.problems.append(
                        VerifyProblem(
                            kind: .replayedEntry,
                            item: item.hex,
                            entry: entry.index,
                            detail: "a second ingest event for the same item (a replayed entry)"
                        )
                    )
                    return
                }
                map.ingests.append((entry.index, event))
                if let by = event.by, roster.current(by)?.role == .fieldStaff { map.ownConvergence.insert(entry.index) }
                for ref in [objects.meta] + [objects.content].compactMap({ $0 }) + (objects.chunks ?? []) {
                    map.add(ref, item: item.hex)
                }
                if let listRef = objects.chunkList {
                    map.add(listRef, item: item.hex)
                    chunkLists.append((listRef, item))
                }
            } catch let error as ArchiveError {
                map.problems.append(VerifyProblem(kind: .badEntry, entry: entry.index, detail: error.problem))
            }
        }
        for (listRef, item) in chunkLists {
            guard let bytes = try await store.read(listRef.name, limit: 64 << 20),
                ObjectName(of: bytes) == listRef.name,
                let refs = decodeChunkList(bytes)
            else {
                map.problems.append(
                    VerifyProblem(
                        kind: .corrupt,
                        object: listRef.name.hex,
                        item: item.hex,
                        detail: "chunk list is missing or corrupt; its chunks cannot be checked"
                    )
                )
                continue
            }
            for ref in refs { map.add(ref, item: item.hex) }
        }
        map.problems += rotationProblems(map.rotations)
        // Items ingested before the latest rotation were keyed by an earlier convergence secret, now gone.
        if let last = map.rotations.last?.index {
            for ingest in map.ingests where ingest.index < last && ingest.event.type == .ingest {
                map.ownConvergence.insert(ingest.index)
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
                    kind: .journalDamaged,
                    entry: end.count,
                    detail: "the journal is damaged at byte \(offset); later entries cannot be read"
                )
            )
        }
        return map
    }

    /// Checks the chain of key rotations: each replaces the box key the one before introduced, and `archive.json`
    /// names the latest as its box key and the earlier ones, in order, as its retired keys.
    fileprivate func rotationProblems(_ rotations: [(index: Int, event: Event)]) -> [VerifyProblem] {
        var problems: [VerifyProblem] = []
        func problem(_ entry: Int?, _ detail: String) {
            problems.append(VerifyProblem(kind: .keyRotationInvalid, entry: entry, detail: detail))
        }
        var previous: String?
        for (index, event) in rotations {
            guard let box = event.boxKey, let replaced = event.previousBoxKey,
                Encoding.bytes(base64: box)?.count == 32, Encoding.bytes(base64: replaced)?.count == 32, box != replaced
            else {
                problem(index, "a key-rotation event without two distinct 32-byte box keys")
                continue
            }
            if let previous, previous != replaced {
                problem(index, "the key rotation replaces a box key that the previous rotation did not introduce")
            }
            previous = box
        }
        let retired = rotations.compactMap(\.event.previousBoxKey)
        if let latest = rotations.last?.event.boxKey, latest != config.boxKey {
            problem(rotations.last?.index, "archive.json names another box key than the log's latest key rotation")
        }
        if (config.retiredBoxKeys ?? []) != retired {
            problem(nil, "archive.json's retired box keys are not the ones the log's key rotations replaced")
        }
        return problems
    }

    /// Checks that every item the index lists has its ingest event at the position the index gives.
    fileprivate func indexProblems(_ map: ReferenceMap) throws -> [VerifyProblem] {
        guard POSIX.statPath(indexPath) != nil else { return [] }
        let ingests = Dictionary(map.ingests.map { ($0.index, $0.event.item?.hex) }, uniquingKeysWith: { a, _ in a })
        return try ArchiveIndex(path: indexPath).itemPositions().compactMap { id, seq in
            ingests[seq] == id
                ? nil
                : VerifyProblem(
                    kind: .indexMismatch,
                    item: id,
                    entry: seq,
                    detail:
                        "the index lists item \(id) at log entry \(seq), which is not its ingest event; custody reindex rebuilds the index"
                )
        }
    }

    /// Where the next `--sample` run starts (0 the first time, or when the file is unreadable).
    fileprivate func storedSampleStart() -> Int {
        guard let bytes = try? ArchiveFiles.read(root + "/verify-sample.json", limit: 1024),
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
    ) -> (VerifyProblem.Kind, String)? {
        guard let size = listed[name] else { return (.missing, "object is missing") }
        return size == expectedSize
            ? nil : (.sizeMismatch, "object is \(size) bytes, the journal says \(expectedSize)")
    }

    /// Checks one object's bytes against its name (standard and deep).
    ///
    /// - Returns: The problem's kind and detail, or `nil` when the object is sound.
    /// - Throws: ``ArchiveError`` when the store cannot be used (refused credentials, unreachable, no bucket).
    fileprivate static func check(
        _ name: ObjectName,
        expectedSize: Int64,
        in store: ArchiveObjects
    ) async throws -> (VerifyProblem.Kind, String)? {
        do {
            guard let bytes = try await store.read(name, limit: max(Int(expectedSize), 0) + 1) else {
                return (.missing, "object is missing")
            }
            guard ObjectName(of: bytes) == name else { return (.corrupt, "content does not hash to its name") }
            let size = Int64(bytes.count)
            return size == expectedSize
                ? nil : (.sizeMismatch, "object is \(size) bytes, the journal says \(expectedSize)")
        } catch let error as ArchiveError {
            switch error.code {
            case .notAuthorised, .temporary, .usage, .notFound: throw error
            default: return (.corrupt, error.problem)
            }
        } catch {
            return (.corrupt, "unreadable")
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
    ) async throws -> VerifyReport {
        // Deep mode needs the secrets: ask once, up front, so a wrong passphrase is exit 77, not damage.
        let deepContext = mode == .deep ? try unlocked() : nil
        let map = try await referenceMap()
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
            listed = try await store.allObjectSizes()
        }
        if let samplePercent {
            let count = max(1, min(65536, Int((samplePercent / 100 * 65536).rounded(.up))))
            var sample = VerifySample(start: storedSampleStart(), count: count)
            sample.totalObjects = names.count
            names = names.filter(sample.contains)
            sample.objects = names.count
            report.sample = sample
        }
        let found = Mutex<[VerifyProblem]>([])
        let done = Atomic<Int>(0)
        let total = names.count
        @Sendable func note(_ name: ObjectName, _ problem: (VerifyProblem.Kind, String)?) {
            if let (kind, detail) = problem {
                let problem = VerifyProblem(kind: kind, object: name.hex, item: users[name]?.first, detail: detail)
                found.withLock { $0.append(problem) }
            }
            progress?("objects", done.wrappingAdd(1, ordering: .relaxed).newValue, total)
        }
        if let listed {
            for name in names { note(name, Self.checkListed(name, expectedSize: sizes[name] ?? -1, listed: listed)) }
        } else {
            // Every object read and re-hashed, as many at once as the store serves well; the first store
            // failure (refused credentials, unreachable) stops the rest and is thrown.
            do {
                try await names.concurrentForEach(width: store.checkConcurrency) { name in
                    note(name, try await Self.check(name, expectedSize: sizes[name] ?? -1, in: store))
                }
            } catch {
                throw ArchiveError(error)
            }
        }
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
        let stored: [ObjectName: Int64]
        if let listed { stored = listed } else { stored = try await store.allObjectSizes() }
        report.orphans += stored.keys.filter { sizes[$0] == nil }.map(\.hex)
        report.orphans.sort()
        let maintenance = try await store.maintenanceReport()
        report.orphans += maintenance.leftovers.map(\.id)
        report.warnings += maintenance.strays.map {
            "\($0), left alone (custody never follows links inside the archive)"
        }
        if let sample = report.sample {
            // The next run goes on from here; written only once this run has checked its whole slice.
            try ArchiveFiles.writeAtomically(
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
            let ownConvergence = map.ownConvergence
            let rewraps = map.rewraps
            guard let unlocked = deepContext else { preconditionFailure("deep mode unlocks the archive first") }
            let deepProblems = Mutex<[Int: VerifyProblem]>([:])
            let checkedItems = Atomic<Int>(0)
            // deepCheck reports every failure as a problem of its item: nothing here throws.
            try? await Array(ingests.indices).concurrentForEach(width: store.checkConcurrency) { index in
                var event = ingests[index].event
                // The keys as last wrapped: after a rotation, to the new box key.
                if let item = event.item, let keys = rewraps[item] { event.keys = keys }
                if let item = event.item, !damaged.contains(item.hex),
                    let problem = await unlocked.deepCheck(
                        event,
                        item: item,
                        ownConvergence: ownConvergence.contains(ingests[index].index)
                    )
                {
                    deepProblems.withLock { $0[index] = problem }
                }
                progress?("items", checkedItems.wrappingAdd(1, ordering: .relaxed).newValue, ingests.count)
            }
            report.problems += deepProblems.withLock { $0 }.sorted { $0.key < $1.key }.map(\.value)
        }
        return report
    }
}

extension Archive.Unlocked {

    /// Decrypts one item completely and checks its SHA-256 and evidence commitment, and (unless the chunks were
    /// keyed by a secret this archive does not hold: imported, or ingested by field staff) each chunk's key.
    func deepCheck(_ event: Event, item: ItemID, ownConvergence: Bool = false) async -> VerifyProblem? {
        do {
            let metadata = try await self.metadata(of: event)
            // An item imported with metadata only has no content here to check.
            if event.type == .import, event.objects?.content == nil { return nil }
            let manifest = try await contentManifest(of: event)
            var hasher = SHA256Hasher()
            var remaining = manifest.size
            let convergence = keys.convergence
            // Imported chunks were keyed with the granter's convergence secret, which never leaves it; field staff's
            // with their own.
            let imported = event.type == .import || ownConvergence
            var keyMismatch: ObjectName?
            try await forEachChunk(of: manifest, item: item) { chunk, plaintext in
                let derived =
                    imported
                    ? [] : plaintext.withUnsafeBytes { ChunkCipher.key(for: $0, convergenceSecret: convergence) }
                guard let recorded = Encoding.bytes(base64: chunk.key), imported || constantTimeEqual(derived, recorded)
                else {
                    keyMismatch = chunk.object
                    return false
                }
                let take = Int(min(Int64(plaintext.count), remaining))
                plaintext.withUnsafeBytes { hasher.update(UnsafeRawBufferPointer(rebasing: $0[0..<take])) }
                remaining -= Int64(take)
                return true
            }
            if let keyMismatch {
                return VerifyProblem(
                    kind: .chunkKeyMismatch,
                    object: keyMismatch.hex,
                    item: item.hex,
                    detail: "the chunk's key is not the convergent key of its plaintext"
                )
            }
            let digest = hasher.finalize()
            guard remaining == 0, Encoding.hex(digest) == metadata.sha256, manifest.size == metadata.size else {
                return VerifyProblem(
                    kind: .sha256Mismatch,
                    item: item.hex,
                    detail: "decrypted content does not match its SHA-256"
                )
            }
            guard let nonce = Encoding.bytes(base64: metadata.commitmentNonce),
                Event.commitment(nonce: nonce, sha256: digest, size: metadata.size) == event.commitment
            else {
                return VerifyProblem(
                    kind: .commitmentMismatch,
                    item: item.hex,
                    detail: "the ledger's evidence commitment does not open to this content"
                )
            }
            return nil
        } catch let error as ArchiveError {
            if error.code == .notAuthorised {
                return VerifyProblem(kind: .undecryptable, item: item.hex, detail: error.problem)
            }
            return VerifyProblem(kind: .undecryptable, item: item.hex, detail: error.problem)
        } catch {
            return VerifyProblem(kind: .undecryptable, item: item.hex, detail: "decryption failed")
        }
    }
}

/// The `--sample` rotation kept in `verify-sample.json`.
private struct StoredSampleStart: Decodable { var next: Int }
