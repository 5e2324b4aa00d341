import AsyncHTTPClient
import CustodyCrypto
import Dispatch
import Foundation
import NIOCore
import NIOHTTP1
import Synchronization

#if canImport(FoundationXML)
import FoundationXML
#endif

/// Where an archive's objects live on S3 and how to reach the store: `objects.json` in the archive folder
/// (Docs/FORMAT.md section "Object stores"). Holds no credentials.
package struct S3Settings: Codable, Sendable, Equatable {
    /// Always `s3`.
    package var backend = "s3"
    /// The bucket.
    package var bucket: String
    /// The key prefix (no leading or trailing `/`; may be empty).
    package var prefix: String
    /// The endpoint URL (`https://host[:port]`); `nil`: from `AWS_ENDPOINT_URL_S3` / `AWS_ENDPOINT_URL`, else
    /// AWS (`https://s3.amazonaws.com`). `init` stores what it used.
    package var endpoint: String?
    /// The region; `nil`: from `AWS_REGION` / `AWS_DEFAULT_REGION`, else `us-east-1`. `init` stores what it used.
    package var region: String?
    /// Objects larger than this are uploaded in parts.
    package var multipartThreshold: Int64 = 64 << 20
    /// The size of each part (at least 5 MiB, as S3 requires of every part but the last).
    package var partSize: Int64 = 16 << 20

    enum CodingKeys: String, CodingKey {
        case backend, bucket, prefix, endpoint, region
        case multipartThreshold = "multipart_threshold"
        case partSize = "part_size"
    }

    package init(bucket: String, prefix: String, endpoint: String? = nil, region: String? = nil) {
        self.bucket = bucket
        self.prefix = prefix
        self.endpoint = endpoint
        self.region = region
    }

    /// Parses `s3://bucket[/prefix]`.
    ///
    /// - Throws: ``ArchiveError`` (usage) for anything else, or a bucket name S3 does not allow.
    package static func parse(_ url: String) throws -> S3Settings {
        guard url.hasPrefix("s3://") else {
            throw ArchiveError(.usage, "\(url) is not an s3:// URL", fix: "give s3://BUCKET or s3://BUCKET/PREFIX")
        }
        let rest = url.dropFirst(5)
        let bucket = String(rest.prefix { $0 != "/" })
        var prefix = String(rest.dropFirst(bucket.count))
        while prefix.hasPrefix("/") { prefix.removeFirst() }
        while prefix.hasSuffix("/") { prefix.removeLast() }
        let allowed = Set("abcdefghijklmnopqrstuvwxyz0123456789.-")
        guard (3...63).contains(bucket.count), bucket.allSatisfy(allowed.contains),
            bucket.first?.isLetter == true || bucket.first?.isNumber == true
        else {
            throw ArchiveError(
                .usage,
                "\"\(bucket)\" is not a valid bucket name (3–63 lowercase letters, digits, dots and hyphens)",
                fix: "give s3://BUCKET/PREFIX with the bucket's exact name"
            )
        }
        let prefixAllowed = Set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.-_/")
        guard prefix.count <= 512, prefix.allSatisfy(prefixAllowed.contains),
            !prefix.split(separator: "/", omittingEmptySubsequences: false).contains(where: {
                $0.isEmpty || $0 == "." || $0 == ".."
            }) || prefix.isEmpty
        else {
            throw ArchiveError(
                .usage,
                "the prefix \"\(prefix)\" is not allowed (letters, digits, . - _ and single slashes between parts)",
                fix: "choose a simpler prefix"
            )
        }
        return S3Settings(bucket: bucket, prefix: prefix)
    }

    /// `s3://bucket/prefix`.
    package var url: String { "s3://\(bucket)" + (prefix.isEmpty ? "" : "/" + prefix) }
}

/// What the environment says about reaching S3 (the standard AWS variables).
package struct S3Environment: Sendable {
    package var endpoint: String?
    package var region: String?
    package var accessKey: String?
    package var secretKey: String?
    package var sessionToken: String?

    /// From `AWS_ENDPOINT_URL_S3` (else `AWS_ENDPOINT_URL`), `AWS_REGION` (else `AWS_DEFAULT_REGION`),
    /// `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY` and `AWS_SESSION_TOKEN`.
    package static func current(
        _ environment: [String: String] = ProcessInfo.processInfo.environment
    )
        -> S3Environment
    {
        func value(_ names: String...) -> String? {
            names.lazy.compactMap { environment[$0] }.first { !$0.isEmpty }
        }
        return S3Environment(
            endpoint: value("AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL"),
            region: value("AWS_REGION", "AWS_DEFAULT_REGION"),
            accessKey: value("AWS_ACCESS_KEY_ID"),
            secretKey: value("AWS_SECRET_ACCESS_KEY"),
            sessionToken: value("AWS_SESSION_TOKEN")
        )
    }
}

/// The HTTP client every S3 request goes through (lives as long as the process).
private let s3HTTPClient: HTTPClient = {
    var configuration = HTTPClient.Configuration(timeout: .init(connect: .seconds(10), read: .seconds(60)))
    configuration.connectionPool.concurrentHTTP1ConnectionsPerHostSoftLimit = 16
    configuration.redirectConfiguration = .disallow
    configuration.decompression = .disabled
    return HTTPClient(eventLoopGroup: HTTPClient.defaultEventLoopGroup, configuration: configuration)
}()

/// One S3 response.
struct S3Response {
    var status: Int
    var headers: HTTPHeaders
    var body: [UInt8]
}

/// A small S3 client: path-style requests signed with SigV4, made synchronously (the object store's interface
/// is synchronous; it is called from worker threads, never from an event loop), with retries on 5xx and
/// transport failures.
package final class S3Client: Sendable {
    let settings: S3Settings
    let scheme: String
    let host: String
    let port: Int
    let region: String
    private let credentials: Mutex<S3Credentials?>
    /// Set when a request exhausted its retries: the store is down, and every later request of this command
    /// fails at once instead of waiting through its own retries.
    private let givenUp = Mutex<ArchiveError?>(nil)
    private let environment: S3Environment
    /// Retries after the first attempt, with exponential backoff from ``firstBackoff`` (and jitter).
    static let retries = 6
    static let firstBackoff = 0.2

    package init(settings: S3Settings, environment: S3Environment = .current()) throws {
        self.settings = settings
        self.environment = environment
        let endpoint = settings.endpoint ?? environment.endpoint ?? "https://s3.amazonaws.com"
        guard let url = URL(string: endpoint), let scheme = url.scheme?.lowercased(),
            ["http", "https"].contains(scheme),
            let host = url.host, !host.isEmpty, url.path.isEmpty || url.path == "/"
        else {
            throw ArchiveError(
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
    func resolvedCredentials() throws -> S3Credentials {
        try credentials.withLock { cached in
            if let cached { return cached }
            guard let access = environment.accessKey, let secret = environment.secretKey else {
                throw ArchiveError(
                    .usage,
                    "the archive's objects are on S3 (\(settings.url)) and no credentials are set",
                    fix: "set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (and AWS_SESSION_TOKEN for temporary ones)"
                )
            }
            var secretBytes = Array(secret.utf8)
            defer { wipe(&secretBytes) }
            let made = try S3Credentials(
                accessKey: access,
                secretKey: secretBytes,
                sessionToken: environment.sessionToken
            )
            cached = made
            return made
        }
    }

    /// The key of `name` under the prefix.
    func key(_ name: String) -> String { settings.prefix.isEmpty ? name : settings.prefix + "/" + name }

    /// Sends one request (retrying 5xx, 429 and transport failures); `accept` lists the statuses that are
    /// answers rather than failures.
    ///
    /// - Throws: ``ArchiveError``: not authorised (403, bad credentials), not found (no such bucket), temporary
    ///   (the store kept failing), bad input (another unexpected status).
    func send(
        _ method: HTTPMethod,
        key: String?,
        query: [(String, String)] = [],
        headers extra: [(String, String)] = [],
        body: [UInt8]? = nil,
        accept: Set<Int> = [200],
        maxBody: Int = 1 << 20,
        what: @autoclosure () -> String
    ) throws -> S3Response {
        let credentials = try resolvedCredentials()
        if let failure = givenUp.withLock({ $0 }) { throw failure }
        let path = "/" + settings.bucket + (key.map { "/" + $0 } ?? "")
        let payloadHash = body.map { Encoding.hex(SHA256Hasher.hash($0)) } ?? SigV4.emptyPayloadHash
        let buffer = body.map { ByteBuffer(bytes: $0) }  // copied once, shared by every attempt
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
            let queryString = query.isEmpty ? "" : "?" + SigV4.canonicalQuery(query)
            let url = "\(scheme)://\(hostHeader)\(SigV4.uriEncode(path, encodeSlash: false))\(queryString)"
            var failure: String
            do {
                var request = try HTTPClient.Request(url: url, method: method)
                request.headers.replaceOrAdd(name: "Host", value: hostHeader)
                request.headers.replaceOrAdd(name: "x-amz-content-sha256", value: payloadHash)
                for (name, value) in extra + signed.headers { request.headers.replaceOrAdd(name: name, value: value) }
                if let buffer {
                    request.body = .byteBuffer(buffer)
                } else if method == .PUT || method == .POST {
                    request.headers.replaceOrAdd(name: "Content-Length", value: "0")
                }
                let response = try Self.execute(
                    request,
                    maxBody: maxBody,
                    timeout: requestTimeout(bytes: max(body?.count ?? 0, method == .GET ? maxBody : 0))
                )
                let status = Int(response.status.code)
                let bytes = response.body.map { Array(buffer: $0) } ?? []
                if accept.contains(status) { return S3Response(status: status, headers: response.headers, body: bytes) }
                let code = S3Client.errorCode(bytes)
                switch status {
                case 500, 502, 503, 504, 429:
                    failure = "\(status)\(code.map { " \($0)" } ?? "")"
                case 403:
                    throw ArchiveError(
                        .notAuthorised,
                        "the S3 store at \(endpoint) refused the credentials for \(what()) (403\(code.map { " \($0)" } ?? ""))",
                        fix:
                            "check AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, and that they may use bucket \(settings.bucket)"
                    )
                case 404 where code == "NoSuchBucket":
                    throw ArchiveError(
                        .notFound,
                        "the bucket \(settings.bucket) does not exist at \(endpoint)",
                        fix: "create it first (for example: aws s3 mb s3://\(settings.bucket)), or check the name"
                    )
                default:
                    throw ArchiveError(
                        .badInput,
                        "the S3 store at \(endpoint) answered \(status)\(code.map { " \($0)" } ?? "") for \(what())",
                        fix: "check the bucket, the endpoint and the store's logs"
                    )
                }
            } catch let error as ArchiveError {
                throw error
            } catch is ResponseAccumulator.ResponseTooBigError {
                throw ArchiveError(
                    .damaged,
                    "the S3 store sent more than \(maxBody) bytes for \(what())",
                    fix: "run custody verify; check the store"
                )
            } catch {
                failure = "\(error)"
            }
            attempt += 1
            guard attempt <= Self.retries else {
                let error = ArchiveError(
                    .temporary,
                    "the S3 store at \(endpoint) kept failing for \(what()) (\(attempt) attempts; last: \(failure))",
                    fix: "check that the store is up; the command can be run again"
                )
                givenUp.withLock { $0 = $0 ?? error }
                throw error
            }
            if let failure = givenUp.withLock({ $0 }) { throw failure }
            let delay = Self.firstBackoff * pow(2, Double(attempt - 1)) * Double.random(in: 0.75...1.25)
            Thread.sleep(forTimeInterval: delay)
        }
    }

    /// Checks that the bucket exists and the credentials may use it (a `HEAD` of the bucket).
    ///
    /// - Throws: ``ArchiveError``: not found (no such bucket), not authorised (403), usage (no credentials).
    package func checkBucket() throws {
        let response = try send(.HEAD, key: nil, accept: [200, 404], what: "bucket \(settings.bucket)")
        guard response.status == 200 else {
            throw ArchiveError(
                .notFound,
                "the bucket \(settings.bucket) does not exist at \(endpoint)",
                fix: "create it first (for example: aws s3 mb s3://\(settings.bucket)), or check the name"
            )
        }
    }

    /// Creates the bucket (tests, benchmarks); an existing bucket of these credentials is fine.
    package func createBucket() throws {
        _ = try send(.PUT, key: nil, accept: [200, 409], what: "creating bucket \(settings.bucket)")
    }

    /// Writes `body` at `key` (under no prefix), replacing what is there: for tests that damage a store.
    package func put(key: String, body: [UInt8]) throws {
        _ = try send(.PUT, key: key, body: body, what: "key \(key)")
    }

    /// How long one request may take before it is abandoned and retried: `CUSTODY_S3_REQUEST_TIMEOUT` seconds
    /// (default 60), plus a second per MiB of body, so a slow but moving upload is not cut off.
    func requestTimeout(bytes: Int) -> Double {
        let base = Double(ProcessInfo.processInfo.environment["CUSTODY_S3_REQUEST_TIMEOUT"] ?? "") ?? 60
        return max(1, base) + Double(bytes) / Double(1 << 20)
    }

    /// Runs one request with a watchdog: a connection the store dropped without a word (a killed server can
    /// leave one half-closed) must fail the request, not hang the command.
    static func execute(_ request: HTTPClient.Request, maxBody: Int, timeout: Double) throws -> HTTPClient.Response {
        // Every answer is bounded before it is held: an object by the size its event records, the rest by 1 MiB
        // (a listing of 1000 keys is about 300 KiB).
        let task = s3HTTPClient.execute(
            request: request,
            delegate: ResponseAccumulator(request: request, maxBodySize: maxBody)
        )
        let finished = DispatchSemaphore(value: 0)
        task.futureResult.whenComplete { _ in finished.signal() }
        guard finished.wait(timeout: .now() + timeout) == .success else {
            task.cancel()
            throw S3Timeout(seconds: timeout)
        }
        return try task.futureResult.wait()
    }

    struct S3Timeout: Error, CustomStringConvertible {
        var seconds: Double
        var description: String { "no answer within \(Int(seconds)) s" }
    }

    /// The `<Code>` of an S3 error body.
    static func errorCode(_ body: [UInt8]) -> String? {
        guard !body.isEmpty, body.count < 64 * 1024 else { return nil }
        return XMLFields.parse(body, elements: ["Code"])["Code"]?.first
    }
}

/// The text of chosen XML elements, in document order (S3's small XML answers: listings, errors, uploads).
enum XMLFields {
    static func parse(_ bytes: [UInt8], elements: Set<String>) -> [String: [String]] {
        final class Collector: NSObject, XMLParserDelegate {
            let wanted: Set<String>
            var found: [String: [String]] = [:]
            var current: String?
            var text = ""
            init(_ wanted: Set<String>) { self.wanted = wanted }
            func parser(
                _ parser: XMLParser,
                didStartElement name: String,
                namespaceURI: String?,
                qualifiedName: String?,
                attributes: [String: String] = [:]
            ) {
                if wanted.contains(name) {
                    current = name
                    text = ""
                }
            }
            func parser(_ parser: XMLParser, foundCharacters string: String) {
                if current != nil { text += string }
            }
            func parser(_ parser: XMLParser, didEndElement name: String, namespaceURI: String?, qualifiedName: String?)
            {
                if name == current {
                    found[name, default: []].append(text)
                    current = nil
                }
            }
        }
        let collector = Collector(elements)
        let parser = XMLParser(data: Data(bytes))
        parser.shouldResolveExternalEntities = false
        parser.delegate = collector
        _ = parser.parse()
        return collector.found
    }
}
