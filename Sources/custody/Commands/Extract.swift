import ArgumentParser
import CustodyArchive
import Foundation

extension CustodyCommand {
    struct Extract: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Decrypt an item to a file, re-verifying its SHA-256 first. Recorded as a custody event.",
            discussion: """
                The file appears only after its SHA-256 matched. An existing file is kept unless --force. An item \
                whose grant its granter revoked (a verified revocation notice is recorded) is refused unless \
                --despite-revocation: revocation cannot take back what was delivered, but it withdraws the \
                granter's consent to its use.
                """
        )

        @OptionGroup var global: GlobalOptions
        @Argument(help: "Item id or unique prefix.") var item: String
        @Option(
            name: .shortAndLong,
            help: "The file to write, or an existing folder to write it in under its original name (bytes kept).",
            completion: .file()
        )
        var output: String
        @Flag(help: "Replace an existing file.") var force = false
        @Option(help: "Why the plaintext leaves the archive (recorded, sealed like a note; shown by custody show).")
        var purpose: String?
        @Flag(help: "Extract an item whose grant was revoked (warned on stderr; the extract is recorded).")
        var despiteRevocation = false
        @Flag(help: "Print JSON.") var json = false

        func run() async throws {
            try await runReportingErrorsAsync {
                let archive = try global.unlockArchive(for: [.extract])
                if let (grant, revoked) = try await archive.checkExtractAllowed(
                    item,
                    despiteRevocation: despiteRevocation
                ) {
                    FileHandle.standardError.write(
                        Data(
                            "custody: WARNING: grant \(grant), under which this item came, was revoked by \(TerminalText.escape(revoked.revokedBy)) at \(revoked.revokedAt); extracting it anyway\n"
                                .utf8
                        )
                    )
                }
                let result = try await archive.extract(item, to: output, force: force, purpose: purpose)
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
