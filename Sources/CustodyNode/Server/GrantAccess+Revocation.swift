import CustodyArchive
import CustodyCrypto
import CustodyStorage
import Hummingbird

extension NodeServer {
    /// The media type of a 410 answer that carries a revocation notice (Docs/PROTOCOL.md section 3).
    static let revocationNoticeType = "application/vnd.custody.revocation+json"

    /// The 410 refusal of the requester's own grant that this node revoked: answered with the signed revocation
    /// notice (the `revoke` event with its inclusion proof against this node's checkpoint), so the grantee can
    /// record, verifiably, that the grant was revoked. When no notice can be made, the reason code `grant-revoked`.
    static func revokedRefusal(
        grant id: String,
        at time: String,
        archive: some ArchiveContext
    ) async -> ServerRefusal {
        if let notice = try? await archive.revocationNotice(grant: id) {
            return ServerRefusal(.grantRevoked, answer: response(.gone, notice, type: revocationNoticeType))
        }
        return ServerRefusal(.grantRevoked, detail: "no revocation notice could be made")
    }

    /// The 410 refusal of a child grant whose ancestor `ancestor` was revoked: answered with the ancestor's
    /// granter's notice, as this node received and verified it, when it holds one (the grantee can check it
    /// against the ancestor granter's identity, if it knows it); otherwise the reason code `ancestor-revoked`.
    static func revokedAncestorRefusal(
        grant id: String,
        ancestor: GrantSummary,
        archive: some ArchiveContext
    ) async -> ServerRefusal {
        if let received = ancestor.revocation, let name = ObjectName(hex: received.notice),
            let bytes = try? await archive.store.read(name, limit: RevocationNotice.maxBytes),
            ObjectName(of: bytes) == name
        {
            return ServerRefusal(.ancestorRevoked, answer: response(.gone, bytes, type: revocationNoticeType))
        }
        return ServerRefusal(.ancestorRevoked)
    }
}
