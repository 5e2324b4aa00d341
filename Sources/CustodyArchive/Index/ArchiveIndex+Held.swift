import GRDB

extension ArchiveIndex {
    /// Items whose plaintext SHA-256 (lowercase hex) is `sha256`, oldest first (the `sha256` column's index).
    package func items(withSHA256 sha256: String) throws -> [IndexedItem] {
        let request = ItemRecord.filter(ItemRecord.Columns.sha256 == sha256).order(ItemRecord.Columns.seq)
        return try read { db in try request.fetchAll(db).map(\.indexed) }
    }
}
