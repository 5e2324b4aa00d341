import ArgumentParser
import CustodyArchive

extension CustodyCommand {
    struct Extract: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Decrypt an item to a file, re-verifying its SHA-256 first. Recorded as a custody event.",
            discussion: "The file appears only after its SHA-256 matched. An existing file is kept unless --force."
        )

        @OptionGroup var global: GlobalOptions
        @Argument(help: "Item id or unique prefix.") var item: String
        @Option(name: .shortAndLong, help: "The file to write.", completion: .file()) var output: String
        @Flag(help: "Replace an existing file.") var force = false
        @Flag(help: "Print JSON.") var json = false

        func run() throws {
            try runReportingErrors {
                let result = try global.openArchive().extract(item, to: output, force: force)
                if json {
                    try printJSON([
                        "id": result.item.hex, "path": result.path, "sha256": result.sha256, "size": "\(result.size)",
                    ])
                } else {
                    print(
                        "Extracted \(result.item) to \(result.path) (\(formatBytes(result.size)), SHA-256 verified \(result.sha256))"
                    )
                }
            }
        }
    }
}
