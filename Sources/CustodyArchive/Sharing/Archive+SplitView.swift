import CustodyCrypto
import CustodyStorage
import Foundation

/// Split views: a granter that shows one log to the grant endpoints (in bundles and heads) and another to its
/// witnesses. Every checkpoint a bundle carries is compared with what this archive has witnessed of that log
/// before anything is imported (Docs/SHARING.md section 7, Docs/PROTOCOL.md "Pull").
extension ArchiveContext {
    /// The last checkpoint of `origin`'s log this archive cosigned, checked with the log key of the known body
    /// it belongs to; `nil` when it has witnessed none.
    ///
    /// - Throws: ``ArchiveError`` (damaged) when the stored checkpoint does not verify.
    package func witnessedCheckpoint(origin: String) throws -> Checkpoint? {
        let path = witnessStatePath(origin: origin)
        guard POSIX.lstatPath(path) != nil else { return nil }
        guard let body = try knownBody(origin: origin, role: .witness), let key = body.logKey else { return nil }
        let bytes = try ArchiveFiles.read(path, limit: Checkpoint.maxNoteBytes)
        guard
            let checkpoint = Checkpoint.verified(
                String(decoding: bytes, as: UTF8.self),
                origin: origin,
                publicKey: key.publicKey
            )
        else {
            throw ArchiveError(
                .damaged,
                "the stored checkpoint of \(origin) (\(path)) is not valid",
                fix: "restore the witness/ folder from a backup"
            )
        }
        return checkpoint
    }

    /// Refuses, as a fork, a checkpoint of the same size as the one witnessed of its log but with another root —
    /// two validly signed checkpoints that cannot both be true — and saves both as evidence.
    ///
    /// - Throws: ``ArchiveError`` (damaged, `FORK:`) for such a pair; nothing is saved otherwise.
    package func refuseFork(_ shown: Checkpoint, witnessed: Checkpoint) throws {
        guard shown.size == witnessed.size, shown.root != witnessed.root else { return }
        let evidence = try saveConflict(witnessed, shown)
        throw ArchiveError(
            .fork,
            "FORK: \(shown.origin) shows a checkpoint of size \(shown.size) (root \(Encoding.base64(shown.root))) that differs from the one of the same size witnessed before (root \(Encoding.base64(witnessed.root))): it shows different logs to different parties; nothing was imported",
            fix: "keep both signed checkpoints (saved in \(evidence)) as evidence and alert \(shown.origin)'s operators"
        )
    }

    /// Refuses, as a fork, a checkpoint `shown` that a consistency proof leading to the signed `later` shows is no
    /// prefix of it, and saves both with that proof as evidence.
    ///
    /// - Throws: ``ArchiveError`` (damaged, `FORK:`), always.
    package func refuseFork(_ later: Checkpoint, shown: Checkpoint, proof: [[UInt8]]) throws -> Never {
        let proofText = "old \(shown.size)\n" + proof.map { Encoding.base64($0) + "\n" }.joined() + "\n"
        let evidence = try saveConflict(shown, later, proof: proofText)
        throw ArchiveError(
            .fork,
            "FORK: \(shown.origin) shows a checkpoint of size \(shown.size) that its own log of size \(later.size) proves it never had: it shows different logs to different parties; nothing was imported",
            fix: "keep both signed checkpoints (saved in \(evidence)) as evidence and alert \(shown.origin)'s operators"
        )
    }

    /// Checks a bundle's checkpoint against what this archive witnessed of the granter's log, as far as that is
    /// possible offline: a checkpoint of the witnessed size must have the witnessed root.
    func checkAgainstWitnessed(_ checkpoint: Checkpoint) throws {
        guard let witnessed = try witnessedCheckpoint(origin: checkpoint.origin) else { return }
        try refuseFork(checkpoint, witnessed: witnessed)
    }

    /// The signing keys of the bodies this archive knows, and its own, by origin: the witnesses whose
    /// cosignatures on a bundle's checkpoint it can check.
    func witnessKeys() throws -> [String: [UInt8]] {
        var keys: [String: [UInt8]] = [:]
        for body in try knownBodies() {
            if let key = Encoding.bytes(base64: body.identity.signingKey), key.count == 32 {
                keys[body.identity.origin] = key
            }
        }
        keys[config.origin] = signingPublicKey
        return keys
    }
}
