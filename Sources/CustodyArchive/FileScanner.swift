#if canImport(Glibc)
import Glibc
#endif

/// A file found for ingest.
package struct SourceFile: Sendable, Equatable {
    /// The path to open.
    package var path: String
    /// The path shown and recorded: relative to the folder given (starting with its name), or as given.
    package var displayPath: String
    /// Size when scanned.
    package var size: Int64
}

/// A file or folder that will not be ingested, and why.
package struct ScanProblem: Error, Sendable, Equatable, CustomStringConvertible {
    /// The path (non-UTF-8 bytes shown as U+FFFD).
    package var path: String
    /// Why it was refused.
    package var reason: String

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
                var visited = Set<[UInt64]>()
                walk(
                    directory: Array(path.utf8),
                    display: base,
                    depth: 0,
                    visited: &visited,
                    files: &files,
                    problems: &problems
                )
            } else if POSIX.isRegular(st.st_mode) {
                if let problem = readabilityProblem(path) {
                    problems.append(ScanProblem(path: path, reason: problem))
                } else {
                    files.append(SourceFile(path: path, displayPath: base, size: Int64(st.st_size)))
                }
            } else {
                problems.append(ScanProblem(path: path, reason: "not a regular file or folder"))
            }
        }
        return (files, problems)
    }

    private static func readabilityProblem(_ path: String) -> String? {
        // The effective ids decide, as they will when the file is opened for reading.
        guard faccessat(AT_FDCWD, path, R_OK, AT_EACCESS) == 0 else {
            return "cannot be read: \(errnoDescription(errno))"
        }
        return nil
    }

    private static func walk(
        directory: [UInt8],
        display: String,
        depth: Int,
        visited: inout Set<[UInt64]>,
        files: inout [SourceFile],
        problems: inout [ScanProblem]
    ) {
        let shown = String(decoding: directory, as: UTF8.self)
        guard depth < maxDepth else {
            problems.append(ScanProblem(path: shown, reason: "nested more than \(maxDepth) folders deep"))
            return
        }
        guard let st = POSIX.statPath(shown) else {
            problems.append(ScanProblem(path: shown, reason: "cannot be read: \(errnoDescription(errno))"))
            return
        }
        let key = [UInt64(st.st_dev), UInt64(st.st_ino)]
        guard visited.insert(key).inserted else {
            problems.append(ScanProblem(path: shown, reason: "folder loop (already visited)"))
            return
        }
        defer { visited.remove(key) }
        guard let dir = opendir(shown) else {
            problems.append(ScanProblem(path: shown, reason: "folder cannot be read: \(errnoDescription(errno))"))
            return
        }
        var entries: [[UInt8]] = []
        while let entry = readdir(dir) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { raw in Array(raw.prefix { $0 != 0 }) }
            if name == [0x2E] || name == [0x2E, 0x2E] { continue }
            entries.append(name)
        }
        closedir(dir)
        entries.sort { $0.lexicographicallyPrecedes($1) }
        for name in entries {
            let childBytes = directory + [0x2F] + name
            let childShown = String(decoding: childBytes, as: UTF8.self)
            guard let nameText = String(validating: name, as: UTF8.self) else {
                problems.append(ScanProblem(path: childShown, reason: "file name is not valid UTF-8 (rename it)"))
                continue
            }
            guard let child = POSIX.lstatPath(childShown) else {
                problems.append(ScanProblem(path: childShown, reason: "cannot be read: \(errnoDescription(errno))"))
                continue
            }
            let childDisplay = display + "/" + nameText
            if POSIX.isSymlink(child.st_mode) {
                problems.append(ScanProblem(path: childShown, reason: "symbolic link refused (links are not followed)"))
            } else if POSIX.isDirectory(child.st_mode) {
                walk(
                    directory: childBytes,
                    display: childDisplay,
                    depth: depth + 1,
                    visited: &visited,
                    files: &files,
                    problems: &problems
                )
            } else if POSIX.isRegular(child.st_mode) {
                if let problem = readabilityProblem(childShown) {
                    problems.append(ScanProblem(path: childShown, reason: problem))
                } else {
                    files.append(SourceFile(path: childShown, displayPath: childDisplay, size: Int64(child.st_size)))
                }
            } else {
                problems.append(ScanProblem(path: childShown, reason: "not a regular file (device, pipe or socket)"))
            }
        }
    }
}
