import CustodyArchive
import CustodyCrypto
import CustodyStorage
import Foundation
import Hummingbird
import HummingbirdCore
import Logging
import NIOCore
import NIOPosix
import Synchronization

/// The share protocol's HTTP server (Docs/PROTOCOL.md): public identity and log, and signed requests for the
/// grants addressed to the requester and their bundles.
///
/// The routes are registered by one controller per area — ``LogController`` (identity, checkpoints, tiles,
/// proofs), ``WitnessController`` (add-checkpoint, cosignatures), ``GrantController`` (grants, objects,
/// bundles) — behind ``RequestLogMiddleware`` (every answer logged, every error a reason code),
/// ``AuthenticationMiddleware`` (signed routes) and ``RequestLimitMiddleware`` (a grant's parts).
package struct NodeServer: Sendable {
    /// The archive, immutable and `Sendable`: requests use it concurrently. Reached through ``archive(_:)``.
    let unlocked: Archive.Unlocked
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
        unlocked = archive
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

    /// Runs synchronous archive work with the archive: reading and writing files and the index, it runs off the
    /// task pool (``offload(_:)``).
    func archive<T: Sendable>(_ body: @escaping @Sendable (Archive.Unlocked) throws -> T) async throws -> T {
        let archive = unlocked
        return try await Self.offload { try body(archive) }
    }

    /// Runs an asynchronous archive operation (one that reads objects: its store's I/O is awaited, and blocking
    /// file work inside it runs on the blocking-work pool).
    func archiveOperation<T: Sendable>(_ body: @Sendable (Archive.Unlocked) async throws -> T) async throws -> T {
        try await body(unlocked)
    }

    /// Runs blocking work — a synchronous archive call, reading a large file — on NIO's blocking thread pool
    /// instead of the task pool: the one way the server moves work off it.
    static func offload<T: Sendable>(_ body: @escaping @Sendable () throws -> T) async throws -> T {
        try await NIOThreadPool.singleton.runIfActive(body)
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

    /// The routes, behind the middleware that logs every answer and makes every error a reason code.
    func router() -> Router<NodeRequestContext> {
        let router = Router(context: NodeRequestContext.self)
        router.middlewares.add(RequestLogMiddleware())
        LogController(node: self).addRoutes(to: router.group("v1"))
        WitnessController(node: self).addRoutes(to: router.group("v1"))
        GrantController(node: self).addRoutes(to: router.group("v1/grants"))
        return router
    }

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

    /// A `200`-or-other answer carrying `bytes` as `type`.
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
