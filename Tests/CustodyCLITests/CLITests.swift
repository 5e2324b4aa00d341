import CustodyTestSupport
import Foundation
import Testing

/// End-to-end runs of the built `custody` binary (run `swift build` first; Scripts/test.sh does).
@Suite struct CLITests {
    let dir = TempDirectory("cli")
    var archive: String { dir.path + "/archive" }
    var env: [String: String] { ["CUSTODY_ARCHIVE": archive, "CUSTODY_PASSPHRASE": "cli test passphrase"] }

    private func initArchive() throws {
        let result = CLI.run(["init", "--name", "CLI Test", "--kdf", "insecure-test", "--json"], environment: env)
        #expect(result.status == 0, "\(result.stderr)")
        let json = try #require(result.json)
        #expect(json["fingerprint"] as? String != nil)
    }

    @Test func helpListsEveryCommand() {
        let result = CLI.run(["--help"])
        #expect(result.status == 0)
        for command in [
            "init", "ingest", "ls", "search", "show", "extract", "verify", "gc", "reindex", "log", "id", "passphrase",
            "demo", "tag", "note", "checkpoint", "prove", "witness", "grant", "bundle", "submit", "bench",
        ] {
            #expect(result.stdout.contains(command), "--help does not mention \(command)")
        }
    }

    @Test func fullFlowWithJSONOutputs() throws {
        try initArchive()
        let file = dir.write(
            "upload/roof.mp4",
            [0, 0, 0, 0x18] + Array("ftypmp42".utf8) + (0..<50_000).map { UInt8($0 % 251) }
        )
        dir.write("upload/copy.mp4", Fixtures.read(file))
        let ingest = CLI.run(
            [
                "ingest", dir.path + "/upload", "--case", "COI-2026-04", "--tag", "detention", "--tag", "video",
                "--source", "witness W-17", "--collected-at", "2026-03-02T10:00:00Z", "--location", "Aleppo",
                "--consent", "share-with-mechanisms", "--note", "filmed from the roof", "--meta", "device=Pixel7",
                "--json",
            ],
            environment: env
        )
        #expect(ingest.status == 0, "\(ingest.stderr)")
        let items = try #require(ingest.json?["items"] as? [[String: Any]])
        #expect(items.count == 2)
        for key in ["id", "path", "sha256", "size", "duplicate_of"] {
            #expect(items[0].keys.contains(key), "ingest lacks \(key)")
        }
        #expect(items[0]["duplicate_of"] is NSNull)
        #expect(items[1]["duplicate_of"] as? String == items[0]["id"] as? String)
        let id = try #require(items[1]["id"] as? String)

        let ls = CLI.run(["ls", "--case", "COI-2026-04", "--tag", "video", "--json"], environment: env)
        let rows = try #require(ls.json?["items"] as? [[String: Any]])
        #expect(rows.count == 2)
        for key in ["id", "case", "tags", "name", "sha256", "size", "ingested_at"] {
            #expect(rows[0].keys.contains(key))
        }

        let search = CLI.run(["search", "roof AND aleppo", "--json"], environment: env)
        #expect((search.json?["items"] as? [[String: Any]])?.count == 2)

        let show = CLI.run(["show", String(id.prefix(10)), "--json"], environment: env)
        #expect(show.status == 0)
        let detail = try #require(show.json)
        #expect(detail["location"] as? String == "Aleppo")
        #expect(detail["media_type"] as? String == "video/mp4")
        #expect((detail["meta"] as? [String: String])?["device"] == "Pixel7")
        #expect((detail["events"] as? [[String: Any]])?.count == 1)

        let out = dir.path + "/out.mp4"
        #expect(CLI.run(["extract", id, "-o", out], environment: env).status == 0)
        #expect(Fixtures.read(out) == Fixtures.read(file))
        let again = CLI.run(["extract", id, "-o", out], environment: env.jsonErrors)
        #expect(again.status == 73 && again.errorReason == "cannot-create")
        #expect(again.error?.fix.contains("--force") == true)  // the fix names the option: the property
        #expect(CLI.run(["extract", id, "-o", out, "--force"], environment: env).status == 0)
        #expect(
            try FileManager.default.contentsOfDirectory(atPath: dir.path).filter { $0.hasPrefix(".custody") }.isEmpty
        )
        let events = CLI.run(["show", id, "--json"], environment: env).json?["events"] as? [[String: Any]]
        #expect(events?.compactMap { $0["type"] as? String } == ["ingest", "extract", "extract"])

        let verify = CLI.run(["verify", "--json"], environment: env)
        #expect(verify.status == 0)
        let report = try #require(verify.json)
        #expect(report["ok"] as? Bool == true)
        #expect((report["objects_checked"] as? Int ?? 0) > 0)
        #expect(report["problems"] is [Any])
        #expect(report["orphans"] is [Any])
        #expect(CLI.run(["verify", "--deep"], environment: env).status == 0)
        #expect(CLI.run(["verify", "--quick"], environment: env).status == 0)

        let idShow = CLI.run(["id", "show", "--json"], environment: env)
        for key in ["name", "origin", "fingerprint", "signing_key", "box_key"] {
            #expect(idShow.json?.keys.contains(key) == true)
        }
        let exported = dir.path + "/body.identity.json"
        #expect(CLI.run(["id", "export", "-o", exported], environment: env).status == 0)
        let identity = try #require(
            try JSONSerialization.jsonObject(with: Data(Fixtures.read(exported))) as? [String: Any]
        )
        for key in [
            "version", "name", "origin", "signing_key", "box_key", "log_verifier_key", "fingerprint", "self_signature",
        ] {
            #expect(identity.keys.contains(key), "identity file lacks \(key)")
        }
    }

    @Test func flippedByteMakesVerifyExitOneAndNameTheItem() throws {
        try initArchive()
        let ingest = CLI.run(
            ["ingest", dir.write("a.bin", (0..<5000).map { UInt8($0 % 7) }), "--json"],
            environment: env
        )
        let id = try #require((ingest.json?["items"] as? [[String: Any]])?.first?["id"] as? String)
        let objects = Fixtures.allFiles(under: archive + "/objects").filter { !$0.contains("/objects/tmp/") }
        let victim = try #require(objects.max { Fixtures.read($0).count < Fixtures.read($1).count })
        var bytes = Fixtures.read(victim)
        bytes[bytes.count / 2] ^= 0x01
        try Data(bytes).write(to: URL(fileURLWithPath: victim))
        let verify = CLI.run(["verify", "--json"], environment: env)
        #expect(verify.status == 1)
        let problems = try #require(verify.json?["problems"] as? [[String: Any]])
        #expect(problems.first?["kind"] as? String == "corrupt")
        #expect(problems.first?["item"] as? String == id)
        #expect(problems.first?["object"] as? String == (victim as NSString).lastPathComponent)
    }

    @Test func badInputGetsOneLineErrorsAndDocumentedExitCodes() throws {
        try initArchive()
        let cases: [([String], [String: String], Int32)] = [
            (["init", "--name", "Again", "--kdf", "insecure-test"], env, 73),
            (["ls"], ["CUSTODY_PASSPHRASE": "x"], 64),
            (["ls", "--archive", dir.path + "/nowhere"], [:], 66),
            (["ingest", dir.path + "/missing.txt"], env, 66),
            (["show", "0123"], env, 64),
            (["show", "0123456789abcdef"], env, 66),
            (["search", "AND ("], env, 64),
            (["ingest", dir.write("x.txt", text: "x"), "--collected-at", "last tuesday"], env, 65),
            (["ingest", dir.write("y.txt", text: "y"), "--note", String(repeating: "n", count: 70_000)], env, 65),
            (["ingest", dir.write("z.txt", text: "z"), "--meta", "novalue"], env, 64),
            (["verify", "--quick", "--deep"], env, 64),
        ]
        for (arguments, environment, code) in cases {
            let result = CLI.run(arguments, environment: environment)
            #expect(result.status == code, "\(arguments.prefix(2)) gave \(result.status): \(result.stderr)")
            if code != 64 || result.stderr.hasPrefix("custody:") {
                #expect(result.stderr.split(separator: "\n").count == 1, "\(arguments.prefix(2)): \(result.stderr)")
            }
        }
        // Nothing above changed the archive.
        #expect(CLI.run(["ls", "--json"], environment: env).json?["items"] as? [Any] != nil)
        #expect((CLI.run(["ls", "--json"], environment: env).json?["items"] as? [Any])?.isEmpty == true)
    }

    @Test func wrongPassphraseExits77WithoutChangingAnything() throws {
        try initArchive()
        let file = dir.write("a.txt", text: "evidence")
        var wrong = env
        wrong["CUSTODY_PASSPHRASE"] = "not it"
        let result = CLI.run(["ingest", file], environment: wrong.jsonErrors)
        #expect(result.status == 77 && result.errorReason == "wrong-passphrase")
        #expect(!result.stderr.contains("not it"))
        #expect(Fixtures.allFiles(under: archive + "/objects").isEmpty)
    }

    @Test func passphraseFileAndPassphraseChange() throws {
        let file = dir.write("pass.txt", text: "from a file\n")
        chmod(file, 0o600)  // a passphrase file others may read is refused
        let initResult = CLI.run(
            ["init", "--name", "P", "--kdf", "insecure-test", "--passphrase-file", file],
            environment: ["CUSTODY_ARCHIVE": archive]
        )
        #expect(initResult.status == 0, "\(initResult.stderr)")
        let newFile = dir.write("new.txt", text: "the new one")
        chmod(newFile, 0o600)
        let change = CLI.run(
            ["passphrase", "change", "--passphrase-file", file, "--new-passphrase-file", newFile],
            environment: ["CUSTODY_ARCHIVE": archive]
        )
        #expect(change.status == 0, "\(change.stderr)")
        let evidence = dir.write("e.txt", text: "e")
        #expect(
            CLI.run(["ingest", evidence, "--passphrase-file", file], environment: ["CUSTODY_ARCHIVE": archive]).status
                == 77
        )
        #expect(
            CLI.run(["ingest", evidence, "--passphrase-file", newFile], environment: ["CUSTODY_ARCHIVE": archive])
                .status == 0
        )
    }

    @Test func symlinksRefuseTheRunUnlessSkippedAndNonUTF8NamesAreKept() throws {
        try initArchive()
        dir.write("up/ok.txt", text: "ok")
        let raw = Array((dir.path + "/up/caf").utf8) + [0xE9, 0x2E, 0x74, 0x78, 0x74, 0]
        let fd = raw.withUnsafeBufferPointer { b in
            b.baseAddress!.withMemoryRebound(to: CChar.self, capacity: raw.count) {
                open($0, O_CREAT | O_WRONLY, 0o600)
            }
        }
        close(fd)
        try FileManager.default.createSymbolicLink(atPath: dir.path + "/up/link", withDestinationPath: "/etc/passwd")
        let refused = CLI.run(["ingest", dir.path + "/up"], environment: env.jsonErrors)
        #expect(refused.status == 65 && refused.errorReason == "bad-input")
        #expect(refused.error?.problem.contains("symbolic link") == true)  // the message names the problem
        #expect(Fixtures.allFiles(under: archive + "/objects").isEmpty)
        let skipped = CLI.run(["ingest", dir.path + "/up", "--skip-problems", "--json"], environment: env)
        #expect(skipped.status == 0)
        #expect((skipped.json?["items"] as? [Any])?.count == 2)
        #expect((skipped.json?["skipped"] as? [Any])?.count == 1)
    }

    @Test func expectFromListRefusesMismatchesAllOrNothing() throws {
        try initArchive()
        let good = dir.write("up/good.txt", text: "good")
        let bad = dir.write("up/bad.txt", text: "bad")
        let list = dir.write(
            "SHA256SUMS",
            text: """
                770e607624d689265ca6c44884d0807d9b054d23c473c106c72be9de08b7376c  \(good)
                0000000000000000000000000000000000000000000000000000000000000000  \(bad)

                """
        )
        let result = CLI.run(["ingest", dir.path + "/up", "--expect-from", list, "--json"], environment: env)
        #expect(result.status == 65)
        #expect(result.stderr.contains("refused"))  // a `custody: refused …` line per file: the output under test
        #expect((result.json?["items"] as? [[String: Any]])?.isEmpty == true)
        let partial = CLI.run(
            ["ingest", dir.path + "/up", "--expect-from", list, "--skip-problems", "--json"],
            environment: env
        )
        #expect(partial.status == 65)
        let items = partial.json?["items"] as? [[String: Any]]
        #expect(items?.count == 1)
        #expect(items?.first?["path"] as? String == good)
    }

    @Test func logListsEverySignedEventWithItsExactBytes() throws {
        try initArchive()
        let ingest = CLI.run(
            ["ingest", dir.write("a.txt", text: "a"), dir.write("b.txt", text: "b"), "--json"],
            environment: env
        )
        let id = try #require((ingest.json?["items"] as? [[String: Any]])?.first?["id"] as? String)
        #expect(CLI.run(["extract", id, "-o", dir.path + "/a.out"], environment: env).status == 0)
        let log = CLI.run(["log", "--json"], environment: env)
        #expect(log.status == 0, "\(log.stderr)")
        let entries = try #require(log.json?["entries"] as? [[String: Any]])
        // Entry 0 founds the roster: init's first member adds themselves.
        #expect(entries.compactMap { $0["type"] as? String } == ["member-add", "ingest", "ingest", "extract"])
        #expect(entries.compactMap { $0["index"] as? Int } == [0, 1, 2, 3])
        // Every entry names the member who acted, by the roster's name.
        #expect(entries.allSatisfy { ($0["member"] as? [String: Any])?["name"] as? String == "admin" })
        for entry in entries {
            let encoded = try #require(entry["entry"] as? String)
            let bytes = try #require(Data(base64Encoded: encoded))
            let body = try #require(bytes.split(separator: 0x0A, maxSplits: 1).first)
            let json = try #require(try JSONSerialization.jsonObject(with: Data(body)) as? [String: Any])
            #expect(json["type"] as? String == entry["type"] as? String)
            #expect(json["time"] as? String == entry["time"] as? String)
        }
        let page = CLI.run(["log", "--from", "3", "--limit", "1", "--json"], environment: env)
        #expect((page.json?["entries"] as? [[String: Any]])?.first?["type"] as? String == "extract")
        let journal = archive + "/journal/entries"
        var raw = Fixtures.read(journal)
        raw[30] ^= 0x01
        try Data(raw).write(to: URL(fileURLWithPath: journal))
        let broken = CLI.run(["log"], environment: env)
        #expect(broken.status == 1, "\(broken.stdout)")
    }

    @Test func aBusyArchiveIsExit75AfterTheWaitLimit() throws {
        try initArchive()
        let fd = open(archive + "/lock", O_RDWR)
        #expect(fd >= 0)
        defer { close(fd) }
        #expect(flock(fd, LOCK_EX) == 0)
        var waiting = env
        waiting["CUSTODY_LOCK_TIMEOUT"] = "0.3"
        let result = CLI.run(["ls"], environment: waiting.jsonErrors)
        #expect(result.status == 75 && result.errorReason == "busy")
        flock(fd, LOCK_UN)
        #expect(CLI.run(["ls"], environment: waiting).status == 0)
    }

    @Test func demoRunsToCompletion() {
        let result = CLI.run(["demo"], environment: ["TMPDIR": dir.path])
        #expect(result.status == 0, "\(result.stderr)")
        #expect(result.stdout.contains("Demo complete."))
        #expect(result.stdout.contains("the flip was caught"))
    }
}
