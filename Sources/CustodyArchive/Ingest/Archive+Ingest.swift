import CustodyCrypto
import Dispatch
import Foundation
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// What `ingest` is asked to do beyond the paths.
package struct IngestOptions: Sendable {
    /// Submission metadata shared by every file.
    package var fields = SubmissionFields()
    /// Expected SHA-256 (hex) by path as given to `ingest` or listed in `--expect-from`.
    package var expectedSHA256: [String: String] = [:]
    /// Whether every file must have an expected hash (set with `--expect-from`).
    package var requireExpected = false
    /// Ingest the rest when some files cannot be taken (they are still reported).
    package var skipProblems = false
    /// Items per journal batch (one flush of objects and one of the journal per batch).
    package var batchItems = 2000
    /// Plaintext bytes per journal batch.
    package var batchBytes: Int64 = 512 << 20

    /// Default options.
    package init() {}
}

/// One ingested item, as `ingest --json` reports it.
package struct IngestedItem: Sendable, Equatable {
    /// The new item id.
    package var id: ItemID
    /// The path as given.
    package var path: String
    /// SHA-256 of the plaintext, hex.
    package var sha256: String
    /// Plaintext size.
    package var size: Int64
    /// The first earlier item with identical content, if any.
    package var duplicateOf: String?
}

/// The outcome of an ingest.
package struct IngestReport: Sendable {
    /// Items added, in the order of the files.
    package var items: [IngestedItem] = []
    /// Files not taken, with the reason (only with ``IngestOptions/skipProblems``).
    package var skipped: [ScanProblem] = []
    /// Files refused because their SHA-256 differs from the expected one.
    package var refused: [ScanProblem] = []
}

/// Progress of a running ingest.
package struct IngestProgress: Sendable {
    /// Files read so far.
    package var files: Int
    /// Total files.
    package var totalFiles: Int
    /// Bytes read so far.
    package var bytes: Int64
    /// Total bytes (as scanned).
    package var totalBytes: Int64
}

/// An item finished by the workers and waiting for its batch to commit.
private struct PendingItem: Sendable {
    var batch: Int
    var order: Int
    var source: SourceFile
    var metadata: ItemMetadata
    var event: Event
    var staged: [StagedObject]
}

/// The state the ingest workers share, guarded by one mutex.
private final class PipelineState: Sendable {
    struct Inner {
        var pending: [Int: [PendingItem]] = [:]
        var committed: [IngestedItem] = []
        var refused: [ScanProblem] = []
        var error: ArchiveError?
        /// The earliest batch that failed: batches before it still commit, it and later ones do not.
        var failedBatch: Int?
        var orphanStaged: [StagedObject] = []
        /// Files found changed when opened, skipped (``IngestOptions/skipProblems``).
        var skipped: [ScanProblem] = []
    }
    let inner = Mutex(Inner())

    func fail(_ error: any Error, batch: Int) {
        let mapped =
            (error as? ArchiveError) ?? ArchiveError(.cannotCreate, "ingest failed: \(error)", fix: "check the disk")
        inner.withLock {
            if $0.error == nil { $0.error = mapped }
            $0.failedBatch = min($0.failedBatch ?? batch, batch)
        }
    }
}

/// A file that is not the one the scan found when ingest opens it: replaced by another file, a link, a FIFO or
/// a device, or reached through a folder that was replaced. It is a scan problem found late: it stops the
/// ingest, or is skipped and reported with ``IngestOptions/skipProblems``.
struct ChangedSinceScan: Error {
    let problem: ScanProblem
}

/// One file in flight: its chunk results, filled in by the workers.
private final class FileJob: Sendable {
    let order: Int
    let source: SourceFile
    struct Inner {
        var chunks: [ContentManifest.Chunk?] = []
        var refs: [ObjectRef?] = []
        var staged: [StagedObject] = []
        var size: Int64 = 0
        var sha256: [UInt8] = []
        var head: [UInt8] = []
    }
    let inner = Mutex(Inner())

    let batch: Int

    init(order: Int, source: SourceFile, batch: Int) {
        self.order = order
        self.source = source
        self.batch = batch
    }

    /// Stores the result of encrypting chunk `index`.
    func record(_ encrypted: (ContentManifest.Chunk, ObjectRef, StagedObject?), at index: Int) {
        inner.withLock { inner in
            while inner.chunks.count <= index {
                inner.chunks.append(nil)
                inner.refs.append(nil)
            }
            inner.chunks[index] = encrypted.0
            inner.refs[index] = encrypted.1
            if let staged = encrypted.2 { inner.staged.append(staged) }
        }
    }

    /// Reads the file once (see ``Archive/readChunks(_:source:chunkSize:convergence:emit:)``) and records its size,
    /// SHA-256 and first bytes; `emit` receives every padded chunk in order.
    ///
    /// - Throws: ``ChangedSinceScan`` when the file cannot be opened as the one scanned; other errors as they come.
    func read(chunkSize: Int, convergence: SecretBytes, emit: (Int, [UInt8]) throws -> Void) throws {
        let fd: Int32
        switch source.openForReading() {
        case .success(let opened): fd = opened
        case .failure(let problem): throw ChangedSinceScan(problem: problem)
        }
        defer { close(fd) }
        let (size, sha256, head) = try Archive.readChunks(
            fd,
            source: source,
            chunkSize: chunkSize,
            convergence: convergence,
            emit: emit
        )
        inner.withLock {
            $0.size = size
            $0.sha256 = sha256
            $0.head = head
        }
    }
}

extension ArchiveContext {

    fileprivate func expectedHash(_ path: String, _ options: IngestOptions) -> String? {
        guard !options.expectedSHA256.isEmpty else { return nil }
        return options.expectedSHA256[path] ?? options.expectedSHA256[canonicalPath(path)]
    }

    /// Reads `source` (open as `fd`) once in chunks of `chunkSize`, hashing it, then pads the stream to Padmé(size) with keystream
    /// (see ``ChunkCipher/padding(count:chunkIndex:key:)``) and emits every chunk in order.
    ///
    /// - Returns: The plaintext size, its SHA-256, and its first 4 KiB (for media type sniffing).
    static func readChunks(
        _ fd: Int32,
        source: SourceFile,
        chunkSize: Int,
        convergence: SecretBytes,
        emit: (Int, [UInt8]) throws -> Void
    ) throws -> (Int64, [UInt8], [UInt8]) {
        var hasher = SHA256Hasher()
        var total: Int64 = 0
        var index = 0
        var head: [UInt8] = []
        var pending: [UInt8]?
        while true {
            let buffer = try readChunk(fd, source: source, chunkSize: chunkSize, expected: source.size - total)
            if buffer.isEmpty { break }
            hasher.update(buffer)
            if head.isEmpty { head = Array(buffer.prefix(4096)) }
            total += Int64(buffer.count)
            guard total <= SealedPart.maxItemBytes else {
                throw ArchiveError(.badInput, "\(source.path) is larger than 1 TiB", fix: "split it before ingesting")
            }
            if let previous = pending {
                try emit(index, previous)
                index += 1
            }
            pending = buffer
            if buffer.count < chunkSize { break }
        }
        let sha256 = hasher.finalize()
        var padKey = ChunkCipher.paddingKey(sha256: sha256, size: total, convergenceSecret: convergence)
        defer { wipe(&padKey) }
        // The padded stream: data, then keystream up to Padmé(total); cut into chunks of `chunkSize`.
        let padded = Int64(Padme.paddedLength(Int(total), minimum: 512))
        var last = pending ?? []
        var position = Int64(index) * Int64(chunkSize)
        while true {
            let want = Int(min(Int64(chunkSize), padded - position))
            if last.count < want {
                last += ChunkCipher.padding(count: want - last.count, chunkIndex: index, key: padKey)
            }
            try emit(index, last)
            index += 1
            position += Int64(want)
            guard position < padded else { break }
            last = []
        }
        return (total, sha256, head)
    }

    /// Reads up to one chunk without zero-filling a whole chunk-sized buffer first (most files are small).
    fileprivate static func readChunk(
        _ fd: Int32,
        source: SourceFile,
        chunkSize: Int,
        expected: Int64
    ) throws -> [UInt8] {
        var capacity = Int(min(Int64(chunkSize), max(expected + 1, 4096)))
        var buffer: [UInt8] = []
        while true {
            let start = buffer.count
            var failure: Int32 = 0
            buffer.reserveCapacity(capacity)
            let extra = [UInt8](unsafeUninitializedCapacity: capacity - start) { raw, initialized in
                let n = POSIX.readFull(fd, UnsafeMutableRawBufferPointer(raw))
                if n < 0 { failure = Int32(-n) }
                initialized = max(n, 0)
            }
            guard failure == 0 else {
                throw ArchiveError(
                    .badInput,
                    "cannot read \(source.path): \(errnoDescription(failure))",
                    fix: "check the file"
                )
            }
            buffer += extra
            // A short read means end of file; a full buffer smaller than a chunk means the file grew: read on.
            if extra.count < capacity - start || buffer.count >= chunkSize { return buffer }
            capacity = chunkSize
        }
    }

    /// Encrypts and stages one chunk.
    fileprivate static func encryptChunk(
        _ plaintext: [UInt8],
        keys: ArchiveKeys,
        store: any ObjectStore
    ) throws -> (ContentManifest.Chunk, ObjectRef, StagedObject?) {
        var key = plaintext.withUnsafeBytes { ChunkCipher.key(for: $0, convergenceSecret: keys.convergence) }
        defer { wipe(&key) }
        let sealed = plaintext.withUnsafeBytes { ChunkCipher.seal($0, key: key) }
        let name = ObjectName(of: sealed)
        let staged = try sealed.withUnsafeBytes { try store.stage($0, as: name, checkExisting: true) }
        let ref = ObjectRef(name: name, size: Int64(sealed.count))
        return (ContentManifest.Chunk(object: name, size: ref.size, key: Encoding.base64(key)), ref, staged)
    }

    /// Seals the item's two parts, wraps their keys and signs its ingest event.
    fileprivate static func finishItem(
        _ job: FileJob,
        fields: SubmissionFields,
        expected: String?,
        keys: ArchiveKeys,
        selfBox: [UInt8],
        actor: String,
        chunkSize: Int,
        store: any ObjectStore
    ) throws -> Result<PendingItem, ScanProblem> {
        let (chunks, refs, size, sha256, head, chunkStaged) = job.inner.withLock {
            ($0.chunks.compactMap { $0 }, $0.refs.compactMap { $0 }, $0.size, $0.sha256, $0.head, $0.staged)
        }
        let shaHex = Encoding.hex(sha256)
        if let expected, expected.lowercased() != shaHex {
            return .failure(
                ScanProblem(
                    path: job.source.path,
                    .sha256Mismatch,
                    reason: "SHA-256 is \(shaHex), expected \(expected.lowercased())"
                )
            )
        }
        // One draw of randomness per item: id, commitment opening, two part keys, two part nonces.
        var random = randomBytes(16 + 32 + 32 + 32 + 24 + 24)
        defer { wipe(&random) }
        let item = ItemID(bytes: Array(random[0..<16]))
        let nonce = Array(random[16..<48])
        let name = job.source.displayPath.split(separator: "/").last.map(String.init) ?? job.source.displayPath
        let metadata = ItemMetadata(
            item: item,
            name: name,
            path: job.source.displayPath,
            mediaType: MediaType.sniff(head, name: name),
            size: size,
            sha256: shaHex,
            commitmentNonce: Encoding.base64(nonce),
            caseID: fields.caseID,
            tags: fields.tags,
            source: fields.source,
            collectedAt: fields.collectedAt,
            location: fields.location,
            consent: fields.consent,
            sensitivity: fields.sensitivity,
            note: fields.note,
            meta: fields.meta,
            ingestedAt: RFC3339.now(),
            ingestedBy: actor
        )
        let manifest = ContentManifest(
            size: size,
            paddedSize: Int64(Padme.paddedLength(Int(size), minimum: 512)),
            chunkSize: chunkSize,
            chunks: chunks
        )
        let encoder = JSONFormat.compactEncoder()
        var metaKey = Array(random[48..<80])
        var contentKey = Array(random[80..<112])
        defer {
            wipe(&metaKey)
            wipe(&contentKey)
        }
        var metaJSON = Array(try encoder.encode(metadata))
        var contentJSON = Array(try encoder.encode(manifest))
        let metaPart = SealedPart.seal(metaJSON, kind: .meta, item: item, key: metaKey, nonce: Array(random[112..<136]))
        let contentPart = SealedPart.seal(
            contentJSON,
            kind: .content,
            item: item,
            key: contentKey,
            nonce: Array(random[136..<160])
        )
        wipe(&metaJSON)
        wipe(&contentJSON)
        var staged = chunkStaged
        let metaRef = ObjectRef(name: ObjectName(of: metaPart), size: Int64(metaPart.count))
        let contentRef = ObjectRef(name: ObjectName(of: contentPart), size: Int64(contentPart.count))
        var objects = IngestObjects(meta: metaRef, content: contentRef)
        for (part, ref) in [(metaPart, metaRef), (contentPart, contentRef)] {
            // Sealed parts use fresh random keys and nonces: their names cannot exist yet.
            if let s = try part.withUnsafeBytes({ try store.stage($0, as: ref.name, checkExisting: false) }) {
                staged.append(s)
            }
        }
        if refs.count <= Event.inlineChunkLimit {
            objects.chunks = refs
        } else {
            let list = encodeChunkList(refs)
            let ref = ObjectRef(name: ObjectName(of: list), size: Int64(list.count))
            if let s = try list.withUnsafeBytes({ try store.stage($0, as: ref.name, checkExisting: true) }) {
                staged.append(s)
            }
            objects.chunkList = ref
        }
        let event = Event(
            type: .ingest,
            time: metadata.ingestedAt,
            actor: actor,
            item: item,
            objects: objects,
            keys: WrappedKeys(
                meta: try ArchiveKeys.wrap(metaKey, item: item, to: selfBox),
                content: try ArchiveKeys.wrap(contentKey, item: item, to: selfBox)
            ),
            commitment: Event.commitment(nonce: nonce, sha256: sha256, size: size)
        )
        return .success(
            PendingItem(
                batch: job.batch,
                order: job.order,
                source: job.source,
                metadata: metadata,
                event: event,
                staged: staged
            )
        )
    }
}

extension Archive.Unlocked {
    /// Scans `paths` and ingests every file found.
    ///
    /// Files are read once: the SHA-256 is computed while chunks are encrypted and staged by worker threads.
    /// Items commit in batches (objects flushed with one `syncfs`, renamed, then one journal append and one
    /// `fdatasync`), so an interruption leaves whole items or none, plus orphan objects that `gc` removes.
    ///
    /// - Throws: ``ArchiveError``; problems found by the scan abort before anything is written unless
    ///   ``IngestOptions/skipProblems`` is set.
    package func ingest(
        _ paths: [String],
        options: IngestOptions,
        progress: ((IngestProgress) -> Void)? = nil
    ) throws -> IngestReport {
        var fields = options.fields
        try fields.validate()  // before the scan, so a bad flag fails fast (checked again below; cheap)
        let (files, problems) = try FileScanner.scan(paths)
        return try ingest(scanned: files, problems: problems, options: options, progress: progress)
    }

    /// Ingests files already scanned (``FileScanner/scan(_:)``); each is opened again only through
    /// ``SourceFile/openForReading()``, which refuses a file that is no longer the one scanned.
    func ingest(
        scanned files: [SourceFile],
        problems: [ScanProblem],
        options: IngestOptions,
        progress: ((IngestProgress) -> Void)? = nil
    ) throws -> IngestReport {
        var fields = options.fields
        try fields.validate()
        if !problems.isEmpty && !options.skipProblems {
            let first = problems[0]
            let more = problems.count > 1 ? " (and \(problems.count - 1) more)" : ""
            throw ArchiveError(
                .badInput,
                "cannot ingest \(first.path): \(first.reason)\(more)",
                fix: "fix the files, or pass --skip-problems to ingest the rest and report these"
            )
        }
        var report = IngestReport(skipped: problems)
        if options.requireExpected {
            for file in files where expectedHash(file.path, options) == nil {
                throw ArchiveError(
                    .badInput,
                    "\(file.path) has no expected SHA-256 in the --expect-from list",
                    fix: "add it to the list or ingest it separately"
                )
            }
        }
        if let large = files.first(where: { $0.size > SealedPart.maxItemBytes }) {
            throw ArchiveError(.badInput, "\(large.path) is larger than 1 TiB", fix: "split it before ingesting")
        }
        guard !files.isEmpty else { return report }
        let actor = config.origin
        let chunkSize = config.chunkSize
        let store = self.store
        let selfBox = boxPublicKey
        let state = PipelineState()
        let workers = DispatchQueue(label: "custody.ingest", attributes: .concurrent)
        // Batches commit in order on one serial queue while the next batch is already being read and encrypted.
        let committer = DispatchQueue(label: "custody.ingest.commit")
        let inFlight = DispatchSemaphore(value: max(2, ProcessInfo.processInfo.activeProcessorCount) * 2)
        let totalBytes = files.reduce(Int64(0)) { $0 + $1.size }
        var bytesRead: Int64 = 0
        var batchBytes: Int64 = 0
        var batchFiles = 0
        var batch = 0
        var batchGroup = DispatchGroup()
        let unlocked = self  // Sendable: the commit queue records through it

        func commit(_ number: Int, after group: DispatchGroup) {
            committer.async {
                group.wait()
                let (pending, failed) = state.inner.withLock { inner -> ([PendingItem], Bool) in
                    let items = (inner.pending.removeValue(forKey: number) ?? []).sorted { $0.order < $1.order }
                    return (items, inner.failedBatch.map { $0 <= number } ?? false)
                }
                guard !failed else {
                    store.discard(pending.flatMap(\.staged))
                    return
                }
                guard !pending.isEmpty else { return }
                do {
                    try store.commit(pending.flatMap(\.staged))
                    CrashPoint.hit("objects-committed")
                    var known: [ItemID: ItemMetadata] = [:]
                    for item in pending { known[item.metadata.item] = item.metadata }
                    let duplicates = try unlocked.record(pending.map(\.event), known: known)
                    let items = pending.map { item in
                        IngestedItem(
                            id: item.metadata.item,
                            path: item.source.path,
                            sha256: item.metadata.sha256,
                            size: item.metadata.size,
                            duplicateOf: duplicates[item.metadata.item.hex] ?? nil
                        )
                    }
                    state.inner.withLock { $0.committed += items }
                } catch {
                    store.discard(pending.flatMap(\.staged))
                    state.fail(error, batch: number)
                }
            }
        }

        let convergence = keys.convergence
        let submission = fields
        let skipProblems = options.skipProblems
        // A file found changed when opened: skipped like a scan problem, or the ingest stops there.
        let changed: @Sendable (ChangedSinceScan, FileJob) -> Void = { changed, job in
            guard !skipProblems else {
                state.inner.withLock { $0.skipped.append(changed.problem) }
                return
            }
            state.fail(
                ArchiveError(
                    .changedSinceScan,
                    "cannot ingest \(changed.problem.path): \(changed.problem.reason)",
                    fix: "find out what is changing the files, then ingest again (or pass --skip-problems)"
                ),
                batch: job.batch
            )
        }
        // Whatever fails, every dispatched job and the commit queue are waited for before returning.
        do {
            for (order, source) in files.enumerated() {
                if state.inner.withLock({ $0.error != nil }) { break }
                let job = FileJob(order: order, source: source, batch: batch)
                let expected = expectedHash(source.path, options)
                let finish: @Sendable () -> Void = {
                    do {
                        let result = try Self.finishItem(
                            job,
                            fields: submission,
                            expected: expected,
                            keys: keys,
                            selfBox: selfBox,
                            actor: actor,
                            chunkSize: chunkSize,
                            store: store
                        )
                        state.inner.withLock { inner in
                            switch result {
                            case .success(let item): inner.pending[job.batch, default: []].append(item)
                            case .failure(let problem):
                                inner.refused.append(problem)
                                inner.orphanStaged += job.inner.withLock { $0.staged }
                            }
                        }
                    } catch {
                        state.fail(error, batch: job.batch)
                    }
                }
                let group = batchGroup
                if source.size < Int64(chunkSize) {
                    // A small file: one worker reads, hashes, encrypts and seals it, so small files spread over all cores.
                    inFlight.wait()
                    group.enter()
                    workers.async {
                        defer {
                            inFlight.signal()
                            group.leave()
                        }
                        do {
                            try job.read(chunkSize: chunkSize, convergence: convergence) { index, plaintext in
                                job.record(try Self.encryptChunk(plaintext, keys: keys, store: store), at: index)
                            }
                            finish()
                        } catch let error as ChangedSinceScan {
                            changed(error, job)
                        } catch {
                            state.fail(error, batch: job.batch)
                        }
                    }
                } else {
                    // A large file: this thread reads and hashes in order while workers encrypt its chunks in parallel.
                    let fileGroup = DispatchGroup()
                    var opened = true
                    do {
                        try job.read(chunkSize: chunkSize, convergence: convergence) { index, plaintext in
                            // Once anything failed (a full disk, an object store gone), stop reading the file.
                            if let failed = state.inner.withLock({ $0.error }) { throw failed }
                            inFlight.wait()
                            fileGroup.enter()
                            group.enter()
                            workers.async {
                                defer {
                                    inFlight.signal()
                                    fileGroup.leave()
                                    group.leave()
                                }
                                do {
                                    job.record(try Self.encryptChunk(plaintext, keys: keys, store: store), at: index)
                                } catch {
                                    state.fail(error, batch: job.batch)
                                }
                            }
                        }
                    } catch let error as ChangedSinceScan {
                        // Thrown by the open, before any chunk was handed out.
                        opened = false
                        changed(error, job)
                    }
                    if opened {
                        group.enter()
                        fileGroup.notify(queue: workers) {
                            finish()
                            group.leave()
                        }
                    }
                }
                bytesRead += source.size
                batchBytes += source.size
                batchFiles += 1
                progress?(
                    IngestProgress(files: order + 1, totalFiles: files.count, bytes: bytesRead, totalBytes: totalBytes)
                )
                if batchFiles >= options.batchItems || batchBytes >= options.batchBytes {
                    commit(batch, after: batchGroup)
                    batch += 1
                    batchGroup = DispatchGroup()
                    batchBytes = 0
                    batchFiles = 0
                }
            }
        } catch {
            state.fail(error, batch: batch)
        }
        commit(batch, after: batchGroup)
        committer.sync {}
        let (committed, refused, skipped, error) = state.inner.withLock { inner in
            store.discard(inner.orphanStaged)
            store.discard(inner.pending.values.flatMap { $0.flatMap(\.staged) })
            return (inner.committed, inner.refused, inner.skipped, inner.error)
        }
        if let error {
            guard !committed.isEmpty else { throw error }
            throw ArchiveError(
                error.reason,
                error.problem + " (\(committed.count) item(s) of earlier batches were ingested before this)",
                fix: error.fix + "; custody ls shows what is in"
            )
        }
        report.items = committed
        report.refused = refused
        report.skipped += skipped
        return report
    }
}
