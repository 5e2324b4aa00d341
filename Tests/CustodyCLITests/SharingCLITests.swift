import CustodyTestSupport
import Foundation
import Testing

/// Issue 4's scenario end to end with the built binary, and the independent bundle verifier and decryptor
/// (Docs/examples/verify_bundle.py, written from Docs/SHARING.md) agreeing with it.
@Suite struct SharingCLITests: CLIArchiveSuite {
    let dir = TempDirectory("sharing-cli")
    static let passphrase = "sharing cli"

    /// OHCHR with four items (two in scope), IACHR; returns the bundle path and the in-scope ids.
    private func scenario() throws -> (bundle: String, inScope: [String], grant: String) {
        for name in ["ohchr", "iachr"] {
            let created = initArchive(name)
            #expect(created.status == 0, "\(created.stderr)")
        }
        #expect(
            CLI.run(["id", "export", "-o", dir.path + "/iachr.identity.json"], environment: env("iachr")).status == 0
        )
        #expect(
            CLI.run(["id", "export", "-o", dir.path + "/ohchr.identity.json"], environment: env("ohchr")).status == 0
        )
        dir.write("case/video.mp4", [0, 0, 0, 0x18] + Array("ftypmp42".utf8) + (0..<300_000).map { UInt8($0 % 253) })
        dir.write("case/statement.txt", text: "Witness W-17 statement")
        let ingest = CLI.run(
            ["ingest", dir.path + "/case", "--case", "COI-2026-04", "--tag", "detention", "--json"],
            environment: env("ohchr")
        )
        #expect(ingest.status == 0, "\(ingest.stderr)")
        let inScope = (ingest.json?["items"] as? [[String: Any]] ?? []).compactMap { $0["id"] as? String }
        dir.write("other/private.txt", text: "another case")
        #expect(CLI.run(["ingest", dir.path + "/other", "--case", "OTHER"], environment: env("ohchr")).status == 0)
        dir.write("noshare/source.txt", text: "a source who did not consent")
        #expect(
            CLI.run(
                [
                    "ingest", dir.path + "/noshare", "--case", "COI-2026-04", "--tag", "detention", "--consent",
                    "no-share",
                ],
                environment: env("ohchr")
            ).status == 0
        )
        let arguments = [
            "grant", "create", "--to", dir.path + "/iachr.identity.json", "--case", "COI-2026-04", "--tag", "detention",
            "--expires", "90d", "--purpose", "Petition P-1234/26",
        ]
        let dry = CLI.run(arguments + ["--dry-run", "--json"], environment: env("ohchr"))
        #expect(dry.status == 0 && dry.json?["id"] is NSNull && dry.stderr.contains("fingerprint"))
        #expect(
            (CLI.run(["grant", "list", "--json"], environment: env("ohchr")).json?["grants"] as? [Any])?.isEmpty == true
        )
        let created = CLI.run(arguments + ["--json"], environment: env("ohchr"))
        #expect(created.status == 0, "\(created.stderr)")
        let json = try #require(created.json)
        let grant = try #require(json["id"] as? String)
        #expect(Set(json["items"] as? [String] ?? []) == Set(inScope))
        let excluded = try #require(json["excluded"] as? [[String: Any]])
        #expect(excluded.count == 1 && (excluded[0]["reason"] as? String)?.contains("no-share") == true)
        let bundle = dir.path + "/p1234.custody-bundle"
        let export = CLI.run(["bundle", "export", grant, "-o", bundle], environment: env("ohchr"))
        #expect(export.status == 0, "\(export.stderr)")
        return (bundle, inScope, grant)
    }

    @Test func theScenarioWorksEndToEnd() throws {
        let (bundle, inScope, grant) = try scenario()
        let list = try #require(
            CLI.run(["grant", "list", "--json"], environment: env("ohchr")).json?["grants"] as? [[String: Any]]
        )
        #expect(list.count == 1 && list[0]["id"] as? String == grant && list[0]["items"] as? Int == 2)
        #expect(list[0]["grantee"] as? String == "IACHR" && list[0]["revoked"] as? Bool == false)
        #expect(CLI.run(["grant", "show", grant], environment: env("ohchr")).stdout.contains("Petition P-1234/26"))

        // An auditor with no keys and no archive.
        let verify = CLI.run(["bundle", "verify", bundle, "--json"], environment: [:])
        #expect(verify.status == 0, "\(verify.stdout)")
        let report = try #require(verify.json)
        for key in [
            "ok", "integrity_ok", "valid_now", "granter_trusted", "grant", "granter", "grantee", "items", "objects",
            "problems",
        ] {
            #expect(report.keys.contains(key), "bundle verify --json lacks \(key)")
        }
        #expect(
            report["ok"] as? Bool == true && report["granter_trusted"] as? Bool == false && report["items"] as? Int == 2
        )
        #expect(CLI.run(["bundle", "verify", bundle], environment: [:]).stdout.contains("NOT CHECKED"))
        let trusted = CLI.run(["bundle", "verify", bundle, "--granter", dir.path + "/ohchr.identity.json", "--json"])
        #expect(trusted.json?["granter_trusted"] as? Bool == true)
        let court = CLI.run(["bundle", "verify", bundle, "--at", "2031-01-01T00:00:00Z", "--json"])
        #expect(
            court.status == 1 && court.json?["valid_now"] as? Bool == false
                && court.json?["integrity_ok"] as? Bool == true
        )
        #expect(CLI.run(["bundle", "verify", dir.path + "/missing.bundle"]).status == 66)
        #expect(CLI.run(["bundle", "verify", dir.write("x.txt", text: "hello")]).status == 65)

        // The grantee imports it.
        let refused = CLI.run(["bundle", "import", bundle], environment: env("iachr").jsonErrors)
        #expect(refused.status == 77 && refused.errorReason == "granter-unknown")
        #expect(refused.error?.fix.contains("--trust-granter") == true)  // the fix names the option
        let imported = CLI.run(["bundle", "import", bundle, "--trust-granter", "--json"], environment: env("iachr"))
        #expect(imported.status == 0, "\(imported.stderr)")
        #expect(Set(imported.json?["imported"] as? [String] ?? []) == Set(inScope))
        let again = CLI.run(["bundle", "import", bundle, "--json"], environment: env("iachr"))
        #expect(again.status == 0 && (again.json?["imported"] as? [String])?.isEmpty == true)
        let ls = try #require(
            CLI.run(["ls", "--case", "COI-2026-04", "--json"], environment: env("iachr")).json?["items"]
                as? [[String: Any]]
        )
        #expect(Set(ls.compactMap { $0["id"] as? String }) == Set(inScope))
        let video = try #require(ls.first { $0["name"] as? String == "video.mp4" }?["id"] as? String)
        let out = dir.path + "/evidence.mp4"
        #expect(CLI.run(["extract", video, "-o", out], environment: env("iachr")).status == 0)
        #expect(Fixtures.read(out) == Fixtures.read(dir.path + "/case/video.mp4"))
        let show = CLI.run(["show", video], environment: env("iachr")).stdout
        #expect(
            show.contains("received from OHCHR") && show.contains("Petition P-1234/26") && show.contains("import  by")
        )
        #expect(CLI.run(["verify", "--deep"], environment: env("iachr")).status == 0)
        let received = try #require(
            CLI.run(["grant", "list", "--json"], environment: env("iachr")).json?["grants"] as? [[String: Any]]
        )
        #expect(received.first?["direction"] as? String == "in" && received.first?["grantee"] as? String == "IACHR")
        let held = try #require(
            CLI.run(["grant", "list", "--item", video, "--json"], environment: env("ohchr")).json?["grants"]
                as? [[String: Any]]
        )
        #expect(held.map { $0["id"] as? String } == [grant])

        // Revoked: no further export.
        #expect(CLI.run(["grant", "revoke", grant, "--reason", "withdrawn"], environment: env("ohchr")).status == 0)
        #expect(
            CLI.run(["bundle", "export", grant, "-o", dir.path + "/again.bundle"], environment: env("ohchr")).status
                == 77
        )
    }

    @Test func aKilledImportLeavesNoItemAndCanBeRepeated() throws {
        let (bundle, inScope, _) = try scenario()
        for point in ["import-objects-stored", "journal-appended"] {
            var crashing = env("iachr")
            crashing["CUSTODY_TEST_CRASH_AT"] = point
            let killed = CLI.run(["bundle", "import", bundle, "--trust-granter"], environment: crashing)
            #expect(killed.signal == SIGKILL, "\(point): not killed (\(killed.status))")
            let ls = CLI.run(["ls", "--json"], environment: env("iachr")).json?["items"] as? [[String: Any]] ?? []
            // Before the events: nothing visible. After them: everything (the index catches up).
            #expect(ls.count == (point == "journal-appended" ? inScope.count : 0), "\(point): \(ls.count) items")
            #expect(CLI.run(["verify"], environment: env("iachr")).status == 0)
        }
        let again = CLI.run(["bundle", "import", bundle, "--json"], environment: env("iachr"))
        #expect(again.status == 0 && (again.json?["imported"] as? [String])?.isEmpty == true)
        #expect(CLI.run(["verify", "--deep"], environment: env("iachr")).status == 0)
        #expect(CLI.run(["gc"], environment: env("iachr")).status == 0)
    }

    @Test func submitSendsEvidenceNamedOrAnonymously() throws {
        _ = try scenario()
        dir.write("ngo/report.txt", text: "NGO field report")
        let named = CLI.run(
            [
                "submit", dir.path + "/ngo", "--to", dir.path + "/iachr.identity.json", "--case", "NGO-1", "-o",
                dir.path + "/n.bundle", "--json",
            ],
            environment: env("ohchr")
        )
        #expect(named.status == 0, "\(named.stderr)")
        let anonymous = CLI.run(
            [
                "submit", dir.path + "/ngo/report.txt", "--anonymous", "--to", dir.path + "/iachr.identity.json", "-o",
                dir.path + "/a.bundle",
            ],
            environment: ["CUSTODY_PASSPHRASE": "unused"]
        )
        #expect(anonymous.status == 0, "\(anonymous.stderr)")
        #expect(CLI.run(["bundle", "import", dir.path + "/a.bundle"], environment: env("iachr")).status == 0)
        #expect(
            CLI.run(["bundle", "import", dir.path + "/n.bundle", "--trust-granter"], environment: env("iachr")).status
                == 0
        )
        let shown = CLI.run(["ls", "--json"], environment: env("iachr")).json?["items"] as? [[String: Any]] ?? []
        #expect(shown.count == 2)
        #expect(
            CLI.run(
                ["submit", dir.path + "/ngo", "--to", dir.path + "/missing.id", "-o", dir.path + "/x.bundle"],
                environment: env("ohchr")
            ).status == 66
        )
    }

    @Test(.enabled(if: CLI.pythonHasNaCl, "needs python3 with PyNaCl (Scripts/test.sh installs it)"))
    func anIndependentVerifierAndDecryptorAgree() throws {
        let (bundle, inScope, _) = try scenario()
        let script = CLI.packageRoot + "/Docs/examples/verify_bundle.py"
        let python = "/usr/bin/env"
        let verify = CLI.run(
            executable: python,
            ["python3", script, "verify", bundle, "--granter", dir.path + "/ohchr.identity.json"]
        )
        #expect(verify.status == 0, "\(verify.stdout) \(verify.stderr)")
        let out = dir.path + "/decrypted"
        let decrypt = CLI.run(
            executable: python,
            ["python3", script, "decrypt", bundle, "--archive", dir.path + "/iachr", "-o", out],
            environment: env("iachr")
        )
        #expect(decrypt.status == 0, "\(decrypt.stdout) \(decrypt.stderr)")
        let video = Fixtures.read(dir.path + "/case/video.mp4")
        #expect(inScope.contains { Fixtures.read(out + "/" + $0) == video })
        // A flipped byte fails both checkers.
        var bytes = Fixtures.read(bundle)
        bytes[bytes.count / 2] ^= 0x01
        let bad = dir.write("bad.bundle", bytes)
        #expect(CLI.run(executable: python, ["python3", script, "verify", bad]).status == 1)
        #expect(CLI.run(["bundle", "verify", bad]).status == 1)
    }
}
