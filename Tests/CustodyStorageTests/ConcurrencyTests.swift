import CustodyStorage
import Synchronization
import Testing

/// An in-memory store that counts the reads in flight, for the bounded-width helpers.
final class CountingStore: ObjectStore {
    let contents = Mutex<[ObjectName: [UInt8]]>([:])
    let inFlight = Mutex((now: 0, most: 0))

    var readConcurrency: Int { 4 }
    var prefersBatchedReads: Bool { true }

    init(_ contents: [[UInt8]]) {
        self.contents.withLock { map in for bytes in contents { map[ObjectName(of: bytes)] = bytes } }
    }

    func read(_ name: ObjectName, limit: Int) async throws -> [UInt8]? {
        inFlight.withLock {
            $0.now += 1
            $0.most = max($0.most, $0.now)
        }
        defer { inFlight.withLock { $0.now -= 1 } }
        // Let the other reads of the window start before this one ends.
        for _ in 0..<10 { await Task.yield() }
        let bytes = contents.withLock { $0[name] }
        if let bytes, bytes.count > limit { throw StorageError(.damaged, "too large", fix: "none") }
        return bytes
    }

    func contains(_ name: ObjectName) async throws -> Bool { contents.withLock { $0[name] != nil } }
    func stage(_ bytes: [UInt8], as name: ObjectName, checkExisting: Bool) async throws -> StagedObject? {
        contents.withLock { $0[name] = bytes }
        return StagedObject(name: name)
    }
    func commit(_ objects: [StagedObject]) async throws {}
    func discard(_ objects: [StagedObject]) async {}
    func read(_ name: ObjectName, range: ClosedRange<Int64>) async throws -> [UInt8]? { nil }
    func size(of name: ObjectName) async throws -> Int64? { nil }
    func objects() -> ObjectListing { ObjectListing { _ in .init(objects: [], next: nil) } }
    func remove(_ name: ObjectName) async throws {}
    func maintenanceReport() async throws -> MaintenanceReport { MaintenanceReport() }
    func removeLeftover(_ leftover: Leftover) async throws {}
}

/// The structured-concurrency helpers that replace the thread pools: bounded, ordered, and failing cleanly.
@Suite struct ConcurrencyTests {
    @Test func readsInOrderArriveInOrderWithAtMostAWindowInFlight() async throws {
        let contents = (0..<40).map { randomBytes(10 + $0) }
        let store = CountingStore(contents)
        var names = contents.map { ObjectName(of: $0) }
        let absent = ObjectName(of: randomBytes(5))
        names.insert(absent, at: 7)
        var seen: [Int] = []
        try await store.readInOrder(names, limit: 1000, window: 5) { index, bytes in
            seen.append(index)
            if index == 7 {
                #expect(bytes == nil)
            } else {
                #expect(bytes == contents[index < 7 ? index : index - 1])
            }
        }
        #expect(seen == Array(names.indices))
        #expect(store.inFlight.withLock { $0.most } <= 5)
        #expect(store.inFlight.withLock { $0.now } == 0)
    }

    @Test func aFailingReadStopsTheReadAheadAndIsThrown() async throws {
        let contents = [randomBytes(10), randomBytes(5000), randomBytes(10), randomBytes(10)]
        let store = CountingStore(contents)
        var delivered: [Int] = []
        let error = await #expect(throws: StorageError.self) {
            try await store.readInOrder(contents.map { ObjectName(of: $0) }, limit: 100, window: 2) { index, _ in
                delivered.append(index)
            }
        }
        #expect(error?.reason == .damaged)
        #expect(delivered.allSatisfy { $0 == 0 })  // read 1 may fail before read 0 arrives
        #expect(store.inFlight.withLock { $0.now } == 0)
    }

    @Test func concurrentForEachRunsEveryElementWithinItsWidth() async throws {
        let running = Mutex((now: 0, most: 0, done: Set<Int>()))
        try await Array(0..<50).concurrentForEach(width: 3) { element in
            running.withLock {
                $0.now += 1
                $0.most = max($0.most, $0.now)
            }
            for _ in 0..<5 { await Task.yield() }
            running.withLock {
                $0.now -= 1
                $0.done.insert(element)
            }
        }
        let state = running.withLock { $0 }
        #expect(state.done == Set(0..<50))
        #expect(state.most <= 3)
        #expect(state.now == 0)
    }

    @Test func concurrentForEachThrowsTheFirstFailureAfterTheOthersEnd() async throws {
        struct Refused: Error {}
        let running = Mutex(0)
        await #expect(throws: Refused.self) {
            try await Array(0..<20).concurrentForEach(width: 4) { element in
                running.withLock { $0 += 1 }
                defer { running.withLock { $0 -= 1 } }
                if element == 5 { throw Refused() }
                await Task.yield()
            }
        }
        #expect(running.withLock { $0 } == 0)
    }
}
