import CustodyCrypto
import CustodyStorage
import Foundation
import Synchronization

/// The object checks of one verifying pass: every object, from an `O` record or delivered by a fetch, must be
/// released by the grant, come once, have its size and hash to its name (SHARING.md section 4, step 7); a chunk
/// list is also compared with the chunks each item releases behind it.
///
/// Objects are checked by child tasks of the verifying pass while the reader goes on (at most ``width`` at a
/// time, ``BundleVerifier/verify(path:granter:witnesses:expectedGrant:at:fetch:object:)``); the problems they
/// find are collected here and reported in object order.
final class ObjectAdmission: Sendable {
    /// Objects checked at once: two per processor.
    static let width = 2 * max(1, ProcessInfo.processInfo.activeProcessorCount)
    /// Called with each object that checks, concurrently (for importing).
    private let deliver: (@Sendable (ObjectName, [UInt8]) async throws -> Void)?
    private let problems = Mutex<[VerifyProblem]>([])
    private let callbackError = Mutex<(any Error)?>(nil)
    private let seen = Mutex<Set<ObjectName>>([])
    private let count = Atomic<Int>(0)
    /// Chunk lists the grant releases, with the chunks each item's objects list behind it (SHARING.md section 4).
    private let chunkListChecks = Mutex<[ObjectName: [(item: ItemID, chunks: [ObjectName])]]>([:])

    init(deliver: (@Sendable (ObjectName, [UInt8]) async throws -> Void)?) {
        self.deliver = deliver
    }

    /// Sets the chunk lists to check (from ``BundleVerifier/chunkListLayouts(_:origins:tails:)``).
    func expectChunkLists(_ layouts: [ObjectName: [(item: ItemID, chunks: [ObjectName])]]) {
        chunkListChecks.withLock { $0 = layouts }
    }

    /// Whether the object was already seen (checked as released, once).
    func hasSeen(_ name: ObjectName) -> Bool { seen.withLock { $0.contains(name) } }

    /// Every released object seen so far.
    var seenObjects: Set<ObjectName> { seen.withLock { $0 } }

    /// Objects checked so far.
    var checked: Int { count.load(ordering: .relaxed) }

    /// The first error the delivery closure threw.
    var deliveryError: (any Error)? { callbackError.withLock { $0 } }

    /// The problems found, in object order.
    var sortedProblems: [VerifyProblem] {
        problems.withLock { $0 }.sorted { ($0.object ?? "") < ($1.object ?? "") }
    }

    /// Checks one object: released, once, of its size, hashing to its name; then every chunk list check that
    /// concerns it; then delivers it.
    func admit(_ claimed: ObjectName, _ bytes: [UInt8], released: [ObjectName: Int64]) async {
        count.wrappingAdd(1, ordering: .relaxed)
        func fail(_ kind: VerifyProblem.Kind, _ detail: String) {
            problems.withLock { $0.append(VerifyProblem(kind: kind, object: claimed.hex, detail: detail)) }
        }
        guard let size = released[claimed] else {
            return fail(.objectUnreferenced, "the bundle holds an object the grant does not release")
        }
        guard seen.withLock({ $0.insert(claimed).inserted }) else {
            return fail(.objectDuplicate, "the object appears twice")
        }
        guard Int64(bytes.count) == size else {
            return fail(.objectCorrupt, "the object is \(bytes.count) bytes, the grant says \(size)")
        }
        guard ObjectName(of: bytes) == claimed else {
            return fail(.objectCorrupt, "the object's bytes do not hash to its name")
        }
        checkChunkList(claimed, bytes)
        do {
            try await deliver?(claimed, bytes)
        } catch {
            callbackError.withLock { $0 = $0 ?? error }
        }
    }

    /// Every item that names this chunk list (identical files share one) is checked against it.
    private func checkChunkList(_ claimed: ObjectName, _ bytes: [UInt8]) {
        for check in chunkListChecks.withLock({ $0[claimed] ?? [] }) {
            var distinctNames = Set<ObjectName>()
            let distinct = decodeChunkList(bytes)?.map(\.name).filter { distinctNames.insert($0).inserted }
            if distinct != check.chunks {
                problems.withLock {
                    $0.append(
                        VerifyProblem(
                            kind: .scopeMismatch,
                            object: claimed.hex,
                            item: check.item.hex,
                            detail: "the item's released chunks are not its chunk list's distinct chunks in order"
                        )
                    )
                }
            }
        }
    }
}
