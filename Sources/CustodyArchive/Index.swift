import Foundation
import GRDB

#if canImport(Glibc)
import Glibc
#endif

/// One item as the index stores it: a searchable copy of its sealed metadata.
package struct IndexedItem: Sendable, Equatable, Codable {
    /// Item id.
    package var id: String
    /// Position of its ingest event in the journal.
    package var seq: Int
    /// The metadata.
    package var metadata: ItemMetadata
    /// First earlier item with the same SHA-256, if any.
    package var duplicateOf: String?
    /// Byte offset of its ingest entry's frame in the journal.
    package var entryOffset: Int64
}

/// One custody event of an item, as the index stores it.
package struct IndexedEvent: Sendable, Equatable, Codable {
    /// Position in the journal.
    package var seq: Int
    /// Event type.
    package var type: String
    /// Time (RFC 3339 UTC).
    package var time: String
    /// Actor.
    package var actor: String
    /// The item concerned.
    package var item: String?
    /// Tag and note events: what they said.
    package var annotation: Annotation?
}

/// What ``ArchiveIndex/list(_:)`` selects.
package struct ItemFilter: Sendable, Equatable {
    /// Only this case.
    package var caseID: String?
    /// Items carrying all of these tags.
    package var tags: [String] = []
    /// Ingested at or after (RFC 3339 UTC).
    package var ingestedAfter: String?
    /// Ingested before (RFC 3339 UTC).
    package var ingestedBefore: String?
    /// Collected at or after (RFC 3339 UTC).
    package var collectedAfter: String?
    /// Collected before (RFC 3339 UTC).
    package var collectedBefore: String?
    /// At most this many rows (none: all).
    package var limit: Int?

    /// No filter.
    package init() {}
}

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

/// Where an imported item came from, as the index stores it.
package struct Provenance: Codable, Sendable, Equatable {
    /// The granting body's name.
    package var granter: String
    /// Its origin.
    package var granterOrigin: String
    /// Its fingerprint.
    package var granterFingerprint: String
    /// The grant id.
    package var grant: String
    /// The grant's purpose.
    package var purpose: String
    /// When this archive imported the item.
    package var importedAt: String
    /// `grant`, `submission` or `anonymous-submission`.
    package var kind: String

    enum CodingKeys: String, CodingKey {
        case granter, grant, purpose, kind
        case granterOrigin = "granter_origin"
        case granterFingerprint = "granter_fingerprint"
        case importedAt = "imported_at"
    }
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
    var end: JournalPosition
}

/// The SQLite index (`index.sqlite`, WAL, FTS5): derived from journal + objects, rebuildable with `reindex`.
///
/// It holds plaintext metadata, so it belongs on an encrypted disk (Docs/THREAT-MODEL.md).
package final class ArchiveIndex: Sendable {
    let pool: DatabasePool
    /// The database file.
    let path: String

    /// Opens (creating and migrating) the index.
    ///
    /// - Throws: ``ArchiveError`` (damaged) when the file is not a valid index.
    init(path: String) throws {
        self.path = path
        var config = Configuration()
        config.busyMode = .timeout(60)
        config.label = "custody.index"
        do {
            pool = try DatabasePool(path: path, configuration: config)
            try Self.migrator.migrate(pool)
            // The index holds plaintext metadata: owner-only, whatever the umask.
            for suffix in ["", "-wal", "-shm"] { chmod(path + suffix, 0o600) }
        } catch {
            throw Self.mapped(error)
        }
    }

    static func mapped(_ error: any Error) -> ArchiveError {
        if let error = error as? ArchiveError { return error }
        if let db = error as? DatabaseError {
            switch db.resultCode {
            case .SQLITE_CORRUPT, .SQLITE_NOTADB:
                return ArchiveError(.indexDamaged, "the index (index.sqlite) is corrupt", fix: "run custody reindex")
            case .SQLITE_FULL:
                return ArchiveError(
                    .cannotCreate,
                    "the index: no space left on device",
                    fix: "free disk space and retry"
                )
            case .SQLITE_BUSY, .SQLITE_LOCKED:
                return ArchiveError(
                    .temporary,
                    "the index is busy",
                    fix: "wait for the other custody command and retry"
                )
            case .SQLITE_READONLY, .SQLITE_CANTOPEN, .SQLITE_PERM:
                return ArchiveError(
                    .cannotCreate,
                    "cannot open the index for writing",
                    fix: "check the archive folder's permissions"
                )
            default:
                return ArchiveError(.damaged, "the index failed (\(db.resultCode))", fix: "run custody reindex")
            }
        }
        return ArchiveError(.damaged, "the index failed", fix: "run custody reindex")
    }

    private static var migrator: DatabaseMigrator {
        var migrator = DatabaseMigrator()
        migrator.registerMigration("v1") { db in
            try db.create(table: "state") { t in
                t.primaryKey("key", .text)
                t.column("value", .integer).notNull()
            }
            try db.create(table: "items") { t in
                t.primaryKey("id", .text)
                t.column("seq", .integer).notNull().unique()
                t.column("case_id", .text)
                t.column("name", .text).notNull()
                t.column("sha256", .text).notNull().indexed()
                t.column("size", .integer).notNull()
                t.column("ingested_at", .text).notNull()
                t.column("collected_at", .text)
                t.column("duplicate_of", .text)
                t.column("entry_offset", .integer).notNull()
                t.column("metadata", .text).notNull()
            }
            try db.create(index: "items_case", on: "items", columns: ["case_id", "seq"])
            try db.create(table: "item_tags") { t in
                t.column("tag", .text).notNull()
                t.column("item_id", .text).notNull()
                t.primaryKey(["tag", "item_id"])
            }
            try db.create(table: "events") { t in
                t.primaryKey("seq", .integer)
                t.column("item_id", .text).indexed()
                t.column("type", .text).notNull()
                t.column("time", .text).notNull()
                t.column("actor", .text).notNull()
            }
            try db.create(virtualTable: "items_fts", using: FTS5()) { t in
                t.tokenizer = .unicode61(diacritics: .remove)
                t.column("item_id").notIndexed()
                t.column("name")
                t.column("case_id")
                t.column("tags")
                t.column("source")
                t.column("location")
                t.column("consent")
                t.column("sensitivity")
                t.column("note")
                t.column("meta")
                t.column("media_type")
                t.column("path")
            }
        }
        migrator.registerMigration("v3-grants") { db in
            try db.create(table: "grants") { t in
                t.primaryKey("id", .text)
                t.column("seq", .integer).notNull()
                t.column("hash", .text).notNull()
                t.column("summary", .text).notNull()
                t.column("revoked_at", .text)
            }
            try db.create(table: "grant_items") { t in
                t.column("grant_id", .text).notNull()
                t.column("item_id", .text).notNull().indexed()
                t.primaryKey(["grant_id", "item_id"])
            }
            try db.create(table: "provenance") { t in
                t.primaryKey("item_id", .text)
                t.column("grant_id", .text).notNull()
                t.column("provenance", .text).notNull()
            }
        }
        migrator.registerMigration("v2-annotations") { db in
            try db.create(table: "annotations") { t in
                t.primaryKey("seq", .integer)
                t.column("item_id", .text).notNull().indexed()
                t.column("annotation", .text).notNull()
            }
        }
        // Additive: where each revoke entry is (to prove it in a revocation notice), and revocations received.
        migrator.registerMigration("v4-revocations") { db in
            try db.alter(table: "grants") { t in
                t.add(column: "revoked_seq", .integer)
                t.add(column: "revoked_offset", .integer)
                t.add(column: "revocation", .text)
            }
        }
        return migrator
    }

    /// The journal position up to which the index is complete.
    func position() throws -> JournalPosition {
        do {
            return try pool.read { db in
                let count = try Int.fetchOne(db, sql: "SELECT value FROM state WHERE key = 'journal_count'") ?? 0
                let offset = try Int64.fetchOne(db, sql: "SELECT value FROM state WHERE key = 'journal_offset'") ?? 0
                return JournalPosition(count: count, offset: offset)
            }
        } catch {
            throw Self.mapped(error)
        }
    }

    /// Applies `batch` if the index is still at `start`.
    ///
    /// - Returns: The duplicate-of ids of the applied items, or `nil` when another process moved the index first.
    func apply(_ batch: IndexBatch, expectedStart start: JournalPosition) throws -> [String: String?]? {
        do {
            return try pool.write { db -> [String: String?]? in
                let count = try Int.fetchOne(db, sql: "SELECT value FROM state WHERE key = 'journal_count'") ?? 0
                guard count == start.count else { return nil }
                var duplicates: [String: String?] = [:]
                let encoder = JSONEncoder()
                encoder.outputFormatting = [.sortedKeys]
                for item in batch.items {
                    let m = item.metadata
                    // A replayed ingest entry (verify reports it) must not break the index: the first one wins.
                    if try Bool.fetchOne(
                        db.cachedStatement(sql: "SELECT 1 FROM items WHERE id = ?"),
                        arguments: [item.id]
                    ) == true {
                        continue
                    }
                    let first = try String.fetchOne(
                        db.cachedStatement(sql: "SELECT id FROM items WHERE sha256 = ? ORDER BY seq LIMIT 1"),
                        arguments: [m.sha256]
                    )
                    duplicates[item.id] = first
                    let json = String(decoding: try encoder.encode(m), as: UTF8.self)
                    try db.cachedStatement(
                        sql: """
                            INSERT INTO items (id, seq, case_id, name, sha256, size, ingested_at, collected_at, duplicate_of, entry_offset, metadata)
                            VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                            """
                    ).execute(
                        arguments: [
                            item.id, item.seq, m.caseID, m.name, m.sha256, m.size, m.ingestedAt, m.collectedAt, first,
                            item.entryOffset, json,
                        ]
                    )
                    for tag in m.tags {
                        try db.cachedStatement(sql: "INSERT OR IGNORE INTO item_tags (tag, item_id) VALUES (?, ?)")
                            .execute(arguments: [tag, item.id])
                    }
                    let metaText = m.meta.sorted { $0.key < $1.key }.map { "\($0.key) \($0.value)" }.joined(
                        separator: " "
                    )
                    try db.cachedStatement(
                        sql: """
                            INSERT INTO items_fts (item_id, name, case_id, tags, source, location, consent, sensitivity, note, meta, media_type, path)
                            VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                            """
                    ).execute(
                        arguments: [
                            item.id, m.name, m.caseID, m.tags.joined(separator: " "), m.source, m.location, m.consent,
                            m.sensitivity, m.note, metaText, m.mediaType, m.path,
                        ]
                    )
                }
                for entry in batch.annotations {
                    try Self.apply(entry, in: db, encoder: encoder)
                }
                for grant in batch.grants {
                    try db.execute(
                        sql: "INSERT OR IGNORE INTO grants (id, seq, hash, summary) VALUES (?, ?, ?, ?)",
                        arguments: [
                            grant.summary.id, grant.seq, grant.hash,
                            String(decoding: try encoder.encode(grant.summary), as: UTF8.self),
                        ]
                    )
                    for item in grant.items {
                        try db.execute(
                            sql: "INSERT OR IGNORE INTO grant_items (grant_id, item_id) VALUES (?, ?)",
                            arguments: [grant.summary.id, item]
                        )
                    }
                }
                for (id, time, seq, offset) in batch.revocations {
                    try db.execute(
                        sql: """
                            UPDATE grants SET revoked_at = coalesce(revoked_at, ?), revoked_seq = ?, revoked_offset = ?
                            WHERE id = ? AND revoked_seq IS NULL
                            """,
                        arguments: [time, seq, offset, id]
                    )
                }
                for (id, revocation) in batch.receivedRevocations {
                    try db.execute(
                        sql: """
                            UPDATE grants SET revoked_at = coalesce(revoked_at, ?), revocation = ?
                            WHERE id = ? AND revocation IS NULL
                            """,
                        arguments: [
                            revocation.revokedAt, String(decoding: try encoder.encode(revocation), as: UTF8.self), id,
                        ]
                    )
                }
                for (item, provenance) in batch.provenance {
                    try db.execute(
                        sql: "INSERT OR IGNORE INTO provenance (item_id, grant_id, provenance) VALUES (?, ?, ?)",
                        arguments: [
                            item, provenance.grant, String(decoding: try encoder.encode(provenance), as: UTF8.self),
                        ]
                    )
                }
                for event in batch.events {
                    try db.cachedStatement(
                        sql: "INSERT INTO events (seq, item_id, type, time, actor) VALUES (?, ?, ?, ?, ?)"
                    )
                    .execute(arguments: [event.seq, event.item, event.type, event.time, event.actor])
                }
                try db.execute(
                    sql: "INSERT OR REPLACE INTO state (key, value) VALUES ('journal_count', ?), ('journal_offset', ?)",
                    arguments: [batch.end.count, batch.end.offset]
                )
                return duplicates
            }
        } catch {
            throw Self.mapped(error)
        }
    }

    /// Applies a tag change (to the item's tags, everywhere they are indexed) or a note (to its searchable text).
    private static func apply(_ entry: IndexedAnnotation, in db: Database, encoder: JSONEncoder) throws {
        guard
            let json = try String.fetchOne(db, sql: "SELECT metadata FROM items WHERE id = ?", arguments: [entry.item]),
            var metadata = try? JSONDecoder().decode(ItemMetadata.self, from: Data(json.utf8))
        else { return }
        let annotation = entry.annotation
        try db.execute(
            sql: "INSERT OR REPLACE INTO annotations (seq, item_id, annotation) VALUES (?, ?, ?)",
            arguments: [entry.seq, entry.item, String(decoding: try encoder.encode(annotation), as: UTF8.self)]
        )
        if annotation.type == "tag" {
            metadata.tags = Set(metadata.tags).union(annotation.add ?? []).subtracting(annotation.remove ?? []).sorted()
            try db.execute(
                sql: "UPDATE items SET metadata = ? WHERE id = ?",
                arguments: [String(decoding: try encoder.encode(metadata), as: UTF8.self), entry.item]
            )
            try db.execute(sql: "DELETE FROM item_tags WHERE item_id = ?", arguments: [entry.item])
            for tag in metadata.tags {
                try db.execute(sql: "INSERT INTO item_tags (tag, item_id) VALUES (?, ?)", arguments: [tag, entry.item])
            }
            try db.execute(
                sql: "UPDATE items_fts SET tags = ? WHERE item_id = ?",
                arguments: [metadata.tags.joined(separator: " "), entry.item]
            )
        } else if let text = annotation.text {
            try db.execute(
                sql: "UPDATE items_fts SET note = coalesce(note, '') || ' ' || ? WHERE item_id = ?",
                arguments: [text, entry.item]
            )
        }
    }

    /// Items matching `filter`, oldest first.
    package func list(_ filter: ItemFilter) throws -> [IndexedItem] {
        var clauses: [String] = []
        var arguments: [(any DatabaseValueConvertible)?] = []
        if let caseID = filter.caseID {
            clauses.append("case_id = ?")
            arguments.append(caseID)
        }
        for tag in Set(filter.tags) {
            clauses.append("id IN (SELECT item_id FROM item_tags WHERE tag = ?)")
            arguments.append(tag)
        }
        for (column, op, value) in [
            ("ingested_at", ">=", filter.ingestedAfter), ("ingested_at", "<", filter.ingestedBefore),
            ("collected_at", ">=", filter.collectedAfter), ("collected_at", "<", filter.collectedBefore),
        ] {
            if let value {
                clauses.append("\(column) \(op) ?")
                arguments.append(value)
            }
        }
        var sql = "SELECT id, seq, metadata, duplicate_of, entry_offset FROM items"
        if !clauses.isEmpty { sql += " WHERE " + clauses.joined(separator: " AND ") }
        sql += " ORDER BY seq"
        if let limit = filter.limit { sql += " LIMIT \(max(0, limit))" }
        return try fetchItems(sql: sql, arguments: StatementArguments(arguments.map { $0?.databaseValue ?? .null }))
    }

    /// Full-text search (FTS5 query syntax) over all text metadata, best match first.
    ///
    /// - Throws: ``ArchiveError`` (usage) when the query is not valid FTS5 syntax.
    package func search(_ query: String, limit: Int? = nil) throws -> [IndexedItem] {
        var sql = """
            SELECT items.id, items.seq, items.metadata, items.duplicate_of, items.entry_offset FROM items_fts
            JOIN items ON items.id = items_fts.item_id
            WHERE items_fts MATCH ? ORDER BY rank, items.seq
            """
        if let limit { sql += " LIMIT \(max(0, limit))" }
        do {
            return try fetchItems(sql: sql, arguments: [Self.ftsQuery(query)])
        } catch let error as ArchiveError where error.code == .damaged {
            throw ArchiveError(
                .usage,
                "the search query \"\(query.prefix(80))\" is not valid",
                fix: "use words, \"phrases\", AND, OR, NOT and parentheses (FTS5 syntax)"
            )
        }
    }

    /// Quotes bare words that FTS5 would misread (`W-17`, `a.b`, `x:y`) so they search as phrases;
    /// operators (AND, OR, NOT), parentheses, "quoted phrases" and `prefix*` pass through unchanged.
    static func ftsQuery(_ query: String) -> String {
        var out: [String] = []
        var current = ""
        var inQuote = false
        func flush() {
            guard !current.isEmpty else { return }
            var word = Substring(current)
            var open = ""
            var close = ""
            while word.first == "(" {
                open += "("
                word = word.dropFirst()
            }
            while word.last == ")" {
                close += ")"
                word = word.dropLast()
            }
            let star = word.hasSuffix("*") && word.count > 1
            if star { word = word.dropLast() }
            let plain = word.unicodeScalars.allSatisfy {
                $0.properties.isAlphabetic || $0.properties.numericType != nil || $0 == "_"
                    || $0.properties.generalCategory == .nonspacingMark
            }
            let text: String
            if word.hasPrefix("\"") || ["AND", "OR", "NOT"].contains(String(word)) || word.isEmpty || plain {
                text = String(word)
            } else {
                text = "\"" + word.replacingOccurrences(of: "\"", with: "\"\"") + "\""
            }
            out.append(open + text + (star ? "*" : "") + close)
            current = ""
        }
        for character in query {
            if character == "\"" { inQuote.toggle() }
            if character.isWhitespace && !inQuote {
                flush()
            } else {
                current.append(character)
            }
        }
        flush()
        return out.joined(separator: " ")
    }

    /// Items whose id starts with `prefix` (at most `limit`).
    package func items(withPrefix prefix: String, limit: Int = 2) throws -> [IndexedItem] {
        try fetchItems(
            sql:
                "SELECT id, seq, metadata, duplicate_of, entry_offset FROM items WHERE id >= ? AND id < ? ORDER BY id LIMIT \(limit)",
            arguments: [prefix, prefix + "g"]
        )
    }

    /// Items by exact id.
    package func items(ids: [String]) throws -> [IndexedItem] {
        guard !ids.isEmpty else { return [] }
        let marks = Array(repeating: "?", count: ids.count).joined(separator: ",")
        return try fetchItems(
            sql: "SELECT id, seq, metadata, duplicate_of, entry_offset FROM items WHERE id IN (\(marks)) ORDER BY seq",
            arguments: StatementArguments(ids)
        )
    }

    /// The custody events of an item, in log order.
    package func events(of item: String) throws -> [IndexedEvent] {
        do {
            return try pool.read { db in
                try Row.fetchAll(
                    db,
                    sql: """
                        SELECT events.seq, type, time, actor, events.item_id, annotation FROM events
                        LEFT JOIN annotations ON annotations.seq = events.seq
                        WHERE events.item_id = ? ORDER BY events.seq
                        """,
                    arguments: [item]
                ).map { row in
                    let annotation = (row[5] as String?).flatMap {
                        try? JSONDecoder().decode(Annotation.self, from: Data($0.utf8))
                    }
                    return IndexedEvent(
                        seq: row[0],
                        type: row[1],
                        time: row[2],
                        actor: row[3],
                        item: row[4],
                        annotation: annotation
                    )
                }
            }
        } catch {
            throw Self.mapped(error)
        }
    }

    /// Every grant made or imported, oldest first; with `item`, only those that include it.
    package func grants(item: String? = nil) throws -> [GrantSummary] {
        do {
            return try pool.read { db in
                let rows: [Row]
                if let item {
                    rows = try Row.fetchAll(
                        db,
                        sql: """
                            SELECT summary, revoked_at, revocation FROM grants JOIN grant_items ON grant_items.grant_id = grants.id
                            WHERE grant_items.item_id = ? ORDER BY seq
                            """,
                        arguments: [item]
                    )
                } else {
                    rows = try Row.fetchAll(db, sql: "SELECT summary, revoked_at, revocation FROM grants ORDER BY seq")
                }
                return try rows.map(Self.grantSummary)
            }
        } catch {
            throw Self.mapped(error)
        }
    }

    /// One grant's summary, or `nil` when the index has no grant `id` (the exact id).
    package func grant(_ id: String) throws -> GrantSummary? {
        do {
            return try pool.read { db in
                guard
                    let row = try Row.fetchOne(
                        db,
                        sql: "SELECT summary, revoked_at, revocation FROM grants WHERE id = ?",
                        arguments: [id]
                    )
                else { return nil }
                return try Self.grantSummary(row)
            }
        } catch {
            throw Self.mapped(error)
        }
    }

    /// The hash (hex SHA-256 of the signed grant) that the log recorded for grant `id`, or `nil`.
    func grantHash(_ id: String) throws -> String? {
        do {
            return try pool.read { db in
                try String.fetchOne(db, sql: "SELECT hash FROM grants WHERE id = ?", arguments: [id])
            }
        } catch {
            throw Self.mapped(error)
        }
    }

    /// A grant summary from a `SELECT summary, revoked_at, revocation` row.
    private static func grantSummary(_ row: Row) throws -> GrantSummary {
        let json: String = row[0]
        var summary = try JSONDecoder().decode(GrantSummary.self, from: Data(json.utf8))
        summary.revokedAt = row[1]
        summary.revocation = (row[2] as String?).flatMap {
            try? JSONDecoder().decode(ReceivedRevocation.self, from: Data($0.utf8))
        }
        return summary
    }

    /// Where this archive's `revoke` entry of grant `id` is in the journal, when the index recorded it.
    func revokeEntry(_ id: String) throws -> JournalPosition? {
        do {
            return try pool.read { db in
                guard
                    let row = try Row.fetchOne(
                        db,
                        sql: "SELECT revoked_seq, revoked_offset FROM grants WHERE id = ?",
                        arguments: [id]
                    ), let seq = row[0] as Int?, let offset = row[1] as Int64?
                else { return nil }
                return JournalPosition(count: seq, offset: offset)
            }
        } catch {
            throw Self.mapped(error)
        }
    }

    /// The log position of a grant's `grant` event.
    func grantSeq(_ id: String) throws -> Int {
        do {
            return try pool.read { db in
                guard let seq = try Int.fetchOne(db, sql: "SELECT seq FROM grants WHERE id = ?", arguments: [id]) else {
                    throw ArchiveError(.notFound, "no grant \(id)", fix: "list grants with custody grant list")
                }
                return seq
            }
        } catch {
            throw Self.mapped(error)
        }
    }

    /// The item ids of a grant.
    package func items(ofGrant id: String) throws -> [String] {
        do {
            return try pool.read { db in
                try String.fetchAll(
                    db,
                    sql: "SELECT item_id FROM grant_items WHERE grant_id = ? ORDER BY item_id",
                    arguments: [id]
                )
            }
        } catch {
            throw Self.mapped(error)
        }
    }

    /// Imported items, by id, with the grant each came under.
    package func importedItems() throws -> [String: String] {
        do {
            return try pool.read { db in
                Dictionary(
                    uniqueKeysWithValues: try Row.fetchAll(db, sql: "SELECT item_id, grant_id FROM provenance").map {
                        ($0[0] as String, $0[1] as String)
                    }
                )
            }
        } catch {
            throw Self.mapped(error)
        }
    }

    /// Where an imported item came from; `nil` for an item ingested here.
    package func provenance(of item: String) throws -> Provenance? {
        do {
            return try pool.read { db in
                guard
                    let json = try String.fetchOne(
                        db,
                        sql: "SELECT provenance FROM provenance WHERE item_id = ?",
                        arguments: [item]
                    )
                else { return nil }
                return try JSONDecoder().decode(Provenance.self, from: Data(json.utf8))
            }
        } catch {
            throw Self.mapped(error)
        }
    }

    /// Every item's id and ingest position.
    func itemPositions() throws -> [(id: String, seq: Int)] {
        do {
            return try pool.read { db in
                try Row.fetchAll(db, sql: "SELECT id, seq FROM items ORDER BY seq").map { ($0[0], $0[1]) }
            }
        } catch {
            throw Self.mapped(error)
        }
    }

    /// Counts for status displays.
    package func itemCount() throws -> Int {
        do {
            return try pool.read { db in try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM items") ?? 0 }
        } catch {
            throw Self.mapped(error)
        }
    }

    private func fetchItems(sql: String, arguments: StatementArguments) throws -> [IndexedItem] {
        do {
            return try pool.read { db in
                let decoder = JSONDecoder()
                return try Row.fetchAll(db, sql: sql, arguments: arguments).map { row in
                    let json: String = row[2]
                    return IndexedItem(
                        id: row[0],
                        seq: row[1],
                        metadata: try decoder.decode(ItemMetadata.self, from: Data(json.utf8)),
                        duplicateOf: row[3],
                        entryOffset: row[4]
                    )
                }
            }
        } catch let error as DecodingError {
            _ = error
            throw ArchiveError(.damaged, "the index holds an unreadable row", fix: "run custody reindex")
        } catch {
            throw Self.mapped(error)
        }
    }
}
