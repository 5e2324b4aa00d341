import CustodyCrypto
import CustodyStorage
import CustodyTestSupport
import Foundation
import Testing

@testable import CustodyArchive

#if canImport(Glibc)
import Glibc
#endif

/// The local side of the trust boundary (issue 11, findings 8, 9 and 14), each test written as the attack:
/// directory entries at the edge of mapped memory, files and folders swapped between the scan and the read,
/// symbolic links planted inside the object store, and identity files whose names carry terminal controls.
@Suite struct LocalBoundaryTests {
    let dir = TempDirectory("local-boundary")

    // MARK: Finding 14: directory entries are read within their record

    @Test func aDirectoryEntryEndingAtTheEdgeOfMappedMemoryIsReadWithoutFault() throws {
        // The shape that crashed ingest and verify: the last, short record of glibc's buffer ends right before
        // unmapped memory. Copying `d_name` as a 256-byte tuple reads past it and faults; the name must be read
        // up to its NUL only.
        let page = Int(sysconf(Int32(_SC_PAGESIZE)))
        let mapped = mmap(nil, 2 * page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0)
        let base = try #require(mapped.flatMap { $0 == UnsafeMutableRawPointer(bitPattern: -1) ? nil : $0 })
        defer { munmap(base, 2 * page) }
        #expect(mprotect(base + page, page, PROT_NONE) == 0)
        let nameOffset = try #require(MemoryLayout<dirent>.offset(of: \dirent.d_name))
        let name = Array("abcd".utf8)
        // The kernel's record for a 4-byte name: header, name and NUL, rounded up to 8 bytes; it ends at the guard.
        let length = (nameOffset + name.count + 1 + 7) & ~7
        let record = base + page - length
        record.initializeMemory(as: UInt8.self, repeating: 0, count: length)
        record.storeBytes(
            of: UInt16(length),
            toByteOffset: MemoryLayout<dirent>.offset(of: \dirent.d_reclen) ?? 16,
            as: UInt16.self
        )
        for (index, byte) in name.enumerated() {
            record.storeBytes(of: byte, toByteOffset: nameOffset + index, as: UInt8.self)
        }
        #expect(POSIX.entryName(record.assumingMemoryBound(to: dirent.self)) == name)
    }

    /// Creates `folders` × `files` one-byte files under `root` (`folder-<n>/file-<n>.txt`).
    private func makeTree(_ root: String, folders: Int, files: Int) {
        mkdir(root, 0o700)
        for folder in 0..<folders {
            let path = root + "/folder-\(folder)"
            mkdir(path, 0o700)
            for file in 0..<files {
                let fd = open(path + "/file-\(file).txt", O_WRONLY | O_CREAT | O_TRUNC, 0o600)
                _ = write(fd, "x", 1)
                close(fd)
            }
        }
    }

    @Test func foldersOfAThousandFilesAreScannedListedIngestedAndVerified() async throws {
        // The shape that crashed `custody ingest` (30 folders × 1,000 files: 10 crashes in 10 runs; two or three
        // such folders: 5 of 20 combinations) and `verify --quick`: a thousand short names fill glibc's 32 KiB
        // buffer, so short records end at its edge. Ten folders keep the test to a few seconds.
        let root = dir.path + "/tree"
        makeTree(root, folders: 10, files: 1000)
        let (files, problems) = try FileScanner.scan([root])
        #expect(problems.isEmpty)
        #expect(files.count == 10_000)
        #expect(Set(files.map(\.displayPath)).count == 10_000)
        #expect(files.allSatisfy { $0.displayPath.hasPrefix("tree/folder-") && $0.displayPath.hasSuffix(".txt") })
        for folder in try listDirectory(root) {
            let names = Set(try listDirectory(root + "/" + folder))
            #expect(names == Set((0..<1000).map { "file-\($0).txt" }))
        }
        let archive = try await Fixtures.archive(in: dir)
        let report = try await archive.ingest(
            [root + "/folder-0", root + "/folder-1", root + "/folder-2"],
            options: IngestOptions()
        )
        #expect(report.items.count == 3000)
        let verified = try await archive.verify(mode: .quick)
        #expect(verified.ok)
        #expect(verified.objectsChecked > 0)
    }

    // MARK: Finding 9: ingest opens what it scanned, and only that

    @Test func aFileSwappedForAFIFOAfterTheScanIsRefusedWithoutHanging() async throws {
        let archive = try await Fixtures.archive(in: dir)
        dir.write("up/a.txt", text: "a")
        let swapped = dir.write("up/b.txt", text: "b")
        let (files, problems) = try FileScanner.scan([dir.path + "/up"])
        #expect(files.count == 2 && problems.isEmpty)
        unlink(swapped)
        #expect(mkfifo(swapped, 0o600) == 0)
        // Opening a FIFO for reading blocks until a writer comes: ingest must refuse it instead.
        let error = await #expect(throws: ArchiveError.self) {
            try await archive.ingest(scanned: files, problems: problems, options: IngestOptions())
        }
        #expect(error?.reason == .changedSinceScan)
        #expect(error?.problem.contains("b.txt") == true)  // the message names the file: the property under test
        #expect(files.compactMap(\.openProblemKind) == [.notRegularFile])
        #expect(try await archive.index().itemCount() == 0)
        #expect(try await archive.verify(mode: .standard).ok)

        var options = IngestOptions()
        options.skipProblems = true
        let report = try await archive.ingest(scanned: files, problems: problems, options: options)
        #expect(report.items.map(\.path) == [dir.path + "/up/a.txt"])
        #expect(report.skipped.map(\.path) == [swapped] && report.skipped.map(\.kind) == [.notRegularFile])
    }

    @Test func aFolderSwappedForALinkToOutsideAfterTheScanIsRefused() async throws {
        let archive = try await Fixtures.archive(in: dir)
        dir.write("up/sub/a.txt", text: "the statement")
        dir.write("outside/sub/a.txt", text: "a file from outside the folder given")
        let (files, problems) = try FileScanner.scan([dir.path + "/up"])
        #expect(files.map(\.displayPath) == ["up/sub/a.txt"])
        #expect(rename(dir.path + "/up/sub", dir.path + "/moved") == 0)
        #expect(symlink(dir.path + "/outside/sub", dir.path + "/up/sub") == 0)
        let error = await #expect(throws: ArchiveError.self) {
            try await archive.ingest(scanned: files, problems: problems, options: IngestOptions())
        }
        #expect(error?.reason == .changedSinceScan)
        #expect(files.compactMap(\.openProblemKind) == [.symbolicLink])
        #expect(try await archive.index().itemCount() == 0)
    }

    @Test func aFolderOrFileReplacedByAnotherAfterTheScanIsRefused() async throws {
        let archive = try await Fixtures.archive(in: dir)
        dir.write("up/sub/a.txt", text: "the statement")
        dir.write("up/b.txt", text: "b")
        dir.write("other/a.txt", text: "another file")
        let (files, problems) = try FileScanner.scan([dir.path + "/up"])
        // A real folder (not a link) moved into the scanned folder's place: its inode gives it away.
        #expect(rename(dir.path + "/up/sub", dir.path + "/moved") == 0)
        #expect(rename(dir.path + "/other", dir.path + "/up/sub") == 0)
        let folderError = await #expect(throws: ArchiveError.self) {
            try await archive.ingest(scanned: files, problems: problems, options: IngestOptions())
        }
        #expect(folderError?.reason == .changedSinceScan)
        #expect(files.compactMap(\.openProblemKind) == [.replaced])
        // A file renamed over a scanned one (same name, same folder, another inode).
        dir.write("third/a.txt", text: "scanned")
        let rescanned = try FileScanner.scan([dir.path + "/third"])
        dir.write("replacement.txt", text: "not what was scanned")
        #expect(rename(dir.path + "/replacement.txt", dir.path + "/third/a.txt") == 0)
        let fileError = await #expect(throws: ArchiveError.self) {
            try await archive.ingest(scanned: rescanned.files, problems: [], options: IngestOptions())
        }
        #expect(fileError?.reason == .changedSinceScan)
        #expect(rescanned.files.compactMap(\.openProblemKind) == [.replaced])
        #expect(try await archive.index().itemCount() == 0)
    }

    @Test func aFileNamedOnTheCommandLineMayBeALinkButNotSwappedAfterTheScan() async throws {
        let archive = try await Fixtures.archive(in: dir)
        let real = dir.write("real.txt", text: "named by the user")
        #expect(symlink(real, dir.path + "/named.txt") == 0)
        let report = try await archive.ingest([dir.path + "/named.txt"], options: IngestOptions())
        #expect(report.items.count == 1)
        let (files, _) = try FileScanner.scan([real])
        unlink(real)
        #expect(mkfifo(real, 0o600) == 0)
        let error = await #expect(throws: ArchiveError.self) {
            try await archive.ingest(scanned: files, problems: [], options: IngestOptions())
        }
        #expect(error?.reason == .changedSinceScan)
        #expect(files.compactMap(\.openProblemKind) == [.notRegularFile])
        #expect(try await archive.index().itemCount() == 1)
    }

    // MARK: Finding 9: gc and the object store never follow a link inside the archive

    /// A folder outside the archive holding files named like an orphan object and like temporary files.
    private func victim(shard: String) -> (folder: String, files: [String]) {
        let folder = dir.path + "/victim-\(shard)"
        let names = [
            shard + String(repeating: "0", count: 62), ".tmp-" + String(repeating: "1", count: 64) + ".1.1",
            "precious.txt",
        ]
        return (folder, names.map { dir.write("victim-\(shard)/\($0)", text: "not the archive's") })
    }

    /// A new archive holding one item; released before the test reopens it alone.
    private func archiveWithOneItem() async throws -> String {
        let archive = try await Fixtures.archive(in: dir)
        dir.write("e.txt", text: "evidence")
        _ = try await archive.ingest([dir.path + "/e.txt"], options: IngestOptions())
        return archive.root
    }

    @Test func gcLeavesTheTargetOfAPlantedObjectsTmpLinkAlone() async throws {
        let root = try await archiveWithOneItem()
        let (folder, files) = victim(shard: "tmp")
        rmdir(root + "/objects/tmp")
        #expect(symlink(folder, root + "/objects/tmp") == 0)
        let exclusive = try Fixtures.reopen(dir, access: .exclusive)
        let report = try await exclusive.collectGarbage(dryRun: false)
        #expect(files.allSatisfy { access($0, F_OK) == 0 })
        #expect(report.temporaryFiles == 0)
        #expect(report.strays == [StrayEntry(path: "tmp", kind: "symbolic link")])
        #expect(POSIX.lstatPath(root + "/objects/tmp").map { POSIX.isSymlink($0.st_mode) } == true)
        let verified = try await exclusive.verify(mode: .standard)
        #expect(verified.ok)
        #expect(verified.warnings.contains { $0.contains("objects/tmp is a symbolic link") })
    }

    @Test func gcLeavesTheTargetOfAPlantedShardLinkAlone() async throws {
        let root = try await archiveWithOneItem()
        let used = Set(try listDirectory(root + "/objects"))
        let shard = try #require((0..<256).map { String(format: "%02x", $0) }.first { !used.contains($0) })
        let (folder, files) = victim(shard: shard)
        #expect(symlink(folder, root + "/objects/" + shard) == 0)
        let exclusive = try Fixtures.reopen(dir, access: .exclusive)
        let report = try await exclusive.collectGarbage(dryRun: false)
        #expect(files.allSatisfy { access($0, F_OK) == 0 })
        #expect(report.objects.isEmpty)
        #expect(report.strays == [StrayEntry(path: shard, kind: "symbolic link")])
        #expect(try await exclusive.verify(mode: .standard).ok)
    }

    @Test func aPlantedObjectsSettingIsNotFollowedByTheLibrarysDefaultStore() async throws {
        // Someone who can write to the archive folder plants objects.json naming a bucket of theirs: the
        // archive's default opener (the folder only) refuses the archive rather than use objects/ silently or
        // reach the network; only the composition root, which reads the setting, opens such an archive.
        do {
            let archive = try await Fixtures.archive(in: dir)
            _ = try await archive.ingest([dir.write("a.txt", text: "evidence")], options: IngestOptions())
        }
        let archiveRoot = dir.path + "/archive"
        dir.write(
            "archive/objects.json",
            text: #"{"backend":"s3","bucket":"attacker","prefix":"","endpoint":"http://127.0.0.1:9"}"#
        )
        let refused = #expect(throws: ArchiveError.self) { try Archive.open(at: archiveRoot) }
        #expect(refused?.reason == .usage)
        #expect(!(try listDirectory(archiveRoot + "/objects")).isEmpty, "the local objects are untouched")
    }

    // The object store's own refusal of links and FIFOs (reading, listing, staging, removing) is tested where
    // the store is: CustodyStorageTests/FileObjectStoreTests.

    @Test func removingPartialTilesNeverFollowsALink() throws {
        let victim = dir.write("victim/entry", text: "keep me")
        #expect(symlink(dir.path + "/victim", dir.path + "/tile.p") == 0)
        POSIX.removeTree(dir.path + "/tile.p")
        #expect(access(victim, F_OK) == 0)
    }

    @Test func anAtomicWriteNeverWritesThroughALinkPlantedUnderItsTemporaryName() throws {
        let victim = dir.write("victim.txt", text: "keep me")
        let path = dir.path + "/bodies.json"
        let suffix = temporarySuffix()
        #expect(symlink(victim, path + ".tmp-" + suffix) == 0)
        try ArchiveFiles.writeAtomically(path, Array("new".utf8), suffix: suffix)
        #expect(String(decoding: Fixtures.read(victim), as: UTF8.self) == "keep me")
        #expect(String(decoding: Fixtures.read(path), as: UTF8.self) == "new")
        #expect(POSIX.lstatPath(path).map { POSIX.isRegular($0.st_mode) } == true)
    }

    @Test func aLockFileThatIsALinkIsRefusedNotFollowed() throws {
        let target = dir.path + "/elsewhere.lock"
        #expect(symlink(target, dir.path + "/lock") == 0)
        #expect(throws: ArchiveError.self) { try FileLock(path: dir.path + "/lock", mode: .shared) }
        #expect(access(target, F_OK) != 0)
    }

    // MARK: Finding 8: identity names from outside

    /// A validly self-signed identity with `name`, as a hostile body would make one.
    static func forgedIdentity(name: String, origin: String = "hostile.example/log") throws -> Identity {
        let signing = try SigningKey(seed: SecretBytes(randomCount: SigningKey.seedByteCount))
        let box = try BoxKey(secretKey: SecretBytes(randomCount: BoxKey.secretKeyByteCount))
        let log = try SigningKey(seed: SecretBytes(randomCount: SigningKey.seedByteCount))
        var identity = Identity(
            name: name,
            origin: origin,
            signingKey: Encoding.base64(signing.publicKey),
            boxKey: Encoding.base64(box.publicKey),
            logVerifierKey: Identity.verifierKey(origin: origin, publicKey: log.publicKey),
            fingerprint: Identity.fingerprint(signingKey: signing.publicKey, boxKey: box.publicKey),
            selfSignature: ""
        )
        identity.selfSignature = Encoding.base64(signing.signature(for: identity.signedMessage))
        return identity
    }

    @Test(
        "Names that could recolour a terminal, reorder text or pose as two lines are refused",
        arguments: [
            "Body A\u{1B}[30;40m", "Body \u{202E}A ydoB", "Body A\nfingerprint 0000", "Body\u{0}A", "Cafe\u{301}",
        ]
    )
    func identityWithAnUnsafeNameIsRefused(name: String) async throws {
        let identity = try Self.forgedIdentity(name: name)
        #expect(identity.problem?.contains("name") == true)  // the problem names the field at fault
        #expect(!identity.isValid)
        let error = #expect(throws: ArchiveError.self) {
            try Identity.parse(try identity.jsonBytes(), source: "hostile.id")
        }
        #expect(error?.code == .badInput)
        #expect(error?.description.unicodeScalars.contains { $0.value == 0x1B } == false)
        let archive = try await Fixtures.archive(in: dir)
        #expect(throws: ArchiveError.self) { try archive.trust(identity, role: .witness) }
        #expect(try archive.knownBodies().isEmpty)
    }

    @Test func identityWithAnOrdinaryNameIsAccepted() throws {
        let identity = try Self.forgedIdentity(name: "Comisión de la Verdad — عدالة")
        #expect(identity.problem == nil)
        #expect(try Identity.parse(try identity.jsonBytes(), source: "ok.id") == identity)
    }

    @Test func terminalTextShowsControlsAsEscapes() {
        #expect(TerminalText.escape("a\u{1B}[30mb") == "a\\u{1B}[30mb")
        #expect(TerminalText.escape("x\ny") == "x\\u{A}y")
        #expect(TerminalText.escape("x\ny", keepingNewlines: true) == "x\ny")
    }
}

extension SourceFile {
    /// The kind of problem opening it for ingest finds now, if any.
    fileprivate var openProblemKind: ScanProblem.Kind? {
        switch openForReading() {
        case .success(let fd):
            close(fd)
            return nil
        case .failure(let problem): return problem.kind
        }
    }
}
