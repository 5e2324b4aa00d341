internal import CSodium

/// Argon2id passphrase hashing (`crypto_pwhash`), which seals the key file.
package enum PasswordHash {
    /// Salt length in bytes.
    package static let saltByteCount = 16

    /// Argon2id cost parameters, stored in the key file.
    package struct Parameters: Sendable, Equatable, Codable {
        /// Passes over memory.
        package var opsLimit: UInt64
        /// Memory in bytes.
        package var memLimit: UInt64

        /// Creates parameters.
        package init(opsLimit: UInt64, memLimit: UInt64) {
            self.opsLimit = opsLimit
            self.memLimit = memLimit
        }

        /// libsodium's INTERACTIVE limits (the default): 2 passes, 64 MiB.
        package static var interactive: Self {
            .init(
                opsLimit: UInt64(crypto_pwhash_opslimit_interactive()),
                memLimit: UInt64(crypto_pwhash_memlimit_interactive())
            )
        }
        /// libsodium's MODERATE limits: 3 passes, 256 MiB.
        package static var moderate: Self {
            .init(
                opsLimit: UInt64(crypto_pwhash_opslimit_moderate()),
                memLimit: UInt64(crypto_pwhash_memlimit_moderate())
            )
        }
        /// libsodium's SENSITIVE limits: 4 passes, 1 GiB.
        package static var sensitive: Self {
            .init(
                opsLimit: UInt64(crypto_pwhash_opslimit_sensitive()),
                memLimit: UInt64(crypto_pwhash_memlimit_sensitive())
            )
        }
        /// The minimum limits (1 pass, 8 KiB). Insecure: for tests only, and marked so in the key file.
        package static var insecureTest: Self {
            .init(opsLimit: UInt64(crypto_pwhash_opslimit_min()), memLimit: UInt64(crypto_pwhash_memlimit_min()))
        }

        /// Whether the parameters are within libsodium's accepted bounds and a sane ceiling (4 GiB, 64 passes).
        package var isAcceptable: Bool {
            opsLimit >= UInt64(crypto_pwhash_opslimit_min()) && opsLimit <= 64
                && memLimit >= UInt64(crypto_pwhash_memlimit_min()) && memLimit <= 4 << 30
        }
    }

    /// Derives a 32-byte key from `passphrase` and `salt` with Argon2id v1.3.
    ///
    /// - Throws: ``SodiumError/Code/operationFailed`` when Argon2id cannot allocate its memory.
    package static func deriveKey(
        passphrase: SecretBytes,
        salt: [UInt8],
        parameters: Parameters
    ) throws -> SecretBytes {
        guard salt.count == saltByteCount, parameters.isAcceptable else {
            throw SodiumError(code: .invalidInput, function: "crypto_pwhash")
        }
        return try SecretBytes(count: 32) { out, count in
            let result = passphrase.withUnsafeBytes { pw in
                salt.withUnsafeBytes { s in
                    CSodium_pwhash_argon2id(
                        out,
                        count,
                        pw.baseAddress,
                        pw.count,
                        s.baseAddress,
                        parameters.opsLimit,
                        Int(parameters.memLimit)
                    )
                }
            }
            guard result == 0 else { throw SodiumError(code: .operationFailed, function: "crypto_pwhash") }
        }
    }
}

/// Subkey derivation from the archive's master secret (`crypto_kdf_derive_from_key`, BLAKE2b based).
package enum SubkeyDerivation {
    /// Derives a 32-byte subkey.
    ///
    /// - Parameters:
    ///   - master: The 32-byte master secret.
    ///   - id: The subkey number.
    ///   - context: Exactly 8 ASCII characters naming the purpose.
    /// - Returns: The subkey, in guarded memory.
    /// - Throws: ``SodiumError`` when the master secret has the wrong length or memory runs out.
    package static func derive(from master: SecretBytes, id: UInt64, context: String) throws -> SecretBytes {
        let contextBytes = Array(context.utf8)
        precondition(contextBytes.count == 8, "crypto_kdf context must be 8 bytes")
        guard master.count == 32 else { throw SodiumError(code: .invalidInput, function: "crypto_kdf_derive_from_key") }
        return try SecretBytes(count: 32) { out, count in
            master.withUnsafeBytes { key in
                contextBytes.withUnsafeBytes { ctx in
                    _ = CSodium_kdf_derive(out, count, id, ctx.baseAddress, key.baseAddress)
                }
            }
        }
    }
}
