import CustodyTestSupport
import Foundation
import Testing

/// The roster of Docs/LEDGER.md section 18 checked twice: by `custody verify` and by the independent
/// Docs/examples/verify_roster.py, written from the docs alone. A team archive made with the CLI is clean for both,
/// and both rebuild the same roster; then each forged journal — frames appended by hand (LEDGER.md section 2) to a
/// copy, every entry validly signed by the archive's key, so that only the roster rule under test can object — is
/// refused by both, with the same problem kind, at the forged entry.
@Suite(.serialized) struct RosterVerifierTests {
    let dir = TempDirectory("roster-verifier")
    static let script = CLI.packageRoot + "/Docs/examples/verify_roster.py"
    static let examples = CLI.packageRoot + "/Docs/examples"

    struct Failure: Error, CustomStringConvertible {
        var description: String
    }

    static func passphrase(_ member: String) -> String { "\(member) passphrase" }

    /// The environment that acts as `member` in the archive `name`.
    func env(_ name: String, as member: String) -> [String: String] {
        [
            "CUSTODY_ARCHIVE": dir.path + "/" + name, "CUSTODY_MEMBER": member,
            "CUSTODY_PASSPHRASE": Self.passphrase(member),
        ]
    }

    /// Runs `custody arguments` in archive `name` as `member`, expecting success; its JSON output.
    @discardableResult
    func run(
        _ name: String,
        as member: String,
        _ arguments: [String],
        extra: [String: String] = [:]
    ) throws
        -> [String: Any]
    {
        let result = CLI.run(arguments, environment: env(name, as: member).merging(extra) { $1 })
        guard result.status == 0 else {
            throw Failure(description: "\(member): custody \(arguments.joined(separator: " ")): \(result.stderr)")
        }
        return result.json ?? [:]
    }

    /// `member add` of `member` with `role` by `admin`, with the fast test KDF.
    func add(_ name: String, _ member: String, role: String, by admin: String = "alice") throws {
        try run(
            name,
            as: admin,
            ["member", "add", member, "--role", role, "--kdf", "insecure-test"],
            extra: ["CUSTODY_NEW_PASSPHRASE": Self.passphrase(member)]
        )
    }

    /// Ingests one file as `member`; its item id.
    func ingest(_ name: String, as member: String, _ text: String) throws -> String {
        let file = dir.write("in/\(member)-\(text.count).txt", text: text)
        let json = try run(name, as: member, ["ingest", file, "--json"])
        let items = json["items"] as? [[String: Any]] ?? []
        guard let id = items.first?["id"] as? String else { throw Failure(description: "ingest printed no id") }
        return id
    }

    /// The key file path of the current member `member` of archive `name`.
    func keyFile(_ name: String, _ member: String) throws -> String {
        let folder = dir.path + "/\(name)/members"
        for file in try FileManager.default.contentsOfDirectory(atPath: folder) {
            let data = try Data(contentsOf: URL(fileURLWithPath: folder + "/" + file))
            let json = try JSONSerialization.jsonObject(with: data) as? [String: Any]
            if (json?["member"] as? [String: Any])?["name"] as? String == member { return folder + "/" + file }
        }
        throw Failure(description: "no key file of \(member)")
    }

    /// The team: alice (admin, founder), bob (investigator), carol (field staff), dave (records officer, removed
    /// after his key file was saved aside, so that a forger can still sign as him); ingests by alice, bob and carol,
    /// an extract by bob. Returns the item ids and the saved key files by name.
    func team() throws -> (items: [String], keys: [String: String]) {
        let created = CLI.run(
            ["init", "--name", "TEAM", "--kdf", "insecure-test", "--member", "alice"],
            environment: env("team", as: "alice")
        )
        guard created.status == 0 else { throw Failure(description: "init: \(created.stderr)") }
        try add("team", "bob", role: "investigator")
        try add("team", "carol", role: "field-staff")
        try add("team", "dave", role: "records-officer")
        let items = [
            try ingest("team", as: "alice", "alice's statement"),
            try ingest("team", as: "bob", "bob's photo notes"),
            try ingest("team", as: "carol", "carol's field recording"),
        ]
        try run("team", as: "bob", ["extract", items[2], "-o", dir.path + "/extracted.txt"])
        var keys: [String: String] = [:]
        for member in ["alice", "bob", "carol", "dave"] {
            keys[member] = dir.write("saved-\(member).json", Fixtures.read(try keyFile("team", member)))
        }
        try run("team", as: "alice", ["member", "remove", "dave", "--reason", "left the team"])
        return (items, keys)
    }

    // MARK: - Both verifiers

    struct Verdict {
        var verifier: String
        var status: Int32
        var report: [String: Any]?
        var output: String

        var problems: [[String: Any]] { report?["problems"] as? [[String: Any]] ?? [] }
        var kinds: [String] { problems.compactMap { $0["kind"] as? String } }
    }

    /// `custody verify --json` and `verify_roster.py` on the archive at `path`.
    func verdicts(_ path: String) -> [Verdict] {
        let custody = CLI.run(["verify", "--json"], environment: ["CUSTODY_ARCHIVE": path])
        let python = CLI.run(executable: "/usr/bin/env", ["python3", Self.script, path])
        return [
            Verdict(
                verifier: "custody verify",
                status: custody.status,
                report: custody.json,
                output: custody.stdout + custody.stderr
            ),
            Verdict(
                verifier: "verify_roster.py",
                status: python.status,
                report: python.json,
                output: python.stdout + python.stderr
            ),
        ]
    }

    /// A copy of archive `name`, to forge in.
    func copy(_ name: String, to copy: String) throws -> String {
        let target = dir.path + "/" + copy
        try FileManager.default.copyItem(atPath: dir.path + "/" + name, toPath: target)
        return target
    }

    /// Appends the forged `event` (see `forger`) to the journal of `archive`; the index of the forged entry.
    func forge(_ archive: String, signers: [String: String], _ event: [String: Any]) throws -> Int {
        var secrets: [String: [String]] = [:]
        for (name, path) in signers { secrets[name] = [path, Self.passphrase(name)] }
        let spec: [String: Any] = ["archive": archive, "signers": secrets, "event": event]
        let json = String(decoding: try JSONSerialization.data(withJSONObject: spec), as: UTF8.self)
        let forger = dir.write("forger.py", text: Self.forger)
        let result = CLI.run(executable: "/usr/bin/env", ["python3", forger, Self.examples, json])
        guard result.status == 0, let index = Int(result.stdout.trimmingCharacters(in: .whitespacesAndNewlines)) else {
            throw Failure(description: "forger: \(result.stdout) \(result.stderr)")
        }
        return index
    }

    /// Forges `event` in a fresh copy of `name` and expects both verifiers to refuse it as `kind` at its entry.
    func expectCaught(
        _ name: String,
        _ label: String,
        signers: [String: String],
        _ event: [String: Any],
        as kind: String,
        sourceLocation: SourceLocation = #_sourceLocation
    ) throws {
        let archive = try copy(name, to: "forged-\(label)")
        let index = try forge(archive, signers: signers, event)
        for v in verdicts(archive) {
            #expect(
                v.status == 1 && v.report?["ok"] as? Bool == false,
                "\(label): \(v.verifier) accepts it: \(v.output)",
                sourceLocation: sourceLocation
            )
            let named = v.problems.filter { $0["kind"] as? String == kind }
            #expect(
                named.contains { $0["entry"] as? Int == index },
                "\(label): \(v.verifier) reports \(v.kinds), not \(kind) at entry \(index): \(v.output)",
                sourceLocation: sourceLocation
            )
            #expect(
                Set(v.kinds) == [kind],
                "\(label): \(v.verifier) reports more: \(v.output)",
                sourceLocation: sourceLocation
            )
        }
    }

    // MARK: - The tests

    @Test(.enabled(if: CLI.pythonHasNaCl, "needs python3 with PyNaCl (Scripts/test.sh installs it)"))
    func aTeamArchiveIsCleanAndBothVerifiersRebuildTheSameRoster() throws {
        _ = try team()
        let path = dir.path + "/team"
        for v in verdicts(path) {
            #expect(v.status == 0 && v.report?["ok"] as? Bool == true && v.kinds.isEmpty, "\(v.verifier): \(v.output)")
        }
        let python = try #require(verdicts(path).last?.report)
        let listed = try run("team", as: "alice", ["member", "list", "--all", "--json"])
        let members = try #require(listed["members"] as? [[String: Any]])
        let roster = try #require(python["roster"] as? [[String: Any]])
        func rows(_ list: [[String: Any]]) -> [String] {
            list.map { m in
                let removed = (m["removed"] as? Int).map(String.init) ?? "-"
                return "\(m["id"] ?? "") \(m["name"] ?? "") \(m["role"] ?? "") \(m["added"] ?? "") \(removed)"
            }.sorted()
        }
        #expect(rows(roster) == rows(members))
        #expect(roster.count == 4)
        // The founder is entry 0; dave is the only one removed, by the last entry.
        let byName = Dictionary(uniqueKeysWithValues: roster.map { ($0["name"] as? String ?? "", $0) })
        #expect(byName["alice"]?["added"] as? Int == 0 && byName["alice"]?["role"] as? String == "admin")
        #expect(byName["dave"]?["removed"] as? Int == (python["entries"] as? Int).map { $0 - 1 })
        #expect(byName["carol"]?["removed"] is NSNull && byName["carol"]?["role"] as? String == "field-staff")
        #expect(python["threshold"] as? Int == 1 && python["version"] as? Int == 5)
        #expect(listed["threshold"] as? Int == 1 && listed["version"] as? Int == 5)
    }

    @Test(.enabled(if: CLI.pythonHasNaCl, "needs python3 with PyNaCl (Scripts/test.sh installs it)"))
    func forgedMemberEventsAreCaughtByBothVerifiersAsTheSameKind() throws {
        let (items, keys) = try team()
        let extract: [String: Any] = ["type": "extract", "item": items[0]]
        // Field staff may ingest, never extract: archive key and carol's own key, a valid signature of a wrong role.
        try expectCaught(
            "team",
            "field-staff-extract",
            signers: ["alice": keys["alice"] ?? "", "carol": keys["carol"] ?? ""],
            extract.merging(["by": "carol", "member_key": "carol"]) { $1 },
            as: "role-not-allowed"
        )
        // Dave was removed; his saved key still signs, but no longer as a member. A passphrase event is of a kind
        // every role allows, so only the removal can object.
        try expectCaught(
            "team",
            "removed-member",
            signers: ["alice": keys["alice"] ?? "", "dave": keys["dave"] ?? ""],
            ["type": "passphrase", "by": "dave", "member_key": "dave"],
            as: "member-removed"
        )
        // Bob is named, carol's key signs.
        try expectCaught(
            "team",
            "wrong-member-signature",
            signers: ["alice": keys["alice"] ?? "", "bob": keys["bob"] ?? "", "carol": keys["carol"] ?? ""],
            extract.merging(["by": "bob", "member_key": "carol"]) { $1 },
            as: "member-signature-invalid"
        )
        // After the founding, an event that names no member (and so carries the archive's signature alone).
        try expectCaught(
            "team",
            "no-member",
            signers: ["alice": keys["alice"] ?? ""],
            extract,
            as: "member-signature-missing"
        )
        // A member id the roster never had, signed by that stranger's own fresh key.
        try expectCaught(
            "team",
            "stranger",
            signers: ["alice": keys["alice"] ?? ""],
            extract.merging(["by": "stranger", "member_key": "stranger"]) { $1 },
            as: "member-unknown"
        )
        // An investigator enrolling someone, approved by themselves: managing members is for administrators.
        try expectCaught(
            "team",
            "investigator-adds",
            signers: ["alice": keys["alice"] ?? "", "bob": keys["bob"] ?? ""],
            [
                "type": "member-add", "by": "bob", "member_key": "bob", "approvals": ["bob"],
                "subject": ["new": "eve", "role": "investigator"],
            ],
            as: "role-not-allowed"
        )
        // An administrator's member-add whose approvals are over another roster version: a replayed approval.
        try expectCaught(
            "team",
            "stale-version",
            signers: ["alice": keys["alice"] ?? ""],
            [
                "type": "member-add", "by": "alice", "member_key": "alice", "approvals": ["alice"], "roster": 1,
                "subject": ["new": "eve", "role": "investigator"],
            ],
            as: "roster-change-invalid"
        )
    }

    @Test(.enabled(if: CLI.pythonHasNaCl, "needs python3 with PyNaCl (Scripts/test.sh installs it)"))
    func aRosterChangeWithTooFewApprovalsIsCaughtByBothVerifiers() throws {
        let created = CLI.run(
            ["init", "--name", "PAIR", "--kdf", "insecure-test", "--member", "alice", "--roster-threshold", "2"],
            environment: env("pair", as: "alice")
        )
        try #require(created.status == 0, "\(created.stderr)")
        // The founder adds the second administrator alone (there is one administrator to approve); from then on
        // every change needs both (LEDGER.md section 18.2, rule 2).
        try add("pair", "bob", role: "admin")
        _ = try ingest("pair", as: "alice", "a statement")
        for v in verdicts(dir.path + "/pair") {
            #expect(v.status == 0 && v.kinds.isEmpty, "\(v.verifier): \(v.output)")
        }
        let alice = dir.write("saved-pair-alice.json", Fixtures.read(try keyFile("pair", "alice")))
        // Threshold 2 with two administrators: alice's approval alone does not admit a third.
        try expectCaught(
            "pair",
            "one-approval",
            signers: ["alice": alice],
            [
                "type": "member-add", "by": "alice", "member_key": "alice", "approvals": ["alice"],
                "subject": ["new": "carol", "role": "admin"],
            ],
            as: "roster-change-invalid"
        )
        // With both approvals it is admitted by both verifiers.
        let bob = dir.write("saved-pair-bob.json", Fixtures.read(try keyFile("pair", "bob")))
        let both = try copy("pair", to: "two-approvals")
        _ = try forge(
            both,
            signers: ["alice": alice, "bob": bob],
            [
                "type": "member-add", "by": "alice", "member_key": "alice", "approvals": ["alice", "bob"],
                "subject": ["new": "carol", "role": "admin"],
            ]
        )
        for v in verdicts(both) {
            #expect(v.status == 0 && v.kinds.isEmpty, "\(v.verifier): \(v.output)")
        }
        // Once two administrators are there, the roster keeps two: demoting bob, even with both approvals, is refused.
        try expectCaught(
            "pair",
            "below-threshold",
            signers: ["alice": alice, "bob": bob],
            [
                "type": "member-role", "by": "alice", "member_key": "alice", "approvals": ["alice", "bob"],
                "subject": ["member": "bob", "role": "investigator"],
            ],
            as: "roster-change-invalid"
        )
    }

    @Test(.enabled(if: CLI.pythonHasNaCl, "needs python3 with PyNaCl (Scripts/test.sh installs it)"))
    func entriesNotOfTheSignedFormAreBadForBothVerifiers() throws {
        let (items, keys) = try team()
        let alice = ["alice": keys["alice"] ?? ""]
        let extract: [String: Any] = ["type": "extract", "item": items[0]]
        let byAlice = extract.merging(["by": "alice", "member_key": "alice"]) { $1 }
        // Each carries valid signatures; only the form of LEDGER.md section 4 is wrong.
        try expectCaught(
            "team",
            "member-line-without-by",
            signers: alice,
            extract.merging(["member_key": "alice"]) { $1 },
            as: "bad-entry"
        )
        try expectCaught(
            "team",
            "third-line",
            signers: alice,
            byAlice.merging(["third_line": true]) { $1 },
            as: "bad-entry"
        )
        try expectCaught(
            "team",
            "noncanonical",
            signers: alice,
            byAlice.merging(["noncanonical": true]) { $1 },
            as: "bad-entry"
        )
    }

    @Test(.enabled(if: CLI.pythonHasNaCl, "needs python3 with PyNaCl (Scripts/test.sh installs it)"))
    func anInvalidRosterChangeIsNotAppliedByEitherVerifier() throws {
        let (_, keys) = try team()
        let archive = try copy("team", to: "not-applied")
        let alice = ["alice": keys["alice"] ?? ""]
        // An unapproved member-add (version 5), then an approved one bound to version 5 again: the first is
        // reported and not applied, so the second is the roster's fifth change and admits its member.
        let refused = try forge(
            archive,
            signers: alice,
            [
                "type": "member-add", "by": "alice", "member_key": "alice", "approvals": [String](),
                "subject": ["new": "eve", "role": "investigator"],
            ]
        )
        let admitted = try forge(
            archive,
            signers: alice,
            [
                "type": "member-add", "by": "alice", "member_key": "alice", "approvals": ["alice"], "roster": 5,
                "subject": ["new": "fay", "role": "investigator"],
            ]
        )
        for v in verdicts(archive) {
            #expect(v.kinds == ["roster-change-invalid"], "\(v.verifier): \(v.output)")
            #expect(v.problems.first?["entry"] as? Int == refused, "\(v.verifier): \(v.output)")
        }
        let roster = try #require(verdicts(archive).last?.report?["roster"] as? [[String: Any]])
        let names = roster.compactMap { $0["name"] as? String }
        #expect(names.contains("fay") && !names.contains("eve"), "\(names)")
        #expect(roster.first { $0["name"] as? String == "fay" }?["added"] as? Int == admitted)
        let listed = try run("team", as: "alice", ["member", "list", "--all", "--json"])
        #expect(listed["version"] as? Int == 5)
        let custody = CLI.run(["member", "list", "--all", "--json"], environment: ["CUSTODY_ARCHIVE": archive])
        let members = (custody.json?["members"] as? [[String: Any]] ?? []).compactMap { $0["name"] as? String }
        #expect(Set(members) == Set(names), "\(custody.stdout)")
    }

    @Test(.enabled(if: CLI.pythonHasNaCl, "needs python3 with PyNaCl (Scripts/test.sh installs it)"))
    func aRecoveryIsCheckedAgainstTheLatestSplitByBothVerifiers() throws {
        _ = try team()
        let split = CLI.run(
            ["recovery", "split", "--threshold", "2", "--shares", "3"],
            environment: env("team", as: "alice")
        )
        try #require(split.status == 0, "\(split.stderr)")
        // The words of two shares: each share's line follows its "share g.m" heading.
        let lines = split.stdout.split(separator: "\n").map(String.init)
        let words = lines.indices.filter { lines[$0].hasPrefix("share ") && $0 + 1 < lines.count }.map { lines[$0 + 1] }
        try #require(words.count == 3, "\(split.stdout)")
        let sharesFile = dir.write("shares.txt", text: words.prefix(2).joined(separator: "\n") + "\n")
        try #require(chmod(sharesFile, 0o600) == 0)
        let restored = CLI.run(
            ["recovery", "restore", "--name", "rescuer", "--shares-file", sharesFile, "--kdf", "insecure-test"],
            environment: ["CUSTODY_ARCHIVE": dir.path + "/team", "CUSTODY_NEW_PASSPHRASE": Self.passphrase("rescuer")]
        )
        try #require(restored.status == 0, "\(restored.stderr)")
        for v in verdicts(dir.path + "/team") {
            #expect(v.status == 0 && v.kinds.isEmpty, "\(v.verifier): \(v.output)")
        }
        let roster = try #require(verdicts(dir.path + "/team").last?.report?["roster"] as? [[String: Any]])
        #expect(roster.contains { $0["name"] as? String == "rescuer" && $0["role"] as? String == "admin" })
        // A recovery signed by a key that is not the split's: anyone could otherwise enrol an administrator.
        let alice = try keyFile("team", "alice")
        try expectCaught(
            "team",
            "recovery-wrong-key",
            signers: ["alice": alice],
            [
                "type": "recovery", "by": "subject", "member_key": "subject", "recovery_sig": "stranger",
                "subject": ["new": "intruder", "role": "admin"],
            ],
            as: "roster-change-invalid"
        )
    }

    // MARK: - The forger

    /// Appends one forged, validly framed entry to an archive's journal (Docs/LEDGER.md sections 2 and 4), as someone
    /// holding members' key files and passphrases would: the archive's signing key is taken from a share (an
    /// administrator's opens it), each member's own key from their key file. The spec (JSON, argument 2):
    /// `archive`, `signers` (name → [key file, passphrase]) and `event`: the body's fields, plus `by` (a signer's
    /// name, or `stranger` for a fresh key pair no one enrolled), `member_key` (whose key makes the member
    /// signature line; absent: none), `approvals` (signers' names, over the roster statement), `roster` (default:
    /// how many roster events the log holds, valid or not), `subject` (`{"new": name, "role": role}`: fresh keys;
    /// `{"member": name, "role": role}`: that signer with another role; a fresh subject's key is the signer `subject`),
    /// `recovery_sig` (the signer whose key signs the statement as the recovery key), and the entry form's faults `noncanonical`
    /// (an unused bit of the archive signature's last digit set) and `third_line` (the signature repeated on a third
    /// line). Prints the forged entry's index.
    static let forger = #"""
        import base64, hashlib, json, os, sys, time
        sys.path.insert(0, sys.argv[1])
        import nacl.public, nacl.signing
        from decrypt_item import Archive, member_id

        spec = json.loads(sys.argv[2])
        root = spec["archive"]
        archive = Archive(root)
        keys, archive_key = {}, None
        for name, (path, passphrase) in spec["signers"].items():
            with open(path, "rb") as f:
                member, kind, secrets = archive.open_member_file(json.loads(f.read()), passphrase.encode())
            keys[name] = (member, archive.member_signing)
            if kind == b"\x01":
                archive_key = nacl.signing.SigningKey(secrets[32:64])

        def fresh(name, role):
            signing, box = nacl.signing.SigningKey.generate(), nacl.public.PrivateKey.generate()
            s, b = bytes(signing.verify_key), bytes(box.public_key)
            b64 = lambda k: base64.b64encode(k).decode()
            return {"box_key": b64(b), "id": member_id(s, b), "name": name, "role": role, "signing_key": b64(s)}, signing

        keys["stranger"] = fresh("stranger", "admin")
        events = list(archive.events())
        config = archive.config
        spec_event = dict(spec["event"])
        forger_keys = ("by", "member_key", "approvals", "subject", "noncanonical", "third_line")
        body = {k: v for k, v in spec_event.items() if k not in forger_keys}
        body.update(v=1, actor=config["origin"], time=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()))
        if "subject" in spec_event:
            wanted = spec_event["subject"]
            if "member" in wanted:
                subject = {k: keys[wanted["member"]][0][k] for k in ("box_key", "id", "name", "signing_key")}
                subject["role"] = wanted["role"]
            else:
                subject, own = fresh(wanted["new"], wanted["role"])
                keys["subject"] = (subject, own)
            body["subject"] = subject
            body.setdefault("roster", sum(1 for _, e in events if e["type"].startswith(("member-", "recovery"))))
            lines = ["custody/roster/v1", config["origin"], str(body["roster"]), body["type"], subject["id"],
                     subject["name"], subject["role"], subject["signing_key"], subject["box_key"],
                     str(body["threshold"]) if "threshold" in body else "-"]
            statement = "".join(line + "\n" for line in lines).encode()
            if "approvals" in spec_event:
                body["approvals"] = [
                    {"by": keys[n][0]["id"], "sig": base64.b64encode(keys[n][1].sign(statement).signature).decode()}
                    for n in spec_event["approvals"]
                ]
        if "by" in spec_event:
            body["by"] = keys[spec_event["by"]][0]["id"]
        if "recovery_sig" in spec_event:
            body["recovery_sig"] = base64.b64encode(keys[spec_event["recovery_sig"]][1].sign(statement).signature).decode()
        text = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()
        signature = base64.b64encode(archive_key.sign(b"custody/event/v1\n" + text).signature)
        if spec_event.get("noncanonical"):
            alphabet = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
            signature = signature[:85] + bytes([alphabet[alphabet.index(signature[85]) ^ 1]]) + signature[86:]
        entry = text + b"\n" + signature
        if "member_key" in spec_event:
            signer = keys[spec_event["member_key"]][1]
            entry += b"\n" + base64.b64encode(signer.sign(b"custody/member-event/v1\n" + text).signature)
        if spec_event.get("third_line"):
            entry += b"\n" + signature
        frame = b"CJ1\n" + len(entry).to_bytes(4, "big") + entry + hashlib.sha256(b"\x00" + entry).digest()
        with open(os.path.join(root, "journal", "entries"), "ab") as f:
            f.write(frame)
        print(len(events))
        """#
}
