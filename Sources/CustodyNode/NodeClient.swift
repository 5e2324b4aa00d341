import AsyncHTTPClient
import CustodyArchive
import CustodyCrypto
import Dispatch
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
                .temporary,
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
                .temporary,
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

/// What a pull fetched and reused, counted from the fetching tasks.
final class PullCounts: Sendable {
    let state = Mutex((fetched: 0, reused: 0, bytes: Int64(0)))
}

/// `custody pull`: fetches the grants a peer made to this archive and imports them through the same path as
/// `custody bundle import`.
package enum Puller {
    /// What a pull did besides importing: the two cosignatures exchanged.
    package struct Witnessing: Sendable {
        /// The size of the peer's checkpoint this archive cosigned (and delivered).
        package var cosignedPeerSize: Int?
        /// The size of this archive's checkpoint the peer cosigned.
        package var peerCosignedSize: Int?
        /// Why the peer did not cosign, when it did not.
        package var peerDeclined: String?
    }

    /// Witnessing on every pull: cosign the peer's checkpoint (after checking it extends the one cosigned before,
    /// refusing a fork loudly) and deliver the cosignature; have the peer cosign this archive's checkpoint.
    package static func witness(archive: Archive.Unlocked, peer alias: String) async throws -> Witnessing {
        let peer = try archive.peer(alias)
        guard let url = peer.url.flatMap(URL.init(string:)) else {
            throw ArchiveError(.damaged, "peer \(alias) has no URL", fix: "add it again with custody peer add")
        }
        let client = NodeClient(base: url, key: try archive.keys.signing)
        var report = Witnessing()
        report.cosignedPeerSize = try await cosignPeer(archive: archive, client: client, peer: peer)
        // Ours: from the size the peer cosigned last; a 409 names the size it holds, and we try once more from it.
        var from = archive.sizeCosigned(by: peer.identity.origin) ?? 0
        for _ in 0..<2 {
            let request = try archive.ledger.consistencyProof(from: from).witnessRequest
            let (answer, text) = try await client.send(
                "v1/witness/add-checkpoint",
                method: "POST",
                body: Array(request.utf8),
                limit: Archive.maxWitnessInput
            )
            switch answer {
            case 200:
                report.peerCosignedSize = try archive.attachCosignatures(Array(text)).first?.size
                return report
            case 409:
                from = Int(String(decoding: text, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)) ?? 0
            case 403:
                report.peerDeclined =
                    "the peer does not witness this log yet (it can: custody witness add <this archive's identity file>)"
                return report
            default:
                report.peerDeclined = "the peer refused to cosign (\(answer)\(Self.reasonSuffix(text)))"
                return report
            }
        }
        report.peerDeclined = "the peer and this archive disagree on the size it last cosigned"
        return report
    }

    /// Theirs: cosigns the peer's current checkpoint — a consistency request from the size cosigned last (or
    /// its bare checkpoint, the first time), so a fork throws here, loudly — and delivers the cosignature.
    ///
    /// - Returns: The size cosigned.
    static func cosignPeer(archive: Archive.Unlocked, client: NodeClient, peer: KnownBody) async throws -> Int {
        let (status, body): (Int, Data)
        if let stored = archive.witnessedSize(origin: peer.identity.origin) {
            (status, body) = try await client.send(
                "v1/log/consistency",
                query: "old=\(stored)",
                limit: Archive.maxWitnessInput
            )
        } else {
            (status, body) = try await client.send("v1/log/checkpoint", limit: Archive.maxWitnessInput)
        }
        guard status == 200 else { throw refusal(status, body, what: "the peer's checkpoint") }
        let cosignature = try archive.cosign(Array(body))
        let (delivered, reply) = try await client.send(
            "v1/cosignatures",
            method: "POST",
            body: Array(cosignature.line.utf8),
            limit: Archive.maxWitnessInput
        )
        guard delivered == 200 else { throw refusal(delivered, reply, what: "the cosignature delivery") }
        return cosignature.size
    }

    /// Checks the checkpoint a grant's head carries against the peer's log as this archive witnesses it, before
    /// anything of the grant is imported: the head must show the witnessed log or a prefix of it that the peer
    /// proves consistent. The witness is brought forward first when the head is newer than what it cosigned.
    ///
    /// - Throws: ``ArchiveError``: damaged (`FORK:`, both checkpoints saved under `witness/conflicts/`) for a head
    ///   of the witnessed size with another root; bad input for a head that is not signed by the peer's log key,
    ///   or that the peer cannot prove consistent (`proof-invalid`); temporary when the peer's log keeps moving.
    static func checkHead(
        _ note: String?,
        archive: Archive.Unlocked,
        client: NodeClient,
        peer: KnownBody,
        grant id: String
    ) async throws {
        guard let note, let logKey = peer.logKey,
            let shown = Checkpoint.verified(note, origin: peer.identity.origin, publicKey: logKey.publicKey)
        else {
            throw ArchiveError(
                .badInput,
                "the head of grant \(id) carries no checkpoint signed by the peer's log key",
                fix: "nothing was imported; report the peer's operators"
            )
        }
        for _ in 0..<3 {
            var witnessed = try archive.witnessedCheckpoint(origin: shown.origin)
            if (witnessed?.size ?? -1) < shown.size {
                // A head newer than the log witnessed: witness the peer's current log first (a fork throws there).
                _ = try await cosignPeer(archive: archive, client: client, peer: peer)
                witnessed = try archive.witnessedCheckpoint(origin: shown.origin)
            }
            guard let witnessed, witnessed.size >= shown.size else {
                throw ArchiveError(
                    .badInput,
                    "the head of grant \(id) shows a checkpoint of size \(shown.size), beyond the peer's log as it shows it to witnesses: it shows different logs to different parties",
                    fix: "nothing was imported; report the peer's operators"
                )
            }
            try archive.refuseFork(shown, witnessed: witnessed)
            if witnessed.size == shown.size { return }
            // An older head: the peer proves it is a prefix of its log, whose checkpoint must be the witnessed one
            // or extend it.
            let (status, body) = try await client.send(
                "v1/log/consistency",
                query: "old=\(shown.size)",
                limit: Archive.maxWitnessInput
            )
            guard status == 200 else { throw refusal(status, body, what: "the consistency of grant \(id)'s head") }
            guard let text = String(validating: Array(body), as: UTF8.self),
                let (oldSize, proof, latestNote) = try? Archive.parseWitnessRequest(text), oldSize == shown.size,
                let latest = Checkpoint.verified(latestNote, origin: shown.origin, publicKey: logKey.publicKey)
            else {
                throw ArchiveError(
                    .badInput,
                    "the peer answered the consistency request for grant \(id)'s head with no valid proof",
                    fix: "nothing was imported; report the peer's operators"
                )
            }
            try archive.refuseFork(latest, witnessed: witnessed)
            switch Merkle.consistency(
                proof,
                first: shown.size,
                second: latest.size,
                firstRoot: shown.root,
                secondRoot: latest.root
            ) {
            case .consistent:
                break
            case .inconsistent:
                // The peer's own proof shows its head is no prefix of its log: two signed logs, a fork.
                try archive.refuseFork(latest, shown: shown, proof: proof)
            case .invalid:
                throw ArchiveError(
                    .proofInvalid,
                    "proof-invalid: the peer cannot prove the checkpoint of grant \(id)'s head (size \(shown.size)) consistent with its log (size \(latest.size))",
                    fix: "nothing was imported; report the peer's operators"
                )
            }
            if latest.size == witnessed.size { return }
            guard latest.size > witnessed.size else {
                throw ArchiveError(
                    .badInput,
                    "the peer's log (size \(latest.size)) is older than the one this archive witnessed (size \(witnessed.size))",
                    fix: "nothing was imported; report the peer's operators"
                )
            }
            // Its log grew since it was witnessed: witness it forward, and check again against the new state.
            _ = try await cosignPeer(archive: archive, client: client, peer: peer)
        }
        throw ArchiveError(
            .temporary,
            "the peer's log kept growing while grant \(id)'s head was checked against it",
            fix: "pull again"
        )
    }

    /// One grant pulled.
    package struct Pulled: Sendable {
        /// What the import did.
        package var result: BundleImport
        /// Objects fetched from the peer now.
        package var fetched: Int
        /// Objects already here (kept by an interrupted pull, or shared with other items): not fetched again.
        package var reused: Int
        /// Bytes fetched.
        package var bytes: Int64
    }

    /// Progress of a pull: objects and bytes done of the grant's total.
    package struct Progress: Sendable {
        package var grant: String
        package var objects: Int
        package var totalObjects: Int
        package var bytes: Int64
        package var totalBytes: Int64
    }

    /// The most grants a peer's listing may name.
    static let maxListedGrants = 100_000
    /// How many objects are fetched at once (below the node's per-key limit, which counts the head request too).
    static let parallelFetches = 6
    /// The most object bytes held in memory at once, besides one object larger than it.
    static let maxBytesInFlight: Int64 = 96 << 20

    /// Pulls `grant` (or every valid grant addressed to this archive) from the peer called `alias`: for each,
    /// the bundle head (grant, checkpoint, entries with proofs), then the released objects in parallel, each
    /// checked and staged as it arrives, through ``Archive/importBundle(path:trustGranter:fetch:progress:)``.
    package static func pull(
        archive: Archive.Unlocked,
        peer alias: String,
        grant wanted: String?,
        progress: (@Sendable (Progress) -> Void)? = nil,
        notes: (@Sendable (String) -> Void)? = nil
    ) async throws -> [Pulled] {
        let peer = try archive.peer(alias)
        guard let url = peer.url.flatMap(URL.init(string:)) else {
            throw ArchiveError(.damaged, "peer \(alias) has no URL", fix: "add it again with custody peer add")
        }
        let client = NodeClient(base: url, key: try archive.keys.signing)
        let (status, body) = try await client.send("v1/grants")
        guard status == 200 else { throw refusal(status, body, what: "the grant list") }
        // The listing is outside input: bounded, and every id a grant id before it is used at all.
        guard let listing = try? JSONDecoder().decode(GrantList.self, from: body),
            listing.grants.count <= maxListedGrants, listing.grants.allSatisfy({ OutsideInput.isID($0.id) })
        else {
            throw ArchiveError(
                .badInput,
                "peer \(alias) sent a malformed grant list (over \(maxListedGrants) grants, or an id that is not 32 lowercase hex digits)",
                fix: "check the peer's version"
            )
        }
        var ids = listing.grants.map(\.id)
        if let wanted {
            guard ids.contains(wanted) else {
                throw ArchiveError(
                    .notFound,
                    "peer \(alias) has no grant \(wanted) addressed to this archive",
                    fix: "check the grant id with the granting body"
                )
            }
            ids = [wanted]
        }
        let directory = archive.root + "/pull-tmp"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        var results: [Pulled] = []
        for id in ids {
            let (status, head) = try await client.send("v1/grants/\(id)/head")
            guard status == 200 else {
                if status == 410 {  // revoked (a notice is checked and recorded) or expired: nothing to pull
                    try await gone(
                        archive: archive,
                        client: client,
                        peer: peer,
                        grant: id,
                        body: head,
                        wanted: wanted != nil,
                        notes: notes
                    )
                    continue
                }
                throw refusal(status, head, what: "grant \(id)")
            }
            // A name of our own: nothing the peer sends becomes part of a path.
            let path = directory + "/head-" + Encoding.hex(randomBytes(16))
            try POSIX.writeFileAtomically(path, Array(head))
            defer { unlink(path) }
            // Before anything is imported: the head's checkpoint against the log this archive witnesses.
            let note = BundleVerifier.checkpointNote(path: path)
            try await checkHead(note, archive: archive, client: client, peer: peer, grant: id)
            let expected = Archive.ExpectedGrant(grant: id, granter: peer.identity, checkpoint: note)
            let counts = PullCounts()
            let fetch = fetcher(client: client, grant: id, store: archive.store, counts: counts, progress: progress)
            // The import blocks on the fetches: it runs on its own thread, not on the tasks' pool.
            let result = try await withCheckedThrowingContinuation { continuation in
                DispatchQueue.global().async {
                    continuation.resume(
                        with: Result { try archive.importBundle(path: path, expected: expected, fetch: fetch) }
                    )
                }
            }
            let done = counts.state.withLock { $0 }
            results.append(Pulled(result: result, fetched: done.fetched, reused: done.reused, bytes: done.bytes))
        }
        return results
    }

    /// The objects of grant `id`: those already in the store are read from it, the others fetched in parallel
    /// (at most ``parallelFetches`` and ``maxBytesInFlight`` at once); each is delivered to the import's checks.
    static func fetcher(
        client: NodeClient,
        grant id: String,
        store: any ObjectStore,
        counts: PullCounts,
        progress: (@Sendable (Progress) -> Void)?
    ) -> ObjectFetcher {
        { objects, deliver in
            let failure = Mutex<(any Error)?>(nil)
            let finished = DispatchSemaphore(value: 0)
            let totalBytes = OutsideInput.checkedTotal(objects.map(\.size)) ?? .max
            let checks = DispatchQueue(label: "custody.pull.check", attributes: .concurrent)
            Task {
                do {
                    try await withThrowingTaskGroup(of: Int64.self) { group in
                        var running = 0
                        var inFlight: Int64 = 0
                        var done = (objects: 0, bytes: Int64(0))
                        func finishOne() async throws {
                            guard let size = try await group.next() else { return }
                            running -= 1
                            inFlight -= size
                            done.objects += 1
                            done.bytes += size
                            progress?(
                                Progress(
                                    grant: id,
                                    objects: done.objects,
                                    totalObjects: objects.count,
                                    bytes: done.bytes,
                                    totalBytes: totalBytes
                                )
                            )
                        }
                        for ref in objects {
                            while running > 0, running >= parallelFetches || inFlight + ref.size > maxBytesInFlight {
                                try await finishOne()
                            }
                            running += 1
                            inFlight += ref.size
                            group.addTask {
                                let bytes: [UInt8]
                                // The store may block (S3): ask it off the task pool.
                                let stored = try await withCheckedThrowingContinuation { continuation in
                                    checks.async {
                                        continuation.resume(
                                            with: Result {
                                                try store.size(of: ref.name) == ref.size
                                                    ? try store.read(ref.name, limit: Int(ref.size)) : nil
                                            }
                                        )
                                    }
                                }
                                if let stored {
                                    bytes = stored
                                    counts.state.withLock { $0.reused += 1 }
                                } else {
                                    switch try await client.object(grant: id, name: ref.name, size: ref.size) {
                                    case .success(let fetched): bytes = fetched
                                    case .failure(let refused):
                                        throw refusal(
                                            refused.status,
                                            refused.body,
                                            what: "object \(ref.name) of grant \(id)"
                                        )
                                    }
                                    counts.state.withLock {
                                        $0.fetched += 1
                                        $0.bytes += ref.size
                                    }
                                }
                                // Hashing and staging run off the task pool.
                                await withCheckedContinuation { continuation in
                                    checks.async {
                                        deliver(ref.name, bytes)
                                        continuation.resume()
                                    }
                                }
                                return ref.size
                            }
                        }
                        while running > 0 { try await finishOne() }
                    }
                } catch {
                    failure.withLock { $0 = error }
                }
                finished.signal()
            }
            finished.wait()
            if let error = failure.withLock({ $0 }) { throw error }
        }
    }

    /// `": <code>"` for a peer's error body that holds a reason code in the documented form, else nothing: no other
    /// text of the peer's reaches this archive's output.
    static func reasonSuffix(_ body: Data) -> String {
        Reason.code(inPeerBody: body).map { ": " + $0 } ?? ""
    }

    static func refusal(_ status: Int, _ body: Data, what: String) -> ArchiveError {
        let code = Reason.code(inPeerBody: body)
        switch status {
        case 401:
            return ArchiveError(
                .notAuthorised,
                "the peer refused the request (401): it does not know this archive's key, or it does not serve at the URL it was added with",
                fix:
                    "have the peer add this archive's identity, and check that the URL given to peer add is one the node serves as (serve --public-url)"
            )
        case 404:
            return ArchiveError(.notFound, "the peer has no \(what) for this archive (404)", fix: "check the grant id")
        case 410:
            let why: String
            switch code.flatMap(Reason.init(rawValue:)) {
            case .grantRevoked?: why = "it was revoked"
            case .grantExpired?: why = "it expired or is not valid yet"
            case .ancestorRevoked?: why = "the grant it re-shares was revoked"
            case .ancestorExpired?: why = "the grant it re-shares expired"
            case .ancestorMissing?: why = "the peer no longer holds the grant it re-shares"
            default: why = "the peer says so" + (code.map { " (\($0))" } ?? "")
            }
            return ArchiveError(
                .notAuthorised,
                "\(what) is no longer valid: \(why)",
                fix: "ask the granting body for a new grant"
            )
        default:
            return ArchiveError(
                .temporary,
                "the peer answered \(status) for \(what)\(code.map { " (\($0))" } ?? "")",
                fix: "retry later"
            )
        }
    }
}
