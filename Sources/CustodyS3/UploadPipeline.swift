import CustodyStorage

/// The uploads an S3 store has in flight: at most ``maxCount`` and ``maxBytes`` at once (one larger object
/// alone), each tracked by name until every batch that staged it has committed or discarded it.
///
/// Staging returns as soon as its upload has room and has started, so the caller goes on encrypting while
/// the network works: each upload is a task of the pipeline's own, and is always awaited, by ``finish(_:)``
/// (commit or discard) and by ``wait(for:)`` (a read of the object), never left running unobserved. A stager
/// that finds no room waits, without a thread, in a first-come queue; room is handed to the first waiter
/// that fits as an upload ends.
actor UploadPipeline {
    /// The most uploads in flight.
    static let maxCount = 16
    /// The most bytes in flight (unless one object alone is larger).
    static let maxBytes: Int64 = 128 << 20

    private struct Upload {
        let task: Task<Void, any Error>
        /// Stagings of this name not yet committed or discarded.
        var holders: Int
    }

    private struct Waiter {
        let bytes: Int64
        let resume: CheckedContinuation<Void, Never>
    }

    private var uploads: [ObjectName: Upload] = [:]
    private var count = 0
    private var bytes: Int64 = 0
    /// Stagers waiting for room, oldest first from ``head`` (the array is compacted when it is all used).
    private var waiters: [Waiter] = []
    private var head = 0

    /// Starts `work`, the upload of `name` (`size` bytes), once there is room; joins the upload in flight
    /// instead when there is one for that name.
    func start(_ name: ObjectName, bytes size: Int64, _ work: @escaping @Sendable () async throws -> Void) async {
        if join(name) { return }
        if !fits(size) {
            // The room is reserved for us by `release` before we are resumed.
            await withCheckedContinuation { waiters.append(Waiter(bytes: size, resume: $0)) }
        } else {
            reserve(size)
        }
        // Another stager of the same name may have started it while we waited.
        if join(name) {
            release(size)
            return
        }
        // The task is isolated to the pipeline (it inherits the actor): `work` runs off it, the release on it.
        let task = Task {
            do {
                try await work()
            } catch {
                release(size)
                throw error
            }
            release(size)
        }
        uploads[name] = Upload(task: task, holders: 1)
    }

    /// Counts one more staging of an upload in flight, if there is one for `name`.
    private func join(_ name: ObjectName) -> Bool {
        guard uploads[name] != nil else { return false }
        uploads[name]?.holders += 1
        return true
    }

    private func fits(_ size: Int64) -> Bool {
        count == 0 || (count < Self.maxCount && bytes + size <= Self.maxBytes)
    }

    private func reserve(_ size: Int64) {
        count += 1
        bytes += size
    }

    /// Gives back an upload's room, and hands it on to the waiters that now fit, in order.
    private func release(_ size: Int64) {
        count -= 1
        bytes -= size
        while head < waiters.count, fits(waiters[head].bytes) {
            let waiter = waiters[head]
            head += 1
            reserve(waiter.bytes)
            waiter.resume.resume()
        }
        if head == waiters.count {
            waiters.removeAll(keepingCapacity: true)
            head = 0
        }
    }

    /// Waits for the upload of `name`, if one is in flight (its failure is for its committer to report).
    func wait(for name: ObjectName) async {
        guard let task = uploads[name]?.task else { return }
        _ = try? await task.value
    }

    /// Waits for the uploads of `names`, drops one staging of each, and throws the first failure.
    func finish(_ names: [ObjectName]) async throws {
        var tasks: [Task<Void, any Error>] = []
        for name in names {
            guard let upload = uploads[name] else { continue }
            tasks.append(upload.task)
            if upload.holders > 1 {
                uploads[name]?.holders -= 1
            } else {
                uploads[name] = nil
            }
        }
        var failure: (any Error)?
        for task in tasks {
            do {
                try await task.value
            } catch {
                failure = failure ?? error
            }
        }
        if let failure { throw failure }
    }
}
