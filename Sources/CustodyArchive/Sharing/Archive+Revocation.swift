import CustodyCrypto
import CustodyStorage
import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// A **revocation notice** (Docs/SHARING.md section 2, Docs/PROTOCOL.md section 3): the granter's signed `revoke`
/// event of one grant, with its inclusion proof against the granter's signed checkpoint — what a granter's node
/// answers (410) to the grantee of a revoked grant, and what `grant revoke -o` writes for offline delivery.
///
/// One JSON object (at most ``maxBytes``):
/// `{"checkpoint", "entry", "format": "custody-revocation/v1", "grant", "index", "proof": [...], "revoked_at"}`.
package struct RevocationNotice: Codable, Sendable, Equatable {
    /// The format tag.
    package static let formatName = "custody-revocation/v1"
    /// The largest notice read (bounds every allocation before parsing).
    package static let maxBytes = 128 * 1024
    /// The largest `entry` (a `revoke` event is a few hundred bytes).
    static let maxEntryBytes = 16 * 1024
    /// The most proof hashes (a tree of 2^64 leaves needs 64).
    static let maxProofHashes = 64

    /// ``formatName``.
    package var format: String
    /// The revoked grant's id.
    package var grant: String
    /// The `revoke` event's time (must equal the event's own `time`).
    package var revokedAt: String
    /// The event's index in the granter's log.
    package var index: Int
    /// The journal entry bytes (event body, newline, signature), base64.
    package var entry: String
    /// The RFC 9162 audit path from the entry to the checkpoint's root, base64 hashes, leaf to root.
    package var proof: [String]
    /// The granter's signed checkpoint note (C2SP tlog-checkpoint, with any cosignatures).
    package var checkpoint: String

    enum CodingKeys: String, CodingKey {
        case format, grant, index, entry, proof, checkpoint
        case revokedAt = "revoked_at"
    }

    /// The notice's bytes as sent and stored: sorted keys, one line.
    package func encoded() throws -> [UInt8] { try Array(Event.encoder.encode(self)) }

    /// Parses a notice's form (size, format, id, bounds) without checking any signature; `nil` when it is not
    /// one. Every check of ``Archive/verifyRevocationNotice(_:grant:)`` that needs no key is made here.
    package static func parse(_ bytes: [UInt8]) -> RevocationNotice? {
        guard bytes.count <= maxBytes, let notice = try? JSONDecoder().decode(Self.self, from: Data(bytes)),
            notice.format == formatName, OutsideInput.isID(notice.grant), notice.index >= 0,
            notice.entry.utf8.count <= maxEntryBytes * 4 / 3 + 4, notice.proof.count <= maxProofHashes,
            notice.checkpoint.utf8.count <= Checkpoint.maxNoteBytes, notice.revokedAt.utf8.count <= 40,
            RFC3339.parse(notice.revokedAt) != nil
        else { return nil }
        return notice
    }
}

/// A revocation this archive received and verified, as the index holds it and `grant list`/`show` print it.
package struct ReceivedRevocation: Codable, Sendable, Equatable {
    /// When the granter revoked (its `revoke` event's time).
    package var revokedAt: String
    /// The granter's name, origin and fingerprint (from the stored signed grant).
    package var revokedBy: String
    package var revokedByOrigin: String
    package var revokedByFingerprint: String
    /// When this archive received the notice (its `revocation-received` event's time).
    package var receivedAt: String
    /// The `revoke` event's index in the granter's log.
    package var entry: Int
    /// The object holding the notice, hex.
    package var notice: String
    /// The position of this archive's `revocation-received` event.
    package var seq: Int
    /// For a grant received as a re-share: the ancestor grant whose revocation this is (it ends this one too).
    package var ancestor: String?

    enum CodingKeys: String, CodingKey {
        case entry, notice, seq, ancestor
        case revokedAt = "revoked_at"
        case revokedBy = "revoked_by"
        case revokedByOrigin = "revoked_by_origin"
        case revokedByFingerprint = "revoked_by_fingerprint"
        case receivedAt = "received_at"
    }
}

/// A notice that verified: the grant it revokes, as stored here, and the granter's event.
package struct VerifiedRevocation: Sendable {
    /// The grant (stored here, received from the granter).
    package var grant: Grant
    /// Its id and the hash of the stored signed grant.
    package var reference: GrantReference
    /// The granter's `revoke` event.
    package var event: Event
    /// The notice, as received.
    package var notice: RevocationNotice
    /// Its bytes, as they will be stored.
    package var bytes: [UInt8]
    /// The grants received here that re-share the revoked grant (it is one of their ancestors).
    package var descendants: [String]
}

extension ArchiveContext {
    /// The revocation notice of a grant this archive made and revoked: its `revoke` entry, proved against the
    /// newest cosigned checkpoint that covers it, else the latest one.
    ///
    /// - Throws: ``ArchiveError``: not found when the grant is not one of this archive's revoked grants.
    package func revocationNotice(grant id: String) async throws -> [UInt8] {
        guard OutsideInput.isID(id), let summary = try await index().grant(id), summary.direction == .outgoing,
            summary.revokedAt != nil
        else {
            throw ArchiveError(.notFound, "no revoked grant \(id) made by this archive", fix: "check the grant id")
        }
        let (_, signed) = try await storedGrant(id)
        let reference = GrantReference(id: id, hash: Grant.hash(signed))
        var found: (index: Int, bytes: [UInt8], time: String)?
        func take(_ entry: JournalEntry) throws {
            guard found == nil, let event = try? Event.parse(entry.bytes, publicKey: signingPublicKey),
                event.type == .revoke, event.grant == reference
            else { return }
            found = (entry.index, entry.bytes, event.time)
        }
        if let position = try await index().revokeEntry(id) {
            _ = try journal.scan(from: position, limit: 1, take)
        }
        if found == nil {
            // An index built before it recorded where revoke entries are (reindex records them): read the journal.
            _ = try journal.scan(from: .start) { try take($0) }
        }
        guard let found else {
            throw ArchiveError(.damaged, "the journal has no revoke event of grant \(id)", fix: "run custody verify")
        }
        guard var checkpoint = try ledger.latestCheckpoint(), checkpoint.size > found.index else {
            throw ArchiveError(
                .damaged,
                "the log has no checkpoint covering the revocation of \(id)",
                fix: "run custody checkpoint --sign"
            )
        }
        if let cosigned = try await cosignedCheckpoint(), cosigned.size > found.index { checkpoint = cosigned }
        let proof = try ledger.inclusionProof(index: found.index, entry: found.bytes, at: checkpoint)
        return try RevocationNotice(
            format: RevocationNotice.formatName,
            grant: id,
            revokedAt: found.time,
            index: found.index,
            entry: Encoding.base64(found.bytes),
            proof: proof.proof.map { Encoding.base64($0) },
            checkpoint: checkpoint.note
        ).encoded()
    }

    /// Checks a revocation notice from outside against what this archive knows: the grant must be one it
    /// received and holds (`grants/<id>.grant`), the granter a body in its registry with the grant's signing key
    /// and origin; the checkpoint signed by that body's log key; the entry proved in it; the entry signed by that
    /// body's signing key; and the event a `revoke` of exactly the stored grant (id and hash), at the notice's time.
    ///
    /// - Parameters:
    ///   - bytes: The notice, as received.
    ///   - expected: The grant the notice must be about (the one the peer refused), if any.
    /// - Returns: The grant, its reference, the granter's event and the notice.
    /// - Throws: ``ArchiveError``: bad input for a malformed notice, not found when the grant is not held here,
    ///   not authorised when its granter is not a known body, damaged (verification failed, exit 1) when a
    ///   signature, the proof or the grant does not match.
    package func verifyRevocationNotice(
        _ bytes: [UInt8],
        grant expected: String? = nil
    ) async throws -> VerifiedRevocation {
        func forged(_ why: String) -> ArchiveError {
            ArchiveError(
                .revocationInvalid,
                "the revocation notice does not verify: \(why); nothing was recorded",
                fix: "ask the granting body for its revocation notice over a channel you trust"
            )
        }
        guard let notice = RevocationNotice.parse(bytes) else {
            throw ArchiveError(
                .revocationMalformed,
                "the revocation notice is malformed (not a \(RevocationNotice.formatName) document of at most \(RevocationNotice.maxBytes) bytes)",
                fix: "ask the granting body for its revocation notice again"
            )
        }
        if let expected, notice.grant != expected { throw forged("it names grant \(notice.grant), not \(expected)") }
        let indexed = try await index()
        let received = try indexed.grants().filter { $0.direction == .incoming }.compactMap { summary in
            try indexed.grantHash(summary.id).map { (summary.id, $0) }
        }
        let descendants = grantsReSharing(notice.grant, among: received)
        let held: (grant: Grant, signed: [UInt8])
        if let summary = try await index().grant(notice.grant), summary.direction == .incoming {
            held = try await storedGrant(notice.grant)
        } else if let ancestor = descendants.first?.ancestor {
            held = ancestor
        } else {
            throw ArchiveError(
                .notFound,
                "the revocation notice names grant \(notice.grant), which this archive did not receive",
                fix: "nothing to record: this archive holds nothing under that grant"
            )
        }
        let (grant, signed) = held
        let reference = GrantReference(id: grant.id, hash: Grant.hash(signed))
        guard
            let body = try knownBodies().first(where: {
                $0.identity.signingKey == grant.granter.signingKey && $0.identity.origin == grant.granter.origin
            }), let logKey = body.logKey, let signingKey = body.signingKey
        else {
            throw ArchiveError(
                .revocationUnverifiable,
                "the revocation notice of grant \(grant.id) cannot be checked: its granter \(grant.granter.origin) is not a body this archive knows; nothing was recorded",
                fix:
                    "trust the granter's identity (custody peer add or witness add, fingerprint compared out of band), then pull again"
            )
        }
        guard
            let checkpoint = Checkpoint.verified(
                notice.checkpoint,
                origin: body.identity.origin,
                publicKey: logKey.publicKey
            )
        else { throw forged("the checkpoint is not signed by \(body.identity.origin)'s log key") }
        guard let entry = Encoding.bytes(base64: notice.entry), entry.count <= RevocationNotice.maxEntryBytes else {
            throw forged("the entry is not base64 of at most \(RevocationNotice.maxEntryBytes) bytes")
        }
        let proof = notice.proof.compactMap { Encoding.bytes(base64: $0) }.filter { $0.count == Merkle.hashByteCount }
        guard proof.count == notice.proof.count, notice.index < checkpoint.size,
            let root = Merkle.root(
                fromInclusionProof: proof,
                leafHash: Merkle.leafHash(entry),
                index: notice.index,
                size: checkpoint.size
            ), constantTimeEqual(root, checkpoint.root)
        else { throw forged("the entry is not proved to be entry \(notice.index) of the signed checkpoint") }
        guard let event = try? Event.parse(entry, publicKey: signingKey) else {
            throw forged("the entry is not signed by \(body.identity.origin)'s signing key")
        }
        guard event.type == .revoke, event.grant == reference else {
            throw forged("the entry is not a revoke event of grant \(grant.id) as stored here")
        }
        guard event.time == notice.revokedAt, event.actor == body.identity.origin else {
            throw forged("its time or actor does not match the signed event")
        }
        return VerifiedRevocation(
            grant: grant,
            reference: reference,
            event: event,
            notice: notice,
            bytes: try notice.encoded(),
            descendants: descendants.map(\.id)
        )
    }

    /// Which of the grants `received` here (id and the hash the log recorded) have grant `ancestor` in their chain of
    /// ancestors (as stored with them, each file checked against the hash its child names), with that ancestor's
    /// signed grant. Reads only grant files: the index may be catching up.
    func grantsReSharing(
        _ ancestor: String,
        among received: [(id: String, hash: String)]
    ) -> [(id: String, ancestor: (grant: Grant, signed: [UInt8]))] {
        guard OutsideInput.isID(ancestor) else { return [] }
        var found: [(id: String, ancestor: (grant: Grant, signed: [UInt8]))] = []
        for (id, hash) in received where id != ancestor {
            storedAncestor(GrantReference(id: id, hash: hash))?.grant.walkAncestors { reference in
                guard let link = storedAncestor(reference) else { return nil }
                guard reference.id != ancestor else {
                    found.append((id, link))
                    return nil
                }
                return link.grant
            }
        }
        return found
    }

    /// What the index holds for a `revocation-received` event: the granter's time and name from the stored notice
    /// and grant (already verified when it was recorded); a notice that cannot be read any more still marks the
    /// grant revoked, at the time it was received (`verify` reports the missing object).
    ///
    /// - Returns: The grant and each grant received here that re-shares it, with what to mark them with.
    func receivedRevocation(
        of event: Event,
        seq: Int,
        received: [(id: String, hash: String)]
    ) async -> [(id: String, revocation: ReceivedRevocation)] {
        guard let reference = event.grant, OutsideInput.isID(reference.id), let ref = event.notice else { return [] }
        let grant = (try? grantPath(reference.id)).flatMap { try? ArchiveFiles.read($0, limit: Grant.maxBytes) }
            .flatMap { try? Grant.parse($0) }
        var revokedAt = event.time
        var entry = -1
        if let bytes = try? await store.read(ref.name, limit: RevocationNotice.maxBytes),
            ObjectName(of: bytes) == ref.name, let notice = RevocationNotice.parse(bytes)
        {
            revokedAt = notice.revokedAt
            entry = notice.index
        }
        let revocation = ReceivedRevocation(
            revokedAt: revokedAt,
            revokedBy: grant?.granter.name ?? "the granter",
            revokedByOrigin: grant?.granter.origin ?? "",
            revokedByFingerprint: grant?.granter.fingerprint ?? "",
            receivedAt: event.time,
            entry: entry,
            notice: ref.name.hex,
            seq: seq
        )
        var marked = [(reference.id, revocation)]
        for descendant in grantsReSharing(reference.id, among: received) {
            var inherited = revocation
            inherited.ancestor = reference.id
            marked.append((descendant.id, inherited))
        }
        return marked
    }

    /// Refuses to import under a grant (or a re-share of a grant) whose revocation this archive received: a bundle
    /// written before the revocation must not bring its items in after it.
    func refuseRevoked(_ grant: Grant, ancestors: [[UInt8]]) async throws {
        let ids = [grant.id] + ancestors.compactMap { try? Grant.parse($0).id }
        for id in ids {
            guard let revocation = try await index().grant(id)?.revocation else { continue }
            throw ArchiveError(
                .grantRevoked,
                "grant \(id == grant.id ? id : "\(grant.id) re-shares \(id), which") was revoked by \(TerminalText.escape(revocation.revokedBy)) at \(revocation.revokedAt) (a verified notice is recorded here)",
                fix: "nothing was imported; ask the granting body for a new grant"
            )
        }
    }

    /// For a grant this archive made as a re-share: the nearest ancestor known here to be revoked (its id and
    /// time) — its node refuses the grant for that reason.
    package func revokedAncestor(of id: String) async -> (grant: String, revokedAt: String)? {
        guard let grant = try? await storedGrant(id).grant else { return nil }
        for ancestor in storedAncestors(of: grant) {
            guard let ancestor, let summary = try? await index().grant(ancestor.id) else { return nil }
            if let revoked = summary.revokedAt { return (ancestor.id, revoked) }
        }
        return nil
    }

    /// The revocation of the grant an imported item came under, when this archive received one.
    package func revocation(ofItem id: String) async throws -> (grant: String, revocation: ReceivedRevocation)? {
        guard let provenance = try await index().provenance(of: id),
            let revocation = try await index().grant(provenance.grant)?.revocation
        else { return nil }
        return (provenance.grant, revocation)
    }

    /// Refuses to extract an item whose grant its granter revoked, unless `despiteRevocation` (then the caller
    /// warns). Revocation cannot take back what was delivered; this keeps it from being used by mistake.
    ///
    /// - Returns: The revocation, when there is one and `despiteRevocation` lets the extract go on.
    package func checkExtractAllowed(
        _ id: String,
        despiteRevocation: Bool
    ) async throws -> (String, ReceivedRevocation)? {
        let item = try await resolveItem(id)
        guard let (grant, revocation) = try await revocation(ofItem: item.id) else { return nil }
        guard despiteRevocation else {
            throw ArchiveError(
                .grantRevoked,
                "item \(item.id) came under grant \(grant), which \(TerminalText.escape(revocation.revokedBy)) revoked at \(revocation.revokedAt)",
                fix:
                    "the granter has withdrawn its consent to your use; --despite-revocation extracts it anyway (recorded)"
            )
        }
        return (grant, revocation)
    }
}

extension Archive.Unlocked {

    /// Records a verified revocation: the notice stored as an object, and a `revocation-received` event naming
    /// the grant and the notice object. Recording the same grant's revocation twice records nothing more.
    ///
    /// - Returns: The revocation as the index now holds it.
    @discardableResult
    package func recordRevocation(_ verified: VerifiedRevocation) async throws -> ReceivedRevocation {
        let targets = [verified.grant.id] + verified.descendants
        let index = try await index()
        let summaries = try targets.compactMap { try index.grant($0) }
        if let existing = summaries.first?.revocation, summaries.allSatisfy({ $0.revocation != nil }) {
            return existing
        }
        let name = ObjectName(of: verified.bytes)
        try await store.putObject(verified.bytes, as: name)
        let event = Event(
            type: .revocationReceived,
            time: RFC3339.now(),
            actor: config.origin,
            grant: verified.reference,
            notice: ObjectRef(name: name, size: Int64(verified.bytes.count))
        )
        _ = try await record([event])
        let updated = try await self.index()
        guard let recorded = try targets.lazy.compactMap({ try updated.grant($0)?.revocation }).first else {
            throw ArchiveError(.damaged, "the received revocation is not indexed", fix: "run custody reindex")
        }
        return recorded
    }
}
