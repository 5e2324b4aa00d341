import CustodyCrypto
import CustodyStorage
import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// What `bundle export` wrote.
package struct BundleExport: Sendable {
    /// The grant.
    package var grant: String
    /// Items.
    package var items: Int
    /// Objects written.
    package var objects: Int
    /// Ledger entries written, with proofs.
    package var entries: Int
    /// Bundle size.
    package var bytes: Int64
    /// The checkpoint's size the proofs lead to.
    package var checkpointSize: Int
}

/// What `bundle import` did.
package struct BundleImport: Sendable {
    /// The grant.
    package var grant: String
    /// The granter's name and fingerprint.
    package var granter: String
    /// Items imported now.
    package var imported: [String]
    /// Items that were already here (an import is idempotent).
    package var alreadyPresent: [String]
    /// Whether the granter was added to the registry now (`--trust-granter`).
    package var trustedNow: Bool
}

/// The sealed provenance of an imported item (kind `provenance`, under its K_meta).
struct ProvenanceRecord: Codable {
    var provenance: Provenance
    /// The granter's tags and notes on the item, in its log order.
    var annotations: [Annotation]
}

extension Archive {

    /// The name provenance gives the sender of an anonymous submission, whatever its bundle calls itself.
    package static let anonymousGranter = "anonymous submitter (unverified)"

    /// What a pull asked for: the grant id it listed and the peer it asked (the granter it must come from).
    package struct ExpectedGrant: Sendable {
        package var grant: String
        package var granter: Identity
        /// The head's checkpoint, as checked against the witnessed log before the import.
        package var checkpoint: String?

        package init(grant: String, granter: Identity, checkpoint: String? = nil) {
            self.grant = grant
            self.granter = granter
            self.checkpoint = checkpoint
        }
    }

    /// A pull commits the objects it fetched whenever this many bytes are staged.
    static let pullCommitBytes: Int64 = 128 << 20

    /// What an import can know before its verifying pass (from ``BundleVerifier/preview(path:)``).
    struct ImportPlan {
        /// The import event each new item would get.
        var events: [ItemID: Event]
        /// The new items each stored object belongs to.
        var itemsByObject: [ObjectName: [ItemID]]
        /// How many objects of each new item are still to come.
        var remaining: [ItemID: Int]
        /// The bytes of the new items' objects.
        var bytes: Int64 = 0
    }
}

extension ArchiveContext {
    /// Writes the bundle of a grant this archive made: granter identity, signed grant, checkpoint, the ledger
    /// entries of the grant and its items with inclusion proofs, and every released object — streamed. Without
    /// `objects`, the bundle's head: every record but the objects (a node serves the objects one by one).
    ///
    /// - Throws: ``ArchiveError``: not found; not authorised for a grant of another body, a revoked or expired one;
    ///   cannot create when `output` exists (without `force`) or cannot be written. Nothing is left at `output` on failure.
    package func exportBundle(
        grant id: String,
        to output: String,
        force: Bool = false,
        objects includeObjects: Bool = true,
        progress: ((Int, Int) -> Void)? = nil
    ) async throws -> BundleExport {
        let (grant, signed) = try await storedGrant(id)
        guard grant.granter.signingKey == config.signingKey else {
            throw ArchiveError(
                .notAuthorised,
                "grant \(grant.id) was made by \(grant.granter.name); only a granter exports its grants",
                fix: "ask \(grant.granter.name) for the bundle"
            )
        }
        guard try await index().grant(grant.id) != nil else {
            throw ArchiveError(.damaged, "grant \(grant.id) is not in the index", fix: "run custody reindex")
        }
        try await checkUsable(grant, what: "grant \(grant.id)", fix: "make a new grant")
        if !force, POSIX.lstatPath(output) != nil {
            throw ArchiveError(.cannotCreate, "\(output) already exists", fix: "choose another -o path or pass --force")
        }
        // Every check above is made before a byte is written; then the entries to prove, then the bundle.
        let (checkpoint, entries) = try await provableEntries(of: grant)
        let objects = includeObjects ? grant.releasedObjects : []
        let bytes = try await writeBundle(
            grant,
            signed: signed,
            checkpoint: checkpoint,
            entries: entries,
            objects: objects,
            to: output,
            progress: progress
        )
        return BundleExport(
            grant: grant.id,
            items: grant.items.count,
            objects: objects.count,
            entries: entries.count,
            bytes: bytes,
            checkpointSize: checkpoint.size
        )
    }

    /// The entries a bundle of `grant` proves — the grant event, and each item's origin and annotation events —
    /// with the checkpoint their proofs lead to: the newest cosigned one that covers them all, else the latest.
    private func provableEntries(of grant: Grant) async throws -> (Checkpoint, [(Int, [UInt8])]) {
        var wanted = Set<Int>()
        let grantSeq = try await index().grantSeq(grant.id)
        wanted.insert(grantSeq)
        // The roster events before it: with them a grantee rebuilds who the granting member was and checks that
        // their role allowed it (SHARING.md section 4, step 6).
        wanted.formUnion(try await index().rosterEventSeqs(before: grantSeq))
        for item in grant.items {
            for event in try await index().events(of: item.id.hex)
            where Event.Kind(rawValue: event.type).addsItem || Event.Kind(rawValue: event.type).annotates {
                wanted.insert(event.seq)
            }
        }
        // Proofs lead to the newest cosigned checkpoint that covers them all, else to the latest one.
        guard let latest = try ledger.latestCheckpoint(), latest.size > (wanted.max() ?? 0) else {
            throw ArchiveError(
                .damaged,
                "the log has no checkpoint covering grant \(grant.id) yet",
                fix: "run custody checkpoint --sign"
            )
        }
        var checkpoint = latest
        if let cosigned = try await cosignedCheckpoint(), cosigned.size > (wanted.max() ?? 0) { checkpoint = cosigned }
        var entries: [(Int, [UInt8])] = []
        try journal.scan(from: .start, limit: checkpoint.size) { entry in
            if wanted.contains(entry.index) { entries.append((entry.index, entry.bytes)) }
        }
        guard entries.count == wanted.count else {
            throw ArchiveError(.damaged, "the journal lacks entries the grant needs", fix: "run custody verify")
        }
        return (checkpoint, entries)
    }

    /// Writes the bundle to a temporary file beside `output` and renames it into place once complete and
    /// flushed: nothing is left at `output` on failure.
    ///
    /// - Returns: The bundle's size.
    private func writeBundle(
        _ grant: Grant,
        signed: [UInt8],
        checkpoint: Checkpoint,
        entries: [(Int, [UInt8])],
        objects: [ObjectRef],
        to output: String,
        progress: ((Int, Int) -> Void)?
    ) async throws -> Int64 {
        let directory = POSIX.parentDirectory(of: output)
        let temp = directory + "/.custody-bundle-" + Encoding.hex(randomBytes(8))
        let fd = POSIX.open(temp, O_WRONLY | O_CREAT | O_EXCL, 0o600)
        guard fd >= 0 else { throw ArchiveError.writeFailed("cannot create a file in \(directory)", errno: errno) }
        var published = false
        defer {
            close(fd)
            if !published { unlink(temp) }
        }
        let writer = try BundleWriter(fd: fd)
        try writer.record(.identity, try ArchiveFiles.read(Archive.identityPath(root), limit: 64 * 1024))
        try writer.record(.grant, signed)
        // A re-share carries its chain of ancestor grants, parent first, back to the original holder.
        let beyond = try grant.walkAncestors { reference in
            let bytes = try ArchiveFiles.read(try grantPath(reference.id), limit: Grant.maxBytes)
            guard Grant.hash(bytes) == reference.hash else {
                throw ArchiveError(
                    .damaged,
                    "grants/\(reference.id).grant is not the parent grant",
                    fix: "restore grants/ from a backup"
                )
            }
            try writer.record(.ancestor, bytes)
            return try Grant.parse(bytes)
        }
        if beyond != nil {  // refused by exportBundle's standing check already; never written as a bundle
            throw ArchiveError(
                .notAuthorised,
                "grant \(grant.id) re-shares through more than \(Grant.maxAncestors) grants, more than a bundle carries",
                fix: "make a new grant"
            )
        }
        try writer.record(.checkpoint, Array(checkpoint.note.utf8))
        for (index, entry) in entries {
            let proof = try ledger.inclusionProof(index: index, entry: entry, at: checkpoint)
            let record = BundleFormat.EntryRecord(
                index: index,
                entry: Encoding.base64(entry),
                proof: proof.proof.map { Encoding.base64($0) }
            )
            try writer.record(.entry, try Array(Event.encoder.encode(record)))
        }
        for (number, ref) in objects.enumerated() {
            guard let bytes = try await store.read(ref.name, limit: SealedPart.maxContentStoredBytes),
                Int64(bytes.count) == ref.size
            else {
                throw ArchiveError(
                    .damaged,
                    "object \(ref.name.hex) the grant releases is missing or has the wrong size",
                    fix: "run custody verify"
                )
            }
            try writer.record(.object, ref.name.bytes + bytes)
            progress?(number + 1, objects.count)
        }
        try writer.finish()
        guard fsync(fd) == 0 else { throw ArchiveError.writeFailed("cannot flush the bundle", errno: errno) }
        guard rename(temp, output) == 0 else { throw ArchiveError.writeFailed("cannot write \(output)", errno: errno) }
        published = true
        _ = POSIX.syncDirectory(directory)
        return writer.bytes
    }

    /// How an import names the granter: its name and fingerprint, or — for an anonymous submission, whose
    /// self-description is never shown — ``anonymousGranter``.
    static func granterLabel(_ contents: BundleContents) -> String {
        contents.grant.kind == .anonymousSubmission
            ? Archive.anonymousGranter : "\(contents.identity.name) (\(contents.identity.fingerprint))"
    }

    /// Plans an import from the bundle's leading records; `nil` (no early checks) when there is nothing to plan.
    func importPlan(path: String, now: Int) async throws -> Archive.ImportPlan? {
        guard let preview = BundleVerifier.preview(path: path), config.boxKeys.contains(preview.grant.grantee.boxKey)
        else {
            return nil
        }
        let present = Set(try await index().items(ids: preview.grant.items.map(\.id.hex)).map(\.id))
        var plan = Archive.ImportPlan(events: [:], itemsByObject: [:], remaining: [:])
        for item in preview.grant.items where !present.contains(item.id.hex) {
            guard
                let event = importEvent(
                    item,
                    grant: preview.grant,
                    signed: preview.signed,
                    origin: preview.origins[item.id],
                    now: now
                )
            else { continue }
            plan.events[item.id] = event
            let names = Set(item.objects.map(\.name)).subtracting(preview.annotations)
            plan.remaining[item.id] = names.count
            for name in names { plan.itemsByObject[name, default: []].append(item.id) }
        }
        let sizes = Dictionary(preview.grant.releasedObjects.map { ($0.name, $0.size) }) { first, _ in first }
        plan.bytes = plan.itemsByObject.keys.reduce(0) { $0 + (sizes[$1] ?? 0) }
        guard !plan.events.isEmpty else { return nil }
        return plan
    }

    /// The `import` event of a granted item, from its origin event in the granter's log.
    func importEvent(_ item: GrantedItem, grant: Grant, signed: [UInt8], origin: Event?, now: Int) -> Event? {
        guard let origin, let originObjects = origin.objects else { return nil }
        let content = grant.permission == .content
        return Event(
            type: .import,
            time: RFC3339.format(now),
            actor: config.origin,
            item: item.id,
            objects: content ? originObjects : IngestObjects(meta: originObjects.meta, content: nil),
            keys: WrappedKeys(meta: item.keys.meta, content: content ? item.keys.content : nil),
            commitment: origin.commitment,
            grant: GrantReference(id: grant.id, hash: Grant.hash(signed))
        )
    }
}
