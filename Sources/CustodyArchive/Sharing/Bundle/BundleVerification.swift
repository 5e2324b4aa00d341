import CustodyCrypto
import CustodyStorage
import Foundation

/// One verifying pass over a bundle (``BundleVerifier/verify(path:granter:witnesses:expectedGrant:at:fetch:object:)``):
/// what the records read so far established, and the check of each kind of record.
///
/// Each check either lets the pass go on (problems it finds are recorded and the next record is read) or stops
/// it (SHARING.md section 4: nothing after it is read).
final class BundleVerification {
    /// Whether the pass reads the next record.
    enum Step {
        case next
        case stop
    }

    let expected: Identity?
    let witnesses: [String: [UInt8]]
    let expectedGrant: String?
    let time: Int
    let objects: ObjectAdmission

    var report: BundleReport
    var identity: Identity?
    var grant: Grant?
    var signedGrant: [UInt8] = []
    var checkpoint: Checkpoint?
    /// Every released object's size.
    var released: [ObjectName: Int64] = [:]
    var origins: [ItemID: Event] = [:]
    var annotations: [ItemID: [Event]] = [:]
    /// Per item, the objects its proved tag and note events name, in log order (the tail of its released objects).
    var tails: [ItemID: [ObjectRef]] = [:]
    var grantLogged = false
    /// The grant's `grant` event, as proved.
    var grantEvent: (index: Int, event: Event, envelope: SignedEnvelope)?
    /// The granter's roster events the bundle proves, in log order.
    var rosterEvents: [(index: Int, event: Event, envelope: SignedEnvelope)] = []
    var lastIndex = -1
    /// The ancestor chain, parent first: each P must be the next grant up the chain, and nothing else.
    var ancestors: [(grant: Grant, signed: [UInt8])] = []
    var ancestorBytes = 0
    var expectedParent: GrantReference?
    var grantedItems = Set<ItemID>()
    /// Each released object's place in the grant's order.
    var expectedPositions: [ObjectName: Int] = [:]
    var nextObject = 0
    var layoutsKnown = false
    /// The kind of the last record read.
    var last: BundleRecord.Kind?
    /// The object of the `O` record just read, for ``read(_:admit:)`` to hand to the checks.
    var pendingObject: (name: ObjectName, bytes: [UInt8])?

    init(
        granter: Identity?,
        witnesses: [String: [UInt8]],
        expectedGrant: String?,
        time: Int,
        objects: ObjectAdmission
    ) {
        self.expected = granter
        self.witnesses = witnesses
        self.expectedGrant = expectedGrant
        self.time = time
        self.objects = objects
        report = BundleReport(
            integrityOK: false,
            validNow: false,
            granterTrusted: false,
            checkedAt: RFC3339.format(time)
        )
    }

    /// Records a problem.
    func problem(
        _ kind: VerifyProblem.Kind,
        _ detail: String,
        object: String? = nil,
        item: String? = nil,
        entry: Int? = nil
    ) {
        report.problems.append(VerifyProblem(kind: kind, object: object, item: item, entry: entry, detail: detail))
    }

    /// Reads and checks records until the end record or a problem that stops the check; each object record's
    /// object goes to `admit` (with the sizes the grant releases), to be checked while reading goes on.
    func read(
        _ reader: BundleReader,
        admit: (ObjectName, [UInt8], [ObjectName: Int64]) async -> Void
    ) async {
        while true {
            let record: BundleRecord
            do {
                guard let next = try reader.next() else {
                    problem(.bundleDamaged, "the bundle has no end record (it was cut short)")
                    return
                }
                record = next
            } catch {
                problem(.bundleDamaged, ArchiveError(error).problem)
                return
            }
            // I, G, then any P, then C; then any E records, any O records, and Z.
            guard record.kind.mayFollow(last) else {
                problem(
                    .bundleDamaged,
                    "the \(record.kind.letter) record at byte \(record.offset) is out of order or missing its predecessors"
                )
                return
            }
            if record.kind.order > BundleRecord.Kind.ancestor.order,
                (last?.order ?? -1) <= BundleRecord.Kind.ancestor.order, let missing = expectedParent
            {
                problem(.parentMissing, "the bundle lacks the parent grant \(missing.id) this grant re-shares from")
                return
            }
            last = record.kind
            let step = check(record)
            if let object = pendingObject {
                pendingObject = nil
                await admit(object.name, object.bytes, released)
            }
            guard step == .next else { return }
        }
    }

    /// Checks one record by its kind.
    private func check(_ record: BundleRecord) -> Step {
        switch record.kind {
        case .identity: checkIdentity(record)
        case .grant: checkGrant(record)
        case .ancestor: checkAncestor(record)
        case .checkpoint: checkCheckpoint(record)
        case .entry: checkEntry(record)
        case .object: checkObject(record)
        case .end: .stop
        }
    }

    /// `I`: a valid, self-signed identity whose log key is named by its origin (step 2).
    private func checkIdentity(_ record: BundleRecord) -> Step {
        guard let parsed = try? JSONDecoder().decode(Identity.self, from: Data(record.payload)), parsed.isValid,
            VerifierKey(parsed.logVerifierKey)?.name == parsed.origin
        else {
            problem(.identityInvalid, "the granter's identity in the bundle is not validly self-signed")
            return .stop
        }
        identity = parsed
        report.granter = "\(parsed.name) (\(parsed.fingerprint))"
        return .next
    }

    /// `G`: a grant signed by the identity, of valid form, the one asked for (step 3).
    private func checkGrant(_ record: BundleRecord) -> Step {
        let parsed: Grant
        switch Grant.parseSignature(record.payload) {
        case .failure(.malformed(let fault)):
            problem(.grantMalformed, "the grant is malformed: \(fault)")
            return .stop
        case .failure(.signature):
            problem(.grantSignature, Grant.Fault.signature.error.problem)
            return .stop
        case .success(let grant):
            parsed = grant
        }
        // A grant made before the granter rotated its box key names the key its identity's transitions retired.
        guard let identity, parsed.granter.signingKey == identity.signingKey,
            identity.provedBoxKeys.contains(parsed.granter.boxKey)
        else {
            problem(.granterMismatch, "the grant names another granter than the bundle's identity")
            return .stop
        }
        if let fault = parsed.formFault {
            problem(.grantMalformed, "the grant is malformed: \(fault)")
            return .stop
        }
        if let expectedGrant, parsed.id != expectedGrant {
            problem(.grantUnexpected, "the peer sent grant \(parsed.id) for grant \(expectedGrant)")
            return .stop
        }
        grant = parsed
        expectedParent = parsed.parent
        grantedItems = Set(parsed.items.map(\.id))
        for (position, ref) in parsed.releasedObjects.enumerated() { expectedPositions[ref.name] = position }
        signedGrant = record.payload
        report.grant = parsed.id
        report.grantee = "\(parsed.grantee.name) (\(parsed.grantee.fingerprint))"
        report.items = parsed.items.count
        report.permission = parsed.permission
        report.expires = parsed.expires
        for ref in parsed.releasedObjects { released[ref.name] = ref.size }
        return .next
    }

    /// `P`: exactly the chain from G's parent up, in order: any other grant is refused at once, unread (step 3).
    private func checkAncestor(_ record: BundleRecord) -> Step {
        guard let reference = expectedParent else {
            problem(
                .reshareInvalid,
                "the P record at byte \(record.offset) is not on the grant's parent chain (the chain has ended)"
            )
            return .stop
        }
        ancestorBytes += record.payload.count
        guard ancestors.count < BundleFormat.maxAncestors, ancestorBytes <= BundleFormat.maxAncestorBytes else {
            problem(
                .reshareInvalid,
                "the re-share chain is longer than \(BundleFormat.maxAncestors) grants or \(BundleFormat.maxAncestorBytes >> 20) MiB"
            )
            return .stop
        }
        guard Grant.hash(record.payload) == reference.hash else {
            problem(
                .parentMissing,
                "the P record at byte \(record.offset) is not the parent grant \(reference.id) (its hash differs)"
            )
            return .stop
        }
        guard let parsed = try? Grant.parse(record.payload), parsed.id == reference.id else {
            problem(.grantSignature, "the ancestor grant \(reference.id) is malformed or not validly signed")
            return .stop
        }
        ancestors.append((parsed, record.payload))
        expectedParent = parsed.parent
        return .next
    }

    /// `C`: signed by the identity's log key; each cosignature checked with the witness it names (step 4).
    private func checkCheckpoint(_ record: BundleRecord) -> Step {
        guard let identity, let key = VerifierKey(identity.logVerifierKey),
            let parsed = Checkpoint.verified(
                String(decoding: record.payload, as: UTF8.self),
                origin: identity.origin,
                publicKey: key.publicKey
            )
        else {
            problem(.checkpointInvalid, "the checkpoint is not signed by the granter's log key")
            return .stop
        }
        checkpoint = parsed
        report.cosignatures = BundleVerifier.checkCosignatures(parsed, logKey: key, witnesses: witnesses)
        for bad in report.cosignatures where bad.status == "invalid" {
            problem(
                .cosignatureInvalid,
                "the checkpoint's cosignature by \(TerminalText.escape(bad.witness)) does not verify with that witness's key"
            )
        }
        return .next
    }
}
