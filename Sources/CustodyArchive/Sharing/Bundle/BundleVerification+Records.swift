import CustodyCrypto
import CustodyStorage
import Foundation

extension BundleVerification {
    /// `E`: a well-formed record after the last good one, proved in the checkpoint, signed by the granter
    /// (step 5); its event is kept when it concerns the grant (``keep(_:index:grant:)``).
    func checkEntry(_ record: BundleRecord) -> Step {
        guard let identity, let checkpoint, let grant, let signing = Encoding.bytes(base64: identity.signingKey)
        else { return .stop }
        guard let (entryRecord, entry) = BundleFormat.EntryRecord.parse(record.payload) else {
            problem(.entryInvalid, "the ledger entry record at byte \(record.offset) is malformed")
            return .next
        }
        let index = entryRecord.index
        guard index > lastIndex else {
            problem(.entryInvalid, "ledger entry \(index) is out of order or repeated", entry: index)
            return .next
        }
        lastIndex = index
        let proof = entryRecord.proof.compactMap { Encoding.bytes(base64: $0) }
        guard proof.count == entryRecord.proof.count, index < checkpoint.size,
            Merkle.root(
                fromInclusionProof: proof,
                leafHash: Merkle.leafHash(entry),
                index: index,
                size: checkpoint.size
            ) == checkpoint.root
        else {
            problem(
                .proofInvalid,
                "ledger entry \(index) is not proved to be in the granter's signed log of size \(checkpoint.size)",
                entry: index
            )
            return .next
        }
        guard let (event, envelope) = try? Event.parseEnvelope(entry, publicKey: signing) else {
            problem(.entryInvalid, "ledger entry \(index) is not signed by the granter", entry: index)
            return .next
        }
        keep(event, envelope: envelope, index: index, grant: grant)
        return .next
    }

    /// Keeps a proved event when it is the grant's `grant` event, or an origin or annotation of a granted item:
    /// only events of the grant's items are kept, a bounded number of each, so memory stays bounded.
    private func keep(_ event: Event, envelope: SignedEnvelope, index: Int, grant: Grant) {
        if event.type == .grant, event.grant == GrantReference(id: grant.id, hash: Grant.hash(signedGrant)) {
            if !grantLogged { grantEvent = (index, event, envelope) }
            grantLogged = true
            return
        }
        if event.type.changesRoster {
            // The granter's roster, to check who granted (step 6); bounded like the roster itself.
            guard rosterEvents.count < Roster.maxMembers * 4 else {
                problem(.entryInvalid, "the bundle proves more roster events than a roster can have", entry: index)
                return
            }
            rosterEvents.append((index, event, envelope))
            return
        }
        guard let item = event.item, grantedItems.contains(item) else { return }
        if event.type == .ingest || event.type == .import {
            if origins[item] == nil { origins[item] = event }
        } else if event.type == .tag || event.type == .note, let ref = event.annotation {
            guard (tails[item]?.count ?? 0) < BundleFormat.maxAnnotationsPerItem else {
                problem(
                    .entryInvalid,
                    "the bundle proves more than \(BundleFormat.maxAnnotationsPerItem) annotations of one item",
                    item: item.hex,
                    entry: index
                )
                return
            }
            annotations[item, default: []].append(event)
            tails[item, default: []].append(ref)
        }
    }

    /// `O`: a named object in the grant's order (step 7), handed to the workers to be checked.
    func checkObject(_ record: BundleRecord) -> Step {
        guard record.payload.count >= 32 else {
            report.objects += 1
            problem(.bundleDamaged, "the object record at byte \(record.offset) is too short")
            return .next
        }
        guard let claimed = ObjectName(hex: Encoding.hex(record.payload[0..<32])) else { return .next }
        if !layoutsKnown, let grant {
            objects.expectChunkLists(BundleVerifier.chunkListLayouts(grant, origins: origins, tails: tails))
            layoutsKnown = true
        }
        // In the grant's order (SHARING.md section 3): each O is a released object after the one before it
        // (skipped ones are reported missing unless they come later: then they are out of order).
        if let position = expectedPositions[claimed], position >= nextObject {
            nextObject = position + 1
        } else if expectedPositions[claimed] != nil, !objects.hasSeen(claimed) {
            problem(
                .objectOrder,
                "the object record at byte \(record.offset) is not the next object the grant releases",
                object: claimed.hex
            )
        }
        // Hashing (and the caller's work, e.g. staging) runs in a child task; reading goes on.
        pendingObject = (claimed, Array(record.payload[32...]))
        return .next
    }
}
