import ArgumentParser
import CustodyArchive
import CustodyStorage
import Foundation

extension CustodyCommand {
    struct KeysCommand: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "keys",
            abstract: "The archive's own keys: rotate its content secrets.",
            subcommands: [Rotate.self]
        )

        struct Rotate: AsyncParsableCommand {
            static let configuration = CommandConfiguration(
                abstract: "Make new content secrets (box key, convergence secret) after a member left or a leak.",
                discussion: """
                    Needs an administrator and every current member's key file in members/. A new master secret \
                    (so a new convergence secret) and a new box key are made; the signing and log keys stay, so \
                    witnesses and the log are unaffected. Every member's key file receives the new secrets, every \
                    item's keys are wrapped anew to the new box key (rewrap events), and a key-rotation event — \
                    signed by the archive's key, naming the old and new box keys, the reason sealed — is the \
                    key-transition statement: identity.json then carries it, and peers that knew the old identity \
                    follow it (custody peer add / witness add with the new identity file, or the next bundle or \
                    pull) without re-trusting by hand. The fingerprint changes. Someone who copied the old secrets \
                    cannot open anything ingested afterwards; what they could already open stays open to them \
                    (Docs/THREAT-MODEL.md section 7). A recovery split is retired: make a new one. Interrupted, \
                    every other command refuses until `keys rotate --resume` finishes (or discards) it.
                    """
            )
            @OptionGroup var global: GlobalOptions
            @Option(help: "Why the keys are rotated (sealed to the archive; required).") var reason: String?
            @Flag(help: "Finish a rotation that was interrupted.") var resume = false
            @Flag(help: "Print JSON.") var json = false

            func run() async throws {
                try await runReportingErrorsAsync {
                    if !resume, reason == nil {
                        throw ArchiveError(
                            .usage,
                            "a rotation needs a reason",
                            fix: "give --reason \"…\" (it is sealed)"
                        )
                    }
                    let archive = try global.openArchive(access: .exclusive)
                    let bar = ProgressBar(enabled: Terminal.stderrIsTTY && !json, label: "rewrap")
                    let result = try await archive.rotateKeys(reason: reason, resume: resume) { done, total in
                        bar.update(done: done, total: total, unit: "items")
                    }
                    bar.finish()
                    if json {
                        try printJSON(result)
                        return
                    }
                    print(
                        result.resumed
                            ? "finished the interrupted key rotation (log entry \(result.logIndex))"
                            : "rotated the archive's content secrets (log entry \(result.logIndex))"
                    )
                    print("fingerprint: \(result.previousFingerprint) -> \(result.fingerprint)")
                    print("\(result.rewrapped) item(s) wrapped anew; \(result.members) member key file(s) re-sealed")
                    if result.recoveryRetired {
                        print("the recovery split is retired: make a new one with custody recovery split")
                    }
                    print(
                        "give peers the new identity (custody id export): it carries the key transition they follow"
                    )
                }
            }
        }
    }
}

/// Says that a known body's key rotation was followed: the registry now holds its new identity.
func printFollowed(_ body: KnownBody, from previous: String) {
    print(
        "followed the key rotation of \(TerminalText.escape(body.identity.name)) (\(body.identity.origin)), proved by its log: fingerprint \(previous) -> \(body.identity.fingerprint)"
    )
}
