import CustodyStorage
import GRDB

extension ArchiveIndex {
    /// Items matching `filter`, oldest first.
    package func list(_ filter: ItemFilter) throws -> [IndexedItem] {
        typealias Columns = ItemRecord.Columns
        var request = ItemRecord.all()
        if let caseID = filter.caseID {
            request = request.filter(Columns.caseID == caseID)
        }
        for tag in Set(filter.tags) {
            let tagged = ItemTagRecord.filter(ItemTagRecord.Columns.tag == tag).select(ItemTagRecord.Columns.itemID)
            request = request.filter(tagged.contains(Columns.id))
        }
        if let after = filter.ingestedAfter { request = request.filter(Columns.ingestedAt >= after) }
        if let before = filter.ingestedBefore { request = request.filter(Columns.ingestedAt < before) }
        if let after = filter.collectedAfter { request = request.filter(Columns.collectedAt >= after) }
        if let before = filter.collectedBefore { request = request.filter(Columns.collectedAt < before) }
        if let after = filter.capturedAfter { request = request.filter(Columns.capturedAt >= after) }
        if let before = filter.capturedBefore { request = request.filter(Columns.capturedAt < before) }
        request = request.order(Columns.seq)
        if let limit = filter.limit { request = request.limit(max(0, limit)) }
        return try read { db in try request.fetchAll(db).map(\.indexed) }
    }

    /// Items whose id starts with `prefix` (at most `limit`).
    package func items(withPrefix prefix: String, limit: Int = 2) throws -> [IndexedItem] {
        typealias Columns = ItemRecord.Columns
        // Ids are lowercase hex: every id starting with `prefix` sorts in [prefix, prefix + "g").
        let request = ItemRecord.filter(Columns.id >= prefix && Columns.id < prefix + "g").order(Columns.id)
            .limit(limit)
        return try read { db in try request.fetchAll(db).map(\.indexed) }
    }

    /// Items by exact id.
    package func items(ids: [String]) throws -> [IndexedItem] {
        guard !ids.isEmpty else { return [] }
        let request = ItemRecord.filter(ids.contains(ItemRecord.Columns.id)).order(ItemRecord.Columns.seq)
        return try read { db in try request.fetchAll(db).map(\.indexed) }
    }

    /// Every item's id and ingest position.
    func itemPositions() throws -> [(id: String, seq: Int)] {
        let request = ItemRecord.select(ItemRecord.Columns.id, ItemRecord.Columns.seq).order(ItemRecord.Columns.seq)
            .asRequest(of: ItemPositionRecord.self)
        return try read { db in try request.fetchAll(db).map { ($0.id, $0.seq) } }
    }

    /// Counts for status displays.
    package func itemCount() throws -> Int {
        try read { db in try ItemRecord.fetchCount(db) }
    }

    /// The custody events of an item, in log order.
    package func events(of item: String) throws -> [IndexedEvent] {
        let request = EventRecord.filter(EventRecord.Columns.itemID == item)
            .including(optional: EventRecord.annotation)
            .order(EventRecord.Columns.seq)
            .asRequest(of: AnnotatedEventRecord.self)
        return try read { db in try request.fetchAll(db).map(\.indexed) }
    }

    /// Every grant made or imported, oldest first; with `item`, only those that include it.
    package func grants(item: String? = nil) throws -> [GrantSummary] {
        var request = GrantRecord.all()
        if let item {
            let including = GrantItemRecord.filter(GrantItemRecord.Columns.itemID == item)
                .select(GrantItemRecord.Columns.grantID)
            request = request.filter(including.contains(GrantRecord.Columns.id))
        }
        request = request.order(GrantRecord.Columns.seq)
        return try read { db in try request.fetchAll(db).map(\.indexed) }
    }

    /// One grant's summary, or `nil` when the index has no grant `id` (the exact id).
    package func grant(_ id: String) throws -> GrantSummary? {
        try read { db in try GrantRecord.fetchOne(db, key: id)?.indexed }
    }

    /// The hash (hex SHA-256 of the signed grant) that the log recorded for grant `id`, or `nil`.
    func grantHash(_ id: String) throws -> String? {
        let request = GrantRecord.filter(key: id).select(GrantRecord.Columns.hash, as: String.self)
        return try read { db in try request.fetchOne(db) }
    }

    /// Where the latest `rewrap` entry of `item` is in the journal, if its keys were wrapped anew.
    func rewrapEntry(_ item: String) throws -> JournalPosition? {
        try read { db in
            try ItemKeysRecord.fetchOne(db, key: item).map { JournalPosition(count: $0.seq, offset: $0.entryOffset) }
        }
    }

    /// Where this archive's `revoke` entry of grant `id` is in the journal, when the index recorded it.
    func revokeEntry(_ id: String) throws -> JournalPosition? {
        let request = GrantRecord.filter(key: id)
            .select(GrantRecord.Columns.revokedSeq, GrantRecord.Columns.revokedOffset)
            .asRequest(of: RevokeEntryRecord.self)
        return try read { db in
            guard let entry = try request.fetchOne(db), let seq = entry.revokedSeq, let offset = entry.revokedOffset
            else { return nil }
            return JournalPosition(count: seq, offset: offset)
        }
    }

    /// The log position of a grant's `grant` event.
    /// The log positions of the roster events before `seq`, in order.
    func rosterEventSeqs(before seq: Int) throws -> [Int] {
        let kinds: [Event.Kind] = [.memberAdd, .memberRole, .memberRemove, .recoverySplit, .recovery]
        return try read { db in
            try Int.fetchAll(
                db,
                sql: "SELECT seq FROM events WHERE seq < ? AND type IN (?, ?, ?, ?, ?) ORDER BY seq",
                arguments: StatementArguments([seq] + kinds.map(\.rawValue))
            )
        }
    }

    func grantSeq(_ id: String) throws -> Int {
        let request = GrantRecord.filter(key: id).select(GrantRecord.Columns.seq, as: Int.self)
        return try read { db in
            guard let seq = try request.fetchOne(db) else {
                throw ArchiveError(.notFound, "no grant \(id)", fix: "list grants with custody grant list")
            }
            return seq
        }
    }

    /// The item ids of a grant.
    package func items(ofGrant id: String) throws -> [String] {
        let request = GrantItemRecord.filter(GrantItemRecord.Columns.grantID == id)
            .order(GrantItemRecord.Columns.itemID)
            .select(GrantItemRecord.Columns.itemID, as: String.self)
        return try read { db in try request.fetchAll(db) }
    }

    /// Imported items, by id, with the grant each came under.
    package func importedItems() throws -> [String: String] {
        let request = ItemProvenanceRecord.select(
            ItemProvenanceRecord.Columns.itemID,
            ItemProvenanceRecord.Columns.grantID
        )
        .asRequest(of: ImportedItemRecord.self)
        return try read { db in
            Dictionary(uniqueKeysWithValues: try request.fetchAll(db).map { ($0.itemID, $0.grantID) })
        }
    }

    /// Where an imported item came from; `nil` for an item ingested here.
    package func provenance(of item: String) throws -> Provenance? {
        try read { db in try ItemProvenanceRecord.fetchOne(db, key: item)?.provenance }
    }
}
