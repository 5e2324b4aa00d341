import CustodyCrypto
import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// The outcome of an extract.
package struct ExtractResult: Sendable {
    /// The item.
    package var item: ItemID
    /// Where the plaintext was written.
    package var path: String
    /// Its SHA-256, re-verified.
    package var sha256: String
    /// Its size.
    package var size: Int64
}

extension Archive {
    /// Decrypts an item to `output`, re-verifying its SHA-256 before the file appears, and records an `extract` event.
    ///
    /// - Parameters:
    ///   - id: An item id or unique prefix.
    ///   - output: The file to write.
    ///   - force: Replace an existing file.
    /// - Throws: ``ArchiveError``; nothing is left at `output` on failure.
    package func extract(_ id: String, to output: String, force: Bool) throws -> ExtractResult {
        let indexed = try resolveItem(id)
        if !force, POSIX.lstatPath(output) != nil {
            throw ArchiveError(.cannotCreate, "\(output) already exists", fix: "choose another -o path or pass --force")
        }
        if let st = POSIX.lstatPath(output), POSIX.isDirectory(st.st_mode) {
            throw ArchiveError(.cannotCreate, "\(output) is a folder", fix: "give a file path with -o")
        }
        let event = try ingestEvent(of: indexed)
        guard let item = event.item else { throw ArchiveError(.damaged, "ingest event without item", fix: "run custody verify") }
        let metadata = try self.metadata(of: event)
        let manifest = try contentManifest(of: event)
        let directory = POSIX.parentDirectory(of: output)
        let temp = "\(directory)/.custody-extract-\(Encoding.hex(randomBytes(8)))"
        let fd = POSIX.open(temp, O_WRONLY | O_CREAT | O_EXCL, 0o600)
        guard fd >= 0 else { throw ArchiveError.writeFailed("cannot write \(output)", errno: errno) }
        var keep = false
        defer {
            if !keep { unlink(temp) }
        }
        do {
            defer { close(fd) }
            var hasher = SHA256Hasher()
            var remaining = manifest.size
            for chunk in manifest.chunks where remaining > 0 {
                var plaintext = try decryptChunk(chunk, item: item)
                defer { wipe(&plaintext) }
                let take = Int(min(Int64(plaintext.count), remaining))
                try plaintext.withUnsafeBytes { buffer in
                    let part = UnsafeRawBufferPointer(rebasing: buffer[0..<take])
                    hasher.update(part)
                    let code = POSIX.writeAll(fd, part)
                    guard code == 0 else { throw ArchiveError.writeFailed("cannot write \(output)", errno: code) }
                }
                remaining -= Int64(take)
            }
            let sha = Encoding.hex(hasher.finalize())
            guard remaining == 0, sha == metadata.sha256 else {
                throw ArchiveError(
                    .damaged,
                    "item \(item) decrypted to content whose SHA-256 differs from the recorded one",
                    fix: "do not use this copy; run custody verify --deep"
                )
            }
            guard fsync(fd) == 0 else { throw ArchiveError.writeFailed("cannot write \(output)", errno: errno) }
        }
        // Plaintext is leaving the archive: record it before the file appears under its name.
        _ = try record([Event(type: "extract", time: RFC3339.now(), actor: config.origin, item: item)])
        if force {
            guard rename(temp, output) == 0 else { throw ArchiveError.writeFailed("cannot write \(output)", errno: errno) }
        } else {
            guard link(temp, output) == 0 else {
                let code = errno
                if code == EEXIST {
                    throw ArchiveError(.cannotCreate, "\(output) already exists", fix: "choose another -o path or pass --force")
                }
                throw ArchiveError.writeFailed("cannot write \(output)", errno: code)
            }
            unlink(temp)
        }
        keep = true
        _ = POSIX.syncDirectory(directory)
        return ExtractResult(item: item, path: output, sha256: metadata.sha256, size: metadata.size)
    }

    /// Decrypts the content part an ingest event names.
    func contentManifest(of event: Event) throws -> ContentManifest {
        guard let item = event.item, let objects = event.objects, let wrapped = event.keys else {
            throw ArchiveError(.damaged, "an ingest event is incomplete", fix: "run custody verify")
        }
        var key = try keys().unwrap(wrapped.content, item: item)
        defer { wipe(&key) }
        guard let stored = try store.read(objects.content.name, limit: SealedPart.maxStoredBytes) else {
            throw ArchiveError(.damaged, "the content object of item \(item) is missing", fix: "run custody verify")
        }
        var json = try SealedPart.open(stored, kind: .content, item: item, key: key)
        defer { wipe(&json) }
        guard let manifest = try? JSONDecoder().decode(ContentManifest.self, from: Data(json)),
            manifest.size >= 0, manifest.chunks.count <= Int(manifest.paddedSize / 1024 + 2)
        else {
            throw ArchiveError(.damaged, "the content part of item \(item) is not valid", fix: "run custody verify --deep")
        }
        return manifest
    }

    /// Reads, name-checks and decrypts one chunk.
    func decryptChunk(_ chunk: ContentManifest.Chunk, item: ItemID) throws -> [UInt8] {
        guard let stored = try store.read(chunk.object, limit: config.chunkSize + XChaCha20Poly1305.tagByteCount) else {
            throw ArchiveError(.damaged, "chunk \(chunk.object) of item \(item) is missing", fix: "run custody verify")
        }
        guard ObjectName(of: stored) == chunk.object else {
            throw ArchiveError(.damaged, "chunk \(chunk.object) of item \(item) is corrupt", fix: "run custody verify")
        }
        guard var key = Encoding.bytes(base64: chunk.key), key.count == 32 else {
            throw ArchiveError(.damaged, "the content part of item \(item) has a bad chunk key", fix: "run custody verify --deep")
        }
        defer { wipe(&key) }
        do {
            return try ChunkCipher.open(stored, key: key)
        } catch {
            throw ArchiveError(.damaged, "chunk \(chunk.object) of item \(item) does not decrypt", fix: "run custody verify --deep")
        }
    }
}
