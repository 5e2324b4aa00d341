import CustodyCrypto
import Foundation

/// Credentials for an S3 store: read from the environment (or flags) at run time, never stored in the archive.
package final class S3Credentials: Sendable {
    /// The access key id (not secret: it names the key, and appears in every request).
    package let accessKey: String
    /// The secret access key, in guarded memory.
    let secret: SecretBytes
    /// A session token for temporary credentials (`x-amz-security-token`), if any.
    package let sessionToken: String?

    package init(accessKey: String, secretKey: [UInt8], sessionToken: String? = nil) throws {
        self.accessKey = accessKey
        secret = try SecretBytes(copying: secretKey)
        self.sessionToken = sessionToken
    }
}

/// AWS Signature Version 4 for S3 (the `Authorization` header form), written by hand because no maintained
/// Swift S3 library is available here; checked against the AWS SigV4 test suite and the S3 documentation's
/// examples (Tests/CustodyArchiveTests/Vectors/sigv4.json).
package enum SigV4 {
    /// The SHA-256 of an empty payload, hex.
    package static let emptyPayloadHash = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"

    /// One request to sign.
    package struct Request: Sendable {
        package var method: String
        /// The host (and `:port` when it is not the scheme's default), as sent in `Host`.
        package var host: String
        /// The path, not yet percent-encoded (`/bucket/key`).
        package var path: String
        /// The query parameters, not yet percent-encoded, in any order.
        package var query: [(String, String)]
        /// Headers to sign besides `host` and `x-amz-date` (names in any case).
        package var headers: [(String, String)]
        /// Hex SHA-256 of the body, or `UNSIGNED-PAYLOAD`.
        package var payloadHash: String

        package init(
            method: String,
            host: String,
            path: String,
            query: [(String, String)] = [],
            headers: [(String, String)] = [],
            payloadHash: String = SigV4.emptyPayloadHash
        ) {
            self.method = method
            self.host = host
            self.path = path
            self.query = query
            self.headers = headers
            self.payloadHash = payloadHash
        }
    }

    /// What signing produced: the headers to send, and the intermediate strings (for tests and diagnostics;
    /// neither contains the secret).
    package struct Signed: Sendable {
        /// `Authorization`, `x-amz-date`, and `x-amz-security-token` when the credentials have one.
        package var headers: [(String, String)]
        package var canonicalRequest: String
        package var stringToSign: String
        package var signature: String
    }

    /// Signs `request` at `amzDate` (`YYYYMMDDTHHMMSSZ`) for `region` and `service`.
    package static func sign(
        _ request: Request,
        credentials: S3Credentials,
        region: String,
        service: String = "s3",
        amzDate: String
    ) -> Signed {
        let day = String(amzDate.prefix(8))
        var headers = request.headers.map { ($0.0.lowercased(), canonicalValue($0.1)) }
        headers.append(("host", request.host))
        headers.append(("x-amz-date", amzDate))
        if let token = credentials.sessionToken { headers.append(("x-amz-security-token", token)) }
        // One line per name (values of a repeated name joined by commas, in order), sorted by name.
        var byName: [String: [String]] = [:]
        for (name, value) in headers { byName[name, default: []].append(value) }
        let names = byName.keys.sorted()
        let canonicalHeaders = names.map { "\($0):\(byName[$0, default: []].joined(separator: ","))\n" }.joined()
        let signedHeaders = names.joined(separator: ";")
        let canonicalRequest = [
            request.method,
            uriEncode(request.path, encodeSlash: false),
            canonicalQuery(request.query),
            canonicalHeaders,
            signedHeaders,
            request.payloadHash,
        ].joined(separator: "\n")
        let scope = "\(day)/\(region)/\(service)/aws4_request"
        let stringToSign = [
            "AWS4-HMAC-SHA256",
            amzDate,
            scope,
            Encoding.hex(SHA256Hasher.hash(Array(canonicalRequest.utf8))),
        ].joined(separator: "\n")
        var key = signingKey(credentials: credentials, day: day, region: region, service: service)
        defer { wipe(&key) }
        let signature = Encoding.hex(HMACSHA256.mac(key: key, Array(stringToSign.utf8)))
        var out = [
            (
                "Authorization",
                "AWS4-HMAC-SHA256 Credential=\(credentials.accessKey)/\(scope), SignedHeaders=\(signedHeaders), Signature=\(signature)"
            ),
            ("x-amz-date", amzDate),
        ]
        if let token = credentials.sessionToken { out.append(("x-amz-security-token", token)) }
        return Signed(
            headers: out,
            canonicalRequest: canonicalRequest,
            stringToSign: stringToSign,
            signature: signature
        )
    }

    /// kSigning = HMAC(HMAC(HMAC(HMAC("AWS4" + secret, day), region), service), "aws4_request").
    static func signingKey(credentials: S3Credentials, day: String, region: String, service: String) -> [UInt8] {
        var seed = Array("AWS4".utf8)
        credentials.secret.withUnsafeBytes { seed += $0 }
        defer { wipe(&seed) }
        var key = HMACSHA256.mac(key: seed, Array(day.utf8))
        for part in [region, service, "aws4_request"] {
            let next = HMACSHA256.mac(key: key, Array(part.utf8))
            wipe(&key)
            key = next
        }
        return key
    }

    /// The canonical query string: each name and value URI-encoded (slashes too), sorted by name then value.
    package static func canonicalQuery(_ query: [(String, String)]) -> String {
        let encoded: [(name: String, value: String)] = query.map {
            (uriEncode($0.0, encodeSlash: true), uriEncode($0.1, encodeSlash: true))
        }
        let sorted = encoded.sorted { a, b in a.name == b.name ? a.value < b.value : a.name < b.name }
        return sorted.map { $0.name + "=" + $0.value }.joined(separator: "&")
    }

    /// A header value as SigV4 signs it: trimmed, runs of spaces collapsed to one.
    static func canonicalValue(_ value: String) -> String {
        var out = ""
        var lastWasSpace = false
        for character in value.trimmingCharacters(in: .whitespaces) {
            if character == " " {
                if !lastWasSpace { out.append(" ") }
                lastWasSpace = true
            } else {
                out.append(character)
                lastWasSpace = false
            }
        }
        return out
    }

    /// RFC 3986 percent-encoding of every byte but the unreserved `A–Z a–z 0–9 - . _ ~` (and `/` unless
    /// `encodeSlash`), with uppercase hex, as SigV4 requires.
    package static func uriEncode(_ text: String, encodeSlash: Bool) -> String {
        var out = ""
        out.reserveCapacity(text.utf8.count)
        for byte in text.utf8 {
            switch byte {
            case UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "a")...UInt8(ascii: "z"),
                UInt8(ascii: "0")...UInt8(ascii: "9"), UInt8(ascii: "-"), UInt8(ascii: "."), UInt8(ascii: "_"),
                UInt8(ascii: "~"):
                out.append(Character(UnicodeScalar(byte)))
            case UInt8(ascii: "/") where !encodeSlash:
                out.append("/")
            default:
                out += "%" + String(byte, radix: 16, uppercase: true).leftPadded(to: 2)
            }
        }
        return out
    }

    /// `YYYYMMDDTHHMMSSZ` for a Unix time.
    package static func amzDate(_ time: Int) -> String {
        var t = time_t(time)
        var parts = tm()
        gmtime_r(&t, &parts)
        return String(
            format: "%04d%02d%02dT%02d%02d%02dZ",
            parts.tm_year + 1900,
            parts.tm_mon + 1,
            parts.tm_mday,
            parts.tm_hour,
            parts.tm_min,
            parts.tm_sec
        )
    }
}

extension String {
    fileprivate func leftPadded(to width: Int) -> String {
        count >= width ? self : String(repeating: "0", count: width - count) + self
    }
}
