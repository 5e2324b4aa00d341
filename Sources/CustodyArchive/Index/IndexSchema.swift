import GRDB

/// The schema of `index.sqlite`, one migration per version, in the order they first shipped.
///
/// The migration identifiers and tables are on disk in every archive's index: never rename or edit a migration;
/// add a new one. The record types in IndexRecords.swift map these columns by name.
enum IndexSchema {
    /// Creates or upgrades the tables.
    static var migrator: DatabaseMigrator {
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
        // Additive: who acted (the member id an event names) and the roster as the log builds it.
        migrator.registerMigration("v5-members") { db in
            try db.alter(table: "events") { t in t.add(column: "member", .text) }
            try db.create(table: "roster") { t in
                t.primaryKey("id", .integer)
                t.column("roster", .text).notNull()
            }
        }
        // Additive: where each item's latest `rewrap` entry is, after a key rotation.
        migrator.registerMigration("v6-key-rotation") { db in
            try db.create(table: "item_keys") { t in
                t.primaryKey("item_id", .text)
                t.column("seq", .integer).notNull()
                t.column("entry_offset", .integer).notNull()
            }
        }
        // The searchable text becomes folded (Docs/SEARCH.md): Arabic marks, letter forms and digits. Each text
        // column (all but item_id) of every existing row is folded in place, so no sealed part is read again.
        migrator.registerMigration("v7-folded-search") { db in
            let columns = try db.columns(in: "items_fts").map(\.name).filter { $0 != "item_id" }
            let select = "SELECT rowid, " + columns.map(\.quotedDatabaseIdentifier).joined(separator: ", ")
            let update =
                "UPDATE items_fts SET "
                + columns.map { "\($0.quotedDatabaseIdentifier) = ?" }.joined(separator: ", ") + " WHERE rowid = ?"
            let statement = try db.makeStatement(sql: update)
            // In pages of 1000 rows by rowid, so a large index is never read into memory at once.
            var last: Int64 = .min
            while true {
                let page = try Row.fetchAll(
                    db,
                    sql: select + " FROM items_fts WHERE rowid > ? ORDER BY rowid LIMIT 1000",
                    arguments: [last]
                )
                guard let end = page.last else { break }
                for row in page {
                    var values: [(any DatabaseValueConvertible)?] = columns.map { column in
                        (row[column] as String?).map { SearchFolding.fold($0) }
                    }
                    values.append(row["rowid"] as Int64)
                    try statement.execute(arguments: StatementArguments(values))
                }
                last = end["rowid"]
            }
        }
        // Additive: when the file says it was captured (``ClaimedTime/sortKey`` of its claims), for
        // `ls --captured-after/--captured-before`. Items indexed before have none until `reindex`.
        migrator.registerMigration("v8-captured-at") { db in
            try db.alter(table: "items") { t in t.add(column: "captured_at", .text) }
            try db.create(index: "items_captured_at", on: "items", columns: ["captured_at"])
        }
        return migrator
    }

    /// Every table, in the order a dump lists them.
    static let tables = [
        "state", "items", "item_tags", "events", "annotations", "items_fts", "grants", "grant_items", "provenance",
        "roster", "item_keys",
    ]
}
