import CustodyCrypto
import CustodyStorage
import Foundation
import NIOHTTP1
import Synchronization

/// Objects on an S3-compatible store: `<prefix>/<64 hex>` in one bucket (Docs/FORMAT.md section 7, and
/// Docs/OPERATIONS.md section 16). The ledger, index and keys stay on the node.
///
/// S3 has no rename, so staging starts the upload of the object under its final name at once, with
/// `If-None-Match: *` so a concurrent writer never replaces an object (412 means it is already there), and
/// returns while it runs: up to 16 uploads (and 128 MiB) are in flight (``UploadPipeline``), so a command's
/// workers go on encrypting. Commit waits for a batch's uploads and fails if any failed; a read of an object
/// waits for its upload. An object staged by an operation that then fails is an orphan, as after the
/// filesystem store's `objects-committed` crash point (`gc` removes it). Objects are content-addressed and
/// immutable, so an orphan is harmless ciphertext.
package struct S3ObjectStore: ObjectStore {
    /// The client of the bucket.
    package let client: S3Client
    /// Whether the store honours `If-None-Match: *` on PUT (answered once, by the first conditional write).
    private let conditional = ConditionalSupport()
    /// Uploads in flight.
    private let uploads = UploadPipeline()

    /// A store on the bucket and prefix `client` reaches.
    package init(client: S3Client) {
        self.client = client
    }

    var settings: S3Settings { client.settings }

    /// Each read is a round trip: sixteen in flight keep a store's bandwidth busy.
    package var readConcurrency: Int { UploadPipeline.maxCount }

    /// Each read is a round trip: an item's chunks are fetched a window at a time.
    package var prefersBatchedReads: Bool { true }

    package func contains(_ name: ObjectName) async throws -> Bool { try await size(of: name) != nil }

    package func stage(_ bytes: [UInt8], as name: ObjectName, checkExisting: Bool) async throws -> StagedObject? {
        // The conditional PUT checks for an existing object itself, whatever `checkExisting` says.
        await uploads.start(name, bytes: Int64(bytes.count)) { _ = try await self.putIfAbsent(bytes, as: name) }
        return StagedObject(name: name)
    }

    /// Writes one object now (conditionally), waiting for the answer.
    ///
    /// - Returns: `true` when it was written, `false` when an object of that name was already there.
    /// - Throws: ``StorageError``.
    package func putIfAbsent(_ body: [UInt8], as name: ObjectName) async throws -> Bool {
        let key = client.key(name.hex)
        if Int64(body.count) > settings.multipartThreshold {
            if try await client.send(.HEAD, key: key, accept: [200, 404], what: "object \(name)").status == 200 {
                return false
            }
            try await uploadInParts(body, key: key, name: name)
            return true
        }
        if conditional.supported != false {
            let response = try await client.send(
                .PUT,
                key: key,
                headers: [("If-None-Match", "*")],
                body: body,
                accept: [200, 412, 501],
                what: "object \(name)"
            )
            switch response.status {
            case 200:
                conditional.record(true)
                return true
            case 412:
                conditional.record(true)
                return false  // already stored
            default:
                conditional.record(false)  // 501: not supported here; check with HEAD instead
            }
        }
        if try await client.send(.HEAD, key: key, accept: [200, 404], what: "object \(name)").status == 200 {
            return false
        }
        _ = try await client.send(.PUT, key: key, body: body, what: "object \(name)")
        return true
    }

    /// A multipart upload: parts of ``S3Settings/partSize``, one after the other, aborted if any part fails.
    private func uploadInParts(_ body: [UInt8], key: String, name: ObjectName) async throws {
        let created = try await client.send(
            .POST,
            key: key,
            query: [("uploads", "")],
            accept: [200],
            what: "starting the upload of object \(name)"
        )
        guard let upload = XMLFields.parse(created.body, elements: ["UploadId"])["UploadId"]?.first, !upload.isEmpty
        else {
            throw StorageError(.badInput, "the S3 store gave no upload id for object \(name)", fix: "check the store")
        }
        do {
            var parts: [(Int, String)] = []
            let size = Int(max(settings.partSize, 5 << 20))
            var offset = 0
            while offset < body.count {
                let number = parts.count + 1
                let part = Array(body[offset..<min(offset + size, body.count)])
                let response = try await client.send(
                    .PUT,
                    key: key,
                    query: [("partNumber", String(number)), ("uploadId", upload)],
                    body: part,
                    what: "part \(number) of object \(name)"
                )
                guard let etag = response.headers.first(name: "ETag") else {
                    throw StorageError(.badInput, "the S3 store gave no ETag for a part", fix: "check the store")
                }
                parts.append((number, etag))
                offset += size
            }
            let manifest =
                "<CompleteMultipartUpload>"
                + parts.map { "<Part><PartNumber>\($0.0)</PartNumber><ETag>\(Self.escaped($0.1))</ETag></Part>" }
                .joined() + "</CompleteMultipartUpload>"
            let completed = try await client.send(
                .POST,
                key: key,
                query: [("uploadId", upload)],
                body: Array(manifest.utf8),
                what: "completing the upload of object \(name)"
            )
            // S3 can answer 200 with an error document for a failed completion.
            if let code = S3Client.errorCode(completed.body), !code.isEmpty {
                throw StorageError(
                    .temporary,
                    "the S3 store could not complete the upload of object \(name) (\(code))",
                    fix: "run the command again"
                )
            }
        } catch {
            _ = try? await client.send(
                .DELETE,
                key: key,
                query: [("uploadId", upload)],
                accept: [200, 204, 404],
                what: "aborting the upload of object \(name)"
            )
            throw error
        }
    }

    static func escaped(_ text: String) -> String {
        text.replacingOccurrences(of: "&", with: "&amp;").replacingOccurrences(of: "<", with: "&lt;")
            .replacingOccurrences(of: ">", with: "&gt;").replacingOccurrences(of: "\"", with: "&quot;")
    }

    package func commit(_ objects: [StagedObject]) async throws {
        // Each PUT was durable when the store answered it: wait for the answers.
        try await uploads.finish(objects.map(\.name))
    }

    package func discard(_ objects: [StagedObject]) async {
        // Let the uploads end, but never delete: another writer may have found the object present and now rely
        // on it. Orphans are removed by gc, under the archive's exclusive lock.
        try? await uploads.finish(objects.map(\.name))
    }

    package func read(_ name: ObjectName, limit: Int) async throws -> [UInt8]? {
        await uploads.wait(for: name)
        let response = try await client.send(
            .GET,
            key: client.key(name.hex),
            accept: [200, 404],
            maxBody: min(limit, Int.max - 1) + 1,
            what: "object \(name)"
        )
        guard response.status == 200 else { return nil }
        guard response.body.count <= limit else {
            throw StorageError(
                .damaged,
                "object \(name) is larger than any valid object",
                fix: "run custody verify"
            )
        }
        return response.body
    }

    /// Bytes `range` of an object (a ranged GET), or `nil` when it is absent.
    package func read(_ name: ObjectName, range: ClosedRange<Int64>) async throws -> [UInt8]? {
        guard range.lowerBound >= 0 else { return [] }
        // A store that ignores Range sends the whole object: it is bounded by the range's end all the same.
        let last = Int(min(range.upperBound, Int64(Int.max - 1)))
        await uploads.wait(for: name)
        let response = try await client.send(
            .GET,
            key: client.key(name.hex),
            headers: [("Range", "bytes=\(range.lowerBound)-\(last)")],
            accept: [200, 206, 404, 416],
            maxBody: last + 1,
            what: "object \(name)"
        )
        switch response.status {
        case 206: return response.body
        case 416: return []  // the range starts past the end
        case 200:
            let upper = min(last + 1, response.body.count)
            return Int(range.lowerBound) < upper ? Array(response.body[Int(range.lowerBound)..<upper]) : []
        default: return nil
        }
    }

    package func size(of name: ObjectName) async throws -> Int64? {
        await uploads.wait(for: name)
        let response = try await client.send(
            .HEAD,
            key: client.key(name.hex),
            accept: [200, 404],
            what: "object \(name)"
        )
        guard response.status == 200 else { return nil }
        return response.headers.first(name: "Content-Length").flatMap { Int64($0) }
    }

    /// One page per `ListObjectsV2` answer (up to 1000 keys); the cursor is its continuation token. Keys
    /// under the prefix that are not object names are skipped.
    package func objects() -> ObjectListing {
        let (client, settings) = (client, settings)
        let prefix = settings.prefix.isEmpty ? "" : settings.prefix + "/"
        return ObjectListing { token in
            var query = [("list-type", "2"), ("prefix", prefix), ("max-keys", "1000")]
            if let token { query.append(("continuation-token", token)) }
            let response = try await client.send(.GET, key: nil, query: query, what: "the listing of \(settings.url)")
            let fields = XMLFields.parse(
                response.body,
                elements: ["Key", "Size", "IsTruncated", "NextContinuationToken"]
            )
            let keys = fields["Key"] ?? []
            let sizes = fields["Size"] ?? []
            guard keys.count == sizes.count else {
                throw StorageError(.badInput, "the S3 store sent a malformed listing", fix: "check the store")
            }
            var found: [StoredObject] = []
            for (key, size) in zip(keys, sizes) {
                let rest = key.dropFirst(prefix.count)
                guard key.hasPrefix(prefix), let name = ObjectName(hex: String(rest)), let bytes = Int64(size) else {
                    continue
                }
                found.append(StoredObject(name: name, size: bytes))
            }
            let next = fields["IsTruncated"]?.first == "true" ? fields["NextContinuationToken"]?.first : nil
            return ObjectListing.Page(objects: found, next: next)
        }
    }

    /// Leftovers are multipart uploads left unfinished under the prefix, as `multipart/<upload id>/<key>`.
    /// A bucket has no links or special files: there are never strays.
    package func maintenanceReport() async throws -> MaintenanceReport {
        let prefix = settings.prefix.isEmpty ? "" : settings.prefix + "/"
        let response = try await client.send(
            .GET,
            key: nil,
            query: [("uploads", ""), ("prefix", prefix)],
            what: "the unfinished uploads of \(settings.url)"
        )
        let fields = XMLFields.parse(response.body, elements: ["Key", "UploadId"])
        let leftovers = zip(fields["Key"] ?? [], fields["UploadId"] ?? []).map {
            Leftover(id: "multipart/\($0.1)/\($0.0)")
        }
        return MaintenanceReport(leftovers: leftovers.sorted())
    }

    package func remove(_ name: ObjectName) async throws {
        _ = try await client.send(
            .DELETE,
            key: client.key(name.hex),
            accept: [200, 204, 404],
            what: "removing object \(name)"
        )
    }

    package func removeLeftover(_ leftover: Leftover) async throws {
        let parts = leftover.id.split(separator: "/", maxSplits: 2)
        guard parts.count == 3, parts[0] == "multipart" else { return }
        let prefix = settings.prefix.isEmpty ? "" : settings.prefix + "/"
        guard parts[2].hasPrefix(prefix) else { return }
        _ = try await client.send(
            .DELETE,
            key: String(parts[2]),
            query: [("uploadId", String(parts[1]))],
            accept: [200, 204, 404],
            what: "aborting an unfinished upload"
        )
    }
}

/// Whether the store honours conditional PUT, learned from its first answer.
final class ConditionalSupport: Sendable {
    private let state = Mutex<Bool?>(nil)
    var supported: Bool? { state.withLock { $0 } }
    func record(_ value: Bool) { state.withLock { $0 = value } }
}
