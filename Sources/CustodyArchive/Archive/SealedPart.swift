import CustodyCrypto
import CustodyStorage
import Foundation

/// The two sealed parts of an item: metadata (under K_meta) and content (the chunk list, under K_content).
package enum PartKind: String, Sendable, Codable {
    /// Submission metadata, SHA-256, size.
    case meta
    /// The chunk list with the chunk keys.
    case content
    /// A tag change or note (sealed under K_meta, like the metadata it amends).
    case annotation
    /// Where an imported item came from (sealed under its K_meta).
    case provenance
}

/// Sealed parts: padded JSON encrypted with a random per-item key, bound to the item id and key-committing.
///
/// Stored bytes: `nonce (24) || commitment (32) || XChaCha20-Poly1305(padded plaintext)`, where
/// `commitment = BLAKE2b-256(key: K, "custody/key-commitment/v1")`, the associated data is
/// `"custody/part/v1\n" + kind + "\n" + item id (hex)`, and the padded plaintext is a 4-byte big-endian
/// length, the JSON, then zeros up to Padmé(4 + length), at least 512 bytes.
package enum SealedPart {
    /// The largest sealed metadata part accepted when reading (bounds allocation).
    package static let maxStoredBytes = 8 << 20
    /// The largest annotation part (a note of 64 KiB, padded and sealed, fits).
    package static let maxAnnotationBytes = 256 << 10
    /// The largest sealed content part accepted when reading: about 1.5 million chunks (see ``maxItemBytes``).
    package static let maxContentStoredBytes = 256 << 20
    /// The largest single file an item may hold (1 TiB), so that its content part stays readable.
    package static let maxItemBytes: Int64 = 1 << 40
    /// The smallest padded plaintext.
    static let minimumPaddedBytes = 512
    private static let commitmentTag = Array("custody/key-commitment/v1".utf8)

    /// The associated data that binds a part to its item and kind.
    static func associatedData(kind: PartKind, item: ItemID) -> [UInt8] {
        Array("custody/part/v1\n\(kind.rawValue)\n\(item.hex)".utf8)
    }

    /// The key commitment for `key`.
    static func commitment(for key: [UInt8]) -> [UInt8] {
        key.withUnsafeBytes { k in
            commitmentTag.withUnsafeBytes {
                BLAKE2b.keyedHash(tag: $0, data: UnsafeRawBufferPointer(start: nil, count: 0), key: k)
            }
        }
    }

    /// Seals `json` for `item` under `key`.
    package static func seal(
        _ json: [UInt8],
        kind: PartKind,
        item: ItemID,
        key: [UInt8],
        nonce: [UInt8] = randomBytes(XChaCha20Poly1305.nonceByteCount)
    ) -> [UInt8] {
        let n = UInt32(json.count)
        var plaintext = bigEndianBytes(n) + json
        let padded = Padme.paddedLength(plaintext.count, minimum: minimumPaddedBytes)
        plaintext += [UInt8](repeating: 0, count: padded - plaintext.count)
        let sealed = XChaCha20Poly1305.seal(
            plaintext,
            key: key,
            nonce: nonce,
            associatedData: associatedData(kind: kind, item: item)
        )
        wipe(&plaintext)
        return nonce + commitment(for: key) + sealed
    }

    /// Opens a sealed part and returns its JSON.
    ///
    /// - Throws: ``ArchiveError`` (damaged) when the commitment, tag, binding or padding do not check out.
    package static func open(_ stored: [UInt8], kind: PartKind, item: ItemID, key: [UInt8]) throws -> [UInt8] {
        let headerCount = XChaCha20Poly1305.nonceByteCount + 32
        guard stored.count >= headerCount + XChaCha20Poly1305.tagByteCount + 4 else {
            throw damaged(kind, item, "is too short")
        }
        guard constantTimeEqual(commitment(for: key), stored[24..<56]) else {
            throw damaged(kind, item, "does not commit to this key")
        }
        var plaintext: [UInt8]
        do {
            plaintext = try XChaCha20Poly1305.open(
                Array(stored[headerCount...]),
                key: key,
                nonce: Array(stored[0..<24]),
                associatedData: associatedData(kind: kind, item: item)
            )
        } catch {
            throw damaged(kind, item, "failed authentication")
        }
        defer { wipe(&plaintext) }
        let length = Int(bigEndianValue(plaintext[0..<4]))
        guard length <= plaintext.count - 4 else { throw damaged(kind, item, "has a bad length") }
        return Array(plaintext[4..<(4 + length)])
    }

    private static func damaged(_ kind: PartKind, _ item: ItemID, _ what: String) -> ArchiveError {
        ArchiveError(
            .damaged,
            "the \(kind.rawValue) part of item \(item.hex) \(what)",
            fix: "run custody verify --deep"
        )
    }
}

/// Chunk encryption: convergent per-chunk keys, nonce zero.
///
/// `K_chunk = BLAKE2b-256(key: convergence secret, "custody/chunk-key/v1\n" || chunk plaintext)`;
/// stored bytes = XChaCha20-Poly1305(K_chunk, nonce = 24 zero bytes, AD = "custody/chunk/v1", chunk plaintext).
/// One key encrypts exactly one plaintext, so the fixed nonce is never reused with a different message.
package enum ChunkCipher {
    private static let keyTag = Array("custody/chunk-key/v1\n".utf8)
    private static let associatedData = Array("custody/chunk/v1".utf8)
    private static let zeroNonce = [UInt8](repeating: 0, count: XChaCha20Poly1305.nonceByteCount)

    /// Derives the convergent key of `plaintext`.
    package static func key(for plaintext: UnsafeRawBufferPointer, convergenceSecret: SecretBytes) -> [UInt8] {
        BLAKE2b.keyedHash(tag: keyTag, data: plaintext, key: convergenceSecret)
    }

    /// Encrypts a chunk under its key.
    package static func seal(_ plaintext: UnsafeRawBufferPointer, key: [UInt8]) -> [UInt8] {
        key.withUnsafeBytes { k in
            zeroNonce.withUnsafeBytes { n in
                associatedData.withUnsafeBytes { ad in
                    XChaCha20Poly1305.seal(plaintext, key: k, nonce: n, associatedData: ad)
                }
            }
        }
    }

    private static let paddingTag = Array("custody/padding/v1\n".utf8)

    /// The padding key of one plaintext: BLAKE2b-256(key: convergence secret, "custody/padding/v1\n" || sha256 || size as 8 bytes BE).
    ///
    /// Padding is keystream, not zeros, so padding-only chunks of different files never share an object
    /// (zeros would deduplicate across items and reveal sizes to the chunk); identical files still deduplicate.
    package static func paddingKey(sha256: [UInt8], size: Int64, convergenceSecret: SecretBytes) -> [UInt8] {
        let data = sha256 + bigEndianBytes(UInt64(size))
        return data.withUnsafeBytes { BLAKE2b.keyedHash(tag: paddingTag, data: $0, key: convergenceSecret) }
    }

    /// The padding bytes of chunk `index`: the first `count` bytes of XChaCha20(padding key, nonce = LE64(index) || 0^16).
    package static func padding(count: Int, chunkIndex: Int, key: [UInt8]) -> [UInt8] {
        var nonce = [UInt8](repeating: 0, count: 24)
        for i in 0..<8 { nonce[i] = UInt8(truncatingIfNeeded: UInt64(chunkIndex) >> (8 * i)) }
        return XChaCha20Stream.keystream(count: count, key: key, nonce: nonce)
    }

    /// Decrypts a stored chunk.
    package static func open(_ stored: [UInt8], key: [UInt8]) throws(SodiumError) -> [UInt8] {
        try XChaCha20Poly1305.open(stored, key: key, nonce: zeroNonce, associatedData: associatedData)
    }
}

extension SealedPart {
    /// Opens a sealed part and decodes its JSON as `T`: `nil` when it opens but is not a valid `T` (or
    /// `isValid` refuses it). The plaintext is wiped afterwards.
    ///
    /// - Throws: ``ArchiveError`` (damaged) when it does not open under `key` for `kind` and `item`.
    static func decode<T: Decodable>(
        _ stored: [UInt8],
        kind: PartKind,
        item: ItemID,
        key: [UInt8],
        as type: T.Type,
        isValid: (T) -> Bool = { _ in true }
    ) throws -> T? {
        var json = try open(stored, kind: kind, item: item, key: key)
        defer { wipe(&json) }
        guard let value = try? JSONDecoder().decode(T.self, from: Data(json)), isValid(value) else { return nil }
        return value
    }
}

extension ArchiveContext {
    /// The one way a stored sealed part is read: from the store (at most `limit` bytes), opened with `key`,
    /// decoded as `T`, checked by `isValid`.
    ///
    /// - Throws: ``ArchiveError`` (damaged) naming `what` when the object is missing, does not open, or is not
    ///   a valid `T`.
    func openStoredPart<T: Decodable>(
        _ name: ObjectName,
        kind: PartKind,
        item: ItemID,
        key: [UInt8],
        as type: T.Type,
        what: String,
        limit: Int = SealedPart.maxStoredBytes,
        isValid: (T) -> Bool = { _ in true }
    ) async throws -> T {
        guard let stored = try await store.read(name, limit: limit) else {
            throw ArchiveError(.damaged, "the \(what) object of item \(item) is missing", fix: "run custody verify")
        }
        guard let value = try SealedPart.decode(stored, kind: kind, item: item, key: key, as: T.self, isValid: isValid)
        else {
            throw ArchiveError(.damaged, "the \(what) of item \(item) is not valid", fix: "run custody verify --deep")
        }
        return value
    }
}
