import CustodyCrypto
import CustodyStorage
import Foundation
import Synchronization

// The projection: the journal applied to the index, entry by entry, in log order. The index holds nothing the
// journal does not (`reindex` rebuilds it from the journal alone); reads that need it catch it up first.

extension ArchiveContext {
    /// The index, caught up with the journal.
    ///
    /// Entries the index has not seen yet (another command appended them, or one was interrupted between its
    /// journal append and its index update) are applied first; that needs the secrets, so a keyless
    /// ``Archive`` asks its passphrase then, and only then.
    package func index() async throws -> ArchiveIndex {
        let index = try archive.openedIndex.get()
        let position = try index.position()
        let size = journal.byteCount()
        guard position.offset != size else { return index }
        guard position.offset < size else { throw Self.indexAheadOfJournal }
        // Bytes follow the indexed position; only a whole entry among them needs applying (a torn tail left by a
        // crash does not, and must not make a keyless reader ask for the passphrase).
        var pending = false
        _ = try journal.scan(from: position, limit: 1) { _ in pending = true }
        if pending { try await unlocked().catchUpIndex(known: [:]) }
        return index
    }

    static var indexAheadOfJournal: ArchiveError {
        ArchiveError(
            .damaged,
            "the index is ahead of the journal (was the journal restored from an older backup?)",
            fix: "run custody verify, then custody reindex"
        )
    }

    /// Reads the signed grant a `grant` event names and checks it is the one the event hashed.
    func indexedGrant(_ reference: GrantReference, seq: Int) throws -> IndexedGrant {
        guard Encoding.isLowercaseHex(reference.id, count: 32) else {
            throw ArchiveError(.damaged, "log entry \(seq) names a malformed grant id", fix: "run custody verify")
        }
        let signed = try ArchiveFiles.read(try grantPath(reference.id), limit: Grant.maxBytes)
        guard Grant.hash(signed) == reference.hash else {
            throw ArchiveError(
                .damaged,
                "grants/\(reference.id).grant is not the grant log entry \(seq) signed",
                fix: "restore the grants/ folder from a backup"
            )
        }
        let grant = try Grant.parse(signed)
        let outgoing = grant.granter.signingKey == config.signingKey
        let party = outgoing ? grant.grantee : grant.granter
        let summary = GrantSummary(
            id: grant.id,
            direction: outgoing ? .outgoing : .incoming,
            party: !outgoing && grant.kind == .anonymousSubmission ? Archive.anonymousGranter : party.name,
            partyFingerprint: party.fingerprint,
            items: grant.items.count,
            created: grant.created,
            expires: grant.expires,
            permission: grant.permission,
            reshare: grant.reshare,
            revokedAt: nil,
            kind: grant.kind
        )
        return IndexedGrant(seq: seq, summary: summary, hash: reference.hash, items: grant.items.map(\.id.hex))
    }
}

extension Archive.Unlocked {
    /// Applies every journal entry the index has not seen.
    ///
    /// - Parameters:
    ///   - known: Metadata this process already holds in plaintext (saves unwrapping it again).
    ///   - trusted: Entries this process has just signed, with their events (saves a signature check each).
    /// - Returns: For each item applied, the id of the first earlier item with the same content, if any.
    /// - Throws: ``ArchiveError`` when an entry is invalid or the index cannot be written.
    @discardableResult
    func catchUpIndex(
        known: [ItemID: ItemMetadata],
        trusted: [[UInt8]: Event] = [:]
    ) async throws -> [String: String?] {
        let index = try archive.openedIndex.get()
        var duplicates: [String: String?] = [:]
        while true {
            let start = try index.position()
            guard start.offset <= journal.byteCount() else { throw Self.indexAheadOfJournal }
            var batch = IndexBatch(end: start)
            var ingests: [ItemID: Event] = [:]
            var seenGrants = Set<String>()
            var entries: [JournalEntry] = []
            let (end, _) = try journal.scan(from: start, limit: 5000) { entries.append($0) }
            // Entries this process has just signed and appended need no second signature check.
            let events = try entries.map { try trusted[$0.bytes] ?? Event.parse($0.bytes, publicKey: signingPublicKey) }
            let fetched = try await metadata(ofItemsIn: events, known: known)
            for (entry, event) in zip(entries, events) {
                batch.events.append(
                    IndexedEvent(
                        seq: entry.index,
                        type: event.type.rawValue,
                        time: event.time,
                        actor: event.actor,
                        member: event.by?.hex,
                        item: event.item?.hex
                    )
                )
                if event.type.changesRoster {
                    var roster = try batch.roster ?? index.roster() ?? Roster()
                    roster.replay(entry, publicKey: signingPublicKey, origin: config.origin)
                    batch.roster = roster
                }
                if event.type.annotates || (event.type == .extract && event.annotation != nil), let item = event.item {
                    // The item's K_meta opens its annotations: from an ingest earlier in this batch, or the journal.
                    guard let ingest = try ingests[item] ?? index.items(ids: [item.hex]).first.map(ingestEvent(of:))
                    else {
                        throw ArchiveError(
                            .damaged,
                            "log entry \(entry.index) annotates item \(item), which has no earlier ingest event",
                            fix: "run custody verify"
                        )
                    }
                    await batch.annotations.append(
                        IndexedAnnotation(
                            seq: entry.index,
                            item: item.hex,
                            annotation: try annotation(of: event, ingest: ingest)
                        )
                    )
                }
                if event.type == .rewrap, let item = event.item, event.keys != nil {
                    batch.rewraps.append(ItemKeysRecord(itemID: item.hex, seq: entry.index, entryOffset: entry.offset))
                }
                if event.type == .grant, let reference = event.grant {
                    batch.grants.append(try indexedGrant(reference, seq: entry.index))
                }
                if event.type == .revoke, let reference = event.grant {
                    batch.revocations.append((reference.id, event.time, entry.index, entry.offset))
                }
                if event.type == .revocationReceived {
                    // The grants received so far, indexed or in this batch: a revocation reaches their re-shares.
                    let received =
                        try index.grants().filter { $0.direction == .incoming }.compactMap { summary in
                            try index.grantHash(summary.id).map { (summary.id, $0) }
                        } + batch.grants.filter { $0.summary.direction == .incoming }.map { ($0.summary.id, $0.hash) }
                    batch.receivedRevocations += await receivedRevocation(
                        of: event,
                        seq: entry.index,
                        received: received
                    )
                }
                if event.type == .ingest || event.type == .import, let item = event.item {
                    ingests[item] = event
                    var metadata: ItemMetadata
                    if let given = known[item] ?? fetched[item] {
                        metadata = given
                    } else {
                        metadata = try await self.metadata(of: event)
                    }
                    if event.type == .import {
                        let record = try await provenanceRecord(of: event)
                        // The granter's tag changes carry over; its notes stay in the sealed provenance.
                        for annotation in record.annotations where annotation.type == Event.Kind.tag.rawValue {
                            metadata.tags = Set(metadata.tags).union(annotation.add ?? [])
                                .subtracting(annotation.remove ?? []).sorted()
                        }
                        batch.provenance.append((item.hex, record.provenance))
                        if let reference = event.grant, seenGrants.insert(reference.id).inserted {
                            batch.grants.append(try indexedGrant(reference, seq: entry.index))
                        }
                    }
                    batch.items.append(
                        IndexedItem(
                            id: item.hex,
                            seq: entry.index,
                            metadata: metadata,
                            duplicateOf: nil,
                            entryOffset: entry.offset
                        )
                    )
                }
            }
            if end == start { return duplicates }
            batch.end = end
            if let applied = try index.apply(batch, expectedStart: start) {
                duplicates.merge(applied) { $1 }
            }
        }
    }

    /// The sealed metadata of every item that `events` add and `known` lacks, read and opened concurrently (a
    /// rebuild reads one object per item: their reads overlap instead of following one another).
    private func metadata(
        ofItemsIn events: [Event],
        known: [ItemID: ItemMetadata]
    ) async throws -> [ItemID: ItemMetadata] {
        let wanted = events.filter {
            ($0.type == .ingest || $0.type == .import) && $0.item.map { known[$0] == nil } == true
        }
        guard !wanted.isEmpty else { return [:] }
        let found = Mutex<[ItemID: ItemMetadata]>([:])
        let context = self
        do {
            try await wanted.concurrentForEach(width: store.checkConcurrency) { event in
                guard let item = event.item else { return }
                let metadata = try await context.metadata(of: event)
                found.withLock { $0[item] = metadata }
            }
        } catch {
            throw ArchiveError(error)
        }
        return found.withLock { $0 }
    }

    /// Decrypts the sealed provenance an `import` event names.
    func provenanceRecord(of event: Event) async throws -> ProvenanceRecord {
        guard let item = event.item, let ref = event.annotation else {
            throw ArchiveError(.damaged, "an import event has no provenance", fix: "run custody verify")
        }
        var key = try metaKey(of: event)
        defer { wipe(&key) }
        return try await openStoredPart(
            ref.name,
            kind: .provenance,
            item: item,
            key: key,
            as: ProvenanceRecord.self,
            what: "provenance"
        )
    }

    /// Decrypts the metadata part an ingest event names.
    func metadata(of event: Event) async throws -> ItemMetadata {
        guard let item = event.item, let objects = event.objects, let wrapped = event.keys else {
            throw ArchiveError(.damaged, "an ingest event is incomplete", fix: "run custody verify")
        }
        var key = try keys.unwrap(wrapped.meta, item: item)
        defer { wipe(&key) }
        return try await openStoredPart(
            objects.meta.name,
            kind: .meta,
            item: item,
            key: key,
            as: ItemMetadata.self,
            what: "metadata"
        ) { $0.item == item }
    }

    /// Signs events as the acting member (checking first that their role allows each: ``authorize(_:for:)``),
    /// appends them and applies them to the index.
    func record(_ events: [Event], known: [ItemID: ItemMetadata] = [:]) async throws -> [String: String?] {
        let roster = try authorize(member, for: Set(events.compactMap { Member.Action.of($0.type) }))
        let signed = events.map { event in
            var event = event
            event.by = member?.member.id
            // A grant names the roster version in force, so a grantee can tell it was shown the whole roster.
            if event.type == .grant, member != nil { event.roster = roster.version }
            return event
        }
        let entries = try await Event.entries(of: signed, signedBy: keys.signing, member: member?.signing)
        return try await record(signed, signed: entries, known: known)
    }

    /// Appends entries already signed and applies them to the index.
    func record(
        _ events: [Event],
        signed entries: [[UInt8]],
        known: [ItemID: ItemMetadata] = [:]
    ) async throws -> [String: String?] {
        try ledger.append(entries, logKey: keys.log)
        var trusted: [[UInt8]: Event] = [:]
        for (entry, event) in zip(entries, events) { trusted[entry] = event }
        return try await catchUpIndex(known: known, trusted: trusted)
    }

    /// Rebuilds the index in place from journal + objects, after the checks of
    /// ``Archive/reindex(at:passphrase:)``; the caller holds the archive alone (opened `.exclusive`).
    ///
    /// - Returns: The number of items indexed.
    @discardableResult
    package func reindex() async throws -> Int {
        try Archive.checkBeforeReindex(journal: journal, ledger: ledger, logKey: keys.log)
        try archive.openedIndex.get().erase()
        return try await index().itemCount()
    }
}
