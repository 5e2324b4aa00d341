import CustodyCrypto
import CustodyStorage
import Foundation
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

// `bundle import` (and a pull), in phases: plan, one verifying pass that stages every object, the refusals on
// the verified contents, the import events, the deep check of every new item, and only then the commit. Each
// phase is a function below; their order is the guarantee that a refused bundle changes nothing.

extension Archive.Unlocked {
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
    ) async throws -> BundleImport {
        let now = Int(time(nil))
        // 1. Plan from the records before the objects: which items are new, and their import events, so each item
        //    is decrypted and checked as soon as its last object is staged, while the rest streams in.
        let plan = try await importPlan(path: path, now: now)
        // 2. One pass: verify everything and stage every object (annotations also kept in memory). Nothing is
        //    committed until every check below has passed; a refusal discards the staged objects.
        let pass = try await verifyAndStage(path: path, expected: expected, fetch: fetch, plan: plan, now: now)
        progress?(pass.objectCount, pass.objectCount)
        do {
            return try await finish(pass, plan: plan, trustGranter: trustGranter, expected: expected, now: now)
        } catch {
            // Committed objects are past discarding (an error after the commit leaves orphans for gc).
            await store.discard(pass.staged)
            throw error
        }
    }

    /// Phases 3 to 6, once the pass has verified the bundle and staged its objects.
    // Unoptimised: Swift 6.3's optimiser crashes on this function in a release build (LLVM CoroSplit,
    // swifterror; the whole module then fails to build). It awaits storage and decryption, not loops.
    @_optimize(none)
    private func finish(
        _ pass: ImportPass,
        plan: Archive.ImportPlan?,
        trustGranter: Bool,
        expected: Archive.ExpectedGrant?,
        now: Int
    ) async throws -> BundleImport {
        // 3. The refusals of the verified contents: addressee, validity, revocation, what a pull asked for, the
        //    witnessed log, the granter.
        let contents = try Self.verifiedContents(of: pass)
        let grant = contents.grant
        try await checkAddressedAndCurrent(contents, expected: expected, now: now)
        let trustedNow = try admitGranter(of: contents, trustGranter: trustGranter)
        // 4. The new items and their import events, from the verified contents: what each item will name.
        let present = await Set(try index().items(ids: grant.items.map(\.id.hex)).map(\.id))
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
        let events = try importEvents(of: fresh, contents: contents, now: now)
        // Commit what the new items use; the granter's annotation objects are read from memory, not stored.
        let annotationNames = Set(contents.annotations.values.flatMap { $0 }.compactMap { $0.annotation?.name })
        let wanted = Set(fresh.flatMap(\.objects).map(\.name)).subtracting(annotationNames)
        let unwanted = pass.staged.filter { !wanted.contains($0.name) }
        await store.discard(unwanted)
        let toCommit = pass.staged.filter { wanted.contains($0.name) }
        let annotationObjects = pass.small.filter { annotationNames.contains($0.key) }
        // 5. Every item decrypted and its SHA-256 and commitment checked before anything becomes visible.
        try await checkItems(Array(zip(events, fresh)), plan: plan, early: pass.early, granter: grant.granter.name)
        // 6. Commit. No stored grant may be replaced: checked before anything is committed.
        for signed in [contents.signedGrant] + contents.ancestors { _ = try storablePath(signed) }
        try await store.commit(toCommit)
        CrashPoint.hit("import-objects-stored")
        var annotated: [Event] = []
        for event in events {
            var event = event
            event.annotation = try await sealProvenance(for: event, contents: contents, objects: annotationObjects)
            annotated.append(event)
        }
        // Never replacing a stored grant (checked for each of them before the objects were committed, above).
        for signed in [contents.signedGrant] + contents.ancestors { try storeSignedGrant(signed) }
        _ = try await record(annotated)
        return BundleImport(
            grant: grant.id,
            granter: Self.granterLabel(contents),
            imported: fresh.map(\.id.hex),
            alreadyPresent: grant.items.map(\.id.hex).filter { present.contains($0) },
            trustedNow: trustedNow
        )
    }

    /// Phase 2: verifies the bundle in one pass, staging every object as it comes (``ImportStaging``) and
    /// checking each new item of `plan` as soon as its last object is staged (in that object's task). Returns
    /// once every check has finished; on a failure of the pass, every staged object is discarded before the
    /// error is thrown.
    private func verifyAndStage(
        path: String,
        expected: Archive.ExpectedGrant?,
        fetch: ObjectFetcher?,
        plan: Archive.ImportPlan?,
        now: Int
    ) async throws -> ImportPass {
        let staging = ImportStaging(store: store, plan: plan, unlocked: self, fetching: fetch != nil)
        let (report, verified): (BundleReport, BundleContents?)
        do {
            (report, verified) = try await BundleVerifier.verify(
                path: path,
                witnesses: try witnessKeys(),
                expectedGrant: expected?.grant,
                at: now,
                fetch: fetch,
                object: { name, bytes in try await staging.receive(name, bytes) }
            )
        } catch {
            await store.discard(staging.staged.withLock { $0 })
            throw error
        }
        return ImportPass(
            report: report,
            contents: verified,
            staged: staging.staged.withLock { $0 },
            small: staging.small.withLock { $0 },
            early: staging.early.withLock { $0 },
            objectCount: staging.count.load(ordering: .relaxed)
        )
    }

    /// Phase 3: the verified contents, or the refusal of a bundle that does not verify, naming its first problem.
    private static func verifiedContents(of pass: ImportPass) throws -> BundleContents {
        guard let contents = pass.contents else {
            let first = pass.report.problems.first
            throw ArchiveError(
                first?.kind == .grantUnexpected ? .grantUnexpected : .bundleInvalid,
                "the bundle does not verify: \(first?.detail ?? "unknown problem")\(first?.object.map { " (object \($0))" } ?? "")",
                fix: "run custody bundle verify for every problem, and ask the granter for the bundle again"
            )
        }
        return contents
    }

    /// Phase 3: refuses a verified bundle addressed to another body, outside its grant's validity, of a revoked
    /// grant or ancestor, other than the grant a pull asked for, or whose checkpoint conflicts with the log this
    /// archive has seen witnessed.
    private func checkAddressedAndCurrent(
        _ contents: BundleContents,
        expected: Archive.ExpectedGrant?,
        now: Int
    ) async throws {
        let grant = contents.grant
        let me = try identity()
        // A grant made before this archive rotated its keys is sealed to a retired box key, which still opens it.
        guard grant.grantee.signingKey == me.signingKey, config.boxKeys.contains(grant.grantee.boxKey) else {
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
        try await refuseRevoked(grant, ancestors: contents.ancestors)
        if let expected {
            // The peer may have rotated its box key since it was added: its identity then proves the transition.
            let sameGranter =
                try contents.identity == expected.granter || follows(contents.identity, from: expected.granter)
            guard grant.id == expected.grant, sameGranter,
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
    }

    /// Phase 3, last: refuses an impostor or an unknown granter (trusting it with `trustGranter`).
    ///
    /// - Returns: Whether the granter was added to the registry now.
    private func admitGranter(of contents: BundleContents, trustGranter: Bool) throws -> Bool {
        if contents.grant.kind != .anonymousSubmission { _ = try followRotation(of: contents.identity) }
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
        if contents.grant.kind == .anonymousSubmission {
            // A throw-away identity that claims no one: nothing to trust, and nothing it says about itself is
            // shown; the items are recorded as an anonymous, unverified submission.
            return false
        } else if trusted {
            // Exactly the identity already trusted as a granter.
            return false
        } else if trustGranter {
            return !(try trust(contents.identity, role: .granter)).alreadyKnown
        } else {
            throw ArchiveError(
                .granterUnknown,
                "the granter \(TerminalText.escape(contents.identity.name)) (\(contents.identity.origin), fingerprint \(contents.identity.fingerprint)) is not known to this archive",
                fix: "compare the fingerprint with the granter out of band, then import with --trust-granter"
            )
        }
    }

    /// Phase 4: the import event of each of `fresh`, or the refusal of a bundle that does not prove an origin.
    private func importEvents(of fresh: [GrantedItem], contents: BundleContents, now: Int) throws -> [Event] {
        try fresh.map { item in
            guard
                let event = importEvent(
                    item,
                    grant: contents.grant,
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
    }

    /// Phase 5: decrypts every new item and checks its SHA-256 and commitment; refuses the bundle at the first
    /// item (in grant order) that does not check. The checks made while streaming (`early`) count only if they
    /// were of exactly the event now recorded; the others are made now, in parallel.
    private func checkItems(
        _ pairs: [(Event, GrantedItem)],
        plan: Archive.ImportPlan?,
        early done: [ItemID: VerifyProblem?],
        granter: String
    ) async throws {
        let unlocked = self  // Sendable: the checks decrypt through it
        let checks = Mutex<[Int: VerifyProblem]>([:])
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
        try await pending.concurrentForEach(width: store.checkConcurrency) { index in
            if let problem = await unlocked.deepCheck(pairs[index].0, item: pairs[index].1.id) {
                checks.withLock { $0[index] = problem }
            }
        }
        if let (index, problem) = checks.withLock({ $0 }).min(by: { $0.key < $1.key }) {
            throw ArchiveError(
                .damaged,
                "item \(pairs[index].1.id) in the bundle does not check: \(problem.detail)",
                fix: "nothing was imported; ask \(granter) to verify the item and re-send"
            )
        }
    }

    /// Seals an imported item's provenance, with the granter's tags and notes decrypted, under its K_meta.
    fileprivate func sealProvenance(
        for event: Event,
        contents: BundleContents,
        objects: [ObjectName: [UInt8]]
    ) async throws -> ObjectRef {
        guard let item = event.item else { throw ArchiveError(.damaged, "import without item", fix: "report this bug") }
        var annotations: [Annotation] = []
        for annotationEvent in contents.annotations[item] ?? [] {
            annotations.append(try annotation(of: annotationEvent, keyedLike: event, objects: objects))
        }
        let terms = try terms(of: contents.grant)
        let kind = contents.grant.kind
        let record = ProvenanceRecord(
            provenance: Provenance(
                granter: kind == .anonymousSubmission ? Archive.anonymousGranter : contents.identity.name,
                granterOrigin: kind == .anonymousSubmission ? "anonymous" : contents.identity.origin,
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
        try await store.putObject(sealed, as: name)
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
}

/// What the verifying pass of an import leaves (phase 2): the verifier's verdict and every object staged.
private struct ImportPass {
    var report: BundleReport
    /// The contents, when the bundle verifies.
    var contents: BundleContents?
    /// The staged objects not yet committed (a pull has committed new items' objects in batches already).
    var staged: [StagedObject]
    /// The objects small enough to be annotations, in memory, by name.
    var small: [ObjectName: [UInt8]]
    /// The result of each check of a new item made while streaming (a `nil` problem: it checked).
    var early: [ItemID: VerifyProblem?]
    /// How many objects were staged.
    var objectCount: Int
}

/// Receives the objects of an import's verifying pass (``receive(_:_:)``, the verifier's object callback):
/// stages each, keeps those small enough to be annotations in memory, commits a pull's fetched objects of new
/// items in batches, and checks a new item deeply as soon as its last object is staged.
private final class ImportStaging: Sendable {
    let store: ArchiveObjects
    let plan: Archive.ImportPlan?
    /// Sendable: the check workers decrypt through it.
    let unlocked: Archive.Unlocked
    /// Whether the objects are fetched (a pull): then new items' objects are committed as they come.
    let fetching: Bool
    /// At least four batches, so that even a small pull resumes part-way; at most 128 MiB each.
    let commitEvery: Int64
    let early = Mutex<[ItemID: VerifyProblem?]>([:])
    /// How many objects of each new item are still to come.
    let remaining: Mutex<[ItemID: Int]>
    let staged = Mutex<[StagedObject]>([])
    let small = Mutex<[ObjectName: [UInt8]]>([:])
    let count = Atomic<Int>(0)
    let pendingBytes = Mutex<Int64>(0)

    init(store: ArchiveObjects, plan: Archive.ImportPlan?, unlocked: Archive.Unlocked, fetching: Bool) {
        self.store = store
        self.plan = plan
        self.unlocked = unlocked
        self.fetching = fetching
        commitEvery = min(Archive.pullCommitBytes, max((plan?.bytes ?? 0) / 4, 64 << 10))
        remaining = Mutex(plan?.remaining ?? [:])
    }

    /// Stages one object the verifier accepted, then checks the items it completes.
    func receive(_ name: ObjectName, _ bytes: [UInt8]) async throws {
        if bytes.count <= SealedPart.maxAnnotationBytes { small.withLock { $0[name] = bytes } }
        if let s = try await store.stage(bytes, as: name, checkExisting: true) {
            if fetching, plan?.itemsByObject[name] != nil {
                try await keepFetched(s, size: bytes.count)
            } else {
                staged.withLock { $0.append(s) }
            }
        }
        count.wrappingAdd(1, ordering: .relaxed)
        await check(completedBy: name)
    }

    /// Fetched objects of new items are kept as they come: a killed pull resumes from them.
    private func keepFetched(_ s: StagedObject, size: Int) async throws {
        let batch = staged.withLock { staged -> [StagedObject] in
            staged.append(s)
            let full = pendingBytes.withLock { pending -> Bool in
                pending += Int64(size)
                guard pending >= commitEvery else { return false }
                pending = 0
                return true
            }
            guard full else { return [] }
            let ready = staged.filter { plan?.itemsByObject[$0.name] != nil }
            staged.removeAll { plan?.itemsByObject[$0.name] != nil }
            return ready
        }
        guard !batch.isEmpty else { return }
        try await store.commit(batch)
        CrashPoint.hit("pull-objects-committed")
    }

    /// Checks deeply each new item whose last object `name` is (a staged object is readable through the store
    /// value that staged it).
    private func check(completedBy name: ObjectName) async {
        guard let plan else { return }
        for item in plan.itemsByObject[name] ?? [] {
            let done = remaining.withLock { counts -> Bool in
                counts[item, default: 0] -= 1
                return counts[item] == 0
            }
            guard done, let event = plan.events[item] else { continue }
            let problem = await unlocked.deepCheck(event, item: item)
            early.withLock { $0[item] = .some(problem) }
        }
    }
}
