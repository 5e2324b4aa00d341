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

    /// An identity from its two numbers.
    package init(device: UInt64, inode: UInt64) {
        self.device = device
        self.inode = inode
    }

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
    /// ``displayPath`` as the raw bytes of the names (which need not be UTF-8).
    package var rawDisplayPath: [UInt8]
    /// Its real path: the folder given with links resolved, then the entry names, raw bytes.
    package var absolutePath: [UInt8]
}

extension SourceFile {
    /// Whether every name on its recorded path is UTF-8.
    package var pathIsUTF8: Bool { String(validating: rawDisplayPath, as: UTF8.self) != nil }
}

/// A file or folder that will not be ingested, and why.
package struct ScanProblem: Error, Sendable, Equatable, CustomStringConvertible {
    /// What kind of problem, for code: ``reason`` says the same in words, for people.
    package enum Kind: Sendable, Hashable {
        /// A symbolic link (links are not followed), or one found in a scanned file's or folder's place.
        case symbolicLink
        /// Not a regular file or folder (a device, pipe or socket), or no longer one.
        case notRegularFile
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
        /// A hash list was given and has no line for it.
        case notListed
        /// A line of the hash list names it, inside the paths given, but it was not found.
        case listedNotFound
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

/// What the scan is told to leave out or refuse.
package struct ScanRules: Sendable {
    /// Entries left out (`--exclude` and the defaults).
    package var exclusions = IngestExclusions.none
    /// The archive, never to be entered or taken: meeting it refuses the whole scan.
    package var archive: ArchiveGuard?

    /// No exclusions, no archive to keep out.
    package init() {}
}

/// What a scan found.
package struct ScanResult: Sendable {
    /// The files to ingest, in order.
    package var files: [SourceFile] = []
    /// What will not be ingested, and why.
    package var problems: [ScanProblem] = []
    /// What the exclusion patterns left out.
    package var excluded: [ExcludedEntry] = []
}

/// Walks the paths given to `ingest` without following symbolic links, reporting everything it does not take.
package enum FileScanner {
    /// The deepest folder nesting followed.
    static let maxDepth = 256

    /// Scans `arguments` (files or folders).
    ///
    /// - Throws: ``ArchiveError`` (not found) when an argument does not exist at all.
    package static func scan(_ arguments: [String]) throws -> (files: [SourceFile], problems: [ScanProblem]) {
        let result = try scan(arguments, rules: ScanRules())
        return (result.files, result.problems)
    }

    /// Scans `arguments` (files or folders) under `rules`.
    ///
    /// Names are taken as the bytes they are: a name that is not UTF-8 is kept (``SourceFile/rawDisplayPath``),
    /// shown with U+FFFD in its place.
    ///
    /// - Throws: ``ArchiveError``: not found when an argument does not exist at all;
    ///   ``ArchiveError/Reason/ingestsArchive`` when an argument, or anything found below one, is the archive
    ///   or part of it (nothing is returned: the whole run is refused).
    package static func scan(_ arguments: [String], rules: ScanRules) throws -> ScanResult {
        var result = ScanResult()
        for argument in arguments {
            try rules.archive?.check(argument: argument)
        }
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
            if let archive = rules.archive, archive.isPart(FileIdentity(st)) {
                throw archive.refusal(argument, "is part of the archive \(archive.root)")
            }
            let base = path.split(separator: "/").last.map(String.init) ?? path
            if POSIX.isDirectory(st.st_mode) {
                let fd = POSIX.open(path, O_RDONLY | O_DIRECTORY)
                guard fd >= 0 else {
                    result.problems.append(
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
                    result.problems.append(
                        ScanProblem(path: path, .changedDuringScan, reason: "changed while it was scanned")
                    )
                    continue
                }
                var walk = Walk(rules: rules, result: result)
                try walk.walk(
                    ScannedFolder(parent: nil, name: Array(path.utf8), identity: FileIdentity(st)),
                    fd: fd,
                    path: Array(path.utf8),
                    display: Array(base.utf8),
                    relative: [],
                    absolute: Array(canonicalPath(path).utf8),
                    depth: 0
                )
                result = walk.result
            } else if POSIX.isRegular(st.st_mode) {
                if let problem = readabilityProblem(Array(path.utf8), in: AT_FDCWD) {
                    result.problems.append(ScanProblem(path: path, .unreadable, reason: problem))
                } else {
                    let folder = canonicalPath(POSIX.parentDirectory(of: path))
                    result.files.append(
                        SourceFile(
                            path: path,
                            displayPath: base,
                            size: Int64(st.st_size),
                            folder: nil,
                            name: Array(path.utf8),
                            identity: FileIdentity(st),
                            rawDisplayPath: Array(base.utf8),
                            absolutePath: Array((folder == "/" ? "" : folder).utf8) + [0x2F] + Array(base.utf8)
                        )
                    )
                }
            } else {
                result.problems.append(
                    ScanProblem(path: path, .notRegularFile, reason: "not a regular file or folder")
                )
            }
        }
        return result
    }

    fileprivate static func readabilityProblem(_ name: [UInt8], in folder: Int32) -> String? {
        // The effective ids decide, as they will when the file is opened for reading.
        guard withCString(name, { faccessat(folder, $0, R_OK, AT_EACCESS) }) == 0 else {
            return "cannot be read: \(errnoDescription(errno))"
        }
        return nil
    }

    /// Calls `body` with `name` as a NUL-terminated C string (a file name holds no NUL).
    static func withCString<R>(_ name: [UInt8], _ body: (UnsafePointer<CChar>) -> R) -> R {
        (name + [0]).withUnsafeBufferPointer { bytes in
            bytes.withMemoryRebound(to: CChar.self) { c in
                // Never nil: the buffer holds at least the terminating NUL.
                guard let base = c.baseAddress else { return body("") }
                return body(base)
            }
        }
    }

    /// One folder argument's walk: the rules and what was found so far.
    private struct Walk {
        let rules: ScanRules
        var result: ScanResult
        var visited = Set<FileIdentity>()

        init(rules: ScanRules, result: ScanResult) {
            self.rules = rules
            self.result = result
        }

        /// Walks the open folder `fd` (reached as `folder`): every entry is looked at and opened relative to it,
        /// never by a path, and a sub-folder is opened without following a link, so what is listed is what was
        /// found inside the folder given even while others rename things in it.
        ///
        /// - Parameters:
        ///   - folder: The folder.
        ///   - fd: It, open.
        ///   - directory: The folder's path to open and show (as given, then entry names).
        ///   - display: Its path as recorded (the given folder's own name, then entry names).
        ///   - relative: Its path below the folder given (empty for that folder).
        ///   - absolute: Its real path (the given folder's with links resolved, then entry names).
        ///   - depth: How deep below the folder given it is.
        /// - Throws: ``ArchiveError`` (``ArchiveError/Reason/ingestsArchive``) on meeting the archive.
        mutating func walk(
            _ folder: ScannedFolder,
            fd: Int32,
            path directory: [UInt8],
            display: [UInt8],
            relative: [UInt8],
            absolute: [UInt8],
            depth: Int
        ) throws {
            let shown = String(decoding: directory, as: UTF8.self)
            if let archive = rules.archive, archive.isPart(folder.identity) {
                throw archive.refusal(shown, "is part of the archive \(archive.root)")
            }
            guard depth < maxDepth else {
                result.problems.append(
                    ScanProblem(path: shown, .tooDeep, reason: "nested more than \(maxDepth) folders deep")
                )
                return
            }
            guard visited.insert(folder.identity).inserted else {
                result.problems.append(ScanProblem(path: shown, .folderLoop, reason: "folder loop (already visited)"))
                return
            }
            defer { visited.remove(folder.identity) }
            let copy = dup(fd)
            guard copy >= 0, let dir = fdopendir(copy) else {
                let code = errno
                if copy >= 0 { close(copy) }
                result.problems.append(
                    ScanProblem(path: shown, .unreadable, reason: "folder cannot be read: \(errnoDescription(code))")
                )
                return
            }
            var entries = POSIX.directoryEntries(dir)
            closedir(dir)
            entries.sort { $0.lexicographicallyPrecedes($1) }
            for name in entries {
                let childBytes = directory + [0x2F] + name
                let childShown =
                    String(validating: childBytes, as: UTF8.self) ?? ItemMetadata.escapingInvalidUTF8(childBytes)
                let childRelative = relative.isEmpty ? name : relative + [0x2F] + name
                var child = stat()
                guard withCString(name, { fstatat(fd, $0, &child, AT_SYMLINK_NOFOLLOW) }) == 0 else {
                    result.problems.append(
                        ScanProblem(path: childShown, .unreadable, reason: "cannot be read: \(errnoDescription(errno))")
                    )
                    continue
                }
                let isFolder = POSIX.isDirectory(child.st_mode)
                if let pattern = rules.exclusions.excluding(name: name, relative: childRelative, isFolder: isFolder) {
                    result.excluded.append(
                        ExcludedEntry(
                            path: childShown,
                            isFolder: isFolder,
                            pattern: pattern.text,
                            absolutePath: absolute + [0x2F] + name
                        )
                    )
                    continue
                }
                if let archive = rules.archive, archive.isPart(FileIdentity(child)) {
                    throw archive.refusal(childShown, "is part of the archive \(archive.root)")
                }
                let childDisplay = display + [0x2F] + name
                let childAbsolute = absolute + [0x2F] + name
                if POSIX.isSymlink(child.st_mode) {
                    result.problems.append(
                        ScanProblem(
                            path: childShown,
                            .symbolicLink,
                            reason: "symbolic link refused (links are not followed)"
                        )
                    )
                } else if isFolder {
                    let childFD = openDirectory(name, in: fd)
                    var opened = stat()
                    guard childFD >= 0, fstat(childFD, &opened) == 0, FileIdentity(opened) == FileIdentity(child)
                    else {
                        let problem =
                            childFD >= 0
                            ? ScanProblem(path: childShown, .changedDuringScan, reason: "changed while it was scanned")
                            : FileOpening.problem(childShown, errno, folder: true)
                        if childFD >= 0 { close(childFD) }
                        result.problems.append(problem)
                        continue
                    }
                    defer { close(childFD) }
                    try walk(
                        ScannedFolder(parent: folder, name: name, identity: FileIdentity(child)),
                        fd: childFD,
                        path: childBytes,
                        display: childDisplay,
                        relative: childRelative,
                        absolute: childAbsolute,
                        depth: depth + 1
                    )
                } else if POSIX.isRegular(child.st_mode) {
                    if let problem = readabilityProblem(name, in: fd) {
                        result.problems.append(ScanProblem(path: childShown, .unreadable, reason: problem))
                    } else {
                        result.files.append(
                            SourceFile(
                                path: childShown,
                                displayPath: String(decoding: childDisplay, as: UTF8.self),
                                size: Int64(child.st_size),
                                folder: folder,
                                name: name,
                                identity: FileIdentity(child),
                                rawDisplayPath: childDisplay,
                                absolutePath: childAbsolute
                            )
                        )
                    }
                } else {
                    result.problems.append(
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

    /// Opens the folder `name` (raw bytes) in the open folder `parent` without following a link, as
    /// ``POSIX/openDirectory(_:in:)`` does for a UTF-8 name.
    static func openDirectory(_ name: [UInt8], in parent: Int32) -> Int32 {
        var fd: Int32
        repeat {
            fd = withCString(name) { openat(parent, $0, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC) }
        } while fd < 0 && errno == EINTR
        if fd < 0, errno == ENOTDIR {
            var st = stat()
            if withCString(name, { fstatat(parent, $0, &st, AT_SYMLINK_NOFOLLOW) }) == 0, POSIX.isSymlink(st.st_mode) {
                errno = ELOOP
            }
        }
        return fd
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
            fd = FileScanner.openDirectory(name, in: parentFD)
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
            repeat {
                fd = FileScanner.withCString(name) {
                    openat(folderFD, $0, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY | O_CLOEXEC)
                }
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
