import CustodyArchive
import CustodyCrypto
import CustodyTestSupport
import Foundation
import Testing

/// Members and roles attacked through the built binary (issue 13): every command each role may not run is refused
/// with exit 77 `role-not-allowed` and leaves the archive as it was; every command it may run works; removal,
/// passphrases, bad input, planted and swapped key files, migration, and two members at once.
@Suite(.serialized) struct MemberCLITests: CLIArchiveSuite {
    let dir = TempDirectory("member-cli")
    static let passphrase = "the administrator's words"

    static let roles = ["rita": "records-officer", "ivan": "investigator", "fay": "field-staff"]

    /// The environment of archive `a` acting as `member`, with their own passphrase.
    private func env(as member: String, passphrase: String? = nil, archive: String = "a") -> [String: String] {
        var environment = env(archive)
        environment["CUSTODY_MEMBER"] = member
        environment["CUSTODY_PASSPHRASE"] = passphrase ?? Self.passphrase(of: member)
        return environment.jsonErrors
    }

    static func passphrase(of member: String) -> String {
        member == "admin" ? passphrase : "\(member)'s own words"
    }

    private var root: String { dir.path + "/a" }

    /// What a scenario holds: the item, grants of `a` to `b`, and bundles from `b` to `a`.
    struct Scenario {
        var item: String
        var grants: [String]
        var bundles: [String]
    }

    /// Archive `a` with an administrator, a records officer, an investigator and field staff, one item, three
    /// grants to archive `b`; and two bundles from `b` to `a`.
    private func scenario() throws -> Scenario {
        #expect(initArchive("a").status == 0)
        for (name, role) in Self.roles.sorted(by: { $0.key < $1.key }) {
            var adding = env(as: "admin")
            adding["CUSTODY_NEW_PASSPHRASE"] = Self.passphrase(of: name)
            let added = CLI.run(["member", "add", name, "--role", role, "--kdf", "insecure-test"], environment: adding)
            #expect(added.status == 0, "\(added.stderr)")
        }
        #expect(initArchive("b").status == 0)
        for name in ["a", "b"] {
            let exported = CLI.run(
                ["id", "export", "-o", dir.path + "/\(name).identity.json"],
                environment: name == "a" ? env(as: "admin") : env("b")
            )
            #expect(exported.status == 0, "\(exported.stderr)")
        }
        let ingest = CLI.run(
            ["ingest", dir.write("a-up/statement.txt", text: "Witness W-17 statement"), "--json"],
            environment: env(as: "admin")
        )
        #expect(ingest.status == 0, "\(ingest.stderr)")
        let item = try #require((ingest.json?["items"] as? [[String: Any]])?.first?["id"] as? String)
        var grants: [String] = []
        for _ in 0..<3 {
            let grant = CLI.run(
                [
                    "grant", "create", "--to", dir.path + "/b.identity.json", "--item", item, "--expires", "30d",
                    "--purpose", "petition", "--json",
                ],
                environment: env(as: "admin")
            )
            #expect(grant.status == 0, "\(grant.stderr)")
            grants.append(try #require(grant.json?["id"] as? String))
        }
        #expect(
            CLI.run(["ingest", dir.write("b-up/b.txt", text: "from b"), "--tag", "b"], environment: env("b")).status
                == 0
        )
        var bundles: [String] = []
        for i in 0..<2 {
            let grant = CLI.run(
                [
                    "grant", "create", "--to", dir.path + "/a.identity.json", "--tag", "b", "--expires", "30d",
                    "--purpose", "exchange \(i)", "--json",
                ],
                environment: env("b")
            )
            #expect(grant.status == 0, "\(grant.stderr)")
            let id = try #require(grant.json?["id"] as? String)
            let bundle = dir.path + "/b-\(i).custody-bundle"
            #expect(CLI.run(["bundle", "export", id, "-o", bundle], environment: env("b")).status == 0)
            bundles.append(bundle)
        }
        return Scenario(item: item, grants: grants, bundles: bundles)
    }

    /// Every file of archive `a` but the derived index and the lock, with its bytes.
    private func snapshot() -> [String: [UInt8]] {
        var files: [String: [UInt8]] = [:]
        for path in Fixtures.allFiles(under: root) where !path.contains("index.sqlite") && !path.hasSuffix("/lock") {
            files[path] = Fixtures.read(path)
        }
        return files
    }

    /// The files added, removed or changed since `before` (names only: the bytes say nothing to a person).
    private func changes(since before: [String: [UInt8]]) -> [String] {
        let after = snapshot()
        return Set(before.keys).union(after.keys).filter { before[$0] != after[$0] }
            .map { $0.replacingOccurrences(of: root + "/", with: "") }.sorted()
    }

    /// The commands of the role table (Docs/LEDGER.md section 18.2), as arguments on `scenario`.
    private func commands(_ s: Scenario, tag: String) -> [String: [String]] {
        [
            "ingest": ["ingest", dir.write("in-\(tag)/new.txt", text: "new \(tag)")],
            "ls": ["ls"],
            "search": ["search", "statement"],
            "show": ["show", s.item],
            "tag": ["tag", s.item, "--add", "t-\(tag)"],
            "note": ["note", s.item, "note \(tag)"],
            "extract": ["extract", s.item, "-o", dir.path + "/out-\(tag)"],
            "grant create": [
                "grant", "create", "--to", dir.path + "/b.identity.json", "--item", s.item, "--expires", "30d",
                "--purpose", "p \(tag)",
            ],
            "grant revoke": ["grant", "revoke", s.grants[0], "--reason", "withdrawn"],
            "bundle export": ["bundle", "export", s.grants[2], "-o", dir.path + "/export-\(tag).custody-bundle"],
            "bundle import": ["bundle", "import", s.bundles[0], "--trust-granter"],
            "member add": ["member", "add", "zed-\(tag)", "--role", "admin", "--kdf", "insecure-test"],
            "member remove": ["member", "remove", "fay", "--reason", "left"],
            "member role": ["member", "role", "ivan", "admin"],
        ]
    }

    static let refused: [String: [String]] = [
        "rita": ["ingest", "tag", "note", "extract", "member add", "member remove", "member role"],
        "ivan": [
            "grant create", "grant revoke", "bundle export", "bundle import", "member add", "member remove",
            "member role",
        ],
        "fay": [
            "ls", "search", "show", "tag", "note", "extract", "grant create", "grant revoke", "bundle export",
            "bundle import", "member add", "member remove", "member role",
        ],
    ]

    @Test func everyRoleIsRefusedWhatItMayNotRunAndTheArchiveIsUnchanged() throws {
        let s = try scenario()
        // The index is caught up: a refusal must not rest on the index lagging.
        #expect(CLI.run(["ls"], environment: env(as: "admin")).status == 0)
        let before = snapshot()
        for (member, names) in Self.refused.sorted(by: { $0.key < $1.key }) {
            let all = commands(s, tag: member)
            for name in names {
                var environment = env(as: member)
                environment["CUSTODY_NEW_PASSPHRASE"] = "zed's words"
                let result = CLI.run(all[name] ?? [], environment: environment)
                #expect(
                    result.status == 77,
                    "\(member) \(name): exit \(result.status), \(result.stdout) \(result.stderr)"
                )
                #expect(result.errorReason == "role-not-allowed", "\(member) \(name): \(result.stderr)")
                #expect(
                    changes(since: before).isEmpty,
                    "\(changes(since: before)): \(member) \(name) changed the archive"
                )
            }
            #expect(!FileManager.default.fileExists(atPath: dir.path + "/out-\(member)"))
            #expect(!FileManager.default.fileExists(atPath: dir.path + "/export-\(member).custody-bundle"))
        }
    }

    @Test func everyRoleMayRunWhatItsRoleAllows() throws {
        let s = try scenario()
        let allowed: [(String, [String])] = [
            ("fay", ["ingest"]),
            ("ivan", ["ingest", "ls", "search", "show", "tag", "note", "extract"]),
            ("rita", ["ls", "search", "show", "grant create", "grant revoke", "bundle export", "bundle import"]),
            (
                "admin",
                [
                    "ingest", "ls", "search", "show", "tag", "note", "extract", "grant create", "bundle export",
                    "member add", "member role", "member remove",
                ]
            ),
        ]
        for (member, names) in allowed {
            var all = commands(s, tag: member)
            if member == "admin" {
                all["grant revoke"] = ["grant", "revoke", s.grants[1], "--reason", "withdrawn"]
                all["bundle import"] = ["bundle", "import", s.bundles[1], "--trust-granter"]
            }
            for name in names + (member == "admin" ? ["grant revoke", "bundle import"] : []) {
                var environment = env(as: member)
                environment["CUSTODY_NEW_PASSPHRASE"] = "zed's words"
                let result = CLI.run(all[name] ?? [], environment: environment)
                #expect(result.status == 0, "\(member) \(name): \(result.stderr)")
            }
        }
        #expect(Fixtures.read(dir.path + "/out-ivan") == Array("Witness W-17 statement".utf8))
        let verify = CLI.run(["verify", "--json"], environment: env(as: "admin"))
        #expect(verify.status == 0 && verify.json?["ok"] as? Bool == true, "\(verify.stdout)")
    }

    @Test func fieldStaffIngestingAHeldFileIsNotToldItIsHeld() throws {
        _ = try scenario()
        let evidence = dir.write("known/photo.jpg", Array(repeating: 0xD8, count: 5000) + randomBytes(3000))
        let first = CLI.run(["ingest", evidence, "--json"], environment: env(as: "ivan"))
        #expect(first.status == 0, "\(first.stderr)")
        // An investigator ingesting it again is told (the check below would mean nothing otherwise): a re-run
        // skips it as held, and --allow-duplicates names the item it duplicates.
        let rerun = CLI.run(["ingest", evidence, "--json"], environment: env(as: "ivan"))
        #expect((rerun.json?["already_held"] as? [Any])?.count == 1, "\(rerun.stdout)")
        let again = CLI.run(["ingest", evidence, "--allow-duplicates", "--json"], environment: env(as: "ivan"))
        let againItem = (again.json?["items"] as? [[String: Any]])?.first
        #expect(againItem?["duplicate_of"] is String, "\(again.stdout)")
        let field = CLI.run(["ingest", evidence, "--json"], environment: env(as: "fay"))
        #expect(field.status == 0, "\(field.stderr)")
        let item = try #require((field.json?["items"] as? [[String: Any]])?.first)
        #expect(item["duplicate_of"] is NSNull, "field staff learnt that the file is held: \(field.stdout)")
        let heldID = try #require((first.json?["items"] as? [[String: Any]])?.first?["id"] as? String)
        #expect(!field.stdout.contains(heldID))
        #expect(!field.stderr.contains("duplicate"))
    }

    @Test func aRemovedMembersKeptKeyFileOpensNothing() throws {
        let s = try scenario()
        let list = try #require(CLI.run(["member", "list", "--json"], environment: env(as: "admin")).json)
        let members = try #require(list["members"] as? [[String: Any]])
        let ivan = try #require(members.first { $0["name"] as? String == "ivan" }?["id"] as? String)
        let keyFile = root + "/members/\(ivan).json"
        let kept = Fixtures.read(keyFile)
        let removed = CLI.run(["member", "remove", "ivan", "--reason", "left the team"], environment: env(as: "admin"))
        #expect(removed.status == 0, "\(removed.stderr)")
        #expect(!FileManager.default.fileExists(atPath: keyFile), "the removed member's key file is still there")
        let unknown = CLI.run(["tag", s.item, "--add", "x"], environment: env(as: "ivan"))
        #expect(unknown.status == 66 && unknown.errorReason == "member-unknown", "\(unknown.stderr)")
        // The copy they kept, put back.
        dir.write("a/members/\(ivan).json", kept)
        let before = snapshot()
        for (name, arguments) in commands(s, tag: "removed").sorted(by: { $0.key < $1.key })
        where ["ingest", "ls", "search", "show", "tag", "note", "extract"].contains(name) {
            let result = CLI.run(arguments, environment: env(as: "ivan"))
            #expect(result.status == 77, "\(name): exit \(result.status) \(result.stderr)")
            #expect(result.errorReason == "member-removed", "\(name): \(result.stderr)")
        }
        #expect(changes(since: before).isEmpty, "\(changes(since: before))")
        // Nor can they re-seal the copy under a passphrase of their own.
        var changing = env(as: "ivan")
        changing["CUSTODY_NEW_PASSPHRASE"] = "ivan's next words"
        let passphrase = CLI.run(["member", "passphrase"], environment: changing)
        #expect(passphrase.status == 77 && passphrase.errorReason == "member-removed", "\(passphrase.stderr)")
        #expect(Fixtures.read(keyFile) == kept)
        let all = try #require(CLI.run(["member", "list", "--all", "--json"], environment: env(as: "admin")).json)
        let entry = (all["members"] as? [[String: Any]])?.first { $0["id"] as? String == ivan }
        #expect(entry?["removed"] is Int)
    }

    @Test func eachMemberHasTheirOwnPassphrase() throws {
        let s = try scenario()
        let wrong = CLI.run(["tag", s.item, "--add", "x"], environment: env(as: "ivan", passphrase: Self.passphrase))
        #expect(wrong.status == 77 && wrong.errorReason == "wrong-passphrase", "\(wrong.stderr)")
        #expect(!wrong.stderr.contains(Self.passphrase))
        let files = Dictionary(
            uniqueKeysWithValues: Fixtures.allFiles(under: root + "/members").map { ($0, Fixtures.read($0)) }
        )
        let list = try #require(CLI.run(["member", "list", "--json"], environment: env(as: "admin")).json)
        let ivan = try #require(
            (list["members"] as? [[String: Any]])?.first { $0["name"] as? String == "ivan" }?["id"] as? String
        )
        var changing = env(as: "ivan")
        changing["CUSTODY_NEW_PASSPHRASE"] = "ivan's new words"
        let changed = CLI.run(["member", "passphrase"], environment: changing)
        #expect(changed.status == 0, "\(changed.stderr)")
        for (path, bytes) in files {
            #expect((Fixtures.read(path) == bytes) != path.hasSuffix("/\(ivan).json"), "\(path)")
        }
        let old = CLI.run(["tag", s.item, "--add", "x"], environment: env(as: "ivan"))
        #expect(old.status == 77 && old.errorReason == "wrong-passphrase", "\(old.stderr)")
        let new = CLI.run(["tag", s.item, "--add", "x"], environment: env(as: "ivan", passphrase: "ivan's new words"))
        #expect(new.status == 0, "\(new.stderr)")
        // Everyone else's passphrase is as it was.
        #expect(CLI.run(["tag", s.item, "--add", "y"], environment: env(as: "admin")).status == 0)
        #expect(CLI.run(["ingest", dir.write("f/x.txt", text: "x")], environment: env(as: "fay")).status == 0)
    }

    @Test func badMemberInputIsRefusedWithItsExitCodeAndChangesNothing() throws {
        let s = try scenario()
        let before = snapshot()
        let unknown = CLI.run(["tag", s.item, "--add", "x"], environment: env(as: "nobody"))
        #expect(unknown.status == 66 && unknown.errorReason == "member-unknown", "\(unknown.stderr)")
        var none = env("a").jsonErrors
        none["CUSTODY_MEMBER"] = nil
        let ambiguous = CLI.run(["tag", s.item, "--add", "x"], environment: none)
        #expect(ambiguous.status == 64, "\(ambiguous.stderr)")
        var adding = env(as: "admin")
        adding["CUSTODY_NEW_PASSPHRASE"] = "new member's words"
        for (what, arguments) in [
            ("control character", ["member", "add", "bell\u{07}name", "--role", "investigator"]),
            ("line break", ["member", "add", "two\nlines", "--role", "investigator"]),
            ("bidi override", ["member", "add", "evil\u{202E}txt", "--role", "investigator"]),
            ("duplicate name", ["member", "add", "ivan", "--role", "investigator"]),
            ("unknown role", ["member", "add", "newcomer", "--role", "god"]),
            ("unknown role change", ["member", "role", "ivan", "god"]),
            ("remove nobody", ["member", "remove", "nobody", "--reason", "r"]),
        ] {
            let result = CLI.run(
                arguments + (arguments[1] == "add" ? ["--kdf", "insecure-test"] : []),
                environment: adding
            )
            #expect(result.status != 0 && result.error != nil, "\(what): \(result.stderr)")
            #expect([64, 66].contains(result.status), "\(what): exit \(result.status)")
            #expect(
                !result.stderr.contains("\u{07}") && !result.stderr.contains("\u{202E}"),
                "\(what): raw control text"
            )
        }
        #expect(changes(since: before).isEmpty, "\(changes(since: before))")
    }

    @Test func aFilePlantedInMembersIsRefusedAsDamageNotSkipped() throws {
        let s = try scenario()
        for name in ["readme.txt", "0123456789abcdef.json", "0123456789ABCDEF.json", "0123456789abcdef.json.bak"] {
            let planted = dir.write("a/members/\(name)", text: "{}")
            let before = snapshot()
            let result = CLI.run(["tag", s.item, "--add", "x"], environment: env(as: "ivan"))
            #expect(
                result.status == 1 && result.errorReason == "damaged",
                "\(name): exit \(result.status) \(result.stderr)"
            )
            #expect(changes(since: before).isEmpty, "\(changes(since: before))")
            unlink(planted)
        }
        #expect(CLI.run(["tag", s.item, "--add", "x"], environment: env(as: "ivan")).status == 0)
    }

    @Test func aKeyFileEditedToClaimAdminStillCannotRead() throws {
        let s = try scenario()
        let list = try #require(CLI.run(["member", "list", "--json"], environment: env(as: "admin")).json)
        let fay = try #require(
            (list["members"] as? [[String: Any]])?.first { $0["name"] as? String == "fay" }?["id"] as? String
        )
        let path = root + "/members/\(fay).json"
        let text = String(decoding: Fixtures.read(path), as: UTF8.self)
        #expect(text.contains("\"field-staff\""))
        dir.write("a/members/\(fay).json", text: text.replacingOccurrences(of: "\"field-staff\"", with: "\"admin\""))
        let before = snapshot()
        for (name, arguments) in commands(s, tag: "edited").sorted(by: { $0.key < $1.key }) where name != "ingest" {
            var environment = env(as: "fay")
            environment["CUSTODY_NEW_PASSPHRASE"] = "zed's words"
            let result = CLI.run(arguments, environment: environment)
            #expect(result.status == 77, "\(name): exit \(result.status) \(result.stdout) \(result.stderr)")
            #expect(changes(since: before).isEmpty, "\(changes(since: before)): \(name) changed the archive")
        }
        #expect(!FileManager.default.fileExists(atPath: dir.path + "/out-edited"))
    }

    @Test func aKeyFileSwappedInFromAnotherArchiveOpensNothing() throws {
        let s = try scenario()
        var other = env("c")
        other["CUSTODY_MEMBER"] = "mallory"
        other["CUSTODY_PASSPHRASE"] = "mallory's words"
        #expect(
            CLI.run(["init", "--name", "C", "--kdf", "insecure-test"], environment: other).status == 0
        )
        let theirs = try #require(Fixtures.allFiles(under: dir.path + "/c/members").first)
        dir.write("a/members/" + (theirs as NSString).lastPathComponent, Fixtures.read(theirs))
        let before = snapshot()
        for (name, arguments) in commands(s, tag: "swapped").sorted(by: { $0.key < $1.key }) {
            var environment = env(as: "mallory", passphrase: "mallory's words")
            environment["CUSTODY_NEW_PASSPHRASE"] = "zed's words"
            let result = CLI.run(arguments, environment: environment)
            #expect(result.status != 0 && result.error != nil, "\(name): exit \(result.status) \(result.stdout)")
            #expect(changes(since: before).isEmpty, "\(changes(since: before)): \(name) changed the archive")
        }
    }

    @Test func migrationMakesThePassphraseTheFirstAdministratorAndLosesNothing() async throws {
        let path = dir.path + "/old"
        _ = try await Archive.create(
            at: path,
            name: "Old Body",
            passphrase: Fixtures.secret(Self.passphrase),
            kdfPreset: "insecure-test",
            founder: nil
        )
        let e = env("old").jsonErrors
        let ingest = CLI.run(["ingest", dir.write("old-up/a.txt", text: "before members"), "--json"], environment: e)
        #expect(ingest.status == 0, "\(ingest.stderr)")
        let item = try #require((ingest.json?["items"] as? [[String: Any]])?.first?["id"] as? String)
        #expect(CLI.run(["tag", item, "--add", "old"], environment: e).status == 0)
        let migrated = CLI.run(["member", "migrate", "--name", "chair", "--json"], environment: e)
        #expect(migrated.status == 0, "\(migrated.stderr)")
        #expect(migrated.json?["role"] as? String == "admin" && migrated.json?["name"] as? String == "chair")
        #expect(!FileManager.default.fileExists(atPath: path + "/keys.json"))
        let out = dir.path + "/old-out.txt"
        #expect(CLI.run(["extract", item, "-o", out], environment: e).status == 0)
        #expect(Fixtures.read(out) == Array("before members".utf8))
        let log = CLI.run(["log", "--json"], environment: e)
        #expect(log.status == 0 && log.stdout.contains("chair"), "\(log.stdout)")
        let verify = CLI.run(["verify", "--json"], environment: e)
        #expect(verify.status == 0 && verify.json?["ok"] as? Bool == true, "\(verify.stdout)")
        let again = CLI.run(["member", "migrate", "--name", "chair"], environment: e)
        #expect(again.status == 64, "\(again.stderr)")
    }

    @Test func twoMembersIngestingAtOnceBothSucceedAndEveryEventVerifies() throws {
        _ = try scenario()
        let files = 15
        for name in ["ivan", "fay"] {
            for i in 0..<files { dir.write("\(name)-many/\(i).txt", text: "\(name) \(i)") }
        }
        let children = ["ivan", "fay"].map { name in
            CLI.start(["ingest", dir.path + "/\(name)-many", "--json"], environment: env(as: name))
        }
        for (child, name) in zip(children, ["ivan", "fay"]) {
            let result = child.wait()
            #expect(result.status == 0, "\(name): \(result.stderr)")
            #expect((result.json?["items"] as? [Any])?.count == files, "\(name)")
        }
        let ls = CLI.run(["ls", "--json"], environment: env(as: "admin"))
        #expect((ls.json?["items"] as? [Any])?.count == 1 + 2 * files, "\(ls.stderr)")
        let verify = CLI.run(["verify", "--json"], environment: env(as: "admin"))
        #expect(verify.status == 0 && verify.json?["ok"] as? Bool == true, "\(verify.stdout)")
    }

    @Test func aRosterThresholdOfTwoStillLetsTheBodyEnrolAndApprove() throws {
        var e = env("t").jsonErrors
        let created = CLI.run(
            ["init", "--name", "T", "--kdf", "insecure-test", "--roster-threshold", "2"],
            environment: e
        )
        #expect(created.status == 0, "\(created.stderr)")
        e["CUSTODY_NEW_PASSPHRASE"] = "second admin's words"
        // With one administrator and a threshold of two, the body must still be able to enrol the second one
        // (else `init --roster-threshold 2` makes an archive whose roster can never change).
        let added = CLI.run(["member", "add", "second", "--role", "admin", "--kdf", "insecure-test"], environment: e)
        #expect(added.status == 0, "\(added.stderr)")
        // Any command the refusal's fix names must exist.
        if let fix = added.error?.fix, let range = fix.range(of: "custody member ") {
            let sub = fix[range.upperBound...].prefix { $0.isLetter }
            let help = CLI.run(["member", String(sub), "--help"], environment: e)
            #expect(
                help.status == 0 && help.stdout.contains("custody member \(sub)"),
                "the fix names `custody member \(sub)`, which does not exist"
            )
        }
    }

    @Test func aProposalUnderAThresholdOfTwoIsRecordedOnlyWhenASecondAdministratorApproves() throws {
        var first = env("t").jsonErrors
        first["CUSTODY_MEMBER"] = "first"
        #expect(
            CLI.run(["init", "--name", "T", "--kdf", "insecure-test", "--roster-threshold", "2"], environment: first)
                .status == 0
        )
        func adding(_ passphrase: String) -> [String: String] {
            var e = first
            e["CUSTODY_NEW_PASSPHRASE"] = passphrase
            return e
        }
        let second = CLI.run(
            ["member", "add", "second", "--role", "admin", "--kdf", "insecure-test", "--json"],
            environment: adding("second's words")
        )
        #expect(
            second.status == 0 && second.json?["status"] as? String == "recorded",
            "\(second.stdout) \(second.stderr)"
        )
        for (name, role) in [("ivan", "investigator"), ("fay", "field-staff")] {
            var e = first
            e["CUSTODY_NEW_PASSPHRASE"] = "\(name)'s own words"
            e["CUSTODY_MEMBER"] = "first"
            _ = CLI.run(["member", "add", name, "--role", role, "--kdf", "insecure-test", "--json"], environment: e)
        }
        let proposed = try #require(
            try JSONSerialization.jsonObject(
                with: Data(CLI.run(["member", "proposals", "--json"], environment: first).stdout.utf8)
            ) as? [[String: Any]]
        )
        #expect(proposed.count == 2, "\(proposed)")
        let ivanProposal = try #require(
            proposed.first { ($0["subject"] as? [String: Any])?["name"] as? String == "ivan" }?["id"] as? String
        )
        let names = { () -> [String] in
            let list = CLI.run(["member", "list", "--json"], environment: first).json
            return (list?["members"] as? [[String: Any]] ?? []).compactMap { $0["name"] as? String }
        }
        #expect(!names().contains("ivan"), "a change under the threshold was recorded at once")
        let journal = dir.path + "/t/journal/entries"
        let before = Fixtures.read(journal)
        // Its proposer approving again does not make two.
        let again = CLI.run(["member", "approve", ivanProposal], environment: first)
        #expect(again.status != 0, "\(again.stdout)")
        #expect(Fixtures.read(journal) == before)
        #expect(!names().contains("ivan"))
        // A proposal file edited to give the pending member another role is not approved as the original.
        let proposalFiles = Fixtures.allFiles(under: dir.path + "/t/roster-proposals")
        let ivanFile = try #require(proposalFiles.first { $0.contains(ivanProposal) })
        let original = Fixtures.read(ivanFile)
        let edited = String(decoding: original, as: UTF8.self)
            .replacingOccurrences(of: "\"investigator\"", with: "\"admin\"")
        dir.write("t/roster-proposals/" + (ivanFile as NSString).lastPathComponent, text: edited)
        var approver = env("t").jsonErrors
        approver["CUSTODY_MEMBER"] = "second"
        approver["CUSTODY_PASSPHRASE"] = "second's words"
        let tampered = CLI.run(["member", "approve", ivanProposal], environment: approver)
        let roles = { () -> [String: String] in
            let list = CLI.run(["member", "list", "--json"], environment: first).json
            var roles: [String: String] = [:]
            for member in list?["members"] as? [[String: Any]] ?? [] {
                if let name = member["name"] as? String { roles[name] = member["role"] as? String }
            }
            return roles
        }
        #expect(roles()["ivan"] != "admin", "an edited proposal made ivan an administrator: \(tampered.stdout)")
        dir.write("t/roster-proposals/" + (ivanFile as NSString).lastPathComponent, original)
        // The second administrator's approval records it.
        if roles()["ivan"] == nil {
            let approved = CLI.run(["member", "approve", ivanProposal], environment: approver)
            #expect(approved.status == 0, "\(approved.stderr)")
        }
        #expect(roles()["ivan"] == "investigator")
        let verify = CLI.run(["verify", "--json"], environment: first)
        #expect(verify.status == 0 && verify.json?["ok"] as? Bool == true, "\(verify.stdout)")
    }
}
