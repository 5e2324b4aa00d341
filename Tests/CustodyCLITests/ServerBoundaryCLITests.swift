import AsyncHTTPClient
import CustodyArchive
import CustodyCrypto
import CustodyNode
import CustodyTestSupport
import Foundation
import NIOCore
import NIOHTTP1
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// A real `custody serve` on loopback against a malicious client: relayed, replayed and malformed requests, and
/// what every refusal and every access event reveals.
@Suite(.serialized) struct ServerBoundaryCLITests: CLIArchiveSuite {
    let dir = TempDirectory("server-boundary")
    static let passphrase = "boundary test"

    struct Failure: Error {
        var message: String
        init(_ message: String) { self.message = message }
    }

    /// Starts `custody serve --listen 127.0.0.1:<port>` (0: a free one) with `extra` arguments; waits until it listens.
    func serve(_ name: String, port: Int = 0, _ extra: [String] = []) throws -> (child: CLI.Child, port: Int) {
        let child = CLI.start(["serve", "--listen", "127.0.0.1:\(port)"] + extra, environment: env(name))
        for _ in 0..<200 {
            let out = child.outputSoFar
            if let range = out.range(of: "listening on 127.0.0.1:") {
                let digits = out[range.upperBound...].prefix { $0.isNumber }
                if let bound = Int(digits) { return (child, bound) }
            }
            usleep(50_000)
        }
        kill(child.pid, SIGKILL)
        let result = child.wait()
        throw Failure("serve did not start: \(result.stderr)")
    }

    func stop(_ child: CLI.Child, _ signal: Int32 = SIGTERM) {
        kill(child.pid, signal)
        _ = child.wait()
    }

    /// Two archives, `node` and `peer`; the node knows the peer (as a witness); the peer's signing key.
    func twoBodies() throws -> SigningKey {
        for name in ["node", "peer"] {
            #expect(initArchive(name, displayName: name).status == 0)
            #expect(CLI.run(["id", "export", "-o", dir.path + "/\(name).id"], environment: env(name)).status == 0)
        }
        #expect(CLI.run(["witness", "add", dir.path + "/peer.id"], environment: env("node")).status == 0)
        return try signingKey("peer")
    }

    func signingKey(_ name: String) throws -> SigningKey {
        let archive = try Archive.open(at: dir.path + "/" + name).unlock(
            passphrase: try SecretBytes(copying: Array("boundary test".utf8))
        )
        return try archive.keys.signing
    }

    /// A request for `path` signed by `key` for `authority`, sent to the server on `port` with that `Host`.
    func signed(
        _ path: String,
        key: SigningKey,
        authority: String,
        port: Int,
        created: Int = Int(Date().timeIntervalSince1970),
        method: String = "GET",
        body: [UInt8] = []
    ) -> HTTPClientRequest {
        var request = HTTPClientRequest(url: "http://127.0.0.1:\(port)/\(path)")
        request.method = .init(rawValue: method)
        request.headers.replaceOrAdd(name: "Host", value: authority)
        if !body.isEmpty { request.body = .bytes(ByteBuffer(bytes: body)) }
        let message = HTTPSignature.Request(method: method, authority: authority, path: "/" + path, body: body)
        for (name, value) in HTTPSignature.sign(message, key: key, created: created) {
            request.headers.replaceOrAdd(name: name, value: value)
        }
        return request
    }

    static let unauthenticated = Array(#"{"error":"unauthenticated"}"#.utf8) + [0x0A]

    @Test func aRequestSignedForAnotherNodeIsRefused() async throws {
        let key = try twoBodies()
        let (server, port) = try serve("node")
        defer { stop(server) }
        let own = "127.0.0.1:\(port)"
        #expect(try await NodeClient.execute(signed("v1/grants", key: key, authority: own, port: port)).status == 200)
        // Signed for another node (the relay's victim) and sent here: 401, the same answer as any other failure.
        for foreign in ["other-node.example:\(port)", "127.0.0.1:\(port + 1)", "localhost:\(port)", "127.0.0.1"] {
            let relayed = try await NodeClient.execute(signed("v1/grants", key: key, authority: foreign, port: port))
            #expect(relayed.status == 401 && relayed.body == Self.unauthenticated, "\(foreign)")
        }
    }

    @Test func aNodeBehindAProxyAnswersOnlyForItsPublicURL() async throws {
        let key = try twoBodies()
        let (server, port) = try serve("node", port: 0, ["--public-url", "https://Node.Example.org"])
        defer { stop(server) }
        let proxied = try await NodeClient.execute(
            signed("v1/grants", key: key, authority: "node.example.org", port: port)
        )
        #expect(proxied.status == 200)
        let direct = try await NodeClient.execute(
            signed("v1/grants", key: key, authority: "127.0.0.1:\(port)", port: port)
        )
        #expect(direct.status == 401 && direct.body == Self.unauthenticated)
        // A peer added with the direct URL is told which setting to check, in one line.
        let url = "http://127.0.0.1:\(port)"
        #expect(
            CLI.run(["peer", "add", "node", url, "--identity", dir.path + "/node.id"], environment: env("peer")).status
                == 0
        )
        let pulled = CLI.run(["pull", "node"], environment: env("peer").jsonErrors)
        #expect(pulled.status == 77 && pulled.errorReason == "not-authorised", "\(pulled.stderr)")
        #expect(pulled.error?.fix.contains("--public-url") == true)  // the fix names the setting to check
        #expect(pulled.stderr.split(separator: "\n").count == 1)
    }

    @Test func badServeAddressesAreUsageErrors() throws {
        #expect(initArchive("n", displayName: "N").status == 0)
        for arguments in [
            ["serve", "--listen", "0.0.0.0:0"],
            ["serve", "--listen", "127.0.0.1:0", "--public-url", "ftp://x.example"],
            ["serve", "--listen", "127.0.0.1:0", "--public-url", "https://x.example/custody/"],
            ["serve", "--listen", "127.0.0.1:0", "--public-url", "https://x\u{1B}[2J.example/a"],
        ] {
            // One escaped text line is the property under test here.
            let result = CLI.run(arguments, environment: env("n"))
            #expect(result.status == 64 && result.stderr.hasPrefix("custody: "), "\(arguments): \(result.stderr)")
            #expect(!result.stderr.contains("\u{1B}") && result.stderr.split(separator: "\n").count == 1)
        }
    }

    @Test func aRequestDatedAheadCannotBeReplayedAfterARestart() async throws {
        let key = try twoBodies()
        var (server, port) = try serve("node")
        let ahead = Int(Date().timeIntervalSince1970) + 200
        let request = signed("v1/grants", key: key, authority: "127.0.0.1:\(port)", port: port, created: ahead)
        #expect(try await NodeClient.execute(request).status == 200)
        #expect(try await NodeClient.execute(request).status == 401)
        // Killed outright (a crash, not a clean stop), then started again on the same port.
        stop(server, SIGKILL)
        (server, _) = try serve("node", port: port)
        defer { stop(server) }
        let replayed = try await NodeClient.execute(request)
        #expect(replayed.status == 401 && replayed.body == Self.unauthenticated)
        // The same time with a fresh nonce is fine: it is the nonce that was refused.
        let fresh = signed("v1/grants", key: key, authority: "127.0.0.1:\(port)", port: port, created: ahead)
        #expect(try await NodeClient.execute(fresh).status == 200)
    }

    /// A running `custody serve` for `node`, which knows `peer` (as a witness), and what the tests send it with.
    struct Node {
        let key: SigningKey
        let server: CLI.Child
        let port: Int
        var own: String { "127.0.0.1:\(port)" }
        var base: String { "http://127.0.0.1:\(port)" }
    }

    /// Two bodies and the node's server, started; the caller stops it.
    func node() throws -> Node {
        let key = try twoBodies()
        let (server, port) = try serve("node")
        return Node(key: key, server: server, port: port)
    }

    /// Every kind of authentication failure, each named; `replay` must be sent once (and accepted) before the list
    /// is, so that its second sending is the replay.
    func authenticationFailures(
        _ n: Node
    ) throws -> (replay: HTTPClientRequest, failures: [(String, HTTPClientRequest)]) {
        let stranger = try SigningKey(seed: SecretBytes(randomCount: 32))
        var badSignature = signed("v1/grants", key: n.key, authority: n.own, port: n.port)
        badSignature.headers.replaceOrAdd(name: "Signature", value: "sig1=:\(Encoding.base64(randomBytes(64))):")
        var strangerBadSignature = signed("v1/grants", key: stranger, authority: n.own, port: n.port)
        strangerBadSignature.headers.replaceOrAdd(
            name: "Signature",
            value: "sig1=:\(Encoding.base64(randomBytes(64))):"
        )
        var twice = signed("v1/grants", key: n.key, authority: n.own, port: n.port)
        twice.headers.add(name: "Signature-Input", value: "sig1=()")
        let replay = signed("v1/grants", key: n.key, authority: n.own, port: n.port)
        let failures: [(String, HTTPClientRequest)] = [
            ("unsigned", HTTPClientRequest(url: n.base + "/v1/grants")),
            ("unknown key", signed("v1/grants", key: stranger, authority: n.own, port: n.port)),
            ("unknown key, bad signature", strangerBadSignature),
            ("known key, bad signature", badSignature),
            ("stale", signed("v1/grants", key: n.key, authority: n.own, port: n.port, created: 1_000_000_000)),
            ("replayed", replay),
            ("repeated field", twice),
            ("foreign authority", signed("v1/grants", key: n.key, authority: "x.example", port: n.port)),
        ]
        return (replay, failures)
    }

    /// Refusals other than authentication, each with its status and documented reason code. Makes a `stranger`
    /// archive whose checkpoint the node does not witness.
    func otherRefusals(_ n: Node) -> [(HTTPClientRequest, Int, String)] {
        #expect(initArchive("stranger", displayName: "S").status == 0)
        dir.write("s.txt", text: "s")
        #expect(CLI.run(["ingest", dir.path + "/s.txt"], environment: env("stranger")).status == 0)
        let strangersCheckpoint = CLI.run(["checkpoint"], environment: env("stranger")).stdout
        func post(_ path: String, _ body: [UInt8]) -> HTTPClientRequest {
            signed(path, key: n.key, authority: n.own, port: n.port, method: "POST", body: body)
        }
        return [
            (HTTPClientRequest(url: n.base + "/v1/nothing/here"), 404, "not-found"),
            (HTTPClientRequest(url: n.base + "/v1/log/consistency?old=abc"), 400, "bad-request"),
            (HTTPClientRequest(url: n.base + "/v1/log/consistency?old=%2B1"), 400, "bad-request"),
            (HTTPClientRequest(url: n.base + "/v1/log/consistency?old=999999999"), 400, "bad-request"),
            (HTTPClientRequest(url: n.base + "/v1/log/consistency?old=1&old=2"), 400, "bad-request"),
            (HTTPClientRequest(url: n.base + "/v1/log/inclusion?index=99999"), 404, "not-found"),
            (HTTPClientRequest(url: n.base + "/v1/log/tile/0/٠٠٠"), 404, "not-found"),
            (HTTPClientRequest(url: n.base + "/v1/log/tile/0/..%2F..%2Fkeys"), 404, "not-found"),
            (HTTPClientRequest(url: n.base + "/v1/log/tile/entries/000.p/1/../../../../keys"), 404, "not-found"),
            (post("v1/witness/add-checkpoint", Array(strangersCheckpoint.utf8)), 403, "unknown-log"),
            (post("v1/cosignatures", Array("— nobody AAAA\n".utf8)), 422, "no-such-checkpoint"),
            (post("v1/cosignatures", [UInt8](repeating: 0x41, count: 70_000)), 413, "too-large"),
            (
                signed("v1/grants/\(Encoding.hex(randomBytes(16)))/head", key: n.key, authority: n.own, port: n.port),
                404, "not-found"
            ),
            (signed("v1/grants/..%2F..%2Fkeys/head", key: n.key, authority: n.own, port: n.port), 404, "not-found"),
        ]
    }

    @Test func everyAuthenticationFailureIsTheSame401AndTheSameBytes() async throws {
        let n = try node()
        defer { stop(n.server) }
        let (replay, failures) = try authenticationFailures(n)
        #expect(try await NodeClient.execute(replay).status == 200)
        for (what, request) in failures {
            let answer = try await NodeClient.execute(request)
            #expect(answer.status == 401 && answer.body == Self.unauthenticated, "\(what): \(answer.status)")
            #expect(answer.headers["content-type"] == "application/json", "\(what)")
        }
    }

    @Test func fieldsTheSignatureDoesNotRestOnMayRepeat() async throws {
        let n = try node()
        defer { stop(n.server) }
        // Other fields may repeat (a proxy may add some): only those the signature rests on may not.
        var repeatedAccept = signed("v1/grants", key: n.key, authority: n.own, port: n.port)
        repeatedAccept.headers.add(name: "Accept", value: "application/json")
        repeatedAccept.headers.add(name: "Accept", value: "text/plain")
        #expect(try await NodeClient.execute(repeatedAccept).status == 200)
    }

    @Test func aMalformedAddCheckpointIsAnswered409WithTheSizeHeld() async throws {
        let n = try node()
        defer { stop(n.server) }
        // add-checkpoint's 409 is C2SP tlog-witness's own: the size this node holds for the log (none: 0).
        let malformed = try await NodeClient.execute(
            signed(
                "v1/witness/add-checkpoint",
                key: n.key,
                authority: n.own,
                port: n.port,
                method: "POST",
                body: Array("old 5\n\n\u{1B}[2J".utf8)
            )
        )
        #expect(malformed.status == 409 && malformed.body == Array("0\n".utf8))
    }

    @Test func everyOtherRefusalIsADocumentedReasonCodeWithNothingInternal() async throws {
        let n = try node()
        defer { stop(n.server) }
        let documented = Set(Reason.allCases.map(\.rawValue))
        for (request, status, code) in otherRefusals(n) {
            let answer = try await NodeClient.execute(request)
            let text = String(decoding: answer.body, as: UTF8.self)
            #expect(
                answer.status == status && text == #"{"error":"\#(code)"}"# + "\n",
                "\(request.url): \(answer.status) \(text)"
            )
            #expect(documented.contains(code))
            #expect(!text.contains(dir.path) && !text.contains("custody"), "\(request.url): \(text)")
        }
    }

    @Test func theDetailOfEachRefusalIsInTheServersOwnLogOnly() async throws {
        let n = try node()
        var running = true
        defer { if running { stop(n.server) } }
        let (replay, failures) = try authenticationFailures(n)
        _ = try await NodeClient.execute(replay)
        for (_, request) in failures { _ = try await NodeClient.execute(request) }
        running = false
        kill(n.server.pid, SIGTERM)
        let log = n.server.wait().stderr
        // One line per refusal (PROTOCOL.md section 3.2): reason, detail, method, path and status.
        let unknownKey = log.split(separator: "\n").filter { line in
            [
                "custody.detail=unknownKey", "custody.reason=unauthenticated", "http.method=GET",
                "http.path=/v1/grants ", "http.status=401",
            ].allSatisfy { line.contains($0) }
        }
        #expect(!unknownKey.isEmpty, "\(log)")
        for detail in ["badSignature", "foreign authority", "replayed"] {
            #expect(log.contains("custody.detail=" + detail), "\(detail) in \(log)")
        }
    }

    @Test func aClientTricklingARequestBodyIsCutOff() throws {
        _ = try twoBodies()
        let (server, port) = try serve("node")
        defer { stop(server) }
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        #expect(fd >= 0)
        defer { close(fd) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        address.sin_port = UInt16(port).bigEndian
        let connected = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
            }
        }
        #expect(connected == 0)
        let head = Array(
            "POST /v1/witness/add-checkpoint HTTP/1.1\r\nHost: 127.0.0.1:\(port)\r\nContent-Length: 1000\r\n\r\n".utf8
        )
        #expect(head.withUnsafeBytes { send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) } == head.count)
        // One byte a second, for at most 40 s, until the server answers.
        var answer: [UInt8] = []
        let started = Date()
        while Date().timeIntervalSince(started) < 40, !answer.contains(0x7D) {  // "}" ends the reason body
            var one: UInt8 = 0x41
            _ = send(fd, &one, 1, Int32(MSG_NOSIGNAL))
            var poller = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
            if poll(&poller, 1, 1000) > 0 {
                var buffer = [UInt8](repeating: 0, count: 4096)
                let n = read(fd, &buffer, buffer.count)
                if n <= 0 { break }
                answer += buffer[..<n]
            }
        }
        let text = String(decoding: answer, as: UTF8.self)
        #expect(text.hasPrefix("HTTP/1.1 408") && text.contains(#"{"error":"request-timeout"}"#), "\(text)")
    }

    @Test func theAccessEventDoesNotNameWhoPulled() async throws {
        for name in ["node", "peer"] {
            #expect(initArchive(name, displayName: name).status == 0)
            #expect(CLI.run(["id", "export", "-o", dir.path + "/\(name).id"], environment: env(name)).status == 0)
        }
        dir.write("case/a.txt", text: "statement")
        #expect(CLI.run(["ingest", dir.path + "/case", "--case", "C1"], environment: env("node")).status == 0)
        let made = CLI.run(
            [
                "grant", "create", "--to", dir.path + "/peer.id", "--case", "C1", "--expires", "1d", "--purpose", "p",
                "--json",
            ],
            environment: env("node")
        )
        let grant = try #require(made.json?["id"] as? String, "\(made.stderr)")
        let (server, port) = try serve("node")
        defer { stop(server) }
        let url = "http://127.0.0.1:\(port)"
        #expect(
            CLI.run(["peer", "add", "node", url, "--identity", dir.path + "/node.id"], environment: env("peer")).status
                == 0
        )
        let pulled = CLI.run(["pull", "node", "--grant", grant], environment: env("peer"))
        #expect(pulled.status == 0, "\(pulled.stderr)")
        // The public entry (what auditors and witnesses read) holds no requester, only a sealed object.
        let archive = try Archive.open(at: dir.path + "/node").unlock(
            passphrase: try SecretBytes(copying: Array("boundary test".utf8))
        )
        var accesses: [(event: Event, bytes: [UInt8])] = []
        try archive.forEachLogEntry(from: 0, limit: .max) { entry in
            if entry.event.type == .access { accesses.append((entry.event, entry.bytes)) }
        }
        let access = try #require(accesses.first)
        #expect(accesses.count == 1)
        let peerKey = Encoding.base64(try signingKey("peer").publicKey)
        let body = String(decoding: access.bytes.prefix { $0 != 0x0A }, as: UTF8.self)
        #expect(!body.contains("requester") && !body.contains(peerKey) && body.contains("\"sealed\""), "\(body)")
        #expect(access.event.requester == nil && access.event.sealed != nil)
        // The node itself can still account for it.
        #expect(try await archive.accessRequester(access.event) == peerKey)
        #expect(CLI.run(["verify", "--deep"], environment: env("node")).status == 0)
    }
}
