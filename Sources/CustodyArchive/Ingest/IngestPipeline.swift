import CustodyCrypto
import CustodyStorage
import Synchronization

/// The outcome of ``IngestPipeline/run(_:options:expected:progress:)``.
struct IngestOutcome: Sendable {
    /// Items committed, in the order of the files.
    var items: [IngestedItem] = []
    /// Files refused because their SHA-256 differs from the expected one.
    var refused: [ScanProblem] = []
    /// Files found changed when opened, skipped (``IngestOptions/skipProblems``).
    var skipped: [ScanProblem] = []
    /// Files already held as items (same SHA-256, path and case), not ingested again.
    var held: [HeldFile] = []
}

/// Reads, encrypts, stages and commits files, in batches, with both cores busy.
///
/// Structured concurrency throughout: a batch's small files are child tasks of a task group of bounded width
/// (each reads, hashes and encrypts its file in one piece of blocking work, then stages its objects); a large
/// file is read in order by the batch's own task, a chunk at a time on the blocking-work pool, while a task
/// group of the same width encrypts and stages its chunks. At most about `2 × width` chunks are in memory.
/// While a batch is being read, the previous one commits (objects made durable and visible, then its events
/// appended to the journal): a child task, always awaited. Nothing outlives ``run(_:options:expected:progress:)``.
///
/// Failure: batches before the one that failed are committed, it and later ones are not, and every object a
/// failed batch staged is discarded.
struct IngestPipeline: Sendable {
    let archive: any EventRecording
    let context: ItemSealer.Context
    let skipProblems: Bool
    /// Files (or chunks of a large file) in flight at once.
    let width: Int

    private var store: ArchiveObjects { archive.store }

    /// Every object a batch has staged, so that whatever fails, all of them are discarded.
    private final class BatchStaging: Sendable {
        private let staged = Mutex<[StagedObject]>([])

        /// Stages `object`, remembering it; `nil` when it is stored already.
        func stage(_ object: SealedObject, in store: ArchiveObjects) async throws -> StagedObject? {
            guard let done = try await store.stage(object.bytes, as: object.ref.name, checkExisting: object.mayExist)
            else { return nil }
            staged.withLock { $0.append(done) }
            return done
        }

        /// Stages `objects` in one go (``ObjectStore/stage(_:)``), remembering them; returns those staged.
        func stage(_ objects: [SealedObject], in store: ArchiveObjects) async throws -> [StagedObject] {
            let writes = objects.map { ObjectWrite($0.bytes, as: $0.ref.name, checkExisting: $0.mayExist) }
            let done = try await store.stage(writes).compactMap { $0 }
            staged.withLock { $0 += done }
            return done
        }

        var all: [StagedObject] { staged.withLock { $0 } }
    }

    /// What became of one file of a batch.
    private enum FileOutcome: Sendable {
        case sealed(SealedItem, staged: [StagedObject])
        /// Its SHA-256 is not the expected one: its objects are discarded.
        case refused(ScanProblem, staged: [StagedObject])
        /// It was not the file scanned when opened, and problems are skipped.
        case changed(ScanProblem)
        /// It is held already (resume): its objects are discarded.
        case held(HeldFile, staged: [StagedObject])
    }

    /// A batch read, encrypted and staged, ready to commit.
    private struct StagedBatch: Sendable {
        var items: [SealedItem] = []
        var staged: [StagedObject] = []
        /// Objects of refused files, discarded once the batch is committed.
        var orphans: [StagedObject] = []
        var refused: [ScanProblem] = []
        var skipped: [ScanProblem] = []
        var held: [HeldFile] = []
    }

    /// Ingests `files` in batches of ``IngestOptions/batchItems`` files or ``IngestOptions/batchBytes`` bytes.
    ///
    /// - Parameters:
    ///   - files: The files, as scanned.
    ///   - options: The batch sizes.
    ///   - expected: The SHA-256 a file must have, if any.
    ///   - held: Where to look for items already held (resume); `nil` to ingest every file.
    ///   - allOrNothing: Commit nothing unless every file's SHA-256 is the expected one: every batch is staged
    ///     first, and all of them are committed, or all discarded.
    ///   - progress: Called as each file is started, from this task.
    /// - Returns: The items committed, and the files refused or skipped.
    /// - Throws: ``ArchiveError``; after a batch committed, the error says how many items are in.
    func run(
        _ files: [SourceFile],
        options: IngestOptions,
        expected: (SourceFile) -> String?,
        held: HeldItems?,
        allOrNothing: Bool,
        progress: (IngestProgress) -> Void
    ) async throws -> IngestOutcome {
        var outcome = IngestOutcome()
        let totalBytes = files.reduce(Int64(0)) { $0 + $1.size }
        var started = (files: 0, bytes: Int64(0))
        var waiting: StagedBatch?
        var deferred: [StagedBatch] = []
        for batch in Self.batches(files, options: options) {
            let previous = waiting
            waiting = nil
            // The previous batch commits while this one is read: a child task, awaited below whatever happens.
            async let committing = commit(previous)
            let staged: Result<StagedBatch, ArchiveError>
            do {
                staged = .success(
                    try await stage(batch, expected: expected, held: held) { source in
                        started.files += 1
                        started.bytes += source.size
                        progress(
                            IngestProgress(
                                files: started.files,
                                totalFiles: files.count,
                                bytes: started.bytes,
                                totalBytes: totalBytes
                            )
                        )
                    }
                )
            } catch {
                staged = .failure(ArchiveError(error))
            }
            do {
                outcome.items += try await committing
            } catch {
                if case .success(let batch) = staged { await store.discard(batch.staged + batch.orphans) }
                throw Self.failure(ArchiveError(error), after: outcome.items.count)
            }
            switch staged {
            case .success(let batch):
                outcome.refused += batch.refused
                outcome.skipped += batch.skipped
                outcome.held += batch.held
                if allOrNothing { deferred.append(batch) } else { waiting = batch }
            case .failure(let error):
                for batch in deferred { await store.discard(batch.staged + batch.orphans) }
                throw Self.failure(error, after: outcome.items.count)
            }
        }
        if allOrNothing {
            guard outcome.refused.isEmpty else {
                for batch in deferred { await store.discard(batch.staged + batch.orphans) }
                return outcome
            }
            for (position, batch) in deferred.enumerated() {
                do {
                    outcome.items += try await commit(batch)
                } catch {
                    for later in deferred[(position + 1)...] { await store.discard(later.staged + later.orphans) }
                    throw Self.failure(ArchiveError(error), after: outcome.items.count)
                }
            }
            return outcome
        }
        do {
            outcome.items += try await commit(waiting)
        } catch {
            throw Self.failure(ArchiveError(error), after: outcome.items.count)
        }
        return outcome
    }

    /// `files` cut into batches, in order, each with the files' positions.
    private static func batches(
        _ files: [SourceFile],
        options: IngestOptions
    ) -> [[(order: Int, source: SourceFile)]] {
        var batches: [[(order: Int, source: SourceFile)]] = [[]]
        var bytes: Int64 = 0
        for (order, source) in files.enumerated() {
            if batches[batches.count - 1].count >= options.batchItems || bytes >= options.batchBytes {
                batches.append([])
                bytes = 0
            }
            batches[batches.count - 1].append((order, source))
            bytes += source.size
        }
        return batches
    }

    /// The error of a failed batch, saying what earlier batches left in the archive.
    private static func failure(_ error: ArchiveError, after committed: Int) -> ArchiveError {
        guard committed > 0 else { return error }
        return ArchiveError(
            error.reason,
            error.problem + " (\(committed) item(s) of earlier batches were ingested before this)",
            fix: error.fix + "; custody ls shows what is in"
        )
    }

    /// Reads, encrypts and stages one batch; on failure, discards everything it staged.
    private func stage(
        _ batch: [(order: Int, source: SourceFile)],
        expected: (SourceFile) -> String?,
        held: HeldItems?,
        starting: (SourceFile) -> Void
    ) async throws -> StagedBatch {
        let staging = BatchStaging()
        do {
            let outcomes = try await withThrowingTaskGroup(of: (Int, FileOutcome).self) { group in
                var outcomes: [(Int, FileOutcome)] = []
                var inFlight = 0
                for (order, source) in batch {
                    let hash = expected(source)
                    starting(source)
                    if source.size < Int64(context.chunkSize) {
                        if inFlight >= width, let done = try await group.next() {
                            outcomes.append(done)
                            inFlight -= 1
                        }
                        group.addTask {
                            (order, try await self.ingest(source, order: order, expected: hash, held: held, staging))
                        }
                        inFlight += 1
                    } else {
                        // A large file: read in order here while its chunks are encrypted in parallel.
                        outcomes.append(
                            (order, try await ingest(source, order: order, expected: hash, held: held, staging))
                        )
                    }
                }
                for try await done in group { outcomes.append(done) }
                return outcomes
            }
            var staged = StagedBatch()
            for (_, outcome) in outcomes.sorted(by: { $0.0 < $1.0 }) {
                switch outcome {
                case .sealed(let item, let objects):
                    staged.items.append(item)
                    staged.staged += objects
                case .refused(let problem, let objects):
                    staged.refused.append(problem)
                    staged.orphans += objects
                case .changed(let problem):
                    staged.skipped.append(problem)
                case .held(let file, let objects):
                    staged.held.append(file)
                    staged.orphans += objects
                }
            }
            return staged
        } catch {
            await store.discard(staging.all)
            throw error
        }
    }

    /// Reads, encrypts and stages one file, then seals and stages its parts.
    private func ingest(
        _ source: SourceFile,
        order: Int,
        expected: String?,
        held: HeldItems?,
        _ staging: BatchStaging
    ) async throws -> FileOutcome {
        let (chunkSize, convergence, claims) = (context.chunkSize, context.convergence, context.extractClaims)
        let reader: ChunkReader
        var chunks: [EncryptedChunk]
        var staged: [StagedObject] = []
        do {
            if source.size < Int64(chunkSize) {
                // A small file: read and hashed in one piece of blocking work, encrypted here; its objects are
                // staged together once it is sealed (below).
                let read = try await BlockingWork.run {
                    let reader = try ChunkReader(
                        source: source,
                        chunkSize: chunkSize,
                        convergence: convergence,
                        claims: claims
                    )
                    var plaintexts: [(index: Int, plaintext: [UInt8])] = []
                    while let next = try reader.next() { plaintexts.append(next) }
                    return (reader, plaintexts)
                }
                reader = read.0
                chunks = read.1.map { ItemSealer.encryptChunk($0.plaintext, index: $0.index, convergence: convergence) }
            } else {
                reader = try await BlockingWork.run {
                    try ChunkReader(source: source, chunkSize: chunkSize, convergence: convergence, claims: claims)
                }
                (chunks, staged) = try await encryptLarge(reader, staging)
            }
        } catch let changed as ChangedSinceScan {
            guard skipProblems else {
                throw ArchiveError(
                    .changedSinceScan,
                    "cannot ingest \(changed.problem.path): \(changed.problem.reason)",
                    fix: "find out what is changing the files, then ingest again (or pass --skip-problems)"
                )
            }
            return .changed(changed.problem)
        } catch {
            throw ArchiveError(error)
        }
        let read = reader.summary()
        let sha256 = Encoding.hex(read.sha256)
        if let held, expected == nil || expected == sha256, let id = try held.item(sha256: sha256, for: source) {
            return .held(HeldFile(path: source.displayPath, id: id), staged: staged)
        }
        switch try ItemSealer.seal(
            source,
            order: order,
            chunks: chunks,
            read: read,
            claims: reader.claims(),
            expected: expected,
            context: context
        ) {
        case .failure(let problem):
            return .refused(problem, staged: staged)
        case .success(let item):
            // A small file's chunks (still holding their bytes) go with its parts, in one staging.
            let pending = chunks.filter { !$0.object.bytes.isEmpty }.map(\.object)
            staged += try await staging.stage(pending + item.parts, in: store)
            var item = item
            item.parts = []
            return .sealed(item, staged: staged)
        }
    }

    /// Reads a large file in order, a chunk at a time, while up to ``width`` chunks are encrypted and staged.
    ///
    /// - Returns: Its chunks in order (their bytes dropped once staged) and what was staged.
    private func encryptLarge(
        _ reader: ChunkReader,
        _ staging: BatchStaging
    ) async throws -> ([EncryptedChunk], [StagedObject]) {
        let (convergence, store) = (context.convergence, store)
        return try await withThrowingTaskGroup(of: (EncryptedChunk, StagedObject?).self) { group in
            var chunks: [EncryptedChunk] = []
            var staged: [StagedObject] = []
            func collect(_ done: (EncryptedChunk, StagedObject?)) {
                chunks.append(done.0)
                if let object = done.1 { staged.append(object) }
            }
            var inFlight = 0
            while let next = try await BlockingWork.run({ try reader.next() }) {
                if inFlight >= width, let done = try await group.next() {
                    collect(done)
                    inFlight -= 1
                }
                group.addTask {
                    var chunk = ItemSealer.encryptChunk(next.plaintext, index: next.index, convergence: convergence)
                    let done = try await staging.stage(chunk.object, in: store)
                    chunk.object.bytes = []
                    return (chunk, done)
                }
                inFlight += 1
            }
            for try await done in group { collect(done) }
            return (chunks.sorted { $0.index < $1.index }, staged)
        }
    }

    /// Commits a staged batch: its objects durable and visible, then its events in the journal.
    ///
    /// - Returns: The batch's items as reported, in file order.
    private func commit(_ batch: StagedBatch?) async throws -> [IngestedItem] {
        guard let batch else { return [] }
        guard !batch.items.isEmpty else {
            await store.discard(batch.staged + batch.orphans)
            return []
        }
        do {
            try await store.commit(batch.staged)
        } catch {
            await store.discard(batch.staged + batch.orphans)
            throw error
        }
        await store.discard(batch.orphans)
        CrashPoint.hit("objects-committed")
        var known: [ItemID: ItemMetadata] = [:]
        for item in batch.items { known[item.metadata.item] = item.metadata }
        let duplicates = try await archive.recordEvents(batch.items.map(\.event), known: known)
        return batch.items.map { item in
            IngestedItem(
                id: item.metadata.item,
                path: item.source.path,
                sha256: item.metadata.sha256,
                size: item.metadata.size,
                duplicateOf: duplicates[item.metadata.item.hex] ?? nil
            )
        }
    }
}
