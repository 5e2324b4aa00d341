import CustodyCrypto
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
        let bytes = try POSIX.readFile(path, limit: Checkpoint.maxNoteBytes)
        guard
            let checkpoint = Checkpoint.verified(
                String(decoding: bytes, as: UTF8.self),
                origin: origin,
                publicKey: logPublicKey
            )
        else {
            throw ArchiveError(
                .damaged,
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
        let bytes = try POSIX.readFile(path, limit: Checkpoint.maxNoteBytes)
        guard
            let checkpoint = Checkpoint.verified(
                String(decoding: bytes, as: UTF8.self),
                origin: origin,
                publicKey: logPublicKey
            ),
            checkpoint.size == size
        else {
            throw ArchiveError(
                .damaged,
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
        try POSIX.writeFileAtomically(historyDirectory + "/\(checkpoint.size)", Array(checkpoint.note.utf8))
        // The latest checkpoint, as tlog-tiles clients fetch it, carries its cosignatures too.
        if let latest = try latestCheckpoint(), latest.body == checkpoint.body {
            try POSIX.writeFileAtomically(logDirectory + "/checkpoint", Array(checkpoint.note.utf8))
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
            try POSIX.writeFileAtomically(path, file.bytes, durable: false)
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
                    try POSIX.writeFileAtomically(logDirectory + "/" + path, prefix, durable: false)
                }
            }
        }
        CrashPoint.hit("tiles-written")
        let checkpoint = Checkpoint.signed(origin: origin, size: builder.size, root: builder.root(), key: logKey)
        try store(checkpoint)
        CrashPoint.hit("checkpoint-signed")
        try POSIX.writeFileAtomically(treePath, Array("\(newEnd.count) \(newEnd.offset)\n".utf8), durable: false)
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
            try POSIX.writeFileAtomically(historyDirectory + "/\(checkpoint.size)", Array(checkpoint.note.utf8))
        }
        let code2 = POSIX.makeDirectories(logDirectory)
        guard code2 == 0 else { throw ArchiveError.writeFailed("cannot create \(logDirectory)", errno: code2) }
        try POSIX.writeFileAtomically(logDirectory + "/checkpoint", Array(checkpoint.note.utf8))
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
                    .damaged,
                    "the journal holds \(count) entries but the log signed a checkpoint of \(size): entries were removed (a journal restored from an older backup?)",
                    fix: "restore journal/entries from the newest backup, then run custody verify"
                )
            case .root, .tiles:
                throw ArchiveError(
                    .damaged,
                    "the journal's first \(size) entries do not hash to the root the log signed at that size: the history was altered",
                    fix: "run custody verify to find the first bad entry, and restore the journal from a backup"
                )
            }
        }
        return (builder, position, true)
    }

    /// The edge stored in the tiles, at the size `journal/tree` records (never past the checkpoint).
    private func hintedEdge(notAfter limit: Int) throws -> (TreeBuilder, JournalPosition)? {
        guard let bytes = try? POSIX.readFile(treePath, limit: 64) else { return nil }
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

    // MARK: Proofs

    /// An inclusion proof of one entry in the tree of the latest checkpoint.
    package struct InclusionProof: Sendable {
        /// The entry's index.
        package var index: Int
        /// Its leaf hash, SHA-256(0x00 || entry).
        package var leafHash: [UInt8]
        /// The audit path, leaf to root.
        package var proof: [[UInt8]]
        /// The checkpoint the proof leads to.
        package var checkpoint: Checkpoint

        /// The C2SP tlog-proof text: `c2sp.org/tlog-proof@v1`, `index N`, the hashes in base64 one a line,
        /// an empty line, the checkpoint.
        package var text: String {
            "c2sp.org/tlog-proof@v1\nindex \(index)\n" + proof.map { Encoding.base64($0) + "\n" }.joined() + "\n"
                + checkpoint.note
        }
    }

    /// A consistency proof between an earlier tree size and the latest checkpoint.
    package struct ConsistencyProof: Sendable {
        /// The earlier size.
        package var first: Int
        /// The proof hashes.
        package var proof: [[UInt8]]
        /// The latest checkpoint (size `second`).
        package var checkpoint: Checkpoint

        /// The C2SP tlog-witness add-checkpoint request body: `old N`, the hashes in base64 one a line, an empty
        /// line, the checkpoint.
        package var witnessRequest: String {
            "old \(first)\n" + proof.map { Encoding.base64($0) + "\n" }.joined() + "\n" + checkpoint.note
        }
    }

    /// The latest checkpoint, which proofs need.
    private func requireCheckpoint() throws -> Checkpoint {
        guard let checkpoint = try latestCheckpoint() else {
            throw ArchiveError(
                .notFound,
                "the log has no signed checkpoint yet",
                fix: "run custody checkpoint --sign, or any command that records an event"
            )
        }
        return checkpoint
    }

    /// Proves that `entry` is leaf `index` of the tree the latest checkpoint signs (or `checkpoint`, one the
    /// log signed earlier).
    ///
    /// The proof is checked against the checkpoint before it is returned.
    package func inclusionProof(index: Int, entry: [UInt8], at given: Checkpoint? = nil) throws -> InclusionProof {
        let lock = try journal.lockForReading()
        defer { withExtendedLifetime(lock) {} }
        let checkpoint = try given ?? requireCheckpoint()
        guard index < checkpoint.size else {
            throw ArchiveError(
                .notFound,
                "log entry \(index) is not covered by the latest checkpoint (size \(checkpoint.size)) yet",
                fix: "run custody checkpoint --sign"
            )
        }
        return try checkedInclusionProof(index: index, leafHash: Merkle.leafHash(entry), checkpoint: checkpoint)
    }

    /// The inclusion proof of leaf `index` from the tiles, checked against `checkpoint` before it is returned.
    private func checkedInclusionProof(index: Int, leafHash: [UInt8], checkpoint: Checkpoint) throws -> InclusionProof {
        let reader = TileReader(directory: logDirectory, size: checkpoint.size)
        let proof = try Merkle.inclusionProof(index: index, size: checkpoint.size, subtree: reader.subtree)
        guard
            let root = Merkle.root(fromInclusionProof: proof, leafHash: leafHash, index: index, size: checkpoint.size),
            constantTimeEqual(root, checkpoint.root)
        else {
            throw ArchiveError(
                .damaged,
                "the log's tiles do not prove entry \(index) against the signed checkpoint",
                fix: "run custody verify; custody reindex rebuilds the tiles from the journal"
            )
        }
        return InclusionProof(index: index, leafHash: leafHash, proof: proof, checkpoint: checkpoint)
    }

    /// Proves that leaf `index` (its hash read from the tiles) is in the tree of the latest checkpoint, for a
    /// client that has the entry from elsewhere (the entry tiles, a bundle).
    ///
    /// - Throws: ``ArchiveError``: not found when the latest checkpoint does not cover `index`.
    package func inclusionProof(index: Int) throws -> InclusionProof {
        let lock = try journal.lockForReading()
        defer { withExtendedLifetime(lock) {} }
        let checkpoint = try requireCheckpoint()
        guard index >= 0, index < checkpoint.size else {
            throw ArchiveError(
                .notFound,
                "log entry \(index) is not covered by the latest checkpoint (size \(checkpoint.size))",
                fix: "give an index below \(checkpoint.size)"
            )
        }
        let leafHash = try TileReader(directory: logDirectory, size: checkpoint.size).subtree(index, 1)
        return try checkedInclusionProof(index: index, leafHash: leafHash, checkpoint: checkpoint)
    }

    /// Proves that the tree of the latest checkpoint extends the tree of its first `first` entries.
    ///
    /// - Throws: ``ArchiveError`` (usage) when `first` is larger than the latest checkpoint's size.
    package func consistencyProof(from first: Int) throws -> ConsistencyProof {
        let lock = try journal.lockForReading()
        defer { withExtendedLifetime(lock) {} }
        let checkpoint = try requireCheckpoint()
        guard first >= 0, first <= checkpoint.size else {
            throw ArchiveError(
                .usage,
                "the log has \(checkpoint.size) entries, fewer than \(first)",
                fix: "give an earlier size, at most \(checkpoint.size)"
            )
        }
        let reader = TileReader(directory: logDirectory, size: checkpoint.size)
        let proof = try Merkle.consistencyProof(first: first, second: checkpoint.size, subtree: reader.subtree)
        let firstRoot = try reader.subtree(0, first)
        var sound = Merkle.isConsistent(
            proof,
            first: first,
            second: checkpoint.size,
            firstRoot: firstRoot,
            secondRoot: checkpoint.root
        )
        if let signed = try? storedCheckpoint(size: first), signed.root != firstRoot { sound = false }
        guard sound else {
            throw ArchiveError(
                .damaged,
                "the log's tiles do not prove size \(first) consistent with the signed checkpoint",
                fix: "run custody verify; custody reindex rebuilds the tiles from the journal"
            )
        }
        return ConsistencyProof(first: first, proof: proof, checkpoint: checkpoint)
    }
}

/// Audits the ledger while `verify` reads the journal: recomputes the tree from every entry, compares its root
/// with every checkpoint the log signed, and compares every file under `log/tile/` — full and partial tiles and
/// entry bundles, stale partial ones included — with the journal.
///
/// Problems are named for what is damaged. The signed checkpoints decide: when the journal reproduces every
/// signed root, any tile that differs from it is a damaged tile (`tile-mismatch`); when it does not, the journal
/// was altered (`ledger-mismatch`), and the first altered entry is named only when the stored tiles prove their
/// own hash of that leaf into the signed tree.
struct LedgerAudit {
    private let ledger: Ledger
    private var builder = TreeBuilder()
    /// The signed roots still to compare, by size (the history and the latest checkpoint).
    private var signed: [Int: [UInt8]] = [:]
    /// Every signed root, by size.
    private var allSigned: [Int: [UInt8]] = [:]
    /// The newest signed checkpoint's size (0 when there is none).
    private(set) var latestSize = 0
    /// Whether the log has a signed checkpoint.
    var hasCheckpoint: Bool { !allSigned.isEmpty }
    /// How many signed checkpoints there are to check.
    var checkpointCount: Int { allSigned.count }
    private var leafTile: (index: Int, hashes: [[UInt8]])?
    /// The first entry whose leaf hash differs from the stored level-0 tile, and the tile's hash.
    private var firstDifferingLeaf: (index: Int, stored: [UInt8])?
    /// The smallest signed size whose root the entries do not reproduce.
    private var firstBadRoot: Int?
    /// Tile files (paths under `log/`) that differ from the journal or are missing, with what is wrong.
    private var differingTiles: [(path: String, what: String)] = []
    /// Tile files compared with the journal.
    private var checkedTiles: Set<String> = []
    /// The newest partial version of each tile or bundle not full yet, by its full path, to compare at the end.
    private var pendingPartials: [String: TreeBuilder.TileFile] = [:]
    private(set) var problems: [VerifyProblem] = []
    private(set) var warnings: [String] = []

    init(_ ledger: Ledger) {
        self.ledger = ledger
        var served: Checkpoint?
        do {
            served = try ledger.latestCheckpoint()
            if let served { signed[served.size] = served.root }
        } catch let error as ArchiveError {
            problems.append(VerifyProblem(kind: "checkpoint-invalid", detail: error.problem))
        } catch {
            problems.append(VerifyProblem(kind: "checkpoint-invalid", detail: "log/checkpoint cannot be read"))
        }
        for size in ledger.checkpointSizes() {
            do {
                let checkpoint = try ledger.storedCheckpoint(size: size)
                if let latest = signed[size], latest != checkpoint.root {
                    problems.append(
                        VerifyProblem(
                            kind: "checkpoint-fork",
                            detail:
                                "the log signed two different trees of size \(size) (log/checkpoint and journal/checkpoints/\(size))"
                        )
                    )
                }
                signed[size] = checkpoint.root
            } catch let error as ArchiveError {
                problems.append(VerifyProblem(kind: "checkpoint-invalid", detail: error.problem))
            } catch {
                problems.append(
                    VerifyProblem(kind: "checkpoint-invalid", detail: "journal/checkpoints/\(size) cannot be read")
                )
            }
        }
        // Every file in the history is a checkpoint named by its size; anything else there is reported, not skipped.
        for name in ((try? listDirectory(ledger.historyDirectory)) ?? []).sorted()
        where Int(name).map({ String($0) != name }) ?? true {
            if name.contains(".tmp-") {
                warnings.append(
                    "journal/checkpoints/\(TerminalText.escape(name)) is a temporary file left by an interrupted write"
                )
            } else {
                problems.append(
                    VerifyProblem(
                        kind: "checkpoint-invalid",
                        detail:
                            "journal/checkpoints/\(TerminalText.escape(name)) is not a checkpoint of this log (its name is not a tree size); remove it"
                    )
                )
            }
        }
        allSigned = signed
        // Everything up to the newest signed size is checked, whichever file holds it.
        latestSize = signed.keys.max() ?? 0
        if signed.isEmpty {
            warnings.append("the log has no signed checkpoint yet; custody checkpoint --sign signs one")
        } else if let served, served.size < latestSize {
            warnings.append(
                "log/checkpoint (size \(served.size)) is older than journal/checkpoints/\(latestSize), the newest checkpoint the log signed (an interrupted append?); custody checkpoint --sign rewrites it"
            )
        }
    }

    /// Feeds the next journal entry.
    mutating func add(_ entry: [UInt8]) {
        let leaf = Merkle.leafHash(entry)
        builder.append(entry: entry, leafHash: leaf)
        let index = builder.size - 1
        if index < latestSize { compareLeaf(leaf, at: index) }
        if builder.size % Tiles.width == 0 { compareTiles(final: false) }
        if let root = signed[builder.size], !constantTimeEqual(root, builder.root()) {
            firstBadRoot = builder.size
            signed = signed.filter { $0.key < builder.size }  // one report is enough; later roots differ too
        }
    }

    /// Compares a leaf with the stored level-0 tile, remembering the first that differs (to be judged at the end).
    private mutating func compareLeaf(_ leaf: [UInt8], at index: Int) {
        guard firstDifferingLeaf == nil else { return }
        let tileIndex = index / Tiles.width
        if leafTile?.index != tileIndex {
            let reader = TileReader(directory: ledger.logDirectory, size: latestSize)
            leafTile = (tileIndex, (try? reader.hashes(level: 0, index: tileIndex)) ?? [])
        }
        guard let stored = leafTile?.hashes, index % Tiles.width < stored.count,
            !constantTimeEqual(stored[index % Tiles.width], leaf)
        else { return }
        firstDifferingLeaf = (index, stored[index % Tiles.width])
    }

    /// Compares every stored version of the tiles and bundles completed so far (at the end: all of them) with the
    /// journal: the full file and every partial one under `<path>.p/`, each a prefix of what the journal gives.
    private mutating func compareTiles(final: Bool) {
        // A partial tile is compared once it is final: when its group turns full, or at the journal's end. (A
        // higher level's partial tile may be drained long before the end, so the newest one is kept till then.)
        var files: [TreeBuilder.TileFile] = []
        for file in builder.drainChangedTiles() {
            if file.isFull {
                pendingPartials[file.fullPath] = nil
                files.append(file)
            } else {
                pendingPartials[file.fullPath] = file
            }
        }
        if final {
            files += pendingPartials.values.sorted { $0.path < $1.path }
            pendingPartials = [:]
        }
        for file in files {
            let full = file.fullPath
            // Only canonical widths 1–255 name a partial tile; anything else stays unchecked (unexpected).
            let widths =
                [(path: full, width: Tiles.width)]
                + Tiles.partialVersions(directory: ledger.logDirectory, fullPath: full)
            for (path, width) in widths {
                guard let stat = POSIX.lstatPath(ledger.logDirectory + "/" + path) else { continue }
                // A version wider than the journal's tree cannot be checked: it stays unexpected.
                guard POSIX.isRegular(stat.st_mode), width <= file.width else { continue }
                checkedTiles.insert(path)
                let expected =
                    file.level == nil
                    ? Tiles.bundlePrefix(file.bytes, entries: width) : Array(file.bytes.prefix(width * 32))
                let limit = file.level == nil ? Tiles.width * (Tiles.maxEntryBytes + 2) : Tiles.width * 32
                let stored = try? POSIX.readFile(ledger.logDirectory + "/" + path, limit: limit)
                if stored != expected {
                    differingTiles.append(
                        (
                            path,
                            "does not match the journal, which every signed checkpoint confirms: the tile is damaged"
                        )
                    )
                }
            }
            // The tree of the newest checkpoint needs this tile at its width (or the full one).
            let count = file.level.map { TreeBuilder.nodeCount(size: latestSize, level: $0) } ?? latestSize
            let needed = min(Tiles.width, count - file.index * Tiles.width)
            if needed > 0 {
                let path = needed == Tiles.width ? full : full + ".p/\(needed)"
                if !checkedTiles.contains(path), !checkedTiles.contains(full) {
                    differingTiles.append((path, "is missing (the newest checkpoint's tree needs it)"))
                }
            }
        }
    }

    /// Judges what the journal's end leaves: a truncation, entries not signed yet, altered entries or damaged
    /// tiles, and files under `log/tile/` that are no tile of this log.
    mutating func finish(entries: Int) {
        compareTiles(final: true)
        let truncated = entries < latestSize
        if truncated {
            problems.append(
                VerifyProblem(
                    kind: "ledger-truncated",
                    entry: entries,
                    detail:
                        "the journal holds \(entries) entries but the log signed a checkpoint of size \(latestSize): entries were removed (or the journal restored from an older backup)"
                )
            )
        } else if entries > latestSize, hasCheckpoint {
            warnings.append(
                "\(entries - latestSize) entries after the latest checkpoint (size \(latestSize)) are not signed yet (an interrupted command); custody checkpoint --sign signs them"
            )
        }
        if let size = firstBadRoot {
            judgeAlteredJournal(badSize: size)
        } else if !truncated {
            // The journal reproduces every signed root: whatever differs from it under log/ is the damage.
            for (path, what) in differingTiles {
                problems.append(
                    VerifyProblem(
                        kind: "tile-mismatch",
                        detail:
                            "log/\(path) \(what); custody reindex rebuilds the tiles from the journal"
                    )
                )
            }
            reportUnexpectedTiles()
        }
    }

    /// The journal does not reproduce the root the log signed at `badSize`: names the first altered entry when the
    /// tiles prove it, and reports tiles that do not reproduce the signed root either.
    private mutating func judgeAlteredJournal(badSize: Int) {
        let reader = TileReader(directory: ledger.logDirectory, size: badSize)
        var named: Int?
        if let leaf = firstDifferingLeaf, leaf.index < badSize, let root = allSigned[badSize],
            let proof = try? Merkle.inclusionProof(index: leaf.index, size: badSize, subtree: reader.subtree),
            let proved = Merkle.root(
                fromInclusionProof: proof,
                leafHash: leaf.stored,
                index: leaf.index,
                size: badSize
            ),
            constantTimeEqual(proved, root)
        {
            named = leaf.index
            let tile = Tiles.hashTilePath(level: 0, index: leaf.index / Tiles.width, width: Tiles.width)
            problems.append(
                VerifyProblem(
                    kind: "ledger-mismatch",
                    entry: leaf.index,
                    detail:
                        "log entry \(leaf.index) is not the entry the signed log holds at that position (its leaf hash differs from the one log/\(tile) proves into the checkpoint of size \(badSize)): it was altered, replaced or moved"
                )
            )
        }
        let at = named.map { " (the first entry that differs from the signed log is entry \($0))" } ?? ""
        problems.append(
            VerifyProblem(
                kind: "ledger-mismatch",
                entry: named,
                detail:
                    "entries 0..<\(badSize) do not hash to the root the log signed at size \(badSize)\(at): the history was altered, reordered or replaced"
            )
        )
        let latest = TileReader(directory: ledger.logDirectory, size: latestSize)
        if let root = allSigned[latestSize], (try? latest.root()).map({ constantTimeEqual($0, root) }) != true {
            problems.append(
                VerifyProblem(
                    kind: "tile-mismatch",
                    detail:
                        "the tiles under log/tile/ do not reproduce the root of the checkpoint of size \(latestSize) either; restore the journal, then custody reindex rebuilds them"
                )
            )
        }
    }

    /// Reports every file under `log/tile/` that was not compared with the journal: a path that is no tile or
    /// bundle of this log, a partial tile wider than the tree, a link or other non-regular file.
    private mutating func reportUnexpectedTiles() {
        var found: [String] = []
        // log/ is meant to be servable as it is: besides log/checkpoint, only tiles and bundles belong there.
        for name in (try? listDirectory(ledger.logDirectory)) ?? [] where name != "checkpoint" {
            if name == "tile", let stat = POSIX.lstatPath(ledger.logDirectory + "/tile"),
                POSIX.isDirectory(stat.st_mode)
            {
                Self.walk(ledger.logDirectory, "tile", depth: 0, into: &found)
            } else {
                found.append(name)
            }
        }
        for path in found.sorted() where !checkedTiles.contains(path) {
            if path.contains(".tmp-") {
                warnings.append("log/\(TerminalText.escape(path)) is a temporary file left by an interrupted write")
                continue
            }
            problems.append(
                VerifyProblem(
                    kind: "tile-unexpected",
                    detail:
                        "log/\(TerminalText.escape(path)) is not a tile or entry bundle of this log's tree (planted, or left from another history), yet log/ is meant to be servable as it is; remove it (custody reindex rebuilds the tiles)"
                )
            )
        }
    }

    /// Collects the paths (relative to `root`) of everything under `relative` that is not a directory.
    private static func walk(_ root: String, _ relative: String, depth: Int, into found: inout [String]) {
        guard depth < 12 else { return }  // tile paths are at most 8 deep (x001/x234/…)
        for name in (try? listDirectory(root + "/" + relative)) ?? [] {
            let path = relative + "/" + name
            guard let stat = POSIX.lstatPath(root + "/" + path) else { continue }
            if POSIX.isDirectory(stat.st_mode) {
                walk(root, path, depth: depth + 1, into: &found)
            } else {
                found.append(path)
            }
        }
    }
}

extension Ledger {
    /// What ``audit()`` found.
    package struct AuditReport: Sendable {
        /// Entries read.
        package var entries: Int
        /// Damage: the journal or tiles disagree with what the log signed.
        package var problems: [VerifyProblem]
        /// Not damage (entries not signed yet, no checkpoint yet).
        package var warnings: [String]
    }

    /// Recomputes the tree from every journal entry and checks it against every signed checkpoint and every
    /// tile: the ledger part of `verify`, without the objects.
    package func audit() throws -> AuditReport {
        let lock = try journal.lockForReading()
        defer { withExtendedLifetime(lock) {} }
        var audit = LedgerAudit(self)
        let (end, _) = try journal.scan(from: .start) { audit.add($0.bytes) }
        audit.finish(entries: end.count)
        return AuditReport(entries: end.count, problems: audit.problems, warnings: audit.warnings)
    }
}
