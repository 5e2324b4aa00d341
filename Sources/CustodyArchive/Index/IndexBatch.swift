import Foundation
import GRDB

/// A tag change or note, decrypted, as the index applies and stores it.
struct IndexedAnnotation {
    var seq: Int
    var item: String
    var annotation: Annotation
}

/// A grant as the index stores it.
struct IndexedGrant {
    var seq: Int
    var summary: GrantSummary
    var hash: String
    var items: [String]
}

/// A batch of journal entries turned into index rows, applied in one transaction.
struct IndexBatch {
    var items: [IndexedItem] = []
    var events: [IndexedEvent] = []
    var annotations: [IndexedAnnotation] = []
    var grants: [IndexedGrant] = []
    var revocations: [(id: String, time: String, seq: Int, offset: Int64)] = []
    /// Verified revocations received for grants this archive holds (`revocation-received` events).
    var receivedRevocations: [(id: String, revocation: ReceivedRevocation)] = []
    var provenance: [(item: String, provenance: Provenance)] = []
    /// Items' `rewrap` entries, in log order.
    var rewraps: [ItemKeysRecord] = []
    /// The roster after the batch, when a roster event in it changed it.
    var roster: Roster?
    var end: JournalPosition
}

extension ArchiveIndex {
    /// Applies `batch` if the index is still at `start`.
    ///
    /// - Returns: The duplicate-of ids of the applied items, or `nil` when another process moved the index first.
    func apply(_ batch: IndexBatch, expectedStart start: JournalPosition) throws -> [String: String?]? {
        try write { db -> [String: String?]? in
            guard try Self.position(in: db).count == start.count else { return nil }
            var duplicates: [String: String?] = [:]
            for item in batch.items {
                // A replayed ingest entry (verify reports it) must not break the index: the first one wins.
                // Two lookups per item, as cached statements: building them with the query interface each time
                // doubled the time of a reindex.
                let known = try db.cachedStatement(sql: "SELECT 1 FROM items WHERE id = :id")
                if try Bool.fetchOne(known, arguments: ["id": item.id]) == true { continue }
                let earlier = try db.cachedStatement(
                    sql: "SELECT id FROM items WHERE sha256 = :sha256 ORDER BY seq LIMIT 1"
                )
                let first = try String.fetchOne(earlier, arguments: ["sha256": item.metadata.sha256])
                duplicates[item.id] = first
                try ItemRecord(item, duplicateOf: first).insert(db)
                for tag in item.metadata.tags {
                    try ItemTagRecord(tag: tag, itemID: item.id).insert(db, onConflict: .ignore)
                }
                try SearchRecord(id: item.id, metadata: item.metadata).insert(db)
            }
            for entry in batch.annotations {
                try Self.apply(entry, in: db)
            }
            for grant in batch.grants {
                try GrantRecord(grant).insert(db, onConflict: .ignore)
                for item in grant.items {
                    try GrantItemRecord(grantID: grant.summary.id, itemID: item).insert(db, onConflict: .ignore)
                }
            }
            for (id, time, seq, offset) in batch.revocations {
                typealias Columns = GrantRecord.Columns
                // The first revoke entry is the one a revocation notice proves.
                try GrantRecord.filter(key: id).filter(Columns.revokedSeq == nil).updateAll(
                    db,
                    Columns.revokedAt.set(to: Columns.revokedAt ?? time),
                    Columns.revokedSeq.set(to: seq),
                    Columns.revokedOffset.set(to: offset)
                )
            }
            for (id, revocation) in batch.receivedRevocations {
                typealias Columns = GrantRecord.Columns
                // The first notice recorded stays; a revoke here keeps its own time.
                let json = try GrantRecord.json(revocation, column: GrantRecord.CodingKeys.revocation)
                try GrantRecord.filter(key: id).filter(Columns.revocation == nil).updateAll(
                    db,
                    Columns.revokedAt.set(to: Columns.revokedAt ?? revocation.revokedAt),
                    Columns.revocation.set(to: json)
                )
            }
            for (item, provenance) in batch.provenance {
                try ItemProvenanceRecord(itemID: item, grantID: provenance.grant, provenance: provenance)
                    .insert(db, onConflict: .ignore)
            }
            for event in batch.events {
                try EventRecord(event).insert(db)
            }
            for rewrap in batch.rewraps {
                try rewrap.insert(db, onConflict: .replace)
            }
            if let roster = batch.roster {
                try RosterRecord(roster: roster).insert(db, onConflict: .replace)
            }
            try StateRecord(key: StateRecord.journalCount, value: Int64(batch.end.count)).insert(
                db,
                onConflict: .replace
            )
            try StateRecord(key: StateRecord.journalOffset, value: batch.end.offset).insert(db, onConflict: .replace)
            return duplicates
        }
    }

    /// Applies a tag change (to the item's tags, everywhere they are indexed) or a note (to its searchable text).
    private static func apply(_ entry: IndexedAnnotation, in db: Database) throws {
        guard var item = try ItemRecord.fetchOne(db, key: entry.item) else { return }
        let annotation = entry.annotation
        try AnnotationRecord(seq: entry.seq, itemID: entry.item, annotation: annotation)
            .insert(db, onConflict: .replace)
        if annotation.type == Event.Kind.tag.rawValue {
            let tags = Set(item.metadata.tags).union(annotation.add ?? []).subtracting(annotation.remove ?? [])
            item.metadata.tags = tags.sorted()
            try item.update(db, columns: [ItemRecord.Columns.metadata])
            try ItemTagRecord.filter(ItemTagRecord.Columns.itemID == entry.item).deleteAll(db)
            for tag in item.metadata.tags {
                try ItemTagRecord(tag: tag, itemID: entry.item).insert(db)
            }
            try SearchRecord.filter(SearchRecord.Columns.itemID == entry.item).updateAll(
                db,
                SearchRecord.Columns.tags.set(to: SearchRecord.tags(item.metadata.tags))
            )
        } else if annotation.type == Event.Kind.note.rawValue, let text = annotation.text {
            // FTS5 has no query-interface form of string concatenation: a later note is appended after a space.
            try db.execute(
                sql: "UPDATE items_fts SET note = coalesce(note, '') || ' ' || :text WHERE item_id = :item",
                arguments: ["text": SearchFolding.fold(text), "item": entry.item]
            )
        }
    }
}

extension EncodableRecord {
    /// `value` as a record of this type stores it in `column`: JSON text with sorted keys.
    static func json(_ value: some Encodable, column: some CodingKey) throws -> String {
        String(decoding: try databaseJSONEncoder(for: column.stringValue).encode(value), as: UTF8.self)
    }
}
