import ArgumentParser
import CustodyArchive
import CustodyStorage
import Foundation

extension CustodyCommand {
    struct Submit: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Send evidence to a mechanism: ingest it here and write a bundle granted to the mechanism.",
            discussion: """
                The bundle grants full content, no re-share, as a submission; the mechanism's custody bundle import \
                records it as a submission from this archive's identity. With --anonymous no archive is needed: a \
                throw-away identity is made, used once and deleted, and the mechanism records an anonymous \
                submission (nothing in the bundle names you; keep the bundle itself safe in transit).
                """
        )

        @OptionGroup var global: GlobalOptions
        @Argument(help: "Files or folders to submit.", completion: .file()) var paths: [String]
        @Option(help: "The mechanism's identity file (custody id export).", completion: .file()) var to: String
        @OptionGroup var metadata: MetadataOptions
        @Option(name: .shortAndLong, help: "The bundle to write.") var output: String
        @Option(help: "How long the mechanism may import it (90d, 12h) or until (RFC 3339).") var expires = "3650d"
        @Option(help: "What the submission is for (sealed to the two bodies).") var purpose = "submission"
        @Flag(help: "Submit without an archive, under a throw-away identity.") var anonymous = false
        @Flag(help: "Print JSON.") var json = false

        func run() async throws {
            try await runReportingErrorsAsync {
                guard !paths.isEmpty else { throw ArchiveError(.usage, "no files given", fix: "name files to submit") }
                let mechanism = try Archive.readIdentity(to)
                guard let until = Expiry.resolve(expires) else {
                    throw ArchiveError(
                        .usage,
                        "--expires \(expires) is not a duration or time",
                        fix: "use 90d or an RFC 3339 time"
                    )
                }
                var options = IngestOptions()
                options.fields = try metadata.fields()
                printError(
                    "submitting to \(mechanism.name) (\(mechanism.origin)), fingerprint \(mechanism.fingerprint)"
                )
                let result =
                    await anonymous
                    ? try Archive.submitAnonymously(
                        paths,
                        options: options,
                        to: mechanism,
                        expires: until,
                        purpose: purpose,
                        output: output
                    )
                    : try global.unlockArchive(for: [.share]).submit(
                        paths,
                        options: options,
                        to: mechanism,
                        expires: until,
                        purpose: purpose,
                        output: output
                    )
                if json {
                    try printJSON(
                        SubmitJSON(
                            grant: result.grant,
                            items: result.items.map(\.id.hex),
                            bundle: output,
                            bytes: result.bundle.bytes,
                            anonymous: anonymous
                        )
                    )
                } else {
                    print(
                        "wrote \(output): \(result.items.count) item(s) for \(mechanism.name), \(formatBytes(result.bundle.bytes))\(anonymous ? ", anonymous" : "")"
                    )
                }
            }
        }
    }
}

struct SubmitJSON: Encodable {
    var grant: String
    var items: [String]
    var bundle: String
    var bytes: Int64
    var anonymous: Bool
}
