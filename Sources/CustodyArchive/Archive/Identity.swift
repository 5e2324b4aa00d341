import CustodyCrypto
import CustodyStorage
import Foundation

/// A body's self-signed public identity (`custody id export`), as DESIGN.md pins it.
package struct Identity: Codable, Sendable, Equatable {
    /// Format version (1).
    package var version = 1
    /// Display name.
    package var name: String
    /// Log origin.
    package var origin: String
    /// Ed25519 event-signing key, base64.
    package var signingKey: String
    /// X25519 box key, base64.
    package var boxKey: String
    /// C2SP signed-note verifier key of the log: `origin+hexkeyid+base64(0x01 || key)`.
    package var logVerifierKey: String
    /// Human-comparable fingerprint.
    package var fingerprint: String
    /// Ed25519 signature by the signing key over ``signedMessage``, base64.
    package var selfSignature: String
    /// The log's origin: always ``origin`` (written for readers who look for it; not signed, checked equal).
    package var logOrigin: String?
    /// The body's latest key transitions, oldest first (at most ``KeyTransition/maxPerIdentity``): how a peer that
    /// trusted an earlier identity of this body follows its box key (not signed here: each proves itself).
    package var transitions: [KeyTransition]? = nil

    enum CodingKeys: String, CodingKey {
        case version, name, origin
        case signingKey = "signing_key"
        case boxKey = "box_key"
        case logVerifierKey = "log_verifier_key"
        case fingerprint
        case selfSignature = "self_signature"
        case logOrigin = "log_origin"
        case transitions
    }

    /// The signed message: `"custody/identity/v1\n"` then version, name, origin, signing_key, box_key,
    /// log_verifier_key and fingerprint, each followed by `"\n"`.
    package var signedMessage: [UInt8] {
        Array(
            "custody/identity/v1\n\(version)\n\(name)\n\(origin)\n\(signingKey)\n\(boxKey)\n\(logVerifierKey)\n\(fingerprint)\n"
                .utf8
        )
    }

    /// The fingerprint of a pair of public keys: SHA-256("custody/fingerprint/v1\n" || signing key || box key),
    /// first 16 bytes, as 8 groups of 4 hex digits joined by `-`.
    package static func fingerprint(signingKey: [UInt8], boxKey: [UInt8]) -> String {
        let digest = SHA256Hasher.hash(Array("custody/fingerprint/v1\n".utf8) + signingKey + boxKey)
        let hex = Array(Encoding.hex(digest.prefix(16)))
        return stride(from: 0, to: 32, by: 4).map { String(hex[$0..<($0 + 4)]) }.joined(separator: "-")
    }

    /// The C2SP verifier key string for an Ed25519 log key.
    package static func verifierKey(origin: String, publicKey: [UInt8]) -> String {
        let keyID = SHA256Hasher.hash(Array(origin.utf8) + [0x0A, 0x01] + publicKey).prefix(4)
        return "\(origin)+\(Encoding.hex(keyID))+\(Encoding.base64([0x01] + publicKey))"
    }

    /// What is wrong with this identity, or `nil` when it may be used.
    ///
    /// The one check every identity passes before it is used or stored, wherever it came from (an identity
    /// file given to `grant create --to`, `witness add`, `peer add`, `submit --to`, `bundle verify --granter`;
    /// a bundle's `I` record, trusted by `--trust-granter`; `bodies.json` and `identity.json` when read back):
    /// version 1; the name a display name (``OutsideInput/isDisplayName(_:)``: no control, format or
    /// line-separator character, NFC, 1 to 200 bytes); the origin a log origin (``OutsideInput/isOrigin(_:)``);
    /// `log_origin` absent or equal to it; 32-byte keys; a log verifier key for that origin; the fingerprint
    /// of the keys; and a valid self-signature. A name that could recolour a terminal or pose as another body's
    /// line is refused here, before anything prints it.
    package var problem: String? {
        guard version == 1 else { return "its version is not 1" }
        guard OutsideInput.isDisplayName(name) else {
            return
                "its name is not a valid display name (control, format or line-separator characters, not NFC, or over \(OutsideInput.maxNameBytes) bytes)"
        }
        guard OutsideInput.isOrigin(origin) else {
            return "its origin is not a valid log origin (printable ASCII without spaces or '+', at most 200 bytes)"
        }
        guard logOrigin == nil || logOrigin == origin else { return "its log_origin differs from its origin" }
        guard let signing = Encoding.bytes(base64: signingKey), signing.count == 32,
            let box = Encoding.bytes(base64: boxKey), box.count == 32
        else { return "its keys are not 32-byte base64 keys" }
        guard VerifierKey(logVerifierKey)?.name == origin else { return "its log key does not belong to its origin" }
        guard fingerprint == Self.fingerprint(signingKey: signing, boxKey: box) else {
            return "its fingerprint does not match its keys"
        }
        if let transitions {
            guard transitions.count <= KeyTransition.maxPerIdentity, transitions.allSatisfy(\.isWellFormed) else {
                return
                    "its transitions are not at most \(KeyTransition.maxPerIdentity) \(KeyTransition.formatName) documents"
            }
        }
        guard let signature = Encoding.bytes(base64: selfSignature),
            SigningKey.isValidSignature(signature, for: signedMessage, publicKey: signing)
        else { return "it is not validly self-signed (altered, or not from custody id export)" }
        return nil
    }

    /// Whether the identity passes every check of ``problem``.
    package var isValid: Bool { problem == nil }

    /// Parses and checks an identity received from outside: at most 64 KiB of JSON that passes ``problem``.
    ///
    /// - Parameters:
    ///   - bytes: The identity file's bytes.
    ///   - source: What to call it in an error (a file name, "the peer's identity").
    /// - Returns: The identity, checked.
    /// - Throws: ``ArchiveError`` (bad input, exit 65) naming what is wrong.
    package static func parse(_ bytes: [UInt8], source: String) throws -> Identity {
        let shown = TerminalText.escape(source)
        guard bytes.count <= 64 * 1024, let identity = try? JSONDecoder().decode(Identity.self, from: Data(bytes))
        else {
            throw ArchiveError(
                .badInput,
                "\(shown) is not an identity file",
                fix: "ask the body for the output of custody id export"
            )
        }
        if let problem = identity.problem {
            throw ArchiveError(
                .identityInvalid,
                "\(shown) is refused: \(problem)",
                fix:
                    "ask the body for a fresh copy of custody id export and compare its fingerprint with them out of band"
            )
        }
        return identity
    }

    /// Pretty JSON with sorted keys.
    package func jsonBytes() throws -> [UInt8] {
        try JSONFormat.fileBytes(self)
    }
}
