import CustodyArchive
import CustodyCrypto
import CustodyTestSupport
import Foundation
import Testing

/// Docs/examples/decrypt_item.py was written from Docs/FORMAT.md alone (PyNaCl, no Custody code).
/// It agreeing with custody on real archives is the proof that the format documents are complete.
@Suite struct IndependentDecryptorTests {
    let dir = TempDirectory("pynacl")
    var archive: String { dir.path + "/archive" }
    var env: [String: String] { ["CUSTODY_ARCHIVE": archive, "CUSTODY_PASSPHRASE": "independent check"] }
    var script: String { CLI.packageRoot + "/Docs/examples/decrypt_item.py" }

    @Test(.enabled(if: CLI.pythonHasNaCl, "needs python3 with PyNaCl (Scripts/test.sh installs it)"))
    func decryptorWrittenFromTheDocsAgreesWithCustody() throws {
        let python = "/usr/bin/env"
        #expect(CLI.run(["init", "--name", "Docs Check", "--kdf", "insecure-test"], environment: env).status == 0)
        let big = (0..<((1 << 20) + 100_000)).map { UInt8(truncatingIfNeeded: $0 &* 2_654_435_761 >> 11) }
        dir.write("up/big.bin", big)
        dir.write("up/small.txt", text: "شهادة — witness statement")
        dir.write("up/empty.bin", [])
        let ingest = CLI.run(
            ["ingest", dir.path + "/up", "--case", "DOCS-1", "--meta", "k=v", "--json"],
            environment: env
        )
        #expect(ingest.status == 0, "\(ingest.stderr)")
        let items = try #require(ingest.json?["items"] as? [[String: Any]])
        let bigID = try #require(
            items.first { ($0["path"] as? String)?.hasSuffix("big.bin") == true }?["id"] as? String
        )

        let all = CLI.run(executable: python, ["python3", script, archive], environment: env)
        #expect(all.status == 0, "\(all.stdout)\n\(all.stderr)")

        let out = dir.path + "/big.out"
        let one = CLI.run(executable: python, ["python3", script, archive, bigID, "-o", out], environment: env)
        #expect(one.status == 0, "\(one.stderr)")
        #expect(Fixtures.read(out) == big)

        // Damage that custody's verify sees, the independent checker sees too.
        let objects = Fixtures.allFiles(under: archive + "/objects").filter { !$0.contains("/objects/tmp/") }
        let victim = try #require(objects.max { Fixtures.read($0).count < Fixtures.read($1).count })
        var bytes = Fixtures.read(victim)
        bytes[100] ^= 0x01
        try Data(bytes).write(to: URL(fileURLWithPath: victim))
        #expect(CLI.run(["verify"], environment: env).status == 1)
        #expect(CLI.run(executable: python, ["python3", script, archive], environment: env).status == 1)
    }

    @Test(.enabled(if: CLI.pythonHasNaCl, "needs python3 with PyNaCl (Scripts/test.sh installs it)"))
    func decryptorOpensATeamArchiveThroughEachMembersKeyFile() throws {
        let python = "/usr/bin/env"
        func member(_ name: String) -> [String: String] {
            ["CUSTODY_ARCHIVE": archive, "CUSTODY_MEMBER": name, "CUSTODY_PASSPHRASE": "\(name) passphrase"]
        }
        let created = CLI.run(
            ["init", "--name", "Team", "--kdf", "insecure-test", "--member", "alice"],
            environment: member("alice")
        )
        try #require(created.status == 0, "\(created.stderr)")
        for (name, role) in [("bob", "investigator"), ("rita", "records-officer"), ("carol", "field-staff")] {
            let added = CLI.run(
                ["member", "add", name, "--role", role, "--kdf", "insecure-test"],
                environment: member("alice").merging(["CUSTODY_NEW_PASSPHRASE": "\(name) passphrase"]) { $1 }
            )
            try #require(added.status == 0, "\(added.stderr)")
        }
        // Items by an administrator and by field staff (whose chunks are keyed by a convergence secret of their own).
        var ids: [String: String] = [:]
        for (name, bytes) in [
            ("alice", Array("alice's statement".utf8)), ("carol", (0..<70_000).map { UInt8($0 % 251) }),
        ] {
            let file = dir.write("team-up/\(name).bin", bytes)
            let ingest = CLI.run(["ingest", file, "--json"], environment: member(name))
            try #require(ingest.status == 0, "\(ingest.stderr)")
            ids[name] = try #require((ingest.json?["items"] as? [[String: Any]])?.first?["id"] as? String)
        }
        // A complete share (admin) and opener shares (investigator, records officer) rebuild the keys that open both.
        for name in ["alice", "bob", "rita"] {
            let all = CLI.run(executable: python, ["python3", script, archive], environment: member(name))
            #expect(all.status == 0, "\(name): \(all.stdout)\n\(all.stderr)")
            #expect(all.stdout.contains("member     \(name) ("), "\(all.stdout)")
        }
        let out = dir.path + "/carol.out"
        let one = CLI.run(
            executable: python,
            ["python3", script, archive, try #require(ids["carol"]), "-o", out, "--member", "bob"],
            environment: member("bob").merging(["CUSTODY_MEMBER": "carol"]) { $1 }  // --member wins
        )
        #expect(one.status == 0, "\(one.stdout)\n\(one.stderr)")
        #expect(Fixtures.read(out) == Fixtures.read(dir.path + "/team-up/carol.bin"))
        // A depositor share opens nothing: refused with a message, not a traceback.
        let carol = CLI.run(executable: python, ["python3", script, archive], environment: member("carol"))
        #expect(carol.status == 1 && carol.stderr.contains("depositor share"), "\(carol.stdout)\n\(carol.stderr)")
        // A wrong passphrase fails the key file's AEAD; several members and none named is refused; no passphrase
        // and no terminal fails at once instead of waiting for one.
        var wrong = member("bob")
        wrong["CUSTODY_PASSPHRASE"] = "not bob's"
        #expect(CLI.run(executable: python, ["python3", script, archive], environment: wrong).status == 1)
        let unnamed = CLI.run(
            executable: python,
            ["python3", script, archive],
            environment: ["CUSTODY_PASSPHRASE": "alice passphrase"]
        )
        #expect(unnamed.status == 1 && unnamed.stderr.contains("--member"), "\(unnamed.stderr)")
        let silent = CLI.run(executable: python, ["python3", script, archive], environment: ["CUSTODY_MEMBER": "bob"])
        #expect(silent.status == 1 && silent.stderr.contains("no passphrase"), "\(silent.stderr)")
    }

    @Test(.enabled(if: CLI.pythonHasNaCl, "needs python3 with PyNaCl (Scripts/test.sh installs it)"))
    func decryptorAndRosterCheckerFollowAnArchiveFromKeysJSONThroughMigration() async throws {
        let python = "/usr/bin/env"
        let roster = CLI.packageRoot + "/Docs/examples/verify_roster.py"
        // An archive as made before members: its secrets in keys.json (made in-process: `init` always founds).
        _ = try await Archive.create(
            at: archive,
            name: "Old Body",
            passphrase: try SecretBytes(copying: Array("independent check".utf8)),
            kdfPreset: "insecure-test",
            founder: nil
        )
        #expect(FileManager.default.fileExists(atPath: archive + "/keys.json"))
        let before = CLI.run(
            ["ingest", dir.write("old/before.txt", text: "before the roster"), "--json"],
            environment: env
        )
        try #require(before.status == 0, "\(before.stderr)")
        let keysJSON = CLI.run(executable: python, ["python3", script, archive], environment: env)
        #expect(
            keysJSON.status == 0 && keysJSON.stdout.contains("keys.json  opened"),
            "\(keysJSON.stdout) \(keysJSON.stderr)"
        )
        let unfounded = try #require(CLI.run(executable: python, ["python3", roster, archive]).json)
        #expect(unfounded["ok"] as? Bool == true && unfounded["founded"] is NSNull)
        #expect((unfounded["roster"] as? [Any])?.isEmpty == true)

        // Migrated: the founding member-add comes after the archive's own events, and later events name the member.
        let migrated = CLI.run(["member", "migrate", "--name", "founder"], environment: env)
        try #require(migrated.status == 0, "\(migrated.stderr)")
        #expect(!FileManager.default.fileExists(atPath: archive + "/keys.json"))
        let after = CLI.run(
            ["ingest", dir.write("old/after.txt", text: "after the roster"), "--json"],
            environment: env
        )
        try #require(after.status == 0, "\(after.stderr)")
        let member = CLI.run(executable: python, ["python3", script, archive], environment: env)
        #expect(
            member.status == 0 && member.stdout.contains("member     founder ("),
            "\(member.stdout) \(member.stderr)"
        )
        let founded = try #require(CLI.run(executable: python, ["python3", roster, archive]).json)
        #expect(founded["ok"] as? Bool == true && founded["founded"] as? Int == 1, "\(founded)")
        #expect((founded["roster"] as? [[String: Any]])?.map { $0["name"] as? String } == ["founder"])
        #expect(CLI.run(["verify"], environment: env).status == 0)
        // --member names no one in an archive whose only key file is the founder's.
        let wrong = CLI.run(executable: python, ["python3", script, archive, "--member", "nobody"], environment: env)
        #expect(wrong.status == 1 && wrong.stderr.contains("nobody"), "\(wrong.stderr)")
    }
}
