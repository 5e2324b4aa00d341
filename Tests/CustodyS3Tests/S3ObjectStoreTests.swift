import CustodyCrypto
import CustodyS3
import CustodyStorage
import Foundation
import Testing

#if canImport(Glibc)
import Glibc
#endif

func randomBytes(_ count: Int) -> [UInt8] { (0..<count).map { _ in UInt8.random(in: 0...255) } }

/// A fresh folder for one test, removed afterwards.
final class ScratchFolder {
    let path: String

    init(_ label: String) {
        path = NSTemporaryDirectory() + "custody-s3-\(label)-\(UUID().uuidString)"
        try? FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    }

    deinit { try? FileManager.default.removeItem(atPath: path) }
}

/// The S3 endpoint and credentials of the test store, from the environment `Scripts/ceph-s3.sh env` prints.
enum S3TestStore {
    /// `CUSTODY_TEST_S3=1`: a real S3 store (the project's single-node Ceph) is running; CI always sets it.
    static let enabled = ProcessInfo.processInfo.environment["CUSTODY_TEST_S3"] == "1"
    static let notice: Comment =
        "S3 tests need a running S3 store: Scripts/ceph-s3.sh start, then eval \"$(Scripts/ceph-s3.sh env)\" (CI does both)"

    /// A new bucket for one test, and a store on it under `prefix`.
    static func store(
        _ label: String,
        prefix: String = "p/q",
        configure: (inout S3Settings) -> Void = { _ in }
    ) async throws
        -> S3ObjectStore
    {
        let bucket = "custody-\(label)-\(Encoding.hex(randomBytes(4)))"
        try await S3Client(settings: S3Settings(bucket: bucket, prefix: "")).createBucket()
        var settings = S3Settings(bucket: bucket, prefix: prefix)
        configure(&settings)
        return S3ObjectStore(client: try S3Client(settings: settings))
    }
}

/// The S3 object store against a real Ceph radosgw on loopback (Scripts/ceph-s3.sh).
@Suite(.enabled(if: S3TestStore.enabled, S3TestStore.notice))
struct S3ObjectStoreTests {
    @Test func conditionalCreateNeverClobbersAndLargeObjectsGoInParts() async throws {
        let store = try await S3TestStore.store("store") {
            $0.multipartThreshold = 6 << 20
            $0.partSize = 5 << 20
        }
        let large = randomBytes(12 << 20 + 123)
        let name = ObjectName(of: large)
        let staged = try await store.stage(large, as: name, checkExisting: true)
        #expect(staged != nil)
        try await store.commit(staged.map { [$0] } ?? [])
        #expect(try await store.size(of: name) == Int64(large.count))
        #expect(try await store.read(name, limit: 64 << 20) == large)
        #expect(try await store.read(name, range: 5_000_000...5_000_099) == Array(large[5_000_000...5_000_099]))
        // Ranges behave as on the filesystem store: short at the end, empty past it or before the start.
        let tail = Int64(large.count - 10)
        #expect(try await store.read(name, range: tail...Int64.max) == Array(large[(large.count - 10)...]))
        #expect(try await store.read(name, range: Int64(large.count)...Int64(large.count + 5)) == [])
        #expect(try await store.read(name, range: -5...3) == [])
        #expect(try await store.maintenanceReport() == MaintenanceReport())
        // Small objects: a second write of a present name changes nothing, even with other bytes.
        let small = randomBytes(1000)
        let smallName = ObjectName(of: small)
        #expect(try await store.putIfAbsent(small, as: smallName))
        let other = randomBytes(1000)
        #expect(try await !store.putIfAbsent(other, as: smallName))
        #expect(try await store.read(smallName, limit: 4096) == small)
        // Staging runs in the background; committing waits for it, and a read waits for its upload.
        let restaged = try await store.stage(other, as: smallName, checkExisting: true)
        try await store.commit(restaged.map { [$0] } ?? [])
        #expect(try await store.read(smallName, limit: 4096) == small)
        let batch = (0..<40).map { _ in randomBytes(3000) }
        var stagedBatch: [StagedObject] = []
        for bytes in batch {
            stagedBatch.append(
                try #require(try await store.stage(bytes, as: ObjectName(of: bytes), checkExisting: true))
            )
        }
        #expect(try await store.read(ObjectName(of: batch[39]), limit: 4096) == batch[39])
        try await store.commit(stagedBatch)
        for bytes in batch { #expect(try await store.size(of: ObjectName(of: bytes)) == 3000) }
        let names = Set(try await store.allObjects().keys)
        #expect(names == Set([name, smallName] + batch.map { ObjectName(of: $0) }))
        try await store.remove(smallName)
        #expect(try await store.read(smallName, limit: 4096) == nil)
        #expect(try await !store.contains(smallName))
        // An object larger than the caller's limit is refused, not held.
        let error = await #expect(throws: StorageError.self) { try await store.read(name, limit: 1 << 20) }
        #expect(error?.reason == .damaged)
    }

    @Test func theListingFollowsContinuationTokensAndSkipsKeysThatAreNotObjects() async throws {
        let store = try await S3TestStore.store("list", prefix: "evidence")
        let contents = (0..<1005).map { _ in randomBytes(16) }
        try await contents.concurrentForEach(width: 16) { bytes in
            try await store.put(bytes, as: ObjectName(of: bytes))
        }
        // Keys under the prefix that are not object names, and an object name outside the prefix.
        try await store.client.put(key: "evidence/notes.txt", body: [1])
        try await store.client.put(key: "elsewhere/\(ObjectName(of: [7]).hex)", body: [7])
        let listed = try await store.allObjects()
        #expect(listed.count == 1005)
        #expect(Set(listed.keys) == Set(contents.map { ObjectName(of: $0) }))
        #expect(listed.values.allSatisfy { $0 == 16 })
    }

    @Test func aFailedUploadFailsTheCommitOfEveryBatchThatStagedIt() async throws {
        var environment = S3Environment.current()
        environment.secretKey = "not-the-secret"
        let client = try S3Client(settings: S3Settings(bucket: "custody-any", prefix: ""), environment: environment)
        let store = S3ObjectStore(client: client)
        let bytes = randomBytes(500)
        // Two batches stage the same object: both share one upload, and both hear that it failed.
        let first = try #require(try await store.stage(bytes, as: ObjectName(of: bytes), checkExisting: true))
        let second = try #require(try await store.stage(bytes, as: ObjectName(of: bytes), checkExisting: true))
        let one = await #expect(throws: StorageError.self) { try await store.commit([first]) }
        let two = await #expect(throws: StorageError.self) { try await store.commit([second]) }
        #expect(one?.reason == .notAuthorised && two?.reason == .notAuthorised)
    }

    @Test func manyStagingsOfSharedNamesAreEachCommitted() async throws {
        let store = try await S3TestStore.store("pipeline", prefix: "")
        // More stagings than the pipeline holds at once, some of one name: each is committed exactly once.
        let contents = (0..<60).map { _ in randomBytes(2000) }
        let repeated = randomBytes(2000)
        let staged = try await withThrowingTaskGroup(of: [StagedObject].self) { group in
            for chunk in stride(from: 0, to: contents.count, by: 10) {
                group.addTask {
                    var mine: [StagedObject] = []
                    for bytes in contents[chunk..<chunk + 10] + [repeated] {
                        if let s = try await store.stage(bytes, as: ObjectName(of: bytes), checkExisting: true) {
                            mine.append(s)
                        }
                    }
                    try await store.commit(mine)
                    return mine
                }
            }
            return try await group.reduce(into: []) { $0 += $1 }
        }
        #expect(staged.count == 66)
        let listed = try await store.allObjects()
        #expect(Set(listed.keys) == Set((contents + [repeated]).map { ObjectName(of: $0) }))
    }

    @Test func copyingToTheBucketVerifiesEveryObjectAndResumes() async throws {
        let folder = ScratchFolder("copy")
        let local = try FileObjectStore(root: folder.path + "/objects")
        let contents = (0..<20).map { randomBytes(100 + $0) }
        for bytes in contents { try await local.put(bytes, as: ObjectName(of: bytes)) }
        let objects = contents.map { StoredObject(name: ObjectName(of: $0), size: Int64($0.count)) }
        let store = try await S3TestStore.store("copy", prefix: "m")
        // An interrupted earlier run left some of them in the bucket.
        for bytes in contents.prefix(5) { try await store.put(bytes, as: ObjectName(of: bytes)) }
        let first = try await store.copy(objects, from: local, width: 4)
        #expect(first.uploaded == 15 && first.alreadyThere == 5)
        #expect(first.bytes == contents.dropFirst(5).reduce(0) { $0 + Int64($1.count) })
        let again = try await store.copy(objects, from: local, width: 4)
        #expect(again == ObjectCopyReport(uploaded: 0, alreadyThere: 20, bytes: 0))
        // A local object that does not hash to its name is refused before anything is uploaded for it.
        let forged = randomBytes(300)
        let claimed = ObjectName(of: randomBytes(300))
        try FileManager.default.createDirectory(
            atPath: folder.path + "/objects/" + claimed.hex.prefix(2),
            withIntermediateDirectories: true
        )
        _ = FileManager.default.createFile(atPath: local.path(of: claimed), contents: Data(forged))
        let error = await #expect(throws: StorageError.self) {
            try await store.copy([StoredObject(name: claimed, size: 300)], from: local)
        }
        #expect(error?.reason == .damaged)
        #expect(try await !store.contains(claimed))
    }

    @Test func aBucketThatDoesNotExistIsNamedAsSuch() async throws {
        let client = try S3Client(
            settings: S3Settings(bucket: "custody-absent-\(Encoding.hex(randomBytes(4)))", prefix: "")
        )
        let error = await #expect(throws: StorageError.self) { try await client.checkBucket() }
        #expect(error?.reason == .notFound)
    }

    @Test func wrongCredentialsAreRefusedAsNotAuthorised() async throws {
        var environment = S3Environment.current()
        environment.secretKey = "not-the-secret"
        let client = try S3Client(settings: S3Settings(bucket: "custody-any", prefix: ""), environment: environment)
        let error = await #expect(throws: StorageError.self) { try await client.checkBucket() }
        #expect(error?.reason == .notAuthorised)
        #expect(error.map { !$0.description.contains("not-the-secret") } == true)
    }
}

/// What needs no S3 store: settings, endpoints, credentials and the backend factory.
struct S3SettingsTests {
    @Test(arguments: [
        "s3://", "s3://Bad_Bucket/x", "s3://ok-bucket/../x", "file:///tmp/x", "s3://ab", "s3://ok-bucket/a//b",
    ])
    func aBadObjectsURLIsAUsageError(_ url: String) {
        let error = #expect(throws: StorageError.self) { try S3Settings.parse(url) }
        #expect(error?.reason == .usage)
    }

    @Test func aGoodURLGivesBucketAndPrefix() throws {
        let settings = try S3Settings.parse("s3://evidence-bucket/body/one/")
        #expect(settings.bucket == "evidence-bucket" && settings.prefix == "body/one")
        #expect(settings.url == "s3://evidence-bucket/body/one")
    }

    @Test(arguments: ["ftp://s3.example.org", "https://", "https://s3.example.org/path", "not a url"])
    func anEndpointThatIsNotHTTPIsRefused(_ endpoint: String) {
        var environment = S3Environment()
        environment.endpoint = endpoint
        let error = #expect(throws: StorageError.self) {
            try S3Client(settings: S3Settings(bucket: "bucket", prefix: ""), environment: environment)
        }
        #expect(error?.reason == .usage)
    }

    @Test func noCredentialsIsAUsageErrorBeforeAnythingIsSent() async throws {
        var environment = S3Environment()
        // A port nothing listens on: the error must come before any connection is tried.
        environment.endpoint = "http://127.0.0.1:9"
        let client = try S3Client(settings: S3Settings(bucket: "bucket", prefix: ""), environment: environment)
        let error = await #expect(throws: StorageError.self) { try await client.checkBucket() }
        #expect(error?.reason == .usage)
        #expect(error?.problem.contains("no credentials") == true)
    }

    @Test func theLocationComesFromObjectsJSON() throws {
        let folder = ScratchFolder("location")
        #expect(try ObjectStoreLocation.of(archive: folder.path) == .folder(folder.path + "/objects"))
        let settings = S3Settings(bucket: "a-bucket", prefix: "p")
        let path = ObjectStoreLocation.settingsPath(archive: folder.path)
        _ = FileManager.default.createFile(atPath: path, contents: try JSONEncoder().encode(settings))
        #expect(try ObjectStoreLocation.of(archive: folder.path) == .s3(settings))
        #expect(try ObjectStoreLocation.of(archive: folder.path).open() is S3ObjectStore)
    }

    @Test(arguments: [#"{"backend":"ftp","bucket":"b","prefix":""}"#, "not json", #"{"bucket":"b"}"#])
    func aDamagedObjectsJSONIsRefused(_ text: String) throws {
        let folder = ScratchFolder("damaged")
        _ = FileManager.default.createFile(
            atPath: ObjectStoreLocation.settingsPath(archive: folder.path),
            contents: Data(text.utf8)
        )
        let error = #expect(throws: StorageError.self) { try ObjectStoreLocation.of(archive: folder.path) }
        #expect(error?.reason == .damaged)
    }

    @Test func aFIFOInPlaceOfObjectsJSONIsRefusedWithoutWaiting() throws {
        let folder = ScratchFolder("fifo")
        #expect(mkfifo(ObjectStoreLocation.settingsPath(archive: folder.path), 0o600) == 0)
        let error = #expect(throws: StorageError.self) { try ObjectStoreLocation.of(archive: folder.path) }
        #expect(error?.reason == .notRegularFile)
    }
}

/// Switching an archive's objects to S3: one durable file, the local folder kept aside.
struct ObjectStoreSwitchTests {
    @Test func switchingRecordsTheBucketAndKeepsTheLocalObjects() throws {
        let folder = ScratchFolder("switch")
        _ = try FileObjectStore(root: folder.path + "/objects")
        let settings = S3Settings(bucket: "evidence-bucket", prefix: "body")
        let kept = try ObjectStoreLocation.switchToS3(settings, archive: folder.path)
        #expect(kept == folder.path + "/objects-before-s3")
        #expect(FileManager.default.fileExists(atPath: kept))
        #expect(try ObjectStoreLocation.of(archive: folder.path) == .s3(settings))
        let text = try String(contentsOfFile: ObjectStoreLocation.settingsPath(archive: folder.path), encoding: .utf8)
        #expect(text.hasSuffix("}\n") && text.contains("\"bucket\" : \"evidence-bucket\""))
        var st = stat()
        #expect(stat(ObjectStoreLocation.settingsPath(archive: folder.path), &st) == 0 && st.st_mode & 0o777 == 0o644)
    }

    @Test func aLinkPlantedWhereTheSettingGoesIsReplacedNotWrittenThrough() throws {
        let folder = ScratchFolder("planted")
        let victim = folder.path + "/victim"
        _ = FileManager.default.createFile(atPath: victim, contents: Data("keep me".utf8))
        #expect(symlink(victim, ObjectStoreLocation.settingsPath(archive: folder.path)) == 0)
        try ObjectStoreLocation.record(S3Settings(bucket: "a-bucket", prefix: ""), archive: folder.path)
        #expect(try String(contentsOfFile: victim, encoding: .utf8) == "keep me")
        #expect(try ObjectStoreLocation.of(archive: folder.path) == .s3(S3Settings(bucket: "a-bucket", prefix: "")))
    }
}
