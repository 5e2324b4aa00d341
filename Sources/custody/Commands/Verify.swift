import ArgumentParser
import CustodyArchive
import Foundation

extension CustodyCommand {
    struct Verify: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Check the archive's integrity. No keys needed unless --deep.",
            discussion: """
                Default: every journal signature is checked, every object the journal names is re-hashed against its \
                name. --quick checks presence and sizes only. --deep also decrypts every part and chunk and re-checks \
                every SHA-256 and evidence commitment (needs the passphrase). Exits 1 when damage is found; orphans \
                (objects no event names, left by a crash) are warnings — remove them with custody gc.
                """
        )

        @OptionGroup var global: GlobalOptions
        @Flag(help: "Presence and sizes only.") var quick = false
        @Flag(help: "Decrypt everything and re-check every SHA-256.") var deep = false
        @Flag(help: "Print JSON.") var json = false

        func validate() throws {
            if quick && deep { throw ValidationError("--quick and --deep exclude each other") }
        }

        func run() throws {
            try runReportingErrors {
                let mode: VerifyMode = quick ? .quick : deep ? .deep : .standard
                let archive = try global.openArchive()
                let bar = ProgressBar(enabled: Terminal.stderrIsTTY, label: "verify")
                let report = try archive.verify(mode: mode) { bar.update(done: $1, total: $2, unit: $0) }
                bar.finish()
                if json {
                    try printJSON(VerifyJSON(report))
                } else {
                    print(
                        "checked \(report.entries) journal entries, \(report.items) items, \(report.objectsChecked) objects (\(mode.rawValue))"
                    )
                    if let size = report.checkpointSize {
                        print(
                            "ledger: \(report.checkpointsChecked) signed checkpoint(s) checked against the entries; the latest covers \(size)"
                        )
                    }
                    for warning in report.warnings { print("warning: \(warning)") }
                    for orphan in report.orphans {
                        print("orphan: \(orphan) (no event names it; custody gc removes it)")
                    }
                    for p in report.problems {
                        var parts = ["\(p.kind):"]
                        if let object = p.object { parts.append("object \(object)") }
                        if let item = p.item { parts.append("item \(item)") }
                        if let entry = p.entry { parts.append("entry \(entry)") }
                        parts.append("— \(p.detail)")
                        print(parts.joined(separator: " "))
                    }
                    print(report.ok ? "OK: no damage found" : "DAMAGED: \(report.problems.count) problem(s)")
                }
                if !report.ok { throw ExitCode(1) }
            }
        }
    }

    struct GC: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "gc",
            abstract: "Remove orphan objects (named by no journal event) and leftover temporary files.",
            discussion: "Runs alone (waits for other custody commands). Refuses to run while the journal has problems."
        )

        @OptionGroup var global: GlobalOptions
        @Flag(help: "Only list what would be removed.") var dryRun = false
        @Flag(help: "Print JSON.") var json = false

        func run() throws {
            try runReportingErrors {
                let report = try global.openArchive(access: .exclusive).collectGarbage(dryRun: dryRun)
                if json {
                    try printJSON(
                        GCJSON(
                            removed: report.objects,
                            bytes: report.bytes,
                            temporaryFiles: report.temporaryFiles,
                            dryRun: dryRun
                        )
                    )
                } else {
                    let verb = dryRun ? "would remove" : "removed"
                    for name in report.objects { print("\(verb) \(name)") }
                    print(
                        "\(verb) \(report.objects.count) orphan object(s), \(formatBytes(report.bytes)), and \(report.temporaryFiles) temporary file(s)"
                    )
                }
            }
        }
    }

    struct Reindex: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Rebuild the search index from the journal and the objects (needs the passphrase).",
            discussion: "Use it when the index is corrupt or lost. Runs alone."
        )

        @OptionGroup var global: GlobalOptions

        func run() throws {
            try runReportingErrors {
                let count = try global.openArchive(access: .exclusive).reindex()
                print("index rebuilt: \(count) item(s)")
            }
        }
    }
}

struct VerifyJSON: Encodable {
    var ok: Bool
    var objectsChecked: Int
    var entries: Int
    var items: Int
    var problems: [VerifyProblem]
    var orphans: [String]
    var warnings: [String]
    var checkpointSize: Int?
    var checkpointsChecked: Int

    enum CodingKeys: String, CodingKey {
        case ok, entries, items, problems, orphans, warnings
        case objectsChecked = "objects_checked"
        case checkpointSize = "checkpoint_size"
        case checkpointsChecked = "checkpoints_checked"
    }

    init(_ report: VerifyReport) {
        ok = report.ok
        objectsChecked = report.objectsChecked
        entries = report.entries
        items = report.items
        problems = report.problems
        orphans = report.orphans
        warnings = report.warnings
        checkpointSize = report.checkpointSize
        checkpointsChecked = report.checkpointsChecked
    }
}

struct GCJSON: Encodable {
    var removed: [String]
    var bytes: Int64
    var temporaryFiles: Int
    var dryRun: Bool

    enum CodingKeys: String, CodingKey {
        case removed, bytes
        case temporaryFiles = "temporary_files"
        case dryRun = "dry_run"
    }
}
