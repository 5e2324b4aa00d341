import Hummingbird
import Synchronization

/// Runs a request as one of its requester's requests in progress: 429 `too-many-requests` when the requester
/// already has ``ActiveRequests/maxPerKey`` (PROTOCOL.md section 3). Behind ``AuthenticationMiddleware``.
///
/// A request counts until its route returns its response; a streamed body (a bundle) is sent after that.
struct RequestLimitMiddleware: RouterMiddleware {
    typealias Context = NodeRequestContext

    let active: ActiveRequests

    func handle(
        _ request: Request,
        context: Context,
        next: (Request, Context) async throws -> Response
    ) async throws -> Response {
        let requester = try context.requireRequester()
        guard active.enter(requester) else { throw ServerRefusal(.tooManyRequests) }
        defer { active.leave(requester) }
        return try await next(request, context)
    }
}

/// Requests in progress per key.
final class ActiveRequests: Sendable {
    /// The most a key may have in progress at once.
    static let maxPerKey = 8
    private let counts = Mutex<[[UInt8]: Int]>([:])

    /// Counts one more request of `key`'s; `false` (and nothing counted) when it has ``maxPerKey`` already.
    func enter(_ key: [UInt8]) -> Bool {
        counts.withLock { counts in
            guard counts[key, default: 0] < Self.maxPerKey else { return false }
            counts[key, default: 0] += 1
            return true
        }
    }

    /// Counts one request of `key`'s as finished.
    func leave(_ key: [UInt8]) {
        counts.withLock { counts in
            counts[key, default: 1] -= 1
            if counts[key] == 0 { counts[key] = nil }
        }
    }
}
