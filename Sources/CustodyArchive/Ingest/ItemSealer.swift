import CustodyClaims
import CustodyCrypto
import CustodyStorage
import Foundation

/// An encrypted object of an item, ready to be staged under its name.
struct SealedObject: Sendable {
    /// Its name and size.
    var ref: ObjectRef
    /// Its bytes.
    var bytes: [UInt8]
    /// Whether the store should look for it first: convergent chunks may be stored already; sealed parts,
    /// under fresh random keys and nonces, cannot be.
    var mayExist: Bool
}

/// One chunk of an item, encrypted: its manifest entry and its object.
struct EncryptedChunk: Sendable {
    var index: Int
    var entry: ContentManifest.Chunk
    var object: SealedObject
}

/// An item sealed and signed, waiting for its batch to commit.
struct SealedItem: Sendable {
    var order: Int
    var source: SourceFile
    var metadata: ItemMetadata
    var event: Event
    /// Its sealed parts and (for many chunks) its chunk list: staged after its chunks.
    var parts: [SealedObject]
}

/// Encrypting an item: its chunks under their convergent keys, then its two sealed parts, its wrapped keys
/// and its ingest event. Pure computation: nothing here reads or writes storage.
enum ItemSealer {
    /// Encrypts one chunk under its convergent key.
    static func encryptChunk(_ plaintext: [UInt8], index: Int, convergence: SecretBytes) -> EncryptedChunk {
        var key = plaintext.withUnsafeBytes { ChunkCipher.key(for: $0, convergenceSecret: convergence) }
        defer { wipe(&key) }
        let sealed = plaintext.withUnsafeBytes { ChunkCipher.seal($0, key: key) }
        let ref = ObjectRef(name: ObjectName(of: sealed), size: Int64(sealed.count))
        return EncryptedChunk(
            index: index,
            entry: ContentManifest.Chunk(object: ref.name, size: ref.size, key: Encoding.base64(key)),
            object: SealedObject(ref: ref, bytes: sealed, mayExist: true)
        )
    }

    /// What an item needs besides its chunks.
    struct Context: Sendable {
        var fields: SubmissionFields
        /// The secret chunk keys derive from: the archive's, or a field staff member's own.
        var convergence: SecretBytes
        var selfBox: [UInt8]
        var actor: String
        var chunkSize: Int
        /// SHA-256 of the `--expect-from` list, recorded in each item whose expected hash came from it.
        var manifestSHA256: String? = nil
        /// Whether each file's claims are extracted and sealed (``ItemMetadata/claims``).
        var extractClaims = true
    }

    /// Seals the item's two parts, wraps their keys and signs its ingest event.
    ///
    /// - Parameters:
    ///   - source: The file.
    ///   - order: Its position among the files ingested.
    ///   - chunks: The item's chunks, in order.
    ///   - read: Its plaintext size, SHA-256 and first bytes (``ChunkReader/summary()``).
    ///   - claims: What the file says about itself (``ChunkReader/claims()``), if extracted.
    ///   - expected: The SHA-256 it must have, if any.
    ///   - context: The submission's fields and the archive's keys and settings.
    /// - Returns: The sealed item, or — when `expected` is given and differs from the SHA-256 — the problem.
    /// - Throws: What encoding or key wrapping throws (never for valid metadata).
    static func seal(
        _ source: SourceFile,
        order: Int,
        chunks: [EncryptedChunk],
        read: (size: Int64, sha256: [UInt8], head: [UInt8]),
        claims: FileClaims? = nil,
        expected: String?,
        context: Context
    ) throws -> Result<SealedItem, ScanProblem> {
        let (size, sha256, head) = read
        let shaHex = Encoding.hex(sha256)
        if let expected, expected.lowercased() != shaHex {
            return .failure(
                ScanProblem(
                    path: source.path,
                    .sha256Mismatch,
                    reason: "SHA-256 is \(shaHex), expected \(expected.lowercased())"
                )
            )
        }
        let fields = context.fields
        // One draw of randomness per item: id, commitment opening, two part keys, two part nonces.
        var random = randomBytes(16 + 32 + 32 + 32 + 24 + 24)
        defer { wipe(&random) }
        let item = ItemID(bytes: Array(random[0..<16]))
        let nonce = Array(random[16..<48])
        let rawName = source.rawDisplayPath.split(separator: 0x2F).last.map(Array.init) ?? source.rawDisplayPath
        let name = String(decoding: rawName, as: UTF8.self)
        let metadata = ItemMetadata(
            item: item,
            name: name,
            path: source.displayPath,
            mediaType: MediaType.sniff(head, name: name),
            size: size,
            sha256: shaHex,
            commitmentNonce: Encoding.base64(nonce),
            caseID: fields.caseID,
            tags: fields.tags,
            source: fields.source,
            collectedAt: fields.collectedAt,
            location: fields.location,
            consent: fields.consent,
            sensitivity: fields.sensitivity,
            note: fields.note,
            meta: fields.meta,
            ingestedAt: RFC3339.now(),
            ingestedBy: context.actor,
            matchedManifest: expected == nil ? nil : context.manifestSHA256,
            pathBytes: source.pathIsUTF8 ? nil : Encoding.base64(source.rawDisplayPath),
            claims: claims
        )
        let manifest = ContentManifest(
            size: size,
            paddedSize: Int64(Padme.paddedLength(Int(size), minimum: 512)),
            chunkSize: context.chunkSize,
            chunks: chunks.map(\.entry)
        )
        let encoder = JSONFormat.compactEncoder()
        var metaKey = Array(random[48..<80])
        var contentKey = Array(random[80..<112])
        defer {
            wipe(&metaKey)
            wipe(&contentKey)
        }
        var metaJSON = Array(try encoder.encode(metadata))
        var contentJSON = Array(try encoder.encode(manifest))
        let metaPart = SealedPart.seal(metaJSON, kind: .meta, item: item, key: metaKey, nonce: Array(random[112..<136]))
        let contentPart = SealedPart.seal(
            contentJSON,
            kind: .content,
            item: item,
            key: contentKey,
            nonce: Array(random[136..<160])
        )
        wipe(&metaJSON)
        wipe(&contentJSON)
        let metaRef = ObjectRef(name: ObjectName(of: metaPart), size: Int64(metaPart.count))
        let contentRef = ObjectRef(name: ObjectName(of: contentPart), size: Int64(contentPart.count))
        var objects = IngestObjects(meta: metaRef, content: contentRef)
        var parts = [
            SealedObject(ref: metaRef, bytes: metaPart, mayExist: false),
            SealedObject(ref: contentRef, bytes: contentPart, mayExist: false),
        ]
        let refs = chunks.map(\.object.ref)
        if refs.count <= Event.inlineChunkLimit {
            objects.chunks = refs
        } else {
            let list = encodeChunkList(refs)
            let ref = ObjectRef(name: ObjectName(of: list), size: Int64(list.count))
            parts.append(SealedObject(ref: ref, bytes: list, mayExist: true))
            objects.chunkList = ref
        }
        let event = Event(
            type: .ingest,
            time: metadata.ingestedAt,
            actor: context.actor,
            item: item,
            objects: objects,
            keys: WrappedKeys(
                meta: try ArchiveKeys.wrap(metaKey, item: item, to: context.selfBox),
                content: try ArchiveKeys.wrap(contentKey, item: item, to: context.selfBox)
            ),
            commitment: Event.commitment(nonce: nonce, sha256: sha256, size: size)
        )
        return .success(SealedItem(order: order, source: source, metadata: metadata, event: event, parts: parts))
    }
}
