import CustodyArchive
import CustodyCrypto
import CustodyStorage
import Foundation
import Testing

@testable import CustodyNode

#if canImport(Glibc)
import Glibc
#endif

/// A malicious peer on 127.0.0.1: it accepts connections, reads the request, sends `prefix` (e.g. a status line
/// and headers) at once, and then one byte at a time, `interval` apart, for at most `bytes` bytes per connection. It stops by itself after `lifetime`, whatever the client does.
final class TricklingPeer: @unchecked Sendable {
    // @unchecked: `port` and `listener` are written once in init; the thread only reads them.
    let port: Int
    private let listener: Int32

    init(prefix: String, interval: TimeInterval = 0.2, bytes: Int = 600, lifetime: TimeInterval = 120) throws {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw PeerError.socket }
        var yes: Int32 = 1
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &yes, socklen_t(MemoryLayout<Int32>.size))
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        address.sin_port = 0
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
            }
        }
        guard bound == 0, listen(fd, 8) == 0 else {
            close(fd)
            throw PeerError.socket
        }
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) }
        }
        listener = fd
        port = Int(UInt16(bigEndian: address.sin_port))
        let listener = fd
        let end = Date().addingTimeInterval(lifetime)
        let head = Array(prefix.utf8)
        let trickle = [UInt8](repeating: UInt8(ascii: "x"), count: bytes)
        Thread.detachNewThread {
            while Date() < end {
                var poller = pollfd(fd: listener, events: Int16(POLLIN), revents: 0)
                guard poll(&poller, 1, 100) > 0 else { continue }
                let connection = accept(listener, nil, nil)
                guard connection >= 0 else { continue }
                Thread.detachNewThread {
                    defer { close(connection) }
                    var request = [UInt8](repeating: 0, count: 16 * 1024)
                    _ = read(connection, &request, request.count)  // the request head; its content does not matter
                    guard
                        head.withUnsafeBytes({ send(connection, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) })
                            == head.count
                    else { return }
                    for byte in trickle where Date() < end {
                        var one = byte
                        guard send(connection, &one, 1, Int32(MSG_NOSIGNAL)) == 1 else { return }
                        Thread.sleep(forTimeInterval: interval)
                    }
                }
            }
            close(listener)
        }
    }

    enum PeerError: Error { case socket }
}

/// The share protocol's boundary as a client and a server see it: deadlines on whole responses, outside numbers
/// and names read strictly, peers' text kept out of messages, replay state that outlives the process.
@Suite struct ServerBoundaryTests {
    static let fast = NodeClient.Deadlines(request: .seconds(1), objectBase: .seconds(1), objectRate: 1 << 20)

    /// A client of the peer on `port`, with deadlines of a second (the trickling peer outlasts them by far, so
    /// even a test process whose threads are busy elsewhere sees the deadline, not the peer, end the request).
    func client(_ port: Int, deadlines: NodeClient.Deadlines = Self.fast) throws -> NodeClient {
        let key = try SigningKey(seed: SecretBytes(randomCount: 32))
        return NodeClient(base: try #require(URL(string: "http://127.0.0.1:\(port)")), key: key, deadlines: deadlines)
    }

    @Test func aPeerTricklingAResponseBodyIsCutOffAtTheDeadline() async throws {
        // The headers at once, then the body one byte every 200 ms: that never trips the 60 s read timeout.
        let peer = try TricklingPeer(prefix: "HTTP/1.1 200 OK\r\nContent-Length: 200\r\n\r\n", interval: 0.2)
        let client = try client(peer.port)
        let error = await #expect(throws: ArchiveError.self) { _ = try await client.send("v1/grants") }
        #expect(error?.reason == .peerTooSlow, "\(String(describing: error))")
    }

    @Test func aPeerTricklingResponseHeadersIsCutOffAtTheDeadline() async throws {
        // The status line, then a header field's name that never ends.
        let peer = try TricklingPeer(prefix: "HTTP/1.1 200 OK\r\n", interval: 0.2)
        let client = try client(peer.port)
        let error = await #expect(throws: ArchiveError.self) { _ = try await client.send("v1/log/checkpoint") }
        #expect(error?.code == .temporary)
    }

    @Test func aPeerTricklingAnObjectIsCutOffAtItsDeadlineAndNotRetried() async throws {
        let peer = try TricklingPeer(prefix: "HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n", interval: 0.2)
        let client = try client(peer.port)
        let name = ObjectName(of: [1, 2, 3])
        let error = await #expect(throws: ArchiveError.self) {
            _ = try await client.object(grant: Encoding.hex(randomBytes(16)), name: name, size: 100)
        }
        #expect(error?.reason == .peerTooSlow, "\(String(describing: error))")
        // Naming the object that was too slow is the property under test here.
        #expect(error?.problem.contains("did not send object \(name)") == true, "\(String(describing: error))")
    }

    @Test func aPeerAnsweringMoreThanTheLimitIsBadInput() async throws {
        let peer = try TricklingPeer(prefix: "HTTP/1.1 200 OK\r\n\r\n" + String(repeating: "y", count: 5000), bytes: 0)
        let client = try client(peer.port, deadlines: .standard)
        let error = await #expect(throws: ArchiveError.self) { _ = try await client.send("v1/grants", limit: 1000) }
        #expect(error?.code == .badInput, "\(String(describing: error))")
    }

    @Test func objectDeadlinesGrowWithTheObjectsSize() {
        let standard = NodeClient.Deadlines.standard
        #expect(standard.object(size: 0) == .seconds(300))
        #expect(standard.object(size: 64 << 20) == .seconds(300 + 1024))
        #expect(standard.object(size: -5) == .seconds(300))
    }

    @Test func aPeersErrorTextNeverReachesAMessage() {
        let hostile = Data("\u{1B}[2J\u{1B}[30;40mgrant revoked at /srv/custody/keys\n\u{202E}fake".utf8)
        for status in [410, 500, 503, 418] {
            let error = Puller.refusal(status, hostile, what: "grant x")
            #expect(
                !error.problem.contains("\u{1B}") && !error.problem.contains("/srv")
                    && !error.problem.contains("\u{202E}")
            )
        }
        // A documented reason code is shown; one with other characters is not.
        let revoked = Puller.refusal(410, Data(#"{"error":"grant-revoked"}"#.utf8), what: "grant x")
        #expect(revoked.reason == .grantRevoked)
        #expect(Puller.refusal(410, Data(#"{"error":"grant-expired"}"#.utf8), what: "grant x").reason == .grantNotValid)
        #expect(Puller.refusal(410, Data(#"{"error":"ancestor-missing"}"#.utf8), what: "x").reason == .ancestorNotHeld)
        let coded = Puller.refusal(500, Data(#"{"error":"internal"}"#.utf8), what: "grant x")
        #expect(coded.reason == .temporary)
        #expect(coded.problem.contains("(internal)"))  // the peer's documented code is shown: the property
        let smuggled = Puller.refusal(500, Data(#"{"error":"a\u001b[2Jb"}"#.utf8), what: "grant x")
        #expect(!smuggled.problem.contains("\u{1B}") && !smuggled.problem.contains("(a"))
        #expect(Puller.reasonSuffix(Data(String(repeating: "y", count: 10_000).utf8)) == "")
    }

    @Test func tilePathsAreExactlyTheOnesTlogTilesWrites() {
        for (path, tile) in [
            ("0/000", "tile/0/000"), ("1/x001/234", "tile/1/x001/234"), ("0/005.p/7", "tile/0/005.p/7"),
            ("entries/000.p/255", "tile/entries/000.p/255"), ("entries/x012/345", "tile/entries/x012/345"),
        ] {
            #expect(LogController.tilePath(path) == tile, "\(path)")
        }
        for path in [
            "", "0", "0/", "../../keys", "0/../000", "0/٠٠٠", "0/0000", "0/00", "0/x000/005", "0/005.p/0",
            "0/005.p/256", "0/005.p/07", "64/000", "00/000", "+0/000", "0/005.p", "entries/005.p/x", "0/x1/000",
            "0/x001/x002/x003/x004/x005/x006/007", "0/005/", "0/.p/5", "0/x001.p/5/000",
        ] {
            #expect(LogController.tilePath(path) == nil, "\(path)")
        }
    }

    @Test func rangeNumbersAreAsciiDigitsOnly() {
        for header in ["bytes=+5-10", "bytes=5-+10", "bytes= 5-10x", "bytes=0x5-10", "bytes=5-１０"] {
            #expect(NodeServer.byteRange(header, size: 100) == .whole, "\(header)")
        }
    }

    @Test func signatureParametersAreReadStrictly() throws {
        let key = try SigningKey(seed: SecretBytes(randomCount: 32))
        let request = HTTPSignature.Request(method: "GET", authority: "node.example:8443", path: "/v1/grants")
        let now = Int(Date().timeIntervalSince1970)
        let nonces = NonceCache(startedAt: now - 10)
        func verify(_ headers: [String: String]) -> HTTPSignature.Refusal? {
            do {
                _ = try HTTPSignature.verify(request, headers: headers, now: now, nonces: nonces) { _ in true }
                return nil
            } catch {
                return error
            }
        }
        // Each tampered parameter is re-signed, so only its form can be refused.
        func signed(created: String, nonce: String) -> [String: String] {
            let params =
                #"("@method" "@authority" "@path" "@query");created=\#(created);keyid="\#(Encoding.base64(key.publicKey))";alg="ed25519";nonce="\#(nonce)""#
            let base = HTTPSignature.signatureBase(components: request.components(digest: nil), parameters: params)
            return [
                "Signature-Input": "sig1=" + params,
                "Signature": "sig1=:\(Encoding.base64(key.signature(for: Array(base.utf8)))):",
            ]
        }
        let nonce = Encoding.hex(randomBytes(16))
        #expect(verify(signed(created: "+\(now)", nonce: nonce)) == .malformed("created"))
        #expect(verify(signed(created: "\(now)", nonce: "１２" + nonce.dropFirst(2))) == .malformed("nonce"))
        #expect(verify(signed(created: String(repeating: "9", count: 16), nonce: nonce)) == .malformed("created"))
        #expect(verify(signed(created: "\(now)", nonce: nonce)) == nil)
        #expect(verify(signed(created: "\(now)", nonce: nonce)) == .replayed)
    }

    @Test func anUnknownKeysSignatureIsCheckedToo() throws {
        // The unknown key's request costs one Ed25519 verification like a known key's (against a stand-in key),
        // and still fails as unknown even when its signature is valid.
        #expect(HTTPSignature.standIn.count == 32)
        let key = try SigningKey(seed: SecretBytes(randomCount: 32))
        let request = HTTPSignature.Request(method: "GET", authority: "node.example", path: "/v1/grants")
        let now = Int(Date().timeIntervalSince1970)
        let headers = HTTPSignature.sign(request, key: key, created: now)
        var asked = 0
        let nonces = NonceCache(startedAt: now - 10)
        #expect(throws: HTTPSignature.Refusal.unknownKey) {
            _ = try HTTPSignature.verify(request, headers: headers, now: now, nonces: nonces) { _ in
                asked += 1
                return false
            }
        }
        #expect(asked == 1)
        // Its nonce was not spent: the same request from a key that is known is accepted.
        #expect(
            try HTTPSignature.verify(request, headers: headers, now: now, nonces: nonces) { _ in true } == key.publicKey
        )
    }

    @Test func acceptedNoncesOutliveTheProcess() throws {
        let dir = NSTemporaryDirectory() + "custody-nonces-" + Encoding.hex(randomBytes(6))
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let path = dir + "/serve-state/nonces"
        let now = Int(Date().timeIntervalSince1970)
        let ahead = Encoding.hex(randomBytes(16))
        let old = Encoding.hex(randomBytes(16))
        do {
            let cache = NonceCache(startedAt: now, journal: try NonceJournal(path: path, now: now, window: 600))
            #expect(cache.admit(ahead, created: now + 250, now: now) == .admitted)
            #expect(cache.admit(old, created: now - 5, now: now) == .admitted)
        }
        // A line cut short (a crash mid-write) and junk are skipped, not fatal.
        let handle = try #require(FileHandle(forWritingAtPath: path))
        handle.seekToEndOfFile()
        handle.write(Data("0123\n\u{1B}[2J zz\nabc".utf8))
        try handle.close()
        // Restarted 100 s later: both nonces are still refused; 700 s later only the one still in its window.
        let later = NonceCache(startedAt: now + 100, journal: try NonceJournal(path: path, now: now + 100, window: 600))
        #expect(later.admit(ahead, created: now + 250, now: now + 100) == .seen)
        #expect(later.admit(old, created: now - 5, now: now + 100) == .seen)
        let much = try NonceJournal(path: path, now: now + 700, window: 600)
        #expect(much.loaded.keys.sorted() == [ahead])
        let text = try String(contentsOfFile: path, encoding: .utf8)
        #expect(text == "\(ahead) \(now + 250)\n")
    }

    @Test func aNodesAuthoritiesComeFromItsPublicURLs() throws {
        #expect(
            try NodeServer.authorities(publicURLs: ["https://Node.Example.org/"], host: "0.0.0.0", port: 1) == [
                "node.example.org"
            ]
        )
        #expect(
            try NodeServer.authorities(
                publicURLs: ["http://a.example:80", "https://b.example:8443"],
                host: "::",
                port: 1
            ) == ["a.example", "b.example:8443"]
        )
        #expect(try NodeServer.authorities(publicURLs: [], host: "127.0.0.1", port: 8443) == ["127.0.0.1:8443"])
        #expect(try NodeServer.authorities(publicURLs: [], host: "[::1]", port: 8443) == ["[::1]:8443"])
        #expect(try NodeServer.authorities(publicURLs: ["https://[FE80::1]/"], host: "::", port: 1) == ["[fe80::1]"])
        for urls in [
            ["ftp://x.example"], ["https://x.example/custody"], ["https://u:p@x.example"], ["https://x.example/?a"],
            ["x.example"],
        ] {
            #expect(throws: ArchiveError.self, "\(urls)") {
                _ = try NodeServer.authorities(publicURLs: urls, host: "127.0.0.1", port: 1)
            }
        }
        for host in ["0.0.0.0", "::", ""] {
            #expect(throws: ArchiveError.self, "\(host)") {
                _ = try NodeServer.authorities(publicURLs: [], host: host, port: 1)
            }
        }
        // The client signs exactly the authority the node compares with.
        let key = try SigningKey(seed: SecretBytes(randomCount: 32))
        let client = NodeClient(base: try #require(URL(string: "https://Node.Example.org/")), key: key)
        #expect(client.target("v1/grants", query: "").authority == "node.example.org")
    }
}
