import AsyncHTTPClient
import CustodyArchive
import CustodyCrypto
import CustodyStorage
import Foundation
import NIOCore
import NIOHTTP1
import Synchronization

/// The HTTP client every node request goes through: bounded connect and read timeouts; never shut down (it
/// lives as long as the process).
private let nodeHTTPClient: HTTPClient = {
    var configuration = HTTPClient.Configuration(
        timeout: .init(connect: .seconds(10), read: .seconds(60))
    )
    configuration.connectionPool.concurrentHTTP1ConnectionsPerHostSoftLimit = 8
    configuration.redirectConfiguration = .disallow  // a signature covers one authority and path
    return HTTPClient(eventLoopGroup: HTTPClient.defaultEventLoopGroup, configuration: configuration)
}()

/// A client of another node: every request signed with this archive's signing key (Docs/PROTOCOL.md section 2).
package struct NodeClient: Sendable {
    /// The node's base URL (`https://host:port`).
    package let base: URL
    let key: SigningKey
    /// How long a response may take, body included.
    package let deadlines: Deadlines
    /// The largest response body read into memory (grant lists, checkpoints, bundle heads).
    static let maxBody = 64 << 20

    /// How long the client waits for a whole response — status, headers and every byte of the body — before it
    /// gives up (PROTOCOL.md section 4). A peer that trickles bytes is cut off at the deadline, not held by the
    /// read timeout, which only needs one byte a minute.
    package struct Deadlines: Sendable {
        /// Any request but an object's: the whole response within this.
        package var request: Duration
        /// An object: this, plus its size at ``objectRate``, for all its attempts together.
        package var objectBase: Duration
        /// The slowest transfer rate an object's deadline allows for, in bytes a second.
        package var objectRate: Int64

        /// 300 s a request; an object 300 s plus its size at 64 KiB/s.
        package static let standard = Deadlines(request: .seconds(300), objectBase: .seconds(300), objectRate: 64 << 10)

        package init(request: Duration, objectBase: Duration, objectRate: Int64) {
            self.request = request
            self.objectBase = objectBase
            self.objectRate = max(1, objectRate)
        }

        /// The deadline for an object of `size` bytes.
        package func object(size: Int64) -> Duration {
            objectBase + .seconds(max(0, size) / objectRate)
        }
    }

    package init(base: URL, key: SigningKey, deadlines: Deadlines = .standard) {
        self.base = base
        self.key = key
        self.deadlines = deadlines
    }

    /// The authority (`host`, and `:port` unless it is the scheme's default, lowercase) that a request to a node at
    /// `url` signs as `@authority` and sends as `Host`; a node serving at `url` answers only requests signed for it.
    /// `nil` for a URL that is not http(s) with a host.
    package static func authority(of url: URL) -> String? {
        guard let scheme = url.scheme?.lowercased(), scheme == "http" || scheme == "https", var host = url.host,
            !host.isEmpty
        else { return nil }
        // An IPv6 literal keeps its brackets, as in a URL and a Host field (RFC 3986 section 3.2.2).
        if host.contains(":"), !host.hasPrefix("[") { host = "[" + host + "]" }
        let port = url.port
        let isDefault = port == nil || (scheme == "http" && port == 80) || (scheme == "https" && port == 443)
        return (host + (isDefault ? "" : ":\(port ?? 0)")).lowercased()
    }

    /// The request's URL and the authority its signature covers (host, and the port unless it is the default).
    func target(_ path: String, query: String) -> (url: String, authority: String, path: String) {
        var basePath = base.path
        while basePath.hasSuffix("/") { basePath.removeLast() }
        let fullPath = basePath + "/" + path
        let scheme = base.scheme?.lowercased() ?? "http"
        let authority = Self.authority(of: base) ?? ""
        let url = "\(scheme)://\(authority)\(fullPath)" + (query.isEmpty ? "" : "?" + query)
        return (url, authority, fullPath)
    }

    /// A signed request for `path` (with `query`, and a body for POST), ready to execute.
    package func signedRequest(
        _ path: String,
        query: String = "",
        method: String = "GET",
        body: [UInt8] = [],
        headers extra: [(String, String)] = []
    ) -> HTTPClientRequest {
        let (url, authority, fullPath) = target(path, query: query)
        var request = HTTPClientRequest(url: url)
        request.method = HTTPMethod(rawValue: method)
        request.headers.replaceOrAdd(name: "Host", value: authority)
        for (name, value) in extra { request.headers.replaceOrAdd(name: name, value: value) }
        if !body.isEmpty { request.body = .bytes(ByteBuffer(bytes: body)) }
        let signed = HTTPSignature.Request(
            method: method,
            authority: authority,
            path: fullPath,
            query: query.isEmpty ? "" : "?" + query,
            body: body
        )
        for (name, value) in HTTPSignature.sign(signed, key: key) {
            request.headers.replaceOrAdd(name: name, value: value)
        }
        return request
    }

    /// Executes a request as is; the status, headers and body (at most `limit` bytes), all within `deadline`.
    ///
    /// - Throws: ``DeadlineExceeded`` when the whole response has not arrived by then; the HTTP client's error
    ///   otherwise (including a body over `limit`).
    package static func execute(
        _ request: HTTPClientRequest,
        limit: Int = maxBody,
        deadline: Duration = Deadlines.standard.request
    ) async throws -> (status: Int, headers: [String: String], body: [UInt8]) {
        try await within(deadline) {
            let response = try await nodeHTTPClient.execute(request, timeout: timeAmount(deadline))
            let body = try await response.body.collect(upTo: limit)
            var headers: [String: String] = [:]
            for (name, value) in response.headers { headers[name.lowercased()] = value }
            return (Int(response.status.code), headers, Array(buffer: body))
        }
    }

    /// A response that did not arrive in full by its deadline.
    package struct DeadlineExceeded: Error, CustomStringConvertible {
        package var description: String { "the response did not arrive in full before its deadline" }
    }

    /// Runs `body`, cancelling it (which aborts its HTTP request, body stream included) when `limit` passes first.
    static func within<T: Sendable>(
        _ limit: Duration,
        _ body: @escaping @Sendable () async throws -> T
    ) async throws -> T {
        try await withThrowingTaskGroup(of: T?.self) { group in
            group.addTask { try await body() }
            group.addTask {
                try await Task.sleep(for: limit)
                return nil
            }
            defer { group.cancelAll() }
            guard let first = try await group.next(), let value = first else { throw DeadlineExceeded() }
            return value
        }
    }

    /// `duration` for NIO, whole milliseconds.
    static func timeAmount(_ duration: Duration) -> TimeAmount {
        let (seconds, attoseconds) = duration.components
        return .milliseconds(seconds * 1000 + attoseconds / 1_000_000_000_000_000)
    }

    /// Sends a signed request; returns the status and body.
    package func send(
        _ path: String,
        query: String = "",
        method: String = "GET",
        body: [UInt8] = [],
        limit: Int = maxBody
    ) async throws -> (status: Int, body: Data) {
        do {
            let (status, _, bytes) = try await Self.execute(
                signedRequest(path, query: query, method: method, body: body),
                limit: limit,
                deadline: deadlines.request
            )
            return (status, Data(bytes))
        } catch {
            throw unreachable(error)
        }
    }

    func unreachable(_ error: any Error) -> ArchiveError {
        if let error = error as? ArchiveError { return error }
        if error is NIOTooManyBytesError {
            return ArchiveError(
                .badInput,
                "\(base.absoluteString) sent an answer larger than the protocol allows (PROTOCOL.md section 4)",
                fix: "check the peer's version; nothing was imported"
            )
        }
        if error is DeadlineExceeded || (error as? HTTPClientError) == .deadlineExceeded {
            return ArchiveError(
                .peerTooSlow,
                "\(base.absoluteString) did not send its whole answer within \(deadlines.request) (PROTOCOL.md section 4)",
                fix: "check the peer's network and that its node is working, then pull again (it resumes)"
            )
        }
        return ArchiveError(
            .temporary,
            "cannot reach \(base.absoluteString): \(TerminalText.escape(String(describing: error).prefix(200).description))",
            fix: "check the peer's URL and that its node is running, then pull again (it resumes)"
        )
    }

    /// GETs one object of a grant, `size` bytes, checking nothing but the length (the caller hashes it). An
    /// interrupted transfer is retried up to three times, each asking with a Range request only for the bytes
    /// still missing.
    ///
    /// - Returns: The object's bytes, or a refusal (status and body) when the node does not serve it.
    ///
    /// All attempts together must finish within ``Deadlines/object(size:)``; when it passes, the fetch fails with a
    /// temporary error and is not retried. `size` must be one the caller checked (a released object's).
    func object(grant: String, name: ObjectName, size: Int64) async throws -> Result<[UInt8], Refused> {
        let limit = deadlines.object(size: size)
        do {
            return try await Self.within(limit) { try await fetchObject(grant: grant, name: name, size: size) }
        } catch is DeadlineExceeded {
            throw ArchiveError(
                .peerTooSlow,
                "\(base.absoluteString) did not send object \(name) (\(size) bytes) within \(limit) (PROTOCOL.md section 4)",
                fix: "check the peer's network and that its node is working, then pull again (it resumes)"
            )
        }
    }

    private func fetchObject(grant: String, name: ObjectName, size: Int64) async throws -> Result<[UInt8], Refused> {
        guard (0...ObjectRef.maxSize).contains(size) else {
            throw ArchiveError(.badInput, "object \(name) has an impossible size \(size)", fix: "check the grant")
        }
        var bytes: [UInt8] = []
        bytes.reserveCapacity(Int(min(size, 1 << 20)))  // grows as the bytes arrive; never on the peer's word
        var attempt = 0
        while true {
            var request = signedRequest("v1/grants/\(grant)/objects/\(name.hex)")
            if !bytes.isEmpty { request.headers.replaceOrAdd(name: "Range", value: "bytes=\(bytes.count)-") }
            do {
                // The outer deadline bounds the whole; this one only stops the head from waiting longer.
                let response = try await nodeHTTPClient.execute(request, timeout: Self.timeAmount(deadlines.request))
                let status = Int(response.status.code)
                guard status == 200 || (status == 206 && !bytes.isEmpty) else {
                    let text = try await response.body.collect(upTo: 4096)
                    return .failure(Refused(status: status, body: Data(Array(buffer: text))))
                }
                if status == 200 { bytes.removeAll(keepingCapacity: true) }
                for try await part in response.body {
                    guard Int64(bytes.count + part.readableBytes) <= size else {
                        throw ArchiveError(
                            .badInput,
                            "the peer sent more bytes than object \(name) has",
                            fix: "check the peer's version"
                        )
                    }
                    bytes += part.readableBytesView
                }
                if Int64(bytes.count) == size { return .success(bytes) }
                throw ArchiveError(.temporary, "object \(name) arrived short", fix: "pull again")
            } catch let error as ArchiveError where error.code == .badInput {
                throw error
            } catch is CancellationError {
                throw CancellationError()
            } catch {
                if Task.isCancelled { throw CancellationError() }
                attempt += 1
                guard attempt < 4 else { throw unreachable(error) }
                try await Task.sleep(for: .milliseconds(250 << attempt))
            }
        }
    }

    /// A status and body the node answered instead of an object.
    struct Refused: Error, Sendable {
        var status: Int
        var body: Data
    }
}
