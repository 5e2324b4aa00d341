import CustodyArchive
import CustodyCrypto
import Foundation
import Synchronization

/// HTTP Message Signatures (RFC 9421) with Ed25519, and `Content-Digest` (RFC 9530), in the one profile the
/// share protocol uses (Docs/PROTOCOL.md section 2).
///
/// ```
/// Signature-Input: sig1=("@method" "@authority" "@path" "@query" "content-digest");created=1795950000;
///                  keyid="<base64 Ed25519 public key>";alg="ed25519";nonce="<32+ hex>"
/// Signature: sig1=:<base64 Ed25519 signature over the signature base>:
/// Content-Digest: sha-256=:<base64 SHA-256 of the body>:          -- and "content-digest" covered -- on bodies
/// ```
package enum HTTPSignature {
    /// The signature label.
    package static let label = "sig1"
    /// How far `created` may be from the verifier's clock.
    package static let allowedSkew = 300
    /// The components every request covers, in this order; `content-digest` is added when there is a body.
    package static let requestComponents = ["@method", "@authority", "@path", "@query"]

    /// The RFC 9421 signature base (section 2.5): one line per component, `"name": value`, then the
    /// `"@signature-params"` line; lines joined by a newline, no trailing newline.
    package static func signatureBase(components: [(name: String, value: String)], parameters: String) -> String {
        (components.map { "\"\($0.name)\": \($0.value)" } + ["\"@signature-params\": " + parameters])
            .joined(separator: "\n")
    }

    /// The serialised signature parameters (an RFC 8941 inner list with parameters), in the given order.
    package static func parameters(
        components: [String],
        created: Int,
        keyID: String,
        alg: String?,
        nonce: String?
    )
        -> String
    {
        var text = "(" + components.map { "\"\($0)\"" }.joined(separator: " ") + ");created=\(created)"
        text += ";keyid=\"\(keyID)\""
        if let alg { text += ";alg=\"\(alg)\"" }
        if let nonce { text += ";nonce=\"\(nonce)\"" }
        return text
    }

    /// `sha-256=:<base64>:` of `body` (RFC 9530).
    package static func contentDigest(_ body: [UInt8]) -> String {
        "sha-256=:" + Encoding.base64(SHA256Hasher.hash(body)) + ":"
    }

    /// What a request is, for signing and verifying: its method, authority (`host[:port]`, lowercase),
    /// path and query (with its leading `?`, or empty), and body.
    package struct Request: Sendable {
        package var method: String
        package var authority: String
        package var path: String
        package var query: String
        package var body: [UInt8]

        package init(method: String, authority: String, path: String, query: String = "", body: [UInt8] = []) {
            self.method = method.uppercased()
            self.authority = authority.lowercased()
            self.path = path
            self.query = query
            self.body = body
        }

        /// The `@query` component value: the query with its `?`, or `?` alone when there is none (RFC 9421 2.2.7).
        var queryComponent: String { query.isEmpty ? "?" : (query.hasPrefix("?") ? query : "?" + query) }

        func components(digest: String?) -> [(name: String, value: String)] {
            var list: [(String, String)] = [
                ("@method", method), ("@authority", authority), ("@path", path), ("@query", queryComponent),
            ]
            if let digest { list.append(("content-digest", digest)) }
            return list
        }
    }

    /// The headers that sign `request` with `key`: `Signature-Input`, `Signature`, and `Content-Digest` on a body.
    package static func sign(
        _ request: Request,
        key: SigningKey,
        created: Int = Int(Date().timeIntervalSince1970),
        nonce: String = Encoding.hex(randomBytes(16))
    ) -> [String: String] {
        let digest = request.body.isEmpty ? nil : contentDigest(request.body)
        let names = requestComponents + (digest == nil ? [] : ["content-digest"])
        let params = parameters(
            components: names,
            created: created,
            keyID: Encoding.base64(key.publicKey),
            alg: "ed25519",
            nonce: nonce
        )
        let base = signatureBase(components: request.components(digest: digest), parameters: params)
        var headers = [
            "Signature-Input": "\(label)=\(params)",
            "Signature": "\(label)=:\(Encoding.base64(key.signature(for: Array(base.utf8)))):",
        ]
        if let digest { headers["Content-Digest"] = digest }
        return headers
    }

    /// Why a signed request is refused. Every case answers 401, with nothing about what was asked for.
    package enum Refusal: Error, Equatable, Sendable {
        case missing(String)
        case malformed(String)
        case digestMismatch
        case stale
        case replayed
        case unknownKey
        case badSignature
        /// The replay cache could not record the nonce (its journal cannot be written): refused, 503.
        case unavailable
    }

    /// The key an unknown `keyid`'s signature is checked against, so that a request from an unknown key costs the
    /// same Ed25519 verification as one from a known key (RFC 8032 section 7.1, test 1's public key).
    static let standIn: [UInt8] =
        Encoding.bytes(hex: "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a") ?? []

    /// Checks a request's signature in Custody's profile and returns the requester's public key.
    ///
    /// - Parameters:
    ///   - request: The request as received.
    ///   - headers: Its header fields, names in any case.
    ///   - now: The verifier's clock (Unix seconds).
    ///   - nonces: The server's replay cache.
    ///   - isKnown: Whether a key may make requests at all. It is asked for every well-formed request, and a
    ///     signature is verified whether the key is known or not (an unknown key's against a stand-in key), so the
    ///     answer's timing does not tell whether a key is known.
    /// - Returns: The requester's public key.
    /// - Throws: ``Refusal``.
    package static func verify(
        _ request: Request,
        headers: [String: String],
        now: Int,
        nonces: NonceCache,
        isKnown: (_ key: [UInt8]) -> Bool
    ) throws(Refusal) -> [UInt8] {
        func header(_ name: String) -> String? {
            headers.first { $0.key.lowercased() == name.lowercased() }?.value
        }
        guard let input = header("Signature-Input") else { throw .missing("Signature-Input") }
        guard let signatureField = header("Signature") else { throw .missing("Signature") }
        guard input.utf8.count <= 1024, signatureField.utf8.count <= 256, input.hasPrefix(label + "="),
            signatureField.hasPrefix(label + "=:"), signatureField.hasSuffix(":")
        else { throw .malformed("signature fields") }
        let params = String(input.dropFirst(label.count + 1))
        let parsed = try parseParameters(params)
        let expectedNames = requestComponents + (request.body.isEmpty ? [] : ["content-digest"])
        guard parsed.components == expectedNames else { throw .malformed("covered components") }
        var digest: String?
        if !request.body.isEmpty {
            guard let given = header("Content-Digest") else { throw .missing("Content-Digest") }
            guard constantTimeEqual(Array(given.utf8), Array(contentDigest(request.body).utf8)) else {
                throw .digestMismatch
            }
            digest = given
        }
        guard abs(now - parsed.created) <= allowedSkew, parsed.created >= nonces.startedAt else { throw .stale }
        guard let key = Encoding.bytes(base64: parsed.keyID), key.count == 32 else { throw .malformed("keyid") }
        let encoded = signatureField.dropFirst(label.count + 2).dropLast()
        guard let signature = Encoding.bytes(base64: String(encoded)), signature.count == 64 else {
            throw .malformed("signature")
        }
        let known = isKnown(key)
        let base = signatureBase(components: request.components(digest: digest), parameters: params)
        let valid = SigningKey.isValidSignature(signature, for: Array(base.utf8), publicKey: known ? key : standIn)
        guard known else { throw .unknownKey }
        guard valid else { throw .badSignature }
        // Only a valid signature spends its nonce: an attacker cannot burn another requester's nonces.
        switch nonces.admit(parsed.nonce, created: parsed.created, now: now) {
        case .admitted: return key
        case .seen: throw .replayed
        case .unrecorded: throw .unavailable
        }
    }

    struct Parameters {
        var components: [String]
        var created: Int
        var keyID: String
        var nonce: String
    }

    /// Parses exactly Custody's profile: the inner list, then `created`, `keyid`, `alg="ed25519"`, `nonce`.
    static func parseParameters(_ text: String) throws(Refusal) -> Parameters {
        guard text.hasPrefix("("), let close = text.firstIndex(of: ")") else { throw .malformed("inner list") }
        let list = text[text.index(after: text.startIndex)..<close]
        let components = list.split(separator: " ").map { item -> String in
            item.hasPrefix("\"") && item.hasSuffix("\"") && item.count >= 2 ? String(item.dropFirst().dropLast()) : ""
        }
        var values: [String: String] = [:]
        for field in text[text.index(after: close)...].split(separator: ";", omittingEmptySubsequences: false)
            .dropFirst()
        {
            guard let eq = field.firstIndex(of: "=") else { throw .malformed("parameter") }
            let name = String(field[..<eq])
            var value = String(field[field.index(after: eq)...])
            if value.hasPrefix("\"") && value.hasSuffix("\"") && value.count >= 2 {
                value = String(value.dropFirst().dropLast())
            }
            guard values[name] == nil else { throw .malformed("repeated parameter") }
            values[name] = value
        }
        guard Set(values.keys) == ["created", "keyid", "alg", "nonce"] else { throw .malformed("parameters") }
        // An RFC 8941 integer of ASCII digits only (no sign, at most 15 digits); a nonce of ASCII hex only
        // (`Character.isHexDigit` would also take fullwidth digits).
        func isDigit(_ byte: UInt8) -> Bool { (0x30...0x39).contains(byte) }
        func isHex(_ byte: UInt8) -> Bool {
            isDigit(byte) || (0x61...0x66).contains(byte) || (0x41...0x46).contains(byte)
        }
        guard let createdText = values["created"], (1...15).contains(createdText.utf8.count),
            createdText.utf8.allSatisfy(isDigit), let created = Int(createdText), created > 0
        else { throw .malformed("created") }
        guard values["alg"] == "ed25519" else { throw .malformed("alg") }
        guard let nonce = values["nonce"], nonce.utf8.count >= 32, nonce.utf8.count <= 128, nonce.utf8.allSatisfy(isHex)
        else { throw .malformed("nonce") }
        return Parameters(components: components, created: created, keyID: values["keyid"] ?? "", nonce: nonce)
    }
}

/// The nonces a server has seen, and when it started: a replayed nonce, or a request signed before the start,
/// is refused. With a ``NonceJournal`` the nonces outlive the process: each one admitted is appended to it, and
/// a server started on the same archive reloads them, so a request dated ahead of the clock cannot be replayed
/// after a restart either (PROTOCOL.md section 2).
package final class NonceCache: Sendable {
    /// When the server started (Unix seconds).
    package let startedAt: Int
    private let state: Mutex<State>
    /// The most nonces held; beyond it (after dropping stale ones) requests are refused until some go stale.
    static let capacity = 100_000

    private struct State {
        var seen: [String: Int] = [:]
        var prunedAt = 0
        var journal: NonceJournal?
    }

    /// What ``admit(_:created:now:)`` did.
    enum Admission {
        case admitted
        /// Seen before, or the cache is full.
        case seen
        /// New, but the journal could not record it: refused, as it could be replayed after a restart.
        case unrecorded
    }

    /// A cache holding the journal's nonces, which records every new one in it.
    package init(startedAt: Int = Int(Date().timeIntervalSince1970), journal: sending NonceJournal? = nil) {
        self.startedAt = startedAt
        state = Mutex(State(seen: journal?.loaded ?? [:], journal: journal))
    }

    /// Records `nonce` (and appends it to the journal). Entries older than twice the allowed skew are dropped (at
    /// most once a second), since their requests would be refused as stale; the journal is compacted to the
    /// entries kept when it has grown to more than twice their number.
    func admit(_ nonce: String, created: Int, now: Int) -> Admission {
        state.withLock { state in
            if state.seen.count > 4096, now != state.prunedAt {
                state.seen = state.seen.filter { now - $0.value <= 2 * HTTPSignature.allowedSkew }
                state.prunedAt = now
            }
            guard state.seen[nonce] == nil, state.seen.count < Self.capacity else { return .seen }
            if let journal = state.journal {
                if journal.appended > max(4096, 2 * state.seen.count) {
                    guard journal.compact(to: state.seen) else { return .unrecorded }
                }
                guard journal.append(nonce, created: created) else { return .unrecorded }
            }
            state.seen[nonce] = created
            return .admitted
        }
    }
}
