import Hummingbird
import HummingbirdCore
import Logging
import NIOCore
import ServiceLifecycle
import UnixSignals

extension NodeServer {
    /// A way to stop a running server from inside the process (`custody demo`), as SIGTERM stops `serve`.
    ///
    /// Stopping is graceful either way: the server stops accepting connections, finishes the requests in
    /// progress, and ``NodeServer/run(host:port:publicURLs:logger:stop:ready:)`` returns.
    package struct Stop: Sendable {
        fileprivate let requested: AsyncStream<Void>
        private let continuation: AsyncStream<Void>.Continuation

        package init() {
            (requested, continuation) = AsyncStream.makeStream()
        }

        /// Asks the server to stop; later calls do nothing.
        package func request() { continuation.finish() }
    }

    /// Runs until SIGTERM or SIGINT — or, with `stop`, until it is requested (signals are then left to the
    /// caller) — then shuts down gracefully; calls `ready` with the bound address first.
    ///
    /// Signed requests are answered only when their `@authority` is one of `publicURLs`' (or, with none, the
    /// listening address's, as ``authorities(publicURLs:host:port:)`` derives it once the port is bound).
    /// Every request and every refusal is logged to `logger` (``RequestLogMiddleware``).
    package func run(
        host: String,
        port: Int,
        publicURLs: [String] = [],
        logger: Logger,
        stop: Stop? = nil,
        ready: @escaping @Sendable (String) -> Void
    ) async throws {
        if !publicURLs.isEmpty {
            authorities.set(try Self.authorities(publicURLs: publicURLs, host: host, port: port))
        }
        let authorities = self.authorities
        // Bounded headers (16 KiB a field, 64 KiB in all, 100 fields) and idle connections closed after 60 s;
        // bodies are bounded where each route collects them.
        let http = HTTP1Channel.Configuration(
            idleTimeout: .seconds(60),
            httpDecoderConfiguration: .init(
                maxHeaderFieldSize: 16 * 1024,
                maxHeaderListSize: 64 * 1024,
                maxHeaderFieldCount: 100
            )
        )
        let app = Application(
            router: router(),
            server: .http1(configuration: http),
            configuration: .init(address: .hostname(host, port: port), serverName: "custody"),
            onServerRunning: { channel in
                let bound = channel.localAddress?.port ?? port
                if publicURLs.isEmpty, let derived = try? Self.authorities(publicURLs: [], host: host, port: bound) {
                    authorities.set(derived)
                }
                ready(channel.localAddress.map { "\($0.ipAddress ?? host):\($0.port ?? port)" } ?? "\(host):\(port)")
            },
            logger: logger
        )
        // A graceful shutdown, never a cancellation: cancelling the server's task makes Hummingbird log errors
        // ("Waiting on child channel: CancellationError()") and drop the requests in progress.
        var services = [ServiceGroupConfiguration.ServiceConfiguration(service: app)]
        if let stop {
            services.append(
                .init(service: StopService(stop: stop), successTerminationBehavior: .gracefullyShutdownGroup)
            )
        }
        let group = ServiceGroup(
            configuration: .init(
                services: services,
                gracefulShutdownSignals: stop == nil ? [.sigterm, .sigint] : [],
                logger: logger
            )
        )
        try await group.run()
    }
}

/// Returns once a stop is requested, which shuts the server's service group down gracefully (or at once when
/// the group is shutting down for another reason).
private struct StopService: Service {
    let stop: NodeServer.Stop

    func run() async {
        for await _ in stop.requested.cancelOnGracefulShutdown() {}
    }
}
