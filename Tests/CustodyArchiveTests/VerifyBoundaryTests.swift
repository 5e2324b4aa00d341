import CustodyCrypto
import CustodyTestSupport
import Foundation
import Testing

@testable import CustodyArchive

/// What `verify` and `witness cosign` make of data an attacker edited, planted or relayed: the archive's own
/// identity file, stored cosignatures, every stored tile (stale partial ones included), witness state, and
/// consistency proofs — each problem named for what it is.
@Suite struct VerifyBoundaryTests {
    let dir = TempDirectory("verify-boundary")

    private var root: String { dir.path + "/archive" }

    /// An archive whose log grew in several signed steps (so stale partial tiles exist), with `notes` notes.
    private func grownArchive(notes: Int = 3) throws -> Archive {
        let archive = try Fixtures.archive(in: dir, chunkSize: 4096)
        for i in 0..<2 { dir.write("up/\(i).txt", Array("item \(i)".utf8)) }
        let report = try archive.ingest([dir.path + "/up"], options: IngestOptions())
        for i in 0..<notes { try archive.note(report.items[0].id.hex, text: "note \(i)") }
        return archive
    }

    /// A second archive, `name`, that knows `archive` as a witness and is known by it.
    private func witness(of archive: Archive, named name: String = "w") throws -> Archive {
        let witness = try Archive.create(
            at: dir.path + "/" + name,
            name: "Witness \(name)",
            passphrase: Fixtures.secret(),
            kdfPreset: "insecure-test"
        )
        _ = try witness.trust(try archive.identity(), role: "witness")
        _ = try archive.trust(try witness.identity(), role: "witness")
        return witness
    }

    private func flipByte(_ path: String, at offset: Int) throws {
        var bytes = Fixtures.read(path)
        bytes[offset] ^= 0x01
        try POSIX.writeFileAtomically(path, bytes)
    }

    /// The stored partial versions of `group` (e.g. `log/tile/entries/000`) by width, narrowest first.
    private func partials(_ group: String) -> [(width: Int, path: String)] {
        let names = (try? FileManager.default.contentsOfDirectory(atPath: root + "/" + group + ".p")) ?? []
        return names.compactMap { name in Int(name).map { ($0, root + "/" + group + ".p/" + name) } }
            .sorted { $0.width < $1.width }
    }

    // MARK: Proofs sent to witness cosign

    /// `archive`'s consistency request from `size`, with the proof hash at `flip` altered by one bit.
    private func request(_ archive: Archive, from size: Int, flip: Int?) throws -> String {
        var proof = try archive.ledger.consistencyProof(from: size)
        if let flip { proof.proof[flip][0] ^= 0x01 }
        return proof.witnessRequest
    }

    @Test func aFlippedConsistencyProofHashIsProofInvalidNotAFork() throws {
        let archive = try grownArchive(notes: 0)
        let w = try witness(of: archive)
        let first = try #require(try archive.ledger.latestCheckpoint())
        _ = try w.cosign(Array(first.note.utf8))
        let stateBefore = Fixtures.read(w.witnessStatePath(origin: archive.config.origin))
        let item = try archive.index().list(ItemFilter())[0].id
        for i in 0..<3 { try archive.note(item, text: "more \(i)") }
        let count = try archive.ledger.consistencyProof(from: first.size).proof.count
        #expect(count >= 2)
        for index in 0..<count {
            let error = #expect(throws: ArchiveError.self) {
                try w.cosign(Array(try request(archive, from: first.size, flip: index).utf8))
            }
            #expect(error?.code == .badInput, "proof hash \(index)")
            #expect(error?.problem.hasPrefix("proof-invalid:") == true)
            #expect(error?.problem.contains("FORK") == false)
        }
        #expect(!FileManager.default.fileExists(atPath: dir.path + "/w/witness/conflicts"))
        #expect(Fixtures.read(w.witnessStatePath(origin: archive.config.origin)) == stateBefore)
        // The genuine proof still goes through.
        let next = try w.cosign(Array(try request(archive, from: first.size, flip: nil).utf8))
        #expect(next.previousSize == first.size)
    }

    @Test func aForkProvenByAValidProofIsStillAFork() throws {
        let archive = try grownArchive(notes: 0)
        let w = try witness(of: archive)
        let item = try archive.index().list(ItemFilter())[0].id
        // A copy with the same keys, taken now, grows another history.
        let forkPath = dir.path + "/fork"
        try FileManager.default.copyItem(atPath: root, toPath: forkPath)
        try archive.note(item, text: "the real history")
        let real = try #require(try archive.ledger.latestCheckpoint())
        _ = try w.cosign(Array(real.note.utf8))
        let fork = try Archive.open(at: forkPath)
        fork.passphraseProvider = { Fixtures.secret() }
        try fork.note(item, text: "a rewritten history")
        try fork.note(item, text: "and more of it")
        // The forked log's honest proof from the size w saw: it leads to the forked root, and its prefix of that
        // size is not the root w cosigned — provably two histories.
        let forked = try fork.ledger.consistencyProof(from: real.size)
        let error = #expect(throws: ArchiveError.self) { try w.cosign(Array(forked.witnessRequest.utf8)) }
        #expect(error?.code == .damaged && error?.problem.hasPrefix("FORK:") == true)
        let conflicts = Fixtures.allFiles(under: dir.path + "/w/witness/conflicts")
        #expect(conflicts.count == 1)
        let evidence = String(decoding: Fixtures.read(try #require(conflicts.first)), as: UTF8.self)
        #expect(evidence.hasPrefix(real.note + "\nold \(real.size)\n"))
        #expect(evidence.hasSuffix("\n\n" + forked.checkpoint.note))
        // The same-size fork is still caught too.
        let sameSize = try #require(try fork.ledger.storedCheckpoint(size: real.size))
        #expect(sameSize.root != real.root)
        let again = #expect(throws: ArchiveError.self) { try w.cosign(Array(sameSize.note.utf8)) }
        #expect(again?.code == .damaged && again?.problem.hasPrefix("FORK:") == true)
    }

    @Test func consistencyOutcomesSeparateInvalidProofsFromForks() throws {
        let leaves = (0..<7).map { Merkle.leafHash([UInt8($0)]) }
        let forked = (0..<7).map { Merkle.leafHash($0 < 4 ? [UInt8($0), 1] : [UInt8($0)]) }
        func mth(_ hashes: [[UInt8]], _ start: Int, _ count: Int) -> [UInt8] {
            Merkle.subtreeHash(start: start, count: count) { hashes[$0] }
        }
        let root3 = mth(leaves, 0, 3)
        let root7 = mth(leaves, 0, 7)
        let proof = Merkle.consistencyProof(first: 3, second: 7) { mth(leaves, $0, $1) }
        #expect(Merkle.consistency(proof, first: 3, second: 7, firstRoot: root3, secondRoot: root7) == .consistent)
        for index in proof.indices {
            var flipped = proof
            flipped[index][5] ^= 0x01
            #expect(Merkle.consistency(flipped, first: 3, second: 7, firstRoot: root3, secondRoot: root7) == .invalid)
        }
        #expect(
            Merkle.consistency(Array(proof.dropLast()), first: 3, second: 7, firstRoot: root3, secondRoot: root7)
                == .invalid
        )
        // A tree whose first leaves differ, with its own honest proof: inconsistent with root3, provably.
        let forkedRoot = mth(forked, 0, 7)
        let forkedProof = Merkle.consistencyProof(first: 3, second: 7) { mth(forked, $0, $1) }
        let outcome = Merkle.consistency(forkedProof, first: 3, second: 7, firstRoot: root3, secondRoot: forkedRoot)
        #expect(outcome == .inconsistent(firstRootOfSecond: mth(forked, 0, 3)))
        // From a complete tree (size 4) a proof cannot show a fork: the old root itself is the path's start.
        let root4 = mth(leaves, 0, 4)
        let proof4 = Merkle.consistencyProof(first: 4, second: 7) { mth(forked, $0, $1) }
        #expect(Merkle.consistency(proof4, first: 4, second: 7, firstRoot: root4, secondRoot: forkedRoot) == .invalid)
    }
}
