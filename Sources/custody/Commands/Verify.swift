import ArgumentParser
import CustodyArchive
import CustodyStorage
import Foundation

extension CustodyCommand {
    struct Verify: AsyncParsableCommand {
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
        @Flag(help: "Presence and sizes only, from one listing of the object store.") var quick = false
        @Flag(help: "Decrypt everything and re-check every SHA-256.") var deep = false
        @Option(
            help: ArgumentHelp(
                "Re-hash only a rotating slice of about P% of the objects; each run continues where the last ended, so 100/P runs cover all (for huge archives on S3).",
                valueName: "P%"
            )
        )
        var sample: String?
        @Flag(help: "Print JSON.") var json = false

        func validate() throws {
            if quick && deep { throw ValidationError("--quick and --deep exclude each other") }
            if sample != nil && (quick || deep) { throw ValidationError("--sample goes without --quick and --deep") }
            if let sample, samplePercent(sample) == nil {
                throw ValidationError("--sample takes a percentage between 0 and 100, e.g. --sample 10%")
            }
        }

        func samplePercent(_ text: String) -> Double? {
            let number = text.hasSuffix("%") ? String(text.dropLast()) : text
            guard let value = Double(number), value > 0, value <= 100 else { return nil }
            return value
        }

        func run() async throws {
            try await runReportingErrorsAsync {
                let mode: VerifyMode = quick ? .quick : deep ? .deep : .standard
                let archive = try global.openArchive()
                let bar = ProgressBar(enabled: Terminal.stderrIsTTY, label: "verify")
                let report = try await archive.verify(mode: mode, samplePercent: sample.flatMap(samplePercent)) {
                    bar.update(done: $1, total: $2, unit: $0)
                }
                bar.finish()
                if json {
                    try printJSON(VerifyJSON(report))
                } else {
                    print(
                        "checked \(report.entries) journal entries, \(report.items) items, \(report.objectsChecked) objects (\(mode.rawValue))"
                    )
                    if let sample = report.sample {
                        print(
                            "sample: \(sample.objects) of \(sample.totalObjects) objects re-hashed (name slice \(String(format: "%04x", sample.start))–\(String(format: "%04x", (sample.start + sample.count - 1) % 65536))); the next run continues from \(String(format: "%04x", sample.next))"
                        )
                    }
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

    struct GC: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "gc",
            abstract: "Remove orphan objects (named by no journal event) and leftover temporary files.",
            discussion: "Runs alone (waits for other custody commands). Refuses to run while the journal has problems."
        )

        @OptionGroup var global: GlobalOptions
        @Flag(help: "Only list what would be removed.") var dryRun = false
        @Flag(help: "Print JSON.") var json = false

        func run() async throws {
            try await runReportingErrorsAsync {
                let report = try await global.openArchive(access: .exclusive).collectGarbage(dryRun: dryRun)
                if json {
                    try printJSON(
                        GCJSON(
                            removed: report.objects,
                            bytes: report.bytes,
                            temporaryFiles: report.temporaryFiles,
                            leftAlone: report.strays.map { "objects/\($0.path)" },
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
                for stray in report.strays {
                    printError(
                        "custody: left alone \(stray) — custody never follows links inside the archive; remove it by hand and find out who planted it"
                    )
                }
            }
        }
    }

    struct Reindex: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Rebuild the search index from the journal and the objects (needs the passphrase).",
            discussion: "Use it when the index is corrupt or lost. Runs alone."
        )

        @OptionGroup var global: GlobalOptions

        func run() async throws {
            try await runReportingErrorsAsync {
                let options = global
                let count = try await Archive.reindex(at: global.archivePath()) { name in
                    try options.readPassphrase(prompt: "Passphrase for \(name): ")
                }
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
    var sample: VerifySample?

    enum CodingKeys: String, CodingKey {
        case ok, entries, items, problems, orphans, warnings, sample
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
        sample = report.sample
    }
}

struct GCJSON: Encodable {
    var removed: [String]
    var bytes: Int64
    var temporaryFiles: Int
    var leftAlone: [String]
    var dryRun: Bool

    enum CodingKeys: String, CodingKey {
        case removed, bytes
        case temporaryFiles = "temporary_files"
        case leftAlone = "left_alone"
        case dryRun = "dry_run"
    }
}
