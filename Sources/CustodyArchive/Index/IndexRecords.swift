import CustodyClaims
import GRDB

// The rows of `index.sqlite` as GRDB records, one type per table (IndexSchema.swift creates them). Each maps its
// columns by name through `CodingKeys`; a nested `Codable` value (metadata, summary, annotation, provenance) is one
// TEXT column of JSON with sorted keys (GRDB's default JSON coder). Nothing outside the Index folder sees these types.

/// A row of `state`: how far into the journal the index is complete.
struct StateRecord: Codable, FetchableRecord, PersistableRecord {
    static let databaseTableName = "state"
    /// The number of journal entries applied.
    static let journalCount = "journal_count"
    /// The byte offset in the journal after the last entry applied.
    static let journalOffset = "journal_offset"

    var key: String
    var value: Int64
}

/// The one row of `roster`: the roster as the log builds it, up to the index's position (JSON of ``Roster``).
struct RosterRecord: Codable, FetchableRecord, PersistableRecord {
    static let databaseTableName = "roster"

    var id = 1
    var roster: Roster
}

/// A row of `item_keys`: where the latest `rewrap` entry of an item is (its keys wrapped to the box key of the
/// latest key rotation).
struct ItemKeysRecord: Codable, FetchableRecord, PersistableRecord {
    static let databaseTableName = "item_keys"

    var itemID: String
    var seq: Int
    var entryOffset: Int64

    enum CodingKeys: String, CodingKey {
        case seq
        case itemID = "item_id"
        case entryOffset = "entry_offset"
    }
}

/// A row of `items`: an item's ingest position and its metadata, with the columns `list` filters on.
struct ItemRecord: Codable, FetchableRecord, PersistableRecord {
    static let databaseTableName = "items"

    /// Item id, hex.
    var id: String
    /// Position of its `ingest` or `import` event in the journal.
    var seq: Int
    var caseID: String?
    var name: String
    /// SHA-256 of the plaintext, hex.
    var sha256: String
    var size: Int64
    var ingestedAt: String
    var collectedAt: String?
    /// When the file says it was captured: the sort key of its claimed capture time (Docs/FORMAT.md).
    var capturedAt: String?
    /// The first earlier item with the same SHA-256, when the item was indexed.
    var duplicateOf: String?
    /// Byte offset of its event's frame in the journal.
    var entryOffset: Int64
    /// The whole metadata, tags as last changed (the columns above keep their ingest values).
    var metadata: ItemMetadata

    enum CodingKeys: String, CodingKey {
        case id, seq, name, sha256, size, metadata
        case caseID = "case_id"
        case ingestedAt = "ingested_at"
        case collectedAt = "collected_at"
        case capturedAt = "captured_at"
        case duplicateOf = "duplicate_of"
        case entryOffset = "entry_offset"
    }

    enum Columns {
        static let id = Column(CodingKeys.id)
        static let seq = Column(CodingKeys.seq)
        static let caseID = Column(CodingKeys.caseID)
        static let sha256 = Column(CodingKeys.sha256)
        static let ingestedAt = Column(CodingKeys.ingestedAt)
        static let collectedAt = Column(CodingKeys.collectedAt)
        static let capturedAt = Column(CodingKeys.capturedAt)
        static let metadata = Column(CodingKeys.metadata)
    }

    /// The row of `item`, first seen as a duplicate of `duplicateOf`.
    init(_ item: IndexedItem, duplicateOf: String?) {
        let metadata = item.metadata
        self.id = item.id
        self.seq = item.seq
        self.caseID = metadata.caseID
        self.name = metadata.name
        self.sha256 = metadata.sha256
        self.size = metadata.size
        self.ingestedAt = metadata.ingestedAt
        self.collectedAt = metadata.collectedAt
        self.capturedAt = metadata.claims?.capturedAt?.sortKey
        self.duplicateOf = duplicateOf
        self.entryOffset = item.entryOffset
        self.metadata = metadata
    }

    /// The item as the index API returns it.
    var indexed: IndexedItem {
        IndexedItem(id: id, seq: seq, metadata: metadata, duplicateOf: duplicateOf, entryOffset: entryOffset)
    }

    // Written once per item on ingest and reindex: by column name, without the generic `Encodable` path.
    func encode(to container: inout PersistenceContainer) throws {
        container[CodingKeys.id.stringValue] = id
        container[CodingKeys.seq.stringValue] = seq
        container[CodingKeys.caseID.stringValue] = caseID
        container[CodingKeys.name.stringValue] = name
        container[CodingKeys.sha256.stringValue] = sha256
        container[CodingKeys.size.stringValue] = size
        container[CodingKeys.ingestedAt.stringValue] = ingestedAt
        container[CodingKeys.collectedAt.stringValue] = collectedAt
        container[CodingKeys.capturedAt.stringValue] = capturedAt
        container[CodingKeys.duplicateOf.stringValue] = duplicateOf
        container[CodingKeys.entryOffset.stringValue] = entryOffset
        container[CodingKeys.metadata.stringValue] = try Self.json(metadata, column: CodingKeys.metadata)
    }
}

/// An item's id and ingest position (two columns of `items`), for checks that need no metadata.
struct ItemPositionRecord: Decodable, FetchableRecord {
    var id: String
    var seq: Int
}

/// A row of `item_tags`: one current tag of one item.
struct ItemTagRecord: Codable, FetchableRecord, PersistableRecord {
    static let databaseTableName = "item_tags"

    var tag: String
    var itemID: String

    enum CodingKeys: String, CodingKey {
        case tag
        case itemID = "item_id"
    }

    enum Columns {
        static let tag = Column(CodingKeys.tag)
        static let itemID = Column(CodingKeys.itemID)
    }

    func encode(to container: inout PersistenceContainer) {
        container[CodingKeys.tag.stringValue] = tag
        container[CodingKeys.itemID.stringValue] = itemID
    }
}

/// A row of `items_fts` (FTS5): an item's searchable text, one column per metadata field, each folded
/// (``SearchFolding/fold(_:)``; Docs/SEARCH.md). Only matching reads it: what commands print comes from `items`.
struct SearchRecord: Codable, FetchableRecord, PersistableRecord {
    static let databaseTableName = "items_fts"

    var itemID: String
    var name: String
    var caseID: String?
    /// The tags, space-separated.
    var tags: String
    var source: String?
    var location: String?
    var consent: String?
    var sensitivity: String?
    /// The ingest note, then each later note after a space.
    var note: String?
    /// The extra fields as `key value`, sorted by key, space-separated.
    var meta: String
    var mediaType: String
    var path: String

    enum CodingKeys: String, CodingKey {
        case name, tags, source, location, consent, sensitivity, note, meta, path
        case itemID = "item_id"
        case caseID = "case_id"
        case mediaType = "media_type"
    }

    enum Columns {
        static let itemID = Column(CodingKeys.itemID)
        static let tags = Column(CodingKeys.tags)
    }

    /// The searchable text of an item with this id and metadata, folded.
    init(id: String, metadata m: ItemMetadata) {
        let fold: (String) -> String = SearchFolding.fold
        self.itemID = id
        self.name = fold(m.name)
        self.caseID = m.caseID.map(fold)
        self.tags = Self.tags(m.tags)
        self.source = m.source.map(fold)
        self.location = m.location.map(fold)
        self.consent = m.consent.map(fold)
        self.sensitivity = m.sensitivity.map(fold)
        self.note = m.note.map(fold)
        self.meta = fold(m.meta.sorted { $0.key < $1.key }.map { "\($0.key) \($0.value)" }.joined(separator: " "))
        self.mediaType = fold(m.mediaType)
        self.path = fold(m.path)
    }

    /// The `tags` column for these tags: folded, space-separated.
    static func tags(_ tags: [String]) -> String {
        SearchFolding.fold(tags.joined(separator: " "))
    }

    func encode(to container: inout PersistenceContainer) {
        container[CodingKeys.itemID.stringValue] = itemID
        container[CodingKeys.name.stringValue] = name
        container[CodingKeys.caseID.stringValue] = caseID
        container[CodingKeys.tags.stringValue] = tags
        container[CodingKeys.source.stringValue] = source
        container[CodingKeys.location.stringValue] = location
        container[CodingKeys.consent.stringValue] = consent
        container[CodingKeys.sensitivity.stringValue] = sensitivity
        container[CodingKeys.note.stringValue] = note
        container[CodingKeys.meta.stringValue] = meta
        container[CodingKeys.mediaType.stringValue] = mediaType
        container[CodingKeys.path.stringValue] = path
    }
}

/// A row of `events`: one journal entry (every entry has one, item or not).
struct EventRecord: Codable, FetchableRecord, PersistableRecord {
    static let databaseTableName = "events"
    /// The note or tag change the event recorded (`annotations` shares the primary key `seq`).
    static let annotation = hasOne(
        AnnotationRecord.self,
        key: "annotation",
        using: ForeignKey([AnnotationRecord.CodingKeys.seq.rawValue], to: [CodingKeys.seq.rawValue])
    )

    var seq: Int
    var itemID: String?
    /// The event type, as signed in the journal (`ingest`, `tag`, `grant`…).
    var type: String
    var time: String
    var actor: String
    /// The member id the event names, if any.
    var member: String?

    enum CodingKeys: String, CodingKey {
        case seq, type, time, actor, member
        case itemID = "item_id"
    }

    enum Columns {
        static let seq = Column(CodingKeys.seq)
        static let itemID = Column(CodingKeys.itemID)
    }

    /// The row of `event`.
    init(_ event: IndexedEvent) {
        self.seq = event.seq
        self.itemID = event.item
        self.type = event.type
        self.time = event.time
        self.actor = event.actor
        self.member = event.member
    }

    func encode(to container: inout PersistenceContainer) {
        container[CodingKeys.seq.stringValue] = seq
        container[CodingKeys.itemID.stringValue] = itemID
        container[CodingKeys.type.stringValue] = type
        container[CodingKeys.time.stringValue] = time
        container[CodingKeys.actor.stringValue] = actor
        container[CodingKeys.member.stringValue] = member
    }
}

/// An event with the annotation it recorded, if any (`events` left-joined with `annotations`).
struct AnnotatedEventRecord: Decodable, FetchableRecord {
    var event: EventRecord
    var annotation: AnnotationRecord?

    enum CodingKeys: String, CodingKey {
        case event, annotation
    }

    init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        event = try container.decode(EventRecord.self, forKey: .event)
        // An annotation the index cannot read is shown as none: the event itself stays listed.
        annotation = try? container.decodeIfPresent(AnnotationRecord.self, forKey: .annotation)
    }

    /// The event as the index API returns it.
    var indexed: IndexedEvent {
        IndexedEvent(
            seq: event.seq,
            type: event.type,
            time: event.time,
            actor: event.actor,
            member: event.member,
            item: event.itemID,
            annotation: annotation?.annotation
        )
    }
}

/// A row of `annotations`: the decrypted tag change or note of a `tag` or `note` event.
struct AnnotationRecord: Codable, FetchableRecord, PersistableRecord {
    static let databaseTableName = "annotations"

    var seq: Int
    var itemID: String
    var annotation: Annotation

    enum CodingKeys: String, CodingKey {
        case seq, annotation
        case itemID = "item_id"
    }
}

/// A row of `grants`: a grant made or imported, and its revocation when one is known.
struct GrantRecord: Codable, FetchableRecord, PersistableRecord {
    static let databaseTableName = "grants"

    var id: String
    /// The position of its `grant` event, or of the first `import` event under it.
    var seq: Int
    /// Hex SHA-256 of the signed grant, as the event recorded it.
    var hash: String
    /// The summary as first indexed: `revokedAt` and `revocation` live in their own columns.
    var summary: GrantSummary
    var revokedAt: String?
    /// Where this archive's `revoke` entry is.
    var revokedSeq: Int?
    var revokedOffset: Int64?
    /// A verified revocation notice received for it.
    var revocation: ReceivedRevocation?

    enum CodingKeys: String, CodingKey {
        case id, seq, hash, summary, revocation
        case revokedAt = "revoked_at"
        case revokedSeq = "revoked_seq"
        case revokedOffset = "revoked_offset"
    }

    enum Columns {
        static let id = Column(CodingKeys.id)
        static let seq = Column(CodingKeys.seq)
        static let hash = Column(CodingKeys.hash)
        static let revokedAt = Column(CodingKeys.revokedAt)
        static let revokedSeq = Column(CodingKeys.revokedSeq)
        static let revokedOffset = Column(CodingKeys.revokedOffset)
        static let revocation = Column(CodingKeys.revocation)
    }

    /// The row of a grant just indexed, not revoked.
    init(_ grant: IndexedGrant) {
        self.id = grant.summary.id
        self.seq = grant.seq
        self.hash = grant.hash
        self.summary = grant.summary
    }

    init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        id = try container.decode(String.self, forKey: .id)
        seq = try container.decode(Int.self, forKey: .seq)
        hash = try container.decode(String.self, forKey: .hash)
        summary = try container.decode(GrantSummary.self, forKey: .summary)
        revokedAt = try container.decodeIfPresent(String.self, forKey: .revokedAt)
        revokedSeq = try container.decodeIfPresent(Int.self, forKey: .revokedSeq)
        revokedOffset = try container.decodeIfPresent(Int64.self, forKey: .revokedOffset)
        // A notice the index cannot read is shown as none; `revoked_at` still says the grant ended.
        revocation = try? container.decodeIfPresent(ReceivedRevocation.self, forKey: .revocation)
    }

    /// The summary as the index API returns it, with what is known of its revocation.
    var indexed: GrantSummary {
        var summary = summary
        summary.revokedAt = revokedAt
        summary.revocation = revocation
        return summary
    }
}

/// Where this archive's `revoke` entry of a grant is (two columns of `grants`).
struct RevokeEntryRecord: Decodable, FetchableRecord {
    var revokedSeq: Int?
    var revokedOffset: Int64?

    enum CodingKeys: String, CodingKey {
        case revokedSeq = "revoked_seq"
        case revokedOffset = "revoked_offset"
    }
}

/// A row of `grant_items`: one item a grant names.
struct GrantItemRecord: Codable, FetchableRecord, PersistableRecord {
    static let databaseTableName = "grant_items"

    var grantID: String
    var itemID: String

    enum CodingKeys: String, CodingKey {
        case grantID = "grant_id"
        case itemID = "item_id"
    }

    enum Columns {
        static let grantID = Column(CodingKeys.grantID)
        static let itemID = Column(CodingKeys.itemID)
    }
}

/// A row of `provenance`: where an imported item came from.
struct ItemProvenanceRecord: Codable, FetchableRecord, PersistableRecord {
    static let databaseTableName = "provenance"

    var itemID: String
    var grantID: String
    var provenance: Provenance

    enum CodingKeys: String, CodingKey {
        case provenance
        case itemID = "item_id"
        case grantID = "grant_id"
    }

    enum Columns {
        static let itemID = Column(CodingKeys.itemID)
        static let grantID = Column(CodingKeys.grantID)
    }
}

/// An imported item and the grant it came under (two columns of `provenance`).
struct ImportedItemRecord: Decodable, FetchableRecord {
    var itemID: String
    var grantID: String

    enum CodingKeys: String, CodingKey {
        case itemID = "item_id"
        case grantID = "grant_id"
    }
}
