import CustodyArchive
import CustodyCrypto
import Foundation
import Hummingbird
import HummingbirdCore
import Logging
import NIOCore
import NIOHTTP1

/// Logs one line per request and makes every error answer a fixed reason code (PROTOCOL.md section 3.1): a
/// ``ServerRefusal`` as it says, any other `HTTPResponseError` (the router's 404, a body over its limit) by its
/// status, anything else 500 `internal`. Details are logged, never sent. The outermost middleware.
///
/// The line (`request` at info, `refused` at notice, a failure at error) has the method, the path (no query,
/// escaped, at most 256 characters), the status, the time until the response's head was ready, the requester
/// (the first 12 characters of its base64 signing key, once authenticated) and, for a refusal, its reason code
/// and detail. Never a header's value, a signature, a nonce, a body or anything decrypted.
struct RequestLogMiddleware: RouterMiddleware {
    typealias Context = NodeRequestContext

    func handle(
        _ request: Request,
        context: Context,
        next: (Request, Context) async throws -> Response
    ) async throws -> Response {
        let started = ContinuousClock.now
        let response: Response
        var refusal: (reason: Reason, detail: String?)?
        do {
            response = try await next(request, context)
        } catch let error as HTTPParserError {
            throw error  // the HTTP server answers a request it could not parse itself, and closes
        } catch let error as ServerRefusal {
            refusal = (error.reason, error.detail)
            response = error.response
        } catch let error as any HTTPResponseError {
            let reason = Reason.forStatus(error.status)
            refusal = (reason, reason == .internalError ? "\(error)" : nil)
            response = reason.response()
        } catch {
            refusal = (.internalError, "\(error)")
            response = Reason.internalError.response()
        }
        Self.log(request, response, refusal: refusal, requester: context.requester, since: started, to: context.logger)
        return response
    }

    /// Writes the line for `request` answered with `response`.
    static func log(
        _ request: Request,
        _ response: Response,
        refusal: (reason: Reason, detail: String?)?,
        requester: [UInt8]?,
        since started: ContinuousClock.Instant,
        to logger: Logger
    ) {
        let elapsed = (ContinuousClock.now - started).components
        let milliseconds = Double(elapsed.seconds) * 1000 + Double(elapsed.attoseconds) / 1e15
        var metadata: Logger.Metadata = [
            "http.method": .string(TerminalText.escape(request.method.rawValue)),
            "http.path": .string(TerminalText.escape(String(request.uri.path.prefix(256)))),
            "http.status": .stringConvertible(response.status.code),
            "http.duration_ms": .string(String(format: "%.1f", milliseconds)),
        ]
        if let requester { metadata["custody.requester"] = .string(Self.requesterPrefix(requester)) }
        guard let refusal else {
            logger.info("request", metadata: metadata)
            return
        }
        metadata["custody.reason"] = .string(refusal.reason.rawValue)
        if let detail = refusal.detail {
            metadata["custody.detail"] = .string(TerminalText.escape(String(detail.prefix(1000))))
        }
        logger.log(level: response.status.code >= 500 ? .error : .notice, "refused", metadata: metadata)
    }

    /// How the log names a requester: the start of its signing key as identity files show it (base64), enough
    /// to tell peers apart (72 bits).
    static func requesterPrefix(_ key: [UInt8]) -> String {
        String(Encoding.base64(key).prefix(12))
    }
}
