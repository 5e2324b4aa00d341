import CustodyCrypto
import CustodyStorage
import Foundation
import NIOPosix
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// A fresh folder for one test, removed afterwards.
final class ScratchFolder {
    let path: String

    init(_ label: String) {
        path = NSTemporaryDirectory() + "custody-storage-\(label)-\(UUID().uuidString)"
        try? FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    }

    deinit { try? FileManager.default.removeItem(atPath: path) }

    /// The names in a folder under this one, sorted; none when it does not exist.
    func entries(_ relative: String) -> [String] {
        ((try? FileManager.default.contentsOfDirectory(atPath: path + "/" + relative)) ?? []).sorted()
    }

    func write(_ relative: String, _ bytes: [UInt8]) {
        let url = URL(fileURLWithPath: path + "/" + relative)
        try? FileManager.default.createDirectory(at: url.deletingLastPathComponent(), withIntermediateDirectories: true)
        _ = FileManager.default.createFile(atPath: url.path, contents: Data(bytes))
    }
}

func randomBytes(_ count: Int) -> [UInt8] { (0..<count).map { _ in UInt8.random(in: 0...255) } }

/// The filesystem store: two-phase writes, reads, listing and maintenance, and its refusal to follow links.
@Suite struct FileObjectStoreTests {
    let folder = ScratchFolder("files")
    var root: String { folder.path + "/objects" }

    @Test func aStagedObjectIsSeenOnlyByItsWriterUntilCommitted() async throws {
        let store = try FileObjectStore(root: root)
        let bytes = randomBytes(5000)
        let name = ObjectName(of: bytes)
        let staged = try #require(try await store.stage(bytes, as: name, checkExisting: true))
        // Readable through the store that staged it (an import checks what it received)…
        #expect(try await store.read(name, limit: 1 << 20) == bytes)
        // …but not present: not for contains, size, the listing, or another opening of the store.
        #expect(try await !store.contains(name))
        #expect(try await store.size(of: name) == nil)
        #expect(try await store.allObjects().isEmpty)
        let other = try FileObjectStore(root: root)
        #expect(try await other.read(name, limit: 1 << 20) == nil)
        try await store.commit([staged])
        #expect(try await other.contains(name))
        #expect(try await other.size(of: name) == 5000)
        #expect(try await other.read(name, limit: 1 << 20) == bytes)
        #expect(try await store.allObjects() == [name: 5000])
        // No temporary file is left beside it.
        #expect(folder.entries("objects/\(name.hex.prefix(2))") == [name.hex])
        #expect(try await store.maintenanceReport() == MaintenanceReport())
    }

    @Test func discardingRemovesTheStagedCopyAndNothingElse() async throws {
        let store = try FileObjectStore(root: root)
        let kept = randomBytes(100)
        try await store.put(kept, as: ObjectName(of: kept))
        let dropped = randomBytes(100)
        let staged = try #require(try await store.stage(dropped, as: ObjectName(of: dropped), checkExisting: true))
        await store.discard([staged])
        #expect(try await store.read(ObjectName(of: dropped), limit: 1000) == nil)
        #expect(try await store.allObjects() == [ObjectName(of: kept): 100])
        #expect(try await store.maintenanceReport().leftovers.isEmpty)
    }

    @Test func aStoredObjectIsNotStagedAgainUnlessTheCallerSaysItCannotExist() async throws {
        let store = try FileObjectStore(root: root)
        let bytes = randomBytes(300)
        let name = ObjectName(of: bytes)
        try await store.put(bytes, as: name)
        #expect(try await store.stage(bytes, as: name, checkExisting: true) == nil)
        let forced = try #require(try await store.stage(bytes, as: name, checkExisting: false))
        try await store.commit([forced])
        #expect(try await store.read(name, limit: 1000) == bytes)
    }

    @Test func twoStagingsOfOneNameAreToldApart() async throws {
        let store = try FileObjectStore(root: root)
        let bytes = randomBytes(64)
        let name = ObjectName(of: bytes)
        let first = try #require(try await store.stage(bytes, as: name, checkExisting: true))
        let second = try #require(try await store.stage(bytes, as: name, checkExisting: true))
        #expect(first != second)
        // Dropping one leaves the other readable and committable.
        await store.discard([first])
        #expect(try await store.read(name, limit: 100) == bytes)
        try await store.commit([second])
        #expect(try await store.contains(name))
        #expect(try await store.maintenanceReport().leftovers.isEmpty)
    }

    @Test func rangesAndLimitsAreBoundedByTheObject() async throws {
        let store = try FileObjectStore(root: root)
        let bytes = randomBytes(1000)
        let name = ObjectName(of: bytes)
        try await store.put(bytes, as: name)
        #expect(try await store.read(name, range: 10...19) == Array(bytes[10...19]))
        #expect(try await store.read(name, range: 990...5000) == Array(bytes[990...]))
        #expect(try await store.read(name, range: 1000...1010) == [])
        #expect(try await store.read(name, range: -5...3) == [])
        #expect(try await store.read(name, range: 0...Int64.max) == bytes)
        let absent = ObjectName(of: randomBytes(10))
        #expect(try await store.read(absent, range: 0...1) == nil)
        let error = await #expect(throws: StorageError.self) { try await store.read(name, limit: 999) }
        #expect(error?.reason == .damaged)
    }

    @Test func theListingWalksEveryShardAndSkipsWhatIsNotAnObject() async throws {
        let store = try FileObjectStore(root: root)
        var written: [ObjectName: Int64] = [:]
        var batch: [StagedObject] = []
        for size in 1...300 {
            let bytes = randomBytes(size)
            written[ObjectName(of: bytes)] = Int64(size)
            batch.append(try #require(try await store.stage(bytes, as: ObjectName(of: bytes), checkExisting: true)))
        }
        try await store.commit(batch)
        // Files that are not objects: a wrong name, a name in the wrong shard, a folder, a temporary file.
        let some = try #require(written.keys.first)
        let shard = String(some.hex.prefix(2))
        let wrongShard = shard == "00" ? "01" : "00"
        folder.write("objects/\(shard)/not-an-object", [1])
        folder.write("objects/\(wrongShard)/\(some.hex)", [1])
        folder.write("objects/\(shard)/.tmp-\(some.hex).1.1", [1])
        #expect(mkdir(root + "/" + shard + "/" + String(repeating: "a", count: 64), 0o700) == 0)
        #expect(try await store.allObjects() == written)
        #expect(try await store.maintenanceReport().leftovers == [Leftover(id: "\(shard)/.tmp-\(some.hex).1.1")])
    }

    @Test func theStoreRefusesLinksAndFIFOsInsteadOfFollowingOrWaiting() async throws {
        let store = try FileObjectStore(root: root)
        let outside = Array("a file outside the store".utf8)
        let name = ObjectName(of: outside)
        let shard = String(name.hex.prefix(2))
        folder.write("elsewhere/" + name.hex, outside)
        // A shard folder that is a link: never followed, for reading, listing or writing.
        #expect(symlink(folder.path + "/elsewhere", root + "/" + shard) == 0)
        await #expect(throws: StorageError.self) { try await store.contains(name) }
        let readError = await #expect(throws: StorageError.self) { try await store.read(name, limit: 1 << 20) }
        #expect(readError?.reason == .damaged)
        #expect(try await store.allObjects().isEmpty)
        await #expect(throws: StorageError.self) { try await store.stage(outside, as: name, checkExisting: true) }
        #expect(folder.entries("elsewhere") == [name.hex])
        #expect(try await store.maintenanceReport().strays == [StrayEntry(path: shard, kind: "symbolic link")])
        // An object that is a FIFO or a link to a file: refused, without waiting for a writer.
        unlink(root + "/" + shard)
        mkdir(root + "/" + shard, 0o700)
        #expect(mkfifo(root + "/" + shard + "/" + name.hex, 0o600) == 0)
        await #expect(throws: StorageError.self) { try await store.read(name, limit: 1 << 20) }
        await #expect(throws: StorageError.self) { try await store.read(name, range: 0...10) }
        #expect(
            try await store.maintenanceReport().strays == [
                StrayEntry(path: "\(shard)/\(name.hex)", kind: "pipe, device or socket")
            ]
        )
        unlink(root + "/" + shard + "/" + name.hex)
        #expect(symlink(folder.path + "/elsewhere/" + name.hex, root + "/" + shard + "/" + name.hex) == 0)
        await #expect(throws: StorageError.self) { try await store.read(name, limit: 1 << 20) }
        #expect(try await !store.contains(name))
        #expect(try await store.size(of: name) == nil)
        // Removing the object removes nothing: the link is not the object, and its target stays.
        try await store.remove(name)
        #expect(folder.entries("elsewhere") == [name.hex])
        #expect(
            try await store.maintenanceReport().strays == [
                StrayEntry(path: "\(shard)/\(name.hex)", kind: "symbolic link")
            ]
        )
        // The objects folder itself may not be a link.
        #expect(symlink(root, folder.path + "/linked") == 0)
        let linked = #expect(throws: StorageError.self) { try FileObjectStore(root: folder.path + "/linked") }
        #expect(linked?.reason == .badInput)
    }

    @Test func aStagedWriteNeverGoesThroughALinkPlantedInTheShardFolder() async throws {
        let store = try FileObjectStore(root: root)
        let bytes = randomBytes(200)
        let name = ObjectName(of: bytes)
        let victim = folder.path + "/victim"
        folder.write("victim", Array("keep me".utf8))
        // A link under the object's own name: staging writes a new temporary file and commit replaces the
        // link entry by the object, never writing through it.
        mkdir(root + "/" + name.hex.prefix(2), 0o700)
        #expect(symlink(victim, root + "/" + name.hex.prefix(2) + "/" + name.hex) == 0)
        let staged = try #require(try await store.stage(bytes, as: name, checkExisting: true))
        try await store.commit([staged])
        #expect(try String(contentsOfFile: victim, encoding: .utf8) == "keep me")
        #expect(try await store.read(name, limit: 1000) == bytes)
    }

    @Test(
        "Only leftovers of the shapes the store reports are removed, never a path a caller made up",
        arguments: [
            "../victim", "ab/../../victim", "ab/.tmp-../../victim", "tmp/../../victim", "/victim", "ab/notatmp",
            "ab", "ab/.tmp-x/y", "AB/.tmp-x", "",
        ]
    )
    func aForgedLeftoverIsIgnored(_ id: String) async throws {
        let store = try FileObjectStore(root: root)
        folder.write("victim", Array("keep me".utf8))
        folder.write("objects/ab/notatmp", Array("keep me too".utf8))
        try await store.removeLeftover(Leftover(id: id))
        #expect(FileManager.default.fileExists(atPath: folder.path + "/victim"))
        #expect(FileManager.default.fileExists(atPath: root + "/ab/notatmp"))
    }

    @Test func leftoversOfInterruptedWritesAreReportedAndRemovable() async throws {
        let store = try FileObjectStore(root: root)
        let temp = ".tmp-" + String(repeating: "1", count: 64) + ".1.1"
        folder.write("objects/11/" + temp, [1, 2, 3])
        folder.write("objects/tmp/old-style", [4])
        // A link named like a temporary file is a stray: reported, never removed.
        #expect(symlink(folder.path + "/victim", root + "/11/.tmp-link") == 0)
        let report = try await store.maintenanceReport()
        #expect(report.leftovers == [Leftover(id: "11/" + temp), Leftover(id: "tmp/old-style")])
        #expect(report.strays == [StrayEntry(path: "11/.tmp-link", kind: "symbolic link")])
        for leftover in report.leftovers { try await store.removeLeftover(leftover) }
        try await store.removeLeftover(Leftover(id: "11/.tmp-link"))
        let after = try await store.maintenanceReport()
        #expect(after.leftovers.isEmpty)
        #expect(after.strays == report.strays)
    }

    @Test func everyDiskOperationRunsOnTheStoresThreadPool() async throws {
        // A store whose pool has stopped can do nothing: proof that no operation makes its system calls on
        // the caller's task (the Swift concurrency pool) instead.
        let bytes = randomBytes(10)
        let name = ObjectName(of: bytes)
        try await FileObjectStore(root: root).put(bytes, as: name)
        let pool = NIOThreadPool(numberOfThreads: 1)
        pool.start()
        try await pool.shutdownGracefully()
        let store = try FileObjectStore(root: root, threadPool: pool)
        let operations: [(String, @Sendable () async throws -> Void)] = [
            ("stage", { _ = try await store.stage(bytes, as: name, checkExisting: false) }),
            ("contains", { _ = try await store.contains(name) }),
            ("read", { _ = try await store.read(name, limit: 100) }),
            ("read range", { _ = try await store.read(name, range: 0...3) }),
            ("size", { _ = try await store.size(of: name) }),
            ("list", { _ = try await store.allObjects() }),
            ("remove", { try await store.remove(name) }),
            ("maintenance", { _ = try await store.maintenanceReport() }),
            ("commit", { try await store.commit([StagedObject(name: name)]) }),
        ]
        for (label, operation) in operations {
            let error = await #expect(throws: StorageError.self, "\(label)") { try await operation() }
            #expect(error?.reason == .temporary, "\(label)")
        }
        #expect(try await FileObjectStore(root: root).read(name, limit: 100) == bytes)
    }
}
