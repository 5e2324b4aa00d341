import CustodyCrypto
import CustodyStorage
import CustodyTestSupport
import Foundation
import Synchronization
import Testing

@testable import CustodyArchive

#if canImport(Glibc)
import Glibc
#endif

/// Grants and bundles between bodies: round trips, scope (nothing outside it leaks, to the grantee or to a third
/// body), consent, and every kind of bad bundle — each refused precisely with the archive unchanged.
@Suite struct SharingTests {
    let dir = TempDirectory("sharing")

    /// A granter with five items (three in case COI with tag detention, one of them no-share; two elsewhere),
    /// a grantee and a third body.
    struct Bodies {
        let granter: Archive.Unlocked
        let grantee: Archive.Unlocked
        let third: Archive.Unlocked
        let inScope: [IngestedItem]
        let noShare: IngestedItem
        let outOfScope: [IngestedItem]
    }

    private func bodies() async throws -> Bodies {
        func make(_ name: String) async throws -> Archive.Unlocked {
            try await Archive.create(
                at: dir.path + "/" + name,
                name: name,
                passphrase: Fixtures.secret(),
                kdfPreset: "insecure-test",
                chunkSize: 4096
            )
        }
        let granter = try await make("ohchr")
        var options = IngestOptions()
        options.fields.caseID = "COI"
        options.fields.tags = ["detention"]
        options.fields.sensitivity = "high"
        let inScope = try await granter.ingest(
            [dir.write("in/a.bin", randomBytes(10_000)), dir.write("in/b.txt", text: "statement")],
            options: options
        ).items
        options.fields.consent = "no-share"
        let noShare = try await #require(
            try granter.ingest([dir.write("in/c.txt", text: "do not share")], options: options).items.first
        )
        var other = IngestOptions()
        other.fields.caseID = "OTHER"
        let outOfScope = try await granter.ingest(
            [dir.write("out/d.bin", randomBytes(9000)), dir.write("out/e.txt", text: "other case")],
            options: other
        ).items
        return await Bodies(
            granter: granter,
            grantee: try make("iachr"),
            third: try make("third"),
            inScope: inScope,
            noShare: noShare,
            outOfScope: outOfScope
        )
    }

    private func request(_ b: Bodies, metadataOnly: Bool = false) throws -> GrantRequest {
        var request = GrantRequest(
            grantee: try b.grantee.identity(),
            expires: Expiry.resolve("90d") ?? "",
            purpose: "Petition P-1234/26"
        )
        request.caseID = "COI"
        request.tags = ["detention"]
        request.metadataOnly = metadataOnly
        return request
    }

    /// The objects a bundle holds.
    private func objects(in path: String) async throws -> Set<ObjectName> {
        let names = Mutex(Set<ObjectName>())
        _ = try await BundleVerifier.verify(
            path: path,
            at: Int(time(nil)),
            object: { name, _ in _ = names.withLock { $0.insert(name) } }
        )
        return names.withLock { $0 }
    }

    private func objectNames(_ archive: Archive.Unlocked, _ items: [IngestedItem]) async throws -> Set<ObjectName> {
        var names = Set<ObjectName>()
        for item in items { names.formUnion(try await archive.objectNames(of: item.id.hex)) }
        return names
    }

    @Test func aGrantRoundTripsThroughABundle() async throws {
        let b = try await bodies()
        // The granter's later tags and notes travel with the items (sealed under their K_meta).
        try await b.granter.tag(b.inScope[0].id.hex, add: ["verified"], remove: [])
        try await b.granter.note(b.inScope[1].id.hex, text: "chain of custody reviewed")
        let (grant, _, scope) = try await b.granter.createGrant(try request(b))
        #expect(Set(grant.items.map(\.id)) == Set(b.inScope.map(\.id)))
        #expect(scope.excluded.map(\.id) == [b.noShare.id.hex])
        #expect(scope.excluded[0].kind == .consentForbids)
        let path = dir.path + "/p.bundle"
        let export = try await b.granter.exportBundle(grant: grant.id, to: path)
        #expect(
            export.items == 2 && export.entries == 6,
            "the grant event, two ingests, a tag, a note, and the roster's founding event before the grant"
        )

        let (report, contents) = try await BundleVerifier.verify(
            path: path,
            granter: try b.granter.identity(),
            at: Int(time(nil))
        )
        #expect(report.ok && report.granterTrusted, "\(report.problems)")
        #expect(contents?.grant.id == grant.id)
        // Who granted, proved against the granter's roster: its founding administrator.
        #expect(report.grantedBy?.name == "admin" && report.grantedBy?.role == "admin")
        // Checked years later, the grant has expired: intact but not valid.
        let later = try await BundleVerifier.verify(path: path, at: Int(time(nil)) + 5 * 365 * 86_400).0
        #expect(later.integrityOK && !later.validNow && !later.ok)

        let unknown = await #expect(throws: ArchiveError.self) { try await b.grantee.importBundle(path: path) }
        #expect(unknown?.reason == .granterUnknown)
        let imported = try await b.grantee.importBundle(path: path, trustGranter: true)
        #expect(Set(imported.imported) == Set(b.inScope.map(\.id.hex)) && imported.trustedNow)
        let again = try await b.grantee.importBundle(path: path)
        #expect(again.imported.isEmpty && again.alreadyPresent.count == 2)
        #expect(try await b.grantee.resolveItem(b.inScope[0].id.hex).metadata.tags == ["detention", "verified"])
        #expect(grant.items.first { $0.id == b.inScope[1].id }?.objects.count == 4, "meta, content, chunk, note")

        for item in b.inScope {
            let out = dir.path + "/out-\(item.id.hex)"
            let extracted = try await b.grantee.extract(item.id.hex, to: out, force: false)
            #expect(extracted.sha256 == item.sha256)
            #expect(Fixtures.read(out) == Fixtures.read(item.path))
            let provenance = try await #require(try b.grantee.index().provenance(of: item.id.hex))
            #expect(provenance.purpose == "Petition P-1234/26" && provenance.grant == grant.id)
            #expect(try await b.grantee.index().events(of: item.id.hex).map(\.type) == ["import", "extract"])
            _ = try await b.grantee.proveItem(item.id.hex)
        }
        #expect(try await b.grantee.verify(mode: .deep).ok)
        #expect(try await b.grantee.index().grants(item: b.inScope[0].id.hex).map(\.id) == [grant.id])
        #expect(try await b.granter.index().grants(item: b.inScope[0].id.hex).first?.direction == .outgoing)
        // Re-sharing an imported item is refused with the reason.
        var reshare = GrantRequest(grantee: try b.third.identity(), expires: Expiry.resolve("1d") ?? "", purpose: "x")
        reshare.caseID = "COI"
        let refused = try await b.grantee.resolveScope(reshare)
        #expect(refused.items.isEmpty && refused.excluded.allSatisfy { $0.kind == .notResharable })
    }

    @Test func nothingOutsideTheScopeLeaks() async throws {
        let b = try await bodies()
        let (grant, _, _) = try await b.granter.createGrant(try request(b))
        let path = dir.path + "/p.bundle"
        try await b.granter.exportBundle(grant: grant.id, to: path)
        let inBundle = try await objects(in: path)
        await #expect(inBundle.isDisjoint(with: try objectNames(b.granter, b.outOfScope + [b.noShare])))
        #expect(try await objectNames(b.granter, b.inScope).isSubset(of: inBundle))
        // Even holding the granter's whole object store and log, the grantee opens no out-of-scope key.
        let granteeKeys = try b.grantee.keys
        var outside = 0
        try b.granter.journal.scan(from: .start) { entry in
            let event = try Event.parse(entry.bytes, publicKey: b.granter.signingPublicKey)
            guard event.type == .ingest, let item = event.item, let keys = event.keys,
                !b.inScope.contains(where: { $0.id == item })
            else { return }
            outside += 1
            #expect(throws: ArchiveError.self) { try granteeKeys.unwrap(keys.meta, item: item) }
        }
        #expect(outside == 3)
        // A third body cannot import what was granted to the grantee.
        let third = await #expect(throws: ArchiveError.self) {
            try await b.third.importBundle(path: path, trustGranter: true)
        }
        #expect(third?.reason == .addressedElsewhere)
        #expect(try await b.third.index().itemCount() == 0)
    }

    @Test func aMetadataOnlyGrantCarriesNoContent() async throws {
        let b = try await bodies()
        let (grant, _, _) = try await b.granter.createGrant(try request(b, metadataOnly: true))
        #expect(grant.permission == .metadata && grant.items.allSatisfy { $0.keys.content == nil })
        let path = dir.path + "/meta.bundle"
        try await b.granter.exportBundle(grant: grant.id, to: path)
        var metaParts = Set<ObjectName>()
        for item in b.inScope {
            metaParts.insert(try await b.granter.ingestEvent(of: b.granter.resolveItem(item.id.hex)).objects!.meta.name)
        }
        #expect(try await objects(in: path) == metaParts)
        try await b.grantee.importBundle(path: path, trustGranter: true)
        let item = b.inScope[0].id.hex
        #expect(try await b.grantee.resolveItem(item).metadata.sha256 == b.inScope[0].sha256)
        let error = await #expect(throws: ArchiveError.self) {
            try await b.grantee.extract(item, to: dir.path + "/x", force: false)
        }
        #expect(error?.reason == .metadataOnly)
        #expect(!FileManager.default.fileExists(atPath: dir.path + "/x"))
        #expect(try await b.grantee.verify(mode: .deep).ok)
    }

    @Test func consentAndSensitivityShapeTheScope() async throws {
        let b = try await bodies()
        var overriding = try request(b)
        overriding.overrideConsentReason = "the witness consented in writing on 2026-11-02"
        let (grant, _, scope) = try await b.granter.createGrant(overriding)
        #expect(scope.items.count == 3 && scope.excluded.isEmpty)
        let terms = try b.granter.terms(of: grant)
        #expect(terms.consentOverride?.items == [b.noShare.id.hex])
        #expect(terms.consentOverride?.reason.contains("in writing") == true)  // the operator's own words, kept
        var strict = try request(b)
        strict.maxSensitivity = "medium"
        let none = try await b.granter.resolveScope(strict)
        #expect(none.items.isEmpty && none.excluded.count == 3)
        await #expect(
            (await #expect(throws: ArchiveError.self) { try await b.granter.createGrant(strict) })?.code == .badInput
        )
        strict.maxSensitivity = "extreme"
        await #expect(
            (await #expect(throws: ArchiveError.self) { try await b.granter.resolveScope(strict) })?.code == .usage
        )
        var empty = try request(b)
        empty.caseID = nil
        empty.tags = []
        await #expect(
            (await #expect(throws: ArchiveError.self) { try await b.granter.resolveScope(empty) })?.code == .usage
        )
    }

    @Test func revokedAndExpiredGrantsAreNotExported() async throws {
        let b = try await bodies()
        let (grant, _, _) = try await b.granter.createGrant(try request(b))
        let revoked = try await b.granter.revokeGrant(grant.id, reason: "petition withdrawn")
        #expect(revoked.revokedAt != nil)
        #expect(
            (await #expect(throws: ArchiveError.self) { try await b.granter.revokeGrant(grant.id, reason: "again") })?
                .code
                == .badInput
        )
        let error = await #expect(throws: ArchiveError.self) {
            try await b.granter.exportBundle(grant: grant.id, to: dir.path + "/r.bundle")
        }
        #expect(error?.code == .notAuthorised)
        #expect(!FileManager.default.fileExists(atPath: dir.path + "/r.bundle"))
        // The revocation's reason is sealed: the public log does not carry it.
        var log: [UInt8] = []
        try b.granter.journal.scan(from: .start) { log += $0.bytes }
        #expect(!contains(log, Array("withdrawn".utf8)))
        #expect(try await b.granter.verify(mode: .standard).ok)
    }

    // MARK: Bad bundles

    /// A valid bundle's records, for surgery.
    private func records(_ path: String) throws -> [(Character, [UInt8])] { try BundleRecords.read(path) }

    /// Writes records as a well-formed bundle (a correct end record), so only the deeper checks can object.
    private func write(_ records: [(Character, [UInt8])], to path: String) throws {
        try BundleRecords.write(records, to: path)
    }

    private func exported(_ b: Bodies) async throws -> String {
        let (grant, _, _) = try await b.granter.createGrant(try request(b))
        let path = dir.path + "/good.bundle"
        try await b.granter.exportBundle(grant: grant.id, to: path)
        return path
    }

    /// Imports `path` into the grantee and expects a refusal that leaves its archive unchanged.
    private func expectRefused(
        _ b: Bodies,
        _ path: String,
        _ code: ArchiveError.Code = .badInput
    ) async throws -> ArchiveError? {
        let journal = b.grantee.root + "/journal/entries"
        let before = Fixtures.read(journal)
        let error = await #expect(throws: ArchiveError.self) {
            try await b.grantee.importBundle(path: path, trustGranter: true)
        }
        #expect(error?.code == code, "\(error?.problem ?? "")")
        #expect(Fixtures.read(journal) == before)
        #expect(try await b.grantee.index().itemCount() == 0)
        return error
    }

    @Test func damagedBundlesAreRefusedPrecisely() async throws {
        let b = try await bodies()
        let good = try await exported(b)
        let bytes = Fixtures.read(good)
        func variant(_ name: String, _ data: [UInt8]) -> String { dir.write(name, data) }
        func firstProblem(_ path: String) async throws -> VerifyProblem? {
            try await BundleVerifier.verify(path: path, at: Int(time(nil))).0.problems.first
        }

        let truncated = variant("truncated.bundle", Array(bytes.prefix(bytes.count - 700)))
        #expect(try await firstProblem(truncated)?.kind == .bundleDamaged)
        #expect(try await expectRefused(b, truncated)?.reason == .bundleInvalid)
        let cut = #expect(throws: ArchiveError.self) {
            let reader = try BundleReader(path: truncated)
            while try reader.next() != nil {}
        }
        #expect(cut?.reason == .bundleTruncated)

        var flipped = bytes
        flipped[bytes.count / 2] ^= 0x20
        let flippedPath = variant("flipped.bundle", flipped)
        #expect(try await firstProblem(flippedPath) != nil)
        _ = try await expectRefused(b, flippedPath)

        var oversized = bytes
        let firstRecord = BundleFormat.magic.count
        for i in 1...8 { oversized[firstRecord + i] = 0xFF }
        let oversizedPath = variant("oversized.bundle", oversized)
        #expect(try await firstProblem(oversizedPath)?.kind == .bundleDamaged)

        let wrongType = variant("photo.jpg", [0xFF, 0xD8, 0xFF, 0xE0] + randomBytes(500))
        #expect(
            (await #expect(throws: ArchiveError.self) { try await BundleVerifier.verify(path: wrongType, at: 0) })?.code
                == .badInput
        )
        #expect(try await expectRefused(b, wrongType)?.reason == .notABundle)

        // Well-formed files with the wrong content: only the deeper checks can object.
        var recs = try records(good)
        let objectIndexes = recs.indices.filter { recs[$0].0 == "O" }
        recs.swapAt(objectIndexes[0], 1)  // an object where the grant should be
        let reordered = dir.path + "/reordered.bundle"
        try write(recs, to: reordered)
        #expect(try await firstProblem(reordered)?.kind == .bundleDamaged)
        _ = try await expectRefused(b, reordered)

        recs = try records(good)
        recs.remove(at: objectIndexes[0])
        let missing = dir.path + "/missing.bundle"
        try write(recs, to: missing)
        #expect(try await firstProblem(missing)?.kind == .objectMissing)
        _ = try await expectRefused(b, missing)

        recs = try records(good)
        recs.append(("O", Encoding.bytes(hex: ObjectName(of: Array("extra".utf8)).hex)! + Array("extra".utf8)))
        let extra = dir.path + "/extra.bundle"
        try write(recs, to: extra)
        #expect(try await firstProblem(extra)?.kind == .objectUnreferenced)

        // A grant altered after signing (a longer expiry): the signature no longer verifies.
        recs = try records(good)
        let signed = recs[1].1
        let newline = try #require(signed.firstIndex(of: 0x0A))
        var body = String(decoding: signed[..<newline], as: UTF8.self)
        body = body.replacingOccurrences(of: "\"expires\":\"20", with: "\"expires\":\"29")
        recs[1].1 = Array(body.utf8) + Array(signed[newline...])
        let forged = dir.path + "/forged.bundle"
        try write(recs, to: forged)
        #expect(try await firstProblem(forged)?.kind == .grantSignature)
        _ = try await expectRefused(b, forged)

        // A grant re-signed by another key under the granter's name: not the bundle's granter.
        recs = try records(good)
        var grant = try Grant.parse(recs[1].1)
        let mallory = try SigningKey(seed: SecretBytes(randomCount: 32))
        grant.granter.signingKey = Encoding.base64(mallory.publicKey)
        recs[1].1 = try grant.signed(by: mallory)
        let impostor = dir.path + "/impostor.bundle"
        try write(recs, to: impostor)
        #expect(try await firstProblem(impostor)?.kind == .granterMismatch)

        // An entry altered: its proof no longer leads to the checkpoint.
        recs = try records(good)
        let entryIndex = try #require(recs.firstIndex { $0.0 == "E" })
        var entry = try JSONDecoder().decode(BundleFormat.EntryRecord.self, from: Data(recs[entryIndex].1))
        var raw = try #require(Encoding.bytes(base64: entry.entry))
        raw[10] ^= 1
        entry.entry = Encoding.base64(raw)
        recs[entryIndex].1 = try Array(JSONEncoder().encode(entry))
        let badEntry = dir.path + "/entry.bundle"
        try write(recs, to: badEntry)
        #expect(try await firstProblem(badEntry)?.kind == .proofInvalid)
    }

    @Test func aBundleForAnotherBodyOrExpiredIsRefused() async throws {
        let b = try await bodies()
        var toThird = try request(b)
        toThird.grantee = try b.third.identity()
        let (grant, _, _) = try await b.granter.createGrant(toThird)
        let path = dir.path + "/third.bundle"
        try await b.granter.exportBundle(grant: grant.id, to: path)
        #expect(try await expectRefused(b, path, .notAuthorised)?.reason == .addressedElsewhere)
        // A known granter whose keys changed is refused even with --trust-granter.
        let good = try await exported(b)
        _ = try await b.grantee.importBundle(path: good, trustGranter: true)
        let impostor = try await Archive.create(
            at: dir.path + "/impostor",
            name: "ohchr",
            origin: b.granter.config.origin,
            passphrase: Fixtures.secret(),
            kdfPreset: "insecure-test"
        )
        dir.write("imp.txt", text: "fake")
        var options = IngestOptions()
        options.fields.caseID = "COI"
        options.fields.tags = ["detention"]
        _ = try await impostor.ingest([dir.path + "/imp.txt"], options: options)
        let (fake, _, _) = try await impostor.createGrant(try request(b))
        try await impostor.exportBundle(grant: fake.id, to: dir.path + "/imp.bundle")
        let before = try await b.grantee.index().itemCount()
        let error = await #expect(throws: ArchiveError.self) {
            try await b.grantee.importBundle(path: dir.path + "/imp.bundle", trustGranter: true)
        }
        #expect(error?.reason == .identityClash)
        #expect(try await b.grantee.index().itemCount() == before)
    }

    @Test func submissionsArriveAsSubmissionsNamedOrAnonymous() async throws {
        let b = try await bodies()
        let mechanism = try b.grantee.identity()
        var options = IngestOptions()
        options.fields.caseID = "NGO-7"
        options.fields.source = "field team 3"
        let named = try await b.granter.submit(
            [dir.write("sub/report.txt", text: "field report")],
            options: options,
            to: mechanism,
            expires: Expiry.resolve("30d") ?? "",
            purpose: "monthly submission",
            output: dir.path + "/named.bundle"
        )
        let anonymous = try await Archive.submitAnonymously(
            [dir.write("sub/leak.txt", text: "a document from a source")],
            options: options,
            to: mechanism,
            expires: Expiry.resolve("30d") ?? "",
            purpose: "tip",
            output: dir.path + "/anonymous.bundle"
        )
        #expect(anonymous.fingerprint != (try b.granter.identity().fingerprint))
        // An anonymous submission needs no trusted granter; a named one does.
        let registry = try b.grantee.knownBodies().count
        _ = try await b.grantee.importBundle(path: dir.path + "/anonymous.bundle")
        #expect(try b.grantee.knownBodies().count == registry)
        #expect(
            (await #expect(throws: ArchiveError.self) {
                try await b.grantee.importBundle(path: dir.path + "/named.bundle")
            })?.code
                == .notAuthorised
        )
        _ = try await b.grantee.importBundle(path: dir.path + "/named.bundle", trustGranter: true)
        let anonymousItem = try #require(anonymous.items.first).id.hex
        #expect(try await b.grantee.index().provenance(of: anonymousItem)?.kind == .anonymousSubmission)
        #expect(try await b.grantee.resolveItem(anonymousItem).metadata.source == nil)
        let namedItem = try #require(named.items.first).id.hex
        let provenance = try await #require(try b.grantee.index().provenance(of: namedItem))
        #expect(
            provenance.kind == .submission && provenance.granter == "ohchr"
                && provenance.purpose == "monthly submission"
        )
        #expect(
            try await b.grantee.index().grants().map(\.kind.rawValue).sorted() == [
                "anonymous-submission", "submission",
            ]
        )
    }

    @Test func aReshareIsAChildGrantNeverWiderOrLonger() async throws {
        let b = try await bodies()
        var parentRequest = try request(b)
        parentRequest.reshare = true
        parentRequest.expires = Expiry.resolve("30d") ?? ""
        let (parent, _, _) = try await b.granter.createGrant(parentRequest)
        try await b.granter.exportBundle(grant: parent.id, to: dir.path + "/parent.bundle")
        _ = try await b.grantee.importBundle(path: dir.path + "/parent.bundle", trustGranter: true)

        var child = GrantRequest(
            grantee: try b.third.identity(),
            expires: Expiry.resolve("60d") ?? "",
            purpose: "onward"
        )
        child.caseID = "COI"
        let tooLong = await #expect(throws: ArchiveError.self) { try await b.grantee.createGrant(child) }
        #expect(tooLong?.reason == .outlastsParent)
        child.expires = Expiry.resolve("10d") ?? ""
        let (grant, _, scope) = try await b.grantee.createGrant(child)
        #expect(grant.parent?.id == parent.id && scope.parent == parent.id && grant.items.count == 2)
        let path = dir.path + "/child.bundle"
        try await b.grantee.exportBundle(grant: grant.id, to: path)
        let (report, _) = try await BundleVerifier.verify(
            path: path,
            granter: try b.grantee.identity(),
            at: Int(time(nil))
        )
        #expect(report.ok, "\(report.problems)")
        _ = try await b.third.importBundle(path: path, trustGranter: true)
        for item in b.inScope {
            let out = dir.path + "/third-\(item.id.hex)"
            #expect(try await b.third.extract(item.id.hex, to: out, force: false).sha256 == item.sha256)
        }
        #expect(try await b.third.verify(mode: .deep).ok)

        // Without its parent the chain cannot be checked.
        var recs = try records(path)
        recs.removeAll { $0.0 == "P" }
        let orphan = dir.path + "/orphan.bundle"
        try write(recs, to: orphan)
        #expect(
            try await BundleVerifier.verify(path: orphan, at: Int(time(nil))).0.problems.first?.kind == .parentMissing
        )
        // The third body may not re-share further: its parent grant said no.
        var onward = GrantRequest(grantee: try b.granter.identity(), expires: Expiry.resolve("1d") ?? "", purpose: "x")
        onward.caseID = "COI"
        #expect(try await b.third.resolveScope(onward).items.isEmpty)
    }

    @Test func randomMutationsNeverPassAndNeverCrash() async throws {
        let b = try await bodies()
        let good = await Fixtures.read(try exported(b))
        var generator = SystemRandomNumberGenerator()
        for round in 0..<150 {
            var mutated = good
            switch round % 5 {
            case 0:
                mutated[Int.random(in: 0..<mutated.count, using: &generator)] ^= UInt8.random(
                    in: 1...255,
                    using: &generator
                )
            case 1: mutated.removeSubrange(Int.random(in: 0..<mutated.count, using: &generator)...)
            case 2:
                let at = Int.random(in: 0..<mutated.count, using: &generator)
                mutated.insert(contentsOf: randomBytes(Int.random(in: 1...64, using: &generator)), at: at)
            case 3:
                let at = Int.random(in: 0..<(mutated.count - 16), using: &generator)
                mutated.removeSubrange(at..<(at + Int.random(in: 1...16, using: &generator)))
            default:
                let a = Int.random(in: 0..<(mutated.count - 64), using: &generator)
                let c = Int.random(in: 0..<(mutated.count - 64), using: &generator)
                let chunk = Array(mutated[a..<(a + 32)])
                mutated.replaceSubrange(c..<(c + 32), with: chunk)
            }
            guard mutated != good else { continue }
            let path = dir.write("fuzz.bundle", mutated)
            if let report = try? await BundleVerifier.verify(path: path, at: Int(time(nil))).0 {
                #expect(!report.ok, "round \(round): a mutated bundle verified")
            }
        }
        #expect(try await b.grantee.index().itemCount() == 0)
    }
}
