import CustodyClaims
import CustodyStorage

/// The submission metadata of one item: everything sealed in its metadata part.
///
/// The JSON field names are those of Docs/FORMAT.md ("Metadata part").
package struct ItemMetadata: Codable, Sendable, Equatable {
    /// Format version (1).
    package var version = 1
    /// The item id.
    package var item: ItemID
    /// Original file name (last path component).
    package var name: String
    /// Path relative to the folder given to `ingest` (or the file name).
    package var path: String
    /// Media type sniffed from the content's magic bytes.
    package var mediaType: String
    /// Plaintext size in bytes.
    package var size: Int64
    /// SHA-256 of the plaintext, lowercase hex.
    package var sha256: String
    /// The random opening `r` of the ledger's evidence commitment, base64.
    package var commitmentNonce: String
    /// Case identifier.
    package var caseID: String?
    /// Tags.
    package var tags: [String]
    /// Who or what the evidence came from.
    package var source: String?
    /// When it was collected (RFC 3339 UTC).
    package var collectedAt: String?
    /// Where it was collected.
    package var location: String?
    /// The consent under which it may be used.
    package var consent: String?
    /// Sensitivity label.
    package var sensitivity: String?
    /// Free note.
    package var note: String?
    /// Arbitrary key/value pairs.
    package var meta: [String: String]
    /// When it was ingested (RFC 3339 UTC).
    package var ingestedAt: String
    /// The ingesting archive's log origin.
    package var ingestedBy: String
    /// SHA-256 (lowercase hex) of the collector's hash list (`ingest --expect-from`) whose line this item's
    /// SHA-256 matched; absent when none was given.
    package var matchedManifest: String? = nil
    /// The recorded path's raw bytes, standard base64 with padding, present only when they are not UTF-8
    /// (``path`` and ``name`` then show each invalid byte sequence as U+FFFD).
    package var pathBytes: String? = nil
    /// What the file says about itself (its embedded metadata and modification time), read at ingest: the
    /// file's claims, kept apart from the collector's provenance above, which they never override. `nil` for
    /// items ingested without extraction (`--no-claims`) or before it existed (Docs/FORMAT.md).
    package var claims: FileClaims? = nil

    enum CodingKeys: String, CodingKey {
        case version = "v"
        case item, name, path
        case mediaType = "media_type"
        case size, sha256
        case commitmentNonce = "commitment_nonce"
        case caseID = "case"
        case tags, source
        case collectedAt = "collected_at"
        case location, consent, sensitivity, note, meta
        case ingestedAt = "ingested_at"
        case ingestedBy = "ingested_by"
        case matchedManifest = "matched_manifest"
        case pathBytes = "path_bytes"
        case claims
    }
}

/// The submission fields an investigator gives to `ingest`, shared by every file of one run.
package struct SubmissionFields: Sendable, Equatable {
    /// Case identifier.
    package var caseID: String?
    /// Tags.
    package var tags: [String] = []
    /// Who or what the evidence came from.
    package var source: String?
    /// When it was collected (RFC 3339; stored as UTC).
    package var collectedAt: String?
    /// Where it was collected.
    package var location: String?
    /// The consent under which it may be used.
    package var consent: String?
    /// Sensitivity label.
    package var sensitivity: String?
    /// Free note.
    package var note: String?
    /// Arbitrary key/value pairs.
    package var meta: [String: String] = [:]

    /// Creates empty fields.
    package init() {}

    /// Limits on each field, so no metadata part grows without bound.
    package enum Limits {
        /// Bytes in a short field (case, source, location, …).
        package static let shortField = 1024
        /// Bytes in the note.
        package static let note = 64 * 1024
        /// Number of tags.
        package static let tags = 64
        /// Number of `--meta` pairs.
        package static let metaPairs = 64
        /// Bytes in a `--meta` value.
        package static let metaValue = 4096
    }

    /// Checks every field against ``Limits`` and normalises `collectedAt` to UTC.
    ///
    /// - Throws: ``ArchiveError`` (bad input) naming the field and its limit.
    package mutating func validate() throws {
        func check(_ value: String?, _ field: String, _ limit: Int) throws {
            guard let value else { return }
            guard value.utf8.count <= limit else {
                throw ArchiveError(
                    .badInput,
                    "\(field) is \(value.utf8.count) bytes long",
                    fix: "keep \(field) under \(limit) bytes"
                )
            }
            guard !value.unicodeScalars.contains(where: { $0.value == 0 }) else {
                throw ArchiveError(.badInput, "\(field) contains a NUL character", fix: "remove it")
            }
        }
        try check(caseID, "--case", Limits.shortField)
        try check(source, "--source", Limits.shortField)
        try check(location, "--location", Limits.shortField)
        try check(consent, "--consent", Limits.shortField)
        try check(sensitivity, "--sensitivity", Limits.shortField)
        try check(note, "--note", Limits.note)
        guard tags.count <= Limits.tags else {
            throw ArchiveError(.badInput, "\(tags.count) tags given", fix: "give at most \(Limits.tags) tags")
        }
        for tag in tags {
            try check(tag, "--tag", 128)
            guard !tag.isEmpty else {
                throw ArchiveError(.badInput, "an empty --tag was given", fix: "give a non-empty tag")
            }
        }
        tags = Array(Set(tags)).sorted()
        guard meta.count <= Limits.metaPairs else {
            throw ArchiveError(.badInput, "\(meta.count) --meta pairs given", fix: "give at most \(Limits.metaPairs)")
        }
        for (key, value) in meta {
            try check(key, "--meta key", 128)
            try check(value, "--meta \(key.prefix(40))", Limits.metaValue)
        }
        if let collectedAt {
            guard let normalized = RFC3339.normalize(collectedAt) else {
                throw ArchiveError(
                    .badInput,
                    "--collected-at \(collectedAt.prefix(64)) is not an RFC 3339 time",
                    fix: "write it like 2026-03-02T10:00:00Z"
                )
            }
            self.collectedAt = normalized
        }
    }
}

/// The chunk list of an item: what its content part seals.
package struct ContentManifest: Codable, Sendable {
    /// One chunk.
    package struct Chunk: Codable, Sendable {
        /// The chunk's object name.
        package var object: ObjectName
        /// Stored size of the object (plaintext length + 16).
        package var size: Int64
        /// The convergent chunk key, base64.
        package var key: String
    }

    /// Format version (1).
    package var version = 1
    /// The plaintext size; the padded stream is cut to this length on extraction.
    package var size: Int64
    /// The padded size (Padmé).
    package var paddedSize: Int64
    /// The chunk size of the archive.
    package var chunkSize: Int
    /// The chunks in order.
    package var chunks: [Chunk]

    enum CodingKeys: String, CodingKey {
        case version = "v"
        case size
        case paddedSize = "padded_size"
        case chunkSize = "chunk_size"
        case chunks
    }
}
