import CustodyArchive
import CustodyStorage
import Foundation

extension Puller {
    /// A peer answered 410 for grant `id`: when the answer carries a revocation notice, checks it against what this
    /// archive knows (``Archive/verifyRevocationNotice(_:grant:)``: the granter's registered keys, the grant as
    /// stored here), checks the notice's checkpoint of the peer's own log against what this archive witnesses of
    /// it, exactly like a head's (``checkHead(_:archive:client:peer:grant:)``: a revocation shown on a forked log is
    /// a fork), and records it (``Archive/recordRevocation(_:)``); a notice that does not verify fails the pull
    /// loudly and records nothing. Without a notice (an expired grant, a grant never imported here, an older
    /// peer), nothing is recorded.
    ///
    /// - Parameters:
    ///   - archive: The pulling archive.
    ///   - client: The client of the peer's node.
    ///   - peer: The peer.
    ///   - id: The grant the peer refused.
    ///   - body: The 410 answer's body.
    ///   - wanted: The pull asked for this grant alone: a revoked or expired grant is then an error (77).
    ///   - notes: Told why, when the grant is skipped without a revocation being recorded.
    /// - Throws: ``ArchiveError``: bad input (65) for a malformed notice, verification failed (1) for a forged
    ///   one, not authorised (77) when the grant was asked for by id.
    static func gone(
        archive: Archive.Unlocked,
        client: NodeClient,
        peer: KnownBody,
        grant id: String,
        body: Data,
        wanted: Bool,
        notes: (@Sendable (String) -> Void)? = nil
    ) async throws {
        let alias = peer.alias ?? peer.identity.origin
        let bytes = Array(body.prefix(RevocationNotice.maxBytes + 1))
        var recorded: ReceivedRevocation?
        var unrecorded: (notice: RevocationNotice, why: String)?
        // A notice is a JSON object that is not a reason code (`{"error": "<code>"}`, PROTOCOL.md section 3.1).
        if Reason.code(inPeerBody: bytes) == nil,
            bytes.first(where: { $0 != 0x20 && $0 != 0x0A && $0 != 0x0D && $0 != 0x09 }) == UInt8(ascii: "{")
        {
            func relayed(_ error: ArchiveError) -> ArchiveError {
                ArchiveError(
                    error.reason,
                    "peer \(alias) answered 410 for grant \(id): \(error.problem)",
                    fix: error.fix
                )
            }
            // The notice of this grant, or (from a re-sharer) of an ancestor grant this archive also holds.
            var verified: VerifiedRevocation?
            do {
                verified = try await archive.verifyRevocationNotice(bytes)
            } catch let error as ArchiveError where error.code == .notFound {
                // A grant this archive never received: it holds nothing to mark.
                unrecorded = RevocationNotice.parse(bytes).map { ($0, "this archive holds nothing under it") }
            } catch let error as ArchiveError
                where error.code == .notAuthorised && RevocationNotice.parse(bytes)?.grant != id
            {
                // A re-sharer relays its parent's notice, whose granter this archive does not know: not checkable.
                unrecorded = RevocationNotice.parse(bytes).map { ($0, "its granter is not a body this archive knows") }
            } catch let error as ArchiveError {
                throw relayed(error)
            }
            if let verified {
                guard verified.grant.id == id || verified.descendants.contains(id) else {
                    throw ArchiveError(
                        .damaged,
                        "peer \(alias) answered 410 for grant \(id) with a revocation notice of grant \(verified.grant.id), which it does not re-share; nothing was recorded",
                        fix: "check the peer; pull again"
                    )
                }
                do {
                    if verified.grant.id == id {
                        try await checkHead(
                            verified.notice.checkpoint,
                            archive: archive,
                            client: client,
                            peer: peer,
                            grant: id
                        )
                    }
                    recorded = try await archive.recordRevocation(verified)
                } catch let error as ArchiveError {
                    throw relayed(error)
                }
            }
        }
        guard wanted else {
            // Nothing recorded and nothing to pull: the operator is still told why.
            if recorded == nil {
                let why =
                    unrecorded.map {
                        "the peer sent a revocation notice of grant \($0.notice.grant) (revoked at \(TerminalText.escape($0.notice.revokedAt))), not recorded: \($0.why)"
                    }
                    ?? Reason.code(inPeerBody: bytes).map { "the peer's reason: \($0)" } ?? "the peer gave no reason"
                notes?("grant \(id) is no longer valid (410): \(why)")
            }
            return
        }
        if let recorded {
            throw ArchiveError(
                .grantRevoked,
                "grant \(id) is no longer valid: revoked by \(TerminalText.escape(recorded.revokedBy)) at \(recorded.revokedAt) (the signed revocation notice is recorded here)",
                fix: "ask the granting body for a new grant"
            )
        }
        if let unrecorded {
            // Revoked, the peer says, but the notice could not be recorded: not valid for this archive either.
            throw ArchiveError(
                .grantNotValid,
                "grant \(id) is no longer valid: the peer sent a revocation notice of grant \(unrecorded.notice.grant) (revoked at \(TerminalText.escape(unrecorded.notice.revokedAt))), not recorded: \(unrecorded.why)",
                fix: "ask the granting body for a new grant"
            )
        }
        throw refusal(410, body, what: "grant \(id)")
    }
}
