import CustodyCrypto
import CustodyS3
import Foundation
import Testing

/// AWS Signature Version 4 against the published vectors (Vectors/sigv4.json): the AWS SigV4 test suite and
/// the S3 API reference's examples.
struct SigV4Tests {
    struct Group: Decodable {
        var access_key: String
        var secret_key: String
        var region: String
        var service: String
        var amz_date: String
        var cases: [Case]
    }

    struct Case: Decodable, CustomTestStringConvertible {
        var name: String
        var method: String
        var host: String
        var path: String
        var query: [[String]]
        var headers: [[String]]
        var body: String
        var signature: String
        var session_token: String?
        var testDescription: String { name }
    }

    struct Vectors: Decodable {
        var suite: Group
        var s3: Group
    }

    static let vectors: Vectors = {
        let path = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent(
            "Vectors/sigv4.json"
        )
        // The file is part of the repository; a missing or malformed one is a broken checkout.
        // swift-format-ignore: NeverUseForceTry
        return try! JSONDecoder().decode(Vectors.self, from: Data(contentsOf: path))
    }()

    static func check(_ group: Group, _ vector: Case) throws {
        let credentials = try S3Credentials(
            accessKey: group.access_key,
            secretKey: Array(group.secret_key.utf8),
            sessionToken: vector.session_token
        )
        let request = SigV4.Request(
            method: vector.method,
            host: vector.host,
            path: vector.path,
            query: vector.query.map { ($0[0], $0[1]) },
            headers: vector.headers.map { ($0[0], $0[1]) },
            payloadHash: Encoding.hex(SHA256Hasher.hash(Array(vector.body.utf8)))
        )
        let signed = SigV4.sign(
            request,
            credentials: credentials,
            region: group.region,
            service: group.service,
            amzDate: group.amz_date
        )
        #expect(signed.signature == vector.signature, "\(signed.canonicalRequest)\n--\n\(signed.stringToSign)")
        let authorization = signed.headers.first { $0.0 == "Authorization" }?.1 ?? ""
        #expect(authorization.hasPrefix("AWS4-HMAC-SHA256 Credential=\(group.access_key)/"))
        #expect(authorization.hasSuffix("Signature=\(vector.signature)"))
        #expect(!signed.canonicalRequest.contains(group.secret_key) && !authorization.contains(group.secret_key))
    }

    @Test(arguments: vectors.suite.cases) func theAWSTestSuiteIsReproduced(_ vector: Case) throws {
        try Self.check(Self.vectors.suite, vector)
    }

    @Test(arguments: vectors.s3.cases) func theS3DocumentationExamplesAreReproduced(_ vector: Case) throws {
        try Self.check(Self.vectors.s3, vector)
    }

    @Test func encodingAndDatesFollowSigV4() {
        #expect(SigV4.uriEncode("a b/c+d$é", encodeSlash: false) == "a%20b/c%2Bd%24%C3%A9")
        #expect(SigV4.uriEncode("a/b", encodeSlash: true) == "a%2Fb")
        #expect(SigV4.canonicalQuery([("b", "2"), ("a", "x y"), ("a", "1")]) == "a=1&a=x%20y&b=2")
        #expect(SigV4.amzDate(1_440_938_160) == "20150830T123600Z")
    }
}
