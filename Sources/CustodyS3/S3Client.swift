import AsyncHTTPClient
import CustodyCrypto
import CustodyStorage
import Foundation
import NIOCore
import NIOHTTP1
import Synchronization

/// The HTTP client every S3 request goes through (lives as long as the process, so it is never shut down).
private let s3HTTPClient: HTTPClient = {
    var configuration = HTTPClient.Configuration(timeout: .init(connect: .seconds(10), read: .seconds(60)))
    configuration.connectionPool.concurrentHTTP1ConnectionsPerHostSoftLimit = 16
    configuration.redirectConfiguration = .disallow
    configuration.decompression = .disabled
    return HTTPClient(eventLoopGroup: HTTPClient.defaultEventLoopGroup, configuration: configuration)
}()

/// One S3 response, its body read in full (and bounded).
package struct S3Response: Sendable {
    /// The HTTP status.
    package var status: Int
    /// The response headers.
    package var headers: HTTPHeaders
    /// The body.
    package var body: [UInt8]
}

/// A small S3 client: path-style requests signed with SigV4, on AsyncHTTPClient's async API, with retries on
/// 5xx, 429 and transport failures.
///
/// Nothing in it blocks a thread: requests are awaited, the backoff between attempts is `Task.sleep`, and a
/// request that gets no answer is ended by its deadline (the whole request, body included), then retried.
package final class S3Client: Sendable {
    /// Where the objects are.
    package let settings: S3Settings
    let scheme: String
    let host: String
    let port: Int
    let region: String
    private let credentials: Mutex<S3Credentials?>
    /// Set when a request exhausted its retries: the store is down, and every later request of this command
    /// fails at once instead of waiting through its own retries.
    private let givenUp = Mutex<StorageError?>(nil)
    private let environment: S3Environment
    /// Retries after the first attempt, with exponential backoff from ``firstBackoff`` (and jitter).
    static let retries = 6
    /// The first backoff, in seconds.
    static let firstBackoff = 0.2

    /// A client for the bucket `settings` names, reached and authenticated as `environment` says.
    ///
    /// - Throws: ``StorageError`` (usage) when the endpoint is not an `http(s)://host[:port]` URL.
    package init(settings: S3Settings, environment: S3Environment = .current()) throws(StorageError) {
        self.settings = settings
        self.environment = environment
        let endpoint = settings.endpoint ?? environment.endpoint ?? "https://s3.amazonaws.com"
        guard let url = URL(string: endpoint), let scheme = url.scheme?.lowercased(),
            ["http", "https"].contains(scheme),
            let host = url.host, !host.isEmpty, url.path.isEmpty || url.path == "/"
        else {
            throw StorageError(
                .usage,
                "the S3 endpoint \(endpoint) is not an http(s)://host[:port] URL",
                fix: "set AWS_ENDPOINT_URL_S3, e.g. https://s3.example.org"
            )
        }
        self.scheme = scheme
        self.host = host
        port = url.port ?? (scheme == "https" ? 443 : 80)
        region = settings.region ?? environment.region ?? "us-east-1"
        credentials = Mutex(nil)
    }

    /// The endpoint, for messages (no credentials in it).
    package var endpoint: String { "\(scheme)://\(hostHeader)" }

    var hostHeader: String {
        (scheme == "http" && port == 80) || (scheme == "https" && port == 443) ? host : "\(host):\(port)"
    }

    /// The credentials, read from the environment at the first request.
    func resolvedCredentials() throws(StorageError) -> S3Credentials {
        try credentials.withLock { cached throws(StorageError) in
            if let cached { return cached }
            guard let access = environment.accessKey, let secret = environment.secretKey else {
                throw StorageError(
                    .usage,
                    "the archive's objects are on S3 (\(settings.url)) and no credentials are set",
                    fix: "set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (and AWS_SESSION_TOKEN for temporary ones)"
                )
            }
            var secretBytes = Array(secret.utf8)
            defer { wipe(&secretBytes) }
            do {
                let made = try S3Credentials(
                    accessKey: access,
                    secretKey: secretBytes,
                    sessionToken: environment.sessionToken
                )
                cached = made
                return made
            } catch {
                throw StorageError(
                    .cannotCreate,
                    "cannot hold the S3 credentials: \(error)",
                    fix: "check memory limits"
                )
            }
        }
    }

    /// The key of `name` under the prefix.
    package func key(_ name: String) -> String { settings.prefix.isEmpty ? name : settings.prefix + "/" + name }

    /// Sends one request (retrying 5xx, 429 and transport failures); `accept` lists the statuses that are
    /// answers rather than failures.
    ///
    /// - Parameters:
    ///   - method: The HTTP method.
    ///   - key: The object key (already under the prefix), or `nil` for the bucket itself.
    ///   - query: Query parameters, not yet encoded.
    ///   - extra: Headers to send and sign.
    ///   - body: The request body.
    ///   - accept: Statuses returned rather than thrown.
    ///   - maxBody: The largest response body accepted: an object by the size its event records, the rest
    ///     by 1 MiB (a listing of 1000 keys is about 300 KiB).
    ///   - what: What the request is about, for messages.
    /// - Returns: The response, its status one of `accept`.
    /// - Throws: ``StorageError``: not authorised (403, bad credentials), not found (no such bucket), temporary
    ///   (the store kept failing), bad input (another unexpected status), damaged (an oversized answer).
    package func send(
        _ method: HTTPMethod,
        key: String?,
        query: [(String, String)] = [],
        headers extra: [(String, String)] = [],
        body: [UInt8]? = nil,
        accept: Set<Int> = [200],
        maxBody: Int = 1 << 20,
        what: @autoclosure () -> String
    ) async throws -> S3Response {
        let credentials = try resolvedCredentials()
        if let failure = givenUp.withLock({ $0 }) { throw failure }
        let path = "/" + settings.bucket + (key.map { "/" + $0 } ?? "")
        let payloadHash = body.map { Encoding.hex(SHA256Hasher.hash($0)) } ?? SigV4.emptyPayloadHash
        let buffer = body.map { ByteBuffer(bytes: $0) }  // copied once, shared by every attempt
        let queryString = query.isEmpty ? "" : "?" + SigV4.canonicalQuery(query)
        let url = "\(scheme)://\(hostHeader)\(SigV4.uriEncode(path, encodeSlash: false))\(queryString)"
        let timeout = requestTimeout(bytes: max(body?.count ?? 0, method == .GET ? maxBody : 0))
        var attempt = 0
        while true {
            let signed = SigV4.sign(
                SigV4.Request(
                    method: method.rawValue,
                    host: hostHeader,
                    path: path,
                    query: query,
                    headers: extra + [("x-amz-content-sha256", payloadHash)],
                    payloadHash: payloadHash
                ),
                credentials: credentials,
                region: region,
                amzDate: SigV4.amzDate(Int(Date().timeIntervalSince1970))
            )
            var request = HTTPClientRequest(url: url)
            request.method = method
            request.headers.replaceOrAdd(name: "Host", value: hostHeader)
            request.headers.replaceOrAdd(name: "x-amz-content-sha256", value: payloadHash)
            for (name, value) in extra + signed.headers { request.headers.replaceOrAdd(name: name, value: value) }
            if let buffer {
                request.body = .bytes(buffer)
            } else if method == .PUT || method == .POST {
                request.body = .bytes(ByteBuffer())
            }
            var failure: String
            do {
                let response = try await Self.execute(request, maxBody: maxBody, timeout: timeout)
                if accept.contains(response.status) { return response }
                let code = S3Client.errorCode(response.body)
                switch response.status {
                case 500, 502, 503, 504, 429:
                    failure = "\(response.status)\(code.map { " \($0)" } ?? "")"
                case 403:
                    throw StorageError(
                        .notAuthorised,
                        "the S3 store at \(endpoint) refused the credentials for \(what()) (403\(code.map { " \($0)" } ?? ""))",
                        fix:
                            "check AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, and that they may use bucket \(settings.bucket)"
                    )
                case 404 where code == "NoSuchBucket":
                    throw StorageError(
                        .notFound,
                        "the bucket \(settings.bucket) does not exist at \(endpoint)",
                        fix: "create it first (for example: aws s3 mb s3://\(settings.bucket)), or check the name"
                    )
                default:
                    throw StorageError(
                        .badInput,
                        "the S3 store at \(endpoint) answered \(response.status)\(code.map { " \($0)" } ?? "") for \(what())",
                        fix: "check the bucket, the endpoint and the store's logs"
                    )
                }
            } catch let error as StorageError {
                throw error
            } catch is NIOTooManyBytesError {
                throw StorageError(
                    .damaged,
                    "the S3 store sent more than \(maxBody) bytes for \(what())",
                    fix: "run custody verify; check the store"
                )
            } catch is CancellationError {
                throw CancellationError()
            } catch let error as HTTPClientError where error == .deadlineExceeded {
                failure = "no answer within \(Int(timeout)) s"
            } catch {
                failure = "\(error)"
            }
            attempt += 1
            guard attempt <= Self.retries else {
                let error = StorageError(
                    .temporary,
                    "the S3 store at \(endpoint) kept failing for \(what()) (\(attempt) attempts; last: \(failure))",
                    fix: "check that the store is up; the command can be run again"
                )
                givenUp.withLock { $0 = $0 ?? error }
                throw error
            }
            if let failure = givenUp.withLock({ $0 }) { throw failure }
            let delay = Self.firstBackoff * pow(2, Double(attempt - 1)) * Double.random(in: 0.75...1.25)
            try await Task.sleep(for: .seconds(delay))
        }
    }

    /// Checks that the bucket exists and the credentials may use it (a `HEAD` of the bucket).
    ///
    /// - Throws: ``StorageError``: not found (no such bucket), not authorised (403), usage (no credentials).
    package func checkBucket() async throws {
        let response = try await send(.HEAD, key: nil, accept: [200, 404], what: "bucket \(settings.bucket)")
        guard response.status == 200 else {
            throw StorageError(
                .notFound,
                "the bucket \(settings.bucket) does not exist at \(endpoint)",
                fix: "create it first (for example: aws s3 mb s3://\(settings.bucket)), or check the name"
            )
        }
    }

    /// Creates the bucket (tests, benchmarks); an existing bucket of these credentials is fine.
    ///
    /// - Throws: ``StorageError``.
    package func createBucket() async throws {
        _ = try await send(.PUT, key: nil, accept: [200, 409], what: "creating bucket \(settings.bucket)")
    }

    /// Writes `body` at `key` (under no prefix), replacing what is there: for tests that damage a store.
    ///
    /// - Throws: ``StorageError``.
    package func put(key: String, body: [UInt8]) async throws {
        _ = try await send(.PUT, key: key, body: body, what: "key \(key)")
    }

    /// How long one request may take before it is abandoned and retried: `CUSTODY_S3_REQUEST_TIMEOUT` seconds
    /// (default 60), plus a second per MiB of body, so a slow but moving upload is not cut off.
    func requestTimeout(bytes: Int) -> Double {
        let base = Double(ProcessInfo.processInfo.environment["CUSTODY_S3_REQUEST_TIMEOUT"] ?? "") ?? 60
        return max(1, base) + Double(bytes) / Double(1 << 20)
    }

    /// Runs one request and reads its body, within `timeout` seconds for the whole of it: a connection the
    /// store dropped without a word (a killed server can leave one half-closed) fails the request with
    /// `HTTPClientError.deadlineExceeded`, not hangs the command.
    static func execute(_ request: HTTPClientRequest, maxBody: Int, timeout: Double) async throws -> S3Response {
        let deadline = NIODeadline.now() + .milliseconds(Int64(timeout * 1000))
        let response = try await s3HTTPClient.execute(request, deadline: deadline)
        // Every answer is bounded before it is held (collect refuses a declared or streamed excess).
        let body = try await response.body.collect(upTo: maxBody)
        return S3Response(status: Int(response.status.code), headers: response.headers, body: Array(buffer: body))
    }

    /// The `<Code>` of an S3 error body.
    static func errorCode(_ body: [UInt8]) -> String? {
        guard !body.isEmpty, body.count < 64 * 1024 else { return nil }
        return XMLFields.parse(body, elements: ["Code"])["Code"]?.first
    }
}
