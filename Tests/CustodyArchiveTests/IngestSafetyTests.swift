import CustodyCrypto
import CustodyStorage
import CustodyTestSupport
import Foundation
import Testing

@testable import CustodyArchive

/// Every file under `root` with its bytes, so a test can tell that nothing at all changed.
func snapshot(_ root: String) -> [String: [UInt8]] {
    var all: [String: [UInt8]] = [:]
    for file in Fixtures.allFiles(under: root) { all[file] = Fixtures.read(file) }
    return all
}

/// Creates `name` (raw bytes, which need not be UTF-8) in `folder` holding `content`.
func writeRaw(_ folder: String, _ name: [UInt8], _ content: [UInt8]) {
    let fd = FileScanner.withCString(Array(folder.utf8) + [0x2F] + name) {
        open($0, O_CREAT | O_WRONLY | O_TRUNC, 0o600)
    }
    _ = content.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
    close(fd)
}

@Suite struct ArchiveGuardTests {
    let dir = TempDirectory("guard")

    private func expectRefused(_ archive: Archive.Unlocked, _ path: String) async throws {
        let error = await #expect(throws: ArchiveError.self, "\(path)") {
            try await archive.ingest([path], options: IngestOptions())
        }
        #expect(error?.reason == .ingestsArchive, "\(path): \(String(describing: error))")
        #expect(error?.code == .usage)
        #expect(error?.problem.contains("nothing was ingested") == true)
        #expect(try await archive.index().itemCount() == 0)
    }

    @Test func theArchiveItsPartsAndWhatHoldsItAreRefused() async throws {
        let archive = try await Fixtures.archive(in: dir)
        let root = dir.path + "/archive"
        let before = snapshot(root)
        try FileManager.default.createSymbolicLink(atPath: dir.path + "/link-to-archive", withDestinationPath: root)
        try FileManager.default.createSymbolicLink(atPath: dir.path + "/link-to-parent", withDestinationPath: dir.path)
        dir.write("up/a.txt", text: "a")
        for path in [
            root, root + "/", dir.path, dir.path + "/", "/", root + "/objects", root + "/journal",
            root + "/index.sqlite",
            root + "/archive.json", dir.path + "/link-to-archive", dir.path + "/link-to-archive/objects",
            dir.path + "/link-to-parent", dir.path + "/up/../archive", dir.path + "/up/..",
        ] {
            try await expectRefused(archive, path)
        }
        // Refused with other, harmless paths too: nothing of the run is ingested.
        let error = await #expect(throws: ArchiveError.self) {
            try await archive.ingest([dir.path + "/up", root], options: IngestOptions())
        }
        #expect(error?.reason == .ingestsArchive)
        #expect(snapshot(root) == before)
    }

    @Test func aHardLinkToAnArchiveFileIsRefused() async throws {
        let archive = try await Fixtures.archive(in: dir)
        dir.write("up/a.txt", text: "a")
        #expect(link(dir.path + "/archive/archive.json", dir.path + "/up/innocent.txt") == 0)
        try await expectRefused(archive, dir.path + "/up")
        try await expectRefused(archive, dir.path + "/up/innocent.txt")
    }

    @Test func anArchiveNestedDeepInTheFolderRefusesTheWholeRun() async throws {
        let nested = TempDirectory("guard-nested")
        let deep = nested.path + "/evidence/a/b/c/d/e"
        try FileManager.default.createDirectory(atPath: deep, withIntermediateDirectories: true)
        let archive = try await Archive.create(
            at: deep + "/archive",
            name: "Nested",
            passphrase: Fixtures.secret(),
            kdfPreset: "insecure-test",
            chunkSize: 1 << 20
        )
        nested.write("evidence/first.txt", text: "would be read first")
        let before = snapshot(deep + "/archive")
        try await expectRefused(archive, nested.path + "/evidence")
        try await expectRefused(archive, nested.path + "/evidence/a/b")
        #expect(snapshot(deep + "/archive") == before)
        // A sibling folder is fine.
        let report = try await archive.ingest([deep + "/../../../../../first.txt"], options: IngestOptions())
        #expect(report.items.count == 1)
    }

    /// Runs `/bin/mount` or `/bin/umount` with `arguments`; whether it succeeded.
    private static func run(_ tool: String, _ arguments: [String]) -> Bool {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: tool)
        process.arguments = arguments
        process.standardError = FileHandle.nullDevice
        guard (try? process.run()) != nil else { return false }
        process.waitUntilExit()
        return process.terminationStatus == 0
    }

    @Test(.enabled(if: getuid() == 0, "bind mounts need root"))
    func aSecondMountOfTheArchiveInsideTheFolderIsRecognised() async throws {
        let archive = try await Fixtures.archive(in: dir)
        dir.write("evidence/a.txt", text: "a")
        let mountPoint = dir.path + "/evidence/usb"
        try FileManager.default.createDirectory(atPath: mountPoint, withIntermediateDirectories: true)
        guard Self.run("/bin/mount", ["--bind", dir.path + "/archive", mountPoint]) else { return }
        defer { _ = Self.run("/bin/umount", [mountPoint]) }
        // The archive's real path is not below evidence/: only its device and inode give it away.
        try await expectRefused(archive, dir.path + "/evidence")
        try await expectRefused(archive, mountPoint + "/objects")
    }

    @Test func aSymbolicLinkInsideTheFolderToTheArchiveIsNotFollowed() async throws {
        let archive = try await Fixtures.archive(in: dir)
        dir.write("up/a.txt", text: "a")
        try FileManager.default.createSymbolicLink(atPath: dir.path + "/up/loop", withDestinationPath: dir.path)
        try FileManager.default.createSymbolicLink(
            atPath: dir.path + "/up/keys",
            withDestinationPath: dir.path + "/archive/archive.json"
        )
        var options = IngestOptions()
        options.skipProblems = true
        let report = try await archive.ingest([dir.path + "/up"], options: options)
        #expect(report.items.map(\.path) == [dir.path + "/up/a.txt"])
        #expect(report.skipped.map(\.kind) == [.symbolicLink, .symbolicLink])
    }
}

@Suite struct IngestExclusionTests {
    let dir = TempDirectory("exclude")

    @Test func defaultsMatchOSLitterIgnoringCaseAndFoldersOnlyWhereMarked() throws {
        let defaults = IngestExclusions.defaults
        func excluded(_ name: String, _ relative: String? = nil, folder: Bool = false) -> String? {
            defaults.excluding(name: Array(name.utf8), relative: Array((relative ?? name).utf8), isFolder: folder)?.text
        }
        #expect(excluded(".DS_Store") == ".DS_Store")
        #expect(excluded("._IMG_0001.JPG", "sub/._IMG_0001.JPG") == "._*")
        #expect(excluded("THUMBS.DB") == "Thumbs.db")
        #expect(excluded("Desktop.ini") == "desktop.ini")
        #expect(excluded(".Trashes", folder: true) == ".Trashes/")
        #expect(excluded(".Trashes") == nil)  // a file of that name is evidence: only the folder is litter
        #expect(excluded("$RECYCLE.BIN", folder: true) == "$RECYCLE.BIN/")
        #expect(excluded("System Volume Information", folder: true) == "System Volume Information/")
        #expect(excluded("IMG_0001.JPG") == nil)
        #expect(excluded("x.DS_Store") == nil)
    }

    @Test func userPatternsMatchTheNameOrThePathBelowTheFolder() throws {
        let rules = try IngestExclusions(["*.tmp", "cache/", "logs/*.log"], defaults: false)
        func excluded(_ name: String, _ relative: String, folder: Bool = false) -> Bool {
            rules.excluding(name: Array(name.utf8), relative: Array(relative.utf8), isFolder: folder) != nil
        }
        #expect(excluded("a.tmp", "deep/er/a.tmp"))
        #expect(!excluded("a.TMP", "a.TMP"))  // user patterns are case-sensitive
        #expect(excluded("cache", "x/cache", folder: true))
        #expect(!excluded("cache", "x/cache"))
        #expect(excluded("a.log", "logs/a.log"))
        #expect(!excluded("a.log", "logs/old/a.log"))  // * never matches /
        #expect(!excluded(".DS_Store", ".DS_Store"))  // defaults off
    }

    @Test("Malformed patterns are usage errors", arguments: ["", "/", "a\u{0}b", String(repeating: "x", count: 1025)])
    func malformedPatternsAreRefused(_ pattern: String) {
        let error = #expect(throws: ArchiveError.self) { try IngestExclusions([pattern]) }
        #expect(error?.code == .usage)
    }

    @Test func tooManyPatternsAreRefused() {
        let error = #expect(throws: ArchiveError.self) {
            try IngestExclusions((0...IngestExclusions.maxPatterns).map { "p\($0)" })
        }
        #expect(error?.code == .usage)
    }

    @Test func ingestLeavesOutAndReportsTheLitter() async throws {
        let archive = try await Fixtures.archive(in: dir)
        dir.write("up/a.jpg", text: "photo")
        dir.write("up/.DS_Store", text: "finder")
        dir.write("up/._a.jpg", text: "appledouble")
        dir.write("up/.Trashes/501/deleted.jpg", text: "deleted")
        dir.write("up/sub/Thumbs.db", text: "thumbs")
        dir.write("up/sub/scratch.tmp", text: "scratch")
        var options = IngestOptions()
        options.exclusions = try IngestExclusions(["*.tmp"])
        let report = try await archive.ingest([dir.path + "/up"], options: options)
        #expect(report.items.map(\.path) == [dir.path + "/up/a.jpg"])
        #expect(Set(report.excluded.map(\.pattern)) == ["._*", ".DS_Store", ".Trashes/", "Thumbs.db", "*.tmp"])
        #expect(report.excluded.filter(\.isFolder).map(\.path) == [dir.path + "/up/.Trashes"])

        options.exclusions = .none
        let all = try await archive.ingest([dir.path + "/up"], options: options)
        #expect(all.excluded.isEmpty)
        #expect(all.items.count == 5)  // a.jpg is held already (resume); the five others are new
        #expect(all.held.count == 1)
    }
}

@Suite struct IngestDryRunAndResumeTests {
    let dir = TempDirectory("dryrun")

    @Test func aDryRunReportsAndWritesNothing() async throws {
        let archive = try await Fixtures.archive(in: dir)
        dir.write("up/a.txt", text: "alpha")
        dir.write("up/b.txt", text: "beta")
        _ = try await archive.ingest([dir.path + "/up/a.txt"], options: IngestOptions())
        _ = try await archive.ingest([dir.path + "/up"], options: IngestOptions())
        dir.write("up/c.txt", text: "alpha")  // the content of a.txt, under another path: a duplicate
        dir.write("up/d.txt", text: "delta")
        let root = dir.path + "/archive"
        let before = snapshot(root)
        var options = IngestOptions()
        options.dryRun = true
        let report = try await archive.ingest([dir.path + "/up"], options: options)
        #expect(report.dryRun)
        #expect(report.items.isEmpty)
        #expect(report.held.map(\.path) == ["up/a.txt", "up/b.txt"])
        #expect(report.planned.map(\.path) == ["up/c.txt", "up/d.txt"])
        #expect(report.planned[0].sha256 == Encoding.hex(SHA256Hasher.hash(Array("alpha".utf8))))
        #expect(report.planned[0].duplicateOf != nil)
        #expect(report.planned[1].duplicateOf == nil)
        #expect(snapshot(root) == before)
        #expect(Set(Fixtures.allFiles(under: root)) == Set(before.keys))
    }

    @Test func aReRunAddsOnlyWhatIsMissing() async throws {
        let archive = try await Fixtures.archive(in: dir)
        dir.write("up/a.txt", text: "alpha")
        dir.write("up/b.txt", text: "beta")
        var options = IngestOptions()
        options.fields.caseID = "C-1"
        options.batchItems = 1
        #expect(try await archive.ingest([dir.path + "/up"], options: options).items.count == 2)
        dir.write("up/c.txt", text: "gamma")
        let again = try await archive.ingest([dir.path + "/up"], options: options)
        #expect(again.items.map(\.path) == [dir.path + "/up/c.txt"])
        #expect(again.held.map(\.path) == ["up/a.txt", "up/b.txt"])
        #expect(try await archive.index().itemCount() == 3)

        // Another case, another path or changed content is not the same record: ingested.
        var other = options
        other.fields.caseID = "C-2"
        #expect(try await archive.ingest([dir.path + "/up/a.txt"], options: other).items.count == 1)
        dir.write("up/b.txt", text: "beta, edited")
        #expect(try await archive.ingest([dir.path + "/up"], options: options).items.count == 1)

        options.allowDuplicates = true
        #expect(try await archive.ingest([dir.path + "/up"], options: options).items.count == 3)
    }
}

@Suite struct HashManifestTests {
    let dir = TempDirectory("manifest")

    private func parse(_ text: String, folder: String = "/evidence") throws -> HashManifest {
        try HashManifest(parsing: Array(text.utf8), folder: folder)
    }

    static let a = String(repeating: "a", count: 64)
    static let b = String(repeating: "B", count: 64)

    @Test func everyFormOfSha256sumResolvesAgainstTheListsFolder() throws {
        let list = try parse(
            """
            \(Self.a)  x.txt
            \(Self.b) *./sub/y.bin
            SHA256 (z z.txt) = \(Self.a)
            \\\(Self.a)  new\\nline\\\\back.txt\r
            \(Self.a)  /abs/q.txt

            """
        )
        #expect(list.entry(for: Array("/evidence/x.txt".utf8))?.sha256 == Self.a)
        #expect(list.entry(for: Array("/evidence/sub/y.bin".utf8))?.sha256 == Self.b.lowercased())
        #expect(list.entry(for: Array("/evidence/z z.txt".utf8))?.line == 3)
        #expect(list.entry(for: Array("/evidence/new\nline\\back.txt".utf8)) != nil)
        #expect(list.entry(for: Array("/abs/q.txt".utf8)) != nil)
        #expect(list.entries.count == 5)
    }

    @Test(
        "Malformed lines are refused with their number",
        arguments: [
            "\(a)  ok\nnot a hash  x\n", "\(a)  ok\n\(String(repeating: "g", count: 64))  x\n", "\(a)  ok\n\(a)x\n",
            "\(a)  ok\n\(a)  \n", "\(a)  ok\n\\\(a)  bad\\tescape\n", "\(a)  ok\n\(b)  ok\n",
            "\(a)  ok\nSHA256 (x) = 12\n",
        ]
    )
    func malformedLinesAreRefused(_ text: String) {
        let error = #expect(throws: ArchiveError.self) { try parse(text) }
        #expect(error?.code == .badInput)
        #expect(error?.problem.contains("line 2") == true, "\(String(describing: error))")
    }

    @Test func aLineOfAMegabyteIsRefusedBeforeItIsKept() {
        let text = "\(Self.a)  ok\n\(Self.a)  " + String(repeating: "n", count: 1 << 20) + "\n"
        let error = #expect(throws: ArchiveError.self) { try parse(text) }
        #expect(error?.problem.contains("line 2 is longer than") == true)
    }

    @Test func aListOfAMillionLinesIsRefusedAtTheBound() throws {
        let path = dir.path + "/SHA256SUMS"
        #expect(FileManager.default.createFile(atPath: path, contents: nil))
        let handle = try #require(FileHandle(forWritingAtPath: path))
        let block = (0..<10_000).map { "\(Self.a)  f\($0)\n" }.joined()
        for _ in 0..<100 { handle.write(Data(block.utf8)) }  // 10^6 lines
        try handle.close()
        let error = #expect(throws: ArchiveError.self) { try HashManifest(contentsOf: path) }
        #expect(error?.problem.contains("more than \(HashManifest.maxLines) lines") == true)
    }

    @Test func aFIFOOrMissingListIsRefusedWithoutWaiting() {
        #expect(mkfifo(dir.path + "/fifo", 0o600) == 0)
        let fifo = #expect(throws: ArchiveError.self) { try HashManifest(contentsOf: dir.path + "/fifo") }
        #expect(fifo?.reason == .notRegularFile)
        let missing = #expect(throws: ArchiveError.self) { try HashManifest(contentsOf: dir.path + "/none") }
        #expect(missing?.code == .notFound)
    }
}

@Suite struct IngestManifestTests {
    let dir = TempDirectory("expect")

    private func sums(_ entries: [(String, String)]) -> String {
        entries.map { "\(Encoding.hex(SHA256Hasher.hash(Array($0.1.utf8))))  \($0.0)\n" }.joined()
    }

    @Test func itemsRecordTheListTheyMatchedAndTheListItselfIsLeftOut() async throws {
        let archive = try await Fixtures.archive(in: dir)
        dir.write("up/a.txt", text: "alpha")
        dir.write("up/sub/b.txt", text: "beta")
        let list = dir.write("up/SHA256SUMS", text: sums([("./a.txt", "alpha"), ("sub/b.txt", "beta")]))
        var options = IngestOptions()
        options.manifest = try HashManifest(contentsOf: list)
        let report = try await archive.ingest([dir.path + "/up"], options: options)
        #expect(report.items.count == 2)
        #expect(report.manifestLeftOut == "up/SHA256SUMS")
        let listHash = Encoding.hex(SHA256Hasher.hash(Fixtures.read(list)))
        for item in try await archive.index().list(ItemFilter()) {
            #expect(item.metadata.matchedManifest == listHash)
        }

        options.includeManifest = true
        let again = try await archive.ingest([dir.path + "/up"], options: options)
        #expect(again.items.map(\.path) == [dir.path + "/up/SHA256SUMS"])
        let own = try #require(try await archive.index().list(ItemFilter()).last)
        #expect(own.metadata.matchedManifest == nil)
    }

    @Test func oneMismatchOrAMissingFileIngestsNothing() async throws {
        let archive = try await Fixtures.archive(in: dir)
        dir.write("up/a.txt", text: "alpha")
        dir.write("up/b.txt", text: "tampered")
        let list = dir.write("SHA256SUMS", text: sums([("up/a.txt", "alpha"), ("up/b.txt", "beta")]))
        var options = IngestOptions()
        options.batchItems = 1  // the good file's batch is staged before the bad one is read
        options.manifest = try HashManifest(contentsOf: list)
        let mismatch = try await archive.ingest([dir.path + "/up"], options: options)
        #expect(mismatch.items.isEmpty)
        #expect(mismatch.refused.map(\.path) == [dir.path + "/up/b.txt"])
        #expect(try await archive.index().itemCount() == 0)
        #expect(Fixtures.allFiles(under: dir.path + "/archive/objects").isEmpty)

        options.skipProblems = true
        let partial = try await archive.ingest([dir.path + "/up"], options: options)
        #expect(partial.items.map(\.path) == [dir.path + "/up/a.txt"])

        let missing = dir.write(
            "M",
            text: sums([
                ("up/a.txt", "alpha"), ("up/b.txt", "tampered"), ("up/gone.txt", "x"), ("../../etc/passwd", ""),
            ])
        )
        options.skipProblems = false
        options.allowDuplicates = true
        options.manifest = try HashManifest(contentsOf: missing)
        let error = await #expect(throws: ArchiveError.self) {
            try await archive.ingest([dir.path + "/up/a.txt", dir.path + "/up"], options: options)
        }
        #expect(error?.problem.contains("up/gone.txt") == true, "\(String(describing: error?.problem))")
        #expect(error?.problem.contains("nothing was ingested") == true)
        #expect(try await archive.index().itemCount() == 1)
    }

    @Test func linesOutsideThePathsGivenAreNotCheckedAndNeverRead() async throws {
        let archive = try await Fixtures.archive(in: dir)
        dir.write("up/a.txt", text: "alpha")
        let list = dir.write("up/SHA256SUMS", text: sums([("a.txt", "alpha"), ("../../../../etc/passwd", "root")]))
        var options = IngestOptions()
        options.manifest = try HashManifest(contentsOf: list)
        let report = try await archive.ingest([dir.path + "/up"], options: options)
        #expect(report.items.count == 1)
        #expect(report.manifestOutside == 1)
    }
}

@Suite struct RawNameTests {
    let dir = TempDirectory("rawname")

    @Test func aLatin1NameIsKeptAsBytesAndExtractedUnderThem() async throws {
        let archive = try await Fixtures.archive(in: dir)
        try FileManager.default.createDirectory(atPath: dir.path + "/up", withIntermediateDirectories: true)
        let name: [UInt8] = Array("caf".utf8) + [0xE9] + Array(".txt".utf8)
        writeRaw(dir.path + "/up", name, Array("café in Latin-1".utf8))
        let report = try await archive.ingest([dir.path + "/up"], options: IngestOptions())
        let item = try #require(report.items.first)
        #expect(item.path == dir.path + "/up/caf\\xE9.txt")
        let metadata = try #require(try await archive.index().list(ItemFilter()).first?.metadata)
        #expect(metadata.pathBytes == Encoding.base64(Array("up/".utf8) + name))
        #expect(metadata.path == "up/caf\u{FFFD}.txt")
        #expect(metadata.shownPath == "up/caf\\xE9.txt")
        #expect(metadata.rawName == name)

        try FileManager.default.createDirectory(atPath: dir.path + "/out", withIntermediateDirectories: true)
        let result = try await archive.extract(item.id.hex, to: dir.path + "/out", force: false)
        #expect(result.path == dir.path + "/out/caf\\xE9.txt")
        let entries = try FileManager.default.contentsOfDirectory(atPath: dir.path + "/out")
        #expect(entries.count == 1)
        var st = stat()
        #expect(FileScanner.withCString(Array(dir.path.utf8) + Array("/out/".utf8) + name) { stat($0, &st) } == 0)
        #expect(st.st_size == Int64("café in Latin-1".utf8.count))
        // Re-running finds it held, byte for byte.
        #expect(try await archive.ingest([dir.path + "/up"], options: IngestOptions()).held.count == 1)
    }

    @Test func escapingShowsEachInvalidByte() {
        #expect(ItemMetadata.escapingInvalidUTF8([0x61, 0xFF, 0xFE, 0x62]) == "a\\xFF\\xFEb")
        #expect(ItemMetadata.escapingInvalidUTF8(Array("é ok".utf8)) == "é ok")
        #expect(ItemMetadata.escapingInvalidUTF8([0xE2, 0x82]) == "\\xE2\\x82")
    }
}
