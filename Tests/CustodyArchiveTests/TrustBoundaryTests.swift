import CustodyCrypto
import CustodyStorage
import CustodyTestSupport
import Foundation
import Testing

@testable import CustodyArchive

#if canImport(Glibc)
import Glibc
#endif

/// The trust boundary between bodies (issue 11), each test written as the attack: bundles that are well formed
/// and validly signed by their sender, but not allowed. Each must be refused with the receiving archive unchanged.
@Suite struct TrustBoundaryTests {
    let dir = TempDirectory("trust-boundary")

    /// A victim body with two items in case C and a grant of them to a partner; a stranger (mallory).
    struct World {
        let victim: Archive.Unlocked
        let partner: Archive.Unlocked
        let mallory: Archive.Unlocked
        let items: [IngestedItem]
        /// The victim's grant to its partner.
        let grant: Grant
    }

    private func make(_ name: String) async throws -> Archive.Unlocked {
        try await Archive.create(
            at: dir.path + "/" + name,
            name: name,
            passphrase: Fixtures.secret(),
            kdfPreset: "insecure-test",
            chunkSize: 4096
        )
    }

    private func world() async throws -> World {
        let victim = try await make("victim")
        var options = IngestOptions()
        options.fields.caseID = "C"
        let items = try await victim.ingest(
            [dir.write("in/a.bin", randomBytes(10_000)), dir.write("in/b.txt", text: "statement")],
            options: options
        ).items
        let partner = try await make("partner")
        var request = GrantRequest(grantee: try partner.identity(), expires: Expiry.resolve("30d") ?? "", purpose: "p")
        request.caseID = "C"
        request.reshare = true
        let (grant, _, _) = try await victim.createGrant(request)
        return await World(victim: victim, partner: partner, mallory: try make("mallory"), items: items, grant: grant)
    }

    /// A grant from mallory to `to` of one item of its own, exported: a valid bundle to forge from.
    private func malloryBundle(
        _ w: World,
        to: Archive.Unlocked,
        kind: Grant.Kind = .grant,
        name: String
    ) async throws -> String {
        var options = IngestOptions()
        options.fields.caseID = "M"
        _ = try await w.mallory.ingest([dir.write("m/\(name).txt", text: "mallory's \(name)")], options: options)
        var request = GrantRequest(grantee: try to.identity(), expires: Expiry.resolve("10d") ?? "", purpose: "p")
        request.caseID = "M"
        request.kind = kind
        let (grant, _, _) = try await w.mallory.createGrant(request)
        let path = dir.path + "/\(name).bundle"
        try await w.mallory.exportBundle(grant: grant.id, to: path)
        return path
    }

    private func records(_ path: String) throws -> [(Character, [UInt8])] { try BundleRecords.read(path) }

    /// Writes records as a well-formed bundle named `name` in the test folder; its path.
    private func write(_ records: [(Character, [UInt8])], _ name: String) throws -> String {
        let path = dir.path + "/" + name
        try BundleRecords.write(records, to: path)
        return path
    }

    private func problems(_ path: String, granter: Identity? = nil) async throws -> [VerifyProblem] {
        try await BundleVerifier.verify(path: path, granter: granter, at: Int(time(nil))).0.problems
    }

    /// Imports `path` into `archive` expecting a refusal with `code`; checks the journal, the index and every
    /// stored grant are unchanged.
    @discardableResult
    private func expectRefused(
        _ archive: Archive.Unlocked,
        _ path: String,
        _ code: ArchiveError.Code? = nil
    ) async throws -> ArchiveError? {
        let journal = Fixtures.read(archive.root + "/journal/entries")
        let grants = try storedGrants(archive)
        let items = try await archive.index().itemCount()
        let error = await #expect(throws: ArchiveError.self) {
            try await archive.importBundle(path: path, trustGranter: true)
        }
        if let code { #expect(error?.code == code, "\(error?.problem ?? "")") }
        #expect(Fixtures.read(archive.root + "/journal/entries") == journal)
        #expect(try storedGrants(archive) == grants)
        #expect(try await archive.index().itemCount() == items)
        return error
    }

    private func storedGrants(_ archive: Archive.Unlocked) throws -> [String: [UInt8]] {
        let directory = archive.root + "/grants"
        let names = (try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? []
        return Dictionary(uniqueKeysWithValues: names.map { ($0, Fixtures.read(directory + "/" + $0)) })
    }

    /// Mallory's copy of `grant` under its own key, naming itself as grantee (or with another id).
    private func forged(_ grant: Grant, by mallory: Archive.Unlocked, id: String? = nil) throws -> [UInt8] {
        var copy = grant
        copy.id = id ?? grant.id
        copy.granter = GrantParty(try mallory.identity())
        copy.grantee = GrantParty(try mallory.identity())
        return try copy.signed(by: try mallory.keys.signing)
    }

    @Test func anAncestorRecordOffTheParentChainCannotRewriteAStoredGrant() async throws {
        let w = try await world()
        // Finding 1: an anonymous submission with an extra P whose id is one of the victim's own grants (readable
        // from its public log) and whose grantee is mallory.
        let path = try await malloryBundle(w, to: w.victim, kind: .anonymousSubmission, name: "anon")
        var recs = try records(path)
        let plant = try forged(w.grant, by: w.mallory)
        recs.insert(("P", plant), at: 2)
        let attack = try write(recs, "extra-p.bundle")
        #expect(try await problems(attack).contains { $0.kind == .reshareInvalid })
        try await expectRefused(w.victim, attack)
        // The victim's grant is still its own, to its partner.
        #expect(try await w.victim.storedGrant(w.grant.id).grant == w.grant)

        // The same with a path for an id: refused before anything is written, nowhere.
        var traversal = w.grant
        traversal.id = "../../../../victim-owned"
        let signed = try traversal.signed(by: try w.mallory.keys.signing)
        recs = try records(path)
        recs.insert(("P", signed), at: 2)
        try await expectRefused(w.victim, try write(recs, "traversal-p.bundle"))
        #expect(!FileManager.default.fileExists(atPath: dir.path + "/victim-owned.grant"))
        #expect(throws: ArchiveError.self) { try Grant.parse(signed) }
    }

    @Test func aTrustedGranterCannotReuseTheIdOfAStoredGrant() async throws {
        let w = try await world()
        // Mallory, trusted by the victim, grants it an item under the id of the victim's own grant.
        let path = try await malloryBundle(w, to: w.victim, name: "reuse")
        var recs = try records(path)
        var grant = try Grant.parse(recs[1].1)
        grant.id = w.grant.id
        recs[1].1 = try grant.signed(by: try w.mallory.keys.signing)
        // Its grant event no longer matches, so re-log it: mallory signs what it likes in its own log.
        let attack = try write(recs, "reused-id.bundle")
        let error = try await expectRefused(w.victim, attack)
        #expect(error != nil)
        #expect(try await w.victim.storedGrant(w.grant.id).grant == w.grant)
    }

    @Test func oversizedAndNegativeSizesAreRefusedNotCrashed() async throws {
        let w = try await world()
        let path = try await malloryBundle(w, to: w.victim, name: "sizes")
        for size in [Int64.max, -1, ObjectRef.maxSize + 1] {
            var recs = try records(path)
            // The grant's JSON carries the size as mallory likes; signed by mallory, so the signature holds.
            let body = recs[1].1.prefix { $0 != 0x0A }
            var json = try #require(try JSONSerialization.jsonObject(with: Data(body)) as? [String: Any])
            var items = try #require(json["items"] as? [[String: Any]])
            var objects = try #require(items[0]["objects"] as? [[String: Any]])
            objects[0]["size"] = size
            items[0]["objects"] = objects
            json["items"] = items
            let newBody = Array(try JSONSerialization.data(withJSONObject: json, options: [.sortedKeys]))
            let signature = try w.mallory.keys.signing.signature(for: Grant.signatureDomain + newBody)
            recs[1].1 = newBody + [0x0A] + Array(Encoding.base64(signature).utf8)
            let attack = try write(recs, "size-\(size).bundle")
            #expect(try await problems(attack).first?.kind == .grantMalformed)
            try await expectRefused(w.victim, attack)
        }
    }

    @Test func anAnonymousSubmissionCannotPoseAsAKnownBody() async throws {
        let w = try await world()
        // The victim knows its partner as a granter.
        _ = try w.victim.trust(try w.partner.identity(), role: .granter)
        // Mallory's anonymous submission from an archive made under the partner's origin and name: coherent,
        // validly signed throughout — only the keys differ from the partner's.
        let partner = try w.partner.identity()
        let impostor = try await Archive.create(
            at: dir.path + "/impostor",
            name: partner.name,
            origin: partner.origin,
            passphrase: Fixtures.secret(),
            kdfPreset: "insecure-test"
        )
        var options = IngestOptions()
        options.fields.caseID = "M"
        _ = try await impostor.ingest([dir.write("m/pose.txt", text: "posing")], options: options)
        var request = GrantRequest(grantee: try w.victim.identity(), expires: Expiry.resolve("10d") ?? "", purpose: "p")
        request.caseID = "M"
        request.kind = .anonymousSubmission
        let (posing, _, _) = try await impostor.createGrant(request)
        let attack = dir.path + "/pose.bundle"
        try await impostor.exportBundle(grant: posing.id, to: attack)
        #expect(try await problems(attack).isEmpty)
        try await expectRefused(w.victim, attack, .notAuthorised)

        // A plain anonymous submission imports, and its provenance never repeats what it says of itself.
        let plain = try await malloryBundle(w, to: w.victim, kind: .anonymousSubmission, name: "plain")
        let imported = try await w.victim.importBundle(path: plain)
        #expect(imported.granter == Archive.anonymousGranter)
        let item = try #require(imported.imported.first)
        let provenance = try await #require(try w.victim.index().provenance(of: item))
        #expect(provenance.granter == Archive.anonymousGranter && provenance.granterOrigin == "anonymous")
        #expect(!provenance.granter.contains("mallory"))
    }

    @Test func aReshareCannotSubstituteWhatItsParentReleased() async throws {
        let w = try await world()
        try await w.victim.exportBundle(grant: w.grant.id, to: dir.path + "/parent.bundle")
        _ = try await w.partner.importBundle(path: dir.path + "/parent.bundle", trustGranter: true)
        // The partner re-shares to mallory, honestly; then swaps one item's objects for objects of its own item.
        var own = IngestOptions()
        own.fields.caseID = "OWN"
        let fake = try await #require(
            try w.partner.ingest([dir.write("fake.txt", text: "made up")], options: own).items.first
        )
        var request = GrantRequest(grantee: try w.mallory.identity(), expires: Expiry.resolve("5d") ?? "", purpose: "p")
        request.caseID = "C"
        let (child, _, _) = try await w.partner.createGrant(request)
        let path = dir.path + "/child.bundle"
        try await w.partner.exportBundle(grant: child.id, to: path)
        #expect(try await problems(path).isEmpty)

        let fakeIngest = try w.partner.ingestEvent(of: try await w.partner.resolveItem(fake.id.hex))
        let fakeObjects = try await w.partner.grantedItem(
            try await w.partner.resolveItem(fake.id.hex),
            ingest: fakeIngest,
            metadataOnly: false,
            to: try #require(Encoding.bytes(base64: try w.mallory.identity().boxKey))
        ).objects
        var recs = try records(path)
        var grant = try Grant.parse(recs[1].1)
        grant.items[0].objects = fakeObjects
        recs[1].1 = try grant.signed(by: try w.partner.keys.signing)
        let attack = try write(recs, "substituted.bundle")
        #expect(try await problems(attack).contains { $0.kind == .reshareInvalid })
        try await expectRefused(w.mallory, attack)
    }

    @Test func ancestorRecordsMustBeTheChainInOrderAndBounded() async throws {
        let w = try await world()
        try await w.victim.exportBundle(grant: w.grant.id, to: dir.path + "/parent.bundle")
        _ = try await w.partner.importBundle(path: dir.path + "/parent.bundle", trustGranter: true)
        var request = GrantRequest(grantee: try w.mallory.identity(), expires: Expiry.resolve("5d") ?? "", purpose: "p")
        request.caseID = "C"
        let (child, _, _) = try await w.partner.createGrant(request)
        let path = dir.path + "/child.bundle"
        try await w.partner.exportBundle(grant: child.id, to: path)
        let good = try records(path)
        #expect(good.filter { $0.0 == "P" }.count == 1)
        // The parent left out.
        let missing = try write(good.filter { $0.0 != "P" }, "no-parent.bundle")
        #expect(try await problems(missing).first?.kind == .parentMissing)
        // The parent twice: the second is off the chain (it ended at the original holder).
        var twice = good
        let parent = try #require(good.first { $0.0 == "P" })
        twice.insert(parent, at: 3)
        #expect(try await problems(try write(twice, "parent-twice.bundle")).first?.kind == .reshareInvalid)
        // Another grant in the parent's place.
        var other = good
        other[2] = ("P", try forged(w.grant, by: w.mallory))
        #expect(try await problems(try write(other, "other-parent.bundle")).first?.kind == .parentMissing)
    }

    @Test func aNamedGranterThatDoesNotMatchFailsTheCheck() async throws {
        let w = try await world()
        let path = dir.path + "/good.bundle"
        try await w.victim.exportBundle(grant: w.grant.id, to: path)
        let (right, _) = try await BundleVerifier.verify(
            path: path,
            granter: try w.victim.identity(),
            at: Int(time(nil))
        )
        #expect(right.ok && right.granterTrusted)
        let (wrong, _) = try await BundleVerifier.verify(
            path: path,
            granter: try w.mallory.identity(),
            at: Int(time(nil))
        )
        #expect(!wrong.ok && !wrong.granterTrusted && wrong.problems.contains { $0.kind == .granterUntrusted })
        let (unnamed, _) = try await BundleVerifier.verify(path: path, at: Int(time(nil)))
        #expect(unnamed.ok && !unnamed.granterTrusted)
    }

    @Test func cosignaturesOnABundlesCheckpointAreCheckedAndShown() async throws {
        let w = try await world()
        // The partner witnesses the victim's log; its cosignature is attached to the victim's checkpoint.
        _ = try w.partner.trust(try w.victim.identity(), role: .witness)
        _ = try w.victim.trust(try w.partner.identity(), role: .witness)
        let note = try #require(try w.victim.ledger.latestCheckpoint()).note
        let cosignature = try w.partner.cosign(Array(note.utf8))
        _ = try await w.victim.attachCosignatures(Array(cosignature.line.utf8))
        let path = dir.path + "/cosigned.bundle"
        try await w.victim.exportBundle(grant: w.grant.id, to: path)
        let partner = try w.partner.identity()
        let keys = [partner.origin: try #require(Encoding.bytes(base64: partner.signingKey))]
        let (checked, _) = try await BundleVerifier.verify(path: path, witnesses: keys, at: Int(time(nil)))
        #expect(checked.ok && checked.cosignatures.map(\.status) == ["valid"])
        let (unchecked, _) = try await BundleVerifier.verify(path: path, at: Int(time(nil)))
        #expect(unchecked.ok && unchecked.cosignatures.map(\.status) == ["unchecked"])

        // A forged cosignature in the partner's name (mallory's key): reported, and the bundle fails.
        var recs = try records(path)
        let index = try #require(recs.firstIndex { $0.0 == "C" })
        let checkpoint = try #require(
            Checkpoint.parseBody(
                String(decoding: recs[index].1, as: UTF8.self).components(separatedBy: "\n\n")[0] + "\n"
            )
        )
        let body = SignedNote.checkpointBody(origin: checkpoint.origin, size: checkpoint.size, root: checkpoint.root)
        let forgedLine = SignedNote.cosignatureLine(
            body: body,
            name: partner.origin,
            key: try w.mallory.keys.signing,
            timestamp: 1
        )
        recs[index].1 += Array(forgedLine.utf8)
        let attack = try write(recs, "forged-cosignature.bundle")
        let (forged, _) = try await BundleVerifier.verify(path: attack, witnesses: keys, at: Int(time(nil)))
        #expect(!forged.ok && forged.problems.contains { $0.kind == .cosignatureInvalid })
        #expect(forged.cosignatures.map(\.status).sorted() == ["invalid", "valid"])
        // At the grantee (the partner itself, whose own key the forged line claims), the import is refused.
        try await expectRefused(w.partner, attack)
    }

    @Test func objectRecordsFollowTheGrantsOrder() async throws {
        let w = try await world()
        let path = dir.path + "/good.bundle"
        try await w.victim.exportBundle(grant: w.grant.id, to: path)
        var recs = try records(path)
        let objects = recs.indices.filter { recs[$0].0 == "O" }
        #expect(objects.count >= 3)
        recs.swapAt(objects[0], objects[2])
        let swapped = try write(recs, "swapped.bundle")
        #expect(try await problems(swapped).contains { $0.kind == .objectOrder })
        try await expectRefused(w.partner, swapped)
    }

    @Test func aForkedCheckpointOfTheWitnessedSizeIsRefusedAtImport() async throws {
        let w = try await world()
        // A fork: the victim's archive copied, and the two copies grow apart to the same size.
        let fork = dir.path + "/victim-fork"
        try FileManager.default.copyItem(atPath: w.victim.root, toPath: fork)
        let forked = try Archive.open(at: fork).unlock(passphrase: Fixtures.secret())
        var options = IngestOptions()
        options.fields.caseID = "F"
        _ = try await w.victim.ingest([dir.write("f/real.txt", text: "the log the witnesses see")], options: options)
        _ = try await w.victim.ingest([dir.write("f/real2.txt", text: "and more")], options: options)
        _ = try await forked.ingest([dir.write("f/shown.txt", text: "the log the grantee is shown")], options: options)
        var request = GrantRequest(grantee: try w.partner.identity(), expires: Expiry.resolve("5d") ?? "", purpose: "p")
        request.caseID = "F"
        let (grant, _, _) = try await forked.createGrant(request)
        let path = dir.path + "/forked.bundle"
        try await forked.exportBundle(grant: grant.id, to: path)
        let real = try #require(try w.victim.ledger.latestCheckpoint())
        let shown = try #require(try forked.ledger.latestCheckpoint())
        #expect(real.size == shown.size && real.root != shown.root)
        // The partner witnessed the real log at that size.
        _ = try w.partner.trust(try w.victim.identity(), role: .witness)
        _ = try w.partner.cosign(Array(real.note.utf8))
        let error = try await expectRefused(w.partner, path, .damaged)
        #expect(error?.reason == .fork)
        let conflicts =
            (try? FileManager.default.contentsOfDirectory(atPath: w.partner.root + "/witness/conflicts")) ?? []
        #expect(conflicts.count == 1)
    }

    @Test func aBundleProvingMoreAnnotationsOfAnItemThanTheBoundIsRefused() async throws {
        let w = try await world()
        let item = try #require(w.items.first).id
        // The victim's log proves 4097 notes of one item (in one append): one more than a bundle may carry.
        let ingest = try w.victim.ingestEvent(of: try await w.victim.resolveItem(item.hex))
        let key = try w.victim.metaKey(of: ingest)
        var events: [Event] = []
        var staged: [StagedObject] = []
        for n in 0...BundleFormat.maxAnnotationsPerItem {
            let note = Array(try JSONEncoder().encode(Annotation.note("note \(n)")))
            let bytes = SealedPart.seal(note, kind: .annotation, item: item, key: key)
            let name = ObjectName(of: bytes)
            if let s = try await w.victim.store.stage(bytes, as: name, checkExisting: true) {
                staged.append(s)
            }
            events.append(
                Event(
                    type: .note,
                    time: RFC3339.now(),
                    actor: w.victim.config.origin,
                    item: item,
                    annotation: ObjectRef(name: name, size: Int64(bytes.count))
                )
            )
        }
        try await w.victim.store.commit(staged)
        _ = try await w.victim.record(events)
        var request = GrantRequest(grantee: try w.partner.identity(), expires: Expiry.resolve("5d") ?? "", purpose: "p")
        request.items = [item.hex]
        let (grant, _, _) = try await w.victim.createGrant(request)
        let path = dir.path + "/annotated.bundle"
        try await w.victim.exportBundle(grant: grant.id, to: path)
        let found = try await problems(path)
        #expect(found.contains { $0.kind == .entryInvalid && $0.item == item.hex }, "\(found.map(\.kind))")
        try await expectRefused(w.partner, path)
    }
}
