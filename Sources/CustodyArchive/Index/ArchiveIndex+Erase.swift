import GRDB

extension ArchiveIndex {
    /// Every table the projection fills, children before parents.
    static let projectedTables: [any TableRecord.Type] = [
        AnnotationRecord.self, ItemProvenanceRecord.self, GrantItemRecord.self, GrantRecord.self, SearchRecord.self,
        EventRecord.self, ItemTagRecord.self, ItemRecord.self, RosterRecord.self, ItemKeysRecord.self, StateRecord.self,
    ]

    /// Empties the index in one transaction, back to journal position 0, for a rebuild in place.
    func erase() throws {
        try write { db in
            for table in Self.projectedTables { _ = try table.deleteAll(db) }
        }
    }
}
