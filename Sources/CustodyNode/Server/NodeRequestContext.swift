import Hummingbird
import Synchronization

/// The context of one request to a node: Hummingbird's core context plus who signed the request.
///
/// ``AuthenticationMiddleware`` sets ``requester`` on the routes that take signed requests only; the routes read
/// it through ``requireRequester()``.
package struct NodeRequestContext: RequestContext {
    /// Hummingbird's own per-request state (logger, parameters, endpoint).
    package var coreContext: CoreRequestContextStorage
    private let signer = Signer()

    /// A new context for a request from `source` (Hummingbird makes one per request), with no requester yet.
    package init(source: ApplicationRequestContextSource) {
        coreContext = .init(source: source)
    }

    /// The Ed25519 public key that signed the request, once ``AuthenticationMiddleware`` has verified it; `nil`
    /// before that, and on the routes that take unsigned requests.
    ///
    /// Set through one copy of the context, it is seen by every copy (as Hummingbird's `endpointPath` is), so
    /// the request log, which runs outside the authentication, names the requester too.
    package internal(set) var requester: [UInt8]? {
        get { signer.key.withLock { $0 } }
        nonmutating set { signer.key.withLock { $0 = newValue } }
    }

    /// The requester, on a route behind ``AuthenticationMiddleware``.
    ///
    /// - Throws: ``ServerRefusal`` `unauthenticated` when no signature was verified (a route registered without
    ///   the middleware: a programming error, refused rather than served).
    func requireRequester() throws -> [UInt8] {
        guard let requester else {
            throw ServerRefusal(.unauthenticated, detail: "route reached without authentication")
        }
        return requester
    }
}

/// The storage behind ``NodeRequestContext/requester``, shared by the copies of one request's context.
private final class Signer: Sendable {
    let key = Mutex<[UInt8]?>(nil)
}
