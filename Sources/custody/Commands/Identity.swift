import ArgumentParser
import CustodyArchive
import CustodyCrypto
import CustodyStorage
import Foundation

extension CustodyCommand {
    struct ID: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "id",
            abstract: "Show or export this archive's public identity.",
            subcommands: [Show.self, Export.self]
        )

        struct Show: AsyncParsableCommand {
            static let configuration = CommandConfiguration(abstract: "Print the identity and its fingerprint.")
            @OptionGroup var global: GlobalOptions
            @Flag(help: "Print JSON.") var json = false

            func run() async throws {
                try await runReportingErrorsAsync {
                    let identity = try global.openArchive().identity()
                    if json {
                        try printJSON(IdentityJSON(identity))
                    } else {
                        print("name         \(identity.name)")
                        print("origin       \(identity.origin)")
                        print("fingerprint  \(identity.fingerprint)")
                        print("signing key  \(identity.signingKey)")
                        print("box key      \(identity.boxKey)")
                        print("log key      \(identity.logVerifierKey)")
                    }
                }
            }
        }

        struct Export: AsyncParsableCommand {
            static let configuration = CommandConfiguration(
                abstract: "Write the self-signed identity file to give to other bodies.",
                discussion: "Only public keys. The recipient must compare the fingerprint with you out of band."
            )
            @OptionGroup var global: GlobalOptions
            @Option(name: .shortAndLong, help: "The file to write ('-' for standard output).") var output: String
            @Flag(help: "Replace an existing file.") var force = false

            func run() async throws {
                try await runReportingErrorsAsync {
                    let identity = try global.openArchive().identity()
                    let bytes = try identity.jsonBytes()
                    if output == "-" {
                        FileHandle.standardOutput.write(Data(bytes))
                        return
                    }
                    if !force && FileManager.default.fileExists(atPath: output) {
                        throw ArchiveError(
                            .cannotCreate,
                            "\(output) already exists",
                            fix: "choose another -o path or pass --force"
                        )
                    }
                    guard
                        FileManager.default.createFile(
                            atPath: output,
                            contents: Data(bytes),
                            attributes: [.posixPermissions: 0o644]
                        )
                    else {
                        throw ArchiveError(
                            .cannotCreate,
                            "cannot write \(output)",
                            fix: "check the folder's permissions"
                        )
                    }
                    print("Wrote \(output) — fingerprint \(identity.fingerprint)")
                }
            }
        }
    }

    struct Passphrase: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Manage the passphrase that seals the archive's secrets.",
            subcommands: [Change.self]
        )

        struct Change: AsyncParsableCommand {
            static let configuration = CommandConfiguration(
                abstract: "Re-seal the acting member's keys (or an archive's without members) under a new passphrase.",
                discussion: """
                    The current passphrase comes from --passphrase-file, $CUSTODY_PASSPHRASE or a prompt; the new one \
                    from --new-passphrase-file, $CUSTODY_NEW_PASSPHRASE or a prompt. In an archive with members each \
                    member changes their own (the same as custody member passphrase); the event is signed by them.
                    """
            )
            @OptionGroup var global: GlobalOptions
            @Option(help: "Read the new passphrase from this file.", completion: .file()) var newPassphraseFile: String?
            @Option(help: "Also change the Argon2id preset (interactive, moderate, sensitive).") var kdf: String?

            func run() async throws {
                try await runReportingErrorsAsync {
                    let archive = try global.openArchive(access: .exclusive)
                    let fresh = try global.readNewPassphrase(file: newPassphraseFile, prompt: "New passphrase: ")
                    try await archive.changePassphrase(to: fresh, kdfPreset: kdf)
                    print("passphrase changed")
                }
            }
        }
    }
}
