internal import CSodium
internal import Crypto

/// SHA-256, the forensic hash of plaintext, computed with swift-crypto (BoringSSL, hardware-accelerated).
///
/// `custody bench sha256` measures it against libsodium's portable implementation; see Docs/FORMAT.md.
package struct SHA256Hasher: Sendable {
    private var inner = Crypto.SHA256()

    /// Creates an empty hasher.
    package init() {}

    /// Absorbs `bytes`.
    package mutating func update(_ bytes: UnsafeRawBufferPointer) { inner.update(bufferPointer: bytes) }

    /// Absorbs `bytes`.
    package mutating func update(_ bytes: [UInt8]) { bytes.withUnsafeBytes { inner.update(bufferPointer: $0) } }

    /// The 32-byte digest.
    package func finalize() -> [UInt8] { Array(inner.finalize()) }

    /// One-shot SHA-256 of `bytes`.
    package static func hash(_ bytes: [UInt8]) -> [UInt8] {
        var hasher = SHA256Hasher()
        hasher.update(bytes)
        return hasher.finalize()
    }

    /// One-shot SHA-256 with libsodium's portable implementation (benchmarks and cross-checks only).
    package static func sodiumHash(_ bytes: UnsafeRawBufferPointer) -> [UInt8] {
        var out = [UInt8](repeating: 0, count: 32)
        out.withUnsafeMutableBytes { digest in
            // Both buffers are valid for their counts during the call.
            _ = CSodium_sha256(digest.baseAddress, bytes.baseAddress, bytes.count)
        }
        return out
    }
}

/// HMAC-SHA-256 (RFC 2104), for AWS Signature Version 4 (swift-crypto).
package enum HMACSHA256 {
    /// The 32-byte MAC of `data` under `key`.
    package static func mac(key: UnsafeRawBufferPointer, _ data: [UInt8]) -> [UInt8] {
        let symmetric = SymmetricKey(data: key)
        return Array(Crypto.HMAC<Crypto.SHA256>.authenticationCode(for: data, using: symmetric))
    }

    /// The 32-byte MAC of `data` under `key`.
    package static func mac(key: [UInt8], _ data: [UInt8]) -> [UInt8] {
        key.withUnsafeBytes { mac(key: $0, data) }
    }
}

/// BLAKE2b-256 (libsodium `crypto_generichash`), the name of every stored object and the convergent key function.
package enum BLAKE2b {
    /// The digest length used throughout Custody.
    package static let byteCount = 32

    /// Unkeyed BLAKE2b-256 of `bytes`.
    package static func hash(_ bytes: UnsafeRawBufferPointer) -> [UInt8] {
        var out = [UInt8](repeating: 0, count: byteCount)
        out.withUnsafeMutableBytes { digest in
            // `digest` is 32 bytes; `bytes` is valid for its count.
            _ = CSodium_generichash(digest.baseAddress, byteCount, bytes.baseAddress, bytes.count, nil, 0)
        }
        return out
    }

    /// Unkeyed BLAKE2b-256 of `bytes`.
    package static func hash(_ bytes: [UInt8]) -> [UInt8] { bytes.withUnsafeBytes { hash($0) } }

    /// BLAKE2b-256 keyed with `key` over `tag || data`.
    ///
    /// - Parameters:
    ///   - tag: A domain-separation tag.
    ///   - data: The message.
    ///   - key: 16 to 64 bytes of key material.
    /// - Returns: The 32-byte digest.
    package static func keyedHash(
        tag: UnsafeRawBufferPointer,
        data: UnsafeRawBufferPointer,
        key: UnsafeRawBufferPointer
    ) -> [UInt8] {
        precondition(key.count >= 16 && key.count <= 64, "BLAKE2b key must be 16...64 bytes")
        var out = [UInt8](repeating: 0, count: byteCount)
        out.withUnsafeMutableBytes { digest in
            // All buffers are valid for their counts during the call; the C state is wiped inside the shim.
            _ = CSodium_generichash_keyed2(
                digest.baseAddress,
                byteCount,
                key.baseAddress,
                key.count,
                tag.baseAddress,
                tag.count,
                data.baseAddress,
                data.count
            )
        }
        return out
    }

    /// BLAKE2b-256 keyed with the secret `key` over `tag || data`.
    package static func keyedHash(tag: [UInt8], data: UnsafeRawBufferPointer, key: SecretBytes) -> [UInt8] {
        key.withUnsafeBytes { k in tag.withUnsafeBytes { t in keyedHash(tag: t, data: data, key: k) } }
    }
}

/// Lends every array of `parts` as a raw buffer at once.
func withBuffers<R>(_ parts: [[UInt8]], _ body: ([UnsafeRawBufferPointer]) -> R) -> R {
    var buffers: [UnsafeRawBufferPointer] = []
    func recurse(_ index: Int) -> R {
        if index == parts.count { return body(buffers) }
        return parts[index].withUnsafeBytes { buffer in
            buffers.append(buffer)
            return recurse(index + 1)
        }
    }
    return recurse(0)
}
