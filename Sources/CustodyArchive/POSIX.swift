import CCustodySystem

#if canImport(Glibc)
import Glibc
#endif

/// Thin, checked wrappers over the POSIX calls the archive needs for crash-safe writes.
package enum POSIX {
    /// Opens `path`, retrying on EINTR.
    static func open(_ path: String, _ flags: Int32, _ mode: mode_t = 0o600) -> Int32 {
        var fd: Int32
        repeat { fd = Glibc.open(path, flags | O_CLOEXEC, mode) } while fd < 0 && errno == EINTR
        return fd
    }

    /// Writes all of `buffer` to `fd`.
    ///
    /// - Returns: 0, or the `errno` of the failed write.
    static func writeAll(_ fd: Int32, _ buffer: UnsafeRawBufferPointer) -> Int32 {
        var offset = 0
        while offset < buffer.count {
            // `offset < buffer.count`, so the buffer is non-empty and the pointer stays inside it.
            guard let base = buffer.baseAddress else { return 0 }
            let n = Glibc.write(fd, base + offset, buffer.count - offset)
            if n < 0 {
                if errno == EINTR { continue }
                return errno
            }
            if n == 0 { return EIO }
            offset += n
        }
        return 0
    }

    /// Reads up to `buffer.count` bytes, looping until full or end of file.
    ///
    /// - Returns: The number of bytes read, or `-errno`.
    static func readFull(_ fd: Int32, _ buffer: UnsafeMutableRawBufferPointer) -> Int {
        var offset = 0
        while offset < buffer.count {
            // `offset < buffer.count`, so the buffer is non-empty and the pointer stays inside it.
            guard let base = buffer.baseAddress else { return 0 }
            let n = Glibc.read(fd, base + offset, buffer.count - offset)
            if n < 0 {
                if errno == EINTR { continue }
                return -Int(errno)
            }
            if n == 0 { break }
            offset += n
        }
        return offset
    }

    /// Flushes the whole filesystem that holds `fd` (`syncfs`), the batched form of fsync.
    static func syncFileSystem(_ fd: Int32) -> Int32 {
        CCustodySystem_syncfs(fd) == 0 ? 0 : errno
    }

    /// fsyncs a directory so that renames inside it are durable.
    static func syncDirectory(_ path: String) -> Int32 {
        let fd = open(path, O_RDONLY | O_DIRECTORY)
        guard fd >= 0 else { return errno }
        defer { close(fd) }
        return fsync(fd) == 0 ? 0 : errno
    }

    /// `lstat` of `path`, or `nil` with errno set.
    static func lstatPath(_ path: String) -> Glibc.stat? {
        var st = Glibc.stat()
        return Glibc.lstat(path, &st) == 0 ? st : nil
    }

    /// `stat` of `path` (following links), or `nil` with errno set.
    static func statPath(_ path: String) -> Glibc.stat? {
        var st = Glibc.stat()
        return fstatat(AT_FDCWD, path, &st, 0) == 0 ? st : nil
    }

    /// Whether `mode` is a regular file.
    static func isRegular(_ mode: mode_t) -> Bool { mode & S_IFMT == S_IFREG }
    /// Whether `mode` is a directory.
    static func isDirectory(_ mode: mode_t) -> Bool { mode & S_IFMT == S_IFDIR }
    /// Whether `mode` is a symbolic link.
    static func isSymlink(_ mode: mode_t) -> Bool { mode & S_IFMT == S_IFLNK }

    /// Creates `path` and its parents with mode 0700; existing folders are fine.
    static func makeDirectories(_ path: String) -> Int32 {
        var current = path.hasPrefix("/") ? "" : "."
        for component in path.split(separator: "/") {
            current += "/" + component
            if mkdir(current, 0o700) != 0 && errno != EEXIST { return errno }
        }
        return 0
    }

    /// Reads a whole small file, refusing anything larger than `limit` bytes.
    package static func readFile(_ path: String, limit: Int) throws -> [UInt8] {
        let fd = open(path, O_RDONLY)
        guard fd >= 0 else {
            let code = errno
            throw ArchiveError(
                code == ENOENT ? .notFound : .cannotCreate,
                "cannot read \(path): \(errnoDescription(code))",
                fix: "check that the file exists and is readable"
            )
        }
        defer { close(fd) }
        var st = Glibc.stat()
        guard fstat(fd, &st) == 0 else {
            throw ArchiveError(.cannotCreate, "cannot stat \(path)", fix: "check the file")
        }
        guard st.st_size <= limit else {
            throw ArchiveError(
                .badInput,
                "\(path) is larger than \(limit) bytes",
                fix: "check that it is the right file"
            )
        }
        var bytes = [UInt8](repeating: 0, count: Int(st.st_size) + 1)
        let n = bytes.withUnsafeMutableBytes { readFull(fd, $0) }
        guard n >= 0 else {
            throw ArchiveError(
                .cannotCreate,
                "cannot read \(path): \(errnoDescription(Int32(-n)))",
                fix: "check the file"
            )
        }
        guard n <= limit else {
            throw ArchiveError(
                .badInput,
                "\(path) is larger than \(limit) bytes",
                fix: "check that it is the right file"
            )
        }
        bytes.removeSubrange(n...)
        return bytes
    }

    /// Writes `bytes` to `path` atomically: temp file, fsync, rename, fsync of the folder.
    ///
    /// With `durable: false` it skips both fsyncs (for derived files that are checked and rebuilt when lost).
    package static func writeFileAtomically(
        _ path: String,
        _ bytes: [UInt8],
        mode: mode_t = 0o600,
        durable: Bool = true
    ) throws {
        let temp = path + ".tmp-\(getpid())"
        let fd = open(temp, O_WRONLY | O_CREAT | O_TRUNC, mode)
        guard fd >= 0 else { throw ArchiveError.writeFailed(path, errno: errno) }
        var code = bytes.withUnsafeBytes { writeAll(fd, $0) }
        if code == 0, fchmod(fd, mode) != 0 { code = errno }
        if code == 0, durable, fsync(fd) != 0 { code = errno }
        close(fd)
        if code == 0, rename(temp, path) != 0 { code = errno }
        guard code == 0 else {
            unlink(temp)
            throw ArchiveError.writeFailed(path, errno: code)
        }
        if durable { _ = syncDirectory(parentDirectory(of: path)) }
    }

    /// Removes a folder of plain files (one level deep), ignoring errors.
    static func removeTree(_ path: String) {
        for name in (try? listDirectory(path)) ?? [] { unlink(path + "/" + name) }
        rmdir(path)
    }

    /// The folder part of `path`.
    static func parentDirectory(of path: String) -> String {
        guard let slash = path.lastIndex(of: "/") else { return "." }
        return slash == path.startIndex ? "/" : String(path[..<slash])
    }
}

/// An advisory `flock` on a file, released when the value is released.
final class FileLock {
    private let fd: Int32

    /// The kind of lock.
    enum Mode { case shared, exclusive }

    /// How long to wait for other holders: `CUSTODY_LOCK_TIMEOUT` seconds, default 600.
    static let waitLimit: Double = getenv("CUSTODY_LOCK_TIMEOUT").flatMap { Double(String(cString: $0)) } ?? 600

    /// Takes the lock on `path`, creating the file; waits (up to ``waitLimit``) for other holders.
    ///
    /// - Throws: ``ArchiveError`` (temporary, exit 75) when the lock is still held after the wait.
    init(path: String, mode: Mode, wait: Bool = true) throws {
        fd = POSIX.open(path, O_RDWR | O_CREAT, 0o600)
        guard fd >= 0 else { throw ArchiveError.writeFailed(path, errno: errno) }
        let operation = (mode == .shared ? LOCK_SH : LOCK_EX) | LOCK_NB
        var waited = 0.0
        while flock(fd, operation) != 0 {
            let code = errno
            if code == EINTR { continue }
            guard code == EWOULDBLOCK, wait, waited < Self.waitLimit else {
                close(fd)
                throw ArchiveError(
                    .temporary,
                    "the archive is busy (another custody command holds \(path))",
                    fix: "wait for it to finish and run the command again"
                )
            }
            usleep(50_000)
            waited += 0.05
        }
    }

    deinit {
        flock(fd, LOCK_UN)
        close(fd)
    }
}

/// The absolute path with links and `..` resolved, or `path` unchanged when it does not exist.
package func canonicalPath(_ path: String) -> String {
    guard let resolved = realpath(path, nil) else { return path }
    defer { free(resolved) }
    return String(cString: resolved)
}

/// Process-wide settings every command applies at start.
package enum ProcessSetup {
    /// Caps the C allocator's arenas: glibc otherwise gives each of many worker threads its own arena, each
    /// keeping freed chunk buffers, and peak memory then follows thread scheduling rather than the work in flight.
    package static func limitAllocatorArenas() {
        _ = CCustodySystem_limit_malloc_arenas(2)
    }
}
