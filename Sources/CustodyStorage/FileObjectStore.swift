import CCustodySystem
import CustodyCrypto
import NIOCore
import NIOPosix
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// Objects as files: `objects/<first 2 hex>/<64 hex>`, temporary files beside them as `.tmp-<64 hex>.<pid>.<n>`.
///
/// `objects/tmp/` is no longer written; leftovers there (from earlier versions) are still reported and collected.
///
/// No symbolic link inside the store is ever followed: `objects/` itself is opened once with `O_NOFOLLOW` and
/// held open; every shard folder, object and temporary file is reached relative to it, one name at a time,
/// with `O_NOFOLLOW` (`openat`, `fstatat`, `renameat`, `unlinkat`). A link, pipe or device found in the store
/// is refused where it would be used, reported by ``maintenanceReport()``, and left where it is.
///
/// Durable before visible: ``commit(_:)`` flushes the filesystem (`syncfs`, once for the whole batch) before
/// any staged file is renamed to its name, and again after the renames.
///
/// Where the work runs: every method that touches the disk runs its system calls on the store's
/// `NIOThreadPool` (`NIOThreadPool.singleton` unless another is given), never on a task of the Swift
/// concurrency pool, because any of them can wait on the disk for long (a `syncfs` for seconds, an `open` on
/// a busy or network filesystem). Only bookkeeping in memory (which staged file holds which object) runs
/// inline. ``init(root:threadPool:)`` is the exception: two system calls, once, when an archive is opened.
package struct FileObjectStore: ObjectStore {
    /// The `objects/` folder.
    package let root: String
    private let directory: DirectoryHandle
    private let overlay = StagedOverlay()
    private let threadPool: NIOThreadPool

    /// Reads of a local disk: about as many as there are processors to use what they return.
    package var readConcurrency: Int { max(1, System.coreCount) }

    /// A local read costs no round trip: reading ahead would only hold memory.
    package var prefersBatchedReads: Bool { false }

    /// Opens (and creates if needed) the store at `root`.
    ///
    /// Runs inline (a `mkdir` per missing folder and one `open`, once per command), before any concurrent work.
    ///
    /// - Parameters:
    ///   - root: The `objects/` folder.
    ///   - threadPool: Where the store's blocking system calls run.
    /// - Throws: ``StorageError``: cannot create; bad input when `root` is a symbolic link or not a folder.
    package init(root: String, threadPool: NIOThreadPool = .singleton) throws(StorageError) {
        self.root = root
        self.threadPool = threadPool
        let code = POSIX.makeDirectories(root)
        guard code == 0 else { throw StorageError.writeFailed(root, errno: code) }
        let fd = POSIX.openDirectory(root)
        guard fd >= 0 else {
            let failure = errno
            guard failure == ELOOP || failure == ENOTDIR else { throw StorageError.writeFailed(root, errno: failure) }
            throw StorageError(
                .badInput,
                "\(root) is \(failure == ELOOP ? "a symbolic link" : "not a folder"); custody never follows links inside the archive",
                fix: "put the objects folder itself there (mount a disk at that path if it must live elsewhere)"
            )
        }
        directory = DirectoryHandle(fd: fd)
    }

    /// The path of an object's file.
    package func path(of name: ObjectName) -> String { "\(root)/\(shardName(name))/\(name.hex)" }

    /// Runs blocking file work on the thread pool.
    ///
    /// - Throws: What `body` throws; ``StorageError`` (temporary) when the pool has stopped;
    ///   `CancellationError` when the task was cancelled before the work started (nothing was done then).
    private func blocking<T: Sendable>(_ body: @escaping @Sendable () throws -> T) async throws -> T {
        do {
            return try await threadPool.runIfActive(body)
        } catch is CancellationError where !Task.isCancelled {
            // NIOThreadPool refuses work once it is shut down by cancelling it, whether or not the task was.
            throw StorageError(
                .temporary,
                "the object store at \(root) is closed (its thread pool has stopped)",
                fix: "run the command again"
            )
        }
    }

    // MARK: Writing

    package func stage(_ bytes: [UInt8], as name: ObjectName, checkExisting: Bool) async throws -> StagedObject? {
        let staged = StagedObject(name: name)
        let temp = Self.temporaryName(of: staged)
        let written = try await blocking { () throws -> Bool in
            try writeTemporary(bytes, as: name, temp: temp, checkExisting: checkExisting)
        }
        guard written else { return nil }
        CrashPoint.hit("object-staged")
        overlay.add(staged)
        return staged
    }

    /// Stages every write in one piece of blocking work (one hop to the thread pool for a small item's objects).
    package func stage(_ writes: [ObjectWrite]) async throws -> [StagedObject?] {
        let stagings = writes.map { StagedObject(name: $0.name) }
        let written = try await blocking { () throws -> [Bool] in
            var written: [Bool] = []
            do {
                for (write, staged) in zip(writes, stagings) {
                    written.append(
                        try writeTemporary(
                            write.bytes,
                            as: write.name,
                            temp: Self.temporaryName(of: staged),
                            checkExisting: write.checkExisting
                        )
                    )
                }
            } catch {
                // The caller gets no staging for any of them: none of the files written stays behind.
                for (staged, wrote) in zip(stagings, written) where wrote {
                    guard let fd = try? openShard(shardName(staged.name)) else { continue }
                    unlinkat(fd, Self.temporaryName(of: staged), 0)
                    close(fd)
                }
                throw error
            }
            return written
        }
        var result: [StagedObject?] = []
        for (staged, wrote) in zip(stagings, written) {
            guard wrote else {
                result.append(nil)
                continue
            }
            CrashPoint.hit("object-staged")
            overlay.add(staged)
            result.append(staged)
        }
        return result
    }

    /// Writes `bytes` to a new temporary file `temp` in the object's shard folder (creating the folder).
    ///
    /// - Returns: `false` when the object is already stored and `checkExisting` asked.
    private func writeTemporary(
        _ bytes: [UInt8],
        as name: ObjectName,
        temp: String,
        checkExisting: Bool
    ) throws(StorageError) -> Bool {
        // The temporary file sits beside its final name: the rename stays inside one folder, and parallel
        // writers spread over 256 folders instead of contending for one.
        let shard = shardName(name)
        var shardFD = try openShard(shard)
        if shardFD == nil {
            if mkdirat(directory.fd, shard, 0o700) != 0 && errno != EEXIST {
                throw StorageError.writeFailed("cannot create objects/\(shard)", errno: errno)
            }
            shardFD = try openShard(shard)
        }
        guard let shardFD else { throw StorageError.writeFailed("cannot create objects/\(shard)", errno: ENOENT) }
        defer { close(shardFD) }
        if checkExisting, let st = POSIX.lstat(name.hex, in: shardFD), POSIX.isRegular(st.st_mode) { return false }
        func create() -> Int32 {
            var fd: Int32
            repeat {
                fd = openat(shardFD, temp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0o600)
            } while fd < 0 && errno == EINTR
            return fd
        }
        var fd = create()
        if fd < 0 && errno == EEXIST {
            // Left by an earlier process that had the same pid: unlinkat removes the entry, never a link's target.
            unlinkat(shardFD, temp, 0)
            fd = create()
        }
        guard fd >= 0 else { throw StorageError.writeFailed("cannot write object \(name)", errno: errno) }
        let code = bytes.withUnsafeBytes { POSIX.writeAll(fd, $0) }
        // Large objects start writing back now, so the batch's syncfs has less left to wait for.
        if code == 0, bytes.count >= 256 << 10 { _ = CCustodySystem_start_writeback(fd, 0, 0) }
        close(fd)
        guard code == 0 else {
            unlinkat(shardFD, temp, 0)
            throw StorageError.writeFailed("cannot write object \(name)", errno: code)
        }
        return true
    }

    package func commit(_ objects: [StagedObject]) async throws {
        guard !objects.isEmpty else { return }
        try await blocking { () throws -> Void in try renameIntoPlace(objects) }
        overlay.remove(objects)
    }

    /// Flushes, renames every staged file to its object's name, and flushes again.
    private func renameIntoPlace(_ objects: [StagedObject]) throws(StorageError) {
        // One syncfs makes every staged file's data durable before any of them gets its name.
        try syncAll()
        for (shard, batch) in Dictionary(grouping: objects, by: { shardName($0.name) }) {
            guard let fd = try openShard(shard) else {
                throw StorageError.writeFailed("cannot store objects in objects/\(shard)", errno: ENOENT)
            }
            defer { close(fd) }
            for object in batch where renameat(fd, Self.temporaryName(of: object), fd, object.name.hex) != 0 {
                throw StorageError.writeFailed("cannot store object \(object.name)", errno: errno)
            }
        }
        // A second syncfs makes the renames (directory entries) durable.
        try syncAll()
    }

    private func syncAll() throws(StorageError) {
        let code = POSIX.syncFileSystem(directory.fd)
        guard code == 0 else { throw StorageError.writeFailed("cannot flush \(root)", errno: code) }
    }

    package func discard(_ objects: [StagedObject]) async {
        guard !objects.isEmpty else { return }
        overlay.remove(objects)
        // A discard that cannot run (the pool is shutting down) leaves temporary files: leftovers for gc.
        _ = try? await blocking {
            for (shard, batch) in Dictionary(grouping: objects, by: { shardName($0.name) }) {
                guard let fd = try? openShard(shard) else { continue }
                for object in batch { unlinkat(fd, Self.temporaryName(of: object), 0) }
                close(fd)
            }
        }
    }

    /// The temporary file of a staged object, inside its shard folder: `.tmp-<64 hex>.<pid>.<ticket>`.
    static func temporaryName(of staged: StagedObject) -> String {
        ".tmp-\(staged.name.hex).\(processID).\(staged.ticket)"
    }

    private static let processID = getpid()

    // MARK: Reading

    package func contains(_ name: ObjectName) async throws -> Bool {
        try await blocking { () throws -> Bool in
            try withShard(of: name) { fd in POSIX.lstat(name.hex, in: fd).map { POSIX.isRegular($0.st_mode) } ?? false }
                ?? false
        }
    }

    package func read(_ name: ObjectName, limit: Int) async throws -> [UInt8]? {
        let staged = overlay.latest(name).map(Self.temporaryName(of:))
        return try await blocking { () throws -> [UInt8]? in
            guard let (fd, size) = try openForReading(name, staged: staged) else { return nil }
            defer { close(fd) }
            guard size <= limit else {
                throw StorageError(
                    .damaged,
                    "object \(name) is larger than any valid object",
                    fix: "run custody verify"
                )
            }
            var bytes = [UInt8](repeating: 0, count: Int(size))
            let n = bytes.withUnsafeMutableBytes { POSIX.readFull(fd, $0) }
            guard n == bytes.count else {
                throw StorageError(.damaged, "object \(name) could not be read in full", fix: "run custody verify")
            }
            return bytes
        }
    }

    package func read(_ name: ObjectName, range: ClosedRange<Int64>) async throws -> [UInt8]? {
        let staged = overlay.latest(name).map(Self.temporaryName(of:))
        return try await blocking { () throws -> [UInt8]? in
            guard let (fd, size) = try openForReading(name, staged: staged) else { return nil }
            defer { close(fd) }
            let end = min(range.upperBound == .max ? .max : range.upperBound + 1, size)
            guard range.lowerBound >= 0, range.lowerBound < end else { return [] }
            var bytes = [UInt8](repeating: 0, count: Int(end - range.lowerBound))
            let n = bytes.withUnsafeMutableBytes { POSIX.preadFull(fd, $0, at: range.lowerBound) }
            guard n == bytes.count else {
                throw StorageError(.damaged, "object \(name) could not be read", fix: "run custody verify")
            }
            return bytes
        }
    }

    package func size(of name: ObjectName) async throws -> Int64? {
        try await blocking { () throws -> Int64? in
            try withShard(of: name) { fd in
                POSIX.lstat(name.hex, in: fd).flatMap { POSIX.isRegular($0.st_mode) ? Int64($0.st_size) : nil }
            } ?? nil
        }
    }

    /// Opens an object for reading (its staged file `staged`, when given and still there) with its size;
    /// `nil` when it is absent.
    ///
    /// The file is opened with `O_NOFOLLOW | O_NONBLOCK` and must be a regular file: a link or a FIFO planted
    /// under an object's name is refused, and cannot make the read wait.
    private func openForReading(_ name: ObjectName, staged: String?) throws(StorageError) -> (fd: Int32, size: Int64)? {
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
            let code = errno
            if code == ENOENT { return nil }
            if code == ELOOP {
                throw StorageError(
                    .damaged,
                    "object \(name) is a symbolic link; custody never follows links inside the archive",
                    fix: "remove the link and restore the object from a backup"
                )
            }
            throw StorageError(
                .cannotCreate,
                "cannot read object \(name): \(errnoDescription(code))",
                fix: "check the disk"
            )
        }
        var st = stat()
        guard fstat(fd, &st) == 0 else {
            close(fd)
            throw StorageError(.cannotCreate, "cannot stat object \(name)", fix: "check the disk")
        }
        guard POSIX.isRegular(st.st_mode) else {
            close(fd)
            throw StorageError(
                .damaged,
                "object \(name) is not a regular file",
                fix: "move it away and restore the object from a backup"
            )
        }
        // Reads of a regular file never wait; the flag only mattered for the open.
        _ = fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK)
        return (fd, Int64(st.st_size))
    }

    // MARK: Listing and maintenance

    /// One page per shard folder that holds objects; the cursor is the number (0–255) of the next shard.
    package func objects() -> ObjectListing {
        ObjectListing { cursor in
            let first = cursor.flatMap { Int($0) } ?? 0
            return try await blocking { () throws -> ObjectListing.Page in
                var shard = first
                while shard < 256 {
                    let found = try objects(inShard: Self.shardName(number: shard))
                    shard += 1
                    if !found.isEmpty { return .init(objects: found, next: shard < 256 ? String(shard) : nil) }
                }
                return .init(objects: [], next: nil)
            }
        }
    }

    /// The objects in one shard folder; none when it is absent or not a real folder (a link in its place
    /// is a stray entry, reported by the maintenance report, never followed).
    private func objects(inShard shard: String) throws(StorageError) -> [StoredObject] {
        guard let st = POSIX.lstat(shard, in: directory.fd), POSIX.isDirectory(st.st_mode),
            let fd = try? openShard(shard)
        else { return [] }
        defer { close(fd) }
        var found: [StoredObject] = []
        for entry in try POSIX.directoryEntries(fd, path: "\(root)/\(shard)") {
            guard let name = ObjectName(hex: entry), entry.hasPrefix(shard) else { continue }
            guard let st = POSIX.lstat(entry, in: fd), POSIX.isRegular(st.st_mode) else { continue }
            found.append(StoredObject(name: name, size: Int64(st.st_size)))
        }
        return found
    }

    package func remove(_ name: ObjectName) async throws {
        try await blocking { () throws -> Void in
            try withShard(of: name) { fd throws(StorageError) in
                guard let st = POSIX.lstat(name.hex, in: fd) else { return }
                // Only the object itself: a link found under its name is left alone (and reported as stray).
                guard POSIX.isRegular(st.st_mode) else { return }
                guard unlinkat(fd, name.hex, 0) == 0 || errno == ENOENT else {
                    throw StorageError.writeFailed("cannot remove object \(name)", errno: errno)
                }
            }
        }
    }

    /// Leftovers are temporary files (`<2 hex>/.tmp-…`, and anything in the old `tmp/`); strays are links,
    /// pipes, devices and sockets in `objects/`, a shard folder or `tmp/`.
    package func maintenanceReport() async throws -> MaintenanceReport {
        try await blocking { () throws -> MaintenanceReport in
            MaintenanceReport(leftovers: try leftovers(), strays: try strays())
        }
    }

    private func leftovers() throws(StorageError) -> [Leftover] {
        var found: [Leftover] = []
        try forEachShard(includingTemp: true) { shard, fd throws(StorageError) in
            for entry in try POSIX.directoryEntries(fd, path: "\(root)/\(shard)")
            where shard == "tmp" || entry.hasPrefix(".tmp-") {
                guard let st = POSIX.lstat(entry, in: fd), POSIX.isRegular(st.st_mode) else { continue }
                found.append(Leftover(id: "\(shard)/\(entry)"))
            }
        }
        return found.sorted()
    }

    private func strays() throws(StorageError) -> [StrayEntry] {
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
        try forEachShard(includingTemp: true) { shard, fd throws(StorageError) in
            for entry in try POSIX.directoryEntries(fd, path: "\(root)/\(shard)").sorted() {
                if let st = POSIX.lstat(entry, in: fd), let kind = kind(st) {
                    found.append(StrayEntry(path: "\(shard)/\(entry)", kind: kind))
                }
            }
        }
        return found
    }

    package func removeLeftover(_ leftover: Leftover) async throws {
        // Only the two shapes leftovers() returns: "tmp/<file>" and "<2 hex>/.tmp-<file>".
        let parts = leftover.id.split(separator: "/", omittingEmptySubsequences: false).map(String.init)
        guard parts.count == 2, !parts[1].contains(".."), !parts[1].isEmpty,
            parts[0] == "tmp" || (Encoding.isLowercaseHex(parts[0], count: 2) && parts[1].hasPrefix(".tmp-"))
        else { return }
        try await blocking { () throws -> Void in
            guard let fd = try openShard(parts[0]) else { return }
            defer { close(fd) }
            guard let st = POSIX.lstat(parts[1], in: fd), POSIX.isRegular(st.st_mode) else { return }
            guard unlinkat(fd, parts[1], 0) == 0 || errno == ENOENT else {
                throw StorageError.writeFailed("cannot remove temporary file \(leftover.id)", errno: errno)
            }
        }
    }

    // MARK: Shard folders

    /// The `<2 hex>` folder an object's name belongs in.
    private func shardName(_ name: ObjectName) -> String { String(name.hex.prefix(2)) }

    /// The name of shard folder `number` (0–255): two lowercase hex digits.
    private static func shardName(number: Int) -> String {
        let digits = Array("0123456789abcdef")
        return String([digits[number >> 4], digits[number & 15]])
    }

    /// Opens the folder `shard` (`<2 hex>` or `tmp`) of the store without following a link.
    ///
    /// - Returns: The descriptor, or `nil` when the folder does not exist.
    /// - Throws: ``StorageError`` (damaged) when a link or something else than a folder is in its place.
    private func openShard(_ shard: String) throws(StorageError) -> Int32? {
        let fd = POSIX.openDirectory(shard, in: directory.fd)
        if fd >= 0 { return fd }
        let code = errno
        if code == ENOENT { return nil }
        throw shardError(shard, code)
    }

    private func shardError(_ shard: String, _ code: Int32) -> StorageError {
        switch code {
        case ELOOP:
            StorageError(
                .damaged,
                "objects/\(shard) is a symbolic link; custody never follows links inside the archive",
                fix:
                    "remove the link (someone with write access to the archive folder planted it) and run custody verify"
            )
        case ENOTDIR:
            StorageError(.damaged, "objects/\(shard) is not a folder", fix: "move it away and run custody verify")
        default:
            StorageError(
                .cannotCreate,
                "cannot open objects/\(shard): \(errnoDescription(code))",
                fix: "check the archive folder"
            )
        }
    }

    /// Calls `body` with the object's shard folder open, or returns `nil` when it does not exist.
    private func withShard<R>(
        of name: ObjectName,
        _ body: (Int32) throws(StorageError) -> R
    ) throws(StorageError) -> R? {
        guard let fd = try openShard(shardName(name)) else { return nil }
        defer { close(fd) }
        return try body(fd)
    }

    /// The shard folders (`<2 hex>`, and `tmp` with `includingTemp`) that are real folders, each opened.
    private func forEachShard(
        includingTemp: Bool = false,
        _ body: (String, Int32) throws(StorageError) -> Void
    ) throws(StorageError) {
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
}

/// Staged objects, readable through the store before they are committed, shared by every copy of a store
/// value: for each name, its stagings still in flight (the latest is read).
final class StagedOverlay: Sendable {
    private let tickets = Mutex<[ObjectName: [StagedObject]]>([:])

    func add(_ staged: StagedObject) {
        tickets.withLock { $0[staged.name, default: []].append(staged) }
    }

    func remove(_ objects: [StagedObject]) {
        tickets.withLock { map in
            for object in objects {
                map[object.name]?.removeAll { $0 == object }
                if map[object.name]?.isEmpty == true { map[object.name] = nil }
            }
        }
    }

    func latest(_ name: ObjectName) -> StagedObject? { tickets.withLock { $0[name]?.last } }
}

/// An open folder, closed when the last copy of the value that holds it is released.
final class DirectoryHandle: Sendable {
    /// The descriptor (`O_RDONLY | O_DIRECTORY`).
    let fd: Int32

    init(fd: Int32) { self.fd = fd }
    deinit { close(fd) }
}
