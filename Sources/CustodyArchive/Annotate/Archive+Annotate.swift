import CustodyCrypto
import CustodyStorage
import Foundation

/// A tag change, a note or an extract's purpose: sealed under the item's K_meta, named by a `tag`, `note` or
/// `extract` event.
///
/// Sealed JSON (sorted keys): `{"add":[…],"remove":[…],"type":"tag","v":1}`, `{"text":"…","type":"note","v":1}` or
/// `{"text":"…","type":"extract","v":1}`.
package struct Annotation: Codable, Sendable, Equatable {
    /// Format version (1).
    package var version = 1
    /// `tag` or `note`, equal to the naming event's type.
    package var type: String
    /// Tag: tags added.
    package var add: [String]?
    /// Tag: tags removed.
    package var remove: [String]?
    /// Note: the text.
    package var text: String?

    enum CodingKeys: String, CodingKey {
        case version = "v"
        case type, add, remove, text
    }

    /// A tag change.
    package static func tags(add: [String], remove: [String]) -> Annotation {
        Annotation(type: "tag", add: add, remove: remove)
    }

    /// A note.
    package static func note(_ text: String) -> Annotation { Annotation(type: "note", text: text) }

    /// Why an item's plaintext left the archive (`extract --purpose`), named by its `extract` event.
    package static func purpose(_ text: String) -> Annotation { Annotation(type: "extract", text: text) }
}

extension ArchiveContext {
}

extension Archive.Unlocked {
    /// Adds and removes tags of an item, as a `tag` event.
    ///
    /// - Returns: The item's tags afterwards.
    /// - Throws: ``ArchiveError``: usage when nothing is given or a tag is both added and removed; bad input
    ///   for an empty, over-long or NUL-containing tag.
    @discardableResult
    package func tag(_ id: String, add: [String], remove: [String]) async throws -> [String] {
        guard !add.isEmpty || !remove.isEmpty else {
            throw ArchiveError(.usage, "no tag to add or remove", fix: "give --add TAG and/or --remove TAG")
        }
        var adding = SubmissionFields()
        adding.tags = add
        try adding.validate()
        var removing = SubmissionFields()
        removing.tags = remove
        try removing.validate()
        if let both = Set(adding.tags).intersection(removing.tags).sorted().first {
            throw ArchiveError(.usage, "the tag \(both) is both added and removed", fix: "give it once")
        }
        let indexed = try await resolveItem(id)
        try await annotate(indexed, with: .tags(add: adding.tags, remove: removing.tags), type: "tag")
        return try await resolveItem(indexed.id).metadata.tags
    }

    /// Adds a note to an item, as a `note` event.
    ///
    /// - Throws: ``ArchiveError`` (bad input) for an empty note, one over 64 KiB, or one containing NUL.
    package func note(_ id: String, text: String) async throws {
        guard !text.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty else {
            throw ArchiveError(.badInput, "the note is empty", fix: "give the note's text")
        }
        var fields = SubmissionFields()
        fields.note = text
        try fields.validate()
        try await annotate(try await resolveItem(id), with: .note(text), type: "note")
    }

    /// Decrypts the annotation a `tag` or `note` event names, with K_meta from the item's ingest event.
    func annotation(of event: Event, ingest: Event) async throws -> Annotation {
        guard let item = event.item, let ref = event.annotation, ingest.item == item else {
            throw ArchiveError(.damaged, "a \(event.type) event is incomplete", fix: "run custody verify")
        }
        var key = try metaKey(of: ingest)
        defer { wipe(&key) }
        return try await openStoredPart(
            ref.name,
            kind: .annotation,
            item: item,
            key: key,
            as: Annotation.self,
            what: event.type.rawValue
        ) { $0.type == event.type.rawValue }
    }

    /// Seals `annotation` under the item's K_meta, stores it durably, then records the event naming it.
    fileprivate func annotate(_ indexed: IndexedItem, with annotation: Annotation, type: String) async throws {
        // The role first: a refused annotation stores no sealed object.
        try authorize(member, for: [.annotate])
        let ingest = try ingestEvent(of: indexed)
        guard let item = ingest.item else {
            throw ArchiveError(.damaged, "ingest event without item", fix: "run custody verify")
        }
        let event = Event(
            type: Event.Kind(rawValue: type),
            time: RFC3339.now(),
            actor: config.origin,
            item: item,
            annotation: try await seal(annotation, of: ingest)
        )
        _ = try await record([event])
    }

    /// Seals `annotation` under the K_meta of the item `ingest` adds and stores it durably, for the event that
    /// will name it.
    func seal(_ annotation: Annotation, of ingest: Event) async throws -> ObjectRef {
        guard let item = ingest.item else {
            throw ArchiveError(.damaged, "ingest event without item", fix: "run custody verify")
        }
        var key = try metaKey(of: ingest)
        defer { wipe(&key) }
        let sealed = SealedPart.seal(
            Array(try JSONFormat.compactEncoder().encode(annotation)),
            kind: .annotation,
            item: item,
            key: key
        )
        let name = ObjectName(of: sealed)
        try await store.putObject(sealed, as: name)
        return ObjectRef(name: name, size: Int64(sealed.count))
    }

    /// Unwraps K_meta from an ingest event.
    func metaKey(of ingest: Event) throws -> [UInt8] {
        guard let item = ingest.item, let wrapped = ingest.keys else {
            throw ArchiveError(.damaged, "an ingest event is incomplete", fix: "run custody verify")
        }
        return try keys.unwrap(wrapped.meta, item: item)
    }
}
