import CustodyCrypto
import CustodyStorage
import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// One grant as `grant list` shows it.
package struct GrantSummary: Sendable, Equatable, Codable {
    /// Grant id.
    package var id: String
    /// Made by this archive or imported.
    package var direction: Direction
    /// The other body's name.
    package var party: String
    /// Its fingerprint.
    package var partyFingerprint: String
    /// Number of items.
    package var items: Int
    /// When it was made.
    package var created: String
    /// Not valid after.
    package var expires: String
    /// What it releases of each item.
    package var permission: Grant.Permission
    /// May be re-shared.
    package var reshare: Bool
    /// When it was revoked, if it was (for a grant received: when its granter revoked it, as a verified
    /// revocation notice showed).
    package var revokedAt: String?
    /// A grant or a (possibly anonymous) submission.
    package var kind: Grant.Kind
    /// For a grant received: the verified revocation notice this archive recorded, if any.
    package var revocation: ReceivedRevocation?

    /// Whose grant it is; its Codable form (in the index and in `grant list --json`) is the raw value.
    package enum Direction: String, Codable, Sendable, CaseIterable {
        /// `out`: made by this archive.
        case outgoing = "out"
        /// `in`: imported from a bundle.
        case incoming = "in"
    }
}

extension ArchiveContext {

    /// The sealed annotation objects (tags and notes) of each item, in log order: one read of the journal from the
    /// earliest item's entry on, whatever the number of items.
    func annotationObjects(of items: [IndexedItem]) async throws -> [String: [ObjectRef]] {
        var wanted = Set<Int>()
        for item in items {
            wanted.formUnion(try await index().events(of: item.id).filter { $0.annotation != nil }.map(\.seq))
        }
        guard !wanted.isEmpty, let first = items.min(by: { $0.seq < $1.seq }) else { return [:] }
        var refs: [String: [ObjectRef]] = [:]
        try journal.scan(from: JournalPosition(count: first.seq, offset: first.entryOffset)) { entry in
            guard wanted.contains(entry.index) else { return }
            let event = try Event.parse(entry.bytes, publicKey: signingPublicKey)
            if let ref = event.annotation, let item = event.item { refs[item.hex, default: []].append(ref) }
        }
        return refs
    }

    /// A stored signed grant made by this archive, or imported into it.
    package func storedGrant(_ id: String) async throws -> (grant: Grant, signed: [UInt8]) {
        // A whole id is looked up directly; a prefix needs the list.
        let index = try await index()
        let exact = id.utf8.count == 32 ? try index.grant(id.lowercased()).map { [$0] } : nil
        let matches = try exact ?? index.grants().filter { $0.id.hasPrefix(id.lowercased()) }
        guard id.utf8.count >= 8, let summary = matches.first else {
            throw ArchiveError(.notFound, "no grant \(id)", fix: "list grants with custody grant list")
        }
        guard matches.count == 1 else {
            throw ArchiveError(.usage, "the grant id prefix \(id) is ambiguous", fix: "give more characters")
        }
        // The file must be the grant the log recorded: grants/ is only as trustworthy as whoever can write to it.
        let signed = try ArchiveFiles.read(try grantPath(summary.id), limit: Grant.maxBytes)
        guard let hash = try index.grantHash(summary.id), Grant.hash(signed) == hash else {
            throw ArchiveError(
                .damaged,
                "grants/\(summary.id).grant is not the grant this archive's log recorded",
                fix: "run custody verify and restore the grants/ folder from a backup"
            )
        }
        return (try Grant.parse(signed), signed)
    }

    /// Where the signed grant `id` is kept. Grant ids are the only outside values a path is made from here, and
    /// only once they are 32 lowercase hex digits.
    func grantPath(_ id: String) throws -> String {
        guard OutsideInput.isID(id) else {
            throw ArchiveError(
                .badInput,
                "\(TerminalText.escape(String(id.prefix(64)))) is not a grant id (32 lowercase hex digits)",
                fix: "give a grant id as custody grant list shows it"
            )
        }
        return grantsDirectory + "/\(id).grant"
    }

    /// Stores signed grant bytes as `grants/<id>.grant`, never replacing a different grant stored under that id:
    /// the same bytes again are a no-op; other bytes are refused, whoever signed them.
    ///
    /// - Throws: ``ArchiveError``: damaged for a grant that does not parse; not authorised when another grant is
    ///   stored under its id; cannot create when it cannot be written.
    func storeSignedGrant(_ signed: [UInt8]) throws {
        guard let path = try storablePath(signed) else { return }
        let code = POSIX.makeDirectories(grantsDirectory)
        guard code == 0 else { throw ArchiveError.writeFailed("cannot create \(grantsDirectory)", errno: code) }
        try ArchiveFiles.writeAtomically(path, signed)
    }

    /// Where signed grant bytes would be stored, `nil` when exactly they are stored already.
    ///
    /// - Throws: ``ArchiveError`` (not authorised) when another grant is stored under its id.
    func storablePath(_ signed: [UInt8]) throws -> String? {
        let grant = try Grant.parse(signed)
        let path = try grantPath(grant.id)
        guard POSIX.lstatPath(path) != nil else { return path }
        guard let existing = try? ArchiveFiles.read(path, limit: Grant.maxBytes), existing == signed else {
            throw ArchiveError(
                .notAuthorised,
                "another grant is already stored under the id \(grant.id); a stored grant is never replaced",
                fix: "do not import it: it reuses the id of a grant this archive holds; ask its sender"
            )
        }
        return nil
    }
}

extension ArchiveContext {
}

/// Durations and times for `--expires`: `90d`, `12h`, `30m`, or an RFC 3339 time.
package enum Expiry {
    /// The absolute time `text` means, counted from `now`; `nil` when it is neither form.
    package static func resolve(_ text: String, now: Int = Int(time(nil))) -> String? {
        if let absolute = RFC3339.parse(text) { return RFC3339.format(absolute) }
        guard let unit = text.last, let count = Int(text.dropLast()), count > 0, count <= 36_500 * 24 * 60 else {
            return nil
        }
        let seconds: Int
        switch unit {
        case "d": seconds = count * 86_400
        case "h": seconds = count * 3_600
        case "m": seconds = count * 60
        default: return nil
        }
        return RFC3339.format(now + seconds)
    }
}

extension Archive.Unlocked {

    /// Makes, signs, stores and records a grant (a `grant` event).
    ///
    /// - Returns: The grant and what the query matched but left out.
    /// - Throws: ``ArchiveError``: bad input when no item remains in scope or the expiry is not in the future.
    package func createGrant(_ request: GrantRequest) async throws -> (grant: Grant, signed: [UInt8], scope: GrantScope)
    {
        // The role first: a refused grant writes nothing (no grant file, no objects).
        try authorize(member, for: [.share])
        let scope = try await resolveScope(request)
        if scope.items.isEmpty, let (parent, summary) = scope.revokedParents.min(by: { $0.key < $1.key }) {
            let by = summary.revocation.map { TerminalText.escape($0.revokedBy) } ?? "its granter"
            throw ArchiveError(
                .grantRevoked,
                "the parent grant \(parent) was revoked by \(by) at \(summary.revokedAt ?? "?"); its items cannot be re-shared",
                fix: "ask \(by) for a new grant"
            )
        }
        guard !scope.items.isEmpty else {
            throw ArchiveError(
                .badInput,
                "no item is in scope (\(scope.excluded.count) matched but were excluded)",
                fix: "check the scope with --dry-run"
            )
        }
        guard let expires = RFC3339.parse(request.expires), expires > Int(time(nil)) else {
            throw ArchiveError(
                .usage,
                "the expiry \(request.expires) is not in the future",
                fix: "give --expires 90d or a later time"
            )
        }
        guard !request.purpose.trimmingCharacters(in: .whitespaces).isEmpty, request.purpose.utf8.count <= 4096 else {
            throw ArchiveError(.usage, "the purpose is empty or over 4096 bytes", fix: "give --purpose \"…\"")
        }
        guard let granteeBox = Encoding.bytes(base64: request.grantee.boxKey), granteeBox.count == 32 else {
            throw ArchiveError(.badInput, "the grantee's box key is malformed", fix: "ask for a fresh identity file")
        }
        var parent: GrantReference?
        var permissionOnlyMetadata = request.metadataOnly
        if let parentID = scope.parent {
            let (parentGrant, parentSigned) = try await storedGrant(parentID)
            guard expires <= (RFC3339.parse(parentGrant.expires) ?? 0) else {
                throw ArchiveError(
                    .outlastsParent,
                    "a re-share cannot outlast its parent grant \(parentID), which expires at \(parentGrant.expires)",
                    fix: "give --expires \(parentGrant.expires) or earlier"
                )
            }
            try await checkUsable(
                parentGrant,
                what: "the parent grant \(parentID)",
                fix: "ask its granter for a new grant"
            )
            if parentGrant.permission == .metadata { permissionOnlyMetadata = true }
            parent = GrantReference(id: parentGrant.id, hash: Grant.hash(parentSigned))
        }
        var items: [GrantedItem] = []
        let annotations = try await annotationObjects(of: scope.items.map(\.item))
        for (indexed, _) in scope.items {
            let ingest = try ingestEvent(of: indexed)
            var granted = try await grantedItem(
                indexed,
                ingest: ingest,
                metadataOnly: permissionOnlyMetadata,
                to: granteeBox
            )
            granted.objects += annotations[indexed.id] ?? []
            items.append(granted)
        }
        let termsJSON = try Array(Event.encoder.encode(Self.terms(of: request, scope: scope)))
        let me = try identity()
        let grant = Grant(
            id: ItemID.random().hex,
            created: RFC3339.now(),
            expires: RFC3339.format(expires),
            granter: GrantParty(me),
            grantee: GrantParty(request.grantee),
            permission: permissionOnlyMetadata ? .metadata : .content,
            reshare: request.reshare,
            parent: parent,
            kind: request.kind,
            items: items,
            termsForGrantee: Encoding.base64(try BoxKey.seal(termsJSON, to: granteeBox)),
            termsForGranter: Encoding.base64(try BoxKey.seal(termsJSON, to: boxPublicKey))
        )
        let signed = try grant.signed(by: keys.signing)
        // The signed grant is durable before the event that names it.
        try storeSignedGrant(signed)
        let reference = GrantReference(id: grant.id, hash: Grant.hash(signed))
        _ = try await record([Event(type: .grant, time: grant.created, actor: config.origin, grant: reference)])
        return (grant, signed, scope)
    }

    /// The human terms of a grant: its purpose, the query its scope was resolved from, and the consent override
    /// with the items it concerns.
    private static func terms(of request: GrantRequest, scope: GrantScope) -> GrantTerms {
        var query: [String: String] = [:]
        query["case"] = request.caseID
        if !request.tags.isEmpty { query["tags"] = request.tags.joined(separator: ",") }
        if !request.items.isEmpty { query["items"] = request.items.joined(separator: ",") }
        query["collected_after"] = request.collectedAfter
        query["collected_before"] = request.collectedBefore
        query["max_sensitivity"] = request.maxSensitivity
        var terms = GrantTerms(purpose: request.purpose, query: query)
        let overridden = scope.items.filter {
            $0.item.metadata.consent.map { Archive.noShareConsents.contains($0.lowercased()) } ?? false
        }
        if let reason = request.overrideConsentReason, !overridden.isEmpty {
            terms.consentOverride = GrantTerms.ConsentOverride(items: overridden.map(\.item.id), reason: reason)
        }
        return terms
    }

    /// The released objects (without its annotations) and wrapped keys of one item.
    func grantedItem(
        _ indexed: IndexedItem,
        ingest: Event,
        metadataOnly: Bool,
        to recipient: [UInt8]
    ) async throws
        -> GrantedItem
    {
        guard let item = ingest.item, let objects = ingest.objects, let wrapped = ingest.keys else {
            throw ArchiveError(.damaged, "the ingest event of \(indexed.id) is incomplete", fix: "run custody verify")
        }
        var meta = try keys.unwrap(wrapped.meta, item: item)
        defer { wipe(&meta) }
        var released = [objects.meta]
        var grantKeys = GrantKeys(meta: try ArchiveKeys.wrap(meta, item: item, to: recipient))
        if !metadataOnly {
            guard let contentRef = objects.content, let wrappedContent = wrapped.content else {
                throw ArchiveError(
                    .metadataOnly,
                    "item \(indexed.id) was shared with this archive as metadata only; its content cannot be granted",
                    fix: "grant it with --metadata-only"
                )
            }
            var content = try keys.unwrap(wrappedContent, item: item)
            defer { wipe(&content) }
            grantKeys.content = try ArchiveKeys.wrap(content, item: item, to: recipient)
            released.append(contentRef)
            var chunkList: [ObjectRef] = []
            if let listRef = objects.chunkList {
                released.append(listRef)
                guard let bytes = try await store.read(listRef.name, limit: 64 << 20), let list = decodeChunkList(bytes)
                else {
                    throw ArchiveError(
                        .damaged,
                        "the chunk list of \(indexed.id) is missing",
                        fix: "run custody verify"
                    )
                }
                chunkList = list
            }
            var seen = Set(released.map(\.name))
            for chunk in (objects.chunks ?? chunkList) where seen.insert(chunk.name).inserted { released.append(chunk) }
        }
        return GrantedItem(id: item, objects: released, keys: grantKeys)
    }

    /// The terms of a grant this archive made or received, decrypted.
    package func terms(of grant: Grant) throws -> GrantTerms {
        let mine = grant.granter.signingKey == config.signingKey
        guard let sealed = Encoding.bytes(base64: mine ? grant.termsForGranter : grant.termsForGrantee) else {
            throw ArchiveError(.damaged, "the grant's terms are malformed", fix: "run custody verify")
        }
        guard let opened = try? keys.open(sealed) else {
            throw ArchiveError(
                .damaged,
                "the grant's terms do not open with this archive's key",
                fix: "run custody verify"
            )
        }
        guard let terms = try? JSONDecoder().decode(GrantTerms.self, from: Data(opened)) else {
            throw ArchiveError(.damaged, "the grant's terms are not valid", fix: "run custody verify")
        }
        return terms
    }

    /// Revokes a grant this archive made (a `revoke` event; the reason is sealed to this archive).
    ///
    /// - Throws: ``ArchiveError``: not found, or bad input when it is already revoked or not this archive's.
    package func revokeGrant(_ id: String, reason: String) async throws -> GrantSummary {
        try Self.checkReason(reason)
        let (grant, signed) = try await storedGrant(id)
        guard grant.granter.signingKey == config.signingKey else {
            throw ArchiveError(
                .badInput,
                "grant \(grant.id) was made by \(grant.granter.name), not by this archive",
                fix: "only its granter can revoke it"
            )
        }
        if let summary = try await index().grants().first(where: { $0.id == grant.id }), let when = summary.revokedAt {
            throw ArchiveError(.badInput, "grant \(grant.id) was already revoked at \(when)", fix: "nothing to do")
        }
        // The reason is the granter's to read: sealed to its own box key, stored as an object the event names.
        let event = Event(
            type: .revoke,
            time: RFC3339.now(),
            actor: config.origin,
            grant: GrantReference(id: grant.id, hash: Grant.hash(signed)),
            sealed: try await sealReason(reason)
        )
        _ = try await record([event])
        guard let summary = try await index().grants().first(where: { $0.id == grant.id }) else {
            throw ArchiveError(.damaged, "the revoked grant is not indexed", fix: "run custody reindex")
        }
        return summary
    }
    /// Records that a peer fetched a grant's objects online: one `access` event per (grant, requester, session),
    /// naming the Merkle root of the object names served rather than each object.
    ///
    /// Who pulled is the archive's own to know: the requester's key is sealed to this archive's box key (like a
    /// revoke reason), in an object the event names as `sealed`, so the public log shows only that the grant was
    /// accessed, and when (THREAT-MODEL.md, "Online exchange").
    package func recordAccess(grant reference: GrantReference, requester: [UInt8]) async throws {
        let (grant, _) = try await storedGrant(reference.id)
        let leaves = grant.releasedObjects.map { Merkle.leafHash(Encoding.bytes(hex: $0.name.hex) ?? []) }
        let root = Merkle.subtreeHash(start: 0, count: leaves.count) { leaves[$0] }
        let plain = try Event.encoder.encode(["requester": Encoding.base64(requester)])
        let sealed = try BoxKey.seal(Array(plain), to: boxPublicKey)
        let name = ObjectName(of: sealed)
        try await store.putObject(sealed, as: name)
        let event = Event(
            type: .access,
            time: RFC3339.now(),
            actor: config.origin,
            grant: reference,
            sealed: ObjectRef(name: name, size: Int64(sealed.count)),
            served: Encoding.hex(root)
        )
        _ = try await record([event])
    }

    /// The requester of an `access` event: unsealed from its `sealed` object with this archive's box key, or, for
    /// an event recorded before requesters were sealed, its plain `requester` field.
    package func accessRequester(_ event: Event) async throws -> String? {
        if let plain = event.requester { return plain }
        guard event.type == .access, let ref = event.sealed else { return nil }
        guard let sealed = try await store.read(ref.name, limit: Int(ref.size)), Int64(sealed.count) == ref.size,
            let opened = try? keys.open(sealed),
            let fields = try? JSONDecoder().decode([String: String].self, from: Data(opened))
        else {
            throw ArchiveError(
                .damaged,
                "the sealed requester of an access event does not open",
                fix: "run custody verify"
            )
        }
        return fields["requester"]
    }
}
