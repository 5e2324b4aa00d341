import CustodyCrypto
import Foundation

/// C2SP `tlog-checkpoint` bodies, `signed-note` Ed25519 signatures and `tlog-cosignature` (cosignature/v1) lines.
///
/// A note is its body (text ending in `"\n"`), an empty line, then one line per signature:
/// `"— " name " " base64(key id (4 bytes) || signature)`. For Ed25519 (type 0x01) the key id is the first
/// 4 bytes of SHA-256(name || 0x0A || 0x01 || public key) and the signature covers the body bytes.
/// A cosignature (type 0x04) line carries key id || 8-byte big-endian timestamp || Ed25519 signature over
/// `"cosignature/v1\ntime <timestamp>\n" || checkpoint body`, with key id from type byte 0x04.
package enum SignedNote {
    /// The em dash and space that start every signature line.
    static let linePrefix = "\u{2014} "
    /// Signature type byte of a plain Ed25519 note signature.
    package static let ed25519Type: UInt8 = 0x01
    /// Signature type byte of a timestamped Ed25519 cosignature.
    package static let cosignatureType: UInt8 = 0x04

    /// A signature line, parsed.
    package struct Signature: Sendable, Equatable {
        /// The key name.
        package var name: String
        /// Key id and signature bytes, as carried in the line.
        package var payload: [UInt8]
    }

    /// The checkpoint body: origin, decimal size, base64 root, each ending in `"\n"`.
    package static func checkpointBody(origin: String, size: Int, root: [UInt8]) -> String {
        "\(origin)\n\(size)\n\(Encoding.base64(root))\n"
    }

    /// The 4-byte key id of `publicKey` under `name` for signature `type`.
    package static func keyID(name: String, publicKey: [UInt8], type: UInt8) -> [UInt8] {
        Array(SHA256Hasher.hash(Array(name.utf8) + [0x0A, type] + publicKey).prefix(4))
    }

    /// Signs `body` and returns the whole note text.
    package static func sign(body: String, name: String, key: SigningKey) -> String {
        body + "\n" + signatureLine(body: body, name: name, key: key)
    }

    /// The Ed25519 signature line of `body`, ending in `"\n"`.
    package static func signatureLine(body: String, name: String, key: SigningKey) -> String {
        let payload =
            keyID(name: name, publicKey: key.publicKey, type: ed25519Type) + key.signature(for: Array(body.utf8))
        return linePrefix + name + " " + Encoding.base64(payload) + "\n"
    }

    /// A cosignature line of the checkpoint `body` at `timestamp` (seconds since the epoch), ending in `"\n"`.
    package static func cosignatureLine(body: String, name: String, key: SigningKey, timestamp: UInt64) -> String {
        let time = bigEndianBytes(timestamp)
        let signature = key.signature(for: cosignedMessage(body: body, timestamp: timestamp))
        let payload = keyID(name: name, publicKey: key.publicKey, type: cosignatureType) + time + signature
        return linePrefix + name + " " + Encoding.base64(payload) + "\n"
    }

    static func cosignedMessage(body: String, timestamp: UInt64) -> [UInt8] {
        Array("cosignature/v1\ntime \(timestamp)\n\(body)".utf8)
    }

    /// Splits a note into its body and signature lines; `nil` when it is not a well-formed note.
    package static func parse(_ note: String) -> (body: String, signatures: [Signature])? {
        guard note.utf8.count <= 1 << 20, let split = note.range(of: "\n\n") else { return nil }
        let body = String(note[..<split.lowerBound]) + "\n"
        let rest = note[split.upperBound...]
        guard rest.hasSuffix("\n") else { return nil }
        var signatures: [Signature] = []
        for line in rest.dropLast().split(separator: "\n", omittingEmptySubsequences: false) {
            guard let signature = parseSignatureLine(line) else { return nil }
            signatures.append(signature)
        }
        guard !signatures.isEmpty else { return nil }
        return (body, signatures)
    }

    /// Parses one signature line (without its newline): `"— " name " " base64(key id || signature)`.
    package static func parseSignatureLine(_ line: Substring) -> Signature? {
        guard line.hasPrefix(linePrefix) else { return nil }
        let fields = line.dropFirst(linePrefix.count).split(separator: " ", omittingEmptySubsequences: false)
        guard fields.count == 2, !fields[0].isEmpty, let payload = Encoding.bytes(base64: String(fields[1])),
            payload.count >= 4
        else { return nil }
        return Signature(name: String(fields[0]), payload: payload)
    }

    /// The text of a signature line, ending in `"\n"`.
    package static func line(_ signature: Signature) -> String {
        linePrefix + signature.name + " " + Encoding.base64(signature.payload) + "\n"
    }

    /// Whether `note` carries a valid Ed25519 signature by `publicKey` under `name`.
    package static func isSigned(_ note: String, name: String, publicKey: [UInt8]) -> Bool {
        guard let (body, signatures) = parse(note) else { return false }
        return signatures.contains { isValid($0, body: body, name: name, publicKey: publicKey) }
    }

    /// Whether one signature line is a valid Ed25519 note signature of `body` by `publicKey` under `name`.
    package static func isValid(_ signature: Signature, body: String, name: String, publicKey: [UInt8]) -> Bool {
        signature.name == name && signature.payload.count == 68
            && Array(signature.payload.prefix(4)) == keyID(name: name, publicKey: publicKey, type: ed25519Type)
            && SigningKey.isValidSignature(
                Array(signature.payload.dropFirst(4)),
                for: Array(body.utf8),
                publicKey: publicKey
            )
    }

    /// The timestamp of a valid cosignature of `body` by `publicKey` under `name`, or `nil`.
    package static func cosignatureTime(
        _ signature: Signature,
        body: String,
        name: String,
        publicKey: [UInt8]
    ) -> UInt64? {
        guard signature.name == name, signature.payload.count == 76,
            Array(signature.payload.prefix(4)) == keyID(name: name, publicKey: publicKey, type: cosignatureType)
        else { return nil }
        let timestamp = bigEndianValue(signature.payload[4..<12])
        let valid = SigningKey.isValidSignature(
            Array(signature.payload.dropFirst(12)),
            for: cosignedMessage(body: body, timestamp: timestamp),
            publicKey: publicKey
        )
        return valid ? timestamp : nil
    }
}
