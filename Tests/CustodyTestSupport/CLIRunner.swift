import CustodyStorage
import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// The outcome of one run of the `custody` binary.
package struct CLIResult: Sendable {
    /// Exit status, or -1 when killed by a signal.
    package var status: Int32
    /// The signal that killed it, if any.
    package var signal: Int32?
    /// Standard output.
    package var stdout: String
    /// Standard error.
    package var stderr: String
    /// Peak resident set size in KiB (`ru_maxrss`): code pages included, so it depends on the page cache.
    package var maxRSSKiB: Int
    /// Peak anonymous resident memory in KiB (heap and stacks, no file-backed pages), sampled from
    /// `/proc/PID/status` every 2 ms while the child ran; 0 unless started by ``CLI/runSamplingMemory(_:environment:)``.
    package var peakAnonymousKiB: Int = 0

    /// Standard output parsed as a JSON object.
    package var json: [String: Any]? {
        (try? JSONSerialization.jsonObject(with: Data(stdout.utf8))) as? [String: Any]
    }

    /// The error a run started with ``CLI/errorFormat`` in its environment reported: the one JSON line that
    /// closes standard error (Docs/OPERATIONS.md section 10), or `nil` when there is none.
    package var error: CLIError? {
        guard let line = stderr.split(separator: "\n").last,
            let object = try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any],
            let body = object["error"] as? [String: Any],
            let reason = body["reason"] as? String, let errorClass = body["class"] as? String,
            let exit = body["exit"] as? Int, let problem = body["problem"] as? String, let fix = body["fix"] as? String
        else { return nil }
        return CLIError(reason: reason, errorClass: errorClass, exit: exit, problem: problem, fix: fix)
    }

    /// The stable reason name of the reported error (`wrong-passphrase`, `not-found`…), or `nil`.
    package var errorReason: String? { error?.reason }
}

extension [String: String] {
    /// This environment with the error of a failed run reported as one JSON line (``CLI/errorFormat``), for
    /// tests that check its reason: ``CLIResult/errorReason``.
    package var jsonErrors: [String: String] { merging(CLI.errorFormat) { $1 } }
}

/// The machine-readable error line of a failed run (`CUSTODY_ERROR_FORMAT=json`).
package struct CLIError: Sendable, Equatable {
    /// The reason's stable kebab-case name.
    package var reason: String
    /// The class of failure (`not-authorised`, `bad-input`…).
    package var errorClass: String
    /// The exit code it announces.
    package var exit: Int
    /// What went wrong.
    package var problem: String
    /// How to fix it.
    package var fix: String

    /// Both, as the text line has them: `<problem> — <fix>`.
    package var line: String { "\(problem) — \(fix)" }
}

/// Runs the built `custody` binary as a child process, with a clean environment.
package enum CLI {
    /// The package root, found from this file's path.
    package static let packageRoot: String = {
        var url = URL(fileURLWithPath: #filePath)
        for _ in 0..<3 { url.deleteLastPathComponent() }
        return url.path
    }()

    /// The environment that makes the binary report its error as one JSON line (``CLIResult/error``).
    package static let errorFormat = ["CUSTODY_ERROR_FORMAT": "json"]

    /// The built binary (`swift build` puts it in .build/debug).
    package static var binary: String { packageRoot + "/.build/debug/custody" }

    /// A started child process.
    package struct Child: Sendable {
        /// Its process id.
        package let pid: pid_t
        let out: String
        let err: String

        /// What it has written to standard output so far.
        package var outputSoFar: String { (try? String(contentsOfFile: out, encoding: .utf8)) ?? "" }

        /// Waits for it to exit and collects the result.
        package func wait() -> CLIResult {
            var status: Int32 = 0
            var usage = rusage()
            while wait4(pid, &status, 0, &usage) < 0 && errno == EINTR {}
            return collect(status: status, usage: usage)
        }

        /// The result of a child that has exited with `status`.
        func collect(status: Int32, usage: rusage) -> CLIResult {
            let stdout = (try? String(contentsOfFile: out, encoding: .utf8)) ?? ""
            let stderr = (try? String(contentsOfFile: err, encoding: .utf8)) ?? ""
            unlink(out)
            unlink(err)
            let signaled = (status & 0x7F) != 0 && (status & 0x7F) != 0x7F
            return CLIResult(
                status: signaled ? -1 : (status >> 8) & 0xFF,
                signal: signaled ? status & 0x7F : nil,
                stdout: stdout,
                stderr: stderr,
                maxRSSKiB: Int(usage.ru_maxrss)
            )
        }
    }

    /// Starts `custody arguments…` with `environment` added to a minimal clean environment.
    package static func start(
        _ arguments: [String],
        environment: [String: String] = [:],
        input: [UInt8]? = nil
    ) -> Child {
        start(executable: binary, arguments, environment: environment, input: input)
    }

    /// Starts any program (for example `/usr/bin/python3`) the same way.
    package static func start(
        executable: String,
        _ arguments: [String],
        environment: [String: String] = [:],
        input: [UInt8]? = nil
    ) -> Child {
        let tag = "\(getpid())-\(UInt64.random(in: 0...UInt64.max))"
        var stdin = "/dev/null"
        if let input {
            stdin = "/tmp/custody-cli-\(tag).in"
            precondition(FileManager.default.createFile(atPath: stdin, contents: Data(input)), "cannot write stdin")
        }
        defer { if input != nil { unlink(stdin) } }
        let out = "/tmp/custody-cli-\(tag).out"
        let err = "/tmp/custody-cli-\(tag).err"
        var env = ["PATH": ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin", "LANG": "C.UTF-8"]
        env.merge(environment) { $1 }
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        posix_spawn_file_actions_addopen(&actions, 0, stdin, O_RDONLY, 0)
        posix_spawn_file_actions_addopen(&actions, 1, out, O_WRONLY | O_CREAT | O_TRUNC, 0o600)
        posix_spawn_file_actions_addopen(&actions, 2, err, O_WRONLY | O_CREAT | O_TRUNC, 0o600)
        defer { posix_spawn_file_actions_destroy(&actions) }
        let argv = [executable] + arguments
        let envp = env.map { "\($0.key)=\($0.value)" }
        var pid: pid_t = 0
        let cArgs = argv.map { strdup($0) } + [nil]
        let cEnv = envp.map { strdup($0) } + [nil]
        defer {
            for pointer in cArgs + cEnv { free(pointer) }
        }
        // The child starts with no blocked signals and default handlers, whatever the test thread had: a
        // child that inherited a blocked SIGTERM would never stop.
        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        var none = sigset_t()
        sigemptyset(&none)
        posix_spawnattr_setsigmask(&attributes, &none)
        var defaults = sigset_t()
        sigemptyset(&defaults)
        for signal in [SIGTERM, SIGINT, SIGPIPE, SIGHUP] { sigaddset(&defaults, signal) }
        posix_spawnattr_setsigdefault(&attributes, &defaults)
        posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF))
        let rc = posix_spawn(&pid, executable, &actions, &attributes, cArgs, cEnv)
        precondition(rc == 0, "cannot start \(executable): run `swift build` first")
        return Child(pid: pid, out: out, err: err)
    }

    /// Starts `custody serve` on a free loopback port (with `arguments` added) and waits for it to listen; its
    /// child and base URL.
    ///
    /// - Returns: `nil` when it did not start within ten seconds (the child is stopped).
    package static func serve(
        environment: [String: String],
        arguments: [String] = []
    ) -> (child: Child, url: String)? {
        let child = start(["serve", "--listen", "127.0.0.1:0"] + arguments, environment: environment)
        for _ in 0..<200 {
            let out = child.outputSoFar
            if let range = out.range(of: "listening on ") {
                let address = out[range.upperBound...].prefix { !$0.isWhitespace }
                return (child, "http://" + address)
            }
            usleep(50_000)
        }
        kill(child.pid, SIGTERM)
        _ = child.wait()
        return nil
    }

    /// Runs any program to completion.
    package static func run(executable: String, _ arguments: [String], environment: [String: String] = [:]) -> CLIResult
    {
        start(executable: executable, arguments, environment: environment).wait()
    }

    /// Whether `python3` on PATH can import PyNaCl (run it as `run(executable: "/usr/bin/env", ["python3", …])`).
    package static let pythonHasNaCl: Bool = {
        run(executable: "/usr/bin/env", ["python3", "-c", "import nacl.bindings"]).status == 0
    }()

    /// Runs `custody arguments…` to completion, sampling its anonymous resident memory (`RssAnon`) every 2 ms.
    ///
    /// Unlike `ru_maxrss`, this does not count the binary's code pages, whose residency depends on what else
    /// has read the binary lately; it measures what the command itself allocates.
    package static func runSamplingMemory(_ arguments: [String], environment: [String: String] = [:]) -> CLIResult {
        let child = start(arguments, environment: environment)
        var peak = 0
        var status: Int32 = 0
        while true {
            if let anonymous = anonymousKiB(of: child.pid) { peak = max(peak, anonymous) }
            let reaped = waitpid(child.pid, &status, WNOHANG)
            if reaped > 0 || (reaped < 0 && errno != EINTR) { break }
            usleep(2_000)
        }
        var result = child.collect(status: status, usage: rusage())
        result.peakAnonymousKiB = peak
        return result
    }

    /// `RssAnon` of a running process in KiB, or `nil` once it has gone.
    static func anonymousKiB(of pid: pid_t) -> Int? {
        // Read with read(2): /proc files report a size of 0, which Foundation's readers may take at its word.
        let fd = open("/proc/\(pid)/status", O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        var bytes = [UInt8](repeating: 0, count: 8192)
        let count = read(fd, &bytes, bytes.count)
        guard count > 0 else { return nil }
        let status = String(decoding: bytes[..<count], as: UTF8.self)
        for line in status.split(separator: "\n") where line.hasPrefix("RssAnon:") {
            return Int(line.dropFirst("RssAnon:".count).split(whereSeparator: \.isWhitespace).first ?? "")
        }
        return nil
    }

    /// Runs `custody arguments…` to completion.
    package static func run(
        _ arguments: [String],
        environment: [String: String] = [:],
        input: [UInt8]? = nil
    ) -> CLIResult {
        start(arguments, environment: environment, input: input).wait()
    }
}
