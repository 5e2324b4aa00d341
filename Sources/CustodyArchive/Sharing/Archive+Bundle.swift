import CustodyCrypto
import Dispatch
import Foundation
import Synchronization

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
    ) throws -> BundleExport {
        let (grant, signed) = try storedGrant(id)
        guard grant.granter.signingKey == config.signingKey else {
            throw ArchiveError(
                .notAuthorised,
                "grant \(grant.id) was made by \(grant.granter.name); only a granter exports its grants",
                fix: "ask \(grant.granter.name) for the bundle"
            )
        }
        guard try index().grant(grant.id) != nil else {
            throw ArchiveError(.damaged, "grant \(grant.id) is not in the index", fix: "run custody reindex")
        }
        try checkUsable(grant, what: "grant \(grant.id)", fix: "make a new grant")
        if !force, POSIX.lstatPath(output) != nil {
            throw ArchiveError(.cannotCreate, "\(output) already exists", fix: "choose another -o path or pass --force")
        }
        // The entries to prove: the grant event, and each item's origin and annotation events.
        var wanted = Set<Int>()
        let grantSeq = try index().grantSeq(grant.id)
        wanted.insert(grantSeq)
        for item in grant.items {
            for event in try index().events(of: item.id.hex)
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
        if let cosigned = try cosignedCheckpoint(), cosigned.size > (wanted.max() ?? 0) { checkpoint = cosigned }
        var entries: [(Int, [UInt8])] = []
        try journal.scan(from: .start, limit: checkpoint.size) { entry in
            if wanted.contains(entry.index) { entries.append((entry.index, entry.bytes)) }
        }
        guard entries.count == wanted.count else {
            throw ArchiveError(.damaged, "the journal lacks entries the grant needs", fix: "run custody verify")
        }

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
        try writer.record(.identity, try POSIX.readFile(Archive.identityPath(root), limit: 64 * 1024))
        try writer.record(.grant, signed)
        // A re-share carries its chain of ancestor grants, parent first, back to the original holder.
        let beyond = try grant.walkAncestors { reference in
            let bytes = try POSIX.readFile(try grantPath(reference.id), limit: Grant.maxBytes)
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
        if beyond != nil {  // refused above by the standing check already; never written as a bundle
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
        let objects = includeObjects ? grant.releasedObjects : []
        for (number, ref) in objects.enumerated() {
            guard let bytes = try store.read(ref.name, limit: SealedPart.maxContentStoredBytes),
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
        return BundleExport(
            grant: grant.id,
            items: grant.items.count,
            objects: objects.count,
            entries: entries.count,
            bytes: writer.bytes,
            checkpointSize: checkpoint.size
        )
    }

    /// How an import names the granter: its name and fingerprint, or — for an anonymous submission, whose
    /// self-description is never shown — ``anonymousGranter``.
    static func granterLabel(_ contents: BundleContents) -> String {
        contents.grant.kind == "anonymous-submission"
            ? Archive.anonymousGranter : "\(contents.identity.name) (\(contents.identity.fingerprint))"
    }

    /// Plans an import from the bundle's leading records; `nil` (no early checks) when there is nothing to plan.
    func importPlan(path: String, now: Int) throws -> Archive.ImportPlan? {
        guard let preview = BundleVerifier.preview(path: path), preview.grant.grantee.boxKey == config.boxKey else {
            return nil
        }
        let present = Set(try index().items(ids: preview.grant.items.map(\.id.hex)).map(\.id))
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
        let content = grant.permission == "content"
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

extension Archive.Unlocked {

    /// Seals an imported item's provenance, with the granter's tags and notes decrypted, under its K_meta.
    fileprivate func sealProvenance(
        for event: Event,
        contents: BundleContents,
        objects: [ObjectName: [UInt8]]
    ) throws -> ObjectRef {
        guard let item = event.item else { throw ArchiveError(.damaged, "import without item", fix: "report this bug") }
        var annotations: [Annotation] = []
        for annotationEvent in contents.annotations[item] ?? [] {
            annotations.append(try annotation(of: annotationEvent, keyedLike: event, objects: objects))
        }
        let terms = try terms(of: contents.grant)
        let kind = contents.grant.kind
        let record = ProvenanceRecord(
            provenance: Provenance(
                granter: kind == "anonymous-submission" ? Archive.anonymousGranter : contents.identity.name,
                granterOrigin: kind == "anonymous-submission" ? "anonymous" : contents.identity.origin,
                granterFingerprint: contents.identity.fingerprint,
                grant: contents.grant.id,
                purpose: terms.purpose,
                importedAt: event.time,
                kind: kind
            ),
            annotations: annotations
        )
        var key = try metaKey(of: event)
        defer { wipe(&key) }
        let sealed = SealedPart.seal(Array(try Event.encoder.encode(record)), kind: .provenance, item: item, key: key)
        let name = ObjectName(of: sealed)
        if let staged = try sealed.withUnsafeBytes({ try store.stage($0, as: name, checkExisting: true) }) {
            try store.commit([staged])
        }
        return ObjectRef(name: name, size: Int64(sealed.count))
    }

    /// Decrypts a granter's annotation of an imported item, reading its object from the bundle's released set.
    fileprivate func annotation(
        of event: Event,
        keyedLike importEvent: Event,
        objects: [ObjectName: [UInt8]]
    ) throws
        -> Annotation
    {
        guard let ref = event.annotation, let item = event.item else {
            throw ArchiveError(.badInput, "an annotation in the bundle is incomplete", fix: "ask for it again")
        }
        guard let bytes = objects[ref.name] else {
            throw ArchiveError(
                .badInput,
                "the bundle lacks the object of a \(event.type) of item \(item)",
                fix: "ask for it again"
            )
        }
        var key = try metaKey(of: importEvent)
        defer { wipe(&key) }
        guard
            let annotation = try SealedPart.decode(
                bytes,
                kind: .annotation,
                item: item,
                key: key,
                as: Annotation.self,
                isValid: { $0.type == event.type.rawValue }
            )
        else {
            throw ArchiveError(
                .badInput,
                "a \(event.type) of item \(item) in the bundle is not valid",
                fix: "ask for it again"
            )
        }
        return annotation
    }

    /// Imports a bundle addressed to this archive: verifies it completely, stores the released objects,
    /// decrypts every item and re-checks its SHA-256 and evidence commitment, and only then records one
    /// `import` event per new item — in one append, so a killed import leaves no item half-imported.
    ///
    /// - Throws: ``ArchiveError``: bad input for a damaged or tampered bundle; not authorised for a bundle
    ///   addressed to another body, an expired grant, or an unknown granter (without `trustGranter`); damaged when
    ///   an item does not decrypt to its recorded SHA-256. The archive is unchanged in every case (objects staged
    ///   before a failure are orphans that `gc` removes).
    ///
    /// With `fetch`, `path` is a bundle head and the objects come from `fetch` (``Puller``): each is checked as an
    /// object record would be, and the new items' objects are committed in batches as they arrive, so that a killed
    /// pull resumes without fetching them again (until the import event names them, they are orphans).
    package func importBundle(
        path: String,
        trustGranter: Bool = false,
        expected: Archive.ExpectedGrant? = nil,
        fetch: ObjectFetcher? = nil,
        progress: ((Int, Int) -> Void)? = nil
    ) throws -> BundleImport {
        let now = Int(time(nil))
        let store = self.store
        // Plan from the records before the objects: which items are new, and their import events, so each item
        // is decrypted and checked by a worker as soon as its last object is staged, while the rest streams in.
        let plan = try importPlan(path: path, now: now)
        let checkQueue = DispatchQueue(label: "custody.import.check", attributes: .concurrent)
        let checking = DispatchGroup()
        let early = Mutex<[ItemID: VerifyProblem?]>([:])
        let remaining = Mutex(plan?.remaining ?? [:])
        let unlocked = self  // Sendable: the check workers decrypt through it
        // One pass: verify everything and stage every object (annotations also kept in memory). Nothing is
        // committed until every check below has passed; a refusal discards the staged files.
        let stagedBox = Mutex<[StagedObject]>([])
        let smallBox = Mutex<[ObjectName: [UInt8]]>([:])
        let stagedCount = Atomic<Int>(0)
        let pendingBytes = Mutex<Int64>(0)
        // At least four batches, so that even a small pull resumes part-way; at most 128 MiB each.
        let commitEvery = min(Archive.pullCommitBytes, max((plan?.bytes ?? 0) / 4, 64 << 10))
        let (report, verified): (BundleReport, BundleContents?)
        defer { checking.wait() }
        do {
            (report, verified) = try BundleVerifier.verify(
                path: path,
                witnesses: try witnessKeys(),
                expectedGrant: expected?.grant,
                at: now,
                fetch: fetch
            ) { name, bytes in
                if bytes.count <= SealedPart.maxAnnotationBytes { smallBox.withLock { $0[name] = bytes } }
                if let s = try bytes.withUnsafeBytes({ try store.stage($0, as: name, checkExisting: true) }) {
                    store.expose([s], visible: true)
                    if fetch != nil, plan?.itemsByObject[name] != nil {
                        // Fetched objects of new items are kept as they come: a killed pull resumes from them.
                        let batch = stagedBox.withLock { staged -> [StagedObject] in
                            staged.append(s)
                            let full = pendingBytes.withLock { pending -> Bool in
                                pending += Int64(bytes.count)
                                guard pending >= commitEvery else { return false }
                                pending = 0
                                return true
                            }
                            guard full else { return [] }
                            let ready = staged.filter { plan?.itemsByObject[$0.name] != nil }
                            staged.removeAll { plan?.itemsByObject[$0.name] != nil }
                            return ready
                        }
                        try store.commit(batch)
                        store.expose(batch, visible: false)
                        if !batch.isEmpty { CrashPoint.hit("pull-objects-committed") }
                    } else {
                        stagedBox.withLock { $0.append(s) }
                    }
                }
                stagedCount.wrappingAdd(1, ordering: .relaxed)
                guard let plan else { return }
                for item in plan.itemsByObject[name] ?? [] {
                    let done = remaining.withLock { counts -> Bool in
                        counts[item, default: 0] -= 1
                        return counts[item] == 0
                    }
                    guard done, let event = plan.events[item] else { continue }
                    checking.enter()
                    checkQueue.async {
                        defer { checking.leave() }
                        let problem = unlocked.deepCheck(event, item: item)
                        early.withLock { $0[item] = .some(problem) }
                    }
                }
            }
        } catch {
            checking.wait()
            let all = stagedBox.withLock { $0 }
            store.expose(all, visible: false)
            store.discard(all)
            throw error
        }
        checking.wait()
        let staged = stagedBox.withLock { $0 }
        let small = smallBox.withLock { $0 }
        progress?(stagedCount.load(ordering: .relaxed), stagedCount.load(ordering: .relaxed))
        var committed = false
        defer {
            store.expose(staged, visible: false)
            if !committed { store.discard(staged) }
        }
        guard let contents = verified else {
            let first = report.problems.first
            throw ArchiveError(
                first?.kind == .grantUnexpected ? .grantUnexpected : .bundleInvalid,
                "the bundle does not verify: \(first?.detail ?? "unknown problem")\(first?.object.map { " (object \($0))" } ?? "")",
                fix: "run custody bundle verify for every problem, and ask the granter for the bundle again"
            )
        }
        let grant = contents.grant
        let me = try identity()
        guard grant.grantee.signingKey == me.signingKey, grant.grantee.boxKey == me.boxKey else {
            throw ArchiveError(
                .addressedElsewhere,
                "the bundle is addressed to \(grant.grantee.name) (\(grant.grantee.fingerprint)), not to this archive (\(me.fingerprint))",
                fix: "import it in the archive it was granted to"
            )
        }
        guard grant.isValid(at: now) else {
            throw ArchiveError(
                .grantNotValid,
                "grant \(grant.id) is valid from \(grant.created) until \(grant.expires), not now",
                fix: "ask \(grant.granter.name) for a new grant"
            )
        }
        try refuseRevoked(grant, ancestors: contents.ancestors)
        if let expected {
            guard grant.id == expected.grant, contents.identity == expected.granter,
                expected.checkpoint.map({ $0 == contents.checkpoint.note }) ?? true
            else {
                throw ArchiveError(
                    .grantUnexpected,
                    "the peer sent grant \(grant.id) of \(TerminalText.escape(contents.identity.name)) (\(contents.identity.fingerprint)) for grant \(expected.grant) of \(TerminalText.escape(expected.granter.name)) (\(expected.granter.fingerprint))",
                    fix: "nothing was imported; report the peer's operators"
                )
            }
        }
        try checkAgainstWitnessed(contents.checkpoint)
        var trustedNow = false
        let bodies = try knownBodies()
        // Whatever the grant's kind: a bundle whose identity shares an origin or a key with a known body but is
        // not that body's identity is an impostor.
        if let clash = bodies.first(where: { known in
            known.identity != contents.identity
                && (known.identity.origin == contents.identity.origin
                    || known.identity.signingKey == contents.identity.signingKey
                    || known.identity.boxKey == contents.identity.boxKey)
        }) {
            throw ArchiveError(
                .identityClash,
                "the bundle's granter shares the origin or a key of \(TerminalText.escape(clash.identity.name)) but has other keys (fingerprint \(contents.identity.fingerprint), known: \(clash.identity.fingerprint))",
                fix:
                    "do not import it; check with \(TerminalText.escape(clash.identity.name)) through a trusted channel"
            )
        }
        let trusted = bodies.contains { $0.identity == contents.identity && $0.roles.contains(.granter) }
        if grant.kind == "anonymous-submission" {
            // A throw-away identity that claims no one: nothing to trust, and nothing it says about itself is
            // shown; the items are recorded as an anonymous, unverified submission.
        } else if trusted {
            // Exactly the identity already trusted as a granter.
        } else if trustGranter {
            trustedNow = !(try trust(contents.identity, role: .granter)).alreadyKnown
        } else {
            throw ArchiveError(
                .granterUnknown,
                "the granter \(TerminalText.escape(contents.identity.name)) (\(contents.identity.origin), fingerprint \(contents.identity.fingerprint)) is not known to this archive",
                fix: "compare the fingerprint with the granter out of band, then import with --trust-granter"
            )
        }
        let present = Set(try index().items(ids: grant.items.map(\.id.hex)).map(\.id))
        let fresh = grant.items.filter { !present.contains($0.id.hex) }
        guard !fresh.isEmpty else {
            return BundleImport(
                grant: grant.id,
                granter: Self.granterLabel(contents),
                imported: [],
                alreadyPresent: grant.items.map(\.id.hex),
                trustedNow: trustedNow
            )
        }
        // The import events, from the verified contents: what each item will name.
        let events = try fresh.map { item in
            guard
                let event = importEvent(
                    item,
                    grant: grant,
                    signed: contents.signedGrant,
                    origin: contents.origins[item.id],
                    now: now
                )
            else {
                throw ArchiveError(
                    .badInput,
                    "the bundle does not prove item \(item.id)'s origin",
                    fix: "ask for it again"
                )
            }
            return event
        }
        // Commit what the new items use; the granter's annotation objects are read from memory, not stored.
        let annotationNames = Set(contents.annotations.values.flatMap { $0 }.compactMap { $0.annotation?.name })
        let wanted = Set(fresh.flatMap(\.objects).map(\.name)).subtracting(annotationNames)
        let unwanted = staged.filter { !wanted.contains($0.name) }
        store.expose(unwanted, visible: false)
        store.discard(unwanted)
        let toCommit = staged.filter { wanted.contains($0.name) }
        let annotationObjects = small.filter { annotationNames.contains($0.key) }
        // Every item decrypted and its SHA-256 and commitment checked before anything becomes visible: the
        // checks made while streaming count only if they were of exactly the event now recorded.
        let checks = Mutex<[Int: VerifyProblem]>([:])
        let pairs = Array(zip(events, fresh))
        let done = early.withLock { $0 }
        var pending: [Int] = []
        for (index, (event, item)) in pairs.enumerated() {
            if let result = done[item.id], let planned = plan?.events[item.id],
                (try? Event.encoder.encode(planned)) == (try? Event.encoder.encode(event))
            {
                if let problem = result { checks.withLock { $0[index] = problem } }
            } else {
                pending.append(index)
            }
        }
        let late = pending
        DispatchQueue.concurrentPerform(iterations: late.count) { position in
            let index = late[position]
            if let problem = unlocked.deepCheck(pairs[index].0, item: pairs[index].1.id) {
                checks.withLock { $0[index] = problem }
            }
        }
        if let (index, problem) = checks.withLock({ $0 }).min(by: { $0.key < $1.key }) {
            throw ArchiveError(
                .damaged,
                "item \(fresh[index].id) in the bundle does not check: \(problem.detail)",
                fix: "nothing was imported; ask \(grant.granter.name) to verify the item and re-send"
            )
        }
        // No stored grant may be replaced: checked before anything is committed.
        for signed in [contents.signedGrant] + contents.ancestors { _ = try storablePath(signed) }
        store.expose(toCommit, visible: false)  // committing renames the staged files to their names
        try store.commit(toCommit)
        committed = true
        CrashPoint.hit("import-objects-stored")
        var annotated: [Event] = []
        for event in events {
            var event = event
            event.annotation = try sealProvenance(for: event, contents: contents, objects: annotationObjects)
            annotated.append(event)
        }
        // Never replacing a stored grant (checked for each of them before the objects were committed, above).
        for signed in [contents.signedGrant] + contents.ancestors { try storeSignedGrant(signed) }
        _ = try record(annotated)
        return BundleImport(
            grant: grant.id,
            granter: Self.granterLabel(contents),
            imported: fresh.map(\.id.hex),
            alreadyPresent: grant.items.map(\.id.hex).filter { present.contains($0) },
            trustedNow: trustedNow
        )
    }
}
