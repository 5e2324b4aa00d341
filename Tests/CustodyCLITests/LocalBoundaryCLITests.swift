import CustodyArchive
import CustodyCrypto
import CustodyTestSupport
import Foundation
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// The local side of the trust boundary, end to end with the built binary: core dumps off for every command,
/// the passphrase file checked as ssh checks a key, identity names with terminal controls refused, and every
/// human-readable line escaped on its way to the terminal.
@Suite struct LocalBoundaryCLITests {
    let dir = TempDirectory("local-boundary-cli")
    var env: [String: String] { ["CUSTODY_ARCHIVE": dir.path + "/archive", "CUSTODY_PASSPHRASE": "local boundary"] }

    private func initArchive() throws {
        let created = CLI.run(["init", "--name", "Body B", "--kdf", "insecure-test"], environment: env)
        try #require(created.status == 0, "\(created.stderr)")
    }

    // MARK: Core dumps

    /// `/proc/<pid>/limits`' "Max core file size" soft and hard values.
    private func coreLimits(_ pid: pid_t) -> [String] {
        let limits = (try? String(contentsOfFile: "/proc/\(pid)/limits", encoding: .utf8)) ?? ""
        guard let line = limits.split(separator: "\n").first(where: { $0.hasPrefix("Max core file size") }) else {
            return []
        }
        return line.dropFirst("Max core file size".count).split(separator: " ").prefix(2).map(String.init)
    }

    @Test(.enabled(if: FileManager.default.fileExists(atPath: "/proc/self/limits"), "needs Linux /proc"))
    func coreDumpsAreOffAndTheProcessIsNotDumpable() throws {
        // The child starts with core dumps allowed (`ulimit -S -c unlimited`) and as an ordinary user (nobody,
        // when the tests run as root), so both checks can fail: the kernel owns a process's /proc files by root
        // exactly when it is not dumpable, and the limits are what the process set, not what it inherited.
        let asRoot = getuid() == 0
        let user: uid_t = asRoot ? 65534 : getuid()
        if asRoot { try #require(FileManager.default.isExecutableFile(atPath: "/usr/bin/setpriv"), "needs setpriv") }
        let archive = dir.path + "/nobody"
        mkdir(archive, 0o700)
        if asRoot { chown(archive, user, gid_t(user)) }
        let wrapper = ["/bin/sh", "-c", "ulimit -S -c unlimited && exec \"$0\" \"$@\"", CLI.binary]
        func command(_ arguments: [String]) -> (String, [String]) {
            let full = wrapper + arguments
            return asRoot
                ? ("/usr/bin/setpriv", ["--reuid=\(user)", "--regid=\(user)", "--clear-groups"] + full)
                : (full[0], Array(full.dropFirst()))
        }
        let environment = ["CUSTODY_ARCHIVE": archive + "/a", "CUSTODY_PASSPHRASE": "core dumps off", "HOME": archive]
        let (initProgram, initArguments) = command(["init", "--name", "Core", "--kdf", "insecure-test"])
        let created = CLI.run(executable: initProgram, initArguments, environment: environment)
        try #require(created.status == 0, "\(created.stderr)")
        let (serveProgram, serveArguments) = command(["serve", "--listen", "127.0.0.1:0"])
        let child = CLI.start(executable: serveProgram, serveArguments, environment: environment)
        defer {
            kill(child.pid, SIGTERM)
            _ = child.wait()
        }
        for _ in 0..<200 where !child.outputSoFar.contains("listening on") { usleep(50_000) }
        try #require(child.outputSoFar.contains("listening on"), "serve did not start")
        #expect(coreLimits(child.pid) == ["0", "0"])
        let status = (try? String(contentsOfFile: "/proc/\(child.pid)/status", encoding: .utf8)) ?? ""
        #expect(status.contains("Uid:\t\(user)\t"))
        var st = stat()
        #expect(stat("/proc/\(child.pid)/status", &st) == 0)
        #expect(st.st_uid == 0, "a dumpable process owns its /proc files")
        // What the wrapper gave the child before custody started: core dumps allowed.
        let shell = CLI.start(executable: "/bin/sh", ["-c", "ulimit -S -c unlimited && exec sleep 5"])
        defer {
            kill(shell.pid, SIGTERM)
            _ = shell.wait()
        }
        usleep(200_000)
        #expect(coreLimits(shell.pid).first == "unlimited")
    }

    // MARK: --passphrase-file

    @Test func passphraseFileOthersMayReadIsRefused() throws {
        try initArchive()
        let evidence = dir.write("e.txt", text: "evidence")
        let file = dir.write("pass", text: "local boundary\n")
        var noEnv = env
        noEnv["CUSTODY_PASSPHRASE"] = nil
        for mode: mode_t in [0o644, 0o640, 0o604, 0o660] {
            chmod(file, mode)
            let refused = CLI.run(["ingest", evidence, "--passphrase-file", file], environment: noEnv.jsonErrors)
            #expect(refused.status == 77, "mode \(String(mode, radix: 8)): \(refused.stderr)")
            #expect(refused.errorReason == "file-exposed")
            #expect(refused.error?.fix.contains("chmod 600") == true)  // the fix names the command
            #expect(refused.stderr.split(separator: "\n").count == 1)
            #expect(!refused.stderr.contains("local boundary"))
        }
        #expect(CLI.run(["ls"], environment: env).stdout.isEmpty)
        chmod(file, 0o600)
        let accepted = CLI.run(["ingest", evidence, "--passphrase-file", file], environment: noEnv)
        #expect(accepted.status == 0, "\(accepted.stderr)")
        // A link to a private file is fine: the file it reaches is what is checked.
        #expect(symlink(file, dir.path + "/link-to-pass") == 0)
        #expect(
            CLI.run(["verify", "--deep", "--passphrase-file", dir.path + "/link-to-pass"], environment: noEnv).status
                == 0
        )
    }

    @Test func passphraseFileThatIsAFIFOOrTooLargeIsRefusedWithoutHanging() throws {
        try initArchive()
        let evidence = dir.write("e.txt", text: "evidence")
        var noEnv = env
        noEnv["CUSTODY_PASSPHRASE"] = nil
        let fifo = dir.path + "/pass-fifo"
        #expect(mkfifo(fifo, 0o600) == 0)
        #expect(symlink(fifo, dir.path + "/link-to-fifo") == 0)
        for path in [fifo, dir.path + "/link-to-fifo"] {
            // Nothing ever writes to the FIFO: reading it would wait forever.
            let refused = CLI.run(["ingest", evidence, "--passphrase-file", path], environment: noEnv.jsonErrors)
            #expect(refused.status == 65 && refused.errorReason == "not-regular-file", "\(refused.stderr)")
        }
        let large = dir.write("large", Array(repeating: 0x61, count: 65 * 1024))
        chmod(large, 0o600)
        let tooLarge = CLI.run(["ingest", evidence, "--passphrase-file", large], environment: noEnv.jsonErrors)
        #expect(tooLarge.status == 65 && tooLarge.errorReason == "too-large")
        let missing = CLI.run(
            ["ingest", evidence, "--passphrase-file", dir.path + "/nope"],
            environment: noEnv.jsonErrors
        )
        #expect(missing.status == 66 && missing.errorReason == "not-found")
        #expect(CLI.run(["ls"], environment: env).stdout.isEmpty)
    }

    @Test func anIdentityFileThatIsAFIFOIsRefusedWithoutHanging() throws {
        try initArchive()
        let fifo = dir.path + "/identity-fifo"
        #expect(mkfifo(fifo, 0o600) == 0)
        // Nothing ever writes to the FIFO: opening it for reading as a file would wait forever.
        for arguments in [
            ["witness", "add", fifo], ["peer", "add", "p", "http://127.0.0.1:9", "--identity", fifo],
            ["grant", "create", "--to", fifo, "--case", "C", "--expires", "1d", "--purpose", "p"],
        ] {
            let refused = CLI.run(arguments, environment: env.jsonErrors)
            #expect(refused.status == 65 && refused.errorReason == "not-regular-file", "\(refused.stderr)")
        }
    }

    // MARK: Identity names from outside, and escaping at the terminal

    /// A validly self-signed identity file with `name`, as a hostile body would make one.
    private func hostileIdentity(name: String) throws -> String {
        let signing = try SigningKey(seed: SecretBytes(randomCount: SigningKey.seedByteCount))
        let box = try BoxKey(secretKey: SecretBytes(randomCount: BoxKey.secretKeyByteCount))
        let log = try SigningKey(seed: SecretBytes(randomCount: SigningKey.seedByteCount))
        let origin = "hostile.example/log"
        let fields: [String: Any] = [
            "version": 1, "name": name, "origin": origin,
            "signing_key": Encoding.base64(signing.publicKey), "box_key": Encoding.base64(box.publicKey),
            "log_verifier_key": Identity.verifierKey(origin: origin, publicKey: log.publicKey),
            "fingerprint": Identity.fingerprint(signingKey: signing.publicKey, boxKey: box.publicKey),
            "self_signature": "",
        ]
        var identity = try JSONDecoder().decode(Identity.self, from: JSONSerialization.data(withJSONObject: fields))
        identity.selfSignature = Encoding.base64(signing.signature(for: identity.signedMessage))
        let path = dir.path + "/hostile-\(Encoding.hex(randomBytes(4))).id"
        _ = FileManager.default.createFile(atPath: path, contents: Data(try identity.jsonBytes()))
        return path
    }

    @Test(
        "Every command that reads an identity file refuses a name with terminal controls",
        arguments: ["Body A\u{1B}[30;40m", "Body \u{202E}A ydoB", "Body A\nfingerprint 1111-2222"]
    )
    func identityNamesWithControlsAreRefused(name: String) throws {
        try initArchive()
        let file = try hostileIdentity(name: name)
        let commands: [[String]] = [
            ["grant", "create", "--to", file, "--expires", "30d", "--purpose", "review"],
            ["witness", "add", file],
            ["peer", "add", "hostile", "http://127.0.0.1:9", "--identity", file],
            ["submit", dir.write("s.txt", text: "s"), "--to", file, "-o", dir.path + "/s.bundle"],
        ]
        for arguments in commands {
            let typed = CLI.run(arguments, environment: env.jsonErrors)
            #expect(typed.status == 65 && typed.errorReason == "identity-invalid", "\(arguments[0]): \(typed.stderr)")
            // For people: one escaped line (the text form is the property under test here).
            let result = CLI.run(arguments, environment: env)
            #expect(result.status == 65, "\(arguments[0]): \(result.stderr)")
            #expect(!result.stderr.utf8.contains(0x1B))
            #expect(result.stderr.split(separator: "\n").count == 1)
            #expect(!result.stdout.utf8.contains(0x1B))
        }
        #expect(
            !((try? String(contentsOfFile: dir.path + "/archive/bodies.json", encoding: .utf8)) ?? "").contains(
                "hostile"
            )
        )
    }

    @Test func outsideTextIsEscapedInEveryPrintedLine() throws {
        try initArchive()
        // A file name is outside text too: ESC and a bidi override are legal in Linux file names.
        let evil = dir.write("up/report\u{1B}[2J\u{202E}fdp.exe", text: "x")
        let ingested = CLI.run(["ingest", dir.path + "/up"], environment: env)
        #expect(ingested.status == 0, "\(ingested.stderr)")
        #expect(!ingested.stdout.utf8.contains(0x1B))
        #expect(!ingested.stdout.unicodeScalars.contains("\u{202E}"))
        #expect(ingested.stdout.contains("report\\u{1B}[2J\\u{202E}fdp.exe"))
        let listed = CLI.run(["ls"], environment: env)
        #expect(!listed.stdout.utf8.contains(0x1B))
        #expect(listed.stdout.contains("\\u{1B}"))
        let missing = CLI.run(["ingest", evil + "\u{1B}]0;owned\u{7}"], environment: env)
        #expect(missing.status == 66)
        #expect(!missing.stderr.utf8.contains(0x1B) && !missing.stderr.utf8.contains(0x07))
        #expect(missing.stderr.split(separator: "\n").count == 1)
    }
}
