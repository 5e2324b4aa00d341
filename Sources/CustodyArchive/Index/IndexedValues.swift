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
    /// The member the event names (their id), in an archive with members.
    package var member: String?
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
    /// Captured, as the file claims, at or after (a ``ClaimedTime/sortKey``).
    package var capturedAfter: String?
    /// Captured, as the file claims, before (a ``ClaimedTime/sortKey``).
    package var capturedBefore: String?
    /// At most this many rows (none: all).
    package var limit: Int?

    /// No filter.
    package init() {}
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
    /// The kind of the grant it came under (stored as its raw value).
    package var kind: Grant.Kind

    enum CodingKeys: String, CodingKey {
        case granter, grant, purpose, kind
        case granterOrigin = "granter_origin"
        case granterFingerprint = "granter_fingerprint"
        case importedAt = "imported_at"
    }
}
