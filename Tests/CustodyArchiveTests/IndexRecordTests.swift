import CustodyCrypto
import CustodyTestSupport
import Foundation
import Testing

@testable import CustodyArchive

/// The index's GRDB records write each value into the column named for it: the rows a reindex rebuilds from the
/// journal equal, table by table, the rows the incremental projection wrote as the archive was used, and each named
/// column holds what the journal, the ingest and the signed grant say (a swapped or misnamed column mapping fails).
@Suite struct IndexRecordTests {
    let dir = TempDirectory("index-records")

    /// A granter that ingested, annotated, extracted, granted and revoked; a grantee that imported the grant's
    /// bundle, annotated an imported item and recorded the granter's revocation notice.
    struct Bodies {
        let granter: Archive.Unlocked
        let grantee: Archive.Unlocked
        let items: [IngestedItem]
        let grant: Grant
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
        let granter = try await make("granter")
        let grantee = try await make("grantee")
        var options = IngestOptions()
        options.fields.caseID = "COI"
        options.fields.tags = ["detention", "video"]
        options.fields.source = "witness W-17"
        options.fields.collectedAt = "2026-03-02T12:00:00+02:00"
        options.fields.location = "Sector 4"
        options.fields.consent = "share-with-mechanisms"
        options.fields.sensitivity = "high"
        options.fields.note = "first note"
        options.fields.meta = ["device": "Pixel7", "app": "camera"]
        var items = try await granter.ingest(
            [dir.write("in/a.bin", randomBytes(9_000)), dir.write("in/b.txt", text: "statement")],
            options: options
        ).items
        // A second batch: a duplicate of b.txt, in no case and with no optional field.
        items += try await granter.ingest([dir.write("other/b-copy.txt", text: "statement")], options: IngestOptions())
            .items
        try await granter.tag(items[0].id.hex, add: ["verified"], remove: ["video"])
        try await granter.note(items[1].id.hex, text: "chain of custody reviewed")
        try await granter.note(items[1].id.hex, text: "second reviewer agreed")
        _ = try await granter.extract(items[0].id.hex, to: dir.path + "/out", force: false)

        var request = GrantRequest(grantee: try grantee.identity(), expires: Expiry.resolve("30d") ?? "", purpose: "p")
        request.caseID = "COI"
        let (grant, _, _) = try await granter.createGrant(request)
        let bundle = dir.path + "/grant.bundle"
        _ = try await granter.exportBundle(grant: grant.id, to: bundle)
        _ = try await grantee.importBundle(path: bundle, trustGranter: true)
        try await grantee.tag(items[1].id.hex, add: ["received"], remove: [])
        _ = try await granter.revokeGrant(grant.id, reason: "consent withdrawn")
        try await grantee.recordRevocation(
            try await grantee.verifyRevocationNotice(try await granter.revocationNotice(grant: grant.id))
        )
        return Bodies(granter: granter, grantee: grantee, items: items, grant: grant)
    }

    /// Every journal entry of `archive` with its byte offset.
    private func journal(_ archive: Archive.Unlocked) throws -> [(offset: Int64, event: Event)] {
        var entries: [(offset: Int64, event: Event)] = []
        try archive.journal.scan(from: .start) { entry in
            entries.append((entry.offset, try Event.parse(entry.bytes, publicKey: archive.signingPublicKey)))
        }
        return entries
    }

    /// The index of `name` rebuilt from its journal by `custody reindex` (a new file), and in place (emptied).
    private func reindexed(_ name: String) async throws -> [[String: [ArchiveIndex.StoredRow]]] {
        let root = dir.path + "/" + name
        try await Archive.reindex(at: root, passphrase: { _ in Fixtures.secret() })
        let rebuilt = try await Archive.open(at: root).index().dump()
        let archive = try Archive.open(at: root, access: .exclusive, passphrase: { _ in Fixtures.secret() }).unlock()
        try await archive.reindex()
        return [rebuilt, try await archive.index().dump()]
    }

    @Test func reindexRebuildsExactlyTheRowsTheIncrementalProjectionWrote() async throws {
        // The archives close (and release their locks) at the end of the closure: reindex takes exclusive access.
        let (granter, grantee) = try await {
            let b = try await bodies()
            return (try await b.granter.index().dump(), try await b.grantee.index().dump())
        }()
        // Not vacuous: each table the records write holds rows (annotations and revocations on both sides).
        for (name, dump) in [("granter", granter), ("grantee", grantee)] {
            for table in ["items", "item_tags", "events", "annotations", "items_fts", "grants", "grant_items"] {
                #expect(dump[table]?.isEmpty == false, "\(name) has no \(table) rows")
            }
        }
        #expect(granter["grants"]?.first?["revoked_seq"] != .null)
        #expect(grantee["provenance"]?.count == 2)
        #expect(grantee["grants"]?.first?["revocation"] != .null)

        #expect(try await reindexed("granter") == [granter, granter])
        #expect(try await reindexed("grantee") == [grantee, grantee])
    }

    @Test func eachColumnHoldsTheValueItIsNamedFor() async throws {
        let b = try await bodies()
        let dump = try await b.granter.index().dump()
        let entries = try journal(b.granter)
        func rows(_ table: String, where column: String, is value: String) -> [ArchiveIndex.StoredRow] {
            (dump[table] ?? []).filter { $0[column] == .text(value) }
        }

        // events: one row per journal entry, each column from the signed event.
        #expect(dump["events"]?.count == entries.count)
        for (seq, entry) in entries.enumerated() {
            let row = try #require(dump["events"]?.first { $0["seq"] == .integer(Int64(seq)) })
            #expect(row["type"] == .text(entry.event.type.rawValue))
            #expect(row["time"] == .text(entry.event.time))
            #expect(row["actor"] == .text(entry.event.actor))
            #expect(row["item_id"] == (entry.event.item.map { .text($0.hex) } ?? .null))
        }

        // items: position and offset of the ingest entry, and the metadata's fields in their columns.
        let ingests = entries.enumerated().filter { $0.element.event.type == .ingest }
        #expect(dump["items"]?.count == b.items.count)
        for item in b.items {
            let row = try #require(rows("items", where: "id", is: item.id.hex).first)
            let (seq, entry) = try #require(ingests.first { $0.element.event.item == item.id })
            let metadata = try await #require(try b.granter.index().items(ids: [item.id.hex]).first?.metadata)
            #expect(row["seq"] == .integer(Int64(seq)))
            #expect(row["entry_offset"] == .integer(entry.offset))
            #expect(row["sha256"] == .text(item.sha256) && metadata.sha256 == item.sha256)
            #expect(row["size"] == .integer(item.size))
            #expect(row["duplicate_of"] == (item.duplicateOf.map { .text($0) } ?? .null))
            #expect(row["name"] == .text(metadata.name))
            #expect(row["case_id"] == (metadata.caseID.map { .text($0) } ?? .null))
            #expect(row["ingested_at"] == .text(metadata.ingestedAt))
            #expect(row["collected_at"] == (metadata.collectedAt.map { .text($0) } ?? .null))
            let tags = rows("item_tags", where: "item_id", is: item.id.hex).compactMap { $0["tag"]?.text }
            #expect(tags.sorted() == metadata.tags)

            let search = try #require(rows("items_fts", where: "item_id", is: item.id.hex).first)
            #expect(search["name"] == .text(metadata.name))
            #expect(search["path"] == .text(metadata.path))
            #expect(search["media_type"] == .text(metadata.mediaType))
            #expect(search["tags"] == .text(metadata.tags.joined(separator: " ")))
            #expect(search["source"] == (metadata.source.map { .text($0) } ?? .null))
            #expect(search["location"] == (metadata.location.map { .text($0) } ?? .null))
        }
        #expect(b.items[2].duplicateOf == b.items[1].id.hex, "the copy is a duplicate")
        let first = try #require(rows("items", where: "id", is: b.items[0].id.hex).first)
        #expect(first["name"] == .text("a.bin"))
        #expect(first["case_id"] == .text("COI") && first["collected_at"] == .text("2026-03-02T10:00:00Z"))
        let tagged = rows("item_tags", where: "item_id", is: b.items[0].id.hex).compactMap { $0["tag"]?.text }
        #expect(tagged.sorted() == ["detention", "verified"])
        let noted = try #require(rows("items_fts", where: "item_id", is: b.items[1].id.hex).first)
        #expect(noted["note"] == .text("first note chain of custody reviewed second reviewer agreed"))
        #expect(noted["meta"] == .text("app camera device Pixel7"))
        #expect(noted["consent"] == .text("share-with-mechanisms") && noted["sensitivity"] == .text("high"))

        // annotations: one row per tag or note event, at its position, for its item.
        let annotated = entries.enumerated().filter { [.tag, .note].contains($0.element.event.type) }
        #expect(dump["annotations"]?.count == annotated.count)
        for (seq, entry) in annotated {
            let row = try #require(dump["annotations"]?.first { $0["seq"] == .integer(Int64(seq)) })
            #expect(row["item_id"] == entry.event.item.map { .text($0.hex) })
        }

        // grants: the hash of the stored signed grant, the grant and revoke entries' positions, the revoke time.
        let row = try #require(rows("grants", where: "id", is: b.grant.id).first)
        let signed = Fixtures.read(dir.path + "/granter/grants/\(b.grant.id).grant")
        #expect(row["hash"] == .text(Grant.hash(signed)))
        let granted = try #require(entries.firstIndex { $0.event.type == .grant })
        let revoked = try #require(entries.firstIndex { $0.event.type == .revoke })
        #expect(row["seq"] == .integer(Int64(granted)))
        #expect(row["revoked_seq"] == .integer(Int64(revoked)))
        #expect(row["revoked_offset"] == .integer(entries[revoked].offset))
        #expect(row["revoked_at"] == .text(entries[revoked].event.time))
        #expect(row["revocation"] == .null, "only a grant received records a notice")
        let summary = try JSONDecoder().decode(GrantSummary.self, from: Data((row["summary"]?.text ?? "").utf8))
        #expect(summary.id == b.grant.id && summary.direction == .outgoing && summary.items == 2)
        let granteeItems = rows("grant_items", where: "grant_id", is: b.grant.id).compactMap { $0["item_id"]?.text }
        #expect(granteeItems.sorted() == b.grant.items.map(\.id.hex).sorted())
    }

    @Test func provenanceAndReceivedRevocationLandInTheirColumns() async throws {
        let b = try await bodies()
        let dump = try await b.grantee.index().dump()
        let entries = try journal(b.grantee)
        let imports = entries.enumerated().filter { $0.element.event.type == .import }
        #expect(imports.count == 2)
        #expect(dump["provenance"]?.count == 2)
        for row in dump["provenance"] ?? [] {
            #expect(row["grant_id"] == .text(b.grant.id))
            let item = try #require(row["item_id"]?.text)
            #expect(imports.contains { $0.element.event.item?.hex == item })
            let json = Data((row["provenance"]?.text ?? "").utf8)
            let provenance = try JSONDecoder().decode(Provenance.self, from: json)
            #expect(provenance.grant == b.grant.id && provenance.granter == "GRANTER" && provenance.kind == .grant)
            #expect(try await b.grantee.index().provenance(of: item) == provenance)
        }
        let grant = try #require(dump["grants"]?.first)
        #expect(dump["grants"]?.count == 1 && grant["id"] == .text(b.grant.id))
        #expect(grant["seq"] == .integer(Int64(try #require(imports.first?.offset))), "the first import's position")
        #expect(grant["revoked_seq"] == .null, "a grant received is revoked by its granter's notice")
        let received = try #require(entries.firstIndex { $0.event.type == .revocationReceived })
        let json = Data((grant["revocation"]?.text ?? "").utf8)
        let revocation = try JSONDecoder().decode(ReceivedRevocation.self, from: json)
        #expect(revocation.seq == received && revocation.receivedAt == entries[received].event.time)
        #expect(grant["revoked_at"] == .text(revocation.revokedAt))
        #expect(try await b.grantee.index().grant(b.grant.id)?.revocation == revocation)
    }
}
