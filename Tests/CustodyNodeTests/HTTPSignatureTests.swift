import CustodyCrypto
import Foundation
import Testing

@testable import CustodyNode

/// RFC 9421 request signatures in the share protocol's profile, against the RFC's Ed25519 example.
@Suite struct HTTPSignatureTests {
    /// RFC 9421 Appendix B.1.4 `test-key-ed25519`: the seed is the last 32 bytes of its PKCS#8 private key.
    static let testKeyPKCS8 = "MC4CAQAwBQYDK2VwBCIEIJ+DYvh6SEqVTm50DFtMDoQikTmiCqirVv9mWG9qfSnF"
    static let testPublicSPKI = "MCowBQYDK2VwAyEAJrQLj5P/89iXES9+vFgrIy29clF9CC/oPPsw3c5D0bs="

    static func testKey() throws -> SigningKey {
        let der = try #require(Encoding.bytes(base64: testKeyPKCS8))
        return try SigningKey(seed: SecretBytes(copying: Array(der.suffix(32))))
    }

    @Test func theRFC9421Ed25519ExampleIsReproduced() throws {
        // Appendix B.2.6: the signature base, then the (deterministic) Ed25519 signature.
        let key = try Self.testKey()
        #expect(key.publicKey == Array(try #require(Encoding.bytes(base64: Self.testPublicSPKI)).suffix(32)))
        let parameters = HTTPSignature.parameters(
            components: ["date", "@method", "@path", "@authority", "content-type", "content-length"],
            created: 1_618_884_473,
            keyID: "test-key-ed25519",
            alg: nil,
            nonce: nil
        )
        let base = HTTPSignature.signatureBase(
            components: [
                ("date", "Tue, 20 Apr 2021 02:07:55 GMT"), ("@method", "POST"), ("@path", "/foo"),
                ("@authority", "example.com"), ("content-type", "application/json"), ("content-length", "18"),
            ],
            parameters: parameters
        )
        #expect(
            base == """
                "date": Tue, 20 Apr 2021 02:07:55 GMT
                "@method": POST
                "@path": /foo
                "@authority": example.com
                "content-type": application/json
                "content-length": 18
                "@signature-params": ("date" "@method" "@path" "@authority" "content-type" "content-length");created=1618884473;keyid="test-key-ed25519"
                """
        )
        let signature = Encoding.base64(key.signature(for: Array(base.utf8)))
        #expect(signature == "wqcAqbmYJ2ji2glfAMaRy4gruYYnx2nEFN2HN6jrnDnQCK1u02Gb04v9EDgwUPiu4A0w6vuQv5lIp5WPpBKRCw==")
    }

    @Test func theContentDigestIsRFC9530() {
        // RFC 9530 section 2 example: {"hello": "world"} with a newline.
        let body = Array("{\"hello\": \"world\"}\n".utf8)
        #expect(HTTPSignature.contentDigest(body) == "sha-256=:RK/0qy18MlBSVnWgjwz6lZEWjP/lF5HF9bvEF8FabDg=:")
    }

    struct Setup {
        let key: SigningKey
        let now = 1_800_000_000
        let nonces = NonceCache(startedAt: 1_799_999_000)
        let request = HTTPSignature.Request(
            method: "post",
            authority: "Node.Example:8443",
            path: "/v1/cosignatures",
            query: "grant=abc",
            body: Array("— custody/x cosignature\n".utf8)
        )

        init() throws { key = try SigningKey(seed: SecretBytes(randomCount: 32)) }

        func verify(
            _ request: HTTPSignature.Request,
            _ headers: [String: String],
            at time: Int? = nil
        )
            throws(HTTPSignature.Refusal) -> [UInt8]
        {
            try HTTPSignature.verify(request, headers: headers, now: time ?? now, nonces: nonces) {
                $0 == key.publicKey
            }
        }
    }

    @Test func aSignedRequestVerifiesOnceAndOnlyUnchanged() throws {
        let s = try Setup()
        let headers = HTTPSignature.sign(s.request, key: s.key, created: s.now - 10)
        #expect(
            headers["Signature-Input"]?.hasPrefix(
                #"sig1=("@method" "@authority" "@path" "@query" "content-digest");created="#
            ) == true
        )
        #expect(try s.verify(s.request, headers) == s.key.publicKey)
        // The same nonce again: a replay.
        #expect(throws: HTTPSignature.Refusal.replayed) { try s.verify(s.request, headers) }

        let fresh = HTTPSignature.sign(s.request, key: s.key, created: s.now)
        var changed = s.request
        changed.path = "/v1/objects/other"
        #expect(throws: HTTPSignature.Refusal.badSignature) { try s.verify(changed, fresh) }
        changed = s.request
        changed.query = "grant=xyz"
        #expect(throws: HTTPSignature.Refusal.badSignature) { try s.verify(changed, fresh) }
        changed = s.request
        changed.method = "PUT"
        #expect(throws: HTTPSignature.Refusal.badSignature) { try s.verify(changed, fresh) }
        changed = s.request
        changed.body[0] ^= 1
        #expect(throws: HTTPSignature.Refusal.digestMismatch) { try s.verify(changed, fresh) }
        // A bodyless GET signs without content-digest.
        let get = HTTPSignature.Request(method: "GET", authority: "node", path: "/v1/grants")
        let getHeaders = HTTPSignature.sign(get, key: s.key, created: s.now)
        #expect(getHeaders["Content-Digest"] == nil)
        #expect(try s.verify(get, getHeaders) == s.key.publicKey)
    }

    @Test func staleFutureUnknownAndMalformedRequestsAreRefused() throws {
        let s = try Setup()
        #expect(throws: HTTPSignature.Refusal.stale) {
            try s.verify(s.request, HTTPSignature.sign(s.request, key: s.key, created: s.now - 301))
        }
        #expect(throws: HTTPSignature.Refusal.stale) {
            try s.verify(s.request, HTTPSignature.sign(s.request, key: s.key, created: s.now + 301))
        }
        // Signed before the server started: refused even within the window (no replay across a restart).
        #expect(throws: HTTPSignature.Refusal.stale) {
            try s.verify(
                s.request,
                HTTPSignature.sign(s.request, key: s.key, created: 1_799_998_999),
                at: 1_799_999_100
            )
        }
        let stranger = try SigningKey(seed: SecretBytes(randomCount: 32))
        #expect(throws: HTTPSignature.Refusal.unknownKey) {
            try s.verify(s.request, HTTPSignature.sign(s.request, key: stranger, created: s.now))
        }
        var headers = HTTPSignature.sign(s.request, key: s.key, created: s.now)
        headers["Signature"] = "sig1=:" + Encoding.base64(randomBytes(64)) + ":"
        #expect(throws: HTTPSignature.Refusal.badSignature) { try s.verify(s.request, headers) }
        #expect(throws: HTTPSignature.Refusal.missing("Signature-Input")) { try s.verify(s.request, [:]) }
        let short = HTTPSignature.sign(s.request, key: s.key, created: s.now, nonce: "abcd")
        #expect(throws: HTTPSignature.Refusal.malformed("nonce")) { try s.verify(s.request, short) }
        var fewer = HTTPSignature.sign(s.request, key: s.key, created: s.now)
        fewer["Signature-Input"] = fewer["Signature-Input"]?.replacingOccurrences(of: #" "@query""#, with: "")
        #expect(throws: HTTPSignature.Refusal.malformed("covered components")) { try s.verify(s.request, fewer) }
        for garbage in ["", "sig1=", "sig1=()", "sig2=(\"@method\")", String(repeating: "x", count: 5000)] {
            var bad = HTTPSignature.sign(s.request, key: s.key, created: s.now)
            bad["Signature-Input"] = garbage
            #expect(throws: HTTPSignature.Refusal.self) { try s.verify(s.request, bad) }
        }
    }
}
