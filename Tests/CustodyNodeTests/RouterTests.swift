import CustodyArchive
import CustodyCrypto
import CustodyStorage
import CustodyTestSupport
import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import InMemoryLogging
import Logging
import NIOCore
import Testing

@testable import CustodyNode

/// The node's refusals at router level (Hummingbird's router test client, a real archive in a temporary
/// folder): every 401, 404, 410 and 429 answers its status with exactly its reason code, and the log names the
/// reason too.
@Suite struct RouterTests {
    let dir = TempDirectory("router")
    /// The node: a granter with one item in case C1.
    let granter: Archive.Unlocked
    /// A body the node granted case C1 to.
    let grantee: Archive.Unlocked
    let grant: Grant
    let granteeKey: SigningKey
    let log = InMemoryLogHandler()

    init() async throws {
        granter = try await Fixtures.archive(in: dir)
        grantee = try await Archive.create(
            at: dir.path + "/grantee",
            name: "Grantee",
            passphrase: Fixtures.secret(),
            kdfPreset: "insecure-test",
            chunkSize: 1 << 20
        )
        var options = IngestOptions()
        options.fields.caseID = "C1"
        _ = try await granter.ingest([dir.write("in/a.txt", text: "statement")], options: options)
        grant = try await Self.grant(from: granter, to: grantee, expires: Expiry.resolve("30d") ?? "")
        granteeKey = grantee.keys.signing
    }

    static func grant(
        from granter: Archive.Unlocked,
        to grantee: Archive.Unlocked,
        expires: String
    ) async throws -> Grant {
        var request = GrantRequest(grantee: try grantee.identity(), expires: expires, purpose: "petition")
        request.caseID = "C1"
        return try await granter.createGrant(request).grant
    }

    /// Runs `test` against the node's router; signed requests are for `localhost`, the router test's authority.
    func withRouter(
        _ node: NodeServer? = nil,
        _ test: @escaping @Sendable (Probe, any TestClientProtocol) async throws -> Void
    ) async throws {
        let node = try node ?? NodeServer(archive: granter)
        node.authorities.set(["localhost"])
        let log = self.log
        var logger = Logger(label: "custody.serve") { _ in log }
        logger.logLevel = .debug
        let app = Application(router: node.router(), logger: logger)
        let probe = Probe(node: node, grantID: grant.id, key: granteeKey, log: log)
        try await app.test(.router) { client in try await test(probe, client) }
    }

    /// The header fields of `path` signed by `key` for `localhost`.
    static func signed(_ path: String, key: SigningKey, authority: String = "localhost") -> HTTPFields {
        let request = HTTPSignature.Request(method: "GET", authority: authority, path: path)
        var fields = HTTPFields()
        for (name, value) in HTTPSignature.sign(request, key: key) {
            if let name = HTTPField.Name(name) { fields[name] = value }
        }
        return fields
    }

    // MARK: 401

    @Test func anUnsignedRequestIsUnauthenticated() async throws {
        try await withRouter { p, client in
            for path in ["/v1/grants", "/v1/grants/\(p.grantID)/head", "/v1/grants/\(p.grantID)/bundle"] {
                try await client.execute(uri: path, method: .get) { p.expectRefusal($0, .unauthenticated) }
            }
        }
    }

    @Test func aBadSignatureIsUnauthenticated() async throws {
        try await withRouter { p, client in
            var headers = Self.signed("/v1/grants", key: p.key)
            // One byte of the signature changed: still well-formed base64 of 64 bytes, no longer valid.
            let name = try #require(HTTPField.Name("Signature"))
            let signature = try #require(headers[name])
            let flipped = signature.replacingCharacters(
                in: signature.index(
                    signature.startIndex,
                    offsetBy: 8
                )...signature.index(signature.startIndex, offsetBy: 8),
                with: signature.dropFirst(8).first == "A" ? "B" : "A"
            )
            headers[name] = flipped
            try await client.execute(uri: "/v1/grants", method: .get, headers: headers) {
                p.expectRefusal($0, .unauthenticated)
            }
            #expect(p.log.entries.last?.metadata["custody.detail"]?.description == "badSignature")
        }
    }

    @Test func anUnknownKeyIsUnauthenticated() async throws {
        let stranger = try SigningKey(seed: SecretBytes(randomCount: 32))
        try await withRouter { p, client in
            try await client.execute(uri: "/v1/grants", method: .get, headers: Self.signed("/v1/grants", key: stranger))
            {
                p.expectRefusal($0, .unauthenticated)
            }
            #expect(p.log.entries.last?.metadata["custody.detail"]?.description == "unknownKey")
        }
    }

    @Test func aReplayedNonceIsUnauthenticated() async throws {
        try await withRouter { p, client in
            let headers = Self.signed("/v1/grants", key: p.key)
            try await client.execute(uri: "/v1/grants", method: .get, headers: headers) { response in
                #expect(response.status == .ok)
            }
            try await client.execute(uri: "/v1/grants", method: .get, headers: headers) {
                p.expectRefusal($0, .unauthenticated)
            }
            #expect(p.log.entries.last?.metadata["custody.detail"]?.description == "replayed")
        }
    }

    @Test func aRequestSignedForAnotherNodeIsUnauthenticated() async throws {
        try await withRouter { p, client in
            let headers = Self.signed("/v1/grants", key: p.key, authority: "other.example")
            try await client.execute(uri: "/v1/grants", method: .get, headers: headers) {
                p.expectRefusal($0, .unauthenticated)
            }
        }
    }

    // MARK: 404

    @Test func anUnknownGrantIsNotFound() async throws {
        try await withRouter { p, client in
            for id in [Encoding.hex(randomBytes(16)), "not-a-grant", p.grantID.uppercased()] {
                let path = "/v1/grants/\(id)/head"
                try await client.execute(uri: path, method: .get, headers: Self.signed(path, key: p.key)) {
                    p.expectRefusal($0, .notFound)
                }
            }
        }
    }

    @Test func anotherBodysGrantIsNotFound() async throws {
        let third = try await Archive.create(
            at: dir.path + "/third",
            name: "Third",
            passphrase: Fixtures.secret(),
            kdfPreset: "insecure-test",
            chunkSize: 1 << 20
        )
        let theirs = try await Self.grant(from: granter, to: third, expires: Expiry.resolve("30d") ?? "").id
        try await withRouter { p, client in
            let path = "/v1/grants/\(theirs)/head"
            try await client.execute(uri: path, method: .get, headers: Self.signed(path, key: p.key)) {
                p.expectRefusal($0, .notFound)
            }
        }
    }

    @Test func anObjectTheGrantDoesNotReleaseIsNotFound() async throws {
        try await withRouter { p, client in
            let path = "/v1/grants/\(p.grantID)/objects/\(ObjectName(of: [1, 2, 3]).hex)"
            try await client.execute(uri: path, method: .get, headers: Self.signed(path, key: p.key)) {
                p.expectRefusal($0, .notFound)
            }
        }
    }

    @Test func anUnknownTileIsNotFound() async throws {
        try await withRouter { p, client in
            for path in ["/v1/log/tile/0/999", "/v1/log/tile/0/../000", "/v1/log/tile/entries/x999/999"] {
                try await client.execute(uri: path, method: .get) { p.expectRefusal($0, .notFound) }
            }
            // The tile that exists is served.
            try await client.execute(uri: "/v1/log/tile/entries/000.p/1", method: .get) { response in
                #expect(response.status == .ok)
            }
        }
    }

    // MARK: 410

    @Test func aRevokedGrantIsGoneWithItsNotice() async throws {
        _ = try await granter.revokeGrant(grant.id, reason: "consent withdrawn")
        try await withRouter { p, client in
            for part in ["head", "bundle", "objects/\(ObjectName(of: [1]).hex)"] {
                let path = "/v1/grants/\(p.grantID)/\(part)"
                try await client.execute(uri: path, method: .get, headers: Self.signed(path, key: p.key)) {
                    response in
                    #expect(response.status == .gone)
                    #expect(response.headers[.contentType] == NodeServer.revocationNoticeType)
                    #expect(String(buffer: response.body).contains("custody-revocation/v1"))
                }
                #expect(p.lastRefusal?["custody.reason"]?.description == Reason.grantRevoked.rawValue)
            }
        }
    }

    @Test func anExpiredGrantIsGone() async throws {
        let expires = Int(time(nil)) + 2
        let brief = try await Self.grant(from: granter, to: grantee, expires: RFC3339.format(expires)).id
        // Waits for the grant's expiry to pass (no timing is asserted).
        while Int(time(nil)) < expires { try await Task.sleep(for: .milliseconds(200)) }
        try await withRouter { p, client in
            let path = "/v1/grants/\(brief)/head"
            try await client.execute(uri: path, method: .get, headers: Self.signed(path, key: p.key)) {
                p.expectRefusal($0, .grantExpired)
            }
        }
    }

    // MARK: 429

    @Test func aKeyWithTheMostRequestsInProgressIsRefusedAnother() async throws {
        let node = try NodeServer(archive: granter)
        try await withRouter(node) { p, client in
            let requester = p.key.publicKey
            // The requester's in-progress requests, held open as a slow download would.
            for _ in 0..<ActiveRequests.maxPerKey { #expect(p.node.active.enter(requester)) }
            let path = "/v1/grants/\(p.grantID)/head"
            try await client.execute(uri: path, method: .get, headers: Self.signed(path, key: p.key)) {
                p.expectRefusal($0, .tooManyRequests)
            }
            // Another key is not held back; nor is this one once a request finishes.
            let other = try SigningKey(seed: SecretBytes(randomCount: 32))
            try await client.execute(uri: path, method: .get, headers: Self.signed(path, key: other)) {
                p.expectRefusal($0, .unauthenticated)
            }
            p.node.active.leave(requester)
            try await client.execute(uri: path, method: .get, headers: Self.signed(path, key: p.key)) {
                response in
                #expect(response.status == .ok)
                #expect(response.headers[.contentType] == "application/vnd.custody.bundle")
            }
        }
    }

    // MARK: The log

    @Test func aHostilePathCannotForgeALogLine() async throws {
        try await withRouter { p, client in
            // Past the HTTP parser nothing like this arrives; the router test client hands it over as is.
            let hostile = "/v1/log/tile/0/\u{1B}[2J\nfake info line\u{202E}"
            try await client.execute(uri: hostile, method: .get) { p.expectRefusal($0, .notFound) }
            let path = try #require(p.lastRefusal?["http.path"]?.description)
            #expect(!path.contains("\u{1B}") && !path.contains("\n") && !path.contains("\u{202E}"), "\(path)")
            #expect(path.hasPrefix("/v1/log/tile/0/"))
        }
    }

    @Test func eachRequestIsOneLogLineWithoutItsSecrets() async throws {
        try await withRouter { p, client in
            let headers = Self.signed("/v1/grants", key: p.key)
            try await client.execute(uri: "/v1/grants", method: .get, headers: headers) { response in
                #expect(response.status == .ok)
                let listed = try JSONDecoder().decode(GrantList.self, from: Data(Array(buffer: response.body)))
                #expect(listed.grants.map(\.id) == [p.grantID])
            }
            let entries = p.log.entries
            #expect(entries.count == 1)
            let line = try #require(entries.first)
            #expect(line.level == .info && line.message.description == "request")
            #expect(line.metadata["http.status"]?.description == "200")
            #expect(line.metadata["http.path"]?.description == "/v1/grants")
            let prefix = String(Encoding.base64(p.key.publicKey).prefix(12))
            #expect(line.metadata["custody.requester"]?.description == prefix)
            let logged = "\(entries)"
            let signature = try #require(headers.value(of: "Signature"))
            let input = try #require(headers.value(of: "Signature-Input"))
            let nonce = try #require(input.split(separator: "nonce=\"").last?.prefix(while: { $0 != "\"" }))
            #expect(!logged.contains(signature.dropFirst(6).prefix(40)) && !logged.contains(nonce))
        }
    }
}

/// What a test's requests need, Sendable (the archives are not): the node, the grant, the grantee's key, the log.
struct Probe: Sendable {
    let node: NodeServer
    let grantID: String
    let key: SigningKey
    let log: InMemoryLogHandler

    /// Expects `response` to be `status` with body `{"error":"<reason>"}`, and the log to have refused it so.
    func expectRefusal(
        _ response: TestResponse,
        _ reason: Reason,
        sourceLocation: SourceLocation = #_sourceLocation
    ) {
        #expect(response.status == reason.status, sourceLocation: sourceLocation)
        #expect(
            String(buffer: response.body) == String(decoding: reason.body, as: UTF8.self),
            sourceLocation: sourceLocation
        )
        #expect(response.headers[.contentType] == "application/json", sourceLocation: sourceLocation)
        #expect(lastRefusal?["custody.reason"]?.description == reason.rawValue, sourceLocation: sourceLocation)
    }

    /// The metadata of the last `refused` line.
    var lastRefusal: Logger.Metadata? { log.entries.last { $0.message.description == "refused" }?.metadata }
}

extension HTTPFields {
    /// The value of the field called `name`, in any case.
    func value(of name: String) -> String? {
        first { $0.name.canonicalName == name.lowercased() }?.value
    }
}
