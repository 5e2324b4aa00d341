import CustodyStorage
import Synchronization
import Testing

/// The paged listing: every object of every page once, in order, with empty pages skipped and one page held.
struct ObjectListingTests {
    @Test func emptyPagesAreWalkedPastAndTheLastPageEndsTheListing() async throws {
        let objects = (0..<5).map { StoredObject(name: ObjectName(of: [UInt8($0)]), size: Int64($0)) }
        // An S3 page can hold only keys that are not objects: empty, yet not the last.
        let pages: [String?: ObjectListing.Page] = [
            nil: .init(objects: [], next: "1"),
            "1": .init(objects: [objects[0]], next: "2"),
            "2": .init(objects: [], next: "3"),
            "3": .init(objects: Array(objects[1...3]), next: "4"),
            "4": .init(objects: [objects[4]], next: nil),
        ]
        let asked = Mutex<[String?]>([])
        let listing = ObjectListing { cursor in
            asked.withLock { $0.append(cursor) }
            return try #require(pages[cursor])
        }
        var seen: [StoredObject] = []
        for try await object in listing { seen.append(object) }
        #expect(seen == objects)
        #expect(asked.withLock { $0 } == [nil, "1", "2", "3", "4"])
    }

    @Test func aListingWithNothingAsksOnce() async throws {
        let asked = Atomic<Int>(0)
        let listing = ObjectListing { _ in
            asked.wrappingAdd(1, ordering: .relaxed)
            return .init(objects: [], next: nil)
        }
        var count = 0
        for try await _ in listing { count += 1 }
        #expect(count == 0)
        let calls = asked.load(ordering: .relaxed)
        #expect(calls == 1)
    }

    @Test func aFailingPageIsThrownToTheListener() async throws {
        let listing = ObjectListing { cursor in
            guard cursor == nil else { throw StorageError(.badInput, "a malformed listing", fix: "check the store") }
            return .init(objects: [StoredObject(name: ObjectName(of: [1]), size: 1)], next: "next")
        }
        var seen = 0
        let error = await #expect(throws: StorageError.self) {
            for try await _ in listing { seen += 1 }
        }
        #expect(error?.reason == .badInput)
        #expect(seen == 1)
    }
}
