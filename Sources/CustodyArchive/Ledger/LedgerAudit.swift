import CustodyCrypto
import CustodyStorage
import Foundation

#if canImport(Glibc)
import Glibc
#endif

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
            problems.append(VerifyProblem(kind: .checkpointInvalid, detail: error.problem))
        } catch {
            problems.append(VerifyProblem(kind: .checkpointInvalid, detail: "log/checkpoint cannot be read"))
        }
        for size in ledger.checkpointSizes() {
            do {
                let checkpoint = try ledger.storedCheckpoint(size: size)
                if let latest = signed[size], latest != checkpoint.root {
                    problems.append(
                        VerifyProblem(
                            kind: .checkpointFork,
                            detail:
                                "the log signed two different trees of size \(size) (log/checkpoint and journal/checkpoints/\(size))"
                        )
                    )
                }
                signed[size] = checkpoint.root
            } catch let error as ArchiveError {
                problems.append(VerifyProblem(kind: .checkpointInvalid, detail: error.problem))
            } catch {
                problems.append(
                    VerifyProblem(kind: .checkpointInvalid, detail: "journal/checkpoints/\(size) cannot be read")
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
                        kind: .checkpointInvalid,
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
                let stored = try? ArchiveFiles.read(ledger.logDirectory + "/" + path, limit: limit)
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
                    kind: .ledgerTruncated,
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
                        kind: .tileMismatch,
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
                    kind: .ledgerMismatch,
                    entry: leaf.index,
                    detail:
                        "log entry \(leaf.index) is not the entry the signed log holds at that position (its leaf hash differs from the one log/\(tile) proves into the checkpoint of size \(badSize)): it was altered, replaced or moved"
                )
            )
        }
        let at = named.map { " (the first entry that differs from the signed log is entry \($0))" } ?? ""
        problems.append(
            VerifyProblem(
                kind: .ledgerMismatch,
                entry: named,
                detail:
                    "entries 0..<\(badSize) do not hash to the root the log signed at size \(badSize)\(at): the history was altered, reordered or replaced"
            )
        )
        let latest = TileReader(directory: ledger.logDirectory, size: latestSize)
        if let root = allSigned[latestSize], (try? latest.root()).map({ constantTimeEqual($0, root) }) != true {
            problems.append(
                VerifyProblem(
                    kind: .tileMismatch,
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
                    kind: .tileUnexpected,
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
