import CustodyArchive
import CustodyCrypto
import Dispatch
import Foundation
import Hummingbird
import HummingbirdCore
import NIOCore
import Synchronization

/// The archive a server works on: immutable and `Sendable`, so requests use it concurrently, without a lock.
struct SharedArchive: Sendable {
    private let archive: Archive.Unlocked

    init(_ archive: Archive.Unlocked) { self.archive = archive }

    /// Runs `body` with the archive.
    func with<T>(_ body: (Archive.Unlocked) throws -> T) rethrows -> T {
        try body(archive)
    }
}

/// The share protocol's HTTP server (Docs/PROTOCOL.md): public identity and log, and signed requests for the
/// grants addressed to the requester and their bundles.
package struct NodeServer: Sendable {
    let shared: SharedArchive
    /// The nonces seen, kept across restarts in `serve-state/nonces` (PROTOCOL.md section 2).
    let nonces: NonceCache
    /// The authorities (`host[:port]`) this node answers signed requests for: those of its public URLs.
    let authorities = PublicAuthorities()
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
    ///
    /// It reloads the nonces of requests accepted before (by an earlier run, even one that crashed), so none
    /// of them can be replayed.
    package init(archive: Archive.Unlocked) throws {
        shared = SharedArchive(archive)
        cacheDirectory = archive.root + "/serve-cache"
        try FileManager.default.createDirectory(atPath: cacheDirectory, withIntermediateDirectories: true)
        let now = Int(Date().timeIntervalSince1970)
        let journal = try NonceJournal(
            path: archive.root + "/serve-state/nonces",
            now: now,
            window: 2 * HTTPSignature.allowedSkew
        )
        nonces = NonceCache(startedAt: now, journal: journal)
    }

    /// The authorities a node with these public URLs answers for, or — with none — the one of
    /// `http://<host>:<port>`, its listening address.
    ///
    /// - Throws: ``ArchiveError`` (usage) for a URL that is not `http(s)://host[:port]` with at most a `/` path,
    ///   or for a wildcard listening address (`0.0.0.0`, `::`) without public URLs: peers cannot reach that.
    package static func authorities(publicURLs: [String], host: String, port: Int) throws -> Set<String> {
        guard !publicURLs.isEmpty else {
            let wildcard = ["", "0.0.0.0", "::", "[::]", "*"].contains(host)
            guard !wildcard, let url = URL(string: "http://\(host):\(port)"),
                let authority = NodeClient.authority(of: url)
            else {
                throw ArchiveError(
                    .usage,
                    "--listen \(host):\(port) is not an address peers can use",
                    fix: "give the URL peers use to reach this node: --public-url https://node.example.org"
                )
            }
            return [authority]
        }
        return Set(
            try publicURLs.map { text in
                guard let url = URL(string: text), url.path.isEmpty || url.path == "/", url.query == nil,
                    url.fragment == nil, url.user == nil, url.password == nil,
                    let authority = NodeClient.authority(of: url)
                else {
                    throw ArchiveError(
                        .usage,
                        "--public-url \(TerminalText.escape(text)) is not http(s)://HOST[:PORT]",
                        fix: "give the URL peers add this node with, e.g. https://node.example.org"
                    )
                }
                return authority
            }
        )
    }

    /// Runs until SIGTERM or SIGINT; calls `ready` with the bound address first.
    ///
    /// Signed requests are answered only when their `@authority` is one of `publicURLs`' (or, with none, the
    /// listening address's, as ``authorities(publicURLs:host:port:)`` derives it once the port is bound).
    package func run(
        host: String,
        port: Int,
        publicURLs: [String] = [],
        ready: @escaping @Sendable (String) -> Void
    ) async throws {
        if !publicURLs.isEmpty {
            authorities.set(try Self.authorities(publicURLs: publicURLs, host: host, port: port))
        }
        let authorities = self.authorities
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
                let bound = channel.localAddress?.port ?? port
                if publicURLs.isEmpty, let derived = try? Self.authorities(publicURLs: [], host: host, port: bound) {
                    authorities.set(derived)
                }
                ready(channel.localAddress.map { "\($0.ipAddress ?? host):\($0.port ?? port)" } ?? "\(host):\(port)")
            }
        )
        try await app.runService()
    }

    /// The routes.
    func router() -> Router<BasicRequestContext> {
        let router = Router()
        router.middlewares.add(ReasonMiddleware())
        let shared = self.shared
        router.get("v1/identity") { _, _ -> Response in
            let bytes = try shared.with { try $0.identity().jsonBytes() }
            return Self.response(.ok, bytes, type: "application/json")
        }
        router.get("v1/log/checkpoint") { _, _ -> Response in
            guard let checkpoint = try shared.with({ try $0.ledger.latestCheckpoint() }) else {
                throw ServerRefusal(.notFound)
            }
            return Self.response(.ok, Array(checkpoint.note.utf8), type: "text/plain; charset=utf-8")
        }
        router.get("v1/log/tile/**") { request, context -> Response in
            // The file's path is made from the numbers parsed, never from the request's text.
            guard let tile = Self.tilePath(context.parameters.getCatchAll().joined(separator: "/")) else {
                throw ServerRefusal(.notFound)
            }
            let file = shared.with { $0.ledger.logDirectory } + "/" + tile
            guard let bytes = try? POSIX.readFile(file, limit: Self.maxTileBytes) else {
                throw ServerRefusal(.notFound)
            }
            return Self.response(.ok, bytes, type: "application/octet-stream")
        }
        router.get("v1/log/consistency") { request, _ -> Response in
            guard let old = Self.count(request, "old") else { throw ServerRefusal(.badRequest) }
            do {
                let proof = try shared.with { try $0.ledger.consistencyProof(from: old) }
                return Self.response(.ok, Array(proof.witnessRequest.utf8))
            } catch let error as ArchiveError {
                throw ServerRefusal(.badRequest, detail: error.problem)
            }
        }
        // C2SP tlog-witness add-checkpoint: a log submits its checkpoint with a consistency proof.
        router.post("v1/witness/add-checkpoint") { request, _ -> Response in
            let body = try await Self.body(of: request)
            do {
                let cosignature = try shared.with { try $0.cosign(body) }
                return Self.response(.ok, Array(cosignature.line.utf8), type: "text/x.tlog.cosignature")
            } catch let error as ArchiveError {
                switch error.code {
                case .notAuthorised:
                    throw ServerRefusal(.unknownLog, detail: error.problem)
                case .badInput where error.reason == .proofInvalid:
                    // C2SP tlog-witness: a proof that does not verify is 422 (not a fork: nothing was filed).
                    throw ServerRefusal(.proofInvalid, detail: error.problem)
                case .badInput:
                    // The witness's stored size, so the log can send a proof from it (C2SP tlog-witness).
                    let origin = Self.checkpointOrigin(body)
                    let size = origin.flatMap { origin in shared.with { $0.witnessedSize(origin: origin) } } ?? 0
                    ServerLog.refusal(.badRequest, request: request, detail: error.problem)
                    return Self.response(.conflict, Array("\(size)\n".utf8), type: "text/x.tlog.size")
                default:
                    let fork = error.reason == .fork
                    throw ServerRefusal(fork ? .proofFailed : .checkpointRefused, detail: error.problem)
                }
            }
        }
        router.get("v1/log/inclusion") { request, _ -> Response in
            guard let index = Self.count(request, "index") else { throw ServerRefusal(.badRequest) }
            do {
                let proof = try shared.with { try $0.ledger.inclusionProof(index: index) }
                return Self.response(.ok, Array(proof.text.utf8))
            } catch let error as ArchiveError {
                throw ServerRefusal(error.code == .notFound ? .notFound : .internalError, detail: error.problem)
            }
        }
        router.post("v1/cosignatures") { request, context -> Response in
            let body = try await Self.body(of: request)
            _ = try await authenticate(request, context: context, body: body)
            do {
                let attached = try shared.with { try $0.attachCosignatures(body, alsoFrom: true) }
                return Self.response(.ok, Array("attached \(attached.count)\n".utf8))
            } catch let error as ArchiveError {
                throw ServerRefusal(.noSuchCheckpoint, detail: error.problem)
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
                    return Reason.rangeNotSatisfiable.response(headers: [.contentRange: "bytes */\(size)"])
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
                    return Reason.rangeNotSatisfiable.response(headers: [.contentRange: "bytes */\(size)"])
                case .part(let range):
                    headers[.contentRange] = "bytes \(range.lowerBound)-\(range.upperBound)/\(size)"
                    let body = try await FileIO().loadFile(path: path, range: range, context: context)
                    return Response(status: .partialContent, headers: headers, body: body)
                }
            }
        }
        return router
    }

    /// Checks the request's signature (PROTOCOL.md section 2) and that it was signed for this node's own
    /// authority; every failure is the same 401 `unauthenticated` (its kind goes to the server's log only).
    func authenticate(
        _ request: Request,
        context: BasicRequestContext,
        body given: [UInt8]? = nil
    ) async throws
        -> [UInt8]
    {
        let body: [UInt8]
        if let given {
            body = given
        } else {
            body = try await Self.body(of: request)
        }
        // The fields the signature rests on at most once each: a second Signature, Signature-Input,
        // Content-Digest or Host is not a request this node can read one way only. Other fields may repeat.
        var headers: [String: String] = [:]
        var repeated = false
        for field in request.headers {
            let name = field.name.canonicalName
            if headers[name] != nil, Self.singleFields.contains(name) { repeated = true }
            headers[name] = field.value
        }
        let signed = HTTPSignature.Request(
            method: request.method.rawValue,
            authority: request.head.authority ?? "",
            path: request.uri.path,
            query: request.uri.query.map { "?" + $0 } ?? "",
            body: body
        )
        // A request signed for another node (relayed here) is refused: @authority must be this node's own.
        guard !repeated, authorities.contains(signed.authority) else {
            throw ServerRefusal(.unauthenticated, detail: repeated ? "repeated header field" : "foreign authority")
        }
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
        } catch .unavailable {
            throw ServerRefusal(.unavailable, detail: "the nonce journal (serve-state/nonces) cannot be written")
        } catch {
            throw ServerRefusal(.unauthenticated, detail: "\(error)")
        }
    }

    /// The header fields (lowercase) a signed request may carry only once.
    static let singleFields: Set<String> = ["signature", "signature-input", "content-digest", "host"]

    /// The most a request body may hold, and how long it may take to arrive.
    static let maxBodyBytes = 64 * 1024
    static let bodyDeadline: Duration = .seconds(20)

    /// A request's body: at most ``maxBodyBytes`` (413 `too-large` beyond) and in full within ``bodyDeadline``
    /// (408 `request-timeout` after it), so a client trickling a body cannot hold a request open.
    static func body(of request: Request) async throws -> [UInt8] {
        try await withThrowingTaskGroup(of: [UInt8]?.self) { group in
            group.addTask {
                var request = request
                return Array(buffer: try await request.collectBody(upTo: maxBodyBytes))
            }
            group.addTask {
                try await Task.sleep(for: bodyDeadline)
                return nil
            }
            defer { group.cancelAll() }
            guard let first = try await group.next(), let bytes = first else {
                throw ServerRefusal(.requestTimeout, detail: "the body did not arrive within \(bodyDeadline)")
            }
            return bytes
        }
    }

    /// A key may make requests when it belongs to a known body or is the grantee of one of this archive's grants.
    /// Grants are read through the server's cache: this runs for every signed request.
    ///
    /// Every body and every grant is looked at whatever the answer (no early return), so the time it takes does
    /// not tell a stranger whether its key is known.
    static func isKnown(_ key: [UInt8], archive: Archive.Unlocked, grants: GrantCache) -> Bool {
        let text = Encoding.base64(key)
        var known = false
        for body in (try? archive.knownBodies()) ?? [] {
            known = (body.identity.signingKey == text) || known
        }
        for summary in (try? archive.index().grants()) ?? [] where summary.direction == "out" {
            known = ((try? grants.get(summary.id, archive: archive).grantee) == key) || known
        }
        return known
    }

    /// Runs blocking work (an object store that waits on the network) on a dispatch thread, not the task pool.
    static func offload<T: Sendable>(_ body: @escaping @Sendable () throws -> T) async throws -> T {
        try await withCheckedThrowingContinuation { continuation in
            DispatchQueue.global().async { continuation.resume(with: Result { try body() }) }
        }
    }

    static var unreadable: Response { Reason.internalError.response() }

    static var notFound: Response { Reason.notFound.response() }

    /// The 410 answer for the requester's own grant that is no longer valid: its reason code only.
    static func gone(_ reason: Reason) -> Response { reason.response() }

    /// Runs `body` as one of the requester's requests in progress: 429 beyond ``ActiveRequests/maxPerKey``.
    func limited(_ requester: [UInt8], _ body: () async throws -> Response) async throws -> Response {
        guard active.enter(requester) else { return Reason.tooManyRequests.response() }
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
            func gone(_ reason: Reason) -> Access { .refused(Self.gone(reason)) }
            switch try archive.standing(of: served.grant, ancestors: served.ancestors, at: now) {
            case .usable: break
            case .revoked(let summary):
                return .refused(Self.revokedResponse(grant: id, at: summary.revokedAt ?? "", archive: archive))
            case .expired: return gone(.grantExpired)
            case .ancestorMissing: return gone(.ancestorMissing)
            case .ancestorRevoked(let ancestor):
                return .refused(Self.revokedAncestorResponse(grant: id, ancestor: ancestor, archive: archive))
            case .ancestorExpired: return gone(.ancestorExpired)
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
    static func bundle(for id: String, archive: Archive.Unlocked, cache: String) throws -> String {
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
        // ASCII digits only (`Int` alone would also take a sign: `bytes=+5-`), at most 18 so nothing overflows.
        guard parts.count == 2,
            parts.allSatisfy({ $0.utf8.count <= 18 && $0.utf8.allSatisfy { (0x30...0x39).contains($0) } })
        else { return .whole }
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

    /// The largest tile served: a full entry bundle (256 entries of at most 64 KiB, each with its 2-byte length).
    static let maxTileBytes = Tiles.width * (Tiles.maxEntryBytes + 2)

    /// The log-relative path of the tile a request names, when it is exactly a C2SP tlog-tiles path —
    /// `<L>/<N>[.p/<W>]` or `entries/<N>[.p/<W>]`, `L` in 0…63, `N` in groups of three ASCII digits all but the
    /// last prefixed `x` (at most six groups), `W` in 1…255 without leading zeros — and `nil` for anything else.
    /// The path returned is written anew from the numbers (``Tiles``), so it holds nothing of the request's text.
    static func tilePath(_ path: String) -> String? {
        func digits(_ text: Substring) -> Int? {
            guard !text.isEmpty, text.utf8.count <= 3, text.utf8.allSatisfy({ (0x30...0x39).contains($0) }) else {
                return nil
            }
            return Int(text)
        }
        var parts = path.split(separator: "/", omittingEmptySubsequences: false)[...]
        guard parts.count >= 2, parts.count <= 9, let first = parts.popFirst() else { return nil }
        let level: Int?  // nil: the entry bundles
        if first == "entries" {
            level = nil
        } else {
            guard let value = digits(first), value <= 63, String(value) == first else { return nil }
            level = value
        }
        var width = Tiles.width
        if parts.count >= 2, let last = parts.last, parts[parts.endIndex - 2].hasSuffix(".p") {
            guard let value = digits(last), (1...255).contains(value), String(value) == last else { return nil }
            width = value
            parts.removeLast()
            parts[parts.endIndex - 1] = parts[parts.endIndex - 1].dropLast(2)
        }
        guard (1...6).contains(parts.count) else { return nil }
        var index = 0
        for (offset, part) in parts.enumerated() {
            let isLast = offset == parts.count - 1
            guard isLast ? part.utf8.count == 3 : (part.hasPrefix("x") && part.utf8.count == 4),
                let group = digits(isLast ? part : part.dropFirst())
            else { return nil }
            index = index * 1000 + group
        }
        let canonical =
            level.map { Tiles.hashTilePath(level: $0, index: index, width: width) }
            ?? Tiles.bundlePath(index: index, width: width)
        // Only the one spelling Tiles writes is served: "tile/" + the request's path, byte for byte.
        return canonical == "tile/" + path ? canonical : nil
    }

    /// A query parameter that must be a count: 1 to 18 ASCII digits, nothing else, given once.
    static func count(_ request: Request, _ name: String) -> Int? {
        let values = request.uri.queryParameters.getAll(name)
        guard values.count == 1, let text = values.first, (1...18).contains(text.utf8.count),
            text.utf8.allSatisfy({ (0x30...0x39).contains($0) })
        else { return nil }
        return Int(text)
    }

    /// The origin line of the checkpoint in a tlog-witness add-checkpoint body (after the `old` line, the proof
    /// lines and the blank line), when it is a valid origin.
    static func checkpointOrigin(_ body: [UInt8]) -> String? {
        let text = String(decoding: body.prefix(64 * 1024), as: UTF8.self)
        let note = text.hasPrefix("old ") ? text.range(of: "\n\n").map { text[$0.upperBound...] } : text[...]
        guard let origin = note?.prefix(while: { $0 != "\n" }), OutsideInput.isOrigin(String(origin)) else {
            return nil
        }
        return String(origin)
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

/// The authorities (`host[:port]`, lowercase) a server answers signed requests for: set once it knows them
/// (a port of 0 is known only once bound); until then, none.
final class PublicAuthorities: Sendable {
    private let set = Mutex<Set<String>>([])

    func set(_ authorities: Set<String>) { set.withLock { $0 = authorities } }

    func contains(_ authority: String) -> Bool { set.withLock { $0.contains(authority) } }
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

    func get(_ id: String, archive: Archive.Unlocked) throws -> ServedGrant {
        if let cached = grants.withLock({ $0[id] }) { return cached }
        let (grant, signed) = try archive.storedGrant(id)
        // A node serves only grants it made: a stored grant of another granter (imported, or planted) is none of
        // its business to hand out, whoever it names as grantee.
        guard grant.granter.signingKey == archive.config.signingKey, grant.granter.boxKey == archive.config.boxKey
        else {
            throw ArchiveError(.notFound, "grant \(id) was not made by this node", fix: "ask its granter")
        }
        let ancestors = archive.storedAncestors(of: grant)
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
