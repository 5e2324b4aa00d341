import CustodyCrypto
import CustodyStorage
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

extension ArchiveContext {

    fileprivate func expectedHash(_ path: String, _ options: IngestOptions) -> String? {
        guard !options.expectedSHA256.isEmpty else { return nil }
        return options.expectedSHA256[path] ?? options.expectedSHA256[canonicalPath(path)]
    }
}

extension EventRecording {
    /// Scans `paths` and ingests every file found.
    ///
    /// Files are read once: the SHA-256 is computed while chunks are encrypted and staged (``IngestPipeline``).
    /// Items commit in batches (objects flushed with one `syncfs`, renamed, then one journal append and one
    /// `fdatasync`), so an interruption leaves whole items or none, plus orphan objects that `gc` removes.
    ///
    /// - Throws: ``ArchiveError``; problems found by the scan abort before anything is written unless
    ///   ``IngestOptions/skipProblems`` is set.
    package func ingest(
        _ paths: [String],
        options: IngestOptions,
        progress: ((IngestProgress) -> Void)? = nil
    ) async throws -> IngestReport {
        var fields = options.fields
        try fields.validate()  // before the scan, so a bad flag fails fast (checked again below; cheap)
        // The role before anything is read or staged: a refused ingest leaves no object behind.
        try authorize(acting, for: [.ingest])
        let (files, problems) = try FileScanner.scan(paths)
        return try await ingest(scanned: files, problems: problems, options: options, progress: progress)
    }

    /// Ingests files already scanned (``FileScanner/scan(_:)``); each is opened again only through
    /// ``SourceFile/openForReading()``, which refuses a file that is no longer the one scanned.
    func ingest(
        scanned files: [SourceFile],
        problems: [ScanProblem],
        options: IngestOptions,
        progress: ((IngestProgress) -> Void)? = nil
    ) async throws -> IngestReport {
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
        let pipeline = IngestPipeline(
            archive: self,
            context: ItemSealer.Context(
                fields: fields,
                convergence: convergence,
                selfBox: boxPublicKey,
                actor: config.origin,
                chunkSize: config.chunkSize
            ),
            skipProblems: options.skipProblems,
            width: max(2, ProcessInfo.processInfo.activeProcessorCount) * 2
        )
        let outcome = try await pipeline.run(
            files,
            options: options,
            expected: { expectedHash($0, options) },
            progress: { progress?($0) }
        )
        report.items = outcome.items
        report.refused = outcome.refused
        report.skipped += outcome.skipped
        return report
    }
}
