import CustodyArchive
import CustodyCrypto
import Foundation
import Hummingbird
import HummingbirdCore
import NIOCore

/// Lets through only requests signed by a key this node knows, for this node's own authority (PROTOCOL.md
/// section 2), and sets ``NodeRequestContext/requester`` to the key.
///
/// Every failure is the same 401 `unauthenticated`, before anything of what was asked is looked at; its kind
/// goes to the server's log only. A nonce journal that cannot be written is 503 `unavailable`.
struct AuthenticationMiddleware: RouterMiddleware {
    typealias Context = NodeRequestContext

    let node: NodeServer

    func handle(
        _ request: Request,
        context: Context,
        next: (Request, Context) async throws -> Response
    ) async throws -> Response {
        // The body is covered by the signature (Content-Digest): read it, bounded, then hand it on as read.
        let body = try await NodeServer.body(of: request)
        var request = request
        request.body = RequestBody(buffer: ByteBuffer(bytes: body))
        context.requester = try await node.authenticate(request, body: body)
        return try await next(request, context)
    }
}

extension NodeServer {
    /// The header fields (lowercase) a signed request may carry only once.
    static let singleFields: Set<String> = ["signature", "signature-input", "content-digest", "host"]

    /// Checks the request's signature (PROTOCOL.md section 2) and that it was signed for this node's own
    /// authority; returns the requester's key.
    ///
    /// - Throws: ``ServerRefusal`` `unauthenticated` for any failure (its kind as the detail), `unavailable` when
    ///   the nonce journal (`serve-state/nonces`) cannot be written.
    func authenticate(_ request: Request, body: [UInt8]) async throws -> [UInt8] {
        // The fields the signature rests on at most once each: a second Signature, Signature-Input,
        // Content-Digest or Host is not a request this node can read one way only. Other fields may repeat.
        var headers: [String: String] = [:]
        var repeated = false
        for field in request.headers {
            let name = field.name.canonicalName
            if headers[name] != nil, Self.singleFields.contains(name) { repeated = true }
            headers[name] = field.value
        }
        let signed = HTTPSignature.Request(
            method: request.method.rawValue,
            authority: request.head.authority ?? "",
            path: request.uri.path,
            query: request.uri.query.map { "?" + $0 } ?? "",
            body: body
        )
        // A request signed for another node (relayed here) is refused: @authority must be this node's own.
        guard !repeated, authorities.contains(signed.authority) else {
            throw ServerRefusal(.unauthenticated, detail: repeated ? "repeated header field" : "foreign authority")
        }
        let nonces = self.nonces
        let grants = self.grants
        let fields = headers
        do {
            let known = try await archiveOperation { await Self.requesterKeys(archive: $0, grants: grants) }
            // Verifying may write the nonce journal: off the task pool.
            return try await Self.offload {
                try HTTPSignature.verify(
                    signed,
                    headers: fields,
                    now: Int(Date().timeIntervalSince1970),
                    nonces: nonces
                ) {
                    key in Self.isKnown(key, among: known)
                }
            }
        } catch .unavailable as HTTPSignature.Refusal {
            throw ServerRefusal(.unavailable, detail: "the nonce journal (serve-state/nonces) cannot be written")
        } catch let refusal as HTTPSignature.Refusal {
            // The kind only (`missing("Signature")`, `replayed`…): never a header's value.
            throw ServerRefusal(.unauthenticated, detail: "\(refusal)")
        }
    }

    /// The keys that may make requests: those of known bodies, and the grantees of this archive's grants.
    /// Grants are read through the server's cache: this runs for every signed request.
    static func requesterKeys(archive: Archive.Unlocked, grants: GrantCache) async -> [[UInt8]] {
        var keys: [[UInt8]] = []
        for body in (try? archive.knownBodies()) ?? [] {
            if let key = Encoding.bytes(base64: body.identity.signingKey) { keys.append(key) }
        }
        for summary in (try? await archive.index().grants()) ?? [] where summary.direction == .outgoing {
            if let grantee = try? await grants.get(summary.id, archive: archive).grantee { keys.append(grantee) }
        }
        return keys
    }

    /// Whether `key` is one of `keys`.
    ///
    /// Every key is looked at whatever the answer (no early return), so the time it takes does not tell a
    /// stranger whether its key is known.
    static func isKnown(_ key: [UInt8], among keys: [[UInt8]]) -> Bool {
        var known = false
        for candidate in keys { known = (candidate == key) || known }
        return known
    }
}
