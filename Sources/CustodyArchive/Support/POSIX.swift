import CCustodySystem
import CustodyCrypto
import CustodyStorage

#if canImport(Glibc)
import Glibc
#endif

/// The archive's own file calls, beside CustodyStorage's (`POSIX.writeAll`, `readFull`, `openDirectory`…).
extension POSIX {
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
}

/// Reading and writing the archive's own small files (configuration, identity, keys, journal side files,
/// grants) with ``ArchiveError``: CustodyStorage's checked POSIX calls, their errors mapped once, here.
package enum ArchiveFiles {
    /// Reads a whole small file, refusing anything larger than `limit` bytes or not a regular file.
    ///
    /// - Throws: ``ArchiveError``: not found; cannot create (unreadable); bad input (not a regular file, too large).
    package static func read(_ path: String, limit: Int) throws(ArchiveError) -> [UInt8] {
        do {
            return try POSIX.readFile(path, limit: limit)
        } catch {
            throw ArchiveError(error)
        }
    }

    /// Writes `bytes` to `path` atomically (and durably unless `durable` is `false`); see
    /// `POSIX.writeFileAtomically`.
    ///
    /// - Throws: ``ArchiveError`` (cannot create, or no space).
    package static func writeAtomically(
        _ path: String,
        _ bytes: [UInt8],
        mode: mode_t = 0o600,
        durable: Bool = true,
        suffix: String = temporarySuffix()
    ) throws(ArchiveError) {
        do {
            try POSIX.writeFileAtomically(path, bytes, mode: mode, durable: durable, suffix: suffix)
        } catch {
            throw ArchiveError(error)
        }
    }
}

/// The names in a folder (without `.` and `..`); names that are not UTF-8 are skipped, and a folder that
/// does not exist has none.
func listDirectory(_ path: String) throws(ArchiveError) -> [String] {
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
