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
                """
        )

        @OptionGroup var global: GlobalOptions
        @Argument(help: "Files or folders to ingest.", completion: .file()) var paths: [String]
        @OptionGroup var metadata: MetadataOptions
        @Option(help: ArgumentHelp("Refuse the file unless its SHA-256 is this (one file only).", valueName: "hex"))
        var expectSha256: String?
        @Option(help: ArgumentHelp("A sha256sum-style list; every file must match its line.", valueName: "file"))
        var expectFrom: String?
        @Flag(help: "Ingest what can be taken and report the rest, instead of refusing the whole run.")
        var skipProblems = false
        @Flag(help: "Print JSON.") var json = false

        func run() async throws {
            try await runReportingErrorsAsync {
                guard !paths.isEmpty else {
                    throw ArchiveError(.usage, "no files given", fix: "name files or folders to ingest")
                }
                var options = IngestOptions()
                options.skipProblems = skipProblems
                options.fields = try metadata.fields()
                if let expectSha256 {
                    guard paths.count == 1, expectSha256.count == 64, expectSha256.allSatisfy(\.isHexDigit) else {
                        throw ArchiveError(
                            .usage,
                            "--expect-sha256 needs one file and 64 hex characters",
                            fix: "use --expect-from for several files"
                        )
                    }
                    options.expectedSHA256[paths[0]] = expectSha256.lowercased()
                    options.requireExpected = true
                }
                if let expectFrom {
                    options.expectedSHA256 = try parseHashList(expectFrom)
                    options.requireExpected = true
                }
                let opened = try global.openArchive()
                // Field staff add items with keys that open none (Docs/THREAT-MODEL.md section 7).
                let archive: any EventRecording
                if try opened.actsAsFieldStaff() {
                    archive = try opened.deposit()
                } else {
                    archive = try opened.unlock()
                }
                try archive.authorize(archive.acting, for: [.ingest])
                let bar = ProgressBar(enabled: Terminal.stderrIsTTY, label: "ingest")
                let report = try await archive.ingest(paths, options: options) { bar.update($0) }
                bar.finish()
                if json {
                    try printJSON(IngestJSON(report))
                } else {
                    for item in report.items {
                        let dup = item.duplicateOf.map { "  (duplicates \($0))" } ?? ""
                        print("\(item.id)  \(item.sha256.prefix(16))…  \(formatBytes(item.size))  \(item.path)\(dup)")
                    }
                    print("\(report.items.count) item(s) ingested")
                }
                for problem in report.skipped {
                    printError("custody: skipped \(problem.path): \(problem.reason)")
                }
                if !report.refused.isEmpty {
                    for problem in report.refused {
                        printError("custody: refused \(problem.path): \(problem.reason)")
                    }
                    throw ArchiveError(
                        .badInput,
                        "\(report.refused.count) file(s) refused: SHA-256 differs from the expected value",
                        fix: "check these files against the collector's record"
                    )
                }
            }
        }

        /// Parses `sha256sum` output: `<64 hex>  <path>` or `<64 hex> *<path>`.
        private func parseHashList(_ path: String) throws -> [String: String] {
            let text = String(decoding: try readSmallFile(path), as: UTF8.self)
            var result: [String: String] = [:]
            for (number, line) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
                let trimmed = line.hasSuffix("\r") ? line.dropLast() : line
                if trimmed.isEmpty { continue }
                let hex = trimmed.prefix(64)
                let rest = trimmed.dropFirst(64)
                guard hex.count == 64, hex.allSatisfy(\.isHexDigit), rest.hasPrefix("  ") || rest.hasPrefix(" *") else {
                    throw ArchiveError(
                        .badInput,
                        "\(path) line \(number + 1) is not '<sha256>  <path>'",
                        fix: "use the output format of sha256sum"
                    )
                }
                let listed = String(rest.dropFirst(2))
                result[listed] = hex.lowercased()
                result[canonicalPath(listed)] = hex.lowercased()
            }
            return result
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
    var items: [Item]
    var skipped: [Problem]
    var refused: [Problem]

    init(_ report: IngestReport) {
        items = report.items.map {
            Item(id: $0.id.hex, path: $0.path, sha256: $0.sha256, size: $0.size, duplicateOf: $0.duplicateOf)
        }
        skipped = report.skipped.map { Problem(path: $0.path, reason: $0.reason) }
        refused = report.refused.map { Problem(path: $0.path, reason: $0.reason) }
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
