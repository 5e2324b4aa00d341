import CustodyCrypto
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

    enum CodingKeys: String, CodingKey {
        case version, name, origin
        case signingKey = "signing_key"
        case boxKey = "box_key"
        case logVerifierKey = "log_verifier_key"
        case fingerprint
        case selfSignature = "self_signature"
        case logOrigin = "log_origin"
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

    /// Checks the self-signature and that the fingerprint matches the keys.
    package var isValid: Bool {
        guard let signing = Encoding.bytes(base64: signingKey), let box = Encoding.bytes(base64: boxKey),
            let signature = Encoding.bytes(base64: selfSignature), version == 1,
            logOrigin == nil || logOrigin == origin,
            fingerprint == Self.fingerprint(signingKey: signing, boxKey: box)
        else { return false }
        return SigningKey.isValidSignature(signature, for: signedMessage, publicKey: signing)
    }

    /// Pretty JSON with sorted keys.
    package func jsonBytes() throws -> [UInt8] {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .prettyPrinted, .withoutEscapingSlashes]
        return Array(try encoder.encode(self)) + [0x0A]
    }
}
