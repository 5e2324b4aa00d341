import CustodyCrypto
import CustodyStorage

#if canImport(Glibc)
import Glibc
#endif

/// C2SP `tlog-tiles`: tile paths, entry bundles, and hashing a tree from its tiles.
///
/// A hash tile at level L, index N holds up to 256 hashes of tree level 8·L: nodes 256·N … 256·N+255 (level 0
/// holds leaf hashes). A tile with fewer than 256 hashes is partial and lives at `<path>.p/<width>`. An entry
/// bundle holds the entries of the leaves of level-0 tile N, each as a 2-byte big-endian length and the bytes.
package enum Tiles {
    /// Tile height: 2^8 = 256 hashes a tile.
    package static let height = 8
    /// Hashes (or entries) in a full tile.
    package static let width = 256
    /// The largest entry a bundle can carry.
    package static let maxEntryBytes = 0xFFFF

    /// A tile index as path elements: groups of three digits, all but the last prefixed with `x`.
    ///
    /// `1234067` is `x001/x234/067`; `5` is `005`.
    package static func encodeIndex(_ n: Int) -> String {
        precondition(n >= 0, "tile indexes are not negative")
        var groups: [String] = []
        var rest = n
        repeat {
            let group = String(rest % 1000)
            groups.append(String(repeating: "0", count: 3 - group.count) + group)
            rest /= 1000
        } while rest > 0
        groups.reverse()
        return groups.enumerated().map { $0.offset < groups.count - 1 ? "x" + $0.element : $0.element }
            .joined(separator: "/")
    }

    /// The path of a hash tile, relative to the log folder: `tile/<L>/<N>` or `tile/<L>/<N>.p/<W>`.
    package static func hashTilePath(level: Int, index: Int, width: Int) -> String {
        "tile/\(level)/\(encodeIndex(index))" + (width < Self.width ? ".p/\(width)" : "")
    }

    /// The path of an entry bundle, relative to the log folder: `tile/entries/<N>` or `tile/entries/<N>.p/<W>`.
    package static func bundlePath(index: Int, width: Int) -> String {
        "tile/entries/\(encodeIndex(index))" + (width < Self.width ? ".p/\(width)" : "")
    }

    /// An entry bundle: each entry as a 2-byte big-endian length and its bytes.
    package static func bundle<C: Collection<[UInt8]>>(_ entries: C) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(entries.reduce(0) { $0 + $1.count + 2 })
        for entry in entries {
            precondition(entry.count <= maxEntryBytes, "entry too large for a bundle")
            out += [UInt8(entry.count >> 8), UInt8(entry.count & 0xFF)]
            out += entry
        }
        return out
    }

    /// The first `count` entries of a well-formed bundle, as a bundle (a byte prefix of it).
    package static func bundlePrefix(_ bytes: [UInt8], entries count: Int) -> [UInt8] {
        var end = 0
        for _ in 0..<count where end + 2 <= bytes.count {
            end = min(bytes.count, end + 2 + (Int(bytes[end]) << 8 | Int(bytes[end + 1])))
        }
        return Array(bytes.prefix(end))
    }

    /// The stored partial versions of a tile or bundle whose full version is at `fullPath` (under `directory`):
    /// each canonical width 1–255 under `<fullPath>.p/`, with its path relative to `directory`.
    static func partialVersions(directory: String, fullPath: String) -> [(path: String, width: Int)] {
        ((try? listDirectory(directory + "/" + fullPath + ".p")) ?? []).compactMap { name in
            guard let width = Int(name), width > 0, width < Tiles.width, String(width) == name else { return nil }
            return (fullPath + ".p/" + name, width)
        }
    }

    /// The entries of a bundle, or `nil` when it is malformed.
    package static func entries(ofBundle bytes: [UInt8]) -> [[UInt8]]? {
        var out: [[UInt8]] = []
        var i = 0
        while i < bytes.count {
            guard i + 2 <= bytes.count, out.count < width else { return nil }
            let n = Int(bytes[i]) << 8 | Int(bytes[i + 1])
            guard i + 2 + n <= bytes.count else { return nil }
            out.append(Array(bytes[(i + 2)..<(i + 2 + n)]))
            i += 2 + n
        }
        return out
    }

    /// The root of a perfect subtree from its 2^k hashes, left to right.
    static func perfectRoot<C: RandomAccessCollection<[UInt8]>>(_ hashes: C) -> [UInt8] where C.Index == Int {
        precondition(!hashes.isEmpty && hashes.count & (hashes.count - 1) == 0, "a perfect subtree has 2^k hashes")
        var level = Array(hashes)
        while level.count > 1 {
            level = stride(from: 0, to: level.count, by: 2).map { Merkle.nodeHash(level[$0], level[$0 + 1]) }
        }
        return level[0]
    }
}

/// The right edge of a tree kept in memory while appending: at each tile level, the hashes of the rightmost
/// tiles that are not written yet, and the entries of the rightmost entry bundle.
///
/// Appending is O(1) amortised (a tile root is computed once per 256 hashes); the root and the tiles to write
/// come from the edge alone, never from a rehash of the tree.
struct TreeBuilder {
    /// The number of leaves.
    private(set) var size = 0
    /// `levels[L]`: hashes of tile level L from node index `bases[L]` (a multiple of 256) on.
    private var levels: [[[UInt8]]] = []
    private var bases: [Int] = []
    /// Node counts already written to tiles, per level.
    private var written: [Int] = []
    /// Entries from leaf `entryBase` (a multiple of 256) on.
    private var entries: [[UInt8]] = []
    private var entryBase = 0
    private var entriesWritten = 0

    /// An empty tree.
    init() {}

    /// The edge of a tree of `size` leaves, given the hashes of its rightmost partial tiles and bundle.
    ///
    /// - Parameters:
    ///   - size: The tree size.
    ///   - partialTiles: For each level L (while `size >> 8L > 0`), the first `(size >> 8L) % 256` hashes of the
    ///     tile that holds the level's last node.
    ///   - partialEntries: The first `size % 256` entries of the last entry bundle.
    init(size: Int, partialTiles: [[[UInt8]]], partialEntries: [[UInt8]]) {
        self.size = size
        for (level, hashes) in partialTiles.enumerated() {
            let count = size >> (Tiles.height * level)
            precondition(hashes.count == count % Tiles.width, "a partial tile of the wrong width")
            levels.append(hashes)
            bases.append(count - hashes.count)
            written.append(count)
        }
        precondition(partialEntries.count == size % Tiles.width, "a partial bundle of the wrong width")
        entries = partialEntries
        entryBase = size - partialEntries.count
        entriesWritten = size
    }

    /// The number of nodes at tile level `level` in a tree of `size` leaves.
    static func nodeCount(size: Int, level: Int) -> Int { size >> (Tiles.height * level) }

    /// The tile levels a tree of `size` leaves has.
    static func levelCount(size: Int) -> Int {
        var level = 0
        while nodeCount(size: size, level: level) > 0 { level += 1 }
        return level
    }

    /// Appends one leaf.
    mutating func append(entry: [UInt8], leafHash: [UInt8]) {
        entries.append(entry)
        push(leafHash, level: 0)
        size += 1
    }

    private mutating func push(_ hash: [UInt8], level: Int) {
        if level == levels.count {
            levels.append([])
            bases.append(0)
            written.append(0)
        }
        levels[level].append(hash)
        if (bases[level] + levels[level].count) % Tiles.width == 0 {
            push(Tiles.perfectRoot(levels[level].suffix(Tiles.width)), level: level + 1)
        }
    }

    /// The tree's root (RFC 9162), from the edge.
    func root() -> [UInt8] {
        var accumulated: [UInt8]?
        for level in levels.indices {
            let hashes = levels[level]
            let width = (bases[level] + hashes.count) % Tiles.width
            var end = hashes.count
            for bit in 0..<Tiles.height where width & (1 << bit) != 0 {
                // The rightmost perfect subtrees are the low bits of the width.
                let subtree = Tiles.perfectRoot(hashes[(end - (1 << bit))..<end])
                end -= 1 << bit
                accumulated = accumulated.map { Merkle.nodeHash(subtree, $0) } ?? subtree
            }
        }
        return accumulated ?? Merkle.emptyRoot
    }

    /// A file to write: its path relative to the log folder and its bytes.
    struct TileFile {
        var path: String
        var bytes: [UInt8]
        /// The tile is full, so its partial versions (`<path>.p/`) can go.
        var isFull: Bool
        /// The tile level, or `nil` for an entry bundle.
        var level: Int?
        /// The tile (or bundle) index.
        var index: Int
        /// How many hashes (or entries) it holds.
        var width: Int
        /// The path of its full version (without `.p/<width>`).
        var fullPath: String {
            level.map { Tiles.hashTilePath(level: $0, index: index, width: Tiles.width) }
                ?? Tiles.bundlePath(index: index, width: Tiles.width)
        }
    }

    /// The tiles and bundles that changed since the last call, then forgets the full ones.
    mutating func drainChangedTiles() -> [TileFile] {
        var files: [TileFile] = []
        for level in levels.indices {
            let count = bases[level] + levels[level].count
            guard count > written[level] else { continue }
            var start = (written[level] / Tiles.width) * Tiles.width
            while start < count {
                let width = min(Tiles.width, count - start)
                let slice = levels[level][(start - bases[level])..<(start - bases[level] + width)]
                files.append(
                    TileFile(
                        path: Tiles.hashTilePath(level: level, index: start / Tiles.width, width: width),
                        bytes: slice.flatMap { $0 },
                        isFull: width == Tiles.width,
                        level: level,
                        index: start / Tiles.width,
                        width: width
                    )
                )
                start += width
            }
            written[level] = count
            let full = (levels[level].count / Tiles.width) * Tiles.width
            levels[level].removeFirst(full)
            bases[level] += full
        }
        if size > entriesWritten {
            var start = (entriesWritten / Tiles.width) * Tiles.width
            while start < size {
                let width = min(Tiles.width, size - start)
                files.append(
                    TileFile(
                        path: Tiles.bundlePath(index: start / Tiles.width, width: width),
                        bytes: Tiles.bundle(entries[(start - entryBase)..<(start - entryBase + width)]),
                        isFull: width == Tiles.width,
                        level: nil,
                        index: start / Tiles.width,
                        width: width
                    )
                )
                start += width
            }
            entriesWritten = size
            let full = (entries.count / Tiles.width) * Tiles.width
            entries.removeFirst(full)
            entryBase += full
        }
        return files
    }
}

/// Reads the hashes of a tree of a given size from the tiles in a log folder, and computes subtree hashes,
/// roots and proofs from them: O(log n) tile reads and at most 127 hashes per tile-level step.
final class TileReader {
    /// The log folder (holding `tile/`).
    let directory: String
    /// The tree size the reads are for.
    let size: Int
    private var cache: [Int: [[UInt8]]] = [:]

    init(directory: String, size: Int) {
        self.directory = directory
        self.size = size
    }

    /// The hashes of tile `index` at `level`, as wide as the tree of ``size`` leaves makes it.
    ///
    /// Reads the partial tile of that width, or else the full tile (a prefix of which it is).
    func hashes(level: Int, index: Int) throws -> [[UInt8]] {
        let key = level << 48 | index
        if let cached = cache[key] { return cached }
        let width = min(Tiles.width, TreeBuilder.nodeCount(size: size, level: level) - index * Tiles.width)
        precondition(width > 0, "reading a tile beyond the tree")
        let candidates = [
            Tiles.hashTilePath(level: level, index: index, width: width),
            Tiles.hashTilePath(level: level, index: index, width: Tiles.width),
        ]
        for path in Set(candidates).sorted(by: { $0.count > $1.count }) {
            guard let bytes = try? ArchiveFiles.read(directory + "/" + path, limit: Tiles.width * 32),
                bytes.count >= width * 32, bytes.count % 32 == 0
            else { continue }
            let hashes = (0..<width).map { Array(bytes[($0 * 32)..<($0 * 32 + 32)]) }
            cache[key] = hashes
            return hashes
        }
        throw ArchiveError(
            .damaged,
            "the log tile \(candidates[0]) is missing or damaged",
            fix: "run custody reindex, which rebuilds the log's tiles from the journal"
        )
    }

    /// The entries of bundle `index`, as wide as the tree makes it.
    func entries(bundle index: Int) throws -> [[UInt8]] {
        let width = min(Tiles.width, size - index * Tiles.width)
        let candidates = [
            Tiles.bundlePath(index: index, width: width), Tiles.bundlePath(index: index, width: Tiles.width),
        ]
        for path in Set(candidates).sorted(by: { $0.count > $1.count }) {
            guard
                let bytes = try? ArchiveFiles.read(
                    directory + "/" + path,
                    limit: Tiles.width * (Tiles.maxEntryBytes + 2)
                ),
                let entries = Tiles.entries(ofBundle: bytes), entries.count >= width
            else { continue }
            return Array(entries.prefix(width))
        }
        throw ArchiveError(
            .damaged,
            "the log's entry bundle \(candidates[0]) is missing or damaged",
            fix: "run custody reindex, which rebuilds the log's tiles from the journal"
        )
    }

    /// The hash of the perfect subtree of height `height` (2^height leaves) at position `index`.
    func node(height: Int, index: Int) throws -> [UInt8] {
        let level = height / Tiles.height
        let span = 1 << (height % Tiles.height)
        let first = index * span
        let tile = try hashes(level: level, index: first / Tiles.width)
        let offset = first % Tiles.width
        return Tiles.perfectRoot(tile[offset..<(offset + span)])
    }

    /// The hash of leaves `start..<start+count` (RFC 9162 MTH).
    func subtree(_ start: Int, _ count: Int) throws -> [UInt8] {
        precondition(start >= 0 && count >= 0 && start + count <= size, "a subtree beyond the tree")
        if count == 0 { return Merkle.emptyRoot }
        if count & (count - 1) == 0 && start % count == 0 {
            return try node(height: count.trailingZeroBitCount, index: start / count)
        }
        let k = Merkle.split(count)
        return Merkle.nodeHash(try subtree(start, k), try subtree(start + k, count - k))
    }

    /// The root of the tree.
    func root() throws -> [UInt8] { try subtree(0, size) }

    /// The edge of the tree, for appending to it.
    func builder() throws -> TreeBuilder {
        var partials: [[[UInt8]]] = []
        for level in 0..<TreeBuilder.levelCount(size: size) {
            let count = TreeBuilder.nodeCount(size: size, level: level)
            let width = count % Tiles.width
            partials.append(width == 0 ? [] : Array(try hashes(level: level, index: count / Tiles.width)))
        }
        let entryWidth = size % Tiles.width
        let partialEntries = entryWidth == 0 ? [] : try entries(bundle: size / Tiles.width)
        // The bundle's entries must be the leaves the tiles hash: a damaged bundle must not be carried forward.
        if let leaves = partials.first {
            for (entry, hash) in zip(partialEntries, leaves) where !constantTimeEqual(Merkle.leafHash(entry), hash) {
                throw ArchiveError(
                    .damaged,
                    "the log's entry bundle \(Tiles.bundlePath(index: size / Tiles.width, width: entryWidth)) does not match its tile",
                    fix: "run custody reindex, which rebuilds the log's tiles from the journal"
                )
            }
        }
        return TreeBuilder(size: size, partialTiles: partials, partialEntries: partialEntries)
    }
}
