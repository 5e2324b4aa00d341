internal import CSodium

/// XChaCha20-Poly1305 (IETF), the cipher of every chunk, sealed part and key file.
package enum XChaCha20Poly1305 {
    /// Key length in bytes.
    package static let keyByteCount = 32
    /// Nonce length in bytes.
    package static let nonceByteCount = 24
    /// Authentication tag length in bytes.
    package static let tagByteCount = 16

    /// Encrypts `plaintext` and appends the 16-byte tag.
    ///
    /// - Parameters:
    ///   - plaintext: The bytes to encrypt.
    ///   - key: 32 bytes.
    ///   - nonce: 24 bytes; never reuse a nonce with the same key for a different plaintext.
    ///   - associatedData: Bytes authenticated but not encrypted.
    /// - Returns: `ciphertext || tag`, `plaintext.count + 16` bytes.
    package static func seal(
        _ plaintext: UnsafeRawBufferPointer,
        key: UnsafeRawBufferPointer,
        nonce: UnsafeRawBufferPointer,
        associatedData: UnsafeRawBufferPointer
    ) -> [UInt8] {
        precondition(key.count == keyByteCount && nonce.count == nonceByteCount, "bad key or nonce length")
        var out = [UInt8](repeating: 0, count: plaintext.count + tagByteCount)
        out.withUnsafeMutableBytes { ciphertext in
            // Every pointer is valid for its buffer's count for the duration of the call.
            _ = CSodium_xchacha_seal(
                ciphertext.baseAddress,
                plaintext.baseAddress,
                plaintext.count,
                associatedData.baseAddress,
                associatedData.count,
                nonce.baseAddress,
                key.baseAddress
            )
        }
        return out
    }

    /// Decrypts `ciphertext || tag`.
    ///
    /// - Returns: The plaintext, `ciphertext.count - 16` bytes.
    /// - Throws: ``SodiumError/Code/authenticationFailed`` when the tag, key, nonce or associated data do not match.
    package static func open(
        _ ciphertext: UnsafeRawBufferPointer,
        key: UnsafeRawBufferPointer,
        nonce: UnsafeRawBufferPointer,
        associatedData: UnsafeRawBufferPointer
    ) throws(SodiumError) -> [UInt8] {
        guard key.count == keyByteCount, nonce.count == nonceByteCount, ciphertext.count >= tagByteCount else {
            throw SodiumError(code: .invalidInput, function: "crypto_aead_xchacha20poly1305_ietf_decrypt")
        }
        var out = [UInt8](repeating: 0, count: ciphertext.count - tagByteCount)
        let result = out.withUnsafeMutableBytes { plaintext in
            CSodium_xchacha_open(
                plaintext.baseAddress,
                ciphertext.baseAddress,
                ciphertext.count,
                associatedData.baseAddress,
                associatedData.count,
                nonce.baseAddress,
                key.baseAddress
            )
        }
        guard result == 0 else {
            throw SodiumError(code: .authenticationFailed, function: "crypto_aead_xchacha20poly1305_ietf_decrypt")
        }
        return out
    }

    /// Array convenience for ``seal(_:key:nonce:associatedData:)``.
    package static func seal(_ plaintext: [UInt8], key: [UInt8], nonce: [UInt8], associatedData: [UInt8]) -> [UInt8] {
        withBuffers([plaintext, key, nonce, associatedData]) { b in
            seal(b[0], key: b[1], nonce: b[2], associatedData: b[3])
        }
    }

    /// Array convenience for ``open(_:key:nonce:associatedData:)``.
    package static func open(
        _ ciphertext: [UInt8],
        key: [UInt8],
        nonce: [UInt8],
        associatedData: [UInt8]
    ) throws(SodiumError) -> [UInt8] {
        let result: Result<[UInt8], SodiumError> = withBuffers([ciphertext, key, nonce, associatedData]) { b in
            do throws(SodiumError) {
                return .success(try open(b[0], key: b[1], nonce: b[2], associatedData: b[3]))
            } catch {
                return .failure(error)
            }
        }
        return try result.get()
    }
}

/// The XChaCha20 keystream (`crypto_stream_xchacha20`), used to fill padding with bytes no one can predict.
package enum XChaCha20Stream {
    /// The first `count` bytes of the keystream for `key` (32 bytes) and `nonce` (24 bytes).
    package static func keystream(count: Int, key: [UInt8], nonce: [UInt8]) -> [UInt8] {
        precondition(key.count == 32 && nonce.count == 24, "bad key or nonce length")
        guard count > 0 else { return [] }
        var out = [UInt8](repeating: 0, count: count)
        out.withUnsafeMutableBytes { o in
            key.withUnsafeBytes { k in
                nonce.withUnsafeBytes { n in
                    _ = CSodium_stream_xchacha20(o.baseAddress, count, n.baseAddress, k.baseAddress)
                }
            }
        }
        return out
    }
}
