import ArgumentParser
import CustodyArchive
import CustodyCrypto
import CustodyStorage
import Foundation

extension CustodyCommand {
    struct BundleCommand: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "bundle",
            abstract: "Export a grant as one verifiable file, verify a bundle with no keys, import one.",
            discussion: "The format is in Docs/SHARING.md; Docs/examples/verify_bundle.py checks one independently.",
            subcommands: [Export.self, Verify.self, Import.self]
        )

        struct Export: AsyncParsableCommand {
            static let configuration = CommandConfiguration(
                abstract: "Write a grant's bundle: grant, proofs, sealed parts and objects of the items in scope.",
                discussion: "Streamed: the bundle is never held in memory. No passphrase needed."
            )
            @OptionGroup var global: GlobalOptions
            @Argument(help: "Grant id or unique prefix.") var grant: String
            @Option(name: .shortAndLong, help: "The bundle file to write.") var output: String
            @Flag(help: "Replace an existing file.") var force = false
            @Flag(help: "Print JSON.") var json = false

            func run() async throws {
                try await runReportingErrorsAsync {
                    let archive = try global.openArchive(authorizing: [.share])
                    let bar = ProgressBar(enabled: Terminal.stderrIsTTY && !json, label: "export")
                    let result = try await archive.exportBundle(grant: grant, to: output, force: force) { done, total in
                        bar.update(done: done, total: total, unit: "objects")
                    }
                    bar.finish()
                    if json {
                        try printJSON(
                            BundleExportJSON(
                                grant: result.grant,
                                path: output,
                                items: result.items,
                                objects: result.objects,
                                entries: result.entries,
                                bytes: result.bytes,
                                checkpointSize: result.checkpointSize
                            )
                        )
                    } else {
                        print(
                            "wrote \(output): grant \(result.grant), \(result.items) item(s), \(result.objects) object(s), \(formatBytes(result.bytes))"
                        )
                    }
                }
            }
        }

        struct Verify: AsyncParsableCommand {
            static let configuration = CommandConfiguration(
                abstract: "Check a bundle: signatures, hashes, proofs, references and validity. No keys, no archive.",
                discussion: """
                    Without --granter the check cannot know that the granter is who the bundle says, and says so; \
                    with it, a bundle from another granter fails. --witness checks the checkpoint's cosignatures \
                    by those bodies (others are listed as unchecked). --at checks validity at another time (a \
                    court, years later). Exit 0 when the bundle is intact, from the named granter, and valid at \
                    that time; 1 otherwise.
                    """
            )
            @Argument(help: "The bundle file.", completion: .file()) var file: String
            @Option(help: "The granter's identity file, obtained independently.", completion: .file()) var granter:
                String?
            @Option(
                name: .customLong("witness"),
                help: "A witness's identity file, to check its cosignature of the checkpoint (repeatable).",
                completion: .file()
            ) var witnesses: [String] = []
            @Option(help: "Check validity at this time (RFC 3339) instead of now.") var at: String?
            @Flag(help: "Print JSON.") var json = false

            func run() async throws {
                try await runReportingErrorsAsync {
                    let expected = try granter.map(Archive.readIdentity)
                    var witnessKeys: [String: [UInt8]] = [:]
                    for path in witnesses {
                        let identity = try Archive.readIdentity(path)
                        witnessKeys[identity.origin] = Encoding.bytes(base64: identity.signingKey)
                    }
                    var time = Int(Date().timeIntervalSince1970)
                    if let at {
                        guard let parsed = RFC3339.parse(at) else {
                            throw ArchiveError(
                                .usage,
                                "--at \(at) is not an RFC 3339 time",
                                fix: "use e.g. 2031-01-01T00:00:00Z"
                            )
                        }
                        time = parsed
                    }
                    let (report, _) = try await BundleVerifier.verify(
                        path: file,
                        granter: expected,
                        witnesses: witnessKeys,
                        at: time
                    )
                    if json {
                        try printJSON(report)
                    } else {
                        print("grant     \(report.grant ?? "?")")
                        print(
                            "granter   \(report.granter ?? "?")\(report.granterTrusted ? "  (matches --granter)" : "")"
                        )
                        print("grantee   \(report.grantee ?? "?")")
                        if let member = report.grantedBy {
                            print("granted by \(member.name) (\(member.role)), proved against the granter's roster")
                        }
                        print(
                            "items     \(report.items), objects \(report.objects), \(report.permission?.rawValue ?? "?")"
                        )
                        print("expires   \(report.expires ?? "?")")
                        for cosignature in report.cosignatures {
                            let when = cosignature.time.map { " at \($0)" } ?? ""
                            print(
                                "cosigned  by \(TerminalText.escape(cosignature.witness)): \(cosignature.status)\(when)"
                            )
                        }
                        for problem in report.problems {
                            let at = [
                                problem.item.map { "item \($0)" }, problem.object.map { "object \($0)" },
                                problem.entry.map { "entry \($0)" },
                            ]
                            .compactMap { $0 }.joined(separator: ", ")
                            print("\(problem.kind)\(at.isEmpty ? "" : " (\(at))"): \(problem.detail)")
                        }
                        print(report.integrityOK ? "integrity: OK" : "integrity: FAILED")
                        print("valid at \(report.checkedAt): \(report.validNow ? "yes" : "no")")
                        if expected == nil {
                            print(
                                "granter: NOT CHECKED — without --granter FILE the bundle's own identity is taken at its word"
                            )
                        } else if !report.granterTrusted {
                            print("granter: MISMATCH — the bundle is not from the body of --granter")
                        }
                    }
                    if !report.ok { throw ExitCode(1) }
                }
            }
        }

        struct Import: AsyncParsableCommand {
            static let configuration = CommandConfiguration(
                abstract: "Import a bundle granted to this archive: verify, decrypt, check every SHA-256, record.",
                discussion: """
                    Refuses bundles addressed to another body, expired, tampered, or from an unknown granter unless \
                    --trust-granter (which prints the granter's fingerprint and remembers it). Atomic and idempotent. \
                    Needs the passphrase.
                    """
            )
            @OptionGroup var global: GlobalOptions
            @Argument(help: "The bundle file.", completion: .file()) var file: String
            @Flag(help: "Trust the bundle's granter (compare its fingerprint out of band first).") var trustGranter =
                false
            @Flag(help: "Print JSON.") var json = false

            func run() async throws {
                try await runReportingErrorsAsync {
                    let archive = try global.unlockArchive(for: [.share])
                    let bar = ProgressBar(enabled: Terminal.stderrIsTTY && !json, label: "import")
                    let result = try await archive.importBundle(
                        path: file,
                        trustGranter: trustGranter,
                        progress: { done, total in bar.update(done: done, total: total, unit: "objects") }
                    )
                    bar.finish()
                    if json {
                        try printJSON(
                            BundleImportJSON(
                                grant: result.grant,
                                granter: result.granter,
                                imported: result.imported,
                                alreadyPresent: result.alreadyPresent,
                                granterTrustedNow: result.trustedNow
                            )
                        )
                        return
                    }
                    if result.trustedNow { print("granter trusted now: \(result.granter)") }
                    print(
                        "grant \(result.grant) from \(result.granter): \(result.imported.count) item(s) imported, \(result.alreadyPresent.count) already here"
                    )
                    for id in result.imported { print("  \(id)") }
                }
            }
        }
    }
}

struct BundleExportJSON: Encodable {
    var grant: String
    var path: String
    var items: Int
    var objects: Int
    var entries: Int
    var bytes: Int64
    var checkpointSize: Int

    enum CodingKeys: String, CodingKey {
        case grant, path, items, objects, entries, bytes
        case checkpointSize = "checkpoint_size"
    }
}

struct BundleImportJSON: Encodable {
    var grant: String
    var granter: String
    var imported: [String]
    var alreadyPresent: [String]
    var granterTrustedNow: Bool

    enum CodingKeys: String, CodingKey {
        case grant, granter, imported
        case alreadyPresent = "already_present"
        case granterTrustedNow = "granter_trusted_now"
    }
}
