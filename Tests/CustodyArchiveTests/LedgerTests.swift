import CustodyCrypto
import CustodyTestSupport
import Foundation
import Testing

@testable import CustodyArchive

/// The Merkle log on disk: tiles, checkpoints, proofs, and what happens when its storage is tampered with.
@Suite struct LedgerTests {
    /// A ledger in a fresh folder, with its log key.
    struct Fixture {
        let dir = TempDirectory("ledger")
        let key: SigningKey
        let ledger: Ledger

        init() throws {
            key = try SigningKey(seed: SecretBytes(randomCount: 32))
            let journal = try Journal(directory: dir.path + "/journal")
            ledger = Ledger(root: dir.path, origin: "custody/test", logPublicKey: key.publicKey, journal: journal)
        }

        /// Distinct entries of varied lengths.
        static func entries(_ range: Range<Int>) -> [[UInt8]] {
            range.map { Array("entry \($0) ".utf8) + [UInt8](repeating: UInt8($0 & 0xFF), count: $0 % 37) }
        }
    }

    /// The reference root, hashed from every leaf.
    func referenceRoot(_ entries: [[UInt8]]) -> [UInt8] {
        let leaves = entries.map(Merkle.leafHash)
        return Merkle.subtreeHash(start: 0, count: leaves.count) { leaves[$0] }
    }

    @Test func tileIndexesArePathsOfThreeDigitGroups() {
        #expect(Tiles.encodeIndex(0) == "000")
        #expect(Tiles.encodeIndex(5) == "005")
        #expect(Tiles.encodeIndex(999) == "999")
        #expect(Tiles.encodeIndex(1000) == "x001/000")
        #expect(Tiles.encodeIndex(1_234_067) == "x001/x234/067")
        #expect(Tiles.hashTilePath(level: 1, index: 1_234_067, width: 12) == "tile/1/x001/x234/067.p/12")
        #expect(Tiles.bundlePath(index: 3, width: 256) == "tile/entries/003")
    }

    @Test func bundlesRoundTripAndRejectTruncation() throws {
        let entries = Fixture.entries(0..<20)
        let bundle = Tiles.bundle(entries)
        #expect(Tiles.entries(ofBundle: bundle) == entries)
        #expect(Tiles.entries(ofBundle: Array(bundle.dropLast())) == nil)
        #expect(Tiles.entries(ofBundle: []) == [])
    }

    @Test func theEdgeRootMatchesAFullRehashAtEverySize() {
        var builder = TreeBuilder()
        var entries: [[UInt8]] = []
        #expect(builder.root() == Merkle.emptyRoot)
        for (i, entry) in Fixture.entries(0..<700).enumerated() {
            builder.append(entry: entry, leafHash: Merkle.leafHash(entry))
            entries.append(entry)
            if i < 300 || i % 37 == 0 || i == 699 {
                #expect(builder.root() == referenceRoot(entries), "size \(i + 1)")
            }
            if i % 100 == 0 { _ = builder.drainChangedTiles() }
        }
    }

    @Test func aLedgerSignsACheckpointAfterEveryAppend() throws {
        let f = try Fixture()
        #expect(try f.ledger.latestCheckpoint() == nil)
        try f.ledger.append([], logKey: f.key)
        let empty = try #require(try f.ledger.latestCheckpoint())
        #expect(empty.size == 0 && empty.root == Merkle.emptyRoot)
        #expect(
            empty.note.hasPrefix("custody/test\n0\n47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=\n\n— custody/test ")
        )
        var all: [[UInt8]] = []
        for batch in [1, 2, 255, 1, 300, 7] {
            let entries = Fixture.entries(all.count..<(all.count + batch))
            let (first, checkpoint) = try f.ledger.append(entries, logKey: f.key)
            #expect(first.count == all.count)
            all += entries
            #expect(checkpoint.size == all.count)
            #expect(checkpoint.root == referenceRoot(all))
            #expect(try f.ledger.latestCheckpoint() == checkpoint)
        }
        #expect(f.ledger.checkpointSizes() == [0, 1, 3, 258, 259, 559, 566])
        // Full tiles replaced their partial versions; the newest partials are there.
        let log = f.dir.path + "/log/tile"
        #expect(FileManager.default.fileExists(atPath: log + "/0/000"))
        #expect(FileManager.default.fileExists(atPath: log + "/0/001"))
        #expect(!FileManager.default.fileExists(atPath: log + "/0/000.p"))
        #expect(FileManager.default.fileExists(atPath: log + "/0/002.p/54"))
        #expect(FileManager.default.fileExists(atPath: log + "/1/000.p/2"))
        #expect(FileManager.default.fileExists(atPath: log + "/entries/002.p/54"))
        let bundle = try ArchiveFiles.read(log + "/entries/001", limit: 1 << 20)
        #expect(Tiles.entries(ofBundle: bundle) == Array(all[256..<512]))
    }

    @Test func everyInclusionProofVerifiesAgainstTheCheckpoint() throws {
        let f = try Fixture()
        var all: [[UInt8]] = []
        var generator = SystemRandomNumberGenerator()
        while all.count < 600 {
            let entries = Fixture.entries(all.count..<(all.count + Int.random(in: 1...200, using: &generator)))
            try f.ledger.append(entries, logKey: f.key)
            all += entries
        }
        let checkpoint = try #require(try f.ledger.latestCheckpoint())
        let leaves = all.map(Merkle.leafHash)
        var subtrees: [Int: [UInt8]] = [:]
        for index in all.indices {
            let proof = try f.ledger.inclusionProof(index: index, entry: all[index])
            #expect(proof.checkpoint == checkpoint)
            let expected = Merkle.inclusionProof(index: index, size: all.count) { start, count in
                if let known = subtrees[start << 32 | count] { return known }
                let hash = Merkle.subtreeHash(start: start, count: count) { leaves[$0] }
                subtrees[start << 32 | count] = hash
                return hash
            }
            #expect(proof.proof == expected, "index \(index)")
        }
        // An entry that is not the leaf at that index is refused rather than "proved".
        #expect(throws: ArchiveError.self) { try f.ledger.inclusionProof(index: 3, entry: all[4]) }
    }

    @Test func consistencyProofsLinkEveryEarlierCheckpoint() throws {
        let f = try Fixture()
        var all: [[UInt8]] = []
        var roots: [Int: [UInt8]] = [0: Merkle.emptyRoot]
        for batch in [3, 250, 4, 1, 600, 17, 256] {
            let entries = Fixture.entries(all.count..<(all.count + batch))
            let (_, checkpoint) = try f.ledger.append(entries, logKey: f.key)
            all += entries
            roots[checkpoint.size] = checkpoint.root
        }
        let latest = try #require(try f.ledger.latestCheckpoint())
        for (size, root) in roots {
            let proof = try f.ledger.consistencyProof(from: size)
            #expect(
                Merkle.isConsistent(
                    proof.proof,
                    first: size,
                    second: latest.size,
                    firstRoot: root,
                    secondRoot: latest.root
                )
            )
        }
        #expect(throws: ArchiveError.self) { try f.ledger.consistencyProof(from: latest.size + 1) }
    }

    @Test func proofsStayFastToBuildAcrossManyTileLevels() throws {
        // 70 000 leaves: three tile levels (256² = 65 536), appended in batches.
        let f = try Fixture()
        var all: [[UInt8]] = []
        while all.count < 70_000 {
            let entries = (all.count..<(all.count + 5000)).map { Array("e\($0)".utf8) }
            try f.ledger.append(entries, logKey: f.key)
            all += entries
        }
        let checkpoint = try #require(try f.ledger.latestCheckpoint())
        #expect(checkpoint.root == referenceRoot(all))
        for index in [0, 255, 256, 65_535, 65_536, 69_999] {
            _ = try f.ledger.inclusionProof(index: index, entry: all[index])
        }
        #expect(FileManager.default.fileExists(atPath: f.dir.path + "/log/tile/2/000.p/1"))
    }

    @Test func anInterruptedAppendIsSignedByTheNextOne() throws {
        let f = try Fixture()
        try f.ledger.append(Fixture.entries(0..<10), logKey: f.key)
        // Frames written, tiles and checkpoint not (a crash right after the journal's fdatasync).
        let hint = JournalPosition(count: 10, offset: f.ledger.journal.byteCount())
        _ = try f.ledger.journal.append(Fixture.entries(10..<15), hint: hint)
        #expect(try f.ledger.latestCheckpoint()?.size == 10)
        let (_, checkpoint) = try f.ledger.append([], logKey: f.key)
        #expect(checkpoint.size == 15)
        #expect(checkpoint.root == referenceRoot(Fixture.entries(0..<15)))
    }

    @Test func damagedTilesAreRebuiltFromTheJournal() throws {
        let f = try Fixture()
        try f.ledger.append(Fixture.entries(0..<300), logKey: f.key)
        // Flip a byte in the partial tile at the edge: the next append notices and rebuilds.
        let edge = f.dir.path + "/log/tile/0/001.p/44"
        var bytes = try ArchiveFiles.read(edge, limit: 1 << 20)
        bytes[5] ^= 1
        try ArchiveFiles.writeAtomically(edge, bytes)
        let (_, checkpoint) = try f.ledger.append(Fixture.entries(300..<310), logKey: f.key)
        #expect(checkpoint.root == referenceRoot(Fixture.entries(0..<310)))
        _ = try f.ledger.inclusionProof(index: 299, entry: Fixture.entries(299..<300)[0])
        // A damaged full tile is caught when a proof uses it.
        let full = f.dir.path + "/log/tile/0/000"
        bytes = try ArchiveFiles.read(full, limit: 1 << 20)
        bytes[40] ^= 1
        try ArchiveFiles.writeAtomically(full, bytes)
        #expect(throws: ArchiveError.self) { try f.ledger.inclusionProof(index: 0, entry: Fixture.entries(0..<1)[0]) }
        try f.ledger.append([], logKey: f.key, rebuild: true)
        _ = try f.ledger.inclusionProof(index: 0, entry: Fixture.entries(0..<1)[0])
    }

    /// Rewrites the journal with `entries` (valid frames, so only the Merkle log can tell).
    func rewriteJournal(_ f: Fixture, _ entries: [[UInt8]]) throws {
        try ArchiveFiles.writeAtomically(f.dir.path + "/journal/entries", entries.flatMap(Journal.frame))
    }

    @Test func droppingTheLastEntryStopsTheNextAppend() throws {
        let f = try Fixture()
        try f.ledger.append(Fixture.entries(0..<20), logKey: f.key)
        try rewriteJournal(f, Fixture.entries(0..<19))
        let error = #expect(throws: ArchiveError.self) { try f.ledger.append(Fixture.entries(20..<21), logKey: f.key) }
        #expect(error?.reason == .journalTruncated)
        // The counts are what the operator needs to find the right backup: the message is the property here.
        #expect(error?.problem.contains("holds 19 entries but the log signed a checkpoint of 20") == true)
        #expect(try f.ledger.latestCheckpoint()?.size == 20)
    }

    @Test func swappingTwoEntriesStopsARebuild() throws {
        // Appends read only what follows the stored edge (verify reads it all); a rebuild rehashes everything.
        let f = try Fixture()
        var entries = Fixture.entries(0..<20)
        try f.ledger.append(entries, logKey: f.key)
        entries.swapAt(3, 4)
        try rewriteJournal(f, entries)
        let error = #expect(throws: ArchiveError.self) { try f.ledger.append([], logKey: f.key, rebuild: true) }
        #expect(error?.reason == .historyAltered)
        // Nothing new was signed.
        #expect(f.ledger.checkpointSizes() == [20])
    }

    @Test func aForgedCheckpointFileIsRefused() throws {
        let f = try Fixture()
        try f.ledger.append(Fixture.entries(0..<5), logKey: f.key)
        let other = try SigningKey(seed: SecretBytes(randomCount: 32))
        let forged = Checkpoint.signed(origin: "custody/test", size: 5, root: Merkle.emptyRoot, key: other)
        try ArchiveFiles.writeAtomically(f.dir.path + "/log/checkpoint", Array(forged.note.utf8))
        let error = #expect(throws: ArchiveError.self) { try f.ledger.latestCheckpoint() }
        #expect(error?.reason == .checkpointInvalid)
    }

    @Test func verifierKeysParseAndCheckTheirKeyID() throws {
        let key = try SigningKey(seed: SecretBytes(randomCount: 32))
        let text = Identity.verifierKey(origin: "custody/abcd1234", publicKey: key.publicKey)
        let parsed = try #require(VerifierKey(text))
        #expect(parsed.name == "custody/abcd1234" && parsed.publicKey == key.publicKey)
        #expect(VerifierKey(text.replacingOccurrences(of: "custody/abcd1234", with: "custody/abcd1235")) == nil)
        #expect(VerifierKey("no-plus-signs") == nil)
    }
}
