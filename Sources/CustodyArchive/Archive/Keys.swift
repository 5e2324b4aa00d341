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
    /// The box keys this archive had before its key rotations, oldest first, base64 (absent before the first).
    package var retiredBoxKeys: [String]? = nil

    /// Every box key the archive has had: the current one, then the retired ones, newest first.
    package var boxKeys: [String] { [boxKey] + (retiredBoxKeys ?? []).reversed() }

    enum CodingKeys: String, CodingKey {
        case format, version, name, origin
        case createdAt = "created_at"
        case chunkSize = "chunk_size"
        case signingKey = "signing_key"
        case boxKey = "box_key"
        case logKey = "log_key"
        case retiredBoxKeys = "retired_box_keys"
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
        let sealed = try PassphraseSeal.seal(
            secrets,
            passphrase: passphrase,
            parameters: parameters,
            preset: preset,
            associatedData: associatedData(signingKey: config.signingKey, boxKey: config.boxKey)
        )
        return KeyFile(kdf: sealed.kdf, nonce: sealed.nonce, ciphertext: sealed.ciphertext)
    }

    /// Opens the key file with `passphrase`.
    ///
    /// - Throws: ``ArchiveError`` (not authorised) for a wrong passphrase; (damaged) for a malformed file.
    func open(passphrase: SecretBytes, config: ArchiveConfig) throws -> SecretBytes {
        try PassphraseSeal(kdf: kdf, nonce: nonce, ciphertext: ciphertext).open(
            passphrase: passphrase,
            byteCount: 96,
            associatedData: Self.associatedData(signingKey: config.signingKey, boxKey: config.boxKey),
            malformed: ArchiveError(
                .damaged,
                "the key file keys.json is malformed",
                fix: "restore it from your backup"
            ),
            wrong: ArchiveError(
                .wrongPassphrase,
                "wrong passphrase (or keys.json does not belong to this archive.json)",
                fix: "check the passphrase and try again"
            )
        )
    }
}

/// Secrets sealed under a passphrase: XChaCha20-Poly1305 under Argon2id(passphrase, salt, opslimit, memlimit),
/// with associated data that binds them to the public keys they belong to. The key file and every member key
/// file use it.
struct PassphraseSeal {
    var kdf: KeyFile.KDF
    /// 24-byte nonce, base64.
    var nonce: String
    /// Sealed secrets, base64.
    var ciphertext: String

    /// Seals `secrets` under `passphrase`.
    static func seal(
        _ secrets: SecretBytes,
        passphrase: SecretBytes,
        parameters: PasswordHash.Parameters,
        preset: String,
        associatedData ad: [UInt8]
    ) throws -> PassphraseSeal {
        let salt = randomBytes(PasswordHash.saltByteCount)
        let key = try PasswordHash.deriveKey(passphrase: passphrase, salt: salt, parameters: parameters)
        let nonce = randomBytes(XChaCha20Poly1305.nonceByteCount)
        let sealed = secrets.withUnsafeBytes { s in
            key.withUnsafeBytes { k in
                nonce.withUnsafeBytes { n in
                    ad.withUnsafeBytes { a in XChaCha20Poly1305.seal(s, key: k, nonce: n, associatedData: a) }
                }
            }
        }
        return PassphraseSeal(
            kdf: KeyFile.KDF(
                opsLimit: parameters.opsLimit,
                memLimit: parameters.memLimit,
                salt: Encoding.base64(salt),
                preset: preset
            ),
            nonce: Encoding.base64(nonce),
            ciphertext: Encoding.base64(sealed)
        )
    }

    /// Opens the sealed secrets (exactly `byteCount` bytes) with `passphrase`.
    ///
    /// - Throws: `malformed` when the parameters, salt, nonce or length are not what they must be (checked before
    ///   Argon2id runs, so a planted file cannot make it allocate more than 4 GiB); `wrong` when the passphrase (or
    ///   the associated data) does not open them.
    func open(
        passphrase: SecretBytes,
        byteCount: Int,
        associatedData ad: [UInt8],
        malformed: ArchiveError,
        wrong: ArchiveError
    ) throws -> SecretBytes {
        let parameters = PasswordHash.Parameters(opsLimit: kdf.opsLimit, memLimit: kdf.memLimit)
        guard kdf.algorithm == "argon2id13", parameters.isAcceptable,
            let salt = Encoding.bytes(base64: kdf.salt), salt.count == PasswordHash.saltByteCount,
            let nonce = Encoding.bytes(base64: self.nonce), nonce.count == XChaCha20Poly1305.nonceByteCount,
            let sealed = Encoding.bytes(base64: ciphertext), sealed.count == byteCount + XChaCha20Poly1305.tagByteCount
        else { throw malformed }
        let key = try PasswordHash.deriveKey(passphrase: passphrase, salt: salt, parameters: parameters)
        var plaintext: [UInt8]
        do {
            plaintext = try key.withUnsafeBytes { k in
                try XChaCha20Poly1305.open(sealed, key: Array(k), nonce: nonce, associatedData: ad)
            }
        } catch {
            throw wrong
        }
        defer { wipe(&plaintext) }
        return try SecretBytes(copying: plaintext)
    }
}

/// The unlocked secrets of an archive, in guarded memory.
///
/// An administrator holds them all, from the 96 bytes of the key file (master secret ‖ Ed25519 seed ‖ X25519
/// secret). Other members who open items (records officers, investigators) hold everything derived from the
/// master but not the master itself (``Share/opener``), so only an administrator can make a new member's share
/// or a recovery split; field staff hold none of these (``DepositKeys``).
///
/// After a key rotation (`custody keys rotate`, Docs/FORMAT.md section 4.3) the master secret and the box key are
/// new, the log seed is carried explicitly (it no longer derives from the master), and the box secrets of earlier
/// rotations are kept as **retired** keys: they open what was sealed to the archive before (revocation and
/// removal reasons, grants received from bodies that have not yet followed the rotation) and nothing after it.
package struct ArchiveKeys: Sendable {
    /// The 32-byte master secret; `nil` for a member who is not an administrator.
    let master: SecretBytes?
    /// The convergence secret (derived from the master; never leaves the archive).
    package let convergence: SecretBytes
    /// The event-signing key.
    package let signing: SigningKey
    /// The key-wrapping key.
    package let box: BoxKey
    /// The checkpoint-signing key (derived from the master, or carried explicitly after a rotation).
    package let log: SigningKey
    /// The box keys of earlier rotations, oldest first.
    package let retired: [BoxKey]
    private let signingSeed: SecretBytes
    private let boxSecret: SecretBytes
    private let logSeed: SecretBytes
    private let retiredSecrets: [SecretBytes]

    /// The most retired box keys a share carries (one per rotation).
    static let maxRetired = 64

    /// KDF contexts of the derived keys (8 bytes each).
    enum Context {
        static let convergence = "cstdconv"
        static let log = "cstdlog_"
    }

    /// Rebuilds every key from the 96 secret bytes of the key file.
    init(secrets: SecretBytes) throws {
        let master = try Self.slice(secrets, 0..<32)
        try self.init(
            master: master,
            signingSeed: Self.slice(secrets, 32..<64),
            boxSecret: Self.slice(secrets, 64..<96),
            convergence: Self.convergence(of: master),
            logSeed: SubkeyDerivation.derive(from: master, id: 2, context: Context.log),
            retired: []
        )
    }

    private init(
        master: SecretBytes?,
        signingSeed: SecretBytes,
        boxSecret: SecretBytes,
        convergence: SecretBytes,
        logSeed: SecretBytes,
        retired: [SecretBytes]
    ) throws {
        self.master = master
        self.signingSeed = signingSeed
        self.boxSecret = boxSecret
        self.logSeed = logSeed
        self.convergence = convergence
        retiredSecrets = retired
        signing = try SigningKey(seed: signingSeed)
        box = try BoxKey(secretKey: boxSecret)
        log = try SigningKey(seed: logSeed)
        self.retired = try retired.map { try BoxKey(secretKey: $0) }
    }

    static func convergence(of master: SecretBytes) throws -> SecretBytes {
        try SubkeyDerivation.derive(from: master, id: 1, context: Context.convergence)
    }

    static func slice(_ secrets: SecretBytes, _ range: Range<Int>) throws -> SecretBytes {
        try secrets.withUnsafeBytes { try SecretBytes(copying: UnsafeRawBufferPointer(rebasing: $0[range])) }
    }

    /// Fresh random secrets: 96 bytes for the key file.
    static func generateSecrets() throws -> SecretBytes { try SecretBytes(randomCount: 96) }

    /// Whether these are an administrator's keys (the master secret with them).
    package var isComplete: Bool { master != nil }

    /// Whether the keys have been rotated (their share is written in the rotated forms).
    var isRotated: Bool { !retired.isEmpty }

    /// The keys after a rotation: a fresh master secret (so a fresh convergence secret) and a fresh box key; the
    /// signing and log keys stay (peers and witnesses keep verifying with them); the current box key retires.
    ///
    /// - Throws: ``ArchiveError`` (not authorised) for keys without the master, or at ``maxRetired`` rotations.
    func rotated() throws -> ArchiveKeys {
        guard master != nil else {
            throw ArchiveError(
                .notAuthorised,
                "only an administrator can rotate the archive's keys",
                fix: "run the command as an administrator (--member NAME)"
            )
        }
        guard retired.count < Self.maxRetired else {
            throw ArchiveError(
                .usage,
                "this archive's keys were rotated \(Self.maxRetired) times already",
                fix: "make a new archive and move the items to it with a grant"
            )
        }
        let master = try SecretBytes(randomCount: 32)
        return try ArchiveKeys(
            master: master,
            signingSeed: signingSeed,
            boxSecret: SecretBytes(randomCount: 32),
            convergence: Self.convergence(of: master),
            logSeed: logSeed,
            retired: retiredSecrets + [boxSecret]
        )
    }

    /// The part of the archive's secrets a member of each kind holds (Docs/FORMAT.md section 4.1).
    package enum Share: UInt8, Sendable {
        /// An administrator: master ‖ Ed25519 seed ‖ X25519 secret (96 bytes), everything.
        case complete = 1
        /// A member who opens items: Ed25519 seed ‖ X25519 secret ‖ convergence secret ‖ log seed (128 bytes).
        case opener = 2
        /// Field staff: Ed25519 seed ‖ log seed (64 bytes); nothing that opens an item or names its chunks.
        case depositor = 3
        /// An administrator after a rotation: master ‖ Ed25519 seed ‖ X25519 secret ‖ log seed ‖ the retired X25519
        /// secrets, oldest first (128 + 32·n bytes, 1 ≤ n ≤ 64).
        case rotatedComplete = 4
        /// A member who opens items, after a rotation: the opener's 128 bytes ‖ the retired X25519 secrets.
        case rotatedOpener = 5

        /// The share a member of `role` holds.
        package init(role: Role) {
            switch role {
            case .admin: self = .complete
            case .recordsOfficer, .investigator: self = .opener
            case .fieldStaff: self = .depositor
            }
        }

        /// Whether a share of this kind may be `count` bytes long.
        func allows(byteCount count: Int) -> Bool {
            switch self {
            case .complete: count == 96
            case .opener: count == 128
            case .depositor: count == 64
            case .rotatedComplete, .rotatedOpener:
                count > 128 && (count - 128) % 32 == 0 && (count - 128) / 32 <= ArchiveKeys.maxRetired
            }
        }

        /// Whether the share holds the master secret.
        var isComplete: Bool { self == .complete || self == .rotatedComplete }
    }

    /// The share of `kind` as written: its kind byte (a rotated form once the keys were rotated) and its secret
    /// bytes; `nil` for a complete share asked of keys without the master.
    func share(_ kind: Share) throws -> (kind: Share, secrets: SecretBytes)? {
        var parts: [SecretBytes]
        var written = kind
        switch kind {
        case .complete, .rotatedComplete:
            guard let master else { return nil }
            parts = [master, signingSeed, boxSecret]
            if isRotated {
                parts += [logSeed] + retiredSecrets
                written = .rotatedComplete
            } else {
                written = .complete
            }
        case .opener, .rotatedOpener:
            parts = [signingSeed, boxSecret, convergence, logSeed]
            if isRotated {
                parts += retiredSecrets
                written = .rotatedOpener
            } else {
                written = .opener
            }
        case .depositor: parts = [signingSeed, logSeed]
        }
        var joined: [UInt8] = []
        defer { wipe(&joined) }
        for part in parts { part.withUnsafeBytes { joined += $0 } }
        return (written, try SecretBytes(copying: joined))
    }

    /// The secret bytes of `share`; `nil` for a complete share asked of keys without the master.
    func bytes(of share: Share) throws -> SecretBytes? { try self.share(share)?.secrets }

    /// The keys of an administrator's or an opener's share; `nil` for a depositor's share (``DepositKeys``).
    init?(share: Share, secrets: SecretBytes) throws {
        func retired(from start: Int) throws -> [SecretBytes] {
            try stride(from: start, to: secrets.count, by: 32).map { try Self.slice(secrets, $0..<($0 + 32)) }
        }
        switch share {
        case .complete: try self.init(secrets: secrets)
        case .rotatedComplete:
            let master = try Self.slice(secrets, 0..<32)
            try self.init(
                master: master,
                signingSeed: Self.slice(secrets, 32..<64),
                boxSecret: Self.slice(secrets, 64..<96),
                convergence: Self.convergence(of: master),
                logSeed: Self.slice(secrets, 96..<128),
                retired: retired(from: 128)
            )
        case .opener, .rotatedOpener:
            try self.init(
                master: nil,
                signingSeed: Self.slice(secrets, 0..<32),
                boxSecret: Self.slice(secrets, 32..<64),
                convergence: Self.slice(secrets, 64..<96),
                logSeed: Self.slice(secrets, 96..<128),
                retired: share == .rotatedOpener ? retired(from: 128) : []
            )
        case .depositor: return nil
        }
    }

    /// Wraps `key` for `item` to `recipient` (`crypto_box_seal(item id || key)`).
    package static func wrap(_ key: [UInt8], item: ItemID, to recipient: [UInt8]) throws -> String {
        var plaintext = item.bytes + key
        defer { wipe(&plaintext) }
        return Encoding.base64(try BoxKey.seal(plaintext, to: recipient))
    }

    /// Opens something sealed (`crypto_box_seal`) to this archive: with the box key, else with a retired one (it
    /// was sealed before a rotation); `nil` when none opens it.
    package func open(_ sealed: [UInt8]) throws -> [UInt8]? {
        for key in [box] + retired.reversed() {
            if let opened = try? key.open(sealed) { return opened }
        }
        return nil
    }

    /// The public keys this archive's box keys have had: the current one and the retired ones.
    package var boxPublicKeys: [[UInt8]] { [box.publicKey] + retired.map(\.publicKey) }

    /// Unwraps a key wrapped to this archive and checks that it belongs to `item`.
    package func unwrap(_ wrapped: String, item: ItemID) throws -> [UInt8] {
        guard let sealed = Encoding.bytes(base64: wrapped), sealed.count == 16 + 32 + BoxKey.sealOverhead else {
            throw ArchiveError(.damaged, "a wrapped key of item \(item) is malformed", fix: "run custody verify")
        }
        guard var opened = try open(sealed) else {
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

/// What field staff hold: the keys that sign events and checkpoints, the archive's public box key that item keys
/// are sealed to, and a convergence secret of their own — so they can add items but open none (not even their
/// own, once added), and their chunks deduplicate only among their own uploads: they cannot tell whether a file
/// is already held (Docs/THREAT-MODEL.md section 7).
package struct DepositKeys: Sendable {
    /// The event-signing key.
    package let signing: SigningKey
    /// The checkpoint-signing key.
    package let log: SigningKey
    /// The member's own convergence secret (derived from their personal X25519 secret).
    package let convergence: SecretBytes
    /// The archive's X25519 public key, which wraps item keys.
    package let boxPublicKey: [UInt8]

    /// KDF context of the member's own convergence secret.
    static let convergenceContext = "cstdfcnv"

    init(share secrets: SecretBytes, personalBox: SecretBytes, boxPublicKey: [UInt8]) throws {
        signing = try SigningKey(seed: ArchiveKeys.slice(secrets, 0..<32))
        log = try SigningKey(seed: ArchiveKeys.slice(secrets, 32..<64))
        convergence = try SubkeyDerivation.derive(from: personalBox, id: 1, context: Self.convergenceContext)
        self.boxPublicKey = boxPublicKey
    }
}
