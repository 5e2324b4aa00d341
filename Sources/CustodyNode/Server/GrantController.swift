import CustodyArchive
import CustodyCrypto
import CustodyStorage
import Foundation
import Hummingbird
import HummingbirdCore
import NIOCore

/// Grants and their parts (PROTOCOL.md section 3), all behind ``AuthenticationMiddleware``: the requester's own
/// grants, and — at most ``ActiveRequests/maxPerKey`` at once (``RequestLimitMiddleware``) — a grant's bundle
/// head, its released objects, and its whole bundle, each only after ``NodeServer/access(_:requester:)``.
struct GrantController: Sendable {
    let node: NodeServer

    /// Registers the routes on `v1/grants`.
    func addRoutes(to group: RouterGroup<NodeRequestContext>) {
        group.add(middleware: AuthenticationMiddleware(node: node))
            .get(use: list)
        group.group(":id")
            .add(middleware: RequestLimitMiddleware(active: node.active))
            .get("head", use: head)
            .get("objects/:name", use: object)
            .get("bundle", use: bundle)
    }

    /// `GET /v1/grants`: the grants this node made to the requester.
    @Sendable func list(_ request: Request, context: NodeRequestContext) async throws -> Response {
        let requester = try context.requireRequester()
        let grants = node.grants
        let list = try await node.archiveOperation { archive in
            var list: [GrantListing] = []
            for summary in try await archive.index().grants() where summary.direction == .outgoing {
                if (try? await grants.get(summary.id, archive: archive))?.grantee == requester {
                    list.append(GrantListing(summary))
                }
            }
            return list
        }
        let body = try JSONEncoder().encode(GrantList(grants: list))
        return NodeServer.response(.ok, Array(body), type: "application/json")
    }

    /// `GET /v1/grants/:id/head`: the grant's bundle without its objects.
    @Sendable func head(_ request: Request, context: NodeRequestContext) async throws -> Response {
        let id = context.parameters.get("id") ?? ""
        _ = try await node.access(id, requester: try context.requireRequester())
        let cache = node.cacheDirectory
        let bytes = try await node.archiveOperation { archive in
            let path = cache + "/.head-\(id)-" + Encoding.hex(randomBytes(8))
            defer { unlink(path) }
            _ = try await archive.exportBundle(grant: id, to: path, force: true, objects: false)
            return try ArchiveFiles.read(path, limit: 64 << 20)
        }
        return NodeServer.response(.ok, bytes, type: "application/vnd.custody.bundle")
    }

    /// `GET /v1/grants/:id/objects/:name`: one object the grant releases, whole or one byte range of it.
    @Sendable func object(_ request: Request, context: NodeRequestContext) async throws -> Response {
        let id = context.parameters.get("id") ?? ""
        let served = try await node.access(id, requester: try context.requireRequester())
        // Only the objects the grant releases, named exactly: anything else is no object at all.
        guard let hex = context.parameters.get("name"), let name = ObjectName(hex: hex),
            let size = served.released[name]
        else { throw ServerRefusal(.notFound) }
        let store = node.unlocked.store
        var headers = HTTPFields()
        headers[.contentType] = "application/octet-stream"
        headers[.acceptRanges] = "bytes"
        // A range reads only its bytes.
        switch NodeServer.byteRange(request.headers[.range], size: Int(size)) {
        case .unsatisfiable:
            throw ServerRefusal(.rangeNotSatisfiable, headers: [.contentRange: "bytes */\(size)"])
        case .part(let r):
            let read = try await store.read(name, range: Int64(r.lowerBound)...Int64(r.upperBound))
            guard let bytes = read, bytes.count == r.count else {
                throw ServerRefusal(.internalError, detail: "object \(name) is missing or short in the store")
            }
            headers[.contentRange] = "bytes \(r.lowerBound)-\(r.upperBound)/\(size)"
            return Response(
                status: .partialContent,
                headers: headers,
                body: .init(byteBuffer: ByteBuffer(bytes: bytes))
            )
        case .whole:
            let read = try await store.read(name, limit: Int(size))
            guard let bytes = read, Int64(bytes.count) == size else {
                throw ServerRefusal(.internalError, detail: "object \(name) is missing or short in the store")
            }
            return Response(status: .ok, headers: headers, body: .init(byteBuffer: ByteBuffer(bytes: bytes)))
        }
    }

    /// `GET /v1/grants/:id/bundle`: the whole bundle, from the serve cache, whole or one byte range of it.
    @Sendable func bundle(_ request: Request, context: NodeRequestContext) async throws -> Response {
        let id = context.parameters.get("id") ?? ""
        _ = try await node.access(id, requester: try context.requireRequester())
        let cache = node.cacheDirectory
        let path = try await node.archiveOperation { archive in
            try await Self.bundle(for: id, archive: archive, cache: cache)
        }
        let size = (try? FileManager.default.attributesOfItem(atPath: path)[.size] as? Int) ?? 0
        var headers = HTTPFields()
        headers[.contentType] = "application/vnd.custody.bundle"
        headers[.acceptRanges] = "bytes"
        // FileIO reads the file off the task pool, on NIO's blocking thread pool, as it streams.
        switch NodeServer.byteRange(request.headers[.range], size: size) {
        case .whole:
            return Response(
                status: .ok,
                headers: headers,
                body: try await FileIO().loadFile(path: path, context: context)
            )
        case .unsatisfiable:
            throw ServerRefusal(.rangeNotSatisfiable, headers: [.contentRange: "bytes */\(size)"])
        case .part(let range):
            headers[.contentRange] = "bytes \(range.lowerBound)-\(range.upperBound)/\(size)"
            let body = try await FileIO().loadFile(path: path, range: range, context: context)
            return Response(status: .partialContent, headers: headers, body: body)
        }
    }

    /// The whole bundle of a grant, written once per session into the serve cache so a client can resume an
    /// interrupted download with Range requests.
    static func bundle(for id: String, archive: Archive.Unlocked, cache: String) async throws -> String {
        _ = try? FileManager.default.createDirectory(atPath: cache, withIntermediateDirectories: true)
        let existing = ((try? FileManager.default.contentsOfDirectory(atPath: cache)) ?? [])
            .filter { $0.hasPrefix(id + "-") && $0.hasSuffix(".bundle") }.sorted().last.map { cache + "/" + $0 }
        if let existing,
            let made = try? FileManager.default.attributesOfItem(atPath: existing)[.modificationDate] as? Date,
            Date().timeIntervalSince(made) < NodeServer.sessionLifetime
        {
            return existing
        }
        let size = try archive.ledger.latestCheckpoint()?.size ?? 0
        let path = cache + "/\(id)-\(size).bundle"
        // Older bundles of this grant go: the cache holds one bundle per grant.
        for name in (try? FileManager.default.contentsOfDirectory(atPath: cache)) ?? []
        where name.hasPrefix(id + "-") && name.hasSuffix(".bundle") && cache + "/" + name != path {
            try? FileManager.default.removeItem(atPath: cache + "/" + name)
        }
        _ = try await archive.exportBundle(grant: id, to: path, force: true)
        return path
    }
}
