import GRDB

extension ArchiveIndex {
    /// Every table the projection fills, children before parents.
    static let projectedTables = [
        "annotations", "provenance", "grant_items", "grants", "items_fts", "events", "item_tags", "items", "state",
    ]

    /// Empties the index in one transaction, back to journal position 0, for a rebuild in place.
    func erase() throws {
        do {
            try pool.write { db in
                for table in Self.projectedTables { try db.execute(sql: "DELETE FROM \(table)") }
            }
        } catch {
            throw Self.mapped(error)
        }
    }
}
