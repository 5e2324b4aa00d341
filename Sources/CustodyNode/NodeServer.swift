import CustodyArchive
import CustodyCrypto
import Foundation
import Hummingbird
import NIOCore
import Synchronization

/// The archive a server works on, used by one request at a time (its caches are not thread-safe).
final class SharedArchive: @unchecked Sendable {
    private let archive: Archive
    private let lock = NSLock()

    init(_ archive: Archive) { self.archive = archive }

    /// Runs `body` with the archive, alone.
    func with<T>(_ body: (Archive) throws -> T) rethrows -> T {
        lock.lock()
        defer { lock.unlock() }
        return try body(archive)
    }
}

/// The share protocol's HTTP server (Docs/PROTOCOL.md): public identity and log, and signed requests for the
/// grants addressed to the requester and their bundles.
package struct NodeServer: Sendable {
    let shared: SharedArchive
    let nonces = NonceCache()
    let cacheDirectory: String
    /// Requests in progress per requester key: at most ``maxRequestsPerKey`` at once (429 beyond).
    let active = ActiveRequests()
    /// How long a grant's cached bundle is served (and resumable) before it is made again.
    static let bundleLifetime: TimeInterval = 3600

    /// A server for `archive`, whose keys must already be unlocked (the server signs access events).
    package init(archive: Archive) throws {
        _ = try archive.keys()
        shared = SharedArchive(archive)
        cacheDirectory = archive.root + "/serve-cache"
    }

    /// Runs until SIGTERM or SIGINT; calls `ready` with the bound address first.
    package func run(host: String, port: Int, ready: @escaping @Sendable (String) -> Void) async throws {
        let app = Application(
            router: router(),
            configuration: .init(address: .hostname(host, port: port), serverName: "custody"),
            onServerRunning: { channel in
                ready(channel.localAddress.map { "\($0.ipAddress ?? host):\($0.port ?? port)" } ?? "\(host):\(port)")
            }
        )
        try await app.runService()
    }

    /// The routes.
    func router() -> Router<BasicRequestContext> {
        let router = Router()
        let shared = self.shared
        router.get("v1/identity") { _, _ -> Response in
            let bytes = try shared.with { try $0.identity().jsonBytes() }
            return Self.response(.ok, bytes, type: "application/json")
        }
        router.get("v1/log/checkpoint") { _, _ -> Response in
            guard let checkpoint = try shared.with({ try $0.ledger.latestCheckpoint() }) else {
                return Self.response(.notFound, Array("no checkpoint yet\n".utf8))
            }
            return Self.response(.ok, Array(checkpoint.note.utf8), type: "text/plain; charset=utf-8")
        }
        router.get("v1/log/tile/**") { request, context -> Response in
            let path = context.parameters.getCatchAll().joined(separator: "/")
            guard Self.isTilePath(path) else { return Self.response(.notFound, Array("no such tile\n".utf8)) }
            let file = shared.with { $0.ledger.logDirectory } + "/tile/" + path
            guard let bytes = try? Data(contentsOf: URL(fileURLWithPath: file)) else {
                return Self.response(.notFound, Array("no such tile\n".utf8))
            }
            return Self.response(.ok, Array(bytes), type: "application/octet-stream")
        }
        router.get("v1/log/consistency") { request, _ -> Response in
            guard let old = request.uri.queryParameters.get("old", as: Int.self), old >= 0 else {
                return Self.response(.badRequest, Array("give ?old=<size>\n".utf8))
            }
            do {
                let proof = try shared.with { try $0.ledger.consistencyProof(from: old) }
                return Self.response(.ok, Array(proof.witnessRequest.utf8))
            } catch let error as ArchiveError {
                return Self.response(.badRequest, Array((error.problem + "\n").utf8))
            }
        }
        // C2SP tlog-witness add-checkpoint: a log submits its checkpoint with a consistency proof.
        router.post("v1/witness/add-checkpoint") { request, _ -> Response in
            var request = request
            let body = Array(buffer: try await request.collectBody(upTo: 64 * 1024))
            do {
                let cosignature = try shared.with { try $0.cosign(body) }
                return Self.response(.ok, Array(cosignature.line.utf8), type: "text/x.tlog.cosignature")
            } catch let error as ArchiveError {
                switch error.code {
                case .notAuthorised:
                    return Self.response(.forbidden, Array("unknown log\n".utf8))
                case .badInput:
                    // The witness's stored size, so the log can send a proof from it.
                    let origin = String(decoding: body.split(separator: 0x0A).dropFirst().first ?? [], as: UTF8.self)
                    let size = shared.with { $0.witnessedSize(origin: origin) } ?? 0
                    return Self.response(.conflict, Array("\(size)\n".utf8), type: "text/x.tlog.size")
                default:
                    let fork = error.problem.hasPrefix("FORK:")
                    return Self.response(
                        fork ? .unprocessableContent : .forbidden,
                        Array((error.problem + "\n").utf8)
                    )
                }
            }
        }
        router.post("v1/cosignatures") { request, context -> Response in
            var request = request
            let body = Array(buffer: try await request.collectBody(upTo: 64 * 1024))
            _ = try await authenticate(request, context: context, body: body)
            do {
                let attached = try shared.with { try $0.attachCosignatures(body, alsoFrom: true) }
                return Self.response(.ok, Array("attached \(attached.count)\n".utf8))
            } catch let error as ArchiveError {
                return Self.response(.unprocessableContent, Array((error.problem + "\n").utf8))
            }
        }
        router.get("v1/grants") { request, context -> Response in
            let requester = try await authenticate(request, context: context)
            let list = try shared.with { archive in
                try archive.index().grants().filter { $0.direction == "out" }.compactMap { summary -> GrantListing? in
                    let (grant, _) = try archive.storedGrant(summary.id)
                    guard let key = Encoding.bytes(base64: grant.grantee.signingKey), key == requester else {
                        return nil
                    }
                    return GrantListing(summary)
                }
            }
            let body = try JSONEncoder().encode(["grants": list])
            return Self.response(.ok, Array(body), type: "application/json")
        }
        router.get("v1/grants/:id/bundle") { request, context -> Response in
            let requester = try await authenticate(request, context: context)
            guard active.enter(requester) else {
                return Self.response(.tooManyRequests, Array("too many requests in progress for this key\n".utf8))
            }
            defer { active.leave(requester) }
            let id = context.parameters.get("id") ?? ""
            let outcome = try shared.with { archive in
                try Self.bundle(for: id, requester: requester, archive: archive, cache: cacheDirectory)
            }
            switch outcome {
            case .notFound:
                return Self.response(.notFound, Array("no such grant\n".utf8))
            case .gone(let reason):
                return Self.response(.gone, Array((reason + "\n").utf8))
            case .file(let path):
                let size = (try? FileManager.default.attributesOfItem(atPath: path)[.size] as? Int) ?? 0
                var headers = HTTPFields()
                headers[.contentType] = "application/octet-stream"
                headers[.acceptRanges] = "bytes"
                // "Range: bytes=N-" resumes an interrupted download (the only form a client needs).
                if let range = request.headers[.range], range.hasPrefix("bytes="), range.hasSuffix("-"),
                    let start = Int(range.dropFirst(6).dropLast()), start >= 0
                {
                    guard start < size else {
                        headers[.contentRange] = "bytes */\(size)"
                        return Response(status: .rangeNotSatisfiable, headers: headers)
                    }
                    headers[.contentRange] = "bytes \(start)-\(size - 1)/\(size)"
                    let body = try await FileIO().loadFile(path: path, range: start...(size - 1), context: context)
                    return Response(status: .partialContent, headers: headers, body: body)
                }
                let body = try await FileIO().loadFile(path: path, context: context)
                return Response(status: .ok, headers: headers, body: body)
            }
        }
        return router
    }

    /// Checks the request's signature; throws a 401 that says nothing else.
    func authenticate(
        _ request: Request,
        context: BasicRequestContext,
        body given: [UInt8]? = nil
    ) async throws
        -> [UInt8]
    {
        var request = request
        let body: ByteBuffer
        if let given {
            body = ByteBuffer(bytes: given)
        } else {
            body = try await request.collectBody(upTo: 64 * 1024)
        }
        var headers: [String: String] = [:]
        for field in request.headers { headers[field.name.canonicalName] = field.value }
        let signed = HTTPSignature.Request(
            method: request.method.rawValue,
            authority: request.head.authority ?? "",
            path: request.uri.path,
            query: request.uri.query.map { "?" + $0 } ?? "",
            body: Array(buffer: body)
        )
        let shared = self.shared
        do {
            return try HTTPSignature.verify(
                signed,
                headers: headers,
                now: Int(Date().timeIntervalSince1970),
                nonces: nonces
            ) {
                key in shared.with { Self.isKnown(key, archive: $0) }
            }
        } catch {
            throw HTTPError(.unauthorized, message: "the request is not signed by a key this node knows\n")
        }
    }

    /// A key may make requests when it belongs to a known body or is the grantee of one of this archive's grants.
    static func isKnown(_ key: [UInt8], archive: Archive) -> Bool {
        let text = Encoding.base64(key)
        if (try? archive.knownBodies().contains { $0.identity.signingKey == text }) == true { return true }
        let grants = (try? archive.index().grants().filter { $0.direction == "out" }) ?? []
        return grants.contains { (try? archive.storedGrant($0.id).grant.grantee.signingKey) == text }
    }

    enum BundleOutcome {
        case notFound
        case gone(String)
        case file(String)
    }

    /// The bundle of a grant for its grantee, written once per checkpoint into the serve cache (so a client can
    /// resume an interrupted download), and one `access` event per (grant, requester, checkpoint).
    static func bundle(for id: String, requester: [UInt8], archive: Archive, cache: String) throws -> BundleOutcome {
        guard id.utf8.count == 32, Encoding.isLowercaseHex(id, count: 32),
            let summary = try archive.index().grants().first(where: { $0.id == id && $0.direction == "out" })
        else { return .notFound }
        let (grant, signed) = try archive.storedGrant(summary.id)
        // Not addressed to the requester: the same answer as a grant that does not exist.
        guard Encoding.bytes(base64: grant.grantee.signingKey) == requester else { return .notFound }
        if let revoked = summary.revokedAt { return .gone("grant \(id) was revoked at \(revoked)") }
        guard grant.isValid(at: Int(Date().timeIntervalSince1970)) else {
            return .gone("grant \(id) is valid from \(grant.created) until \(grant.expires)")
        }
        _ = try? FileManager.default.createDirectory(atPath: cache, withIntermediateDirectories: true)
        // One bundle per grant, served for an hour: a pull session, resumable with Range requests.
        let existing = ((try? FileManager.default.contentsOfDirectory(atPath: cache)) ?? [])
            .filter { $0.hasPrefix(id + "-") && $0.hasSuffix(".bundle") }.sorted().last.map { cache + "/" + $0 }
        if let existing,
            let made = try? FileManager.default.attributesOfItem(atPath: existing)[.modificationDate] as? Date,
            Date().timeIntervalSince(made) < bundleLifetime
        {
            return .file(existing)
        }
        let size = try archive.ledger.latestCheckpoint()?.size ?? 0
        let path = cache + "/\(id)-\(size).bundle"
        if !FileManager.default.fileExists(atPath: path) {
            // Older bundles of this grant (earlier checkpoints) go: the cache holds one bundle per grant.
            for name in (try? FileManager.default.contentsOfDirectory(atPath: cache)) ?? []
            where name.hasPrefix(id + "-") && name.hasSuffix(".bundle") {
                try? FileManager.default.removeItem(atPath: cache + "/" + name)
            }
            _ = try archive.exportBundle(grant: id, to: path, force: true)
            try archive.recordAccess(
                grant: GrantReference(id: grant.id, hash: Grant.hash(signed)),
                requester: requester
            )
        }
        return .file(path)
    }

    /// Tile paths as C2SP tlog-tiles writes them: `<L>/<N>[.p/<W>]` or `entries/<N>[.p/<W>]`.
    static func isTilePath(_ path: String) -> Bool {
        let parts = path.split(separator: "/", omittingEmptySubsequences: false)
        guard parts.count >= 2, parts.count <= 8, parts.allSatisfy({ !$0.isEmpty && $0 != "." && $0 != ".." }) else {
            return false
        }
        return parts.allSatisfy { part in
            part.allSatisfy { $0.isNumber || $0 == "x" || $0 == "." || $0 == "p" } || part == "entries"
        }
    }

    static func response(
        _ status: HTTPResponse.Status,
        _ bytes: [UInt8],
        type: String = "text/plain; charset=utf-8"
    ) -> Response {
        var headers = HTTPFields()
        headers[.contentType] = type
        return Response(status: status, headers: headers, body: .init(byteBuffer: ByteBuffer(bytes: bytes)))
    }
}

/// One grant as `GET /v1/grants` lists it.
struct GrantListing: Codable, Sendable {
    var id: String
    var items: Int
    var created: String
    var expires: String
    var permission: String
    var reshare: Bool

    init(_ summary: GrantSummary) {
        id = summary.id
        items = summary.items
        created = summary.created
        expires = summary.expires
        permission = summary.permission
        reshare = summary.reshare
    }
}

/// Requests in progress per key.
final class ActiveRequests: Sendable {
    /// The most a key may have in progress at once.
    static let maxPerKey = 8
    private let counts = Mutex<[[UInt8]: Int]>([:])

    func enter(_ key: [UInt8]) -> Bool {
        counts.withLock { counts in
            guard counts[key, default: 0] < Self.maxPerKey else { return false }
            counts[key, default: 0] += 1
            return true
        }
    }

    func leave(_ key: [UInt8]) {
        counts.withLock { counts in
            counts[key, default: 1] -= 1
            if counts[key] == 0 { counts[key] = nil }
        }
    }
}
