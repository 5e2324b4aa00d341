import Dispatch
import Foundation
import Synchronization

/// Work that blocks on the network, run on threads of its own: Dispatch's pools are as wide as the CPU, so
/// sixteen requests waiting on an S3 store would otherwise take turns two at a time.
package enum BlockingWork {
    /// Runs `body(worker)` for `workers` workers, each on its own thread, and returns when all have.
    package static func run(workers: Int, _ body: @escaping @Sendable (Int) -> Void) {
        let group = DispatchGroup()
        for worker in 0..<max(1, workers) {
            group.enter()
            let thread = Thread {
                body(worker)
                group.leave()
            }
            thread.stackSize = 1 << 20
            thread.start()
        }
        group.wait()
    }
}

/// A fixed set of threads that run submitted jobs in order of submission (S3 uploads in the background).
final class BlockingPool: Sendable {
    private let jobs = Mutex<[@Sendable () -> Void]>([])
    private let ready = DispatchSemaphore(value: 0)

    init(threads: Int) {
        for _ in 0..<threads {
            let thread = Thread { [self] in
                while true {
                    ready.wait()
                    let job = jobs.withLock { $0.isEmpty ? nil : $0.removeFirst() }
                    job?()
                }
            }
            thread.stackSize = 1 << 20
            thread.start()
        }
    }

    func submit(_ job: @escaping @Sendable () -> Void) {
        jobs.withLock { $0.append(job) }
        ready.signal()
    }
}

/// Reads objects ahead of a sequential consumer (an item's chunks, on extract and `verify --deep`), a few at
/// a time, so a network store's latency is paid once per window rather than once per chunk.
final class ReadAhead: Sendable {
    private static let pool = BlockingPool(threads: 8)
    private let store: any ObjectStore
    private let names: [ObjectName]
    private let limit: Int
    private let window: Int
    private let slots: [Slot]

    private final class Slot: Sendable {
        let done = DispatchGroup()
        let result = Mutex<Result<[UInt8]?, any Error>?>(nil)
    }

    /// Starts reading the first `window` of `names`.
    init(store: any ObjectStore, names: [ObjectName], limit: Int, window: Int = 8) {
        self.store = store
        self.names = names
        self.limit = limit
        self.window = window
        slots = names.map { _ in Slot() }
        for index in 0..<min(window, names.count) { start(index) }
    }

    private func start(_ index: Int) {
        let slot = slots[index]
        slot.done.enter()
        let (store, name, limit) = (store, names[index], limit)
        Self.pool.submit {
            slot.result.withLock { $0 = Result { try store.read(name, limit: limit) } }
            slot.done.leave()
        }
    }

    /// The bytes of object `index` (`nil` when absent), waiting for them; starts reading one more ahead.
    func take(_ index: Int) throws -> [UInt8]? {
        if index + window < names.count { start(index + window) }
        slots[index].done.wait()
        let result = slots[index].result.withLock { value -> Result<[UInt8]?, any Error>? in
            defer { value = nil }
            return value
        }
        return try result?.get() ?? nil
    }
}
