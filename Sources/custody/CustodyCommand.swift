import ArgumentParser
import CustodyArchive
import Foundation

@main
struct CustodyCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "custody",
        abstract: "An encrypted, verifiable evidence archive for human rights work.",
        discussion: """
            Every command works on the archive named by --archive or $CUSTODY_ARCHIVE. Commands act as a member of \
            the archive (--member NAME or $CUSTODY_MEMBER; the only member when there is one); those that need \
            the archive's secrets read that member's passphrase from --passphrase-file, $CUSTODY_PASSPHRASE, or \
            a prompt.

            Exit codes: 0 ok; 1 damage found or a check failed; 64 usage; 65 bad input data; 66 not found; \
            73 cannot create; 75 temporary failure; 77 wrong passphrase or not authorised. An error is one line \
            on standard error, `custody: <what> — <how to fix>`; with CUSTODY_ERROR_FORMAT=json it is one JSON \
            line instead, {"error":{"reason":…,"class":…,"exit":…,"problem":…,"fix":…}}, whose reason is a \
            stable name for scripts (Docs/OPERATIONS.md section 10).
            """,
        version: "0.1.0",
        subcommands: [
            Init.self, Ingest.self, List.self, Search.self, Show.self, Extract.self, Verify.self, GC.self,
            Reindex.self, Tag.self, Note.self, GrantCommand.self, BundleCommand.self, Submit.self, Serve.self,
            Peer.self, Pull.self, Log.self, MigrateObjects.self,
            CheckpointCommand.self,
            Prove.self,
            Witness.self, ID.self,
            MemberCommand.self, KeysCommand.self, RecoveryCommand.self, Passphrase.self, Demo.self, Bench.self,
        ]
    )

    /// Every command starts here: core dumps go off before the arguments are parsed or a secret is read (a core
    /// would hold `CUSTODY_PASSPHRASE` and the unlocked keys), then ArgumentParser runs the command as usual.
    static func main() async {
        let code = ProcessSetup.disableCoreDumps()
        if code != 0 {
            printError(
                "custody: cannot turn core dumps off (\(String(cString: strerror(code)))) — check the system's limits"
            )
            Foundation.exit(1)
        }
        do {
            var command = try parseAsRoot()
            if var command = command as? any AsyncParsableCommand {
                try await command.run()
            } else {
                try command.run()
            }
        } catch {
            exit(withError: error)
        }
    }
}
