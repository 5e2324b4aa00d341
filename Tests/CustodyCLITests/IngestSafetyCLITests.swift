import CustodyCrypto
import CustodyTestSupport
import Foundation
import Testing

/// Ingest as investigators work (issue 14), through the built binary: the archive is never ingested, litter is
/// left out, a dry run writes nothing, an interrupted ingest resumes without duplicates, collector manifests are
/// all-or-nothing and recorded, and names that are not UTF-8 survive the round trip.
@Suite struct IngestSafetyCLITests: CLIArchiveSuite {
    let dir = TempDirectory("ingest-safety-cli")
    static let passphrase = "ingest safety words"

    private var root: String { dir.path + "/a" }
    private var env: [String: String] { env("a").jsonErrors }

    /// Every file under the archive with the SHA-256 of its bytes.
    private func archiveBytes() -> [String: String] {
        var all: [String: String] = [:]
        for file in Fixtures.allFiles(under: root) { all[file] = Encoding.hex(SHA256Hasher.hash(Fixtures.read(file))) }
        return all
    }

    /// The files that differ between two ``archiveBytes()`` (added, removed or changed).
    private func changed(_ before: [String: String], _ after: [String: String]) -> [String] {
        Set(before.keys).union(after.keys).filter { before[$0] != after[$0] }.sorted()
    }

    /// Calls `body` with the raw path `bytes` as a C string.
    private static func withCPath<R>(_ bytes: [UInt8], _ body: (UnsafePointer<CChar>) -> R) -> R {
        (bytes + [0]).withUnsafeBufferPointer { buffer in
            buffer.withMemoryRebound(to: CChar.self) { c in
                guard let base = c.baseAddress else { return body("") }
                return body(base)
            }
        }
    }

    private func items() -> [[String: Any]] {
        CLI.run(["ls", "--json"], environment: env).json?["items"] as? [[String: Any]] ?? []
    }

    @Test func theArchiveItsParentItsObjectsAndLinksToThemAreRefused() throws {
        #expect(initArchive("a").status == 0)
        dir.write("up/a.txt", text: "a")
        try FileManager.default.createSymbolicLink(atPath: dir.path + "/up/../alias", withDestinationPath: root)
        let before = archiveBytes()
        for path in [root, dir.path, root + "/objects", root + "/index.sqlite", dir.path + "/alias", root + "/../a"] {
            let result = CLI.run(["ingest", path], environment: env)
            #expect(result.status == 64, "\(path): \(result.stderr)")
            #expect(result.errorReason == "ingests-archive", "\(path)")
            #expect(result.stderr.split(separator: "\n").count == 1, "\(result.stderr)")
            #expect(result.stdout.isEmpty)
        }
        // The index is opened (and SQLite touches its header) by any command; nothing else changed.
        #expect(changed(before, archiveBytes()).filter { !$0.hasSuffix("/index.sqlite") } == [])
        #expect(items().isEmpty)
    }

    @Test func litterIsExcludedByDefaultCountedAndListedInHelp() throws {
        #expect(initArchive("a").status == 0)
        let help = CLI.run(["ingest", "--help"])
        for pattern in [".DS_Store", "._*", ".Trashes/", "Thumbs.db", "desktop.ini", "--no-default-excludes"] {
            #expect(help.stdout.contains(pattern), "--help lacks \(pattern)")
        }
        dir.write("usb/IMG_0001.JPG", text: "photo")
        dir.write("usb/.DS_Store", text: "finder")
        dir.write("usb/._IMG_0001.JPG", text: "appledouble")
        dir.write("usb/.Trashes/501/gone.jpg", text: "gone")
        dir.write("usb/notes.tmp", text: "scratch")
        let result = CLI.run(["ingest", dir.path + "/usb", "--exclude", "*.tmp", "--json"], environment: env)
        #expect(result.status == 0, "\(result.stderr)")
        #expect((result.json?["items"] as? [Any])?.count == 1)
        #expect(result.json?["excluded_count"] as? Int == 4)
        let text = CLI.run(["ingest", dir.path + "/usb", "--no-default-excludes"], environment: env)
        #expect(text.status == 0, "\(text.stderr)")
        #expect(text.stdout.contains("4 item(s) ingested, 1 already in the archive, skipped"), "\(text.stdout)")
        let bad = CLI.run(["ingest", dir.path + "/usb", "--exclude", ""], environment: env)
        #expect(bad.status == 64)
    }

    @Test func aDryRunLeavesEveryByteOfTheArchiveAsItWas() throws {
        #expect(initArchive("a").status == 0)
        dir.write("up/a.txt", text: "alpha")
        #expect(CLI.run(["ingest", dir.path + "/up"], environment: env).status == 0)
        dir.write("up/b.txt", text: "beta")
        dir.write("up/copy.txt", text: "alpha")
        let before = archiveBytes()
        let result = CLI.run(["ingest", dir.path + "/up", "--dry-run", "--json"], environment: env)
        #expect(result.status == 0, "\(result.stderr)")
        #expect(result.json?["dry_run"] as? Bool == true)
        let planned = try #require(result.json?["would_add"] as? [[String: Any]])
        #expect(planned.compactMap { $0["path"] as? String } == ["up/b.txt", "up/copy.txt"])
        #expect(planned[1]["duplicate_of"] as? String != nil)
        #expect((result.json?["already_held"] as? [Any])?.count == 1)
        #expect(changed(before, archiveBytes()) == [])
        #expect(before.keys.contains(root + "/index.sqlite"))
        let text = CLI.run(["ingest", dir.path + "/up", "--dry-run"], environment: env)
        #expect(text.stdout.contains("nothing was written"))
        #expect(changed(before, archiveBytes()) == [])
    }

    @Test func anIngestKilledAfterItsItemsCommittedResumesWithoutDuplicates() throws {
        #expect(initArchive("a").status == 0)
        for n in 0..<20 { dir.write("up/f\(n).txt", text: "file \(n)") }
        var crashing = env
        crashing["CUSTODY_TEST_CRASH_AT"] = "journal-appended"  // killed right after the journal append
        let killed = CLI.run(["ingest", dir.path + "/up", "--case", "C-1"], environment: crashing)
        #expect(killed.signal == SIGKILL)
        dir.write("up/late.txt", text: "found later")
        let again = CLI.run(["ingest", dir.path + "/up", "--case", "C-1"], environment: env)
        #expect(again.status == 0, "\(again.stderr)")
        #expect(again.stdout.contains("1 item(s) ingested, 20 already in the archive, skipped"), "\(again.stdout)")
        #expect(items().count == 21)
        let dup = CLI.run(["ingest", dir.path + "/up", "--case", "C-1", "--allow-duplicates"], environment: env)
        #expect(dup.stdout.contains("21 item(s) ingested"))
    }

    @Test func fieldStaffLearnNothingOfWhatIsHeldFromADryRunOrAReRun() throws {
        #expect(initArchive("a").status == 0)
        var adding = env
        adding["CUSTODY_NEW_PASSPHRASE"] = "fay's own words"
        let added = CLI.run(
            ["member", "add", "fay", "--role", "field-staff", "--kdf", "insecure-test"],
            environment: adding
        )
        #expect(added.status == 0, "\(added.stderr)")
        dir.write("up/held.txt", text: "already held")
        var admin = env
        admin["CUSTODY_MEMBER"] = "admin"
        let held = CLI.run(["ingest", dir.path + "/up"], environment: admin)
        #expect(held.status == 0, "\(held.stderr)")
        var fay = env
        fay["CUSTODY_MEMBER"] = "fay"
        fay["CUSTODY_PASSPHRASE"] = "fay's own words"
        let dry = CLI.run(["ingest", dir.path + "/up", "--dry-run", "--json"], environment: fay)
        #expect(dry.status == 0, "\(dry.stderr)")
        let planned = try #require(dry.json?["would_add"] as? [[String: Any]])
        #expect(planned.count == 1)
        #expect(planned.first?["duplicate_of"] is NSNull)
        #expect((dry.json?["already_held"] as? [Any])?.isEmpty == true)
        let again = CLI.run(["ingest", dir.path + "/up", "--json"], environment: fay)
        #expect(again.status == 0, "\(again.stderr)")
        #expect((again.json?["items"] as? [Any])?.count == 1)
        #expect((again.json?["already_held"] as? [Any])?.isEmpty == true)
    }

    @Test func aCollectorsManifestResolvesFromItsFolderAndIsAllOrNothing() throws {
        #expect(initArchive("a").status == 0)
        dir.write("up/a.txt", text: "alpha")
        dir.write("up/sub/b.txt", text: "beta")
        func hex(_ text: String) -> String { Encoding.hex(SHA256Hasher.hash(Array(text.utf8))) }
        let list = dir.write("up/SHA256SUMS", text: "\(hex("alpha"))  ./a.txt\n\(hex("beta")) *sub/b.txt\n")
        // Run from another folder: names resolve against the list's folder, not the working directory.
        let result = CLI.run(["ingest", dir.path + "/up", "--expect-from", list, "--json"], environment: env)
        #expect(result.status == 0, "\(result.stderr)")
        #expect((result.json?["items"] as? [Any])?.count == 2)
        #expect(result.stderr.contains("was not ingested"))  // the list itself: left out, and said so
        let id = try #require((result.json?["items"] as? [[String: Any]])?.first?["id"] as? String)
        let show = CLI.run(["show", id, "--json"], environment: env)
        #expect(show.json?["matched_manifest"] as? String == Encoding.hex(SHA256Hasher.hash(Fixtures.read(list))))
        #expect(CLI.run(["show", id], environment: env).stdout.contains("matched the --expect-from list"))

        dir.write("up/sub/b.txt", text: "tampered")
        dir.write("up/c.txt", text: "gamma")
        let list2 = dir.write(
            "up/SHA256SUMS",
            text: "\(hex("alpha"))  a.txt\n\(hex("beta"))  sub/b.txt\n\(hex("gamma"))  c.txt\n"
        )
        let refused = CLI.run(
            ["ingest", dir.path + "/up", "--expect-from", list2, "--allow-duplicates"],
            environment: env
        )
        #expect(refused.status == 65)
        #expect(refused.stderr.contains("refused \(dir.path)/up/sub/b.txt"))
        #expect(refused.error?.problem.contains("nothing was ingested") == true, "\(refused.stderr)")
        #expect(items().count == 2)

        let malformed = dir.write("bad-sums", text: "\(hex("alpha"))  a.txt\nnot a line\n")
        let bad = CLI.run(["ingest", dir.path + "/up", "--expect-from", malformed], environment: env)
        #expect(bad.status == 65)
        #expect(bad.error?.problem.contains("line 2") == true)
    }

    @Test func aLatin1NameRoundTripsAndSkipProblemsFailsWhenNothingWasTaken() throws {
        #expect(initArchive("a").status == 0)
        try FileManager.default.createDirectory(atPath: dir.path + "/up", withIntermediateDirectories: true)
        let name: [UInt8] = Array("caf".utf8) + [0xE9] + Array(".txt".utf8)
        let fd = Self.withCPath(Array(dir.path.utf8) + Array("/up/".utf8) + name) {
            open($0, O_CREAT | O_WRONLY, 0o600)
        }
        _ = write(fd, "latin-1", 7)
        close(fd)
        let ingest = CLI.run(["ingest", dir.path + "/up"], environment: env)
        #expect(ingest.status == 0, "\(ingest.stderr)")
        #expect(ingest.stdout.contains("caf\\xE9.txt"), "\(ingest.stdout)")
        let id = try #require(items().first?["id"] as? String)
        #expect(CLI.run(["show", id], environment: env).stdout.contains("up/caf\\xE9.txt"))
        try FileManager.default.createDirectory(atPath: dir.path + "/out", withIntermediateDirectories: true)
        let extract = CLI.run(["extract", id, "-o", dir.path + "/out"], environment: env)
        #expect(extract.status == 0, "\(extract.stderr)")
        var st = stat()
        #expect(Self.withCPath(Array(dir.path.utf8) + Array("/out/".utf8) + name) { stat($0, &st) } == 0)
        #expect(st.st_size == 7)

        dir.write("links/real.txt", text: "r")
        try FileManager.default.removeItem(atPath: dir.path + "/links/real.txt")
        try FileManager.default.createSymbolicLink(atPath: dir.path + "/links/l1", withDestinationPath: "/etc/passwd")
        let nothing = CLI.run(["ingest", dir.path + "/links", "--skip-problems"], environment: env)
        #expect(nothing.status == 65)
        #expect(nothing.errorReason == "nothing-ingested")
        #expect(nothing.stderr.contains("skipped \(dir.path)/links/l1"))

        // A name holding a newline and an escape character is recorded, and printed escaped.
        dir.write("odd/line\nbreak\u{1B}[31m.txt", text: "odd")
        let odd = CLI.run(["ingest", dir.path + "/odd"], environment: env)
        #expect(odd.status == 0, "\(odd.stderr)")
        #expect(!odd.stdout.contains("\u{1B}"))
        #expect(odd.stdout.contains("line\\u{A}break\\u{1B}[31m.txt"), "\(odd.stdout)")
    }
}
