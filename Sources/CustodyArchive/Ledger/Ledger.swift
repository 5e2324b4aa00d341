import CustodyCrypto
import CustodyStorage
import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// The custody ledger: the journal's entries as an RFC 9162 Merkle log, stored as C2SP tlog-tiles, with a
/// signed checkpoint after every append.
///
/// ```
/// <archive>/journal/entries             framed entries: the write-ahead record and source of truth
/// <archive>/journal/tree                "<size> <byte offset>\n": where the tiles end in the journal (a hint)
/// <archive>/journal/checkpoints/<size>  every checkpoint the log signed, with cosignatures attached later
/// <archive>/log/checkpoint              the latest signed checkpoint   } servable as C2SP tlog-tiles,
/// <archive>/log/tile/<L>/<N>[.p/<W>]    hash tiles                     } exactly as they are
/// <archive>/log/tile/entries/<N>[.p/<W>] entry bundles                 }
/// ```
///
/// Appends hold `journal/lock`: frames first (one write, one `fdatasync`), then the tiles, then the checkpoint.
/// The new checkpoint is signed over a root computed from the previous tree's right edge, which is first checked
/// against the previous signed checkpoint, so the log never signs a tree that does not extend what it signed.
package final class Ledger: Sendable {
    /// The journal that stores the entries.
    package let journal: Journal
    /// The log's origin: first line of its checkpoints and the name its key signs under.
    package let origin: String
    /// The log's Ed25519 public key.
    package let logPublicKey: [UInt8]
    /// The folder served as tlog-tiles.
    package let logDirectory: String
    let historyDirectory: String
    let treePath: String

    /// Opens the ledger of the archive at `root`.
    package init(root: String, origin: String, logPublicKey: [UInt8], journal: Journal) {
        self.journal = journal
        self.origin = origin
        self.logPublicKey = logPublicKey
        logDirectory = root + "/log"
        historyDirectory = root + "/journal/checkpoints"
        treePath = root + "/journal/tree"
    }

    // MARK: Checkpoints

    /// The latest signed checkpoint, or `nil` before the first one.
    ///
    /// - Throws: ``ArchiveError`` (damaged) when `log/checkpoint` is not a checkpoint signed by the log key.
    package func latestCheckpoint() throws -> Checkpoint? {
        let path = logDirectory + "/checkpoint"
        guard POSIX.statPath(path) != nil else { return nil }
        let bytes = try ArchiveFiles.read(path, limit: Checkpoint.maxNoteBytes)
        guard
            let checkpoint = Checkpoint.verified(
                String(decoding: bytes, as: UTF8.self),
                origin: origin,
                publicKey: logPublicKey
            )
        else {
            throw ArchiveError(
                .checkpointInvalid,
                "log/checkpoint is not a checkpoint signed by this archive's log key",
                fix: "restore it from journal/checkpoints/ (the newest file) or from a backup"
            )
        }
        return checkpoint
    }

    /// The sizes of every checkpoint the log has signed, ascending.
    package func checkpointSizes() -> [Int] {
        ((try? listDirectory(historyDirectory)) ?? []).compactMap { name in
            guard let size = Int(name), String(size) == name else { return nil }
            return size
        }.sorted()
    }

    /// The checkpoint the log signed at `size`, with any cosignatures attached to it.
    ///
    /// - Throws: ``ArchiveError``: not found when none was signed at that size, damaged when the file is not valid.
    package func storedCheckpoint(size: Int) throws -> Checkpoint {
        let path = historyDirectory + "/\(size)"
        let bytes = try ArchiveFiles.read(path, limit: Checkpoint.maxNoteBytes)
        guard
            let checkpoint = Checkpoint.verified(
                String(decoding: bytes, as: UTF8.self),
                origin: origin,
                publicKey: logPublicKey
            ),
            checkpoint.size == size
        else {
            throw ArchiveError(
                .checkpointInvalid,
                "journal/checkpoints/\(size) is not a checkpoint signed by this archive's log key",
                fix: "restore it from a backup"
            )
        }
        return checkpoint
    }

    /// Replaces the stored checkpoint at `checkpoint.size` by `checkpoint` (the same one with more signature lines).
    func replaceStoredCheckpoint(_ checkpoint: Checkpoint) throws {
        let lock = try journal.lockForAppending()
        defer { withExtendedLifetime(lock) {} }
        let current = try storedCheckpoint(size: checkpoint.size)
        precondition(current.body == checkpoint.body, "only signature lines may change")
        try ArchiveFiles.writeAtomically(historyDirectory + "/\(checkpoint.size)", Array(checkpoint.note.utf8))
        // The latest checkpoint, as tlog-tiles clients fetch it, carries its cosignatures too.
        if let latest = try latestCheckpoint(), latest.body == checkpoint.body {
            try ArchiveFiles.writeAtomically(logDirectory + "/checkpoint", Array(checkpoint.note.utf8))
        }
    }

    // MARK: Appending

    /// Appends `entries` (each at most 65 535 bytes), extends the tiles and signs a new checkpoint.
    ///
    /// With no entries it brings the tiles and checkpoint up to date with the journal (after an interrupted
    /// append, or with `rebuild`, from scratch).
    ///
    /// - Parameters:
    ///   - entries: Signed events.
    ///   - logKey: The log's signing key.
    ///   - rebuild: Recompute every tile from the journal instead of starting from the stored ones.
    /// - Returns: The journal position of the first new entry, and the new checkpoint.
    /// - Throws: ``ArchiveError`` (damaged) when the journal no longer matches the last signed checkpoint
    ///   (entries removed, altered or reordered): then nothing is appended and nothing is signed.
    @discardableResult
    package func append(
        _ entries: [[UInt8]],
        logKey: SigningKey,
        rebuild: Bool = false
    ) throws -> (first: JournalPosition, checkpoint: Checkpoint) {
        if let large = entries.first(where: { $0.count > Tiles.maxEntryBytes }) {
            throw ArchiveError(
                .badInput,
                "an event of \(large.count) bytes is over the log's limit of \(Tiles.maxEntryBytes) bytes",
                fix: "report this: events name large lists in separate objects"
            )
        }
        precondition(logKey.publicKey == logPublicKey, "not this log's key")
        let lock = try journal.lockForAppending()
        defer { withExtendedLifetime(lock) {} }
        let previous = try latestCheckpoint()
        let (synchronized, end, rebuilt) = try synchronize(with: previous, rebuild: rebuild)
        var builder = synchronized
        try journal.write(entries, at: end)
        CrashPoint.hit("journal-appended")
        for entry in entries { builder.append(entry: entry, leafHash: Merkle.leafHash(entry)) }
        let newEnd = JournalPosition(
            count: end.count + entries.count,
            offset: end.offset + Int64(entries.reduce(0) { $0 + $1.count + Journal.frameOverhead })
        )
        if let previous, previous.size == builder.size, !rebuilt {
            return (end, previous)
        }
        let files = builder.drainChangedTiles()
        for file in files {
            let path = logDirectory + "/" + file.path
            let parent = POSIX.parentDirectory(of: path)
            let code = POSIX.makeDirectories(parent)
            guard code == 0 else { throw ArchiveError.writeFailed("cannot create \(parent)", errno: code) }
            try ArchiveFiles.writeAtomically(path, file.bytes, durable: false)
        }
        if rebuilt {
            // Older partial versions kept for older checkpoints are rewritten too, so a rebuild repairs every tile.
            for file in files where !file.isFull {
                for (path, width) in Tiles.partialVersions(directory: logDirectory, fullPath: file.fullPath)
                where width < file.width {
                    let prefix =
                        file.level == nil
                        ? Tiles.bundlePrefix(file.bytes, entries: width) : Array(file.bytes.prefix(width * 32))
                    // A planted folder stays (verify reports what is in it); a planted link is replaced, not followed.
                    guard let stat = POSIX.lstatPath(logDirectory + "/" + path), !POSIX.isDirectory(stat.st_mode)
                    else { continue }
                    try ArchiveFiles.writeAtomically(logDirectory + "/" + path, prefix, durable: false)
                }
            }
        }
        CrashPoint.hit("tiles-written")
        let checkpoint = Checkpoint.signed(origin: origin, size: builder.size, root: builder.root(), key: logKey)
        try store(checkpoint)
        CrashPoint.hit("checkpoint-signed")
        try ArchiveFiles.writeAtomically(treePath, Array("\(newEnd.count) \(newEnd.offset)\n".utf8), durable: false)
        // Partial tiles stay until the full tile exists (clients holding an older checkpoint may ask for them).
        for file in files where file.isFull {
            let partials = logDirectory + "/" + file.path + ".p"
            // Never through a planted link: removeTree lists and unlinks what a link points to.
            guard let stat = POSIX.lstatPath(partials) else { continue }
            if POSIX.isDirectory(stat.st_mode) { POSIX.removeTree(partials) } else { unlink(partials) }
        }
        return (end, checkpoint)
    }

    /// Stores a new checkpoint: in the history first, then as `log/checkpoint`, both durably.
    private func store(_ checkpoint: Checkpoint) throws {
        let code = POSIX.makeDirectories(historyDirectory)
        guard code == 0 else { throw ArchiveError.writeFailed("cannot create \(historyDirectory)", errno: code) }
        if let existing = try? storedCheckpoint(size: checkpoint.size) {
            // Never two different signed trees of one size. (Ed25519 is deterministic: same tree, same note.)
            guard existing.root == checkpoint.root else {
                throw ArchiveError(
                    .damaged,
                    "the log already signed a different tree of size \(checkpoint.size) (journal/checkpoints/\(checkpoint.size)); refusing to sign a fork",
                    fix: "run custody verify and restore the journal from a backup"
                )
            }
        } else {
            try ArchiveFiles.writeAtomically(historyDirectory + "/\(checkpoint.size)", Array(checkpoint.note.utf8))
        }
        let code2 = POSIX.makeDirectories(logDirectory)
        guard code2 == 0 else { throw ArchiveError.writeFailed("cannot create \(logDirectory)", errno: code2) }
        try ArchiveFiles.writeAtomically(logDirectory + "/checkpoint", Array(checkpoint.note.utf8))
    }

    /// Why the stored tree and the journal disagree.
    private enum Mismatch: Error {
        case damaged(offset: Int64)
        case shorter(count: Int)
        case root
        case tiles
    }

    /// The tree of every valid journal entry, checked against `checkpoint`, and the position after it.
    ///
    /// Starts from the tiles' stored edge (`journal/tree`), reading only the entries after it; when that fails
    /// in any way, starts again from entry 0 and recomputes every hash.
    private func synchronize(
        with checkpoint: Checkpoint?,
        rebuild: Bool
    ) throws -> (TreeBuilder, JournalPosition, rebuilt: Bool) {
        if !rebuild, let (builder, position) = try? hintedEdge(notAfter: checkpoint?.size ?? 0) {
            var builder = builder
            var position = position
            if (try? catchUp(&builder, &position, checkpoint: checkpoint)) != nil {
                return (builder, position, false)
            }
        }
        var builder = TreeBuilder()
        var position = JournalPosition.start
        do {
            try catchUp(&builder, &position, checkpoint: checkpoint)
        } catch let mismatch as Mismatch {
            let size = checkpoint?.size ?? 0
            switch mismatch {
            case .damaged(let offset):
                throw ArchiveError(
                    .damaged,
                    "the journal is damaged at byte \(offset)",
                    fix: "run custody verify and restore the journal from a backup"
                )
            case .shorter(let count):
                throw ArchiveError(
                    .journalTruncated,
                    "the journal holds \(count) entries but the log signed a checkpoint of \(size): entries were removed (a journal restored from an older backup?)",
                    fix: "restore journal/entries from the newest backup, then run custody verify"
                )
            case .root, .tiles:
                throw ArchiveError(
                    .historyAltered,
                    "the journal's first \(size) entries do not hash to the root the log signed at that size: the history was altered",
                    fix: "run custody verify to find the first bad entry, and restore the journal from a backup"
                )
            }
        }
        return (builder, position, true)
    }

    /// The edge stored in the tiles, at the size `journal/tree` records (never past the checkpoint).
    private func hintedEdge(notAfter limit: Int) throws -> (TreeBuilder, JournalPosition)? {
        guard let bytes = try? ArchiveFiles.read(treePath, limit: 64) else { return nil }
        let fields = String(decoding: bytes, as: UTF8.self).split(whereSeparator: { $0 == " " || $0 == "\n" })
        guard fields.count == 2, let size = Int(fields[0]), let offset = Int64(fields[1]), size >= 0, offset >= 0,
            size <= limit, offset <= journal.byteCount()
        else { return nil }
        return (
            try TileReader(directory: logDirectory, size: size).builder(), JournalPosition(count: size, offset: offset)
        )
    }

    /// Feeds the journal's entries after `position` to `builder`, checking the root when it reaches the
    /// checkpoint's size, and sets a torn tail aside.
    private func catchUp(
        _ builder: inout TreeBuilder,
        _ position: inout JournalPosition,
        checkpoint: Checkpoint?
    ) throws {
        let target = checkpoint?.size ?? 0
        guard builder.size <= target else { throw Mismatch.tiles }
        if builder.size < target {
            var local = builder
            let (end, tail) = try journal.scan(from: position, limit: target - builder.size) { entry in
                local.append(entry: entry.bytes, leafHash: Merkle.leafHash(entry.bytes))
            }
            builder = local
            position = end
            if builder.size < target {
                if case .damaged(let offset) = tail { throw Mismatch.damaged(offset: offset) }
                throw Mismatch.shorter(count: builder.size)
            }
        }
        if let checkpoint, !constantTimeEqual(builder.root(), checkpoint.root) { throw Mismatch.root }
        var local = builder
        let (end, tail) = try journal.scan(from: position) { entry in
            local.append(entry: entry.bytes, leafHash: Merkle.leafHash(entry.bytes))
        }
        switch tail {
        case .clean: break
        case .damaged(let offset): throw Mismatch.damaged(offset: offset)
        case .torn(let offset, let count): try journal.setTornTailAside(offset: offset, count: count)
        }
        builder = local
        position = end
    }
}
