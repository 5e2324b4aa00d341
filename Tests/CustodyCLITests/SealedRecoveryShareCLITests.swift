import CustodyArchive
import CustodyCrypto
import CustodyTestSupport
import Foundation
import Testing

/// `recovery split --seal-to`: each share sealed to one custodian's own key, opened only by them
/// (`recovery open-share`), and a threshold of opened shares restores an administrator.
@Suite(.serialized) struct SealedRecoveryShareCLITests: CLIArchiveSuite {
    let dir = TempDirectory("sealed-shares")
    static let passphrase = "the administrator's words"

    private func env(as member: String, archive: String = "a") -> [String: String] {
        var environment = env(archive)
        environment["CUSTODY_MEMBER"] = member
        environment["CUSTODY_PASSPHRASE"] = member == "admin" ? Self.passphrase : "\(member)'s own words"
        return environment.jsonErrors
    }

    /// Archive `a` with an administrator and three custodians of different roles.
    private func team() {
        #expect(initArchive("a").status == 0)
        for (name, role) in [("kim", "investigator"), ("rui", "records-officer"), ("fay", "field-staff")] {
            var adding = env(as: "admin")
            adding["CUSTODY_NEW_PASSPHRASE"] = "\(name)'s own words"
            let added = CLI.run(["member", "add", name, "--role", role, "--kdf", "insecure-test"], environment: adding)
            #expect(added.status == 0, "\(added.stderr)")
        }
    }

    private func split(_ names: [String], into folder: String = "shares") -> CLIResult {
        CLI.run(
            ["recovery", "split", "--threshold", "2", "--shares", "3", "-o", dir.path + "/" + folder, "--json"]
                + names.flatMap { ["--seal-to", $0] },
            environment: env(as: "admin")
        )
    }

    @Test func eachCustodianOpensOnlyTheirOwnShareAndTwoRestoreAnAdministrator() throws {
        team()
        let made = split(["kim", "rui", "fay"])
        #expect(made.status == 0, "\(made.stderr)")
        let files = try #require(
            (try JSONSerialization.jsonObject(with: Data(made.stdout.utf8)) as? [[String: Any]])?
                .compactMap { $0["file"] as? String }
        )
        #expect(files.count == 3)
        for file in files {
            var info = stat()
            #expect(stat(file, &info) == 0 && info.st_mode & 0o777 == 0o600, "\(file)")
        }
        var words: [String] = []
        for (file, name) in zip(files, ["kim", "rui", "fay"]) {
            let opened = CLI.run(["recovery", "open-share", file], environment: env(as: name))
            #expect(opened.status == 0, "\(name): \(opened.stderr)")
            let line = opened.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
            #expect(line.split(separator: " ").count >= 20)
            // The words are nowhere in plain: not in the file, not in what split printed.
            #expect(!made.stdout.contains(line))
            #expect(!String(decoding: Fixtures.read(file), as: UTF8.self).contains(line))
            words.append(line)
            // Another custodian, or the administrator, cannot open it.
            let other = name == "kim" ? "rui" : "kim"
            let refused = CLI.run(["recovery", "open-share", file], environment: env(as: other))
            #expect(refused.status == 77)
            #expect(CLI.run(["recovery", "open-share", file], environment: env(as: "admin")).status == 77)
        }
        let sharesFile = dir.write("typed.txt", text: words[0] + "\n" + words[2] + "\n")
        #expect(chmod(sharesFile, 0o600) == 0)
        var restoring = env("a")
        restoring["CUSTODY_NEW_PASSPHRASE"] = "rescuer's own words"
        let restored = CLI.run(
            ["recovery", "restore", "--name", "rescuer", "--shares-file", sharesFile, "--kdf", "insecure-test"],
            environment: restoring
        )
        #expect(restored.status == 0, "\(restored.stderr)")
        #expect(CLI.run(["verify"], environment: env(as: "admin")).status == 0)
    }

    @Test func badSealingArgumentsAndAlteredFilesAreRefusedWithNothingChanged() throws {
        team()
        let journal = Fixtures.read(dir.path + "/a/journal/entries")
        for (names, reason) in [
            (["kim", "rui"], "usage"), (["kim", "kim", "rui"], "usage"), (["kim", "rui", "nobody"], "member-unknown"),
        ] {
            let refused = split(names, into: "bad")
            #expect(refused.status != 0, "\(names)")
            #expect(refused.errorReason == reason, "\(names): \(refused.stderr)")
            #expect(!FileManager.default.fileExists(atPath: dir.path + "/bad/recovery-share-1-x.json"))
        }
        #expect(Fixtures.read(dir.path + "/a/journal/entries") == journal)
        #expect(!FileManager.default.fileExists(atPath: dir.path + "/a/recovery.json"))

        let made = split(["kim", "rui", "fay"])
        #expect(made.status == 0, "\(made.stderr)")
        let file = try #require(
            (try JSONSerialization.jsonObject(with: Data(made.stdout.utf8)) as? [[String: Any]])?.first?["file"]
                as? String
        )
        var sealed = try #require(try JSONSerialization.jsonObject(with: Data(Fixtures.read(file))) as? [String: Any])
        var bytes = try #require(Encoding.bytes(base64: sealed["sealed"] as? String ?? ""))
        bytes[bytes.count / 2] ^= 0x01
        sealed["sealed"] = Encoding.base64(bytes)
        let altered = dir.write("altered.json", Array(try JSONSerialization.data(withJSONObject: sealed)))
        #expect(CLI.run(["recovery", "open-share", altered], environment: env(as: "kim")).status == 77)
        let junk = dir.write("junk.json", text: "{\"format\": \"something else\"}")
        let notAShare = CLI.run(["recovery", "open-share", junk], environment: env(as: "kim"))
        #expect(notAShare.status == 65)
        let big = dir.write("big.json", Array(repeating: 0x20, count: 1 << 20))
        #expect(CLI.run(["recovery", "open-share", big], environment: env(as: "kim")).status == 65)
    }
}
