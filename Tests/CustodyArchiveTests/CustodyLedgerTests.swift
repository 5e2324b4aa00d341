import CustodyCrypto
import CustodyStorage
import CustodyTestSupport
import Foundation
import Testing

@testable import CustodyArchive

/// The custody ledger as an archive uses it: annotation events, proofs of items, verify's ledger audit
/// against tampering, and witnesses cosigning each other's checkpoints.
@Suite struct CustodyLedgerTests {
    let dir = TempDirectory("custody-ledger")

    private func archiveWithItems(_ count: Int = 3) async throws -> (Archive.Unlocked, [IngestedItem]) {
        let archive = try await Fixtures.archive(in: dir, chunkSize: 4096)
        for i in 0..<count { dir.write("up/\(i).txt", Array("item \(i)".utf8)) }
        var options = IngestOptions()
        options.fields.tags = ["first"]
        let report = try await archive.ingest([dir.path + "/up"], options: options)
        return (archive, report.items)
    }

    private var journalPath: String { dir.path + "/archive/journal/entries" }

    private func entries(_ archive: Archive.Unlocked) async throws -> [[UInt8]] {
        var out: [[UInt8]] = []
        try archive.journal.scan(from: .start) { out.append($0.bytes) }
        return out
    }

    // MARK: Annotations

    @Test func tagsAndNotesAreEventsTheIndexAndReindexFollow() async throws {
        let (id, history, listed) = try await annotateAndCheck()
        let exclusive = try Fixtures.reopen(dir, access: .exclusive)
        #expect(try await exclusive.collectGarbage(dryRun: true).objects.isEmpty)
        try await exclusive.reindex()
        #expect(try await exclusive.index().list(ItemFilter()) == listed)
        #expect(try await exclusive.index().events(of: id) == history)
        #expect(try await exclusive.index().search("legal").map(\.id) == [id])
    }

    /// Tags and notes one item; returns its id, history and the item list (the archive is closed on return).
    private func annotateAndCheck() async throws -> (String, [IndexedEvent], [IndexedItem]) {
        let (archive, items) = try await archiveWithItems()
        let id = items[0].id.hex
        #expect(try await archive.tag(id, add: ["urgent", "video"], remove: ["first"]) == ["urgent", "video"])
        try await archive.note(id, text: "Chain of custody reviewed by the legal unit")
        #expect(try await archive.tag(id, add: [], remove: ["video"]) == ["urgent"])
        let history = try await archive.index().events(of: id)
        #expect(history.map(\.type) == ["ingest", "tag", "note", "tag"])
        #expect(history[1].annotation == .tags(add: ["urgent", "video"], remove: ["first"]))
        #expect(history[2].annotation?.text == "Chain of custody reviewed by the legal unit")
        #expect(try await archive.index().list(ItemFilter()).first { $0.id == id }?.metadata.tags == ["urgent"])
        #expect(try await archive.index().search("legal").map(\.id) == [id])
        var filter = ItemFilter()
        filter.tags = ["first"]
        #expect(try await archive.index().list(filter).count == 2)

        // The public events name a sealed object; neither the tag nor the note text appears in the log.
        let log = try await entries(archive).flatMap { $0 }
        #expect(!contains(log, Array("urgent".utf8)) && !contains(log, Array("legal unit".utf8)))
        // Annotation objects are named by events: not orphans, so gc keeps them.
        #expect(try await archive.verify(mode: .deep).orphans.isEmpty)
        return (id, history, try await archive.index().list(ItemFilter()))
    }

    @Test func badAnnotationsAreRefusedAndRecordNothing() async throws {
        let (archive, items) = try await archiveWithItems(1)
        let id = items[0].id.hex
        let before = Fixtures.read(journalPath)
        await #expect(
            (await #expect(throws: ArchiveError.self) { try await archive.tag(id, add: [], remove: []) })?.code
                == .usage
        )
        await #expect(
            (await #expect(throws: ArchiveError.self) { try await archive.tag(id, add: ["a"], remove: ["a"]) })?.code
                == .usage
        )
        await #expect(
            (await #expect(throws: ArchiveError.self) { try await archive.tag(id, add: [""], remove: []) })?.code
                == .badInput
        )
        await #expect(
            (await #expect(throws: ArchiveError.self) { try await archive.note(id, text: "  \n") })?.code == .badInput
        )
        let long = String(repeating: "x", count: 70_000)
        await #expect(
            (await #expect(throws: ArchiveError.self) { try await archive.note(id, text: long) })?.code == .badInput
        )
        #expect(
            (await #expect(throws: ArchiveError.self) { try await archive.note("0123456789abcdef", text: "x") })?.code
                == .notFound
        )
        #expect(Fixtures.read(journalPath) == before)
    }

    // MARK: Proofs

    @Test func anItemsProofLeadsFromItsIngestEntryToTheSignedRoot() async throws {
        let (archive, items) = try await archiveWithItems(5)
        let all = try await entries(archive)
        for item in items {
            let proof = try await archive.proveItem(item.id.hex)
            let entry = all[proof.index]
            #expect(try Event.parse(entry, publicKey: archive.signingPublicKey).item == item.id)
            let root = Merkle.root(
                fromInclusionProof: proof.proof,
                leafHash: Merkle.leafHash(entry),
                index: proof.index,
                size: proof.checkpoint.size
            )
            #expect(root == proof.checkpoint.root)
            #expect(
                SignedNote.isSigned(
                    proof.checkpoint.note,
                    name: archive.config.origin,
                    publicKey: archive.ledger.logPublicKey
                )
            )
        }
    }

    // MARK: Tampering found by verify

    @Test func aFlippedByteInAnEntryIsReported() async throws {
        let (archive, _) = try await archiveWithItems()
        var bytes = Fixtures.read(journalPath)
        bytes[100] ^= 0x01
        try ArchiveFiles.writeAtomically(journalPath, bytes)
        let report = try await archive.verify(mode: .quick)
        #expect(report.problems.contains { $0.kind == .journalDamaged && $0.entry == 0 })
        #expect(report.problems.contains { $0.kind == .ledgerTruncated })
    }

    @Test func anEntryReSealedInAValidFrameIsNamedPrecisely() async throws {
        let (archive, _) = try await archiveWithItems()
        var all = try await entries(archive)
        all[1][20] ^= 0x01  // inside the JSON body: the signature fails, the frame is rebuilt around it
        try ArchiveFiles.writeAtomically(journalPath, all.flatMap(Journal.frame))
        let report = try await archive.verify(mode: .quick)
        #expect(report.problems.contains { $0.kind == .badEntry && $0.entry == 1 })
        #expect(report.problems.contains { $0.kind == .ledgerMismatch && $0.entry == 1 })
    }

    @Test func swappedEntriesAreCaughtAtTheFirstMovedOne() async throws {
        let (archive, items) = try await archiveWithItems()
        try await archive.note(items[0].id.hex, text: "one")
        try await archive.note(items[1].id.hex, text: "two")
        var all = try await entries(archive)
        all.swapAt(3, 4)
        try ArchiveFiles.writeAtomically(journalPath, all.flatMap(Journal.frame))
        let report = try await archive.verify(mode: .quick)
        let mismatch = try #require(report.problems.first { $0.kind == .ledgerMismatch })
        #expect(mismatch.entry == 3)
        // Two: the first entry that differs from the signed log, and the signed root its entries do not hash to.
        #expect(report.problems.filter { $0.kind == .ledgerMismatch }.map(\.entry) == [3, 3], "\(report.problems)")
    }

    @Test func aDroppedLastEntryIsReportedAndStopsAppends() async throws {
        let (archive, items) = try await archiveWithItems()
        try await archive.note(items[0].id.hex, text: "will be removed")
        let all = try await entries(archive)
        try ArchiveFiles.writeAtomically(journalPath, all.dropLast().flatMap(Journal.frame))
        let report = try await archive.verify(mode: .quick)
        let truncated = try #require(report.problems.first { $0.kind == .ledgerTruncated })
        #expect(
            truncated.detail.contains(
                "holds \(all.count - 1) entries but the log signed a checkpoint of size \(all.count)"
            )
        )
        let error = await #expect(throws: ArchiveError.self) { try await archive.note(items[1].id.hex, text: "after") }
        #expect(error?.code == .damaged)
        #expect(try await entries(archive).count == all.count - 1)
    }

    @Test func aTamperedTileIsReportedAndReindexRebuildsIt() async throws {
        do {
            let (archive, _) = try await archiveWithItems()
            let tile = try #require(Fixtures.allFiles(under: dir.path + "/archive/log/tile/0").last)
            var bytes = Fixtures.read(tile)
            bytes[0] ^= 0x80
            try ArchiveFiles.writeAtomically(tile, bytes)
            let report = try await archive.verify(mode: .quick)
            // The journal still hashes to every signed root: the tile is what is damaged, not the history.
            #expect(report.problems.contains { $0.kind == .tileMismatch })
            #expect(!report.problems.contains { $0.kind == .ledgerMismatch })
        }
        let exclusive = try Fixtures.reopen(dir, access: .exclusive)
        try await exclusive.reindex()
        #expect(try await exclusive.verify(mode: .quick).ok)
    }

    @Test func entriesWithoutACheckpointAreAWarningUntilSigned() async throws {
        let (archive, _) = try await archiveWithItems()
        let before = try await entries(archive)
        // An append whose process died before signing: frames only.
        var extract = Event(type: .extract, time: RFC3339.now(), actor: archive.config.origin, item: nil)
        let member = try #require(archive.member)
        extract.by = member.member.id
        _ = try archive.journal.append(
            [try extract.entryBytes(signedBy: archive.keys.signing, member: member.signing)],
            hint: JournalPosition(count: before.count, offset: archive.journal.byteCount())
        )
        let report = try await archive.verify(mode: .quick)
        #expect(report.ok)
        #expect(report.warnings.contains { $0.contains("1 entries after the latest checkpoint") })
        #expect(try archive.signCheckpoint().size == before.count + 1)
        #expect(try await archive.verify(mode: .quick).warnings.isEmpty)
    }

    // MARK: Witnesses

    /// Two archives that know each other as witnesses.
    private func witnessPair() async throws -> (a: Archive.Unlocked, b: Archive.Unlocked) {
        let (a, _) = try await archiveWithItems(2)
        let b = try await Archive.create(
            at: dir.path + "/b",
            name: "Witness",
            passphrase: Fixtures.secret(),
            kdfPreset: "insecure-test"
        )
        _ = try b.trust(try a.identity(), role: .witness)
        _ = try a.trust(try b.identity(), role: .witness)
        return (a, b)
    }

    @Test func witnessesCosignCheckpointsThatExtendWhatTheySaw() async throws {
        let (a, b) = try await witnessPair()
        let first = try #require(try a.ledger.latestCheckpoint())
        let cosigned = try b.cosign(Array(first.note.utf8), now: 1_800_000_000)
        #expect(cosigned.previousSize == nil && cosigned.size == first.size)
        // The line is a valid C2SP cosignature by b's signing key over a's checkpoint.
        let line = try #require(SignedNote.parseSignatureLine(Substring(cosigned.line.dropLast())))
        let bKey = try #require(Encoding.bytes(base64: b.config.signingKey))
        #expect(
            SignedNote.cosignatureTime(line, body: first.body, name: b.config.origin, publicKey: bKey) == 1_800_000_000
        )

        let attached = try await a.attachCosignatures(Array(cosigned.line.utf8))
        #expect(attached.map(\.size) == [first.size])
        let withCosignature = try await #require(try a.cosignedCheckpoint())
        #expect(withCosignature.note == first.note + cosigned.line)

        // More history, then a tlog-witness request from the size b cosigned.
        try await a.note(try await a.index().list(ItemFilter())[0].id, text: "reviewed")
        let proof = try a.ledger.consistencyProof(from: first.size)
        let request =
            "old \(first.size)\n" + proof.proof.map { Encoding.base64($0) + "\n" }.joined() + "\n"
            + proof.checkpoint.note
        let second = try b.cosign(Array(request.utf8))
        #expect(second.previousSize == first.size && second.size == first.size + 1)
        // The same checkpoint again is cosigned again; older, stale and proof-less ones are refused.
        #expect(try b.cosign(Array(request.utf8)).size == second.size)
        #expect(try b.cosign(Array(proof.checkpoint.note.utf8)).size == second.size)
        #expect((#expect(throws: ArchiveError.self) { try b.cosign(Array(first.note.utf8)) })?.code == .badInput)
        try await a.note(try await a.index().list(ItemFilter())[0].id, text: "reviewed again")
        let third = try #require(try a.ledger.latestCheckpoint())
        #expect((#expect(throws: ArchiveError.self) { try b.cosign(Array(third.note.utf8)) })?.code == .badInput)
        let stale = try a.ledger.consistencyProof(from: first.size)
        let staleRequest =
            "old \(first.size)\n" + stale.proof.map { Encoding.base64($0) + "\n" }.joined() + "\n" + third.note
        let staleError = #expect(throws: ArchiveError.self) { try b.cosign(Array(staleRequest.utf8)) }
        #expect(staleError?.code == .badInput)
        // The fix names the command and the size to prove from: the property under test.
        #expect(staleError?.fix.contains("custody prove --consistency \(second.size)") == true)
    }

    @Test func aForkSignedWithTheRightKeyIsRefusedLoudly() async throws {
        let (a, b) = try await witnessPair()
        let base = try #require(try a.ledger.latestCheckpoint())
        _ = try b.cosign(Array(base.note.utf8))
        // A copy of the archive, holding the same keys, grows a different history: a fork.
        let fork = dir.path + "/fork"
        try FileManager.default.copyItem(atPath: dir.path + "/archive", toPath: fork)
        try await a.note(try await a.index().list(ItemFilter())[0].id, text: "the real history")
        let forked = try Archive.open(at: fork).unlock(passphrase: Fixtures.secret())
        try await forked.note(try await forked.index().list(ItemFilter())[0].id, text: "a rewritten history")
        let real = try a.ledger.consistencyProof(from: base.size)
        let fake = try forked.ledger.consistencyProof(from: base.size)
        #expect(real.checkpoint.size == fake.checkpoint.size && real.checkpoint.root != fake.checkpoint.root)

        _ = try b.cosign(Array(real.witnessRequest.utf8))
        // The forked checkpoint, at the same size, validly signed by the same log key: refused.
        let sameSize = #expect(throws: ArchiveError.self) { try b.cosign(Array(fake.checkpoint.note.utf8)) }
        #expect(sameSize?.code == .damaged)
        #expect(sameSize?.reason == .fork)
        #expect(sameSize?.problem.contains(Encoding.base64(real.checkpoint.root)) == true)
        #expect(sameSize?.problem.contains(Encoding.base64(fake.checkpoint.root)) == true)
        let conflicts = Fixtures.allFiles(under: dir.path + "/b/witness/conflicts")
        #expect(conflicts.count == 1)
        let evidence = String(decoding: Fixtures.read(conflicts[0]), as: UTF8.self)
        #expect(evidence.contains(real.checkpoint.note) && evidence.contains(fake.checkpoint.note))
        // A witness that only saw the base is shown the fork with a proof that cannot hold.
        let c = try await Archive.create(
            at: dir.path + "/c",
            name: "C",
            passphrase: Fixtures.secret(),
            kdfPreset: "insecure-test"
        )
        _ = try c.trust(try a.identity(), role: .witness)
        _ = try c.cosign(Array(base.note.utf8))
        _ = try c.cosign(Array(fake.witnessRequest.utf8))
        let later = #expect(throws: ArchiveError.self) { try c.cosign(Array(real.witnessRequest.utf8)) }
        #expect(later?.code == .damaged, "c followed the fork first: the real history now contradicts it")
        #expect(later?.reason == .fork)
    }

    @Test func unknownLogsForgedSignaturesAndStrangersAreRefused() async throws {
        let (a, b) = try await witnessPair()
        let checkpoint = try #require(try a.ledger.latestCheckpoint())
        let c = try await Archive.create(
            at: dir.path + "/c",
            name: "C",
            passphrase: Fixtures.secret(),
            kdfPreset: "insecure-test"
        )
        #expect(
            (#expect(throws: ArchiveError.self) { try c.cosign(Array(checkpoint.note.utf8)) })?.code == .notAuthorised
        )
        // A's checkpoint body re-signed by another key under A's name.
        let stranger = try SigningKey(seed: SecretBytes(randomCount: 32))
        let forged = Checkpoint.signed(origin: a.config.origin, size: 99, root: checkpoint.root, key: stranger)
        #expect((#expect(throws: ArchiveError.self) { try b.cosign(Array(forged.note.utf8)) })?.code == .damaged)
        #expect((#expect(throws: ArchiveError.self) { try b.cosign(Array("hello".utf8)) })?.code == .badInput)
        #expect((#expect(throws: ArchiveError.self) { try b.cosign([0xFF, 0xFE]) })?.code == .badInput)
        // A cosignature from a body a does not know, and a line that cosigns nothing of a's.
        _ = try c.trust(try a.identity(), role: .witness)
        let fromStranger = try c.cosign(Array(checkpoint.note.utf8)).line
        #expect(
            (await #expect(throws: ArchiveError.self) { try await a.attachCosignatures(Array(fromStranger.utf8)) })?
                .code
                == .notAuthorised
        )
        let other = try #require(try b.ledger.latestCheckpoint())
        _ = try a.trust(try c.identity(), role: .witness)
        _ = try c.trust(try b.identity(), role: .witness)
        let wrongLog = try c.cosign(Array(other.note.utf8)).line
        #expect(
            (await #expect(throws: ArchiveError.self) { try await a.attachCosignatures(Array(wrongLog.utf8)) })?.code
                == .damaged
        )
        #expect(try await a.cosignedCheckpoint() == nil)
        // The archive's own identity is not a witness of itself; a changed key under a known origin is refused.
        #expect((#expect(throws: ArchiveError.self) { try a.trust(try a.identity(), role: .witness) })?.code == .usage)
    }
}
