import CustodyStorage

#if canImport(Glibc)
import Glibc
#endif

/// The archive's own folder, as `ingest` must never take it: its device and inode, and those of everything at
/// most two levels below it (`objects/` and its shard folders, `journal/` and its files, `index.sqlite`,
/// `keys.json`, `members/*`…).
///
/// Paths are compared by the device and inode of each folder, never by their text, so a symbolic link, `..`, a
/// second mount of the same folder (a bind mount) or a hard link to one of its files is recognised as well as the
/// path the archive was opened at. The rule holds whatever stores the objects: an archive whose objects are on S3
/// still keeps its index, keys and journal in this folder.
package struct ArchiveGuard: Sendable {
    /// The archive folder, links resolved.
    package let root: String
    /// The archive folder's device and inode.
    let rootIdentity: FileIdentity
    /// The folder's, and those of its entries and of its folders' entries.
    let identities: Set<FileIdentity>

    /// The entries of each folder of the archive looked at, at most (a `grants/` of many files is not listed
    /// beyond this).
    static let maxEntriesPerFolder = 100_000

    /// Looks at the archive folder `root`.
    ///
    /// - Throws: ``ArchiveError`` (not found) when the folder cannot be looked at.
    package init(root: String) throws {
        let resolved = canonicalPath(root)
        guard let st = POSIX.statPath(resolved), POSIX.isDirectory(st.st_mode) else {
            throw ArchiveError(.notFound, "cannot look at the archive folder \(root)", fix: "check the path")
        }
        self.root = resolved
        rootIdentity = FileIdentity(st)
        var identities: Set<FileIdentity> = [rootIdentity]
        for entry in Self.entries(of: resolved) {
            guard let child = POSIX.lstatPath(resolved + "/" + entry) else { continue }
            identities.insert(FileIdentity(child))
            // A link inside the archive is never followed by the archive either; what it points to is not its.
            guard POSIX.isDirectory(child.st_mode) else { continue }
            for inner in Self.entries(of: resolved + "/" + entry) {
                if let grandchild = POSIX.lstatPath(resolved + "/" + entry + "/" + inner) {
                    identities.insert(FileIdentity(grandchild))
                }
            }
        }
        self.identities = identities
    }

    private static func entries(of folder: String) -> [String] {
        let fd = POSIX.openDirectory(folder)
        guard fd >= 0 else { return [] }
        defer { close(fd) }
        guard let dir = fdopendir(dup(fd)) else { return [] }
        defer { closedir(dir) }
        return POSIX.directoryEntries(dir).prefix(maxEntriesPerFolder).map { String(decoding: $0, as: UTF8.self) }
    }

    /// Whether `identity` is the archive folder or one of the things in it that were looked at.
    func isPart(_ identity: FileIdentity) -> Bool { identities.contains(identity) }

    /// Refuses `argument` (a path given to `ingest`) when it is the archive, inside it, or holds it.
    ///
    /// Its real path is walked up to `/`, each folder on the way compared with the archive's; then the archive's
    /// real path is walked up, each folder compared with the argument's. A path that does not exist is left to
    /// the scan, which reports it.
    ///
    /// - Throws: ``ArchiveError`` (``ArchiveError/Reason/ingestsArchive``, a usage error).
    package func check(argument: String) throws {
        let resolved = canonicalPath(argument)
        guard let st = POSIX.statPath(resolved) else { return }
        let identity = FileIdentity(st)
        if identity == rootIdentity {
            throw refusal(argument, "is the archive itself")
        }
        var current = resolved
        while true {
            if let here = POSIX.statPath(current), isPart(FileIdentity(here)) {
                throw refusal(argument, "is inside the archive \(root)")
            }
            guard current != "/", !current.isEmpty else { break }
            current = POSIX.parentDirectory(of: current)
        }
        guard POSIX.isDirectory(st.st_mode) else { return }
        current = root
        while current != "/" && !current.isEmpty {
            current = POSIX.parentDirectory(of: current)
            if let here = POSIX.statPath(current), FileIdentity(here) == identity {
                throw refusal(argument, "holds the archive \(root)")
            }
        }
    }

    /// The error for a path that leads into the archive.
    func refusal(_ path: String, _ why: String) -> ArchiveError {
        ArchiveError(
            .ingestsArchive,
            "refusing to ingest \(path): it \(why); nothing was ingested",
            fix: "ingest the evidence from a folder outside the archive"
        )
    }
}

extension ArchiveError.Reason {
    /// A path given to `ingest` is the archive, inside it, or holds it (its keys, index and journal would become
    /// evidence).
    package static let ingestsArchive = Self("ingests-archive", .usage)
}
