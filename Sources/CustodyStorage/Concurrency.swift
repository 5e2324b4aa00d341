import NIOPosix

extension Sequence where Element: Sendable {
    /// Runs `body` for every element, at most `width` at once, and returns when all have finished.
    ///
    /// A task group of bounded width: the next element starts when one finishes, so a slow element holds
    /// one slot, not the rest. The first error cancels the others and is thrown once they have ended.
    ///
    /// - Parameters:
    ///   - width: The most bodies in flight at once (at least 1).
    ///   - body: The work for one element.
    /// - Throws: The first error a body threw.
    package func concurrentForEach(
        width: Int,
        _ body: @escaping @Sendable (Element) async throws -> Void
    ) async throws {
        try await withThrowingTaskGroup(of: Void.self) { group in
            var running = 0
            for element in self {
                if running >= Swift.max(1, width) {
                    try await group.next()
                    running -= 1
                }
                group.addTask { try await body(element) }
                running += 1
            }
            try await group.waitForAll()
        }
    }
}

extension ObjectStore {
    /// Reads `names` and hands each to `body` in order, with up to `window` reads in flight ahead of it.
    ///
    /// For a sequential consumer of a network store (an item's chunks, on extract and `verify --deep`): the
    /// latency is paid once per window rather than once per object, and memory holds at most `window`
    /// objects besides the one `body` has. The reads are child tasks: when `body` throws, the reads still in
    /// flight are cancelled and awaited before the error is thrown.
    ///
    /// - Parameters:
    ///   - names: The objects, in the order `body` wants them.
    ///   - limit: The largest object accepted (``read(_:limit:)``).
    ///   - window: The most reads in flight (at least 1).
    ///   - body: Called with each index and its bytes (`nil` when the object is absent), in order.
    /// - Throws: The first error of a read or of `body`.
    package func readInOrder(
        _ names: [ObjectName],
        limit: Int,
        window: Int,
        _ body: (Int, [UInt8]?) async throws -> Void
    ) async throws {
        try await withThrowingTaskGroup(of: (Int, [UInt8]?).self) { group in
            var started = 0
            func startNext() {
                guard started < names.count else { return }
                let (index, name) = (started, names[started])
                group.addTask { (index, try await self.read(name, limit: limit)) }
                started += 1
            }
            for _ in 0..<max(1, window) { startNext() }
            var arrived: [Int: [UInt8]?] = [:]
            for index in names.indices {
                while arrived[index] == nil, let (done, bytes) = try await group.next() {
                    arrived[done] = .some(bytes)
                }
                // Every index below `started` has a read in flight or arrived, and `index < started`.
                let bytes = arrived.removeValue(forKey: index) ?? nil
                startNext()
                try await body(index, bytes)
            }
        }
    }
}

/// Where blocking work runs: system calls that can wait on a disk for long (reading a file being ingested,
/// flushing the journal), on NIO's blocking thread pool rather than a thread of the Swift concurrency pool,
/// which has one thread per core and must stay free for the work that computes.
package enum BlockingWork {
    /// Runs `body` on the shared `NIOThreadPool` and returns what it returns.
    ///
    /// - Throws: What `body` throws; ``StorageError`` (temporary) when the pool has stopped.
    package static func run<T: Sendable>(_ body: @escaping @Sendable () throws -> T) async throws -> T {
        do {
            return try await NIOThreadPool.singleton.runIfActive(body)
        } catch is CancellationError where !Task.isCancelled {
            throw StorageError(.temporary, "the blocking-work thread pool has stopped", fix: "run the command again")
        }
    }
}
