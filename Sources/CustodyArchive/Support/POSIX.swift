import CCustodySystem
import CustodyCrypto

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
        // Non-blocking, so a FIFO or device put where a file is expected cannot hang the open; refused below.
        let fd = open(path, O_RDONLY | O_NONBLOCK)
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
        guard st.st_mode & S_IFMT == S_IFREG else {
            throw ArchiveError(
                .notRegularFile,
                "\(TerminalText.escape(path)) is not a regular file",
                fix: "give a file, not a pipe, device or folder"
            )
        }
        guard st.st_size <= limit else {
            throw ArchiveError(
                .tooLarge,
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
                .tooLarge,
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
    /// `suffix` names the temporary file (`<path>.tmp-<suffix>`); the default is unique in the process.
    package static func writeFileAtomically(
        _ path: String,
        _ bytes: [UInt8],
        mode: mode_t = 0o600,
        durable: Bool = true,
        suffix: String = temporarySuffix()
    ) throws {
        // A new file of this process's own, never one found there: O_EXCL | O_NOFOLLOW, so a link planted
        // under the temporary name (inside an archive folder others can write to) is not written through.
        let temp = path + ".tmp-" + suffix
        var fd = open(temp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW, mode)
        if fd < 0 && errno == EEXIST {
            // Left by an earlier process that had the same pid: unlink removes the entry, never a link's target.
            unlink(temp)
            fd = open(temp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW, mode)
        }
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
    ///
    /// The folder is opened without following a link and its entries are removed relative to it, so a link
    /// planted in its place never leads to files elsewhere being removed; links inside it are left alone.
    static func removeTree(_ path: String) {
        let fd = openDirectory(path)
        guard fd >= 0 else { return }
        defer { close(fd) }
        for name in (try? directoryEntries(fd, path: path)) ?? [] {
            guard let st = lstat(name, in: fd), isRegular(st.st_mode) else { continue }
            unlinkat(fd, name, 0)
        }
        rmdir(path)
    }

    /// The byte offset of `d_name` in a `dirent`.
    private static let direntNameOffset: Int = {
        guard let offset = MemoryLayout<dirent>.offset(of: \dirent.d_name) else {
            preconditionFailure("dirent.d_name is a stored field")
        }
        return offset
    }()

    /// The name in a directory entry, as raw bytes.
    ///
    /// The one place a directory entry's name is read: through a pointer to the `d_name` field, up to its
    /// terminating NUL. It is never copied as the whole 256-byte array Swift imports the field as (nor is the
    /// entry copied through `pointee`): the kernel packs entries at their real length, so the last entry of
    /// glibc's buffer can end a few bytes after its name, at the end of mapped memory. Copying the whole field
    /// read past it, and crashed ingest and verify on ordinary trees.
    static func entryName(_ entry: UnsafePointer<dirent>) -> [UInt8] {
        // `entry` points at a valid record whose `d_name` is NUL-terminated inside the record.
        let field = UnsafeRawPointer(entry).advanced(by: direntNameOffset).assumingMemoryBound(to: CChar.self)
        return Array(UnsafeRawBufferPointer(start: field, count: strlen(field)))
    }

    /// The names in the open directory stream `dir` (without `.` and `..`), as raw bytes, in the order read.
    static func directoryEntries(_ dir: OpaquePointer) -> [[UInt8]] {
        var names: [[UInt8]] = []
        while let entry = readdir(dir) {
            // Valid until the next readdir, which is after the name has been copied out.
            let name = entryName(entry)
            if name == [0x2E] || name == [0x2E, 0x2E] { continue }
            names.append(name)
        }
        return names
    }

    /// The UTF-8 names in the open folder `fd`, which stays open; names that are not UTF-8 are skipped.
    ///
    /// - Throws: ``ArchiveError`` when the folder cannot be read (`path` names it in the message).
    static func directoryEntries(_ fd: Int32, path: String) throws -> [String] {
        let copy = dup(fd)
        guard copy >= 0, let dir = fdopendir(copy) else {
            let code = errno
            if copy >= 0 { close(copy) }
            throw ArchiveError(
                .cannotCreate,
                "cannot list \(path): \(errnoDescription(code))",
                fix: "check the archive folder"
            )
        }
        defer { closedir(dir) }
        // The copy shares the file offset with `fd`: start from the first entry whatever was read before.
        rewinddir(dir)
        return directoryEntries(dir).compactMap { String(validating: $0, as: UTF8.self) }
    }

    /// Opens the folder `name` in the open folder `parent` (or a path, with `AT_FDCWD`) without following a
    /// link in its last component: a link there gives `ELOOP`, anything else that is not a folder `ENOTDIR`.
    ///
    /// - Returns: The descriptor, or -1 with errno set.
    static func openDirectory(_ name: String, in parent: Int32 = AT_FDCWD) -> Int32 {
        var fd: Int32
        repeat {
            fd = openat(parent, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
        } while fd < 0 && errno == EINTR
        // Linux answers ENOTDIR for a link when O_DIRECTORY is given: tell the two apart.
        if fd < 0, errno == ENOTDIR, let st = lstat(name, in: parent), isSymlink(st.st_mode) { errno = ELOOP }
        return fd
    }

    /// `fstatat` of `name` in the open folder `parent`, not following a link, or `nil` with errno set.
    static func lstat(_ name: String, in parent: Int32) -> Glibc.stat? {
        var st = Glibc.stat()
        return fstatat(parent, name, &st, AT_SYMLINK_NOFOLLOW) == 0 ? st : nil
    }

    /// Reads a small secret file named on the command line (a passphrase file), checked the way ssh checks
    /// a private key.
    ///
    /// It must be a regular file (a link to one is followed, and the file it reaches is what is checked),
    /// with no permission bits for group or others, and at most `limit` bytes. The file is opened with
    /// `O_NONBLOCK`, so a FIFO or device swapped in after the check cannot make the open wait, and the opened
    /// file is checked again (type, mode, size, device and inode) before a byte is read.
    ///
    /// - Returns: The file's bytes; the caller wipes them.
    /// - Throws: ``ArchiveError``: not found; not authorised (exit 77) for a file group or others may
    ///   access; bad input for a file that is not regular, is too large, or changed between check and open.
    package static func readPrivateFile(_ path: String, limit: Int) throws -> [UInt8] {
        let shown = TerminalText.escape(path)
        guard let named = statPath(path) else {
            let code = errno
            throw ArchiveError(
                code == ENOENT ? .notFound : .notAuthorised,
                "cannot read \(shown): \(errnoDescription(code))",
                fix: "check the path and its permissions"
            )
        }
        func check(_ st: Glibc.stat) throws {
            guard isRegular(st.st_mode) else {
                throw ArchiveError(
                    .notRegularFile,
                    "\(shown) is not a regular file (a pipe, device or folder)",
                    fix: "put the passphrase in a plain file only you can read (chmod 600)"
                )
            }
            guard st.st_mode & 0o077 == 0 else {
                throw ArchiveError(
                    .fileExposed,
                    "\(shown) may be read by group or others (mode \(String(st.st_mode & 0o777, radix: 8)))",
                    fix: "run chmod 600 on it, and change the passphrase if someone else may have read it"
                )
            }
            guard st.st_size <= limit else {
                throw ArchiveError(.tooLarge, "\(shown) is larger than \(limit) bytes", fix: "check the file")
            }
        }
        try check(named)
        let fd = open(path, O_RDONLY | O_NONBLOCK | O_NOCTTY)
        guard fd >= 0 else {
            throw ArchiveError(
                .notAuthorised,
                "cannot read \(shown): \(errnoDescription(errno))",
                fix: "check the path and its permissions"
            )
        }
        defer { close(fd) }
        var opened = Glibc.stat()
        guard fstat(fd, &opened) == 0 else {
            throw ArchiveError(.badInput, "cannot stat \(shown)", fix: "check the file")
        }
        try check(opened)
        guard opened.st_dev == named.st_dev, opened.st_ino == named.st_ino else {
            throw ArchiveError(.badInput, "\(shown) was replaced while it was opened", fix: "run the command again")
        }
        var bytes = [UInt8](repeating: 0, count: limit + 1)
        let n = bytes.withUnsafeMutableBytes { readFull(fd, $0) }
        guard n >= 0, n <= limit else {
            wipe(&bytes)
            throw n < 0
                ? ArchiveError(.badInput, "cannot read \(shown): \(errnoDescription(Int32(-n)))", fix: "check the file")
                : ArchiveError(.tooLarge, "\(shown) is larger than \(limit) bytes", fix: "check the file")
        }
        // Only the first `n` bytes were written: what is cut off is still zero.
        bytes.removeSubrange(n...)
        return bytes
    }

    /// The folder part of `path`.
    static func parentDirectory(of path: String) -> String {
        guard let slash = path.lastIndex(of: "/") else { return "." }
        return slash == path.startIndex ? "/" : String(path[..<slash])
    }
}

/// An advisory `flock` on a file, released when the value is released.
final class FileLock: Sendable {
    private let fd: Int32

    /// The kind of lock.
    enum Mode { case shared, exclusive }

    /// How long to wait for other holders: `CUSTODY_LOCK_TIMEOUT` seconds, default 600.
    static let waitLimit: Double = getenv("CUSTODY_LOCK_TIMEOUT").flatMap { Double(String(cString: $0)) } ?? 600

    /// Takes the lock on `path`, creating the file; waits (up to ``waitLimit``) for other holders.
    ///
    /// - Throws: ``ArchiveError`` (temporary, exit 75) when the lock is still held after the wait.
    init(path: String, mode: Mode, wait: Bool = true) throws {
        // O_NOFOLLOW: a link planted in the lock file's place is refused, not opened (or created) elsewhere.
        fd = POSIX.open(path, O_RDWR | O_CREAT | O_NOFOLLOW, 0o600)
        guard fd >= 0 else { throw ArchiveError.writeFailed(path, errno: errno) }
        let operation = (mode == .shared ? LOCK_SH : LOCK_EX) | LOCK_NB
        var waited = 0.0
        while flock(fd, operation) != 0 {
            let code = errno
            if code == EINTR { continue }
            guard code == EWOULDBLOCK, wait, waited < Self.waitLimit else {
                close(fd)
                throw ArchiveError(
                    .busy,
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

    /// Turns core dumps off for this process and makes it non-dumpable, before any secret is read.
    ///
    /// A core file would hold the passphrase (`CUSTODY_PASSPHRASE` is in the process's environment) and the
    /// unwrapped keys. `RLIMIT_CORE` is set to 0, soft and hard, so nothing later in the process can raise it
    /// again; `PR_SET_DUMPABLE` 0 also keeps other processes of the same user from attaching a debugger or
    /// reading `/proc/<pid>/mem` and `/proc/<pid>/environ`.
    ///
    /// - Returns: 0, or the `errno` of the call that failed.
    package static func disableCoreDumps() -> Int32 {
        CCustodySystem_disable_core_dumps() == 0 ? 0 : errno
    }
}
