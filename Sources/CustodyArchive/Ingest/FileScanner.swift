import CustodyStorage

#if canImport(Glibc)
import Glibc
#endif

/// Which file a path led to when it was scanned: its device and inode.
package struct FileIdentity: Sendable, Hashable {
    /// `st_dev`.
    package var device: UInt64
    /// `st_ino`.
    package var inode: UInt64

    /// The identity in a `stat` result.
    init(_ st: stat) {
        device = UInt64(st.st_dev)
        inode = UInt64(st.st_ino)
    }
}

/// A folder the scan walked: how to reach it again from the folder named on the command line, one entry at a
/// time, and the identity it had. Shared by every file found in it.
package final class ScannedFolder: Sendable, Equatable {
    /// The folder it was found in; `nil` for a folder named on the command line.
    let parent: ScannedFolder?
    /// Its entry name in `parent`, or the path as given for a folder named on the command line.
    let name: [UInt8]
    /// Its device and inode when scanned.
    let identity: FileIdentity

    init(parent: ScannedFolder?, name: [UInt8], identity: FileIdentity) {
        self.parent = parent
        self.name = name
        self.identity = identity
    }

    package static func == (lhs: ScannedFolder, rhs: ScannedFolder) -> Bool {
        lhs === rhs || (lhs.name == rhs.name && lhs.identity == rhs.identity && lhs.parent == rhs.parent)
    }
}

/// A file found for ingest.
package struct SourceFile: Sendable, Equatable {
    /// The path to open.
    package var path: String
    /// The path shown and recorded: relative to the folder given (starting with its name), or as given.
    package var displayPath: String
    /// Size when scanned.
    package var size: Int64
    /// The folder it is in (`nil` for a file named on the command line).
    package var folder: ScannedFolder?
    /// Its entry name in `folder`, or the path as given for a file named on the command line.
    package var name: [UInt8]
    /// Its device and inode when scanned.
    package var identity: FileIdentity
}

/// A file or folder that will not be ingested, and why.
package struct ScanProblem: Error, Sendable, Equatable, CustomStringConvertible {
    /// What kind of problem, for code: ``reason`` says the same in words, for people.
    package enum Kind: Sendable, Hashable {
        /// A symbolic link (links are not followed), or one found in a scanned file's or folder's place.
        case symbolicLink
        /// Not a regular file or folder (a device, pipe or socket), or no longer one.
        case notRegularFile
        /// A name that is not valid UTF-8.
        case nameNotUTF8
        /// Cannot be read (permissions, or another error of the system).
        case unreadable
        /// Changed while it was scanned.
        case changedDuringScan
        /// Another file or folder than the one scanned is in its place.
        case replaced
        /// Removed or renamed since the scan.
        case removed
        /// Nested deeper than the scan follows.
        case tooDeep
        /// A folder already visited (a loop).
        case folderLoop
        /// Its SHA-256 is not the one expected.
        case sha256Mismatch
    }

    /// The path (non-UTF-8 bytes shown as U+FFFD).
    package var path: String
    /// What kind of problem.
    package var kind: Kind
    /// Why it was refused.
    package var reason: String

    package init(path: String, _ kind: Kind, reason: String) {
        self.path = path
        self.kind = kind
        self.reason = reason
    }

    package var description: String { "\(path): \(reason)" }
}

/// Walks the paths given to `ingest` without following symbolic links, reporting everything it does not take.
package enum FileScanner {
    /// The deepest folder nesting followed.
    static let maxDepth = 256

    /// Scans `arguments` (files or folders).
    ///
    /// - Throws: ``ArchiveError`` (not found) when an argument does not exist at all.
    package static func scan(_ arguments: [String]) throws -> (files: [SourceFile], problems: [ScanProblem]) {
        var files: [SourceFile] = []
        var problems: [ScanProblem] = []
        for argument in arguments {
            var path = argument
            while path.count > 1 && path.hasSuffix("/") { path.removeLast() }
            // An argument the user named may itself be a link: follow it, once.
            guard let st = POSIX.statPath(path) else {
                let code = errno
                if code == ENOENT || code == ENOTDIR {
                    throw ArchiveError(.notFound, "\(argument) does not exist", fix: "check the path")
                }
                throw ArchiveError(
                    .notFound,
                    "cannot read \(argument): \(errnoDescription(code))",
                    fix: "check its permissions"
                )
            }
            let base = path.split(separator: "/").last.map(String.init) ?? path
            if POSIX.isDirectory(st.st_mode) {
                let fd = POSIX.open(path, O_RDONLY | O_DIRECTORY)
                guard fd >= 0 else {
                    problems.append(
                        ScanProblem(
                            path: path,
                            .unreadable,
                            reason: "folder cannot be read: \(errnoDescription(errno))"
                        )
                    )
                    continue
                }
                defer { close(fd) }
                var opened = stat()
                guard fstat(fd, &opened) == 0, FileIdentity(opened) == FileIdentity(st) else {
                    problems.append(ScanProblem(path: path, .changedDuringScan, reason: "changed while it was scanned"))
                    continue
                }
                var visited = Set<FileIdentity>()
                walk(
                    ScannedFolder(parent: nil, name: Array(path.utf8), identity: FileIdentity(st)),
                    fd: fd,
                    path: Array(path.utf8),
                    display: base,
                    depth: 0,
                    visited: &visited,
                    files: &files,
                    problems: &problems
                )
            } else if POSIX.isRegular(st.st_mode) {
                if let problem = readabilityProblem(path, in: AT_FDCWD) {
                    problems.append(ScanProblem(path: path, .unreadable, reason: problem))
                } else {
                    files.append(
                        SourceFile(
                            path: path,
                            displayPath: base,
                            size: Int64(st.st_size),
                            folder: nil,
                            name: Array(path.utf8),
                            identity: FileIdentity(st)
                        )
                    )
                }
            } else {
                problems.append(ScanProblem(path: path, .notRegularFile, reason: "not a regular file or folder"))
            }
        }
        return (files, problems)
    }

    private static func readabilityProblem(_ name: String, in folder: Int32) -> String? {
        // The effective ids decide, as they will when the file is opened for reading.
        guard faccessat(folder, name, R_OK, AT_EACCESS) == 0 else {
            return "cannot be read: \(errnoDescription(errno))"
        }
        return nil
    }

    /// Walks the open folder `fd` (reached as `folder`): every entry is looked at and opened relative to it,
    /// never by a path, and a sub-folder is opened without following a link, so what is listed is what was
    /// found inside the folder given even while others rename things in it.
    private static func walk(
        _ folder: ScannedFolder,
        fd: Int32,
        path directory: [UInt8],
        display: String,
        depth: Int,
        visited: inout Set<FileIdentity>,
        files: inout [SourceFile],
        problems: inout [ScanProblem]
    ) {
        let shown = String(decoding: directory, as: UTF8.self)
        guard depth < maxDepth else {
            problems.append(ScanProblem(path: shown, .tooDeep, reason: "nested more than \(maxDepth) folders deep"))
            return
        }
        guard visited.insert(folder.identity).inserted else {
            problems.append(ScanProblem(path: shown, .folderLoop, reason: "folder loop (already visited)"))
            return
        }
        defer { visited.remove(folder.identity) }
        let copy = dup(fd)
        guard copy >= 0, let dir = fdopendir(copy) else {
            let code = errno
            if copy >= 0 { close(copy) }
            problems.append(
                ScanProblem(path: shown, .unreadable, reason: "folder cannot be read: \(errnoDescription(code))")
            )
            return
        }
        var entries = POSIX.directoryEntries(dir)
        closedir(dir)
        entries.sort { $0.lexicographicallyPrecedes($1) }
        for name in entries {
            let childBytes = directory + [0x2F] + name
            let childShown = String(decoding: childBytes, as: UTF8.self)
            guard let nameText = String(validating: name, as: UTF8.self) else {
                problems.append(
                    ScanProblem(path: childShown, .nameNotUTF8, reason: "file name is not valid UTF-8 (rename it)")
                )
                continue
            }
            guard let child = POSIX.lstat(nameText, in: fd) else {
                problems.append(
                    ScanProblem(path: childShown, .unreadable, reason: "cannot be read: \(errnoDescription(errno))")
                )
                continue
            }
            let childDisplay = display + "/" + nameText
            if POSIX.isSymlink(child.st_mode) {
                problems.append(
                    ScanProblem(
                        path: childShown,
                        .symbolicLink,
                        reason: "symbolic link refused (links are not followed)"
                    )
                )
            } else if POSIX.isDirectory(child.st_mode) {
                let childFD = POSIX.openDirectory(nameText, in: fd)
                var opened = stat()
                guard childFD >= 0, fstat(childFD, &opened) == 0, FileIdentity(opened) == FileIdentity(child) else {
                    let problem =
                        childFD >= 0
                        ? ScanProblem(path: childShown, .changedDuringScan, reason: "changed while it was scanned")
                        : FileOpening.problem(childShown, errno, folder: true)
                    if childFD >= 0 { close(childFD) }
                    problems.append(problem)
                    continue
                }
                walk(
                    ScannedFolder(parent: folder, name: name, identity: FileIdentity(child)),
                    fd: childFD,
                    path: childBytes,
                    display: childDisplay,
                    depth: depth + 1,
                    visited: &visited,
                    files: &files,
                    problems: &problems
                )
                close(childFD)
            } else if POSIX.isRegular(child.st_mode) {
                if let problem = readabilityProblem(nameText, in: fd) {
                    problems.append(ScanProblem(path: childShown, .unreadable, reason: problem))
                } else {
                    files.append(
                        SourceFile(
                            path: childShown,
                            displayPath: childDisplay,
                            size: Int64(child.st_size),
                            folder: folder,
                            name: name,
                            identity: FileIdentity(child)
                        )
                    )
                }
            } else {
                problems.append(
                    ScanProblem(
                        path: childShown,
                        .notRegularFile,
                        reason: "not a regular file (device, pipe or socket)"
                    )
                )
            }
        }
    }
}

/// Opening a scanned file again to read it, the only way ingest opens one.
enum FileOpening {
    /// Why the open of `path` failed with `code`, as a ``ScanProblem``.
    static func problem(_ path: String, _ code: Int32, folder: Bool) -> ScanProblem {
        switch code {
        case ELOOP:
            ScanProblem(
                path: path,
                .symbolicLink,
                reason: "a symbolic link is now in its place (links are not followed)"
            )
        case ENOTDIR where folder: ScanProblem(path: path, .replaced, reason: "is no longer a folder")
        case ENOENT: ScanProblem(path: path, .removed, reason: "was removed or renamed since the scan")
        default: ScanProblem(path: path, .unreadable, reason: "cannot be read: \(errnoDescription(code))")
        }
    }
}

extension ScannedFolder {
    /// Opens this folder again the way the scan reached it: the folder named on the command line by its path
    /// (following a link there once, as the scan did), every folder below by name relative to its parent with
    /// `O_NOFOLLOW`, each checked against the device and inode the scan saw.
    ///
    /// - Returns: The descriptor, or why it cannot be used (with the path shown).
    func reopen() -> Result<Int32, ScanProblem> {
        let fd: Int32
        let shown: String
        if let parent {
            let parentFD: Int32
            switch parent.reopen() {
            case .success(let opened): parentFD = opened
            case .failure(let problem): return .failure(problem)
            }
            defer { close(parentFD) }
            shown = parent.shownPath + "/" + String(decoding: name, as: UTF8.self)
            fd = POSIX.openDirectory(String(decoding: name, as: UTF8.self), in: parentFD)
        } else {
            shown = shownPath
            fd = POSIX.open(shownPath, O_RDONLY | O_DIRECTORY)
        }
        guard fd >= 0 else {
            return .failure(FileOpening.problem(shown, errno, folder: true))
        }
        var st = stat()
        guard fstat(fd, &st) == 0, FileIdentity(st) == identity else {
            close(fd)
            return .failure(
                ScanProblem(path: shown, .replaced, reason: "is another folder than the one scanned (it was replaced)")
            )
        }
        return .success(fd)
    }

    /// The path shown for this folder.
    var shownPath: String {
        let own = String(decoding: name, as: UTF8.self)
        return parent.map { $0.shownPath + "/" + own } ?? own
    }
}

extension SourceFile {
    /// Opens the file for reading the way the scan found it, and checks it is still that file.
    ///
    /// Its folder is reopened (``ScannedFolder/reopen()``) and the file opened relative to it with
    /// `O_NOFOLLOW | O_NONBLOCK` (a file named on the command line: by its path, following a link once, as the
    /// scan did), so a link put in its place is refused and a FIFO put in its place cannot make the open wait.
    /// The open file must be a regular file with the device and inode the scan saw.
    ///
    /// - Returns: A descriptor in blocking mode, or why the file cannot be taken.
    package func openForReading() -> Result<Int32, ScanProblem> {
        var fd: Int32
        if let folder {
            let folderFD: Int32
            switch folder.reopen() {
            case .success(let opened): folderFD = opened
            case .failure(let problem): return .failure(problem)
            }
            defer { close(folderFD) }
            let entry = String(decoding: name, as: UTF8.self)
            repeat {
                fd = openat(folderFD, entry, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY | O_CLOEXEC)
            } while fd < 0 && errno == EINTR
        } else {
            fd = POSIX.open(path, O_RDONLY | O_NONBLOCK | O_NOCTTY)
        }
        guard fd >= 0 else {
            return .failure(FileOpening.problem(path, errno, folder: false))
        }
        var st = stat()
        guard fstat(fd, &st) == 0, POSIX.isRegular(st.st_mode) else {
            close(fd)
            return .failure(
                ScanProblem(
                    path: path,
                    .notRegularFile,
                    reason: "is no longer a regular file (a pipe, device or folder is in its place)"
                )
            )
        }
        guard FileIdentity(st) == identity else {
            close(fd)
            return .failure(
                ScanProblem(path: path, .replaced, reason: "is another file than the one scanned (it was replaced)")
            )
        }
        // Reads of a regular file never wait for a writer; the flag only mattered for the open.
        _ = fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK)
        return .success(fd)
    }
}
