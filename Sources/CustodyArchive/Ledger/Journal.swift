import CustodyCrypto
import CustodyStorage

#if canImport(Glibc)
import Glibc
#endif

/// A position in the journal: how many entries precede it and at which byte offset.
package struct JournalPosition: Sendable, Equatable, Codable {
    /// Entries before this position.
    package var count: Int
    /// Byte offset of this position in the journal file.
    package var offset: Int64

    /// The start of the journal.
    package static let start = JournalPosition(count: 0, offset: 0)

    package init(count: Int, offset: Int64) {
        self.count = count
        self.offset = offset
    }
}

/// One journal entry: the exact leaf bytes of the custody log.
package struct JournalEntry: Sendable {
    /// Zero-based position in the log.
    package let index: Int
    /// Byte offset of the entry's frame.
    package let offset: Int64
    /// The entry bytes (a signed event).
    package let bytes: [UInt8]
}

/// The append-only event journal (`journal/entries`), the ledger's storage.
///
/// Each entry is stored in a frame: `"CJ1\n"`, a 4-byte big-endian length, the entry bytes, and
/// SHA-256(0x00 || entry) — the entry's RFC 9162 leaf hash, which also detects torn or damaged frames.
/// Appends take `journal/lock`, repair a torn tail left by a crash (keeping the torn bytes aside in
/// `journal/torn-*`), write every frame of a batch with one write, and `fdatasync` once.
package final class Journal: Sendable {
    /// The frame magic.
    static let magic: [UInt8] = Array("CJ1\n".utf8)
    /// Bytes a frame adds around its entry.
    package static let frameOverhead = 4 + 4 + 32
    /// The largest entry accepted (bounds every allocation made while reading).
    package static let maxEntryBytes = 1 << 20

    /// The journal file.
    package let path: String
    private let lockPath: String
    private let directory: String

    /// What follows the last valid frame.
    package enum Tail: Sendable, Equatable {
        /// Nothing: the journal ends with a complete frame.
        case clean
        /// An incomplete frame with no valid frame after it: an interrupted append.
        case torn(offset: Int64, bytes: Int64)
        /// An invalid frame followed by valid ones: damage in the middle of the history.
        case damaged(offset: Int64)
    }

    /// Opens the journal in `directory`, creating the folder if needed.
    package init(directory: String) throws {
        self.directory = directory
        path = directory + "/entries"
        lockPath = directory + "/lock"
        let code = POSIX.makeDirectories(directory)
        guard code == 0 else { throw ArchiveError.writeFailed("cannot create \(directory)", errno: code) }
    }

    /// Reads every valid entry from `position` on, stopping at the first invalid or incomplete frame.
    ///
    /// - Returns: The position after the last valid entry, and what follows it.
    @discardableResult
    package func scan(
        from position: JournalPosition,
        limit: Int = .max,
        _ body: (JournalEntry) throws -> Void
    ) throws -> (
        end: JournalPosition, tail: Tail
    ) {
        let fd = POSIX.open(path, O_RDONLY)
        guard fd >= 0 else {
            if errno == ENOENT { return (position, .clean) }
            throw ArchiveError(
                .cannotCreate,
                "cannot read the journal: \(errnoDescription(errno))",
                fix: "check the archive folder"
            )
        }
        defer { close(fd) }
        var st = stat()
        fstat(fd, &st)
        let fileSize = Int64(st.st_size)
        var current = position
        while current.offset < fileSize && current.count - position.count < limit {
            switch readFrame(fd, at: current.offset, fileSize: fileSize) {
            case .valid(let bytes):
                try body(JournalEntry(index: current.count, offset: current.offset, bytes: bytes))
                current = JournalPosition(
                    count: current.count + 1,
                    offset: current.offset + Int64(bytes.count + Self.frameOverhead)
                )
            case .incomplete:
                // A frame cut short by the end of the file (or a zero-filled tail): an interrupted append,
                // unless a valid frame follows somewhere.
                let tail: Tail =
                    hasValidFrame(fd, after: current.offset, fileSize: fileSize)
                    ? .damaged(offset: current.offset) : .torn(offset: current.offset, bytes: fileSize - current.offset)
                return (current, tail)
            case .invalid:
                // A whole frame whose bytes do not match its hash: damage, never mistaken for a torn write.
                return (current, .damaged(offset: current.offset))
            }
        }
        return (current, .clean)
    }

    /// Appends `entries` durably and returns the position of the first one.
    ///
    /// - Parameters:
    ///   - entries: The entry bytes, each at most ``maxEntryBytes``.
    ///   - hint: A position known to be valid (for example the index's), so the tail check reads only what follows it.
    /// - Returns: The position of the first appended entry.
    /// - Throws: ``ArchiveError`` when the journal is damaged in the middle or cannot be written.
    package func append(_ entries: [[UInt8]], hint: JournalPosition) throws -> JournalPosition {
        let lock = try lockForAppending()
        defer { withExtendedLifetime(lock) {} }
        let end = try cleanEnd(hint: hint)
        try write(entries, at: end)
        return end
    }

    /// Takes `journal/lock` exclusively: every append, and the log's tiles and checkpoints, happen under it.
    func lockForAppending() throws -> FileLock {
        try FileLock(path: lockPath, mode: .exclusive)
    }

    /// Takes `journal/lock` shared: readers that must not see a half-written set of tiles.
    func lockForReading() throws -> FileLock {
        try FileLock(path: lockPath, mode: .shared)
    }

    /// Finds where the next append goes: the end of the valid frames, with a torn tail set aside.
    ///
    /// Call it holding ``lockForAppending()``.
    ///
    /// - Parameter hint: A position known to be valid, so the tail check reads only what follows it.
    /// - Returns: The end of the last whole entry, where the next append goes.
    /// - Throws: ``ArchiveError`` (damaged) when invalid bytes follow the hint and a full scan confirms them.
    func cleanEnd(hint: JournalPosition) throws -> JournalPosition {
        // A hint past the end of the file (a journal restored from an older backup) is never trusted:
        // writing there would leave a hole.
        let start = hint.offset <= byteCount() ? hint : .start
        var (end, tail) = try scan(from: start) { _ in }
        if case .damaged = tail, start != .start {
            // The hint may be stale (a rebuilt index); fall back to a full scan before calling it damage.
            (end, tail) = try scan(from: .start) { _ in }
        }
        switch tail {
        case .clean: break
        case .damaged(let offset):
            throw ArchiveError(
                .damaged,
                "the journal is damaged at byte \(offset)",
                fix: "run custody verify and restore the journal from a backup"
            )
        case .torn(let offset, let count):
            try setTornTailAside(offset: offset, count: count)
        }
        return end
    }

    /// Writes `entries` as frames at `end` (from ``cleanEnd(hint:)``) with one write and one `fdatasync`.
    ///
    /// Call it holding ``lockForAppending()``. On failure the file is cut back to `end`.
    func write(_ entries: [[UInt8]], at end: JournalPosition) throws {
        guard !entries.isEmpty else { return }
        var frames: [UInt8] = []
        for entry in entries {
            precondition(entry.count <= Self.maxEntryBytes, "journal entry too large")
            frames += Self.frame(entry)
        }
        let fd = POSIX.open(path, O_WRONLY | O_CREAT, 0o600)
        guard fd >= 0 else { throw ArchiveError.writeFailed("cannot open the journal", errno: errno) }
        defer { close(fd) }
        guard lseek(fd, off_t(end.offset), SEEK_SET) >= 0 else {
            throw ArchiveError.writeFailed("cannot seek in the journal", errno: errno)
        }
        if CrashPoint.isArmed("journal-partial") {
            _ = frames.withUnsafeBytes { POSIX.writeAll(fd, UnsafeRawBufferPointer(rebasing: $0[..<($0.count / 2)])) }
            fdatasync(fd)
            CrashPoint.hit("journal-partial")
        }
        var code = frames.withUnsafeBytes { POSIX.writeAll(fd, $0) }
        if code == 0, fdatasync(fd) != 0 { code = errno }
        guard code == 0 else {
            // Leave no partial frame behind: cut back to where this append started.
            _ = ftruncate(fd, off_t(end.offset))
            _ = fdatasync(fd)
            throw ArchiveError.writeFailed("cannot append to the journal", errno: code)
        }
        if end.offset == 0 { _ = POSIX.syncDirectory(directory) }
    }

    /// The size of the journal file in bytes (0 when it does not exist yet).
    package func byteCount() -> Int64 {
        POSIX.statPath(path).map { Int64($0.st_size) } ?? 0
    }

    /// Sets a torn tail aside (as ``append(_:hint:)`` does before writing), so the journal ends cleanly.
    package func repairTornTail() throws {
        _ = try append([], hint: .start)
    }

    /// The frame around `entry`.
    package static func frame(_ entry: [UInt8]) -> [UInt8] {
        var out = magic
        let n = UInt32(entry.count)
        out += bigEndianBytes(n)
        out += entry
        out += leafHash(entry)
        return out
    }

    /// RFC 9162 leaf hash: SHA-256(0x00 || entry).
    package static func leafHash(_ entry: [UInt8]) -> [UInt8] { Merkle.leafHash(entry) }

    private enum Frame {
        case valid([UInt8])
        case incomplete
        case invalid
    }

    private func readFrame(_ fd: Int32, at offset: Int64, fileSize: Int64) -> Frame {
        let remaining = fileSize - offset
        guard remaining >= 8 else { return .incomplete }
        var header = [UInt8](repeating: 0, count: 8)
        guard header.withUnsafeMutableBytes({ pread(fd, $0.baseAddress, 8, off_t(offset)) }) == 8 else {
            return .incomplete
        }
        if header.allSatisfy({ $0 == 0 }) && isZero(fd, from: offset, to: fileSize) { return .incomplete }
        guard Array(header[0..<4]) == Self.magic else { return .invalid }
        let length = Int(bigEndianValue(header[4..<8]))
        guard length <= Self.maxEntryBytes else { return .invalid }
        guard offset + Int64(length + Self.frameOverhead) <= fileSize else { return .incomplete }
        var rest = [UInt8](repeating: 0, count: length + 32)
        let n = rest.withUnsafeMutableBytes { pread(fd, $0.baseAddress, length + 32, off_t(offset + 8)) }
        guard n == length + 32 else { return .incomplete }
        let entry = Array(rest[0..<length])
        guard constantTimeEqual(Self.leafHash(entry), rest[length...]) else {
            // The hash is written last: all zeros there means the write never completed (a filesystem that
            // extended the file before the data landed), not a changed byte.
            return rest[length...].allSatisfy { $0 == 0 } ? .incomplete : .invalid
        }
        return .valid(entry)
    }

    /// Whether every byte from `from` to `to` is zero (a file extended by a crash before its data landed).
    private func isZero(_ fd: Int32, from: Int64, to: Int64) -> Bool {
        var position = from
        var buffer = [UInt8](repeating: 0, count: 1 << 16)
        while position < to {
            let want = Int(min(Int64(buffer.count), to - position))
            let n = buffer.withUnsafeMutableBytes { pread(fd, $0.baseAddress, want, off_t(position)) }
            guard n > 0, buffer[0..<n].allSatisfy({ $0 == 0 }) else { return false }
            position += Int64(n)
        }
        return true
    }

    private func hasValidFrame(_ fd: Int32, after offset: Int64, fileSize: Int64) -> Bool {
        // Look for the magic at every later byte and try to read a whole valid frame there.
        var position = offset + 1
        let window = 1 << 20
        while position < fileSize {
            let count = Int(min(Int64(window + 3), fileSize - position))
            var buffer = [UInt8](repeating: 0, count: count)
            let n = buffer.withUnsafeMutableBytes { pread(fd, $0.baseAddress, count, off_t(position)) }
            guard n > 0 else { return false }
            var i = 0
            while i + 4 <= n {
                if buffer[i] == 0x43, buffer[i + 1] == 0x4A, buffer[i + 2] == 0x31, buffer[i + 3] == 0x0A,
                    case .valid = readFrame(fd, at: position + Int64(i), fileSize: fileSize)
                {
                    return true
                }
                i += 1
            }
            position += Int64(window)
        }
        return false
    }

    func setTornTailAside(offset: Int64, count: Int64) throws {
        let fd = POSIX.open(path, O_RDWR)
        guard fd >= 0 else { throw ArchiveError.writeFailed("cannot open the journal", errno: errno) }
        defer { close(fd) }
        let keep = min(count, Int64(Self.maxEntryBytes) * 64)
        var torn = [UInt8](repeating: 0, count: Int(keep))
        _ = torn.withUnsafeMutableBytes { pread(fd, $0.baseAddress, Int(keep), off_t(offset)) }
        try ArchiveFiles.writeAtomically("\(directory)/torn-\(offset)-\(time(nil)).bin", torn)
        guard ftruncate(fd, off_t(offset)) == 0, fdatasync(fd) == 0 else {
            throw ArchiveError.writeFailed("cannot repair the journal's torn tail", errno: errno)
        }
    }
}
