import CustodyTestSupport
import Foundation
import Testing

/// The ledger commands end to end: byte-exact C2SP outputs, JSON shapes, exit codes, two bodies witnessing
/// each other, and an auditor's script written from Docs/LEDGER.md checking the proofs.
@Suite struct LedgerCLITests: CLIArchiveSuite {
    let dir = TempDirectory("ledger-cli")
    static let passphrase = "ledger cli"

    /// Creates archive `name` with one item per text; returns the item ids.
    @discardableResult
    private func archive(_ name: String, items texts: [String]) throws -> [String] {
        let created = initArchive(name, displayName: "Body \(name)")
        #expect(created.status == 0, "\(created.stderr)")
        guard !texts.isEmpty else { return [] }
        for (i, text) in texts.enumerated() { dir.write("\(name)-up/\(i).txt", text: text) }
        let ingest = CLI.run(["ingest", dir.path + "/\(name)-up", "--json"], environment: env(name))
        #expect(ingest.status == 0, "\(ingest.stderr)")
        let items = try #require(ingest.json?["items"] as? [[String: Any]])
        return items.compactMap { $0["id"] as? String }
    }

    @Test func checkpointAndProofsAreTheC2SPTexts() throws {
        let ids = try archive("a", items: ["one", "two", "three"])
        let e = env("a")
        let checkpoint = CLI.run(["checkpoint"], environment: e)
        #expect(checkpoint.status == 0)
        #expect(checkpoint.stdout == String(decoding: Fixtures.read(dir.path + "/a/log/checkpoint"), as: UTF8.self))
        let lines = checkpoint.stdout.split(separator: "\n", omittingEmptySubsequences: false)
        // Entry 0 founds the roster; the three items are entries 1 to 3.
        #expect(lines[0].hasPrefix("custody/") && lines[1] == "4" && lines[3] == "" && lines[4].hasPrefix("— "))

        let proof = CLI.run(["prove", ids[1]], environment: e)
        #expect(proof.status == 0, "\(proof.stderr)")
        #expect(proof.stdout.hasPrefix("c2sp.org/tlog-proof@v1\nindex 2\n"))
        #expect(proof.stdout.hasSuffix("\n\n" + checkpoint.stdout))
        let json = try #require(CLI.run(["prove", ids[1], "--json"], environment: e).json)
        #expect(json["index"] as? Int == 2 && json["size"] as? Int == 4)
        #expect((json["leaf_hash"] as? String)?.count == 64)
        #expect((json["proof"] as? [String])?.count == 2)
        #expect(json["checkpoint"] as? String == checkpoint.stdout)

        let request = CLI.run(["prove", "--consistency", "1"], environment: e)
        #expect(request.stdout.hasPrefix("old 1\n") && request.stdout.hasSuffix("\n\n" + checkpoint.stdout))
        let consistency = try #require(CLI.run(["prove", "--consistency", "1", "--json"], environment: e).json)
        #expect(consistency["first"] as? Int == 1 && consistency["second"] as? Int == 4)
        #expect((consistency["proof"] as? [String])?.count == 2)

        let identity = try #require(CLI.run(["id", "show", "--json"], environment: e).json)
        #expect(identity["log_origin"] as? String == String(lines[0]))
        #expect((identity["log_verifier_key"] as? String)?.hasPrefix(String(lines[0]) + "+") == true)

        let verify = try #require(CLI.run(["verify", "--json"], environment: e).json)
        // Signed: the empty tree at init, the founding entry, then the ingest.
        #expect(verify["checkpoint_size"] as? Int == 4 && verify["checkpoints_checked"] as? Int == 3)

        #expect(CLI.run(["prove"], environment: e).status == 64)
        #expect(CLI.run(["prove", "--consistency", "9"], environment: e).status == 64)
        #expect(CLI.run(["prove", "ffffffffffff"], environment: e).status == 66)
        #expect(CLI.run(["checkpoint", "--cosigned"], environment: e).status == 66)
    }

    @Test func tagNoteAndShowTellAnItemsHistory() throws {
        let ids = try archive("a", items: ["evidence"])
        let e = env("a")
        let tag = CLI.run(["tag", ids[0], "--add", "verified", "--add", "video", "--json"], environment: e)
        #expect(tag.status == 0, "\(tag.stderr)")
        #expect(tag.json?["tags"] as? [String] == ["verified", "video"])
        #expect(CLI.run(["tag", ids[0], "--remove", "video"], environment: e).stdout == "tags: verified\n")
        #expect(CLI.run(["note", ids[0], "Hash matched the witness's copy"], environment: e).status == 0)
        let show = CLI.run(["show", ids[0]], environment: e).stdout
        #expect(show.contains("tag  by ") && show.contains("+verified +video") && show.contains("-video"))
        #expect(show.contains("note  by ") && show.contains(": Hash matched the witness's copy"))
        let events = try #require(
            CLI.run(["show", ids[0], "--json"], environment: e).json?["events"] as? [[String: Any]]
        )
        #expect(events.map { $0["type"] as? String } == ["ingest", "tag", "tag", "note"])
        #expect(events[3]["text"] as? String == "Hash matched the witness's copy")
        #expect(CLI.run(["tag", ids[0]], environment: e).status == 64)
        #expect(CLI.run(["note", ids[0], ""], environment: e).status == 65)
        #expect(CLI.run(["verify"], environment: e).status == 0)
    }

    @Test func twoBodiesWitnessEachOtherAndAForkIsExitOne() throws {
        try archive("a", items: ["a1", "a2"])
        try archive("b", items: [])
        let a = env("a")
        let b = env("b")
        #expect(CLI.run(["id", "export", "-o", dir.path + "/a.id"], environment: a).status == 0)
        #expect(CLI.run(["id", "export", "-o", dir.path + "/b.id"], environment: b).status == 0)
        let unknown = CLI.run(["witness", "cosign", dir.path + "/a/log/checkpoint"], environment: b.jsonErrors)
        #expect(unknown.status == 77 && unknown.errorReason == "log-unknown")
        #expect(unknown.error?.fix.contains("custody witness add") == true)  // the fix names the command
        let added = CLI.run(["witness", "add", dir.path + "/a.id", "--json"], environment: b)
        #expect(added.status == 0 && added.json?["fingerprint"] as? String != nil)
        #expect(CLI.run(["witness", "add", dir.path + "/b.id"], environment: a).stdout.contains("fingerprint"))
        #expect(CLI.run(["witness", "add", dir.path + "/b.id"], environment: b).status == 64)

        // First contact: a bare checkpoint. The cosignature goes back to a.
        let first = CLI.run(
            ["witness", "cosign", "-"],
            environment: b,
            input: Fixtures.read(dir.path + "/a/log/checkpoint")
        )
        #expect(first.status == 0, "\(first.stderr)")
        // What the witness tells its operator on success: the output under test.
        #expect(first.stdout.hasPrefix("— custody/") && first.stderr.contains("first contact"))
        let line = dir.write("cosig.txt", text: first.stdout)
        #expect(CLI.run(["witness", "attach", line], environment: a).stdout.hasPrefix("attached: "))
        let cosigned = CLI.run(["checkpoint", "--cosigned"], environment: a).stdout
        #expect(cosigned.hasSuffix(first.stdout) && cosigned.components(separatedBy: "\n— ").count == 3)

        // Growth with a tlog-witness request from the size b saw.
        dir.write("more.txt", text: "a3")
        let fork = dir.path + "/fork"
        try FileManager.default.copyItem(atPath: dir.path + "/a", toPath: fork)
        #expect(CLI.run(["ingest", dir.path + "/more.txt"], environment: a).status == 0)
        // b saw size 3: the founding entry and the two items.
        let request = CLI.run(["prove", "--consistency", "3"], environment: a).stdout
        let second = CLI.run(["witness", "cosign", dir.write("req.txt", text: request)], environment: b)
        // What the witness tells its operator on success: the output under test.
        #expect(second.status == 0 && second.stderr.contains("consistent with size 3"), "\(second.stderr)")

        // The copy, with the same keys, records something else at size 4: a fork, refused with exit 1.
        var forkEnv = a
        forkEnv["CUSTODY_ARCHIVE"] = fork
        dir.write("other.txt", text: "not what a recorded")
        #expect(CLI.run(["ingest", dir.path + "/other.txt"], environment: forkEnv).status == 0)
        let forged = CLI.run(["prove", "--consistency", "3"], environment: forkEnv).stdout
        let refused = CLI.run(["witness", "cosign", dir.write("forged.txt", text: forged)], environment: b.jsonErrors)
        #expect(refused.status == 1 && refused.errorReason == "fork")
        #expect(refused.error?.problem.hasPrefix("FORK: ") == true && refused.stdout.isEmpty)  // shouted for people
        #expect(!Fixtures.allFiles(under: dir.path + "/b/witness/conflicts").isEmpty)
        #expect(CLI.run(["witness", "list", "--json"], environment: b).json?["witnesses"] as? [Any] != nil)
    }

    @Test(.enabled(if: CLI.pythonHasNaCl, "needs python3 with PyNaCl (Scripts/test.sh installs it)"))
    func anAuditorsScriptWrittenFromTheDocsChecksTheProofs() throws {
        let ids = try archive("a", items: (0..<20).map { "item \($0)" })
        let e = env("a")
        let script = CLI.packageRoot + "/Docs/examples/verify_proof.py"
        let identity = dir.path + "/a.id"
        #expect(CLI.run(["id", "export", "-o", identity], environment: e).status == 0)
        let oldText = CLI.run(["checkpoint"], environment: e).stdout
        let old = dir.write("old.txt", text: oldText)
        // The log starts with the founder's member-add: the checkpoint's size (its second line), not a count of items.
        let oldSize = try #require(oldText.split(separator: "\n").dropFirst().first.map(String.init))
        #expect(oldSize == "21")
        #expect(CLI.run(["note", ids[3], "checked"], environment: e).status == 0)
        let log = dir.write("log.json", text: CLI.run(["log", "--json"], environment: e).stdout)
        for id in [ids[0], ids[7], ids[19]] {
            let proof = dir.write("proof-\(id).txt", text: CLI.run(["prove", id], environment: e).stdout)
            let check = CLI.run(
                executable: "/usr/bin/env",
                ["python3", script, "inclusion", "--identity", identity, "--proof", proof, "--log", log]
            )
            #expect(check.status == 0 && check.stdout.hasPrefix("OK: entry "), "\(check.stdout) \(check.stderr)")
        }
        let request = dir.write("req.txt", text: CLI.run(["prove", "--consistency", oldSize], environment: e).stdout)
        let consistent = CLI.run(
            executable: "/usr/bin/env",
            ["python3", script, "consistency", "--identity", identity, "--old", old, "--request", request]
        )
        #expect(consistent.status == 0, "\(consistent.stdout) \(consistent.stderr)")

        let checkpoint = dir.write("checkpoint.txt", text: CLI.run(["checkpoint"], environment: e).stdout)
        let whole = CLI.run(
            executable: "/usr/bin/env",
            [
                "python3", script, "log", "--identity", identity, "--checkpoint", checkpoint, "--log", log, "--item",
                ids[3],
            ]
        )
        #expect(whole.status == 0, "\(whole.stdout) \(whole.stderr)")
        #expect(whole.stdout.contains("ingest  by") && whole.stdout.contains("note  by"))

        // A proof against a log whose entry was swapped for another fails the outsider's check.
        var entries = try #require(try JSONSerialization.jsonObject(with: Data(Fixtures.read(log))) as? [String: Any])
        var list = try #require(entries["entries"] as? [[String: Any]])
        let at = try #require(CLI.run(["prove", ids[7], "--json"], environment: e).json?["index"] as? Int)
        list[at]["entry"] = list[at + 1]["entry"]
        entries["entries"] = list
        let tampered = dir.write("tampered.json", Array(try JSONSerialization.data(withJSONObject: entries)))
        let proof = dir.path + "/proof-\(ids[7]).txt"
        let bad = CLI.run(
            executable: "/usr/bin/env",
            ["python3", script, "inclusion", "--identity", identity, "--proof", proof, "--log", tampered]
        )
        #expect(bad.status == 1 && bad.stdout.hasPrefix("FAIL: "), "\(bad.stdout) \(bad.stderr)")
        let badLog = CLI.run(
            executable: "/usr/bin/env",
            ["python3", script, "log", "--identity", identity, "--checkpoint", checkpoint, "--log", tampered]
        )
        #expect(badLog.status == 1, "\(badLog.stdout) \(badLog.stderr)")
    }
}
