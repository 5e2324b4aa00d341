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
