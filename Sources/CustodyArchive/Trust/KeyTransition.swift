import CustodyCrypto
import Foundation

/// A journal entry proved to be in a body's log: the entry, its index, its RFC 9162 audit path and the signed
/// checkpoint the path leads to — the form of every statement one body hands another about its own log (a
/// revocation notice, a key transition).
package struct ProvedEntry: Sendable {
    /// The event, its archive signature checked.
    package var event: Event
    /// The checkpoint the entry is proved in, its signature checked.
    package var checkpoint: Checkpoint

    /// Why a proved entry was refused.
    package enum Failure: Error, Sendable, CustomStringConvertible {
        case checkpointUnsigned(origin: String)
        case entryMalformed(maxBytes: Int)
        case notProved(index: Int)
        case entryUnsigned(origin: String)

        package var description: String {
            switch self {
            case .checkpointUnsigned(let origin): "the checkpoint is not signed by \(origin)'s log key"
            case .entryMalformed(let max): "the entry is not base64 of at most \(max) bytes"
            case .notProved(let index): "the entry is not proved to be entry \(index) of the signed checkpoint"
            case .entryUnsigned(let origin): "the entry is not signed by \(origin)'s signing key"
            }
        }
    }

    /// Checks an entry (base64) proved at `index` by `proof` (base64 hashes, leaf to root) in the checkpoint
    /// `note`, against the body's log key and signing key.
    package static func verify(
        entry: String,
        index: Int,
        proof: [String],
        checkpoint note: String,
        origin: String,
        logKey: [UInt8],
        signingKey: [UInt8],
        maxEntryBytes: Int
    ) -> Result<ProvedEntry, Failure> {
        guard let checkpoint = Checkpoint.verified(note, origin: origin, publicKey: logKey) else {
            return .failure(.checkpointUnsigned(origin: origin))
        }
        guard entry.utf8.count <= maxEntryBytes * 4 / 3 + 4, let bytes = Encoding.bytes(base64: entry),
            bytes.count <= maxEntryBytes
        else { return .failure(.entryMalformed(maxBytes: maxEntryBytes)) }
        let hashes = proof.compactMap { Encoding.bytes(base64: $0) }.filter { $0.count == Merkle.hashByteCount }
        guard hashes.count == proof.count, proof.count <= 64, index >= 0, index < checkpoint.size,
            let root = Merkle.root(
                fromInclusionProof: hashes,
                leafHash: Merkle.leafHash(bytes),
                index: index,
                size: checkpoint.size
            ), constantTimeEqual(root, checkpoint.root)
        else { return .failure(.notProved(index: index)) }
        guard let event = try? Event.parse(bytes, publicKey: signingKey) else {
            return .failure(.entryUnsigned(origin: origin))
        }
        return .success(ProvedEntry(event: event, checkpoint: checkpoint))
    }
}

/// A **key transition** (Docs/LEDGER.md section 19): a body's `key-rotation` entry, which its signing key signed
/// and which names the new box key and the one it replaces, proved in its log. A body's identity file carries its
/// latest transitions (``Identity/transitions``), so a peer that knows the old identity follows the new box key
/// without re-trusting by hand — the statement is signed by the key the peer already trusts and is part of the
/// log its witnesses see.
///
/// JSON: `{"checkpoint", "entry", "format": "custody-key-transition/v1", "index", "proof": [...]}`.
package struct KeyTransition: Codable, Sendable, Equatable {
    /// The format tag.
    package static let formatName = "custody-key-transition/v1"
    /// The largest `entry` (a `key-rotation` event is well under 2 KiB).
    static let maxEntryBytes = 8 * 1024
    /// The most transitions an identity file carries (the latest ones).
    package static let maxPerIdentity = 8

    /// ``formatName``.
    package var format: String
    /// The `key-rotation` entry's index in the body's log.
    package var index: Int
    /// The journal entry bytes, base64.
    package var entry: String
    /// Its RFC 9162 audit path to the checkpoint's root, base64 hashes, leaf to root.
    package var proof: [String]
    /// The body's signed checkpoint note.
    package var checkpoint: String

    /// Whether the transition has the documented form (no signature checked).
    var isWellFormed: Bool {
        format == Self.formatName && index >= 0 && proof.count <= 64 && proof.allSatisfy { $0.utf8.count == 44 }
            && entry.utf8.count <= Self.maxEntryBytes * 4 / 3 + 4 && checkpoint.utf8.count <= Checkpoint.maxNoteBytes
    }

    /// What a verified transition says: the box key replaced and its successor (both base64), and where.
    package struct Step: Sendable, Equatable {
        package var previous: String
        package var next: String
        package var index: Int
        package var time: String
        package var checkpoint: Checkpoint
    }

    /// Checks the transition against a body's `origin`, log key and signing key.
    ///
    /// - Returns: The step, or `nil` when the checkpoint, the proof or the signature fails, or the entry is not a
    ///   `key-rotation` of that body naming two 32-byte box keys.
    package func verified(origin: String, logKey: [UInt8], signingKey: [UInt8]) -> Step? {
        guard isWellFormed,
            case .success(let proved) = ProvedEntry.verify(
                entry: entry,
                index: index,
                proof: proof,
                checkpoint: checkpoint,
                origin: origin,
                logKey: logKey,
                signingKey: signingKey,
                maxEntryBytes: Self.maxEntryBytes
            )
        else { return nil }
        let event = proved.event
        guard event.type == .keyRotation, event.actor == origin, let next = event.boxKey,
            let previous = event.previousBoxKey, next != previous,
            Encoding.bytes(base64: next)?.count == 32, Encoding.bytes(base64: previous)?.count == 32
        else { return nil }
        return Step(previous: previous, next: next, index: index, time: event.time, checkpoint: proved.checkpoint)
    }
}

extension Identity {
    /// The steps by which `self` follows from `known`, an identity of the same body trusted earlier: same origin,
    /// name, signing key and log key, and a chain of ``transitions`` — each verified with those keys — leading from
    /// `known`'s box key to this one's. `nil` when there is no such chain (another body, or a forged step).
    package func transitionSteps(from known: Identity) -> [KeyTransition.Step]? {
        guard origin == known.origin, name == known.name, signingKey == known.signingKey,
            logVerifierKey == known.logVerifierKey, boxKey != known.boxKey,
            let signing = Encoding.bytes(base64: signingKey), signing.count == 32,
            let logKey = VerifierKey(logVerifierKey)?.publicKey
        else { return nil }
        let steps = (transitions ?? []).compactMap { $0.verified(origin: origin, logKey: logKey, signingKey: signing) }
        guard steps.count == (transitions ?? []).count else { return nil }
        var current = known.boxKey
        var path: [KeyTransition.Step] = []
        var lastIndex = -1
        for step in steps.sorted(by: { $0.index < $1.index }) {
            guard step.index > lastIndex else { return nil }
            lastIndex = step.index
            if step.previous == current {
                path.append(step)
                current = step.next
            } else if !path.isEmpty {
                return nil  // a gap after the chain began
            }
        }
        return current == boxKey && !path.isEmpty ? path : nil
    }

    /// The box keys this identity proves it had: its own and, newest first, those its transitions replaced
    /// (each transition verified with the identity's own signing and log keys).
    package var provedBoxKeys: [String] {
        guard let signing = Encoding.bytes(base64: signingKey), signing.count == 32,
            let logKey = VerifierKey(logVerifierKey)?.publicKey
        else { return [boxKey] }
        var keys = [boxKey]
        var current = boxKey
        let steps = (transitions ?? []).compactMap { $0.verified(origin: origin, logKey: logKey, signingKey: signing) }
        for step in steps.sorted(by: { $0.index > $1.index }) where step.next == current {
            keys.append(step.previous)
            current = step.previous
        }
        return keys
    }
}
