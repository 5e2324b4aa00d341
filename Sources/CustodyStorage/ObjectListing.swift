/// Every committed object of a store, as an `AsyncSequence` fetched a page at a time.
///
/// Each store says what a page is (a shard folder; up to 1000 keys of an S3 listing) and what the cursor to
/// the next one is (a shard number; a continuation token). Memory holds one page, however large the store.
///
/// ```swift
/// for try await object in store.objects() { sizes[object.name] = object.size }
/// ```
package struct ObjectListing: AsyncSequence, Sendable {
    package typealias Element = StoredObject

    /// One page: its objects, and the cursor of the next page (`nil` after the last).
    package struct Page: Sendable {
        /// The objects of this page.
        package var objects: [StoredObject]
        /// Where the next page starts, or `nil` when this was the last.
        package var next: String?

        /// Creates a page.
        package init(objects: [StoredObject], next: String?) {
            self.objects = objects
            self.next = next
        }
    }

    /// Fetches the page at a cursor (`nil`: the first page).
    package typealias PageFetcher = @Sendable (_ cursor: String?) async throws -> Page

    private let fetch: PageFetcher

    /// A listing whose pages `fetch` reads.
    package init(_ fetch: @escaping PageFetcher) { self.fetch = fetch }

    package func makeAsyncIterator() -> AsyncIterator { AsyncIterator(fetch: fetch) }

    /// Walks the pages in order, fetching the next one when the current one is used up.
    package struct AsyncIterator: AsyncIteratorProtocol {
        private let fetch: PageFetcher
        private var page: [StoredObject] = []
        private var position = 0
        private var cursor: String?
        private var started = false

        init(fetch: @escaping PageFetcher) { self.fetch = fetch }

        package mutating func next() async throws -> StoredObject? {
            while position == page.count {
                if started && cursor == nil { return nil }
                let fetched = try await fetch(cursor)
                started = true
                cursor = fetched.next
                page = fetched.objects
                position = 0
            }
            defer { position += 1 }
            return page[position]
        }
    }
}
