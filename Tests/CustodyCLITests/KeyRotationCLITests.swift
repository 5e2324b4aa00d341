import CustodyArchive
import CustodyCrypto
import CustodyTestSupport
import Foundation
import Testing

/// `custody keys rotate` through the built binary (issue 13): what is ingested afterwards does not open with the
/// secrets someone copied before; earlier items, grants and bundles keep working; peers follow the logged key
/// transition and refuse a forged one; an interrupted rotation blocks every other command until it is finished or
/// discarded; only an administrator may rotate; and verify catches an archive.json edited against the log.
@Suite(.serialized) struct KeyRotationCLITests: CLIArchiveSuite {
    let dir = TempDirectory("rotate-cli")
    static let passphrase = "the administrator's words"
    var script: String { CLI.packageRoot + "/Docs/examples/decrypt_item.py" }

    private func env(as member: String, archive: String = "a") -> [String: String] {
        var environment = env(archive)
        environment["CUSTODY_MEMBER"] = member
        environment["CUSTODY_PASSPHRASE"] = member == "admin" ? Self.passphrase : "\(member)'s own words"
        return environment.jsonErrors
    }

    private var root: String { dir.path + "/a" }

    /// Archive `a` with an administrator and an investigator (`ivan`), and one item ingested.
    private func team() throws -> String {
        #expect(initArchive("a").status == 0)
        var adding = env(as: "admin")
        adding["CUSTODY_NEW_PASSPHRASE"] = "ivan's own words"
        let added = CLI.run(
            ["member", "add", "ivan", "--role", "investigator", "--kdf", "insecure-test"],
            environment: adding
        )
        #expect(added.status == 0, "\(added.stderr)")
        return try ingest("before.txt", "ingested before the rotation")
    }

    private func ingest(_ name: String, _ text: String, as member: String = "admin") throws -> String {
        let run = CLI.run(
            ["ingest", dir.write("up-\(name)/\(name)", text: text), "--json"],
            environment: env(as: member)
        )
        #expect(run.status == 0, "\(run.stderr)")
        return try #require((run.json?["items"] as? [[String: Any]])?.first?["id"] as? String)
    }

    private func rotate(_ extra: [String] = [], as member: String = "admin") -> CLIResult {
        CLI.run(
            ["keys", "rotate", "--reason", "ivan's laptop was stolen", "--json"] + extra,
            environment: env(as: member)
        )
    }

    @Test func anItemIngestedAfterTheRotationDoesNotOpenWithTheOldSecrets() throws {
        let before = try team()
        // What a departing member could have copied: every key file as it was.
        let copied = Fixtures.allFiles(under: root + "/members").map { ($0, Fixtures.read($0)) }
        let oldConfig = Fixtures.read(root + "/archive.json")
        let oldIdentity = Fixtures.read(root + "/identity.json")
        let rotated = rotate()
        #expect(rotated.status == 0, "\(rotated.stderr)")
        let json = try #require(rotated.json)
        #expect(json["rewrapped"] as? Int == 1)
        #expect(json["members"] as? Int == 2)
        #expect(json["fingerprint"] as? String != json["previous_fingerprint"] as? String)
        let after = try ingest("after.txt", "ingested after the rotation")

        // Both items open for current members, and both verifiers agree.
        for (member, item) in [("admin", before), ("ivan", after), ("ivan", before)] {
            let out = dir.path + "/out-\(member)-\(item)"
            #expect(CLI.run(["extract", item, "-o", out], environment: env(as: member)).status == 0)
        }
        #expect(CLI.run(["verify", "--deep"], environment: env(as: "admin")).status == 0)
        if CLI.pythonHasNaCl {
            let checked = CLI.run(executable: "/usr/bin/env", ["python3", script, root], environment: env(as: "ivan"))
            #expect(checked.status == 0, "\(checked.stdout)\n\(checked.stderr)")
        }

        // The old secrets, put back: the new item's keys do not open with them, though the old item's still do.
        let stale = dir.path + "/stale"
        #expect(CLI.run(executable: "/bin/cp", ["-a", root, stale]).status == 0)
        for (path, bytes) in copied { dir.write("stale" + path.dropFirst(root.count), bytes) }
        dir.write("stale/archive.json", oldConfig)
        dir.write("stale/identity.json", oldIdentity)
        var staleEnv = env(as: "ivan")
        staleEnv["CUSTODY_ARCHIVE"] = stale
        if CLI.pythonHasNaCl {
            let new = CLI.run(executable: "/usr/bin/env", ["python3", script, stale, after], environment: staleEnv)
            #expect(new.status == 1)
            #expect(new.stderr.contains("wrapped key does not open"), "\(new.stderr)")
            let old = CLI.run(
                executable: "/usr/bin/env",
                ["python3", script, stale, before, "-o", dir.path + "/stale-before"],
                environment: staleEnv
            )
            #expect(old.status == 0, "\(old.stderr)")
        }
        let refused = CLI.run(["extract", after, "-o", dir.path + "/stale-after"], environment: staleEnv)
        #expect(refused.status != 0)
        #expect(!FileManager.default.fileExists(atPath: dir.path + "/stale-after"))
    }

    @Test func peersFollowTheTransitionAndOldGrantsKeepWorking() throws {
        _ = try team()
        #expect(initArchive("b").status == 0)
        let aID = dir.path + "/a.identity.json"
        let bID = dir.path + "/b.identity.json"
        #expect(CLI.run(["id", "export", "-o", aID], environment: env(as: "admin")).status == 0)
        #expect(CLI.run(["id", "export", "-o", bID], environment: env("b")).status == 0)
        #expect(CLI.run(["witness", "add", aID], environment: env("b")).status == 0)
        // A grant to b made before a rotates: sealed to b's key, naming a's old box key as granter.
        let grant = CLI.run(
            [
                "grant", "create", "--to", bID, "--item", try ingest("g.txt", "granted"), "--expires", "30d",
                "--purpose", "exchange", "--json",
            ],
            environment: env(as: "admin")
        )
        #expect(grant.status == 0, "\(grant.stderr)")
        let grantID = try #require(grant.json?["id"] as? String)
        #expect(rotate().status == 0)
        let newID = dir.path + "/a.new.identity.json"
        #expect(CLI.run(["id", "export", "-o", newID], environment: env(as: "admin")).status == 0)
        let exported = try #require(
            try JSONSerialization.jsonObject(with: Data(Fixtures.read(newID))) as? [String: Any]
        )
        #expect((exported["transitions"] as? [[String: Any]])?.count == 1)

        // The bundle of the old grant, exported now, carries the new identity: b follows and imports.
        let bundle = dir.path + "/old-grant.custody-bundle"
        #expect(CLI.run(["bundle", "export", grantID, "-o", bundle], environment: env(as: "admin")).status == 0)
        let imported = CLI.run(["bundle", "import", bundle, "--trust-granter"], environment: env("b").jsonErrors)
        #expect(imported.status == 0, "\(imported.stderr)")
        let registry = String(decoding: Fixtures.read(dir.path + "/b/bodies.json"), as: UTF8.self)
        #expect(registry.contains(exported["fingerprint"] as? String ?? "?"))
        #expect(
            !registry.contains(
                (try JSONSerialization.jsonObject(with: Data(Fixtures.read(aID))) as? [String: Any])?["fingerprint"]
                    as? String ?? "?"
            )
        )
        if CLI.pythonHasNaCl {
            let verifier = CLI.packageRoot + "/Docs/examples/verify_bundle.py"
            let checked = CLI.run(executable: "/usr/bin/env", ["python3", verifier, "verify", bundle])
            #expect(checked.status == 0, "\(checked.stdout)\n\(checked.stderr)")
        }

        // `witness add` of the new identity on a third archive that knew the old one says it followed.
        #expect(initArchive("c").status == 0)
        #expect(CLI.run(["witness", "add", aID], environment: env("c")).status == 0)
        let followed = CLI.run(["witness", "add", newID], environment: env("c"))
        #expect(followed.status == 0, "\(followed.stderr)")
        #expect(followed.stdout.contains("followed the key rotation"), "\(followed.stdout)")
    }

    @Test func aPeerTwoRotationsBehindFollowsBothStepsAndTheItemsStayReadable() throws {
        let before = try team()
        #expect(initArchive("c").status == 0)
        let original = dir.path + "/a.0.json"
        #expect(CLI.run(["id", "export", "-o", original], environment: env(as: "admin")).status == 0)
        #expect(CLI.run(["witness", "add", original], environment: env("c")).status == 0)
        #expect(rotate().status == 0)
        let middle = try ingest("middle.txt", "between the rotations")
        #expect(rotate().status == 0)
        let latest = dir.path + "/a.2.json"
        #expect(CLI.run(["id", "export", "-o", latest], environment: env(as: "admin")).status == 0)
        let identity = try #require(
            try JSONSerialization.jsonObject(with: Data(Fixtures.read(latest))) as? [String: Any]
        )
        #expect((identity["transitions"] as? [[String: Any]])?.count == 2)
        let followed = CLI.run(["witness", "add", latest], environment: env("c"))
        #expect(followed.status == 0, "\(followed.stderr)")
        #expect(followed.stdout.contains("followed the key rotation"))
        // Two retired keys, in order; every item opens; both verifiers agree.
        let config = try #require(
            try JSONSerialization.jsonObject(with: Data(Fixtures.read(root + "/archive.json"))) as? [String: Any]
        )
        #expect((config["retired_box_keys"] as? [String])?.count == 2)
        for item in [before, middle] {
            #expect(
                CLI.run(["extract", item, "-o", dir.path + "/two-\(item)"], environment: env(as: "ivan")).status == 0
            )
        }
        #expect(CLI.run(["verify", "--deep"], environment: env(as: "admin")).status == 0)
        if CLI.pythonHasNaCl {
            let checked = CLI.run(executable: "/usr/bin/env", ["python3", script, root], environment: env(as: "ivan"))
            #expect(checked.status == 0, "\(checked.stdout)\n\(checked.stderr)")
        }
    }

    @Test func aForgedOrAlteredTransitionIsNotFollowed() throws {
        _ = try team()
        #expect(initArchive("c").status == 0)
        let aID = dir.path + "/a.identity.json"
        #expect(CLI.run(["id", "export", "-o", aID], environment: env(as: "admin")).status == 0)
        #expect(CLI.run(["witness", "add", aID], environment: env("c")).status == 0)
        #expect(rotate().status == 0)
        let newID = dir.path + "/a.new.identity.json"
        #expect(CLI.run(["id", "export", "-o", newID], environment: env(as: "admin")).status == 0)
        let registry = Fixtures.read(dir.path + "/c/bodies.json")
        var identity = try #require(
            try JSONSerialization.jsonObject(with: Data(Fixtures.read(newID))) as? [String: Any]
        )
        var transition = try #require((identity["transitions"] as? [[String: Any]])?.first)
        // One byte of the proved entry changed: its signature and its proof fail.
        var entry = try #require(Encoding.bytes(base64: transition["entry"] as? String ?? ""))
        entry[20] ^= 0x01
        transition["entry"] = Encoding.base64(entry)
        for (name, forged) in [
            ("entry", [transition]), ("none", []), ("index", [transition.merging(["index": 0]) { $1 }]),
        ] {
            identity["transitions"] = forged
            let path = dir.path + "/forged-\(name).json"
            dir.write("forged-\(name).json", Array(try JSONSerialization.data(withJSONObject: identity)))
            let refused = CLI.run(["witness", "add", path], environment: env("c").jsonErrors)
            #expect(refused.status != 0, "\(name): \(refused.stdout)")
            #expect(Fixtures.read(dir.path + "/c/bodies.json") == registry, "\(name)")
        }
    }

    @Test func anInterruptedRotationBlocksOtherCommandsUntilItIsFinishedOrDiscarded() throws {
        let before = try team()
        let second = try ingest("second.txt", "another item")
        // Killed after staging, before the event: the resume discards it and nothing changed.
        let config = Fixtures.read(root + "/archive.json")
        var crash = env(as: "admin")
        crash["CUSTODY_TEST_CRASH_AT"] = "rotation-staged"
        _ = CLI.run(["keys", "rotate", "--reason", "test"], environment: crash)
        let blocked = CLI.run(["show", before], environment: env(as: "ivan"))
        #expect(blocked.status == 75)
        #expect(blocked.errorReason == "rotation-unfinished")
        let discarded = CLI.run(["keys", "rotate", "--resume"], environment: env(as: "admin"))
        #expect(discarded.status == 66, "\(discarded.stderr)")
        #expect(Fixtures.read(root + "/archive.json") == config)
        #expect(!FileManager.default.fileExists(atPath: root + "/rotation"))
        #expect(CLI.run(["show", before], environment: env(as: "ivan")).status == 0)

        // Killed after the event and the rewraps, and after archive.json switched: each time the resume finishes.
        for point in ["rotation-rewrapped-batch", "rotation-config-switched"] {
            var crash = env(as: "admin")
            crash["CUSTODY_TEST_CRASH_AT"] = point
            _ = CLI.run(["keys", "rotate", "--reason", "test \(point)"], environment: crash)
            #expect(CLI.run(["ls"], environment: env(as: "ivan")).errorReason == "rotation-unfinished", "\(point)")
            let finished = CLI.run(["keys", "rotate", "--resume", "--json"], environment: env(as: "admin"))
            #expect(finished.status == 0, "\(point): \(finished.stderr)")
            #expect(finished.json?["resumed"] as? Bool == true)
            #expect(CLI.run(["verify", "--deep"], environment: env(as: "admin")).status == 0, "\(point)")
            for item in [before, second] {
                #expect(
                    CLI.run(["extract", item, "-o", dir.path + "/\(point)-\(item)"], environment: env(as: "ivan"))
                        .status == 0,
                    "\(point)"
                )
            }
        }
        #expect(CLI.run(["keys", "rotate", "--resume"], environment: env(as: "admin")).status == 66)
    }

    @Test func onlyAnAdministratorRotatesAndBadInputChangesNothing() throws {
        _ = try team()
        let config = Fixtures.read(root + "/archive.json")
        let byInvestigator = rotate(as: "ivan")
        #expect(byInvestigator.status == 77)
        #expect(byInvestigator.errorReason == "role-not-allowed")
        let noReason = CLI.run(["keys", "rotate"], environment: env(as: "admin"))
        #expect(noReason.status == 64)
        let blank = CLI.run(["keys", "rotate", "--reason", "  "], environment: env(as: "admin"))
        #expect(blank.status == 64)
        var wrong = env(as: "admin")
        wrong["CUSTODY_PASSPHRASE"] = "not it"
        #expect(CLI.run(["keys", "rotate", "--reason", "x"], environment: wrong).status == 77)
        #expect(Fixtures.read(root + "/archive.json") == config)
        #expect(!FileManager.default.fileExists(atPath: root + "/rotation"))
    }

    @Test func verifyCatchesAnArchiveJSONEditedAgainstTheLog() throws {
        _ = try team()
        let config = Fixtures.read(root + "/archive.json")
        #expect(rotate().status == 0)
        #expect(CLI.run(["verify"], environment: env(as: "admin")).status == 0)
        // The pre-rotation archive.json put back: its box key is not the log's latest rotation's.
        dir.write("a/archive.json", config)
        let report = CLI.run(["verify", "--json"], environment: env(as: "admin"))
        #expect(report.status != 0)
        #expect(report.stdout.contains("key-rotation-invalid"), "\(report.stdout)")
    }
}
