import CustodyArchive
import Foundation
import Hummingbird
import HummingbirdCore
import NIOCore
import NIOHTTP1

// The share protocol's wire types (Docs/PROTOCOL.md), in one place for both sides: the server encodes them, the
// client (``NodeClient``, ``Puller``) decodes them.

/// Why a node answers with an error instead of what was asked for: a fixed code, the whole body of every error
/// response (`{"error":"<code>"}`, Docs/PROTOCOL.md section 3.1), so no internal text, path or detail ever reaches
/// a remote client. The detail goes to the server's own log.
package enum Reason: String, Sendable, CaseIterable {
    /// 400: a malformed path, query or body.
    case badRequest = "bad-request"
    /// 401: any failure of request authentication (PROTOCOL.md section 2), whatever it was.
    case unauthenticated = "unauthenticated"
    /// 403: `add-checkpoint` for a log this node does not witness.
    case unknownLog = "unknown-log"
    /// 403: `add-checkpoint` whose checkpoint is not signed by its log's key.
    case checkpointRefused = "checkpoint-refused"
    /// 404: no such grant for this requester, object, tile, checkpoint or route.
    case notFound = "not-found"
    /// 408: a request body that did not arrive in full within 20 s.
    case requestTimeout = "request-timeout"
    /// 410: the requester's grant was revoked.
    case grantRevoked = "grant-revoked"
    /// 410: the requester's grant is outside its validity window (expired, or not valid yet).
    case grantExpired = "grant-expired"
    /// 410: a re-share whose ancestor grant this node no longer holds intact.
    case ancestorMissing = "ancestor-missing"
    /// 410: a re-share whose ancestor grant was revoked.
    case ancestorRevoked = "ancestor-revoked"
    /// 410: a re-share whose ancestor grant expired.
    case ancestorExpired = "ancestor-expired"
    /// 413: a request body over its route's limit.
    case tooLarge = "too-large"
    /// 416: a range that starts at or past the end.
    case rangeNotSatisfiable = "range-not-satisfiable"
    /// 422: `add-checkpoint` whose checkpoint is provably inconsistent with the one cosigned before (a fork or
    /// rewritten history, kept as evidence).
    case proofFailed = "proof-failed"
    /// 422: `add-checkpoint` whose consistency proof does not lead to the checkpoint's root: it proves nothing,
    /// nothing is stored or filed (send a proof again).
    case proofInvalid = "proof-invalid"
    /// 422: `cosignatures` with a line that cosigns none of this node's checkpoints.
    case noSuchCheckpoint = "no-such-checkpoint"
    /// 429: the requester already has the most requests in progress.
    case tooManyRequests = "too-many-requests"
    /// 500: the node failed; the detail is in its log.
    case internalError = "internal"
    /// 503: the node cannot serve signed requests now (its replay state cannot be written).
    case unavailable = "unavailable"

    /// The HTTP status this reason is sent with.
    package var status: HTTPResponse.Status {
        switch self {
        case .badRequest: return .badRequest
        case .unauthenticated: return .unauthorized
        case .unknownLog, .checkpointRefused: return .forbidden
        case .notFound: return .notFound
        case .requestTimeout: return .requestTimeout
        case .grantRevoked, .grantExpired, .ancestorMissing, .ancestorRevoked, .ancestorExpired: return .gone
        case .tooLarge: return .contentTooLarge
        case .rangeNotSatisfiable: return .rangeNotSatisfiable
        case .proofFailed, .proofInvalid, .noSuchCheckpoint: return .unprocessableContent
        case .tooManyRequests: return .tooManyRequests
        case .internalError: return .internalServerError
        case .unavailable: return .serviceUnavailable
        }
    }

    /// The reason sent for an error status that no route chose a reason for (the router's own 404 and 413).
    static func forStatus(_ status: HTTPResponse.Status) -> Reason {
        switch status.code {
        case 400, 405, 411, 414, 431: return .badRequest
        case 401: return .unauthenticated
        case 404: return .notFound
        case 408: return .requestTimeout
        case 413: return .tooLarge
        case 416: return .rangeNotSatisfiable
        case 429: return .tooManyRequests
        case 503: return .unavailable
        default: return .internalError
        }
    }

    /// The whole body: `{"error":"<code>"}` and a newline.
    package var body: [UInt8] { Array("{\"error\":\"\(rawValue)\"}\n".utf8) }

    /// The response for this reason, with `headers` added (e.g. `Content-Range` on 416).
    package func response(headers extra: HTTPFields = [:]) -> Response {
        var headers = extra
        headers[.contentType] = "application/json"
        return Response(status: status, headers: headers, body: .init(byteBuffer: ByteBuffer(bytes: body)))
    }

    /// The reason code in an error body from a peer, when it is one in the documented form (`{"error":"<code>"}`
    /// with a code of 1 to 64 lowercase letters, digits and hyphens); `nil` for anything else, which is then not
    /// shown at all: a peer's text never reaches this archive's output.
    package static func code(inPeerBody body: some Collection<UInt8>) -> String? {
        guard body.count <= 4096,
            let object = try? JSONSerialization.jsonObject(with: Data(body)) as? [String: Any],
            let code = object["error"] as? String, isCode(code)
        else { return nil }
        return code
    }

    /// Whether `text` has the form of a reason code.
    static func isCode(_ text: String) -> Bool {
        (1...64).contains(text.utf8.count)
            && text.utf8.allSatisfy { (0x61...0x7A).contains($0) || (0x30...0x39).contains($0) || $0 == 0x2D }
    }
}

/// One grant as `GET /v1/grants` lists it (PROTOCOL.md section 3).
struct GrantListing: Codable, Sendable {
    var id: String
    var items: Int
    var created: String
    var expires: String
    var permission: String
    var reshare: Bool

    init(_ summary: GrantSummary) {
        id = summary.id
        items = summary.items
        created = summary.created
        expires = summary.expires
        permission = summary.permission.rawValue
        reshare = summary.reshare
    }
}

/// The body of `GET /v1/grants`: `{"grants": [<listing>…]}`, the requester's own grants only.
struct GrantList: Codable, Sendable {
    var grants: [GrantListing]
}
