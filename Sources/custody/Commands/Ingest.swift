import ArgumentParser
import CustodyArchive
import CustodyStorage
import Foundation
import Synchronization

extension CustodyCommand {
    struct Ingest: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Encrypt and add files or whole folders, with their provenance.",
            discussion: """
                Folders are walked recursively; symbolic links are refused, never followed. If any file cannot be \
                taken, nothing is ingested unless --skip-problems is given (the problems are then reported). \
                Repeating --tag gives the item all of those tags.

                The archive itself is never ingested: a path that is the archive, inside it, or holds it refuses \
                the run (exit 64).

                Resume: a file whose SHA-256, recorded path and case are those of an item already held is not \
                ingested again ("N already in the archive, skipped"); --allow-duplicates ingests it again. Field \
                staff, who may not learn what is held, always ingest every file.

                Excluded by default (OS litter; names ignoring case, a trailing / means folders only): \
                \(IngestExclusions.defaultPatterns.joined(separator: " ")). --exclude adds fnmatch globs, matched \
                against each entry's name and its path below the folder given (* and ? never match /); \
                --no-default-excludes drops the defaults.

                --expect-from reads a sha256sum list; its names are relative to the list's own folder. Every file \
                must match its line and every file listed inside the paths given must be found, or nothing is \
                ingested (--skip-problems ingests the files that match). The list itself is left out unless \
                --include-manifest. Each item records the SHA-256 of the list it matched.

                What each file says about itself (capture time, GPS, camera, MP4/MOV and PDF dates, C2PA presence, modification time) is recorded as its claims, apart \
                from the provenance given here, which they never override (custody show: "The file says").
                """
        )

        @OptionGroup var global: GlobalOptions
        @Argument(help: "Files or folders to ingest.", completion: .file()) var paths: [String]
        @OptionGroup var metadata: MetadataOptions
        @Option(help: ArgumentHelp("Refuse the file unless its SHA-256 is this (one file only).", valueName: "hex"))
        var expectSha256: String?
        @Option(
            help: ArgumentHelp(
                "A sha256sum list (names relative to its folder); every file must match its line.",
                valueName: "file"
            )
        )
        var expectFrom: String?
        @Flag(help: "Ingest the --expect-from list too when it is inside the paths given.")
        var includeManifest = false
        @Option(
            help: ArgumentHelp(
                "Leave out entries matching this glob (name or path below the folder; trailing / = folders only).",
                valueName: "pattern"
            )
        )
        var exclude: [String] = []
        @Flag(help: "Do not leave out the OS litter excluded by default (.DS_Store, ._*, Thumbs.db, …).")
        var noDefaultExcludes = false
        @Flag(help: "Scan, read and hash, and report what would be ingested; write nothing.")
        var dryRun = false
        @Flag(help: "Ingest files again even when an item with the same SHA-256, path and case is held.")
        var allowDuplicates = false
        @Flag(help: "Ingest what can be taken and report the rest, instead of refusing the whole run.")
        var skipProblems = false
        @Flag(
            help: """
                Do not read what the files say about themselves (EXIF, XMP, MP4/MOV, PDF dates, C2PA presence, \
                modification time); items get no claims.
                """
        )
        var noClaims = false
        @Flag(help: "Print JSON.") var json = false

        func run() async throws {
            try await runReportingErrorsAsync {
                guard !paths.isEmpty else {
                    throw ArchiveError(.usage, "no files given", fix: "name files or folders to ingest")
                }
                var options = IngestOptions()
                options.skipProblems = skipProblems
                options.extractClaims = !noClaims
                options.fields = try metadata.fields()
                options.exclusions = try IngestExclusions(exclude, defaults: !noDefaultExcludes)
                options.dryRun = dryRun
                options.allowDuplicates = allowDuplicates
                options.includeManifest = includeManifest
                if let expectSha256 {
                    guard paths.count == 1, expectSha256.count == 64, expectSha256.allSatisfy(\.isHexDigit) else {
                        throw ArchiveError(
                            .usage,
                            "--expect-sha256 needs one file and 64 hex characters",
                            fix: "use --expect-from for several files"
                        )
                    }
                    var path = paths[0]
                    while path.count > 1 && path.hasSuffix("/") { path.removeLast() }
                    options.expectedSHA256[path] = expectSha256.lowercased()
                    options.requireExpected = true
                }
                if let expectFrom {
                    guard expectSha256 == nil else {
                        throw ArchiveError(
                            .usage,
                            "--expect-sha256 and --expect-from were both given",
                            fix: "give one of them"
                        )
                    }
                    options.manifest = try HashManifest(contentsOf: expectFrom)
                }
                // A dry run writes nothing in the archive folder, not even in the index (Archive.Access.readOnly).
                let opened = try global.openArchive(access: dryRun ? .readOnly : .shared)
                // Field staff add items with keys that open none (Docs/THREAT-MODEL.md section 7).
                let archive: any EventRecording
                if try opened.actsAsFieldStaff() {
                    archive = try opened.deposit()
                } else {
                    archive = try opened.unlock()
                }
                try archive.authorize(archive.acting, for: [.ingest])
                let bar = ProgressBar(enabled: Terminal.stderrIsTTY && !dryRun, label: "ingest")
                let report = try await archive.ingest(paths, options: options) { bar.update($0) }
                bar.finish()
                if json {
                    try printJSON(IngestJSON(report))
                } else {
                    printText(report)
                }
                try finish(report)
            }
        }

        private func printText(_ report: IngestReport) {
            if report.dryRun {
                for file in report.planned {
                    let dup = file.duplicateOf.map { "  (duplicates \($0))" } ?? ""
                    print("would add  \(file.sha256.prefix(16))…  \(formatBytes(file.size))  \(file.path)\(dup)")
                }
            }
            for item in report.items {
                let dup = item.duplicateOf.map { "  (duplicates \($0))" } ?? ""
                print("\(item.id)  \(item.sha256.prefix(16))…  \(formatBytes(item.size))  \(item.path)\(dup)")
            }
            var summary =
                report.dryRun
                ? "dry run: \(report.planned.count) file(s) would be ingested "
                    + "(\(formatBytes(report.planned.reduce(0) { $0 + $1.size })))"
                : "\(report.items.count) item(s) ingested"
            if !report.held.isEmpty { summary += ", \(report.held.count) already in the archive, skipped" }
            if !report.excluded.isEmpty {
                let folders = report.excluded.filter(\.isFolder).count
                summary +=
                    ", \(report.excluded.count) excluded (\(report.excluded.count - folders) file(s), "
                    + "\(folders) folder(s))"
            }
            if let manifest = report.manifestSHA256 {
                summary += "; matched --expect-from list \(manifest.prefix(16))…"
                if report.manifestOutside > 0 {
                    summary += " (\(report.manifestOutside) of its lines name files outside the paths given)"
                }
            }
            if report.dryRun { summary += "; nothing was written" }
            print(summary)
        }

        /// The exit status: refusals and problems as documented (Docs/OPERATIONS.md section 10).
        private func finish(_ report: IngestReport) throws {
            let verb = report.dryRun ? "would be" : "was"
            if let left = report.manifestLeftOut {
                printError(
                    "custody: note: the --expect-from list \(left) \(verb) not ingested (see --include-manifest)"
                )
            }
            for problem in report.skipped {
                printError("custody: \(skipProblems ? "skipped" : "problem") \(problem.path): \(problem.reason)")
            }
            if !report.refused.isEmpty {
                for problem in report.refused {
                    printError("custody: refused \(problem.path): \(problem.reason)")
                }
                let all = !skipProblems && (report.manifestSHA256 != nil || expectSha256 != nil)
                throw ArchiveError(
                    .badInput,
                    "\(report.refused.count) file(s) refused: SHA-256 differs from the expected value"
                        + (all ? "; nothing \(verb) ingested" : ""),
                    fix: "check these files against the collector's record"
                )
            }
            if report.dryRun && !skipProblems && !report.skipped.isEmpty {
                throw ArchiveError(
                    .badInput,
                    "\(report.skipped.count) problem(s): the ingest would be refused",
                    fix: "fix the files, or pass --skip-problems to ingest the rest"
                )
            }
            let taken = report.dryRun ? report.planned.count : report.items.count
            if taken == 0 && !report.skipped.isEmpty {
                throw ArchiveError(
                    .nothingIngested,
                    "nothing \(verb) ingested: all \(report.skipped.count) file(s) found had problems",
                    fix: "fix the files listed above"
                )
            }
        }
    }
}

struct IngestJSON: Encodable {
    struct Item: Encodable {
        var id: String
        var path: String
        var sha256: String
        var size: Int64
        var duplicateOf: String?
        enum CodingKeys: String, CodingKey {
            case id, path, sha256, size
            case duplicateOf = "duplicate_of"
        }
        func encode(to encoder: any Encoder) throws {
            var c = encoder.container(keyedBy: CodingKeys.self)
            try c.encode(id, forKey: .id)
            try c.encode(path, forKey: .path)
            try c.encode(sha256, forKey: .sha256)
            try c.encode(size, forKey: .size)
            try c.encode(duplicateOf, forKey: .duplicateOf)  // null, not absent
        }
    }
    struct Problem: Encodable {
        var path: String
        var reason: String
    }
    struct Excluded: Encodable {
        var path: String
        var folder: Bool
        var pattern: String
    }
    struct Held: Encodable {
        var path: String
        var id: String
    }
    struct Planned: Encodable {
        var path: String
        var sha256: String
        var size: Int64
        var duplicateOf: String?
        enum CodingKeys: String, CodingKey {
            case path, sha256, size
            case duplicateOf = "duplicate_of"
        }
        func encode(to encoder: any Encoder) throws {
            var c = encoder.container(keyedBy: CodingKeys.self)
            try c.encode(path, forKey: .path)
            try c.encode(sha256, forKey: .sha256)
            try c.encode(size, forKey: .size)
            try c.encode(duplicateOf, forKey: .duplicateOf)
        }
    }
    var dryRun: Bool
    var items: [Item]
    var wouldAdd: [Planned]?
    var skipped: [Problem]
    var refused: [Problem]
    var alreadyHeld: [Held]
    var excluded: [Excluded]
    var excludedCount: Int
    var manifestSHA256: String?
    var manifestOutside: Int?

    enum CodingKeys: String, CodingKey {
        case items, skipped, refused, excluded
        case dryRun = "dry_run"
        case wouldAdd = "would_add"
        case alreadyHeld = "already_held"
        case excludedCount = "excluded_count"
        case manifestSHA256 = "manifest_sha256"
        case manifestOutside = "manifest_lines_outside"
    }

    init(_ report: IngestReport) {
        dryRun = report.dryRun
        items = report.items.map {
            Item(id: $0.id.hex, path: $0.path, sha256: $0.sha256, size: $0.size, duplicateOf: $0.duplicateOf)
        }
        wouldAdd =
            report.dryRun
            ? report.planned.map {
                Planned(path: $0.path, sha256: $0.sha256, size: $0.size, duplicateOf: $0.duplicateOf)
            } : nil
        skipped = report.skipped.map { Problem(path: $0.path, reason: $0.reason) }
        refused = report.refused.map { Problem(path: $0.path, reason: $0.reason) }
        alreadyHeld = report.held.map { Held(path: $0.path, id: $0.id) }
        excluded = report.excluded.map { Excluded(path: $0.path, folder: $0.isFolder, pattern: $0.pattern) }
        excludedCount = report.excluded.count
        manifestSHA256 = report.manifestSHA256
        manifestOutside = report.manifestSHA256 == nil ? nil : report.manifestOutside
    }
}

/// A one-line progress bar on standard error, redrawn at most ten times a second; safe to call from any thread.
/// The submission metadata flags `ingest` and `submit` share.
struct MetadataOptions: ParsableArguments {
    @Option(name: .customLong("case"), help: "Case identifier.") var caseID: String?
    @Option(help: "A tag (repeat for several).") var tag: [String] = []
    @Option(help: "Who or what the evidence came from.") var source: String?
    @Option(help: "When it was collected (RFC 3339, e.g. 2026-03-02T10:00:00Z).") var collectedAt: String?
    @Option(help: "Where it was collected.") var location: String?
    @Option(help: "The consent under which it may be used (no-share keeps it from every grant).") var consent: String?
    @Option(help: "Sensitivity label (public, low, medium, high, critical).") var sensitivity: String?
    @Option(help: "A free note.") var note: String?
    @Option(help: ArgumentHelp("Extra metadata (repeatable).", valueName: "key=value")) var meta: [String] = []

    /// The fields, with `--meta` pairs parsed.
    func fields() throws -> SubmissionFields {
        var fields = SubmissionFields()
        fields.caseID = caseID
        fields.tags = tag
        fields.source = source
        fields.collectedAt = collectedAt
        fields.location = location
        fields.consent = consent
        fields.sensitivity = sensitivity
        fields.note = note
        for pair in meta {
            guard let eq = pair.firstIndex(of: "="), eq != pair.startIndex else {
                throw ArchiveError(.usage, "--meta \(pair.prefix(40)) is not key=value", fix: "write --meta key=value")
            }
            fields.meta[String(pair[..<eq])] = String(pair[pair.index(after: eq)...])
        }
        return fields
    }
}

final class ProgressBar: Sendable {
    private struct State {
        var lastDraw = 0.0
        var drawn = false
    }
    private let enabled: Bool
    private let label: String
    private let start = Date()
    private let state = Mutex(State())

    init(enabled: Bool, label: String) {
        self.enabled = enabled
        self.label = label
    }

    /// Ingest progress: files and bytes.
    func update(_ progress: IngestProgress) {
        draw(done: progress.bytes, total: progress.totalBytes, final: progress.files == progress.totalFiles) { rate in
            "\(progress.files)/\(progress.totalFiles) files  "
                + "\(formatBytes(progress.bytes))/\(formatBytes(progress.totalBytes))  \(formatBytes(rate))/s"
        }
    }

    /// Transfer progress: bytes and objects.
    func update(done: Int64, total: Int64, objects: Int, of totalObjects: Int) {
        draw(done: done, total: total, final: objects == totalObjects) { rate in
            "\(objects)/\(totalObjects) objects  \(formatBytes(done))/\(formatBytes(total))  \(formatBytes(rate))/s"
        }
    }

    /// Progress in counted units (objects, items).
    func update(done: Int, total: Int, unit: String) {
        draw(done: Int64(done), total: Int64(total), final: done == total) { _ in "\(done)/\(total) \(unit)" }
    }

    private func draw(done: Int64, total: Int64, final: Bool, detail: (Int64) -> String) {
        guard enabled else { return }
        let now = Date().timeIntervalSince(start)
        let due = state.withLock { state -> Bool in
            guard now - state.lastDraw >= 0.1 || final else { return false }
            state.lastDraw = now
            state.drawn = true
            return true
        }
        guard due else { return }
        let fraction = total > 0 ? Double(done) / Double(total) : 1
        let width = 30
        let filled = max(0, min(width, Int(fraction * Double(width))))
        let bar = String(repeating: "█", count: filled) + String(repeating: "·", count: width - filled)
        let rate = now > 0 ? Int64(Double(done) / now) : 0
        FileHandle.standardError.write(Data("\r\(label) \(bar) \(detail(rate)) ".utf8))
    }

    func finish() {
        if enabled, state.withLock({ $0.drawn }) { FileHandle.standardError.write(Data("\r\u{1B}[K".utf8)) }
    }
}
