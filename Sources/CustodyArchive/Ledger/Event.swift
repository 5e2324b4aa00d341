import CustodyCrypto
import CustodyStorage
import Foundation

/// An object an event names, with its stored size (so `verify --quick` can check sizes without keys).
package struct ObjectRef: Codable, Sendable, Hashable {
    /// The object name.
    package var name: ObjectName
    /// Its stored size in bytes.
    package var size: Int64

    /// The largest object there is (a content part; chunks and chunk lists are smaller): every decoded size is
    /// within `0...maxSize`, so sizes from outside cannot be negative or overflow a sum of a bounded count.
    package static let maxSize = Int64(SealedPart.maxContentStoredBytes)

    package init(name: ObjectName, size: Int64) {
        self.name = name
        self.size = size
    }

    enum CodingKeys: String, CodingKey { case name, size }

    package init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        name = try container.decode(ObjectName.self, forKey: .name)
        size = try container.decode(Int64.self, forKey: .size)
        guard (0...Self.maxSize).contains(size) else {
            throw DecodingError.dataCorruptedError(
                forKey: .size,
                in: container,
                debugDescription: "an object size outside 0...\(Self.maxSize)"
            )
        }
    }
}

/// The objects an ingest event names.
package struct IngestObjects: Codable, Sendable {
    /// The sealed metadata part.
    package var meta: ObjectRef
    /// The sealed content part; absent for an item imported under a metadata-only grant.
    package var content: ObjectRef?
    /// The chunks, inline, when there are at most ``Event/inlineChunkLimit``.
    package var chunks: [ObjectRef]?
    /// Otherwise a public chunk-list object: 40 bytes a chunk (32-byte name, 8-byte big-endian size).
    package var chunkList: ObjectRef?

    enum CodingKeys: String, CodingKey {
        case meta, content, chunks
        case chunkList = "chunk_list"
    }
}

/// The per-item keys, each wrapped with `crypto_box_seal(item id || key)` to the archive's box key.
package struct WrappedKeys: Codable, Sendable {
    /// Wrapped K_meta, base64.
    package var meta: String
    /// Wrapped K_content, base64; absent for an item imported under a metadata-only grant.
    package var content: String?
}

/// A custody event: the signed body of one journal entry.
///
/// Entry bytes = body JSON (one line) `"\n"` base64(Ed25519 signature over `"custody/event/v1\n" || body`).
/// Bodies carry ids, object names, commitments, wrapped keys and times — never plaintext hashes or metadata.
package struct Event: Codable, Sendable {
    /// Entries with more chunks than this name a chunk-list object instead (keeps entries well under 64 KiB).
    package static let inlineChunkLimit = 256
    static let signatureDomain = Array("custody/event/v1\n".utf8)
    /// What the acting member's signature of an entry is over, before the body.
    package static let memberSignatureDomain = Array("custody/member-event/v1\n".utf8)

    /// Format version (1).
    package var version = 1
    /// What happened (``Kind``).
    package var type: Kind
    /// When it happened (RFC 3339 UTC).
    package var time: String
    /// Who acted: the archive's log origin, or a person's key.
    package var actor: String
    /// The item concerned.
    package var item: ItemID?
    /// Ingest: the objects the item uses.
    package var objects: IngestObjects?
    /// Ingest: the wrapped per-item keys.
    package var keys: WrappedKeys?
    /// Ingest: the evidence commitment, hex SHA-256("custody/commit/v1" || r || sha256 || size as 8 bytes BE).
    package var commitment: String?
    /// Tag and note: the sealed annotation (under the item's K_meta). Import: the sealed provenance.
    package var annotation: ObjectRef?
    /// Grant, revoke and import: the grant concerned (id and SHA-256 of the signed grant).
    package var grant: GrantReference?
    /// Revoke: the reason, sealed (`crypto_box_seal`) to this archive's box key.
    package var sealed: ObjectRef?
    /// Access: the requesting body's signing key, base64.
    package var requester: String?
    /// Access: the Merkle root (RFC 9162, leaves = object names) of the objects served, hex.
    package var served: String?
    /// Revocation-received: the object holding the granter's revocation notice (SHARING.md section 2).
    package var notice: ObjectRef?
    /// The member who acted, in an archive with members: the entry then carries their signature too (a second
    /// signature line over `"custody/member-event/v1\n" || body`; Docs/LEDGER.md section 18).
    package var by: MemberID?
    /// Roster events: the member added, changed or removed.
    package var subject: Member?
    /// Roster events: how many roster events precede this one (what the approvals are bound to).
    package var roster: Int?
    /// The first roster event: how many administrators' approvals later roster changes need.
    package var threshold: Int?
    /// Roster events: administrators' signatures over the event's roster statement (``RosterStatement``).
    package var approvals: [Approval]?
    /// `recovery-split`: the public key of the split's recovery signing key, base64.
    package var recoveryKey: String?
    /// `recovery`: the recovery key's signature over the event's roster statement, base64.
    package var recoverySignature: String?
    /// `key-rotation`: the archive's new X25519 box key, base64 (the key-transition statement, LEDGER.md section 19).
    package var boxKey: String?
    /// `key-rotation`: the box key it replaces, base64.
    package var previousBoxKey: String?

    enum CodingKeys: String, CodingKey, CaseIterable {
        case version = "v"
        case type, time, actor, item, objects, keys, commitment, annotation, grant, sealed, requester, served, notice
        case by, subject, roster, threshold, approvals
        case recoveryKey = "recovery_key"
        case recoverySignature = "recovery_sig"
        case boxKey = "box_key"
        case previousBoxKey = "previous_box_key"
    }

    /// One administrator's approval of a roster change: their Ed25519 signature over the change's
    /// ``RosterStatement``.
    package struct Approval: Codable, Sendable, Equatable {
        /// The approving member.
        package var by: MemberID
        /// Their signature, base64.
        package var signature: String

        enum CodingKeys: String, CodingKey {
            case by
            case signature = "sig"
        }

        package init(by: MemberID, signature: String) {
            self.by = by
            self.signature = signature
        }
    }

    /// Every object the event names, given the decoded chunk list where there is one.
    package func namedObjects(chunkList: [ObjectRef] = []) -> [ObjectRef] {
        var refs = [annotation, sealed, notice].compactMap { $0 }
        guard let objects else { return refs }
        refs += [objects.meta] + [objects.content].compactMap { $0 }
        if let list = objects.chunkList { refs.append(list) }
        refs += objects.chunks ?? chunkList
        return refs
    }

    /// Encodes, signs and frames the event as journal entry bytes: signed by the archive's `key`, and cosigned
    /// by the acting member's key when the event names one (``by``).
    package func entryBytes(signedBy key: SigningKey, member: SigningKey? = nil) throws -> [UInt8] {
        precondition((by == nil) == (member == nil), "an event names its member exactly when the member signs it")
        let body = try body()
        // Every debug build and test run checks the hand-written body against JSONEncoder's (a field added to
        // `Event` but not to `body()` fails here at once); release builds trust the tests.
        assert(body == (try? Array(Self.encoder.encode(self))), "Event.body() differs from JSONEncoder's output")
        return SignedEnvelope.signing(
            body,
            domain: Self.signatureDomain,
            with: key,
            cosigner: member.map { ($0, Self.memberSignatureDomain) }
        ).bytes
    }

    /// Signs `events` as ``entryBytes(signedBy:member:)`` does, the work spread over the cores in chunks (two
    /// Ed25519 signatures an event in an archive with members: in parallel they cost what one did serially).
    ///
    /// Four chunks a core, of at least 16 events: on a machine whose cores other work shares, a core that is
    /// taken away leaves a quarter of its share for the others to pick up, not all of it.
    package static func entries(
        of events: [Event],
        signedBy key: SigningKey,
        member: SigningKey?
    ) async throws -> [[UInt8]] {
        let cores = Swift.max(1, ProcessInfo.processInfo.activeProcessorCount)
        guard events.count >= 32, cores > 1 else {
            return try events.map { try $0.entryBytes(signedBy: key, member: member) }
        }
        let chunk = Swift.max(16, (events.count + 4 * cores - 1) / (4 * cores))
        return try await withThrowingTaskGroup(of: (Int, [[UInt8]]).self) { group in
            for start in stride(from: 0, to: events.count, by: chunk) {
                let part = Array(events[start..<Swift.min(events.count, start + chunk)])
                group.addTask { (start, try part.map { try $0.entryBytes(signedBy: key, member: member) }) }
            }
            var parts: [(Int, [[UInt8]])] = []
            for try await part in group { parts.append(part) }
            return parts.sorted { $0.0 < $1.0 }.flatMap(\.1)
        }
    }

    /// Parses entry bytes and checks the archive's signature against `publicKey`.
    ///
    /// An event that names its member (``by``) must carry a second signature line and one that does not must
    /// not; whether that signature is the member's is a question for the roster (``Roster``), which `verify`
    /// asks.
    ///
    /// - Throws: ``ArchiveError`` (damaged) when the entry is malformed or the signature is invalid.
    package static func parse(_ entry: [UInt8], publicKey: [UInt8]) throws -> Event {
        try parseEnvelope(entry, publicKey: publicKey).event
    }

    /// Parses entry bytes as ``parse(_:publicKey:)`` does, returning the envelope too.
    package static func parseEnvelope(
        _ entry: [UInt8],
        publicKey: [UInt8]
    ) throws -> (event: Event, envelope: SignedEnvelope) {
        guard SignedEnvelope.split(entry) != nil else {
            throw ArchiveError(.damaged, "a journal entry has no signature line", fix: "run custody verify")
        }
        guard
            let envelope = SignedEnvelope.parse(entry, maxBytes: Journal.maxEntryBytes, allowingCosignature: true),
            envelope.isSigned(domain: signatureDomain, by: publicKey)
        else {
            throw ArchiveError(.damaged, "a journal entry has an invalid signature", fix: "run custody verify")
        }
        let event: Event
        do {
            event = try JSONDecoder().decode(Event.self, from: Data(envelope.body))
        } catch {
            throw ArchiveError(.damaged, "a journal entry is not a valid event", fix: "run custody verify")
        }
        guard (event.by == nil) == (envelope.cosignature == nil) else {
            throw ArchiveError(
                .damaged,
                event.by == nil
                    ? "a journal entry has a member signature but names no member"
                    : "a journal entry names a member but has no member signature",
                fix: "run custody verify"
            )
        }
        return (event, envelope)
    }

    /// The evidence commitment of DESIGN.md.
    package static func commitment(nonce: [UInt8], sha256: [UInt8], size: Int64) -> String {
        var hasher = SHA256Hasher()
        hasher.update(Array("custody/commit/v1".utf8))
        hasher.update(nonce)
        hasher.update(sha256)
        hasher.update(bigEndianBytes(UInt64(size)))
        return Encoding.hex(hasher.finalize())
    }

    static var encoder: JSONEncoder { JSONFormat.compactEncoder() }
}

/// Decodes a public chunk-list object.
package func decodeChunkList(_ bytes: [UInt8]) -> [ObjectRef]? {
    guard bytes.count % 40 == 0 else { return nil }
    var refs: [ObjectRef] = []
    refs.reserveCapacity(bytes.count / 40)
    var i = 0
    while i < bytes.count {
        let name = ObjectName(hex: Encoding.hex(bytes[i..<(i + 32)]))
        let size = Int64(bitPattern: bigEndianValue(bytes[(i + 32)..<(i + 40)]))
        guard let name, size >= 0 else { return nil }
        refs.append(ObjectRef(name: name, size: size))
        i += 40
    }
    return refs
}

/// Encodes a public chunk-list object.
package func encodeChunkList(_ refs: [ObjectRef]) -> [UInt8] {
    var out: [UInt8] = []
    out.reserveCapacity(refs.count * 40)
    for ref in refs {
        out += ref.name.bytes
        out += bigEndianBytes(UInt64(ref.size))
    }
    return out
}

extension Event {
    /// The kind of a custody event: its `type` field (Docs/FORMAT.md lists each kind's fields).
    ///
    /// An extensible set rather than a closed enum: a journal written by a later version may hold kinds this
    /// one does not know, which still parse, verify and are shown by name.
    package struct Kind: RawRepresentable, Hashable, Sendable, Codable, CustomStringConvertible {
        /// The name written in the event.
        package let rawValue: String

        package init(rawValue: String) { self.rawValue = rawValue }

        package var description: String { rawValue }

        /// An item ingested: its objects, wrapped keys and evidence commitment.
        package static let ingest = Kind(rawValue: "ingest")
        /// An item received from another body under a grant, with its sealed provenance.
        package static let `import` = Kind(rawValue: "import")
        /// Plaintext of an item written out of the archive.
        package static let extract = Kind(rawValue: "extract")
        /// Tags added to or removed from an item (sealed).
        package static let tag = Kind(rawValue: "tag")
        /// A note on an item (sealed).
        package static let note = Kind(rawValue: "note")
        /// A grant made to another body.
        package static let grant = Kind(rawValue: "grant")
        /// A grant revoked by this archive.
        package static let revoke = Kind(rawValue: "revoke")
        /// A grant's objects served to its grantee (one per pull session).
        package static let access = Kind(rawValue: "access")
        /// The passphrase guarding the keys changed.
        package static let passphrase = Kind(rawValue: "passphrase")
        /// A granter's verified revocation notice for a grant this archive received.
        package static let revocationReceived = Kind(rawValue: "revocation-received")
        /// A member joined the roster (the first one founds it).
        package static let memberAdd = Kind(rawValue: "member-add")
        /// A member's role changed.
        package static let memberRole = Kind(rawValue: "member-role")
        /// A member left the roster.
        package static let memberRemove = Kind(rawValue: "member-remove")
        /// The archive's secrets were split into recovery shares; the event names the split's recovery key.
        package static let recoverySplit = Kind(rawValue: "recovery-split")
        /// An administrator enrolled by a threshold of recovery shares, signed by the split's recovery key.
        package static let recovery = Kind(rawValue: "recovery")

        /// The archive's content secrets were replaced (`custody keys rotate`): the event names the new box key and
        /// the one it replaces, and seals the reason; the archive's signing key signing it is the key-transition
        /// statement peers follow (Docs/LEDGER.md section 19).
        package static let keyRotation = Kind(rawValue: "key-rotation")
        /// An item's keys wrapped anew to the box key of the latest `key-rotation` (its `keys` field).
        package static let rewrap = Kind(rawValue: "rewrap")

        /// Kinds that change the roster (and are checked by its rules, not as ordinary events).
        package var changesRoster: Bool {
            self == .memberAdd || self == .memberRole || self == .memberRemove || self == .recoverySplit
                || self == .recovery
        }

        /// Kinds that bring an item into the archive.
        package var addsItem: Bool { self == .ingest || self == .import }
        /// Kinds that annotate an item (opened with its K_meta).
        package var annotates: Bool { self == .tag || self == .note }
    }
}

extension Event {
    /// An event of `type` with the fields every event has; the others are set by whoever records it.
    package init(type: Kind, time: String, actor: String, item: ItemID?) {
        self.init(type: type, time: time, actor: actor, item: item, objects: nil)
    }
}
