import CCustodySystem
import CustodyCrypto
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// The name of a stored object: lowercase hex BLAKE2b-256 of its exact stored bytes.
package struct ObjectName: Hashable, Sendable, Comparable, CustomStringConvertible, Codable {
    /// 64 lowercase hex characters.
    package let hex: String

    /// Validates `hex` as an object name.
    package init?(hex: String) {
        guard Encoding.isLowercaseHex(hex, count: 64) else { return nil }
        self.hex = hex
    }

    /// The name of `bytes` (their BLAKE2b-256).
    package init(of bytes: UnsafeRawBufferPointer) { hex = Encoding.hex(BLAKE2b.hash(bytes)) }

    /// The name of `bytes` (their BLAKE2b-256).
    package init(of bytes: [UInt8]) { self = bytes.withUnsafeBytes { ObjectName(of: $0) } }

    /// The raw 32 bytes.
    package var bytes: [UInt8] { Encoding.bytes(hex: hex) ?? [] }

    package var description: String { hex }
    package static func < (lhs: ObjectName, rhs: ObjectName) -> Bool { lhs.hex < rhs.hex }

    package init(from decoder: any Decoder) throws {
        let text = try decoder.singleValueContainer().decode(String.self)
        guard let name = ObjectName(hex: text) else {
            throw DecodingError.dataCorrupted(
                .init(codingPath: decoder.codingPath, debugDescription: "not an object name")
            )
        }
        self = name
    }

    package func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        try container.encode(hex)
    }
}

/// An object written to temporary storage, not yet visible under its name.
package struct StagedObject: Sendable {
    /// The object's final name.
    package let name: ObjectName
    /// The temporary file.
    let tempPath: String
}

/// Where encrypted objects live. Objects are immutable and named by the hash of their bytes.
///
/// Writes are two-phase so that many objects share one flush: ``stage(_:as:)`` writes a temporary copy,
/// ``commit(_:)`` makes a batch durable and then visible under its names.
package protocol ObjectStore: Sendable {
    /// Whether an object of that name is present.
    func contains(_ name: ObjectName) throws -> Bool
    /// Writes `bytes` to temporary storage; `nil` when the object is already present (deduplicated).
    ///
    /// - Parameters:
    ///   - bytes: The object's bytes.
    ///   - name: Their BLAKE2b-256 name.
    ///   - checkExisting: `false` for objects that cannot already exist (random-keyed sealed parts).
    /// - Returns: The staged object, or `nil` when it is already stored.
    /// - Throws: ``ArchiveError`` when the write fails (for example a full disk).
    func stage(_ bytes: UnsafeRawBufferPointer, as name: ObjectName, checkExisting: Bool) throws -> StagedObject?
    /// Makes `objects` durable, then visible under their names.
    func commit(_ objects: [StagedObject]) throws
    /// Drops staged objects that will not be committed.
    func discard(_ objects: [StagedObject])
    /// Reads an object, refusing one larger than `limit` bytes.
    func read(_ name: ObjectName, limit: Int) throws -> [UInt8]?
    /// Reads bytes `range` of an object (fewer when it ends sooner), or `nil` when it is absent.
    func read(_ name: ObjectName, range: ClosedRange<Int64>) throws -> [UInt8]?
    /// The stored size of an object, or `nil` when it is absent.
    func size(of name: ObjectName) throws -> Int64?
    /// Calls `body` for every stored object.
    func forEachObject(_ body: (ObjectName, Int64) throws -> Void) throws
    /// Temporary files left behind by interrupted writes, as paths relative to the store.
    func leftoverTemporaryFiles() throws -> [String]
    /// Removes an object.
    func remove(_ name: ObjectName) throws
    /// Removes a leftover temporary file.
    func removeTemporaryFile(_ name: String) throws
    /// Makes staged objects readable by ``read(_:limit:)`` before they are committed (an import checks what it
    /// received while the store is still flushing it), or no longer (`visible: false`, before commit or discard).
    func expose(_ staged: [StagedObject], visible: Bool)
}

/// Staged objects made readable before commit, shared by every copy of a store value.
final class StagedOverlay: Sendable {
    let paths = Mutex<[ObjectName: String]>([:])
}

/// Objects as files: `objects/<first 2 hex>/<64 hex>`, temporary files beside them as `.tmp-<64 hex>.<pid>.<n>`.
///
/// `objects/tmp/` is no longer written; leftovers there (from earlier versions) are still reported and collected.
package struct FileObjectStore: ObjectStore {
    /// The `objects/` folder.
    package let root: String
    private var tempRoot: String { root + "/tmp" }
    private let overlay = StagedOverlay()

    /// Opens (and creates if needed) the store at `root`.
    package init(root: String) throws {
        self.root = root
        let code = POSIX.makeDirectories(root)
        guard code == 0 else { throw ArchiveError.writeFailed(root, errno: code) }
    }

    /// The path of an object's file.
    package func path(of name: ObjectName) -> String {
        let prefix = name.hex.prefix(2)
        return "\(root)/\(prefix)/\(name.hex)"
    }

    package func contains(_ name: ObjectName) throws -> Bool {
        access(path(of: name), F_OK) == 0
    }

    package func stage(
        _ bytes: UnsafeRawBufferPointer,
        as name: ObjectName,
        checkExisting: Bool = true
    ) throws -> StagedObject? {
        if checkExisting, try contains(name) { return nil }
        // The temporary file sits beside its final name: the rename stays inside one folder, and parallel
        // writers spread over 256 folders instead of contending for one.
        let directory = "\(root)/\(name.hex.prefix(2))"
        let temp = "\(directory)/.tmp-\(name.hex).\(temporarySuffix())"
        var fd = POSIX.open(temp, O_WRONLY | O_CREAT | O_EXCL, 0o600)
        if fd < 0 && errno == ENOENT {
            if mkdir(directory, 0o700) != 0 && errno != EEXIST {
                throw ArchiveError.writeFailed("cannot create \(directory)", errno: errno)
            }
            fd = POSIX.open(temp, O_WRONLY | O_CREAT | O_EXCL, 0o600)
        }
        guard fd >= 0 else { throw ArchiveError.writeFailed("cannot write object \(name)", errno: errno) }
        let code = POSIX.writeAll(fd, bytes)
        // Large objects start writing back now, so the batch's syncfs has less left to wait for.
        if code == 0, bytes.count >= 256 << 10 { _ = CCustodySystem_start_writeback(fd, 0, 0) }
        close(fd)
        guard code == 0 else {
            unlink(temp)
            throw ArchiveError.writeFailed("cannot write object \(name)", errno: code)
        }
        CrashPoint.hit("object-staged")
        return StagedObject(name: name, tempPath: temp)
    }

    package func commit(_ objects: [StagedObject]) throws {
        guard !objects.isEmpty else { return }
        // One syncfs makes every staged file's data durable before any of them gets its name.
        try syncAll()
        for object in objects {
            guard rename(object.tempPath, path(of: object.name)) == 0 else {
                throw ArchiveError.writeFailed("cannot store object \(object.name)", errno: errno)
            }
        }
        // A second syncfs makes the renames (directory entries) durable.
        try syncAll()
    }

    private func syncAll() throws {
        let fd = POSIX.open(root, O_RDONLY | O_DIRECTORY)
        guard fd >= 0 else { throw ArchiveError.writeFailed("cannot open \(root)", errno: errno) }
        defer { close(fd) }
        let code = POSIX.syncFileSystem(fd)
        guard code == 0 else { throw ArchiveError.writeFailed("cannot flush \(root)", errno: code) }
    }

    package func discard(_ objects: [StagedObject]) {
        for object in objects { unlink(object.tempPath) }
    }

    package func expose(_ staged: [StagedObject], visible: Bool) {
        overlay.paths.withLock { map in
            for object in staged { map[object.name] = visible ? object.tempPath : nil }
        }
    }

    /// Opens an object for reading (its staged file while exposed) with its size; `nil` when it is absent.
    private func openForReading(_ name: ObjectName) throws -> (fd: Int32, size: Int64)? {
        let staged = overlay.paths.withLock { $0[name] }
        var fd = POSIX.open(staged ?? path(of: name), O_RDONLY)
        // A staged object committed meanwhile has moved to its name.
        if fd < 0, errno == ENOENT, staged != nil { fd = POSIX.open(path(of: name), O_RDONLY) }
        guard fd >= 0 else {
            if errno == ENOENT { return nil }
            throw ArchiveError(
                .cannotCreate,
                "cannot read object \(name): \(errnoDescription(errno))",
                fix: "check the disk"
            )
        }
        var st = stat()
        guard fstat(fd, &st) == 0 else {
            close(fd)
            throw ArchiveError(.cannotCreate, "cannot stat object \(name)", fix: "check the disk")
        }
        return (fd, Int64(st.st_size))
    }

    package func read(_ name: ObjectName, limit: Int) throws -> [UInt8]? {
        guard let (fd, size) = try openForReading(name) else { return nil }
        defer { close(fd) }
        guard size <= limit else {
            throw ArchiveError(.damaged, "object \(name) is larger than any valid object", fix: "run custody verify")
        }
        var bytes = [UInt8](repeating: 0, count: Int(size))
        let n = bytes.withUnsafeMutableBytes { POSIX.readFull(fd, $0) }
        guard n == bytes.count else {
            throw ArchiveError(.damaged, "object \(name) could not be read in full", fix: "run custody verify")
        }
        return bytes
    }

    package func read(_ name: ObjectName, range: ClosedRange<Int64>) throws -> [UInt8]? {
        guard let (fd, size) = try openForReading(name) else { return nil }
        defer { close(fd) }
        let end = min(range.upperBound + 1, size)
        guard range.lowerBound < end else { return [] }
        var bytes = [UInt8](repeating: 0, count: Int(end - range.lowerBound))
        let n = bytes.withUnsafeMutableBytes { buffer in
            Glibc.pread(fd, buffer.baseAddress, buffer.count, off_t(range.lowerBound))
        }
        guard n == bytes.count else {
            throw ArchiveError(.damaged, "object \(name) could not be read", fix: "run custody verify")
        }
        return bytes
    }

    package func size(of name: ObjectName) throws -> Int64? {
        guard let st = POSIX.statPath(path(of: name)) else { return nil }
        return Int64(st.st_size)
    }

    package func forEachObject(_ body: (ObjectName, Int64) throws -> Void) throws {
        for shard in try listDirectory(root) where shard.utf8.count == 2 && Encoding.isLowercaseHex(shard, count: 2) {
            let shardPath = "\(root)/\(shard)"
            for entry in try listDirectory(shardPath) {
                guard let name = ObjectName(hex: entry), entry.hasPrefix(shard) else { continue }
                guard let st = POSIX.lstatPath("\(shardPath)/\(entry)"), POSIX.isRegular(st.st_mode) else { continue }
                try body(name, Int64(st.st_size))
            }
        }
    }

    package func leftoverTemporaryFiles() throws -> [String] {
        var found = try listDirectory(tempRoot).map { "tmp/\($0)" }
        for shard in try listDirectory(root) where Encoding.isLowercaseHex(shard, count: 2) {
            found += try listDirectory("\(root)/\(shard)").filter { $0.hasPrefix(".tmp-") }.map { "\(shard)/\($0)" }
        }
        return found.sorted()
    }

    package func remove(_ name: ObjectName) throws {
        guard unlink(path(of: name)) == 0 || errno == ENOENT else {
            throw ArchiveError.writeFailed("cannot remove object \(name)", errno: errno)
        }
    }

    package func removeTemporaryFile(_ name: String) throws {
        // Only the two shapes leftoverTemporaryFiles() returns: "tmp/<file>" and "<2 hex>/.tmp-<file>".
        let parts = name.split(separator: "/", omittingEmptySubsequences: false)
        guard parts.count == 2, !parts[1].contains(".."), !parts[1].isEmpty,
            parts[0] == "tmp" || (Encoding.isLowercaseHex(parts[0], count: 2) && parts[1].hasPrefix(".tmp-"))
        else { return }
        guard unlink("\(root)/\(name)") == 0 || errno == ENOENT else {
            throw ArchiveError.writeFailed("cannot remove temporary file \(name)", errno: errno)
        }
    }
}

/// A process-unique suffix for temporary file names (pid and a counter; no randomness needed).
private let temporaryCounter = Atomic<UInt64>(0)

private func temporarySuffix() -> String {
    let n = temporaryCounter.wrappingAdd(1, ordering: .relaxed).newValue
    return "\(getpid()).\(n)"
}

/// The names in a folder (without `.` and `..`); names that are not UTF-8 are skipped.
func listDirectory(_ path: String) throws -> [String] {
    guard let dir = opendir(path) else {
        if errno == ENOENT { return [] }
        throw ArchiveError(
            .cannotCreate,
            "cannot list \(path): \(errnoDescription(errno))",
            fix: "check the archive folder"
        )
    }
    defer { closedir(dir) }
    var names: [String] = []
    while let entry = readdir(dir) {
        let name = withUnsafeBytes(of: entry.pointee.d_name) { raw in
            let bytes = raw.prefix { $0 != 0 }
            return String(validating: bytes, as: UTF8.self)
        }
        guard let name, name != ".", name != ".." else { continue }
        names.append(name)
    }
    return names
}

/// Deterministic kill points for crash-safety tests.
///
/// When the environment variable `CUSTODY_TEST_CRASH_AT` names a point, the process kills itself with
/// SIGKILL on reaching it. Documented in Docs/FORMAT.md ("Crash-safety test hooks"); it grants nothing an
/// attacker with the power to set the environment does not already have.
package enum CrashPoint {
    private static let target: String? = getenv("CUSTODY_TEST_CRASH_AT").map { String(cString: $0) }

    /// Kills the process if `point` is the configured crash point.
    package static func hit(_ point: String) {
        if let target, target == point { kill(getpid(), SIGKILL) }
    }

    /// Whether `point` is the configured crash point.
    static func isArmed(_ point: String) -> Bool { target == point }
}
