import CustodyCrypto
import CustodyStorage
import Foundation

/// The public configuration of an archive (`archive.json`).
package struct ArchiveConfig: Codable, Sendable {
    /// Always `custody-archive`.
    package var format = "custody-archive"
    /// Format version (1).
    package var version = 1
    /// Display name.
    package var name: String
    /// Log origin (no spaces, no `+`).
    package var origin: String
    /// When the archive was created.
    package var createdAt: String
    /// Plaintext chunk size in bytes.
    package var chunkSize: Int
    /// Ed25519 public key that signs events, base64.
    package var signingKey: String
    /// X25519 public key that wrapped keys are sealed to, base64.
    package var boxKey: String
    /// Ed25519 public key that signs log checkpoints, base64.
    package var logKey: String

    enum CodingKeys: String, CodingKey {
        case format, version, name, origin
        case createdAt = "created_at"
        case chunkSize = "chunk_size"
        case signingKey = "signing_key"
        case boxKey = "box_key"
        case logKey = "log_key"
    }
}

/// The sealed key file (`keys.json`, mode 0600): the archive's secrets under a passphrase.
///
/// Plaintext (96 bytes) = master secret || Ed25519 seed || X25519 secret, sealed with XChaCha20-Poly1305 under
/// Argon2id(passphrase, salt, opslimit, memlimit), associated data
/// `"custody/keyfile/v1\n" + signing_key + "\n" + box_key` (base64), so swapped public keys fail to open.
package struct KeyFile: Codable, Sendable {
    /// Argon2id parameters.
    package struct KDF: Codable, Sendable {
        /// Always `argon2id13`.
        package var algorithm = "argon2id13"
        /// Passes.
        package var opsLimit: UInt64
        /// Memory in bytes.
        package var memLimit: UInt64
        /// 16-byte salt, base64.
        package var salt: String
        /// The preset name (`interactive`, `moderate`, `sensitive`, or `insecure-test`).
        package var preset: String

        enum CodingKeys: String, CodingKey {
            case algorithm = "alg"
            case opsLimit = "opslimit"
            case memLimit = "memlimit"
            case salt, preset
        }
    }

    /// Always `custody-keys`.
    package var format = "custody-keys"
    /// Format version (1).
    package var version = 1
    /// Key derivation.
    package var kdf: KDF
    /// 24-byte nonce, base64.
    package var nonce: String
    /// Sealed secrets, base64.
    package var ciphertext: String

    static func associatedData(signingKey: String, boxKey: String) -> [UInt8] {
        Array("custody/keyfile/v1\n\(signingKey)\n\(boxKey)".utf8)
    }

    /// Seals `secrets` (96 bytes) under `passphrase`.
    static func seal(
        _ secrets: SecretBytes,
        passphrase: SecretBytes,
        parameters: PasswordHash.Parameters,
        preset: String,
        config: ArchiveConfig
    ) throws -> KeyFile {
        let salt = randomBytes(PasswordHash.saltByteCount)
        let key = try PasswordHash.deriveKey(passphrase: passphrase, salt: salt, parameters: parameters)
        let nonce = randomBytes(XChaCha20Poly1305.nonceByteCount)
        let ad = associatedData(signingKey: config.signingKey, boxKey: config.boxKey)
        let sealed = secrets.withUnsafeBytes { s in
            key.withUnsafeBytes { k in
                nonce.withUnsafeBytes { n in
                    ad.withUnsafeBytes { a in XChaCha20Poly1305.seal(s, key: k, nonce: n, associatedData: a) }
                }
            }
        }
        return KeyFile(
            kdf: KDF(
                opsLimit: parameters.opsLimit,
                memLimit: parameters.memLimit,
                salt: Encoding.base64(salt),
                preset: preset
            ),
            nonce: Encoding.base64(nonce),
            ciphertext: Encoding.base64(sealed)
        )
    }

    /// Opens the key file with `passphrase`.
    ///
    /// - Throws: ``ArchiveError`` (not authorised) for a wrong passphrase; (damaged) for a malformed file.
    func open(passphrase: SecretBytes, config: ArchiveConfig) throws -> SecretBytes {
        let parameters = PasswordHash.Parameters(opsLimit: kdf.opsLimit, memLimit: kdf.memLimit)
        guard kdf.algorithm == "argon2id13", parameters.isAcceptable,
            let salt = Encoding.bytes(base64: kdf.salt), salt.count == PasswordHash.saltByteCount,
            let nonce = Encoding.bytes(base64: self.nonce), nonce.count == XChaCha20Poly1305.nonceByteCount,
            let sealed = Encoding.bytes(base64: ciphertext), sealed.count == 96 + XChaCha20Poly1305.tagByteCount
        else {
            throw ArchiveError(.damaged, "the key file keys.json is malformed", fix: "restore it from your backup")
        }
        let key = try PasswordHash.deriveKey(passphrase: passphrase, salt: salt, parameters: parameters)
        let ad = Self.associatedData(signingKey: config.signingKey, boxKey: config.boxKey)
        var plaintext: [UInt8]
        do {
            plaintext = try key.withUnsafeBytes { k in
                try XChaCha20Poly1305.open(sealed, key: Array(k), nonce: nonce, associatedData: ad)
            }
        } catch {
            throw ArchiveError(
                .wrongPassphrase,
                "wrong passphrase (or keys.json does not belong to this archive.json)",
                fix: "check the passphrase and try again"
            )
        }
        defer { wipe(&plaintext) }
        return try SecretBytes(copying: plaintext)
    }
}

/// The unlocked secrets of an archive, in guarded memory.
package struct ArchiveKeys: Sendable {
    /// The 32-byte master secret.
    let master: SecretBytes
    /// The convergence secret (derived from the master; never leaves the archive).
    package let convergence: SecretBytes
    /// The event-signing key.
    package let signing: SigningKey
    /// The key-wrapping key.
    package let box: BoxKey
    /// The checkpoint-signing key (derived from the master).
    package let log: SigningKey

    /// KDF contexts of the derived keys (8 bytes each).
    enum Context {
        static let convergence = "cstdconv"
        static let log = "cstdlog_"
    }

    /// Rebuilds every key from the 96 secret bytes of the key file.
    init(secrets: SecretBytes) throws {
        master = try secrets.withUnsafeBytes { try SecretBytes(copying: UnsafeRawBufferPointer(rebasing: $0[0..<32])) }
        let seed = try secrets.withUnsafeBytes {
            try SecretBytes(copying: UnsafeRawBufferPointer(rebasing: $0[32..<64]))
        }
        let boxSecret = try secrets.withUnsafeBytes {
            try SecretBytes(copying: UnsafeRawBufferPointer(rebasing: $0[64..<96]))
        }
        signing = try SigningKey(seed: seed)
        box = try BoxKey(secretKey: boxSecret)
        convergence = try SubkeyDerivation.derive(from: master, id: 1, context: Context.convergence)
        log = try SigningKey(seed: SubkeyDerivation.derive(from: master, id: 2, context: Context.log))
    }

    /// Fresh random secrets: 96 bytes for the key file.
    static func generateSecrets() throws -> SecretBytes { try SecretBytes(randomCount: 96) }

    /// Wraps `key` for `item` to `recipient` (`crypto_box_seal(item id || key)`).
    package static func wrap(_ key: [UInt8], item: ItemID, to recipient: [UInt8]) throws -> String {
        var plaintext = item.bytes + key
        defer { wipe(&plaintext) }
        return Encoding.base64(try BoxKey.seal(plaintext, to: recipient))
    }

    /// Unwraps a key wrapped to this archive and checks that it belongs to `item`.
    package func unwrap(_ wrapped: String, item: ItemID) throws -> [UInt8] {
        guard let sealed = Encoding.bytes(base64: wrapped), sealed.count == 16 + 32 + BoxKey.sealOverhead else {
            throw ArchiveError(.damaged, "a wrapped key of item \(item) is malformed", fix: "run custody verify")
        }
        var opened: [UInt8]
        do {
            opened = try box.open(sealed)
        } catch {
            throw ArchiveError(
                .damaged,
                "a wrapped key of item \(item) does not open",
                fix: "run custody verify --deep"
            )
        }
        defer { wipe(&opened) }
        guard Array(opened[0..<16]) == item.bytes else {
            throw ArchiveError(.damaged, "a wrapped key was moved to item \(item)", fix: "run custody verify --deep")
        }
        return Array(opened[16...])
    }
}
