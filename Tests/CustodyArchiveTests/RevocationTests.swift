import CustodyCrypto
import CustodyStorage
import CustodyTestSupport
import Foundation
import Testing

@testable import CustodyArchive

/// Revocation reaches everyone who can act on it: a granter's signed revocation notice is checked against the
/// granter's known keys and the grant as stored, recorded in the grantee's own log, and then stops re-sharing and
/// (without an explicit override) extraction; every forged notice is refused and nothing is recorded.
@Suite struct RevocationTests {
    let dir = TempDirectory("revocation")

    struct Bodies {
        let granter: Archive.Unlocked
        let grantee: Archive.Unlocked
        let third: Archive.Unlocked
        /// A re-sharable grant to the grantee, imported.
        let parent: Grant
        /// A second grant to the grantee (case OTHER), imported.
        let other: Grant
        let items: [IngestedItem]
    }

    private func make(_ name: String) async throws -> Archive.Unlocked {
        try await Archive.create(
            at: dir.path + "/" + name,
            name: name.uppercased(),
            passphrase: Fixtures.secret(),
            kdfPreset: "insecure-test",
            chunkSize: 4096
        )
    }

    private func bodies() async throws -> Bodies {
        let granter = try await make("a")
        let grantee = try await make("b")
        let third = try await make("c")
        var options = IngestOptions()
        options.fields.caseID = "COI"
        let items = try await granter.ingest(
            [dir.write("in/a.bin", randomBytes(9_000)), dir.write("in/b.txt", text: "statement")],
            options: options
        ).items
        options.fields.caseID = "OTHER"
        _ = try await granter.ingest([dir.write("other/c.txt", text: "other case")], options: options)
        func grant(_ caseID: String, reshare: Bool) async throws -> Grant {
            var request = GrantRequest(
                grantee: try grantee.identity(),
                expires: Expiry.resolve("30d") ?? "",
                purpose: "p"
            )
            request.caseID = caseID
            request.reshare = reshare
            let (made, _, _) = try await granter.createGrant(request)
            let path = dir.path + "/\(made.id).bundle"
            _ = try await granter.exportBundle(grant: made.id, to: path)
            _ = try await grantee.importBundle(path: path, trustGranter: true)
            return made
        }
        let parent = try await grant("COI", reshare: true)
        let other = try await grant("OTHER", reshare: false)
        return Bodies(granter: granter, grantee: grantee, third: third, parent: parent, other: other, items: items)
    }

    private func childRequest(_ b: Bodies) throws -> GrantRequest {
        var child = GrantRequest(grantee: try b.third.identity(), expires: Expiry.resolve("10d") ?? "", purpose: "on")
        child.caseID = "COI"
        return child
    }

    private func logSize(_ archive: Archive.Unlocked) throws -> Int { try archive.ledger.latestCheckpoint()?.size ?? 0 }

    @Test func aVerifiedNoticeIsRecordedAndStopsReshareAndExtract() async throws {
        let b = try await bodies()
        // Before the revocation the grantee may re-share.
        #expect(try await b.grantee.resolveScope(try childRequest(b)).items.count == 2)
        let notRevoked = await #expect(throws: ArchiveError.self) {
            try await b.granter.revocationNotice(grant: b.parent.id)
        }
        #expect(notRevoked?.code == .notFound)

        let revoked = try await b.granter.revokeGrant(b.parent.id, reason: "consent withdrawn")
        let notice = try await b.granter.revocationNotice(grant: b.parent.id)
        #expect(notice.count <= RevocationNotice.maxBytes)
        #expect(String(decoding: notice, as: UTF8.self).contains("consent withdrawn") == false, "the reason is sealed")

        let verified = try await b.grantee.verifyRevocationNotice(notice, grant: b.parent.id)
        #expect(verified.event.type == .revoke && verified.event.time == revoked.revokedAt)
        let recorded = try await b.grantee.recordRevocation(verified)
        #expect(recorded.revokedAt == revoked.revokedAt && recorded.revokedBy == "A")
        let summary = try await #require(try b.grantee.index().grant(b.parent.id))
        #expect(
            summary.direction == .incoming && summary.revokedAt == revoked.revokedAt && summary.revocation == recorded
        )
        #expect(try await b.grantee.index().grant(b.other.id)?.revocation == nil, "only the named grant")
        // The grantee's own log holds the fact, naming the grant and the stored notice.
        var last: Archive.LogEntry?
        try b.grantee.forEachLogEntry { last = $0 }
        #expect(last?.event.type == .revocationReceived && last?.event.grant?.id == b.parent.id)
        #expect(last?.event.notice?.name == ObjectName(of: notice))

        // Recording it again adds nothing.
        let size = try logSize(b.grantee)
        try await b.grantee.recordRevocation(try await b.grantee.verifyRevocationNotice(notice))
        #expect(try logSize(b.grantee) == size)

        // A re-share under the revoked parent fails, clearly.
        let refused = await #expect(throws: ArchiveError.self) {
            try await b.grantee.createGrant(try await childRequest(b))
        }
        #expect(refused?.reason == .grantRevoked)
        #expect(try await b.grantee.resolveScope(try childRequest(b)).excluded.allSatisfy { $0.kind == .parentRevoked })

        // Extracting an item of the revoked grant needs the explicit override.
        let item = b.items[0].id.hex
        let blocked = await #expect(throws: ArchiveError.self) {
            try await b.grantee.checkExtractAllowed(item, despiteRevocation: false)
        }
        #expect(blocked?.reason == .grantRevoked)
        #expect(blocked?.fix.contains("--despite-revocation") == true)  // the fix names the override: the property
        #expect(try await b.grantee.checkExtractAllowed(item, despiteRevocation: true)?.0 == b.parent.id)
        #expect(try await b.grantee.revocation(ofItem: item)?.revocation == recorded)

        // The notice object is checked by verify, and reindex rebuilds the revocation from the log.
        #expect(try await b.grantee.verify(mode: .deep).ok)
        // A bundle written before the revocation brings nothing in after it.
        let oldBundle = dir.path + "/\(b.parent.id).bundle"
        let reimport = await #expect(throws: ArchiveError.self) { try await b.grantee.importBundle(path: oldBundle) }
        #expect(reimport?.reason == .grantRevoked)
        try await b.grantee.reindex()
        #expect(try await b.grantee.index().grant(b.parent.id)?.revocation == recorded)
        await #expect(throws: ArchiveError.self) { try await b.grantee.createGrant(try await childRequest(b)) }
    }

    @Test func theParentsRevocationReachesTheChildsGranteeWhenItKnowsTheOriginalGranter() async throws {
        let b = try await bodies()
        let (child, _, _) = try await b.grantee.createGrant(try childRequest(b))
        _ = try await b.grantee.exportBundle(grant: child.id, to: dir.path + "/child.bundle")
        _ = try await b.third.importBundle(path: dir.path + "/child.bundle", trustGranter: true)
        _ = try await b.granter.revokeGrant(b.parent.id, reason: "withdrawn")
        let notice = try await b.granter.revocationNotice(grant: b.parent.id)
        try await b.grantee.recordRevocation(try await b.grantee.verifyRevocationNotice(notice))
        // The re-sharer's index now says the child's parent is revoked (what its node checks on every request).
        let parent = try await #require(try b.grantee.storedGrant(child.id).grant.parent)
        #expect(try await b.grantee.index().grant(parent.id)?.revokedAt != nil)
        // The one standing check that node applies also stops the re-sharer exporting the child again.
        let childGrant = try await b.grantee.storedGrant(child.id).grant
        #expect(try await b.grantee.standing(of: childGrant, at: Int(Date().timeIntervalSince1970)) != .usable)
        let export = await #expect(throws: ArchiveError.self) {
            try await b.grantee.exportBundle(grant: child.id, to: dir.path + "/child-again.bundle")
        }
        #expect(export?.reason == .grantRevoked)
        #expect(!FileManager.default.fileExists(atPath: dir.path + "/child-again.bundle"))

        // The child's grantee holds the parent only as part of its grant's chain; it cannot check a notice whose
        // granter it does not know, and records nothing.
        let size = try logSize(b.third)
        let unknown = await #expect(throws: ArchiveError.self) { try await b.third.verifyRevocationNotice(notice) }
        #expect(unknown?.code == .notAuthorised)
        let childRevocation = try await b.third.index().grant(child.id)?.revocation
        #expect(try logSize(b.third) == size && childRevocation == nil)
        // Once it trusts the original granter, the notice verifies against it and marks the child revoked.
        _ = try b.third.trust(try b.granter.identity(), role: .granter)
        let verified = try await b.third.verifyRevocationNotice(notice)
        #expect(verified.grant.id == b.parent.id && verified.descendants == [child.id])
        try await b.third.recordRevocation(verified)
        let marked = try await #require(try b.third.index().grant(child.id)?.revocation)
        #expect(marked.ancestor == b.parent.id && marked.revokedBy == "A")
        let item = b.items[0].id.hex
        await #expect(throws: ArchiveError.self) {
            try await b.third.checkExtractAllowed(item, despiteRevocation: false)
        }
        try await b.third.reindex()
        #expect(try await b.third.index().grant(child.id)?.revocation == marked)
        #expect(try await b.third.verify(mode: .deep).ok)
    }

    /// The notice of `grant`'s revocation, as JSON to tamper with.
    private func noticeJSON(_ archive: Archive.Unlocked, _ grant: String) async throws -> [String: Any] {
        let bytes = try await archive.revocationNotice(grant: grant)
        return try #require(try JSONSerialization.jsonObject(with: Data(bytes)) as? [String: Any])
    }

    private func bytes(_ json: [String: Any]) throws -> [UInt8] {
        Array(try JSONSerialization.data(withJSONObject: json, options: [.sortedKeys]))
    }

    /// A grantee holding two grants, the second revoked by its granter, and forgeries made from that revocation's
    /// genuine notice, by the kind of refusal each must meet.
    private struct Forgeries {
        let b: Bodies
        let genuine: [String: Any]
        /// The genuine notice with one field altered: each is refused as damaged.
        var altered: [(String, [UInt8], ArchiveError.Code)] = []
        /// Notices signed with keys that are not the granter's: each is refused as damaged.
        var wrongKeys: [(String, [UInt8], ArchiveError.Code)] = []
        /// Notices that are not well-formed: each is refused as bad input.
        var malformed: [(String, [UInt8], ArchiveError.Code)] = []
        var all: [(String, [UInt8], ArchiveError.Code)] { altered + wrongKeys + malformed }
    }

    private func forgeries() async throws -> Forgeries {
        let b = try await bodies()
        // Only the second grant is revoked: its genuine notice is the forger's raw material.
        _ = try await b.granter.revokeGrant(b.other.id, reason: "r")
        let genuine = try await noticeJSON(b.granter, b.other.id)
        var f = Forgeries(b: b, genuine: genuine)
        let entry = try #require(Encoding.bytes(base64: genuine["entry"] as? String ?? ""))
        let proof = genuine["proof"] as? [String] ?? []

        // The event of another grant, relabelled as the parent's.
        var relabelled = genuine
        relabelled["grant"] = b.parent.id
        f.altered.append(("event for another grant", try bytes(relabelled), .damaged))
        // A flipped byte in the entry's signature (the proof is then wrong too: both must hold).
        var badSignature = genuine
        var flipped = entry
        flipped[flipped.count - 3] ^= 0x01
        badSignature["entry"] = Encoding.base64(flipped)
        f.altered.append(("bad signature", try bytes(badSignature), .damaged))
        // A proof that does not lead to the checkpoint's root, and an index the checkpoint does not cover.
        if !proof.isEmpty {
            var badProof = genuine
            var hashes = proof
            var first = try #require(Encoding.bytes(base64: hashes[0]))
            first[0] ^= 0x80
            hashes[0] = Encoding.base64(first)
            badProof["proof"] = hashes
            f.altered.append(("proof not matching", try bytes(badProof), .damaged))
        }
        var badIndex = genuine
        badIndex["index"] = (genuine["index"] as? Int ?? 0) + 1
        f.altered.append(("wrong index", try bytes(badIndex), .damaged))
        var wrongTime = genuine
        wrongTime["revoked_at"] = "2020-01-01T00:00:00Z"
        f.altered.append(("time not the event's", try bytes(wrongTime), .damaged))
        // The checkpoint of another log (the grantee's own).
        var otherLog = genuine
        otherLog["checkpoint"] = try #require(try b.grantee.ledger.latestCheckpoint()).note
        f.altered.append(("checkpoint of another log", try bytes(otherLog), .damaged))

        // A notice made by a stranger: a revoke event of the parent signed with its own keys, in a one-entry
        // "log" it signs with its own log key under the granter's origin — structurally perfect, wrong keys.
        let strangerKeys = try b.third.keys
        let (_, parentSigned) = try await b.grantee.storedGrant(b.parent.id)
        let fakeEvent = Event(
            type: .revoke,
            time: RFC3339.now(),
            actor: try b.granter.identity().origin,
            grant: GrantReference(id: b.parent.id, hash: Grant.hash(parentSigned))
        )
        let fakeEntry = try fakeEvent.entryBytes(signedBy: strangerKeys.signing)
        let fakeCheckpoint = Checkpoint.signed(
            origin: try b.granter.identity().origin,
            size: 1,
            root: Merkle.leafHash(fakeEntry),
            key: strangerKeys.log
        )
        let stranger = RevocationNotice(
            format: RevocationNotice.formatName,
            grant: b.parent.id,
            revokedAt: fakeEvent.time,
            index: 0,
            entry: Encoding.base64(fakeEntry),
            proof: [],
            checkpoint: fakeCheckpoint.note
        )
        f.wrongKeys.append(("a stranger's keys", try stranger.encoded(), .damaged))
        // The same event under a checkpoint the granter's real log key signed: only the entry's signature is
        // wrong (the test holds the granter's keys; a forger would not).
        let realLog = Checkpoint.signed(
            origin: try b.granter.identity().origin,
            size: 1,
            root: Merkle.leafHash(fakeEntry),
            key: try b.granter.keys.log
        )
        var unsignedEvent = stranger
        unsignedEvent.checkpoint = realLog.note
        f.wrongKeys.append(("entry not signed by the granter", try unsignedEvent.encoded(), .damaged))

        // Malformed: not a notice, a path for an id, an unknown format, too large.
        var pathID = genuine
        pathID["grant"] = "../../../../etc/passwd"
        f.malformed.append(("path as grant id", try bytes(pathID), .badInput))
        var format = genuine
        format["format"] = "custody-revocation/v9"
        f.malformed.append(("unknown format", try bytes(format), .badInput))
        f.malformed.append(("not JSON", Array("grant revoked, trust me\n".utf8), .badInput))
        var huge = genuine
        huge["padding"] = String(repeating: "x", count: RevocationNotice.maxBytes)
        f.malformed.append(("over the size bound", try bytes(huge), .badInput))
        return f
    }

    /// Offers each forgery to the grantee and expects it refused with its code.
    private func expectRefused(_ forgeries: [(String, [UInt8], ArchiveError.Code)], by grantee: Archive.Unlocked) async
    {
        for (what, forged, code) in forgeries {
            let error = await #expect(throws: ArchiveError.self, "\(what)") {
                try await grantee.recordRevocation(try await grantee.verifyRevocationNotice(forged))
            }
            #expect(error?.code == code, "\(what): \(error?.problem ?? "")")
        }
    }

    /// Offers every forgery to the grantee, without judging the answers (the tests above do).
    private func offerAll(_ f: Forgeries) async {
        for (_, forged, _) in f.all {
            _ = try? await f.b.grantee.recordRevocation(try await f.b.grantee.verifyRevocationNotice(forged))
        }
    }

    @Test func aGenuineNoticeWithAnyFieldAlteredIsRefusedAsDamaged() async throws {
        let f = try await forgeries()
        await expectRefused(f.altered, by: f.b.grantee)
    }

    @Test func aNoticeNotSignedWithTheGrantersKeysIsRefusedAsDamaged() async throws {
        let f = try await forgeries()
        await expectRefused(f.wrongKeys, by: f.b.grantee)
    }

    @Test func aMalformedNoticeIsRefusedAsBadInput() async throws {
        let f = try await forgeries()
        await expectRefused(f.malformed, by: f.b.grantee)
    }

    @Test func refusedForgeriesRecordNothingAndLeaveResharingAllowed() async throws {
        let f = try await forgeries()
        let size = try logSize(f.b.grantee)
        await offerAll(f)
        // Nothing was recorded: no event, no revoked grant, re-sharing still allowed.
        #expect(try logSize(f.b.grantee) == size)
        #expect(try await f.b.grantee.index().grants().allSatisfy { $0.revocation == nil && $0.revokedAt == nil })
        #expect(try await f.b.grantee.resolveScope(try childRequest(f.b)).items.count == 2)
    }

    @Test func aGenuineNoticeOfAnotherGrantThanTheOneNamedIsRefused() async throws {
        let f = try await forgeries()
        // A genuine notice for the grant the peer refused is required when one is named.
        let wrongGrant = await #expect(throws: ArchiveError.self) {
            try await f.b.grantee.verifyRevocationNotice(try await bytes(f.genuine), grant: f.b.parent.id)
        }
        #expect(wrongGrant?.code == .damaged)
    }

    @Test func aGenuineNoticeOfAGrantNeverReceivedIsNotFound() async throws {
        let f = try await forgeries()
        // A genuine notice of a grant this archive never received records nothing.
        let notHeld = await #expect(throws: ArchiveError.self) {
            try await f.b.third.verifyRevocationNotice(try await bytes(f.genuine))
        }
        #expect(notHeld?.code == .notFound)
    }

    @Test func afterTheForgeriesTheGenuineNoticeStillVerifiesAndRecords() async throws {
        let f = try await forgeries()
        await offerAll(f)
        try await f.b.grantee.recordRevocation(try await f.b.grantee.verifyRevocationNotice(try bytes(f.genuine)))
        #expect(try await f.b.grantee.index().grant(f.b.other.id)?.revocation != nil)
    }

    @Test func aNoticeIsCheckedAgainstTheRegisteredGranterNotAnyKeyItNames() async throws {
        let b = try await bodies()
        _ = try await b.granter.revokeGrant(b.other.id, reason: "r")
        let notice = try await b.granter.revocationNotice(grant: b.other.id)
        // The same notice at a grantee whose registry lost the granter: not verifiable, not recorded.
        let registry = dir.path + "/b/bodies.json"
        let saved = try Data(contentsOf: URL(fileURLWithPath: registry))
        try Data("{\"format\":\"custody-bodies\",\"version\":1,\"bodies\":[]}".utf8).write(
            to: URL(fileURLWithPath: registry)
        )
        let unknown = await #expect(throws: ArchiveError.self) { try await b.grantee.verifyRevocationNotice(notice) }
        #expect(unknown?.reason == .revocationUnverifiable)
        try saved.write(to: URL(fileURLWithPath: registry))
        #expect(try await b.grantee.verifyRevocationNotice(notice).grant.id == b.other.id)
    }
}
