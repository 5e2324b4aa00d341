import CustodyArchive
import CustodyCrypto
import Dispatch
import Foundation
import Hummingbird
import HummingbirdCore
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
    /// Requests in progress per requester key: at most ``ActiveRequests/maxPerKey`` at once (429 beyond).
    let active = ActiveRequests()
    /// Pull sessions: one `access` event per (grant, requester, session).
    let sessions = PullSessions()
    /// Grants as served, parsed once.
    let grants = GrantCache()
    /// How long a pull session (and a grant's cached bundle) lasts.
    static let sessionLifetime: TimeInterval = 3600

    /// A server for `archive`, whose keys must already be unlocked (the server signs access events).
    package init(archive: Archive) throws {
        _ = try archive.keys()
        shared = SharedArchive(archive)
        cacheDirectory = archive.root + "/serve-cache"
        try FileManager.default.createDirectory(atPath: cacheDirectory, withIntermediateDirectories: true)
    }

    /// Runs until SIGTERM or SIGINT; calls `ready` with the bound address first.
    package func run(host: String, port: Int, ready: @escaping @Sendable (String) -> Void) async throws {
        // Bounded headers (16 KiB a field, 64 KiB in all, 100 fields) and idle connections closed after 60 s;
        // bodies are bounded where each route collects them.
        let http = HTTP1Channel.Configuration(
            idleTimeout: .seconds(60),
            httpDecoderConfiguration: .init(
                maxHeaderFieldSize: 16 * 1024,
                maxHeaderListSize: 64 * 1024,
                maxHeaderFieldCount: 100
            )
        )
        let app = Application(
            router: router(),
            server: .http1(configuration: http),
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
        router.get("v1/log/inclusion") { request, _ -> Response in
            guard let index = request.uri.queryParameters.get("index", as: Int.self), index >= 0 else {
                return Self.response(.badRequest, Array("give ?index=<entry index>\n".utf8))
            }
            do {
                let proof = try shared.with { try $0.ledger.inclusionProof(index: index) }
                return Self.response(.ok, Array(proof.text.utf8))
            } catch let error as ArchiveError {
                return Self.response(
                    error.code == .notFound ? .notFound : .internalServerError,
                    Array((error.problem + "\n").utf8)
                )
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
            let grants = self.grants
            let list = try shared.with { archive in
                try archive.index().grants().filter { $0.direction == "out" }.compactMap { summary -> GrantListing? in
                    guard (try? grants.get(summary.id, archive: archive))?.grantee == requester else { return nil }
                    return GrantListing(summary)
                }
            }
            let body = try JSONEncoder().encode(["grants": list])
            return Self.response(.ok, Array(body), type: "application/json")
        }
        router.get("v1/grants/:id/head") { request, context -> Response in
            let requester = try await authenticate(request, context: context)
            let id = context.parameters.get("id") ?? ""
            return try await limited(requester) {
                switch try access(id, requester: requester) {
                case .refused(let response): return response
                case .granted:
                    let bytes = try shared.with { archive in
                        let path = cacheDirectory + "/.head-\(id)-" + Encoding.hex(randomBytes(8))
                        defer { unlink(path) }
                        _ = try archive.exportBundle(grant: id, to: path, force: true, objects: false)
                        return try POSIX.readFile(path, limit: 64 << 20)
                    }
                    return Self.response(.ok, bytes, type: "application/vnd.custody.bundle")
                }
            }
        }
        router.get("v1/grants/:id/objects/:name") { request, context -> Response in
            let requester = try await authenticate(request, context: context)
            let id = context.parameters.get("id") ?? ""
            return try await limited(requester) {
                let served: ServedGrant
                switch try access(id, requester: requester) {
                case .refused(let response): return response
                case .granted(let grant): served = grant
                }
                // Only the objects the grant releases, named exactly: anything else is no object at all.
                guard let hex = context.parameters.get("name"), let name = ObjectName(hex: hex),
                    let size = served.released[name]
                else { return Self.notFound }
                let store = shared.with { $0.store }
                var headers = HTTPFields()
                headers[.contentType] = "application/octet-stream"
                headers[.acceptRanges] = "bytes"
                // A store may block (S3): read off the task pool; a range reads only its bytes.
                switch Self.byteRange(request.headers[.range], size: Int(size)) {
                case .unsatisfiable:
                    headers[.contentRange] = "bytes */\(size)"
                    return Response(status: .rangeNotSatisfiable, headers: headers)
                case .part(let r):
                    let read = try await Self.offload {
                        try store.read(name, range: Int64(r.lowerBound)...Int64(r.upperBound))
                    }
                    guard let bytes = read, bytes.count == r.count else { return Self.unreadable }
                    headers[.contentRange] = "bytes \(r.lowerBound)-\(r.upperBound)/\(size)"
                    return Response(
                        status: .partialContent,
                        headers: headers,
                        body: .init(byteBuffer: ByteBuffer(bytes: bytes))
                    )
                case .whole:
                    let read = try await Self.offload { try store.read(name, limit: Int(size)) }
                    guard let bytes = read, Int64(bytes.count) == size else { return Self.unreadable }
                    return Response(status: .ok, headers: headers, body: .init(byteBuffer: ByteBuffer(bytes: bytes)))
                }
            }
        }
        router.get("v1/grants/:id/bundle") { request, context -> Response in
            let requester = try await authenticate(request, context: context)
            let id = context.parameters.get("id") ?? ""
            return try await limited(requester) {
                if case .refused(let response) = try access(id, requester: requester) { return response }
                let path = try await Self.offload {
                    try shared.with { archive in try Self.bundle(for: id, archive: archive, cache: cacheDirectory) }
                }
                let size = (try? FileManager.default.attributesOfItem(atPath: path)[.size] as? Int) ?? 0
                var headers = HTTPFields()
                headers[.contentType] = "application/vnd.custody.bundle"
                headers[.acceptRanges] = "bytes"
                switch Self.byteRange(request.headers[.range], size: size) {
                case .whole:
                    return Response(
                        status: .ok,
                        headers: headers,
                        body: try await FileIO().loadFile(path: path, context: context)
                    )
                case .unsatisfiable:
                    headers[.contentRange] = "bytes */\(size)"
                    return Response(status: .rangeNotSatisfiable, headers: headers)
                case .part(let range):
                    headers[.contentRange] = "bytes \(range.lowerBound)-\(range.upperBound)/\(size)"
                    let body = try await FileIO().loadFile(path: path, range: range, context: context)
                    return Response(status: .partialContent, headers: headers, body: body)
                }
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
        let grants = self.grants
        do {
            return try HTTPSignature.verify(
                signed,
                headers: headers,
                now: Int(Date().timeIntervalSince1970),
                nonces: nonces
            ) {
                key in shared.with { Self.isKnown(key, archive: $0, grants: grants) }
            }
        } catch {
            throw HTTPError(.unauthorized, message: "the request is not signed by a key this node knows\n")
        }
    }

    /// A key may make requests when it belongs to a known body or is the grantee of one of this archive's grants.
    /// Grants are read through the server's cache: this runs for every signed request.
    static func isKnown(_ key: [UInt8], archive: Archive, grants: GrantCache) -> Bool {
        let text = Encoding.base64(key)
        if (try? archive.knownBodies().contains { $0.identity.signingKey == text }) == true { return true }
        let outgoing = (try? archive.index().grants().filter { $0.direction == "out" }) ?? []
        return outgoing.contains { (try? grants.get($0.id, archive: archive).grantee) == key }
    }

    /// Runs blocking work (an object store that waits on the network) on a dispatch thread, not the task pool.
    static func offload<T: Sendable>(_ body: @escaping @Sendable () throws -> T) async throws -> T {
        try await withCheckedThrowingContinuation { continuation in
            DispatchQueue.global().async { continuation.resume(with: Result { try body() }) }
        }
    }

    static let unreadable = response(.internalServerError, Array("the object cannot be read here\n".utf8))

    static let notFound = response(.notFound, Array("no such grant or object for this requester\n".utf8))

    /// Runs `body` as one of the requester's requests in progress: 429 beyond ``ActiveRequests/maxPerKey``.
    func limited(_ requester: [UInt8], _ body: () async throws -> Response) async throws -> Response {
        guard active.enter(requester) else {
            return Self.response(.tooManyRequests, Array("too many requests in progress for this key\n".utf8))
        }
        defer { active.leave(requester) }
        return try await body()
    }

    enum Access {
        /// 404 or 410, ready to send.
        case refused(Response)
        case granted(ServedGrant)
    }

    /// Whether `requester` may have grant `id`'s parts now; opens its pull session (one `access` event) when it may.
    ///
    /// Served only when the grant was made here, is addressed to the requester, is neither revoked nor expired,
    /// and, for a re-share, every ancestor grant is still held, unexpired and (as far as this node knows) unrevoked.
    /// Another body's grant, or none, is 404; the requester's own revoked or expired grant is 410 with the reason.
    func access(_ id: String, requester: [UInt8]) throws -> Access {
        let now = Int(Date().timeIntervalSince1970)
        let grants = self.grants
        let sessions = self.sessions
        return try shared.with { archive -> Access in
            guard id.utf8.count == 32, Encoding.isLowercaseHex(id, count: 32),
                let summary = try archive.index().grant(id), summary.direction == "out"
            else { return .refused(Self.notFound) }
            guard let served = try? grants.get(id, archive: archive), served.grantee == requester else {
                return .refused(Self.notFound)
            }
            func gone(_ reason: String) -> Access { .refused(Self.response(.gone, Array((reason + "\n").utf8))) }
            if let revoked = summary.revokedAt {
                return .refused(Self.revokedResponse(grant: id, at: revoked, archive: archive))
            }
            guard served.grant.isValid(at: now) else {
                return gone("grant \(id) is valid from \(served.grant.created) until \(served.grant.expires)")
            }
            for ancestor in served.ancestors {
                guard let ancestor else { return gone("grant \(id) re-shares a grant this node no longer holds") }
                if let summary = try archive.index().grant(ancestor.id), summary.revokedAt != nil {
                    return .refused(Self.revokedAncestorResponse(grant: id, ancestor: summary, archive: archive))
                }
                guard ancestor.isValid(at: now) else {
                    return gone("grant \(id) re-shares grant \(ancestor.id), which expired at \(ancestor.expires)")
                }
            }
            if sessions.open(grant: id, requester: requester, lifetime: Self.sessionLifetime) {
                do {
                    try archive.recordAccess(grant: served.reference, requester: requester)
                } catch {
                    sessions.close(grant: id, requester: requester)
                    throw error
                }
            }
            return .granted(served)
        }
    }

    /// The whole bundle of a grant, written once per session into the serve cache so a client can resume an
    /// interrupted download with Range requests.
    static func bundle(for id: String, archive: Archive, cache: String) throws -> String {
        _ = try? FileManager.default.createDirectory(atPath: cache, withIntermediateDirectories: true)
        let existing = ((try? FileManager.default.contentsOfDirectory(atPath: cache)) ?? [])
            .filter { $0.hasPrefix(id + "-") && $0.hasSuffix(".bundle") }.sorted().last.map { cache + "/" + $0 }
        if let existing,
            let made = try? FileManager.default.attributesOfItem(atPath: existing)[.modificationDate] as? Date,
            Date().timeIntervalSince(made) < sessionLifetime
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
        _ = try archive.exportBundle(grant: id, to: path, force: true)
        return path
    }

    enum ByteRange: Equatable {
        case whole
        case unsatisfiable
        case part(ClosedRange<Int>)
    }

    /// One `Range: bytes=…` of RFC 9110 (`a-b`, `a-`, `-n`); a missing, multiple or malformed range means the
    /// whole representation (RFC 9110 lets a server ignore Range), a range starting past the end is unsatisfiable.
    static func byteRange(_ header: String?, size: Int) -> ByteRange {
        guard let header, header.hasPrefix("bytes="), !header.contains(",") else { return .whole }
        let spec = header.dropFirst(6).trimmingCharacters(in: .whitespaces)
        let parts = spec.split(separator: "-", maxSplits: 1, omittingEmptySubsequences: false)
        guard parts.count == 2, parts.allSatisfy({ $0.count <= 19 && $0.allSatisfy(\.isASCII) }) else {
            return .whole
        }
        if parts[0].isEmpty {
            guard let suffix = Int(parts[1]), suffix > 0 else { return .whole }
            return size == 0 ? .unsatisfiable : .part(max(0, size - suffix)...(size - 1))
        }
        guard let start = Int(parts[0]), start >= 0 else { return .whole }
        let end = parts[1].isEmpty ? size - 1 : Int(parts[1]).map { min($0, size - 1) }
        guard let end else { return .whole }
        guard start < size else { return .unsatisfiable }
        guard end >= start else { return .whole }
        return .part(start...end)
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

/// A grant as the server serves it, parsed once.
struct ServedGrant: Sendable {
    var grant: Grant
    var reference: GrantReference
    /// The grantee's signing key.
    var grantee: [UInt8]
    /// The objects it releases, with their sizes.
    var released: [ObjectName: Int64]
    /// Its ancestor grants for a re-share, parent first; `nil` for one this node no longer holds intact.
    var ancestors: [Grant?]
}

/// Grants parsed once per server run (a signed grant never changes; its revocation is read from the index).
final class GrantCache: Sendable {
    private let grants = Mutex<[String: ServedGrant]>([:])

    func get(_ id: String, archive: Archive) throws -> ServedGrant {
        if let cached = grants.withLock({ $0[id] }) { return cached }
        let (grant, signed) = try archive.storedGrant(id)
        // A node serves only grants it made: a stored grant of another granter (imported, or planted) is none of
        // its business to hand out, whoever it names as grantee.
        guard grant.granter.signingKey == archive.config.signingKey, grant.granter.boxKey == archive.config.boxKey
        else {
            throw ArchiveError(.notFound, "grant \(id) was not made by this node", fix: "ask its granter")
        }
        var ancestors: [Grant?] = []
        var parent = grant.parent
        while let reference = parent, ancestors.count < 16 {
            let stored = try? archive.storedGrant(reference.id)
            guard let stored, Grant.hash(stored.signed) == reference.hash else {
                ancestors.append(nil)
                break
            }
            ancestors.append(stored.grant)
            parent = stored.grant.parent
        }
        let served = ServedGrant(
            grant: grant,
            reference: GrantReference(id: grant.id, hash: Grant.hash(signed)),
            grantee: Encoding.bytes(base64: grant.grantee.signingKey) ?? [],
            released: Dictionary(grant.releasedObjects.map { ($0.name, $0.size) }) { first, _ in first },
            ancestors: ancestors
        )
        grants.withLock { $0[id] = served }
        return served
    }
}

/// Open pull sessions, per (grant, requester): a session opens with its first request and lasts an hour.
final class PullSessions: Sendable {
    private let opened = Mutex<[String: Date]>([:])

    /// Opens a session unless one is open; `true` when this call opened it.
    func open(grant: String, requester: [UInt8], lifetime: TimeInterval) -> Bool {
        let key = grant + ":" + Encoding.hex(requester)
        let now = Date()
        return opened.withLock { map in
            if let since = map[key], now.timeIntervalSince(since) < lifetime { return false }
            map = map.filter { now.timeIntervalSince($0.value) < lifetime }
            map[key] = now
            return true
        }
    }

    /// Forgets a session (its access event could not be recorded).
    func close(grant: String, requester: [UInt8]) {
        _ = opened.withLock { $0.removeValue(forKey: grant + ":" + Encoding.hex(requester)) }
    }
}
