import CustodyCrypto
import CustodyStorage
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

extension ArchiveContext {

    /// Reads, name-checks and decrypts an item's chunks in order, handing each plaintext to `body` (wiped
    /// once `body` returns); `body` returns `false` to stop early.
    ///
    /// On a store where reading ahead pays (``ObjectStore/prefersBatchedReads``, S3), up to eight chunks are
    /// in flight ahead of `body`; on a local disk they are read one at a time, as `body` needs them.
    ///
    /// - Throws: ``ArchiveError`` (damaged) for a missing, corrupt or undecryptable chunk; the store's errors.
    func forEachChunk(
        of manifest: ContentManifest,
        item: ItemID,
        _ body: (ContentManifest.Chunk, [UInt8]) async throws -> Bool
    ) async throws {
        let limit = config.chunkSize + XChaCha20Poly1305.tagByteCount
        do {
            try await store.readInOrder(
                manifest.chunks.map(\.object),
                limit: limit,
                window: store.prefersBatchedReads ? 8 : 1
            ) { index, stored in
                let chunk = manifest.chunks[index]
                var plaintext = try decryptChunk(chunk, item: item, stored: stored)
                defer { wipe(&plaintext) }
                if try await !body(chunk, plaintext) { throw StopReading() }
            }
        } catch is StopReading {
            return
        } catch {
            throw ArchiveError(error)
        }
    }

    /// Name-checks and decrypts one chunk as read from the store (`nil`: missing).
    func decryptChunk(_ chunk: ContentManifest.Chunk, item: ItemID, stored: [UInt8]?) throws -> [UInt8] {
        guard let stored else {
            throw ArchiveError(.damaged, "chunk \(chunk.object) of item \(item) is missing", fix: "run custody verify")
        }
        guard ObjectName(of: stored) == chunk.object else {
            throw ArchiveError(.damaged, "chunk \(chunk.object) of item \(item) is corrupt", fix: "run custody verify")
        }
        guard var key = Encoding.bytes(base64: chunk.key), key.count == 32 else {
            throw ArchiveError(
                .damaged,
                "the content part of item \(item) has a bad chunk key",
                fix: "run custody verify --deep"
            )
        }
        defer { wipe(&key) }
        do {
            return try ChunkCipher.open(stored, key: key)
        } catch {
            throw ArchiveError(
                .damaged,
                "chunk \(chunk.object) of item \(item) does not decrypt",
                fix: "run custody verify --deep"
            )
        }
    }
}

/// Ends ``ArchiveContext/forEachChunk(of:item:_:)`` early.
private struct StopReading: Error {}

/// A plaintext file being written: unnamed until it is complete and verified, then linked into place.
private final class PlaintextOutput {
    private static let tmpFileFlag: Int32 = 0o20000000 | O_DIRECTORY  // Linux O_TMPFILE
    /// The final path as shown (a name that is not UTF-8 with `\xHH` escapes).
    let finalPath: String
    /// The final path's bytes, as the file is named.
    fileprivate let finalBytes: [UInt8]
    fileprivate let directory: String
    fileprivate let fd: Int32
    fileprivate var namedTemp: String?
    fileprivate var published = false

    /// - Parameters:
    ///   - directory: The folder it is written in.
    ///   - finalPath: The path it is given when complete.
    ///   - finalBytes: That path's bytes, when they are not `finalPath`'s UTF-8 (an original name that is not).
    /// - Throws: ``ArchiveError`` when the folder cannot be written.
    init(directory: String, finalPath: String, finalBytes: [UInt8]? = nil) throws {
        self.directory = directory
        self.finalPath = finalPath
        self.finalBytes = finalBytes ?? Array(finalPath.utf8)
        var fd = POSIX.open(directory, O_WRONLY | Self.tmpFileFlag, 0o600)
        if fd < 0 && (errno == EOPNOTSUPP || errno == EISDIR || errno == EINVAL) {
            // The filesystem has no O_TMPFILE: fall back to a hidden named temporary file.
            let temp = "\(directory)/.custody-extract-\(Encoding.hex(randomBytes(8)))"
            fd = POSIX.open(temp, O_WRONLY | O_CREAT | O_EXCL, 0o600)
            namedTemp = temp
        }
        guard fd >= 0 else { throw ArchiveError.writeFailed("cannot write \(finalPath)", errno: errno) }
        self.fd = fd
    }

    deinit {
        close(fd)
        if !published, let namedTemp { unlink(namedTemp) }
    }

    func write(_ bytes: UnsafeRawBufferPointer) throws {
        let code = POSIX.writeAll(fd, bytes)
        guard code == 0 else { throw ArchiveError.writeFailed("cannot write \(finalPath)", errno: code) }
    }

    func sync() throws {
        guard fsync(fd) == 0 else { throw ArchiveError.writeFailed("cannot write \(finalPath)", errno: errno) }
    }

    /// Gives the file its name: atomically, and never over an existing file unless `replacing`.
    func publish(replacing: Bool) throws {
        var source = namedTemp
        if source == nil {
            if !replacing {
                try link(Array("/proc/self/fd/\(fd)".utf8), to: finalBytes)
                published = true
                _ = POSIX.syncDirectory(directory)
                return
            }
            let temp = "\(directory)/.custody-extract-\(Encoding.hex(randomBytes(8)))"
            try link(Array("/proc/self/fd/\(fd)".utf8), to: Array(temp.utf8))
            namedTemp = temp
            source = temp
        }
        guard let source else { return }
        if replacing {
            guard FileScanner.withCString(finalBytes, { rename(source, $0) }) == 0 else {
                throw ArchiveError.writeFailed("cannot write \(finalPath)", errno: errno)
            }
        } else {
            try link(Array(source.utf8), to: finalBytes)
            unlink(source)
        }
        published = true
        _ = POSIX.syncDirectory(directory)
    }

    fileprivate func link(_ source: [UInt8], to target: [UInt8]) throws {
        let destination = target == finalBytes ? finalPath : String(decoding: target, as: UTF8.self)
        let linked = FileScanner.withCString(source) { from in
            FileScanner.withCString(target) { linkat(AT_FDCWD, from, AT_FDCWD, $0, AT_SYMLINK_FOLLOW) }
        }
        guard linked == 0 else {
            if errno == EEXIST {
                throw ArchiveError(
                    .cannotCreate,
                    "\(destination) already exists",
                    fix: "choose another -o path or pass --force"
                )
            }
            throw ArchiveError.writeFailed("cannot write \(destination)", errno: errno)
        }
    }
}

extension Archive.Unlocked {
    /// Decrypts an item to `output`, re-verifying its SHA-256 before the file appears, and records an `extract` event.
    ///
    /// - Parameters:
    ///   - id: An item id or unique prefix.
    ///   - output: The file to write; an existing folder to write the item in under its original name (the
    ///     bytes it was ingested under, ``ItemMetadata/rawName``).
    ///   - force: Replace an existing file.
    ///   - purpose: Why the plaintext leaves the archive, sealed under the item's K_meta (like a note) and named
    ///     by the `extract` event.
    /// - Returns: What was written, with its verified SHA-256.
    /// - Throws: ``ArchiveError``; nothing is left at `output` on failure.
    package func extract(
        _ id: String,
        to output: String,
        force: Bool,
        purpose: String? = nil
    ) async throws -> ExtractResult {
        try authorize(member, for: [.extract])
        if let purpose {
            var fields = SubmissionFields()
            fields.note = purpose
            try fields.validate()
            guard !purpose.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty else {
                throw ArchiveError(.usage, "the purpose is empty", fix: "say why the item is extracted")
            }
        }
        let indexed = try await resolveItem(id)
        let event = try ingestEvent(of: indexed)
        guard let item = event.item else {
            throw ArchiveError(.damaged, "ingest event without item", fix: "run custody verify")
        }
        let metadata = try await self.metadata(of: event)
        var destination = output
        var destinationBytes: [UInt8]?
        var directory = POSIX.parentDirectory(of: output)
        if let st = POSIX.statPath(output), POSIX.isDirectory(st.st_mode) {
            // Into the folder, under the name it was ingested under (bytes, which need not be UTF-8).
            var name = metadata.rawName
            if name.isEmpty || name == [0x2E] || name == [0x2E, 0x2E] || name.contains(0) || name.contains(0x2F) {
                name = Array(item.hex.utf8)
            }
            directory = output
            while destination.count > 1 && destination.hasSuffix("/") { destination.removeLast() }
            let bytes = Array(destination.utf8) + [0x2F] + name
            destinationBytes = bytes
            destination = ItemMetadata.escapingInvalidUTF8(bytes)
        }
        let target = destinationBytes ?? Array(destination.utf8)
        var existing = stat()
        let exists = FileScanner.withCString(target) { Glibc.lstat($0, &existing) } == 0
        if !force, exists {
            throw ArchiveError(
                .cannotCreate,
                "\(destination) already exists",
                fix: "choose another -o path or pass --force"
            )
        }
        if exists, POSIX.isDirectory(existing.st_mode) {
            throw ArchiveError(.cannotCreate, "\(destination) is a folder", fix: "give a file path with -o")
        }
        let manifest = try await contentManifest(of: event)
        // An unnamed temporary file (O_TMPFILE): a crash leaves no plaintext behind under any name.
        let output = try PlaintextOutput(directory: directory, finalPath: destination, finalBytes: destinationBytes)
        var hasher = SHA256Hasher()
        var remaining = manifest.size
        try await forEachChunk(of: manifest, item: item) { _, plaintext in
            let take = Int(min(Int64(plaintext.count), remaining))
            try plaintext.withUnsafeBytes { buffer in
                try output.write(UnsafeRawBufferPointer(rebasing: buffer[0..<take]))
            }
            plaintext.withUnsafeBytes { hasher.update(UnsafeRawBufferPointer(rebasing: $0[0..<take])) }
            remaining -= Int64(take)
            return remaining > 0
        }
        guard remaining == 0, Encoding.hex(hasher.finalize()) == metadata.sha256 else {
            throw ArchiveError(
                .damaged,
                "item \(item) decrypted to content whose SHA-256 differs from the recorded one",
                fix: "do not use this copy; run custody verify --deep"
            )
        }
        try output.sync()
        // Plaintext is leaving the archive: record it (and why) before the file appears under its name.
        var extract = Event(type: .extract, time: RFC3339.now(), actor: config.origin, item: item)
        if let purpose { extract.annotation = try await seal(.purpose(purpose), of: event) }
        _ = try await record([extract])
        try output.publish(replacing: force)
        return ExtractResult(item: item, path: output.finalPath, sha256: metadata.sha256, size: metadata.size)
    }

    /// Decrypts the content part an ingest event names.
    func contentManifest(of event: Event) async throws -> ContentManifest {
        guard let item = event.item, let objects = event.objects, let wrapped = event.keys else {
            throw ArchiveError(.damaged, "an ingest event is incomplete", fix: "run custody verify")
        }
        guard let contentRef = objects.content, let wrappedContent = wrapped.content else {
            throw ArchiveError(
                .metadataOnly,
                "item \(item) was shared with this archive as metadata only: its content is not here",
                fix: "ask the granting body for a grant with content"
            )
        }
        var key = try keys.unwrap(wrappedContent, item: item)
        defer { wipe(&key) }
        return try await openStoredPart(
            contentRef.name,
            kind: .content,
            item: item,
            key: key,
            as: ContentManifest.self,
            what: "content",
            limit: SealedPart.maxContentStoredBytes
        ) { $0.size >= 0 && $0.chunks.count <= Int($0.paddedSize / 1024 + 2) }
    }
}
