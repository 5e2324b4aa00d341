import Hummingbird
import HummingbirdCore

/// A refusal thrown inside a route or a middleware: answered with its reason, its `detail` written to the
/// server's log only.
struct ServerRefusal: Error, HTTPResponseError {
    var reason: Reason
    /// What went wrong, for the operator (may hold paths; never a secret or a header's value); never sent.
    var detail: String?
    var headers: HTTPFields
    /// The answer sent instead of the reason code's body, when the protocol defines one: a revocation notice
    /// (410), the witness's stored size (409).
    var answer: Response?

    init(_ reason: Reason, detail: String? = nil, headers: HTTPFields = [:]) {
        self.reason = reason
        self.detail = detail
        self.headers = headers
    }

    /// A refusal logged as `reason` but answered with `answer`.
    init(_ reason: Reason, answer: Response, detail: String? = nil) {
        self.init(reason, detail: detail)
        self.answer = answer
    }

    var status: HTTPResponse.Status { answer?.status ?? reason.status }

    func response(from request: Request, context: some RequestContext) throws -> Response { response }

    /// What the client is sent.
    var response: Response { answer ?? reason.response(headers: headers) }
}
