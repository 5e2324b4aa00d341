import CustodyStorage

#if canImport(Glibc)
import Glibc
#endif

/// The nonces of the signed requests a node accepted, kept in `serve-state/nonces` so that a restarted server
/// (after a clean stop or a crash) still refuses their replay (PROTOCOL.md section 2).
///
/// One line per accepted request, `<nonce> <created>\n` (the nonce as received, 32 to 128 ASCII hex digits;
/// `created` in Unix seconds), appended with one `write` and no `fsync`: the line is in the kernel's page cache
/// before the request is answered, so it survives the process being killed at any instant. At start the file
/// is read, lines whose `created` is more than `window` seconds from the clock (requests that would be refused
/// as stale anyway) and malformed lines (a line cut by a power loss) are dropped, and the rest is written back
/// whole (atomically, flushed). The owner compacts it the same way while it runs.
///
/// Not `Sendable`: its owner (``NonceCache``) holds it inside its mutex and uses it only under the lock.
package final class NonceJournal {
    /// The largest journal read at start: three times the nonce cache's capacity of full-length lines.
    static let maxBytes = 64 << 20
    /// The file.
    package let path: String
    /// The nonces read at start that may still be presented, with their `created`.
    package let loaded: [String: Int]
    /// Lines appended since the file was last written whole.
    package private(set) var appended = 0
    private var fd: Int32

    /// Opens (or creates) the journal at `path`, keeping the entries created within `window` seconds of `now`.
    ///
    /// - Throws: ``ArchiveError`` when the file cannot be read or written, or is larger than any journal
    ///   this node writes.
    package init(path: String, now: Int, window: Int) throws {
        self.path = path
        let directory = POSIX.parentDirectory(of: path)
        let code = POSIX.makeDirectories(directory)
        guard code == 0 else { throw ArchiveError.writeFailed("cannot create \(directory)", errno: code) }
        var kept: [String: Int] = [:]
        if POSIX.lstatPath(path) != nil {
            for line in try ArchiveFiles.read(path, limit: Self.maxBytes).split(separator: 0x0A) {
                guard let (nonce, created) = Self.parse(line), abs(now - created) <= window else { continue }
                kept[nonce] = created
            }
        }
        loaded = kept
        fd = -1
        guard rewrite(kept) else { throw ArchiveError.writeFailed("cannot write \(path)", errno: errno) }
    }

    deinit { if fd >= 0 { close(fd) } }

    /// Appends one accepted nonce; `false` when the write failed.
    package func append(_ nonce: String, created: Int) -> Bool {
        let line = Array("\(nonce) \(created)\n".utf8)
        guard fd >= 0, line.withUnsafeBytes({ POSIX.writeAll(fd, $0) }) == 0 else { return false }
        appended += 1
        return true
    }

    /// Replaces the file with exactly `entries` (atomically, flushed); `false` when it could not.
    package func compact(to entries: [String: Int]) -> Bool { rewrite(entries) }

    private func rewrite(_ entries: [String: Int]) -> Bool {
        var text = ""
        text.reserveCapacity(entries.count * 50)
        for (nonce, created) in entries { text += "\(nonce) \(created)\n" }
        do {
            try ArchiveFiles.writeAtomically(path, Array(text.utf8))
        } catch {
            return false
        }
        if fd >= 0 { close(fd) }
        fd = POSIX.open(path, O_WRONLY | O_APPEND | O_NOFOLLOW)
        appended = 0
        return fd >= 0
    }

    /// One line, when it is well formed.
    static func parse(_ line: ArraySlice<UInt8>) -> (String, Int)? {
        guard let space = line.firstIndex(of: 0x20) else { return nil }
        let nonce = line[..<space]
        let created = line[(space + 1)...]
        func isDigit(_ byte: UInt8) -> Bool { (0x30...0x39).contains(byte) }
        guard (32...128).contains(nonce.count),
            nonce.allSatisfy({ isDigit($0) || (0x61...0x66).contains($0) || (0x41...0x46).contains($0) }),
            (1...15).contains(created.count), created.allSatisfy(isDigit),
            let seconds = Int(String(decoding: created, as: UTF8.self))
        else { return nil }
        return (String(decoding: nonce, as: UTF8.self), seconds)
    }
}
