import CCustodySystem

#if canImport(Glibc)
import Glibc
#endif

/// Thin, checked wrappers over the POSIX calls a filesystem store needs: descriptor-relative, never following
/// a link, retrying on `EINTR`. Each is a blocking system call: call them from a thread that may block (the
/// store's `NIOThreadPool`), never from a task of the Swift concurrency pool.
package enum POSIX {
    /// Writes all of `buffer` to `fd`.
    ///
    /// - Returns: 0, or the `errno` of the failed write.
    package static func writeAll(_ fd: Int32, _ buffer: UnsafeRawBufferPointer) -> Int32 {
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
    package static func readFull(_ fd: Int32, _ buffer: UnsafeMutableRawBufferPointer) -> Int {
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

    /// Reads up to `buffer.count` bytes from `offset`, looping until full or end of file.
    ///
    /// - Returns: The number of bytes read, or `-errno`.
    package static func preadFull(_ fd: Int32, _ buffer: UnsafeMutableRawBufferPointer, at offset: Int64) -> Int {
        var done = 0
        while done < buffer.count {
            // `done < buffer.count`, so the buffer is non-empty and the pointer stays inside it.
            guard let base = buffer.baseAddress else { return 0 }
            let n = Glibc.pread(fd, base + done, buffer.count - done, off_t(offset) + off_t(done))
            if n < 0 {
                if errno == EINTR { continue }
                return -Int(errno)
            }
            if n == 0 { break }
            done += n
        }
        return done
    }

    /// Flushes the whole filesystem that holds `fd` (`syncfs`), the batched form of fsync.
    ///
    /// - Returns: 0, or the `errno` of the failed call.
    package static func syncFileSystem(_ fd: Int32) -> Int32 {
        CCustodySystem_syncfs(fd) == 0 ? 0 : errno
    }

    /// Whether `mode` is a regular file.
    package static func isRegular(_ mode: mode_t) -> Bool { mode & S_IFMT == S_IFREG }
    /// Whether `mode` is a directory.
    package static func isDirectory(_ mode: mode_t) -> Bool { mode & S_IFMT == S_IFDIR }
    /// Whether `mode` is a symbolic link.
    package static func isSymlink(_ mode: mode_t) -> Bool { mode & S_IFMT == S_IFLNK }

    /// Creates `path` and its parents with mode 0700; existing folders are fine.
    ///
    /// - Returns: 0, or the `errno` of the failed `mkdir`.
    package static func makeDirectories(_ path: String) -> Int32 {
        var current = path.hasPrefix("/") ? "" : "."
        for component in path.split(separator: "/") {
            current += "/" + component
            if mkdir(current, 0o700) != 0 && errno != EEXIST { return errno }
        }
        return 0
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
    package static func entryName(_ entry: UnsafePointer<dirent>) -> [UInt8] {
        // `entry` points at a valid record whose `d_name` is NUL-terminated inside the record.
        let field = UnsafeRawPointer(entry).advanced(by: direntNameOffset).assumingMemoryBound(to: CChar.self)
        return Array(UnsafeRawBufferPointer(start: field, count: strlen(field)))
    }

    /// The names in the open directory stream `dir` (without `.` and `..`), as raw bytes, in the order read.
    package static func directoryEntries(_ dir: OpaquePointer) -> [[UInt8]] {
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
    /// - Throws: ``StorageError`` when the folder cannot be read (`path` names it in the message).
    package static func directoryEntries(_ fd: Int32, path: String) throws(StorageError) -> [String] {
        let copy = dup(fd)
        guard copy >= 0, let dir = fdopendir(copy) else {
            let code = errno
            if copy >= 0 { close(copy) }
            throw StorageError(
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
    package static func openDirectory(_ name: String, in parent: Int32 = AT_FDCWD) -> Int32 {
        var fd: Int32
        repeat {
            fd = openat(parent, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
        } while fd < 0 && errno == EINTR
        // Linux answers ENOTDIR for a link when O_DIRECTORY is given: tell the two apart.
        if fd < 0, errno == ENOTDIR, let st = lstat(name, in: parent), isSymlink(st.st_mode) { errno = ELOOP }
        return fd
    }

    /// `fstatat` of `name` in the open folder `parent`, not following a link, or `nil` with errno set.
    package static func lstat(_ name: String, in parent: Int32) -> Glibc.stat? {
        var st = Glibc.stat()
        return fstatat(parent, name, &st, AT_SYMLINK_NOFOLLOW) == 0 ? st : nil
    }
    /// Reads a whole small file, refusing anything larger than `limit` bytes or not a regular file.
    ///
    /// Opened with `O_NONBLOCK`, so a FIFO or device put where a file is expected cannot hang the open.
    ///
    /// - Throws: ``StorageError``: not found; cannot create (unreadable); bad input (not a regular file, too large).
    package static func readFile(_ path: String, limit: Int) throws(StorageError) -> [UInt8] {
        var fd: Int32
        repeat { fd = Glibc.open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC) } while fd < 0 && errno == EINTR
        guard fd >= 0 else {
            let code = errno
            throw StorageError(
                code == ENOENT ? .notFound : .cannotCreate,
                "cannot read \(path): \(errnoDescription(code))",
                fix: "check that the file exists and is readable"
            )
        }
        defer { close(fd) }
        var st = Glibc.stat()
        guard fstat(fd, &st) == 0 else {
            throw StorageError(.cannotCreate, "cannot stat \(path)", fix: "check the file")
        }
        guard isRegular(st.st_mode) else {
            throw StorageError(
                .notRegularFile,
                "\(path) is not a regular file",
                fix: "give a file, not a pipe, device or folder"
            )
        }
        var bytes = [UInt8](repeating: 0, count: min(Int(st.st_size), limit) + 1)
        let n = bytes.withUnsafeMutableBytes { readFull(fd, $0) }
        guard n >= 0 else {
            throw StorageError(
                .cannotCreate,
                "cannot read \(path): \(errnoDescription(Int32(-n)))",
                fix: "check the file"
            )
        }
        guard n <= limit else {
            throw StorageError(
                .tooLarge,
                "\(path) is larger than \(limit) bytes",
                fix: "check that it is the right file"
            )
        }
        bytes.removeSubrange(n...)
        return bytes
    }

    /// fsyncs a directory so that renames inside it are durable.
    ///
    /// - Returns: 0, or the `errno` of the failed call.
    package static func syncDirectory(_ path: String) -> Int32 {
        var fd: Int32
        repeat { fd = Glibc.open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC) } while fd < 0 && errno == EINTR
        guard fd >= 0 else { return errno }
        defer { close(fd) }
        return fsync(fd) == 0 ? 0 : errno
    }

    /// Writes `bytes` to `path` atomically and durably: a new temporary file beside it (`O_EXCL | O_NOFOLLOW`,
    /// so a link planted under the temporary name is never written through), fsync, rename, fsync of the
    /// folder.
    ///
    /// - Parameters:
    ///   - path: The file.
    ///   - bytes: Its new content.
    ///   - mode: Its permission bits.
    ///   - durable: `false` skips both fsyncs (for derived files that are checked and rebuilt when lost).
    ///   - suffix: Names the temporary file, `<path>.tmp-<suffix>`; the default is unique in the process.
    /// - Throws: ``StorageError`` (cannot create) when any step fails; the temporary file is removed then.
    package static func writeFileAtomically(
        _ path: String,
        _ bytes: [UInt8],
        mode: mode_t = 0o600,
        durable: Bool = true,
        suffix: String = temporarySuffix()
    ) throws(StorageError) {
        let temp = path + ".tmp-" + suffix
        func create() -> Int32 {
            var fd: Int32
            repeat {
                fd = Glibc.open(temp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, mode)
            } while fd < 0 && errno == EINTR
            return fd
        }
        var fd = create()
        if fd < 0 && errno == EEXIST {
            // Left by an earlier process that had the same pid: unlink removes the entry, never a link's target.
            unlink(temp)
            fd = create()
        }
        guard fd >= 0 else { throw StorageError.writeFailed(path, errno: errno) }
        var code = bytes.withUnsafeBytes { writeAll(fd, $0) }
        if code == 0, fchmod(fd, mode) != 0 { code = errno }
        if code == 0, durable, fsync(fd) != 0 { code = errno }
        close(fd)
        if code == 0, rename(temp, path) != 0 { code = errno }
        guard code == 0 else {
            unlink(temp)
            throw StorageError.writeFailed(path, errno: code)
        }
        if durable { _ = syncDirectory(parentDirectory(of: path)) }
    }

    /// The folder part of `path`.
    package static func parentDirectory(of path: String) -> String {
        guard let slash = path.lastIndex(of: "/") else { return "." }
        return slash == path.startIndex ? "/" : String(path[..<slash])
    }

    /// Opens `path`, retrying on EINTR (close-on-exec).
    package static func open(_ path: String, _ flags: Int32, _ mode: mode_t = 0o600) -> Int32 {
        var fd: Int32
        repeat { fd = Glibc.open(path, flags | O_CLOEXEC, mode) } while fd < 0 && errno == EINTR
        return fd
    }

    /// `lstat` of `path`, or `nil` with errno set.
    package static func lstatPath(_ path: String) -> Glibc.stat? {
        var st = Glibc.stat()
        return Glibc.lstat(path, &st) == 0 ? st : nil
    }

    /// `stat` of `path` (following links), or `nil` with errno set.
    package static func statPath(_ path: String) -> Glibc.stat? {
        var st = Glibc.stat()
        return fstatat(AT_FDCWD, path, &st, 0) == 0 ? st : nil
    }
}

/// A process-unique suffix for temporary file names, `<pid>.<n>` (pid and a counter; no randomness needed).
package func temporarySuffix() -> String {
    "\(getpid()).\(StagingTicket.next())"
}
