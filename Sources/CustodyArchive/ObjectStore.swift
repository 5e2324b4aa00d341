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
    /// The temporary file: for ``FileObjectStore``, its name inside the object's `<2 hex>` folder.
    let tempPath: String
}

/// Something found in the object store that custody leaves alone and reports: a symbolic link, or a pipe,
/// device or socket, where an object, a shard folder or a temporary file could be. It is never followed,
/// read or removed.
package struct StrayEntry: Sendable, Equatable, CustomStringConvertible {
    /// Its path relative to the store (`objects/`).
    package var path: String
    /// What it is: `symbolic link`, or `pipe, device or socket`.
    package var kind: String

    package var description: String { "objects/\(path) is a \(kind)" }
}

/// Where encrypted objects live. Objects are immutable and named by the hash of their bytes.
///
/// Writes are two-phase so that many objects share one flush: ``stage(_:as:checkExisting:)`` writes a
/// temporary copy, ``commit(_:)`` makes a batch durable and then visible under its names.
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
    /// Links and special files found where objects, shard folders or temporary files could be: never followed
    /// nor removed, reported by `verify` and `gc`.
    func strayEntries() throws -> [StrayEntry]
    /// Removes an object.
    func remove(_ name: ObjectName) throws
    /// Removes a leftover temporary file.
    func removeTemporaryFile(_ name: String) throws
    /// Makes staged objects readable by ``read(_:limit:)`` before they are committed (an import checks what it
    /// received while the store is still flushing it), or no longer (`visible: false`, before commit or discard).
    func expose(_ staged: [StagedObject], visible: Bool)
}

extension ObjectStore {
    /// A store with no folders (S3) has nothing a link could be planted in.
    package func strayEntries() throws -> [StrayEntry] { [] }
}

/// Staged objects made readable before commit, shared by every copy of a store value.
final class StagedOverlay: Sendable {
    let paths = Mutex<[ObjectName: String]>([:])
}

/// An open folder, closed when the last copy of the value that holds it is released.
final class DirectoryHandle: Sendable {
    /// The descriptor (`O_RDONLY | O_DIRECTORY`).
    let fd: Int32

    init(fd: Int32) { self.fd = fd }
    deinit { close(fd) }
}

/// Objects as files: `objects/<first 2 hex>/<64 hex>`, temporary files beside them as `.tmp-<64 hex>.<pid>.<n>`.
///
/// `objects/tmp/` is no longer written; leftovers there (from earlier versions) are still reported and collected.
///
/// No symbolic link inside the store is ever followed: `objects/` itself is opened once with `O_NOFOLLOW` and
/// held open; every shard folder, object and temporary file is reached relative to it, one name at a time,
/// with `O_NOFOLLOW` (`openat`, `fstatat`, `renameat`, `unlinkat`). A link, pipe or device found in the store
/// is refused where it would be used, reported by ``strayEntries()``, and left where it is.
package struct FileObjectStore: ObjectStore {
    /// The `objects/` folder.
    package let root: String
    private let directory: DirectoryHandle
    private let overlay = StagedOverlay()

    /// Opens (and creates if needed) the store at `root`.
    ///
    /// - Throws: ``ArchiveError``: cannot create; bad input when `root` is a symbolic link or not a folder.
    package init(root: String) throws {
        self.root = root
        let code = POSIX.makeDirectories(root)
        guard code == 0 else { throw ArchiveError.writeFailed(root, errno: code) }
        let fd = POSIX.openDirectory(root)
        guard fd >= 0 else {
            let failure = errno
            guard failure == ELOOP || failure == ENOTDIR else { throw ArchiveError.writeFailed(root, errno: failure) }
            throw ArchiveError(
                .badInput,
                "\(root) is \(failure == ELOOP ? "a symbolic link" : "not a folder"); custody never follows links inside the archive",
                fix: "put the objects folder itself there (mount a disk at that path if it must live elsewhere)"
            )
        }
        directory = DirectoryHandle(fd: fd)
    }

    /// The path of an object's file.
    package func path(of name: ObjectName) -> String {
        let prefix = name.hex.prefix(2)
        return "\(root)/\(prefix)/\(name.hex)"
    }

    /// The `<2 hex>` folder an object's name belongs in.
    private func shardName(_ name: ObjectName) -> String { String(name.hex.prefix(2)) }

    /// Opens the folder `shard` (`<2 hex>` or `tmp`) of the store without following a link.
    ///
    /// - Returns: The descriptor, or `nil` when the folder does not exist.
    /// - Throws: ``ArchiveError`` (damaged) when a link or something else than a folder is in its place.
    private func openShard(_ shard: String) throws -> Int32? {
        let fd = POSIX.openDirectory(shard, in: directory.fd)
        if fd >= 0 { return fd }
        let code = errno
        if code == ENOENT { return nil }
        throw shardError(shard, code)
    }

    private func shardError(_ shard: String, _ code: Int32) -> ArchiveError {
        switch code {
        case ELOOP:
            ArchiveError(
                .damaged,
                "objects/\(shard) is a symbolic link; custody never follows links inside the archive",
                fix:
                    "remove the link (someone with write access to the archive folder planted it) and run custody verify"
            )
        case ENOTDIR:
            ArchiveError(.damaged, "objects/\(shard) is not a folder", fix: "move it away and run custody verify")
        default:
            ArchiveError(
                .cannotCreate,
                "cannot open objects/\(shard): \(errnoDescription(code))",
                fix: "check the archive folder"
            )
        }
    }

    /// Calls `body` with the object's shard folder open, or returns `nil` when it does not exist.
    private func withShard<R>(of name: ObjectName, _ body: (Int32) throws -> R) throws -> R? {
        guard let fd = try openShard(shardName(name)) else { return nil }
        defer { close(fd) }
        return try body(fd)
    }

    package func contains(_ name: ObjectName) throws -> Bool {
        try withShard(of: name) { fd in POSIX.lstat(name.hex, in: fd).map { POSIX.isRegular($0.st_mode) } ?? false }
            ?? false
    }

    package func stage(
        _ bytes: UnsafeRawBufferPointer,
        as name: ObjectName,
        checkExisting: Bool = true
    ) throws -> StagedObject? {
        // The temporary file sits beside its final name: the rename stays inside one folder, and parallel
        // writers spread over 256 folders instead of contending for one.
        let shard = shardName(name)
        var shardFD = try openShard(shard)
        if shardFD == nil {
            if mkdirat(directory.fd, shard, 0o700) != 0 && errno != EEXIST {
                throw ArchiveError.writeFailed("cannot create objects/\(shard)", errno: errno)
            }
            shardFD = try openShard(shard)
        }
        guard let shardFD else { throw ArchiveError.writeFailed("cannot create objects/\(shard)", errno: ENOENT) }
        defer { close(shardFD) }
        if checkExisting, let st = POSIX.lstat(name.hex, in: shardFD), POSIX.isRegular(st.st_mode) { return nil }
        let temp = ".tmp-\(name.hex).\(temporarySuffix())"
        var fd: Int32
        repeat {
            fd = openat(shardFD, temp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0o600)
        } while fd < 0 && errno == EINTR
        guard fd >= 0 else { throw ArchiveError.writeFailed("cannot write object \(name)", errno: errno) }
        let code = POSIX.writeAll(fd, bytes)
        // Large objects start writing back now, so the batch's syncfs has less left to wait for.
        if code == 0, bytes.count >= 256 << 10 { _ = CCustodySystem_start_writeback(fd, 0, 0) }
        close(fd)
        guard code == 0 else {
            unlinkat(shardFD, temp, 0)
            throw ArchiveError.writeFailed("cannot write object \(name)", errno: code)
        }
        CrashPoint.hit("object-staged")
        return StagedObject(name: name, tempPath: temp)
    }

    package func commit(_ objects: [StagedObject]) throws {
        guard !objects.isEmpty else { return }
        // One syncfs makes every staged file's data durable before any of them gets its name.
        try syncAll()
        for (shard, batch) in Dictionary(grouping: objects, by: { shardName($0.name) }) {
            guard let fd = try openShard(shard) else {
                throw ArchiveError.writeFailed("cannot store objects in objects/\(shard)", errno: ENOENT)
            }
            defer { close(fd) }
            for object in batch where renameat(fd, object.tempPath, fd, object.name.hex) != 0 {
                throw ArchiveError.writeFailed("cannot store object \(object.name)", errno: errno)
            }
        }
        // A second syncfs makes the renames (directory entries) durable.
        try syncAll()
    }

    private func syncAll() throws {
        let code = POSIX.syncFileSystem(directory.fd)
        guard code == 0 else { throw ArchiveError.writeFailed("cannot flush \(root)", errno: code) }
    }

    package func discard(_ objects: [StagedObject]) {
        for (shard, batch) in Dictionary(grouping: objects, by: { shardName($0.name) }) {
            guard let fd = try? openShard(shard) else { continue }
            for object in batch { unlinkat(fd, object.tempPath, 0) }
            close(fd)
        }
    }

    package func expose(_ staged: [StagedObject], visible: Bool) {
        overlay.paths.withLock { map in
            for object in staged { map[object.name] = visible ? object.tempPath : nil }
        }
    }

    /// Opens an object for reading (its staged file while exposed) with its size; `nil` when it is absent.
    ///
    /// The file is opened with `O_NOFOLLOW | O_NONBLOCK` and must be a regular file: a link or a FIFO planted
    /// under an object's name is refused, and cannot make the read wait.
    private func openForReading(_ name: ObjectName) throws -> (fd: Int32, size: Int64)? {
        let staged = overlay.paths.withLock { $0[name] }
        guard let shardFD = try openShard(shardName(name)) else { return nil }
        defer { close(shardFD) }
        func open(_ entry: String) -> Int32 {
            var fd: Int32
            repeat {
                fd = openat(shardFD, entry, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY | O_CLOEXEC)
            } while fd < 0 && errno == EINTR
            return fd
        }
        var fd = open(staged ?? name.hex)
        // A staged object committed meanwhile has moved to its name.
        if fd < 0, errno == ENOENT, staged != nil { fd = open(name.hex) }
        guard fd >= 0 else {
            if errno == ENOENT { return nil }
            if errno == ELOOP {
                throw ArchiveError(
                    .damaged,
                    "object \(name) is a symbolic link; custody never follows links inside the archive",
                    fix: "remove the link and restore the object from a backup"
                )
            }
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
        guard POSIX.isRegular(st.st_mode) else {
            close(fd)
            throw ArchiveError(
                .damaged,
                "object \(name) is not a regular file",
                fix: "move it away and restore the object from a backup"
            )
        }
        // Reads of a regular file never wait; the flag only mattered for the open.
        _ = fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK)
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
        try withShard(of: name) { fd in
            POSIX.lstat(name.hex, in: fd).flatMap { POSIX.isRegular($0.st_mode) ? Int64($0.st_size) : nil }
        } ?? nil
    }

    /// The shard folders (`<2 hex>`, and `tmp` with `includingTemp`) that are real folders, each opened.
    private func forEachShard(includingTemp: Bool = false, _ body: (String, Int32) throws -> Void) throws {
        for shard in try POSIX.directoryEntries(directory.fd, path: root).sorted()
        where (shard.utf8.count == 2 && Encoding.isLowercaseHex(shard, count: 2)) || (includingTemp && shard == "tmp") {
            // A link or a file in a shard's place is a stray entry (reported there), never followed.
            guard let st = POSIX.lstat(shard, in: directory.fd), POSIX.isDirectory(st.st_mode),
                let fd = try? openShard(shard)
            else { continue }
            defer { close(fd) }
            try body(shard, fd)
        }
    }

    package func forEachObject(_ body: (ObjectName, Int64) throws -> Void) throws {
        try forEachShard { shard, fd in
            for entry in try POSIX.directoryEntries(fd, path: "\(root)/\(shard)") {
                guard let name = ObjectName(hex: entry), entry.hasPrefix(shard) else { continue }
                guard let st = POSIX.lstat(entry, in: fd), POSIX.isRegular(st.st_mode) else { continue }
                try body(name, Int64(st.st_size))
            }
        }
    }

    package func leftoverTemporaryFiles() throws -> [String] {
        var found: [String] = []
        try forEachShard(includingTemp: true) { shard, fd in
            for entry in try POSIX.directoryEntries(fd, path: "\(root)/\(shard)")
            where shard == "tmp" || entry.hasPrefix(".tmp-") {
                guard let st = POSIX.lstat(entry, in: fd), POSIX.isRegular(st.st_mode) else { continue }
                found.append("\(shard)/\(entry)")
            }
        }
        return found.sorted()
    }

    package func strayEntries() throws -> [StrayEntry] {
        func kind(_ st: stat) -> String? {
            if POSIX.isSymlink(st.st_mode) { return "symbolic link" }
            if POSIX.isRegular(st.st_mode) || POSIX.isDirectory(st.st_mode) { return nil }
            return "pipe, device or socket"
        }
        var found: [StrayEntry] = []
        for entry in try POSIX.directoryEntries(directory.fd, path: root).sorted() {
            if let st = POSIX.lstat(entry, in: directory.fd), let kind = kind(st) {
                found.append(StrayEntry(path: entry, kind: kind))
            }
        }
        try forEachShard(includingTemp: true) { shard, fd in
            for entry in try POSIX.directoryEntries(fd, path: "\(root)/\(shard)").sorted() {
                if let st = POSIX.lstat(entry, in: fd), let kind = kind(st) {
                    found.append(StrayEntry(path: "\(shard)/\(entry)", kind: kind))
                }
            }
        }
        return found
    }

    package func remove(_ name: ObjectName) throws {
        try withShard(of: name) { fd in
            guard let st = POSIX.lstat(name.hex, in: fd) else { return }
            // Only the object itself: a link found under its name is left alone (and reported as stray).
            guard POSIX.isRegular(st.st_mode) else { return }
            guard unlinkat(fd, name.hex, 0) == 0 || errno == ENOENT else {
                throw ArchiveError.writeFailed("cannot remove object \(name)", errno: errno)
            }
        }
    }

    package func removeTemporaryFile(_ name: String) throws {
        // Only the two shapes leftoverTemporaryFiles() returns: "tmp/<file>" and "<2 hex>/.tmp-<file>".
        let parts = name.split(separator: "/", omittingEmptySubsequences: false).map(String.init)
        guard parts.count == 2, !parts[1].contains(".."), !parts[1].isEmpty,
            parts[0] == "tmp" || (Encoding.isLowercaseHex(parts[0], count: 2) && parts[1].hasPrefix(".tmp-"))
        else { return }
        guard let fd = try openShard(parts[0]) else { return }
        defer { close(fd) }
        guard let st = POSIX.lstat(parts[1], in: fd), POSIX.isRegular(st.st_mode) else { return }
        guard unlinkat(fd, parts[1], 0) == 0 || errno == ENOENT else {
            throw ArchiveError.writeFailed("cannot remove temporary file \(name)", errno: errno)
        }
    }
}

/// A process-unique suffix for temporary file names, `<pid>.<n>` (pid and a counter; no randomness needed).
private let temporaryCounter = Atomic<UInt64>(0)

func temporarySuffix() -> String {
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
    return POSIX.directoryEntries(dir).compactMap { String(validating: $0, as: UTF8.self) }
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
