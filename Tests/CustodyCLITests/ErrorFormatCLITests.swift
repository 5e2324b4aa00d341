import CustodyTestSupport
import Foundation
import Testing

/// `CUSTODY_ERROR_FORMAT=json`: the error of a failed command as one JSON line a script can read
/// (Docs/OPERATIONS.md section 10), the same exit code, and the text line for people unchanged without it.
@Suite struct ErrorFormatCLITests: CLIArchiveSuite {
    let dir = TempDirectory()
    static let passphrase = "error format passphrase"

    /// A passphrase that is wrong, and must never be printed.
    static let wrongPassphrase = "hunter2 wrong secret"

    /// Failures of distinct classes: the arguments, the environment, and the reason, class and exit code expected.
    private func failures() -> [(String, [String], [String: String], reason: String, class: String, exit: Int)] {
        var wrong = env("a")
        wrong["CUSTODY_PASSPHRASE"] = Self.wrongPassphrase
        return [
            ("not found", ["show", "0123456789abcdef"], env("a"), "not-found", "not-found", 66),
            (
                "wrong passphrase", ["ingest", dir.write("w.txt", text: "w")], wrong, "wrong-passphrase",
                "not-authorised", 77
            ),
            (
                "bad input", ["ingest", dir.write("b.txt", text: "b"), "--collected-at", "last tuesday"], env("a"),
                "bad-input", "bad-input", 65
            ),
            ("no archive", ["ls"], ["CUSTODY_PASSPHRASE": Self.passphrase], "usage", "usage", 64),
        ]
    }

    @Test func theJSONErrorLineParsesAndCarriesReasonClassAndExit() throws {
        #expect(initArchive("a").status == 0)
        for (what, arguments, environment, reason, errorClass, exit) in failures() {
            let result = CLI.run(arguments, environment: environment.jsonErrors)
            #expect(Int(result.status) == exit, "\(what): \(result.stderr)")
            #expect(result.stderr.hasSuffix("\n") && result.stderr.split(separator: "\n").count == 1, "\(what)")
            // It parses as JSON on its own, with exactly the documented fields.
            let object = try #require(
                try JSONSerialization.jsonObject(with: Data(result.stderr.utf8)) as? [String: Any],
                "\(what): \(result.stderr)"
            )
            let body = try #require(object["error"] as? [String: Any], "\(what)")
            #expect(Set(object.keys) == ["error"] && Set(body.keys) == ["reason", "class", "exit", "problem", "fix"])
            let error = try #require(result.error, "\(what)")
            #expect(error.reason == reason && error.errorClass == errorClass && error.exit == exit, "\(what): \(error)")
            #expect(!error.problem.isEmpty && !error.fix.isEmpty, "\(what)")
        }
    }

    @Test func withoutTheVariableTheTextLineIsUnchanged() throws {
        #expect(initArchive("a").status == 0)
        for (what, arguments, environment, _, _, exit) in failures() {
            let typed = try #require(CLI.run(arguments, environment: environment.jsonErrors).error, "\(what)")
            for format in [nil, "text", "JSON", ""] {
                var plain = environment
                plain["CUSTODY_ERROR_FORMAT"] = format
                let text = CLI.run(arguments, environment: plain)
                #expect(Int(text.status) == exit, "\(what) \(format ?? "unset"): \(text.stderr)")
                // The same problem and fix, in the one line for people.
                #expect(text.stderr == "custody: \(typed.problem) — \(typed.fix)\n", "\(what) \(format ?? "unset")")
                #expect(text.error == nil)
            }
        }
    }

    @Test func noSecretAppearsInEitherForm() throws {
        #expect(initArchive("a").status == 0)
        for (what, arguments, environment, _, _, _) in failures() {
            for form in [environment, environment.jsonErrors] {
                let result = CLI.run(arguments, environment: form)
                #expect(!result.stderr.contains(Self.wrongPassphrase), "\(what)")
                #expect(!result.stderr.contains(Self.passphrase), "\(what)")
                #expect(!result.stdout.contains(Self.wrongPassphrase) && !result.stdout.contains(Self.passphrase))
            }
        }
    }

    @Test func outsideTextIsEscapedInTheJSONLineAsInTheTextLine() throws {
        #expect(initArchive("a").status == 0)
        let hostile = dir.path + "/missing\u{1B}]0;owned\u{07}\u{202E}txt.exe\nfake line"
        let typed = CLI.run(["ingest", hostile], environment: env("a").jsonErrors)
        #expect(typed.status == 66 && typed.errorReason == "not-found", "\(typed.stderr)")
        // Neither the raw bytes nor a JSON escape of them: the problem is escaped as the text line is.
        for byte: UInt8 in [0x1B, 0x07] { #expect(!typed.stderr.utf8.contains(byte)) }
        #expect(!typed.stderr.contains("\u{202E}") && typed.stderr.split(separator: "\n").count == 1)
        #expect(!typed.stderr.contains("\\u001b") && !typed.stderr.contains("\\n"))
        let problem = try #require(typed.error?.problem)
        #expect(!problem.unicodeScalars.contains { $0.value < 0x20 || $0 == "\u{202E}" })
        let text = CLI.run(["ingest", hostile], environment: env("a"))
        #expect(text.stderr.hasPrefix("custody: \(problem) — "), "\(text.stderr)")
    }
}
