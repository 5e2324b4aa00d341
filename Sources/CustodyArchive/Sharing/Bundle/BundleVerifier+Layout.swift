import CustodyCrypto
import CustodyStorage
import Foundation

extension BundleVerifier {
    /// The objects of an item's origin event that a grant of `permission` releases first, in order: the metadata
    /// part, then (content) the content part, the chunk list if any, and the inline chunks' distinct names in
    /// stream order.
    static func coreObjects(of origin: Event, permission: Grant.Permission) -> [ObjectRef] {
        guard let objects = origin.objects else { return [] }
        guard permission == .content, let content = objects.content else { return [objects.meta] }
        var core = [objects.meta, content]
        if let list = objects.chunkList { core.append(list) }
        var seen = Set(core.map(\.name))
        for chunk in objects.chunks ?? [] where seen.insert(chunk.name).inserted { core.append(chunk) }
        return core
    }

    /// What is wrong with the order and extent of an item's released objects, or `nil`.
    static func layoutFault(
        _ item: GrantedItem,
        origin: Event,
        tail: [ObjectRef],
        permission: Grant.Permission
    ) -> String? {
        let core = coreObjects(of: origin, permission: permission)
        let objects = item.objects
        let chunked = permission == .content && origin.objects?.chunkList != nil
        guard objects.count >= core.count + tail.count, Array(objects.prefix(core.count)) == core,
            Array(objects.suffix(tail.count)) == tail, chunked || objects.count == core.count + tail.count
        else {
            return "the grant's objects for the item are not its signed events' objects in the documented order"
        }
        return nil
    }

    /// For each released chunk list, every item naming it and the chunks each releases behind it (to compare with
    /// the list's distinct chunks when the list itself arrives).
    static func chunkListLayouts(
        _ grant: Grant,
        origins: [ItemID: Event],
        tails: [ItemID: [ObjectRef]]
    ) -> [ObjectName: [(item: ItemID, chunks: [ObjectName])]] {
        guard grant.permission == .content else { return [:] }
        var layouts: [ObjectName: [(item: ItemID, chunks: [ObjectName])]] = [:]
        for item in grant.items {
            guard let origin = origins[item.id], let list = origin.objects?.chunkList else { continue }
            let core = coreObjects(of: origin, permission: grant.permission).count
            let tail = tails[item.id]?.count ?? 0
            guard item.objects.count >= core + tail else { continue }
            let chunks = item.objects[core..<(item.objects.count - tail)].map(\.name)
            layouts[list.name, default: []].append((item.id, chunks))
        }
        return layouts
    }

    /// Checks each cosignature line of `checkpoint` with the key of the witness it names.
    static func checkCosignatures(
        _ checkpoint: Checkpoint,
        logKey: VerifierKey,
        witnesses: [String: [UInt8]]
    ) -> [CosignatureCheck] {
        guard let (body, signatures) = SignedNote.parse(checkpoint.note) else { return [] }
        let logID = SignedNote.keyID(name: logKey.name, publicKey: logKey.publicKey, type: SignedNote.ed25519Type)
        var checks: [CosignatureCheck] = []
        for signature in signatures {
            if signature.name == logKey.name, signature.payload.count == 68,
                Array(signature.payload.prefix(4)) == logID,
                SigningKey.isValidSignature(
                    Array(signature.payload.dropFirst(4)),
                    for: Array(body.utf8),
                    publicKey: logKey.publicKey
                )
            {
                continue  // the log's own signature
            }
            guard let key = witnesses[signature.name] else {
                let status = signature.name == logKey.name ? "invalid" : "unchecked"
                checks.append(CosignatureCheck(witness: signature.name, status: status))
                continue
            }
            if let time = SignedNote.cosignatureTime(signature, body: body, name: signature.name, publicKey: key) {
                let seconds = Int(clamping: time)
                checks.append(CosignatureCheck(witness: signature.name, status: "valid", time: RFC3339.format(seconds)))
            } else {
                checks.append(CosignatureCheck(witness: signature.name, status: "invalid"))
            }
        }
        return checks
    }
}
