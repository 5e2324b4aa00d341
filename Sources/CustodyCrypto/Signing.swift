internal import CSodium

/// An Ed25519 signing key pair whose secret half lives in guarded memory.
package struct SigningKey: Sendable {
    /// Public key length in bytes.
    package static let publicKeyByteCount = 32
    /// Seed length in bytes.
    package static let seedByteCount = 32
    /// Signature length in bytes.
    package static let signatureByteCount = 64

    private let secretKey: SecretBytes  // libsodium's 64-byte form: seed || public key
    /// The 32-byte public key.
    package let publicKey: [UInt8]

    /// Derives the key pair from a 32-byte seed (deterministic).
    ///
    /// - Throws: ``SodiumError`` when the seed has the wrong length or memory cannot be allocated.
    package init(seed: SecretBytes) throws {
        guard seed.count == Self.seedByteCount else {
            throw SodiumError(code: .invalidInput, function: "crypto_sign_seed_keypair")
        }
        var publicKey = [UInt8](repeating: 0, count: Self.publicKeyByteCount)
        secretKey = try SecretBytes(count: 64) { secret, _ in
            seed.withUnsafeBytes { seedBytes in
                publicKey.withUnsafeMutableBytes { pk in
                    _ = CSodium_sign_seed_keypair(pk.baseAddress, secret, seedBytes.baseAddress)
                }
            }
        }
        self.publicKey = publicKey
    }

    /// Signs `message` (detached).
    ///
    /// - Returns: The 64-byte signature.
    package func signature(for message: [UInt8]) -> [UInt8] {
        var signature = [UInt8](repeating: 0, count: Self.signatureByteCount)
        secretKey.withUnsafeBytes { sk in
            message.withUnsafeBytes { m in
                signature.withUnsafeMutableBytes { sig in
                    _ = CSodium_sign_detached(sig.baseAddress, m.baseAddress, m.count, sk.baseAddress)
                }
            }
        }
        return signature
    }

    /// Checks an Ed25519 signature.
    ///
    /// - Returns: `true` only for a valid signature of `message` by `publicKey`.
    package static func isValidSignature(_ signature: [UInt8], for message: [UInt8], publicKey: [UInt8]) -> Bool {
        guard signature.count == signatureByteCount, publicKey.count == publicKeyByteCount else { return false }
        try? Sodium.ensureInitialized()
        return signature.withUnsafeBytes { sig in
            message.withUnsafeBytes { m in
                publicKey.withUnsafeBytes { pk in
                    CSodium_sign_verify_detached(sig.baseAddress, m.baseAddress, m.count, pk.baseAddress) == 0
                }
            }
        }
    }
}

/// An X25519 key pair for `crypto_box_seal`, the key-wrapping primitive.
package struct BoxKey: Sendable {
    /// Public key length in bytes.
    package static let publicKeyByteCount = 32
    /// Secret key length in bytes.
    package static let secretKeyByteCount = 32
    /// Bytes a sealed box adds to its plaintext (ephemeral key and tag).
    package static let sealOverhead = 48

    private let secretKey: SecretBytes
    /// The 32-byte public key.
    package let publicKey: [UInt8]

    /// Rebuilds the key pair from its 32-byte secret.
    package init(secretKey: SecretBytes) throws {
        guard secretKey.count == Self.secretKeyByteCount else {
            throw SodiumError(code: .invalidInput, function: "crypto_scalarmult_base")
        }
        var publicKey = [UInt8](repeating: 0, count: Self.publicKeyByteCount)
        secretKey.withUnsafeBytes { sk in
            publicKey.withUnsafeMutableBytes { pk in _ = CSodium_scalarmult_base(pk.baseAddress, sk.baseAddress) }
        }
        self.secretKey = secretKey
        self.publicKey = publicKey
    }

    /// Seals `plaintext` to `recipient` anonymously (`crypto_box_seal`).
    ///
    /// - Returns: `plaintext.count + 48` bytes.
    package static func seal(_ plaintext: [UInt8], to recipient: [UInt8]) throws(SodiumError) -> [UInt8] {
        guard recipient.count == publicKeyByteCount else {
            throw SodiumError(code: .invalidInput, function: "crypto_box_seal")
        }
        try Sodium.ensureInitialized()
        var out = [UInt8](repeating: 0, count: plaintext.count + sealOverhead)
        let result = out.withUnsafeMutableBytes { c in
            plaintext.withUnsafeBytes { m in
                recipient.withUnsafeBytes { pk in
                    CSodium_box_seal(c.baseAddress, m.baseAddress, m.count, pk.baseAddress)
                }
            }
        }
        guard result == 0 else { throw SodiumError(code: .operationFailed, function: "crypto_box_seal") }
        return out
    }

    /// Opens a sealed box addressed to this key.
    ///
    /// - Throws: ``SodiumError/Code/authenticationFailed`` when it was not sealed to this key or was altered.
    package func open(_ sealed: [UInt8]) throws(SodiumError) -> [UInt8] {
        guard sealed.count >= Self.sealOverhead else {
            throw SodiumError(code: .invalidInput, function: "crypto_box_seal_open")
        }
        var out = [UInt8](repeating: 0, count: sealed.count - Self.sealOverhead)
        let result = out.withUnsafeMutableBytes { m in
            sealed.withUnsafeBytes { c in
                publicKey.withUnsafeBytes { pk in
                    secretKey.withUnsafeBytes { sk in
                        CSodium_box_seal_open(m.baseAddress, c.baseAddress, c.count, pk.baseAddress, sk.baseAddress)
                    }
                }
            }
        }
        guard result == 0 else { throw SodiumError(code: .authenticationFailed, function: "crypto_box_seal_open") }
        return out
    }
}
