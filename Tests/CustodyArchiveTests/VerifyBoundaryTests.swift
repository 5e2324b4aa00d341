import CustodyCrypto
import CustodyStorage
import CustodyTestSupport
import Foundation
import Testing

@testable import CustodyArchive

/// What `verify` and `witness cosign` make of data an attacker edited, planted or relayed: the archive's own
/// identity file, stored cosignatures, every stored tile (stale partial ones included), witness state, and
/// consistency proofs — each problem named for what it is.
///
/// A problem's ``VerifyProblem/Kind`` decides; where a test also looks at its `detail`, it is to check that
/// the problem names the file or key at fault (what an operator restores or asks about), the property under test.
@Suite struct VerifyBoundaryTests {
    let dir = TempDirectory("verify-boundary")

    private var root: String { dir.path + "/archive" }

    /// An archive whose log grew in several signed steps (so stale partial tiles exist), with `notes` notes.
    private func grownArchive(notes: Int = 3) async throws -> Archive.Unlocked {
        let archive = try await Fixtures.archive(in: dir, chunkSize: 4096)
        for i in 0..<2 { dir.write("up/\(i).txt", Array("item \(i)".utf8)) }
        let report = try await archive.ingest([dir.path + "/up"], options: IngestOptions())
        for i in 0..<notes { try await archive.note(report.items[0].id.hex, text: "note \(i)") }
        return archive
    }

    /// A second archive, `name`, that knows `archive` as a witness and is known by it.
    private func witness(of archive: Archive.Unlocked, named name: String = "w") async throws -> Archive.Unlocked {
        let witness = try await Archive.create(
            at: dir.path + "/" + name,
            name: "Witness \(name)",
            passphrase: Fixtures.secret(),
            kdfPreset: "insecure-test"
        )
        _ = try witness.trust(try archive.identity(), role: .witness)
        _ = try archive.trust(try witness.identity(), role: .witness)
        return witness
    }

    private func flipByte(_ path: String, at offset: Int) throws {
        var bytes = Fixtures.read(path)
        bytes[offset] ^= 0x01
        try ArchiveFiles.writeAtomically(path, bytes)
    }

    /// The stored partial versions of `group` (e.g. `log/tile/entries/000`) by width, narrowest first.
    private func partials(_ group: String) async -> [(width: Int, path: String)] {
        let names = (try? FileManager.default.contentsOfDirectory(atPath: root + "/" + group + ".p")) ?? []
        return names.compactMap { name in Int(name).map { ($0, root + "/" + group + ".p/" + name) } }
            .sorted { $0.width < $1.width }
    }

    // MARK: identity.json

    @Test func anAlteredIdentityFileIsReported() async throws {
        let archive = try await grownArchive(notes: 0)
        #expect(try await archive.verify(mode: .quick).ok)
        let path = root + "/identity.json"
        let text = String(decoding: Fixtures.read(path), as: UTF8.self)
        // One letter of the display name changed: still JSON, no longer validly self-signed.
        try ArchiveFiles.writeAtomically(
            path,
            Array(text.replacingOccurrences(of: "Test Body", with: "Test Bodx").utf8)
        )
        let problems = try await archive.verify(mode: .quick).problems
        let problem = try #require(problems.first { $0.kind == .identityInvalid })
        #expect(problem.detail.contains("identity.json") && problem.detail.contains("self-signed"))
        // A byte flipped anywhere: also reported, as what it is.
        try ArchiveFiles.writeAtomically(path, Array(text.utf8))
        try flipByte(path, at: 3)
        #expect(try await archive.verify(mode: .quick).problems.contains { $0.kind == .identityInvalid })
    }

    @Test func anotherBodysValidIdentitySwappedInIsReported() async throws {
        let archive = try await grownArchive(notes: 0)
        let other = try await witness(of: archive)
        #expect(try other.identity().isValid)
        try ArchiveFiles.writeAtomically(root + "/identity.json", Fixtures.read(dir.path + "/w/identity.json"))
        let report = try await archive.verify(mode: .quick)
        let problem = try #require(report.problems.first { $0.kind == .identityInvalid })
        #expect(problem.detail.contains("is not this archive's identity"))
        // And nothing serves it as this archive's identity.
        #expect((#expect(throws: ArchiveError.self) { try archive.identity() })?.code == .damaged)
    }

    // MARK: Stored cosignatures

    @Test func aForgedCosignatureIsReported() async throws {
        let archive = try await grownArchive(notes: 0)
        let w = try await witness(of: archive)
        let checkpoint = try #require(try archive.ledger.latestCheckpoint())
        let genuine = try w.cosign(Array(checkpoint.note.utf8), now: 1_800_000_000)
        _ = try await archive.attachCosignatures(Array(genuine.line.utf8))
        #expect(try await archive.verify(mode: .quick).ok, "a genuine cosignature is sound")

        // The same witness's name on a line whose signature was altered, planted straight into the files.
        let line = try #require(SignedNote.parseSignatureLine(Substring(genuine.line.dropLast())))
        var forged = line
        forged.payload[forged.payload.count - 1] ^= 0x01
        let history = root + "/journal/checkpoints/\(checkpoint.size)"
        let stored = String(decoding: Fixtures.read(history), as: UTF8.self)
        try ArchiveFiles.writeAtomically(history, Array((stored + SignedNote.line(forged)).utf8))
        var problems = try await archive.verify(mode: .quick).problems
        let invalid = try #require(problems.first { $0.kind == .cosignatureInvalid })
        #expect(invalid.detail.contains("journal/checkpoints/\(checkpoint.size)"))
        #expect(invalid.detail.contains(w.config.origin))
        // What is printed (checkpoint --cosigned) and put in bundles as cosigned leaves the forged line out.
        #expect(try await archive.cosignedCheckpoint()?.note == checkpoint.note + genuine.line)
        await #expect(archive.sizeCosigned(by: w.config.origin) == checkpoint.size)
        try ArchiveFiles.writeAtomically(history, Array((checkpoint.note + SignedNote.line(forged)).utf8))
        #expect(try await archive.cosignedCheckpoint() == nil)
        await #expect(archive.sizeCosigned(by: w.config.origin) == nil)

        // A well-formed line by a body this archive never added as a witness.
        let stranger = try SigningKey(seed: SecretBytes(randomCount: 32))
        let planted = SignedNote.cosignatureLine(
            body: checkpoint.body,
            name: "custody/stranger",
            key: stranger,
            timestamp: 1_800_000_000
        )
        try ArchiveFiles.writeAtomically(root + "/log/checkpoint", Array((checkpoint.note + planted).utf8))
        problems = try await archive.verify(mode: .quick).problems
        let unknown = try #require(problems.first { $0.kind == .cosignatureUnknown })
        #expect(unknown.detail.contains("log/checkpoint") && unknown.detail.contains("custody/stranger"))
    }

    @Test func aGranteesCosignatureIsAcceptedAndAForgedOneIsNot() async throws {
        let archive = try await grownArchive(notes: 0)
        let grantee = try await Archive.create(
            at: dir.path + "/grantee",
            name: "Grantee",
            passphrase: Fixtures.secret(),
            kdfPreset: "insecure-test"
        )
        var request = GrantRequest(grantee: try grantee.identity(), expires: Expiry.resolve("30d") ?? "", purpose: "p")
        request.items = [try await archive.index().list(ItemFilter())[0].id]
        _ = try await archive.createGrant(request)
        // The grantee cosigns (online, after a pull) without ever being added as a witness here.
        _ = try grantee.trust(try archive.identity(), role: .witness)
        let checkpoint = try #require(try archive.ledger.latestCheckpoint())
        let line = try grantee.cosign(Array(checkpoint.note.utf8)).line
        _ = try await archive.attachCosignatures(Array(line.utf8), alsoFrom: true)
        #expect(try await archive.verify(mode: .quick).ok)
        // The grantee's name on a line that is not its signature.
        var forged = try #require(SignedNote.parseSignatureLine(Substring(line.dropLast())))
        forged.payload[20] ^= 0x01
        let path = root + "/journal/checkpoints/\(checkpoint.size)"
        try ArchiveFiles.writeAtomically(path, Fixtures.read(path) + Array(SignedNote.line(forged).utf8))
        let problems = try await archive.verify(mode: .quick).problems
        #expect(problems.count == 1 && problems.first?.kind == .cosignatureInvalid, "\(problems)")
    }

    @Test func aCosignatureMovedToAnotherCheckpointIsReported() async throws {
        let archive = try await grownArchive(notes: 1)
        let w = try await witness(of: archive)
        let latest = try #require(try archive.ledger.latestCheckpoint())
        let genuine = try w.cosign(Array(latest.note.utf8), now: 1_800_000_000)
        // Valid for the latest checkpoint, pasted under an earlier one: it does not cosign that tree.
        let earlier = try #require(archive.ledger.checkpointSizes().dropLast().last)
        let path = root + "/journal/checkpoints/\(earlier)"
        try ArchiveFiles.writeAtomically(path, Fixtures.read(path) + Array(genuine.line.utf8))
        let problem = try await #require(
            try archive.verify(mode: .quick).problems.first { $0.kind == .cosignatureInvalid }
        )
        #expect(problem.detail.contains("journal/checkpoints/\(earlier)"))
    }

    @Test func aSecondSignatureUnderTheLogsOwnNameIsReported() async throws {
        let archive = try await grownArchive(notes: 0)
        let checkpoint = try #require(try archive.ledger.latestCheckpoint())
        let impostor = try SigningKey(seed: SecretBytes(randomCount: 32))
        let line = SignedNote.signatureLine(body: checkpoint.body, name: archive.config.origin, key: impostor)
        try ArchiveFiles.writeAtomically(root + "/log/checkpoint", Array((checkpoint.note + line).utf8))
        let problem = try await #require(
            try archive.verify(mode: .quick).problems.first { $0.kind == .cosignatureInvalid }
        )
        #expect(problem.detail.contains("log's own name"))
    }

    // MARK: Tiles

    @Test func anEditedEntryInAStalePartialBundleIsCaught() async throws {
        let oldest: (width: Int, path: String)
        do {
            let archive = try await grownArchive()
            let stale = await partials("log/tile/entries/000")
            let size = try #require(try archive.ledger.latestCheckpoint()).size
            // The log grew in steps: bundles of older widths are still served to clients with older checkpoints.
            oldest = try #require(stale.first)
            #expect(stale.count >= 2 && oldest.width < size)
            #expect(try await archive.verify(mode: .quick).ok)
            // One byte of an entry inside the stale bundle (past its 2-byte length).
            try flipByte(oldest.path, at: 10)
            let report = try await archive.verify(mode: .quick)
            let problem = try #require(report.problems.first { $0.kind == .tileMismatch })
            #expect(problem.detail.contains("log/tile/entries/000.p/\(oldest.width)"))
            #expect(!report.problems.contains { $0.kind == .ledgerMismatch || $0.kind == .badEntry })
        }
        // reindex rewrites the stale versions too, so what verify reports, reindex repairs.
        let damaged = Fixtures.read(oldest.path)
        let exclusive = try Fixtures.reopen(dir, access: .exclusive)
        try await exclusive.reindex()
        #expect(Fixtures.read(oldest.path) != damaged)
        #expect(try await exclusive.verify(mode: .quick).ok)
    }

    @Test func aFlippedByteInAHashTileIsATileMismatchNotJournalTampering() async throws {
        let archive = try await grownArchive()
        let all = await partials("log/tile/0/000")
        #expect(all.count >= 2, "the stale partial tiles are checked too")
        for (width, path) in all {
            let relative = "log/tile/0/000.p/\(width)"
            try flipByte(path, at: 0)  // the leaf hash of entry 0
            let report = try await archive.verify(mode: .quick)
            #expect(report.problems.count == 1, "\(relative): \(report.problems)")
            let problem = try #require(report.problems.first)
            #expect(problem.kind == .tileMismatch && problem.detail.contains(relative) && problem.entry == nil)
            try flipByte(path, at: 0)
            #expect(try await archive.verify(mode: .quick).ok, "\(relative) restored")
        }
        // An altered journal entry is still named as such, precisely.
        var entries: [[UInt8]] = []
        try archive.journal.scan(from: .start) { entries.append($0.bytes) }
        entries[2][20] ^= 0x01
        try ArchiveFiles.writeAtomically(root + "/journal/entries", entries.flatMap(Journal.frame))
        let report = try await archive.verify(mode: .quick)
        #expect(report.problems.contains { $0.kind == .ledgerMismatch && $0.entry == 2 })
        #expect(!report.problems.contains { $0.kind == .tileMismatch })
    }

    @Test func aMissingOrPlantedTileIsReported() async throws {
        let archive = try await grownArchive()
        let size = try #require(try archive.ledger.latestCheckpoint()).size
        let latest = root + "/log/tile/0/000.p/\(size)"
        let saved = Fixtures.read(latest)
        try FileManager.default.removeItem(atPath: latest)
        var problems = try await archive.verify(mode: .quick).problems
        #expect(problems.contains { $0.kind == .tileMismatch && $0.detail.contains("000.p/\(size) is missing") })
        try ArchiveFiles.writeAtomically(latest, saved)
        // Wider than the tree, at a path that is no tile, and a link: none of them is a tile of this log.
        try ArchiveFiles.writeAtomically(root + "/log/tile/0/000.p/200", [UInt8](repeating: 7, count: 200 * 32))
        try ArchiveFiles.writeAtomically(root + "/log/tile/0/notes.txt", Array("hello".utf8))
        try FileManager.default.createSymbolicLink(atPath: root + "/log/tile/0/001", withDestinationPath: "/etc/passwd")
        problems = try await archive.verify(mode: .quick).problems
        let unexpected = problems.filter { $0.kind == .tileUnexpected }.map(\.detail)
        #expect(unexpected.count == 3, "\(problems)")
        #expect(unexpected.contains { $0.contains("log/tile/0/000.p/200") })
        #expect(unexpected.contains { $0.contains("log/tile/0/notes.txt") })
        #expect(unexpected.contains { $0.contains("log/tile/0/001") })
        #expect(problems.count == 3)
    }

    @Test func aLogOfManyTilesIsCheckedAtEveryLevel() throws {
        // A bare ledger grown to 3000 entries in steps of 500: level-1 partial tiles of widths 1, 3, 5, … 11.
        let key = try SigningKey(seed: SecretBytes(randomCount: 32))
        let folder = dir.path + "/bare"
        let ledger = Ledger(
            root: folder,
            origin: "custody/bare0000",
            logPublicKey: key.publicKey,
            journal: try Journal(directory: folder + "/journal")
        )
        for step in 0..<6 {
            try ledger.append((0..<500).map { Array("entry \(step * 500 + $0)".utf8) }, logKey: key)
        }
        #expect(try ledger.audit().problems.isEmpty)
        let level1 = folder + "/log/tile/1/000.p"
        let widths = try FileManager.default.contentsOfDirectory(atPath: level1).compactMap(Int.init).sorted()
        #expect(widths == [1, 3, 5, 7, 9, 11])
        for width in [3, 11] {
            try flipByte(level1 + "/\(width)", at: 40)
            let problems = try ledger.audit().problems
            #expect(problems.count == 1 && problems.first?.kind == .tileMismatch, "\(problems)")
            #expect(problems.first?.detail.contains("log/tile/1/000.p/\(width)") == true)
            try flipByte(level1 + "/\(width)", at: 40)
        }
        #expect(try ledger.audit().problems.isEmpty)
    }

    // MARK: Checkpoints in log/ and journal/checkpoints/

    @Test func filesPlantedBesideTheServedLogAndItsHistoryAreReported() async throws {
        let archive = try await grownArchive(notes: 0)
        let size = try #require(try archive.ledger.latestCheckpoint()).size
        // Served as it is, so nothing but the checkpoint and the tiles belongs in log/.
        try ArchiveFiles.writeAtomically(root + "/log/index.html", Array("<script>".utf8))
        // A copy of a checkpoint under a name that is not its size is no checkpoint of the history.
        try ArchiveFiles.writeAtomically(
            root + "/journal/checkpoints/0\(size)",
            Fixtures.read(root + "/journal/checkpoints/\(size)")
        )
        let problems = try await archive.verify(mode: .quick).problems
        #expect(problems.count == 2, "\(problems)")
        #expect(problems.contains { $0.kind == .tileUnexpected && $0.detail.contains("log/index.html") })
        #expect(
            problems.contains { $0.kind == .checkpointInvalid && $0.detail.contains("journal/checkpoints/0\(size)") }
        )
    }

    @Test func aRolledBackServedCheckpointIsNotTakenAsTheNewest() async throws {
        let archive = try await grownArchive()
        let sizes = archive.ledger.checkpointSizes()
        let older = try #require(sizes.dropLast().last)
        try ArchiveFiles.writeAtomically(
            root + "/log/checkpoint",
            Fixtures.read(root + "/journal/checkpoints/\(older)")
        )
        // The journal is still checked up to the newest signed size: removing its last entry is caught.
        var entries: [[UInt8]] = []
        try archive.journal.scan(from: .start) { entries.append($0.bytes) }
        try ArchiveFiles.writeAtomically(root + "/journal/entries", entries.dropLast().flatMap(Journal.frame))
        let report = try await archive.verify(mode: .quick)
        #expect(report.warnings.contains { $0.contains("log/checkpoint (size \(older)) is older") })
        #expect(report.problems.contains { $0.kind == .ledgerTruncated })
    }

    // MARK: Witness state

    @Test func aTamperedOrPlantedWitnessStateIsReported() async throws {
        let archive = try await grownArchive(notes: 0)
        let w = try await witness(of: archive)
        _ = try w.cosign(Array(try #require(try archive.ledger.latestCheckpoint()).note.utf8))
        #expect(try await w.verify(mode: .quick).ok)
        let state = w.witnessStatePath(origin: archive.config.origin)
        let note = String(decoding: Fixtures.read(state), as: UTF8.self)
        // The stored root replaced: the note no longer verifies with the peer's log key.
        let lines = note.split(separator: "\n", omittingEmptySubsequences: false)
        let otherRoot = Encoding.base64([UInt8](repeating: 1, count: 32))
        let edited = ([lines[0], lines[1], Substring(otherRoot)] + lines[3...]).joined(separator: "\n")
        try ArchiveFiles.writeAtomically(state, Array(edited.utf8))
        var problems = try await w.verify(mode: .quick).problems
        #expect(problems.contains { $0.kind == .witnessStateInvalid && $0.detail.contains("signed by its log key") })
        // A state file for a log nobody added.
        try ArchiveFiles.writeAtomically(state, Array(note.utf8))
        try ArchiveFiles.writeAtomically(
            dir.path + "/w/witness/00112233445566778899aabbccddeeff.checkpoint",
            Array(note.utf8)
        )
        problems = try await w.verify(mode: .quick).problems
        #expect(problems.count == 1 && problems[0].kind == .witnessStateInvalid)
        #expect(problems[0].detail.contains("no known witness"))
    }

    // MARK: Proofs sent to witness cosign

    /// `archive`'s consistency request from `size`, with the proof hash at `flip` altered by one bit.
    private func request(_ archive: Archive.Unlocked, from size: Int, flip: Int?) async throws -> String {
        var proof = try archive.ledger.consistencyProof(from: size)
        if let flip { proof.proof[flip][0] ^= 0x01 }
        return proof.witnessRequest
    }

    @Test func aFlippedConsistencyProofHashIsProofInvalidNotAFork() async throws {
        let archive = try await grownArchive(notes: 0)
        let w = try await witness(of: archive)
        let first = try #require(try archive.ledger.latestCheckpoint())
        _ = try w.cosign(Array(first.note.utf8))
        let stateBefore = Fixtures.read(w.witnessStatePath(origin: archive.config.origin))
        let item = try await archive.index().list(ItemFilter())[0].id
        for i in 0..<3 { try await archive.note(item, text: "more \(i)") }
        let count = try archive.ledger.consistencyProof(from: first.size).proof.count
        #expect(count >= 2)
        for index in 0..<count {
            let error = await #expect(throws: ArchiveError.self) {
                try await w.cosign(Array(try await request(archive, from: first.size, flip: index).utf8))
            }
            #expect(error?.code == .badInput, "proof hash \(index)")
            #expect(error?.reason == .proofInvalid)
            #expect(error?.reason != .fork)
        }
        #expect(!FileManager.default.fileExists(atPath: dir.path + "/w/witness/conflicts"))
        #expect(Fixtures.read(w.witnessStatePath(origin: archive.config.origin)) == stateBefore)
        // The genuine proof still goes through.
        let next = try w.cosign(Array(try await request(archive, from: first.size, flip: nil).utf8))
        #expect(next.previousSize == first.size)
    }

    @Test func aForkProvenByAValidProofIsStillAFork() async throws {
        // Sizes stay off powers of two: an RFC 9162 proof from a complete tree leaves its root out, so only the
        // same-size checkpoint (checked below) can show that fork.
        let archive = try await grownArchive(notes: 1)
        let w = try await witness(of: archive)
        let item = try await archive.index().list(ItemFilter())[0].id
        // A copy with the same keys, taken now, grows another history.
        let forkPath = dir.path + "/fork"
        try FileManager.default.copyItem(atPath: root, toPath: forkPath)
        try await archive.note(item, text: "the real history")
        let real = try #require(try archive.ledger.latestCheckpoint())
        _ = try w.cosign(Array(real.note.utf8))
        let fork = try Archive.open(at: forkPath).unlock(passphrase: Fixtures.secret())
        try await fork.note(item, text: "a rewritten history")
        try await fork.note(item, text: "and more of it")
        // The forked log's honest proof from the size w saw: it leads to the forked root, and its prefix of that
        // size is not the root w cosigned — provably two histories.
        let forked = try fork.ledger.consistencyProof(from: real.size)
        let error = #expect(throws: ArchiveError.self) { try w.cosign(Array(forked.witnessRequest.utf8)) }
        #expect(error?.code == .damaged && error?.reason == .fork)
        let conflicts = Fixtures.allFiles(under: dir.path + "/w/witness/conflicts")
        #expect(conflicts.count == 1)
        let evidence = String(decoding: Fixtures.read(try #require(conflicts.first)), as: UTF8.self)
        #expect(evidence.hasPrefix(real.note + "\nold \(real.size)\n"))
        #expect(evidence.hasSuffix("\n\n" + forked.checkpoint.note))
        // The same-size fork is still caught too.
        let sameSize = try #require(try fork.ledger.storedCheckpoint(size: real.size))
        #expect(sameSize.root != real.root)
        let again = #expect(throws: ArchiveError.self) { try w.cosign(Array(sameSize.note.utf8)) }
        #expect(again?.code == .damaged && again?.reason == .fork)
        // verify checks the evidence: both records prove a fork by themselves.
        let report = try await w.verify(mode: .quick)
        #expect(report.ok && !report.warnings.contains { $0.contains("prove a fork") }, "\(report.problems)")
        // Evidence edited to accuse the log of a fork it never signed is reported.
        let path = try #require(conflicts.first)
        let edited = evidence.replacingOccurrences(of: Encoding.base64(real.root), with: Encoding.base64(sameSize.root))
        try ArchiveFiles.writeAtomically(path, Array(edited.utf8))
        let problems = try await w.verify(mode: .quick).problems
        #expect(problems.count == 1 && problems.first?.kind == .witnessConflictInvalid, "\(problems)")
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
