import AsyncHTTPClient
import CustodyArchive
import CustodyCrypto
import CustodyStorage
import Foundation
import NIOCore
import NIOHTTP1
import Synchronization

extension Puller {
    /// What a pull did besides importing: the two cosignatures exchanged.
    package struct Witnessing: Sendable {
        /// The size of the peer's checkpoint this archive cosigned (and delivered).
        package var cosignedPeerSize: Int?
        /// The size of this archive's checkpoint the peer cosigned.
        package var peerCosignedSize: Int?
        /// Why the peer did not cosign, when it did not.
        package var peerDeclined: String?
    }

    /// Witnessing on every pull: cosign the peer's checkpoint (after checking it extends the one cosigned before,
    /// refusing a fork loudly) and deliver the cosignature; have the peer cosign this archive's checkpoint.
    package static func witness(archive: Archive.Unlocked, peer alias: String) async throws -> Witnessing {
        let peer = try archive.peer(alias)
        guard let url = peer.url.flatMap(URL.init(string:)) else {
            throw ArchiveError(.damaged, "peer \(alias) has no URL", fix: "add it again with custody peer add")
        }
        let client = NodeClient(base: url, key: try archive.keys.signing)
        var report = Witnessing()
        report.cosignedPeerSize = try await cosignPeer(archive: archive, client: client, peer: peer)
        // Ours: from the size the peer cosigned last; a 409 names the size it holds, and we try once more from it.
        var from = await archive.sizeCosigned(by: peer.identity.origin) ?? 0
        for _ in 0..<2 {
            let request = try archive.ledger.consistencyProof(from: from).witnessRequest
            let (answer, text) = try await client.send(
                "v1/witness/add-checkpoint",
                method: "POST",
                body: Array(request.utf8),
                limit: Archive.maxWitnessInput
            )
            switch answer {
            case 200:
                report.peerCosignedSize = try await archive.attachCosignatures(Array(text)).first?.size
                return report
            case 409:
                from = Int(String(decoding: text, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)) ?? 0
            case 403:
                report.peerDeclined =
                    "the peer does not witness this log yet (it can: custody witness add <this archive's identity file>)"
                return report
            default:
                report.peerDeclined = "the peer refused to cosign (\(answer)\(Self.reasonSuffix(text)))"
                return report
            }
        }
        report.peerDeclined = "the peer and this archive disagree on the size it last cosigned"
        return report
    }

    /// Theirs: cosigns the peer's current checkpoint — a consistency request from the size cosigned last (or
    /// its bare checkpoint, the first time), so a fork throws here, loudly — and delivers the cosignature.
    ///
    /// - Returns: The size cosigned.
    static func cosignPeer(archive: Archive.Unlocked, client: NodeClient, peer: KnownBody) async throws -> Int {
        let (status, body): (Int, Data)
        if let stored = archive.witnessedSize(origin: peer.identity.origin) {
            (status, body) = try await client.send(
                "v1/log/consistency",
                query: "old=\(stored)",
                limit: Archive.maxWitnessInput
            )
        } else {
            (status, body) = try await client.send("v1/log/checkpoint", limit: Archive.maxWitnessInput)
        }
        guard status == 200 else { throw refusal(status, body, what: "the peer's checkpoint") }
        let cosignature = try archive.cosign(Array(body))
        let (delivered, reply) = try await client.send(
            "v1/cosignatures",
            method: "POST",
            body: Array(cosignature.line.utf8),
            limit: Archive.maxWitnessInput
        )
        guard delivered == 200 else { throw refusal(delivered, reply, what: "the cosignature delivery") }
        return cosignature.size
    }

    /// Checks the checkpoint a grant's head carries against the peer's log as this archive witnesses it, before
    /// anything of the grant is imported: the head must show the witnessed log or a prefix of it that the peer
    /// proves consistent. The witness is brought forward first when the head is newer than what it cosigned.
    ///
    /// - Throws: ``ArchiveError``: damaged (`FORK:`, both checkpoints saved under `witness/conflicts/`) for a head
    ///   of the witnessed size with another root; bad input for a head that is not signed by the peer's log key,
    ///   or that the peer cannot prove consistent (`proof-invalid`); temporary when the peer's log keeps moving.
    static func checkHead(
        _ note: String?,
        archive: Archive.Unlocked,
        client: NodeClient,
        peer: KnownBody,
        grant id: String
    ) async throws {
        guard let note, let logKey = peer.logKey,
            let shown = Checkpoint.verified(note, origin: peer.identity.origin, publicKey: logKey.publicKey)
        else {
            throw ArchiveError(
                .badInput,
                "the head of grant \(id) carries no checkpoint signed by the peer's log key",
                fix: "nothing was imported; report the peer's operators"
            )
        }
        for _ in 0..<3 {
            var witnessed = try archive.witnessedCheckpoint(origin: shown.origin)
            if (witnessed?.size ?? -1) < shown.size {
                // A head newer than the log witnessed: witness the peer's current log first (a fork throws there).
                _ = try await cosignPeer(archive: archive, client: client, peer: peer)
                witnessed = try archive.witnessedCheckpoint(origin: shown.origin)
            }
            guard let witnessed, witnessed.size >= shown.size else {
                throw ArchiveError(
                    .splitView,
                    "the head of grant \(id) shows a checkpoint of size \(shown.size), beyond the peer's log as it shows it to witnesses: it shows different logs to different parties",
                    fix: "nothing was imported; report the peer's operators"
                )
            }
            try archive.refuseFork(shown, witnessed: witnessed)
            if witnessed.size == shown.size { return }
            // An older head: the peer proves it is a prefix of its log, whose checkpoint must be the witnessed one
            // or extend it.
            let (status, body) = try await client.send(
                "v1/log/consistency",
                query: "old=\(shown.size)",
                limit: Archive.maxWitnessInput
            )
            guard status == 200 else { throw refusal(status, body, what: "the consistency of grant \(id)'s head") }
            guard let text = String(validating: Array(body), as: UTF8.self),
                let (oldSize, proof, latestNote) = try? Archive.parseWitnessRequest(text), oldSize == shown.size,
                let latest = Checkpoint.verified(latestNote, origin: shown.origin, publicKey: logKey.publicKey)
            else {
                throw ArchiveError(
                    .badInput,
                    "the peer answered the consistency request for grant \(id)'s head with no valid proof",
                    fix: "nothing was imported; report the peer's operators"
                )
            }
            try archive.refuseFork(latest, witnessed: witnessed)
            switch Merkle.consistency(
                proof,
                first: shown.size,
                second: latest.size,
                firstRoot: shown.root,
                secondRoot: latest.root
            ) {
            case .consistent:
                break
            case .inconsistent:
                // The peer's own proof shows its head is no prefix of its log: two signed logs, a fork.
                try archive.refuseFork(latest, shown: shown, proof: proof)
            case .invalid:
                throw ArchiveError(
                    .proofInvalid,
                    "proof-invalid: the peer cannot prove the checkpoint of grant \(id)'s head (size \(shown.size)) consistent with its log (size \(latest.size))",
                    fix: "nothing was imported; report the peer's operators"
                )
            }
            if latest.size == witnessed.size { return }
            guard latest.size > witnessed.size else {
                throw ArchiveError(
                    .badInput,
                    "the peer's log (size \(latest.size)) is older than the one this archive witnessed (size \(witnessed.size))",
                    fix: "nothing was imported; report the peer's operators"
                )
            }
            // Its log grew since it was witnessed: witness it forward, and check again against the new state.
            _ = try await cosignPeer(archive: archive, client: client, peer: peer)
        }
        throw ArchiveError(
            .temporary,
            "the peer's log kept growing while grant \(id)'s head was checked against it",
            fix: "pull again"
        )
    }
}
