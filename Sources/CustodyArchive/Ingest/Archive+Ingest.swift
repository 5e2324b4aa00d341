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
    /// Expected SHA-256 (hex) by path as given to `ingest` (`--expect-sha256`).
    package var expectedSHA256: [String: String] = [:]
    /// Whether every file must have an expected hash in ``expectedSHA256``.
    package var requireExpected = false
    /// The collector's hash list (`--expect-from`): every file must match its line, and every line naming a
    /// file inside the paths given must be matched.
    package var manifest: HashManifest?
    /// Ingest the hash list itself when it is inside the paths given (it is left out otherwise).
    package var includeManifest = false
    /// Ingest what can be taken when some files cannot (they are still reported); with a hash list or an
    /// expected hash, also ingest the files that match when others do not.
    package var skipProblems = false
    /// What the scan leaves out (the OS litter defaults unless replaced).
    package var exclusions = IngestExclusions.defaults
    /// Scan, read and hash, and report what would be done, writing nothing.
    package var dryRun = false
    /// Ingest a file again even when an item with its SHA-256, path and case is held (resume is off).
    package var allowDuplicates = false
    /// Items per journal batch (one flush of objects and one of the journal per batch).
    package var batchItems = 2000
    /// Plaintext bytes per journal batch.
    package var batchBytes: Int64 = 512 << 20
    /// Whether to extract and seal each file's claims (``ItemMetadata/claims``); `--no-claims` turns it off.
    package var extractClaims = true

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

/// A file not ingested because an item with its SHA-256, recorded path and case is held already.
package struct HeldFile: Sendable, Equatable {
    /// The path as recorded.
    package var path: String
    /// The item that holds it, hex.
    package var id: String
}

/// A file a dry run would ingest.
package struct PlannedFile: Sendable, Equatable {
    /// The path as it would be recorded.
    package var path: String
    /// SHA-256 of its content, hex.
    package var sha256: String
    /// Its size.
    package var size: Int64
    /// The first item held with the same content (never told to field staff).
    package var duplicateOf: String?
}

/// The outcome of an ingest.
package struct IngestReport: Sendable {
    /// Items added, in the order of the files.
    package var items: [IngestedItem] = []
    /// Files not taken, with the reason (only with ``IngestOptions/skipProblems``, or in a dry run).
    package var skipped: [ScanProblem] = []
    /// Files refused because their SHA-256 differs from the expected one.
    package var refused: [ScanProblem] = []
    /// Entries the exclusion patterns left out.
    package var excluded: [ExcludedEntry] = []
    /// Files held already (resume), not ingested again.
    package var held: [HeldFile] = []
    /// What a dry run would ingest (empty otherwise).
    package var planned: [PlannedFile] = []
    /// Whether this was a dry run (nothing was written).
    package var dryRun = false
    /// SHA-256 of the hash list given, if any.
    package var manifestSHA256: String?
    /// The hash list itself, found inside the paths given and left out (``IngestOptions/includeManifest``).
    package var manifestLeftOut: String?
    /// Lines of the hash list naming files outside every path given: not checked.
    package var manifestOutside = 0
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

/// Where an ingest looks for what is held already: the index, which field staff do not read.
struct HeldItems: Sendable {
    let index: ArchiveIndex
    /// The case the files are ingested into.
    let caseID: String?

    /// The item already recording `source` with this content: the same SHA-256, the same recorded path (byte
    /// for byte, so case-sensitive) and the same case.
    func item(sha256: String, for source: SourceFile) throws -> String? {
        let pathBytes = source.pathIsUTF8 ? nil : Encoding.base64(source.rawDisplayPath)
        return try index.items(withSHA256: sha256).first {
            $0.metadata.path == source.displayPath && $0.metadata.pathBytes == pathBytes
                && $0.metadata.caseID == caseID
        }?.id
    }

    /// The first item held with this content, whatever its path.
    func firstItem(sha256: String) throws -> String? {
        try index.items(withSHA256: sha256).first?.id
    }
}

extension EventRecording {
    /// Scans `paths` and ingests every file found.
    ///
    /// Files are read once: the SHA-256 is computed while chunks are encrypted and staged (``IngestPipeline``).
    /// Items commit in batches (objects flushed with one `syncfs`, renamed, then one journal append and one
    /// `fdatasync`), so an interruption leaves whole items or none, plus orphan objects that `gc` removes.
    ///
    /// Before anything is read, every path is checked against the archive (``ArchiveGuard``): the archive, a
    /// folder inside it, or one holding it refuses the run. A file whose SHA-256, recorded path and case are
    /// those of an item held is not ingested again (``IngestReport/held``) unless
    /// ``IngestOptions/allowDuplicates``; field staff, who may not learn what is held, ingest every file.
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
        var rules = ScanRules()
        rules.exclusions = options.exclusions
        rules.archive = try ArchiveGuard(root: root)
        let scan = try FileScanner.scan(paths, rules: rules)
        var files = scan.files
        var problems = scan.problems
        var report = IngestReport(excluded: scan.excluded, dryRun: options.dryRun)
        if let manifest = options.manifest {
            report.manifestSHA256 = manifest.sha256
            if !options.includeManifest, let own = files.firstIndex(where: { $0.identity == manifest.identity }) {
                report.manifestLeftOut = files[own].displayPath
                files.remove(at: own)
            }
            let check = Self.check(files, against: manifest, paths: paths, excluded: scan.excluded)
            problems += check.problems
            report.manifestOutside = check.outside
        }
        if options.requireExpected {
            for file in files where options.expectedSHA256[file.path] == nil {
                problems.append(
                    ScanProblem(path: file.path, .notListed, reason: "has no expected SHA-256 (--expect-sha256)")
                )
            }
        }
        // Field staff read no index: they may not learn whether a file is held (Docs/THREAT-MODEL.md section 7).
        var held: HeldItems?
        if let unlocked = self as? Archive.Unlocked, !options.allowDuplicates || options.dryRun {
            // A dry run reads the index as it is (catching it up would write to it); one that cannot be read
            // there reports no duplicates.
            let index = options.dryRun ? try? unlocked.archive.openedIndex.get() : try await unlocked.index()
            held = index.map { HeldItems(index: $0, caseID: fields.caseID) }
        }
        if options.dryRun {
            return try await plan(files, problems: problems, options: options, held: held, report: report)
        }
        var outcome = try await ingest(
            scanned: files,
            problems: problems,
            options: options,
            held: options.allowDuplicates ? nil : held,
            progress: progress
        )
        outcome.excluded = report.excluded
        outcome.manifestSHA256 = report.manifestSHA256
        outcome.manifestLeftOut = report.manifestLeftOut
        outcome.manifestOutside = report.manifestOutside
        return outcome
    }

    /// The expected SHA-256 of `file`: its `--expect-sha256` value or its line in the hash list.
    fileprivate static func expectedHash(_ file: SourceFile, _ options: IngestOptions) -> String? {
        if let manifest = options.manifest { return manifest.entry(for: file.absolutePath)?.sha256 }
        return options.expectedSHA256[file.path]
    }

    /// What the hash list says about the files scanned: a problem for each file it does not list, and for each
    /// file it lists inside the paths given that was not found there (nor excluded); the lines naming files
    /// outside every path given are counted and left unchecked.
    fileprivate static func check(
        _ files: [SourceFile],
        against manifest: HashManifest,
        paths: [String],
        excluded: [ExcludedEntry]
    ) -> (problems: [ScanProblem], outside: Int) {
        var problems: [ScanProblem] = []
        var found = Set<[UInt8]>()
        for file in files {
            found.insert(file.absolutePath)
            // The list itself (ingested with --include-manifest) cannot hold its own hash.
            if manifest.entry(for: file.absolutePath) == nil && file.identity != manifest.identity {
                problems.append(
                    ScanProblem(
                        path: file.path,
                        .notListed,
                        reason: "has no line in the --expect-from list \(manifest.path)"
                    )
                )
            }
        }
        func isUnder(_ path: [UInt8], _ root: [UInt8]) -> Bool {
            path == root || root == [0x2F] || (path.starts(with: root) && path.dropFirst(root.count).first == 0x2F)
        }
        let roots = paths.map { Array(canonicalPath($0).utf8) }
        var outside = 0
        for (absolute, entry) in manifest.entries.sorted(by: { $0.value.line < $1.value.line }) {
            guard !found.contains(absolute) else { continue }
            guard roots.contains(where: { isUnder(absolute, $0) }) else {
                outside += 1
                continue
            }
            if excluded.contains(where: { isUnder(absolute, $0.absolutePath) }) { continue }
            if let own = files.first(where: { $0.identity == manifest.identity }), own.absolutePath == absolute {
                continue
            }
            if absolute == HashManifest.normalize(Array(canonicalPath(manifest.path).utf8)) { continue }
            problems.append(
                ScanProblem(
                    path: String(decoding: entry.listed, as: UTF8.self),
                    .listedNotFound,
                    reason: "is listed on line \(entry.line) of \(manifest.path) but was not found"
                )
            )
        }
        return (problems, outside)
    }

    /// A dry run: every file read and hashed as ingest would, compared with its expected SHA-256 and with what
    /// is held; nothing is staged or written.
    private func plan(
        _ files: [SourceFile],
        problems: [ScanProblem],
        options: IngestOptions,
        held: HeldItems?,
        report: IngestReport
    ) async throws -> IngestReport {
        var report = report
        report.skipped = problems
        for file in files {
            guard file.size <= SealedPart.maxItemBytes else {
                report.skipped.append(
                    ScanProblem(
                        path: file.path,
                        .unreadable,
                        reason: "is larger than 1 TiB (split it before ingesting)"
                    )
                )
                continue
            }
            let read = try await BlockingWork.run { Self.hash(file) }
            let sha256: String
            switch read {
            case .failure(let problem):
                report.skipped.append(problem)
                continue
            case .success(let digest):
                sha256 = digest
            }
            if let expected = Self.expectedHash(file, options), expected != sha256 {
                report.refused.append(
                    ScanProblem(path: file.path, .sha256Mismatch, reason: "SHA-256 is \(sha256), expected \(expected)")
                )
                continue
            }
            if !options.allowDuplicates, let held, let id = try held.item(sha256: sha256, for: file) {
                report.held.append(HeldFile(path: file.displayPath, id: id))
                continue
            }
            report.planned.append(
                PlannedFile(
                    path: file.displayPath,
                    sha256: sha256,
                    size: file.size,
                    duplicateOf: try held?.firstItem(sha256: sha256)
                )
            )
        }
        return report
    }

    /// The SHA-256 of a scanned file, read through ``SourceFile/openForReading()`` in 1 MiB blocks.
    private static func hash(_ file: SourceFile) -> Result<String, ScanProblem> {
        let fd: Int32
        switch file.openForReading() {
        case .success(let opened): fd = opened
        case .failure(let problem): return .failure(problem)
        }
        defer { close(fd) }
        var hasher = SHA256Hasher()
        var block = [UInt8](repeating: 0, count: 1 << 20)
        while true {
            let n = block.withUnsafeMutableBytes { POSIX.readFull(fd, $0) }
            guard n >= 0 else {
                return .failure(
                    ScanProblem(path: file.path, .unreadable, reason: "cannot be read: \(errnoDescription(Int32(-n)))")
                )
            }
            block.withUnsafeBytes { hasher.update(UnsafeRawBufferPointer(rebasing: $0[0..<n])) }
            if n < block.count { break }
        }
        return .success(Encoding.hex(hasher.finalize()))
    }

    /// Ingests files already scanned (``FileScanner/scan(_:rules:)``); each is opened again only through
    /// ``SourceFile/openForReading()``, which refuses a file that is no longer the one scanned.
    func ingest(
        scanned files: [SourceFile],
        problems: [ScanProblem],
        options: IngestOptions,
        held: HeldItems? = nil,
        progress: ((IngestProgress) -> Void)? = nil
    ) async throws -> IngestReport {
        var fields = options.fields
        try fields.validate()
        if !problems.isEmpty && !options.skipProblems {
            let first = problems[0]
            let more = problems.count > 1 ? " (and \(problems.count - 1) more)" : ""
            throw ArchiveError(
                .badInput,
                "cannot ingest \(first.path): \(first.reason)\(more); nothing was ingested",
                fix: "fix the files, or pass --skip-problems to ingest the rest and report these"
            )
        }
        var report = IngestReport(skipped: problems)
        let skippedPaths = Set(problems.filter { $0.kind == .notListed }.map(\.path))
        let files = files.filter { !skippedPaths.contains($0.path) }
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
                chunkSize: config.chunkSize,
                manifestSHA256: options.manifest?.sha256,
                extractClaims: options.extractClaims
            ),
            skipProblems: options.skipProblems,
            width: max(2, ProcessInfo.processInfo.activeProcessorCount) * 2
        )
        let expects = options.manifest != nil || !options.expectedSHA256.isEmpty
        let outcome = try await pipeline.run(
            files,
            options: options,
            expected: { Self.expectedHash($0, options) },
            held: held,
            allOrNothing: expects && !options.skipProblems,
            progress: { progress?($0) }
        )
        report.items = outcome.items
        report.refused = outcome.refused
        report.skipped += outcome.skipped
        report.held = outcome.held
        return report
    }
}

extension ArchiveError.Reason {
    /// `ingest --skip-problems` took nothing: every file it found was skipped or refused.
    package static let nothingIngested = Self("nothing-ingested", .badInput)
}
