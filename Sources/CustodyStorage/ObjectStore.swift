import Synchronization

/// Where encrypted objects live. Objects are immutable and named by the hash of their bytes.
///
/// Writes are two-phase, so that many objects share one flush and nothing becomes visible before it is
/// durable: ``stage(_:as:checkExisting:)`` writes an object where only its writer sees it, and
/// ``commit(_:)`` makes a batch durable and then visible under its names (``discard(_:)`` drops it). How a
/// store stages is its own business: the filesystem store writes temporary files and renames them; S3 has no
/// rename and uploads under the final name at once. A staged object is readable through the store value that
/// staged it (an import checks what it received while the store is still flushing it), never through
/// ``contains(_:)``, ``size(of:)`` or ``objects()``, which see committed objects only.
///
/// Every method is `async` and none blocks a thread of the Swift concurrency pool: network stores await
/// their I/O; the filesystem store runs its system calls on a `NIOThreadPool`.
///
/// ## Topics
/// - Writing: ``stage(_:as:checkExisting:)``, ``commit(_:)``, ``discard(_:)``, ``put(_:as:)``
/// - Reading: ``read(_:limit:)``, ``read(_:range:)``, ``size(of:)``, ``contains(_:)``, ``objects()``
/// - Maintenance: ``remove(_:)``, ``maintenanceReport()``, ``removeLeftover(_:)``
/// - Capabilities: ``readConcurrency``, ``prefersBatchedReads``
package protocol ObjectStore: Sendable {
    /// How many reads it pays to have in flight at once: about the processor count for a local disk, more for
    /// a network store, whose throughput is bound by each request's latency rather than by bandwidth.
    var readConcurrency: Int { get }

    /// Whether reading ahead of a sequential consumer pays (a network store: each read is a round trip), so
    /// an item's chunks are fetched a window at a time (``ObjectStore/readInOrder(_:limit:window:_:)``).
    var prefersBatchedReads: Bool { get }

    /// Whether a committed object of that name is present.
    ///
    /// - Throws: ``StorageError``.
    func contains(_ name: ObjectName) async throws -> Bool

    /// Writes `bytes` where only this store value sees them, to be committed or discarded later.
    ///
    /// - Parameters:
    ///   - bytes: The object's bytes.
    ///   - name: Their BLAKE2b-256 name.
    ///   - checkExisting: `false` for objects that cannot already exist (random-keyed sealed parts), so the
    ///     store need not look.
    /// - Returns: The staged object, or `nil` when the object is already stored (deduplicated).
    /// - Throws: ``StorageError`` when the write fails (a full disk, a store that keeps failing).
    func stage(_ bytes: [UInt8], as name: ObjectName, checkExisting: Bool) async throws -> StagedObject?

    /// Stages several objects at once, as ``stage(_:as:checkExisting:)`` stages each (for the few objects of
    /// one small item: a local store writes them in one piece of blocking work).
    ///
    /// - Returns: Each object's staging, in order, `nil` for those already stored.
    /// - Throws: ``StorageError``; objects staged before the failure stay staged (the caller discards them).
    func stage(_ writes: [ObjectWrite]) async throws -> [StagedObject?]

    /// Makes `objects` durable, then visible under their names: when it returns, a crash loses none of them.
    ///
    /// - Throws: ``StorageError``; then none of `objects` may be relied on (some may be visible: orphans,
    ///   which are harmless ciphertext that `gc` removes).
    func commit(_ objects: [StagedObject]) async throws

    /// Drops staged objects that will not be committed (what cannot be dropped is left for `gc`).
    func discard(_ objects: [StagedObject]) async

    /// Reads an object (a staged one of this store value too), refusing one larger than `limit` bytes.
    ///
    /// - Returns: The bytes, or `nil` when the object is absent.
    /// - Throws: ``StorageError``: damaged when the object is larger than `limit` or not a plain object.
    func read(_ name: ObjectName, limit: Int) async throws -> [UInt8]?

    /// Reads bytes `range` of an object (fewer when it ends sooner).
    ///
    /// - Returns: The bytes, or `nil` when the object is absent.
    /// - Throws: ``StorageError``.
    func read(_ name: ObjectName, range: ClosedRange<Int64>) async throws -> [UInt8]?

    /// The stored size of a committed object, or `nil` when it is absent.
    ///
    /// - Throws: ``StorageError``.
    func size(of name: ObjectName) async throws -> Int64?

    /// Every committed object with its size, a page at a time (in no promised order).
    func objects() -> ObjectListing

    /// Removes a committed object; an absent one is fine.
    ///
    /// - Throws: ``StorageError``.
    func remove(_ name: ObjectName) async throws

    /// What interrupted writes left behind, and what the store found that it never touches.
    ///
    /// - Throws: ``StorageError``.
    func maintenanceReport() async throws -> MaintenanceReport

    /// Removes one leftover that ``maintenanceReport()`` found; anything else is ignored.
    ///
    /// - Throws: ``StorageError``.
    func removeLeftover(_ leftover: Leftover) async throws
}

/// An object a store has written but not yet made visible: phase one of a write.
///
/// Opaque to callers: only the store that issued it knows what it stands for (a temporary file, an upload in
/// flight). Each staging gets a new ``ticket``, so two stagings of the same name are told apart.
package struct StagedObject: Sendable, Hashable {
    /// The object's final name.
    package let name: ObjectName
    /// Unique in the process; meaningful only to the store that issued it.
    package let ticket: UInt64

    /// A new staging of `name` (for ``ObjectStore`` implementations).
    package init(name: ObjectName) {
        self.name = name
        ticket = StagingTicket.next()
    }
}

/// One object to stage (``ObjectStore/stage(_:)``).
package struct ObjectWrite: Sendable {
    /// Its bytes.
    package var bytes: [UInt8]
    /// Their BLAKE2b-256 name.
    package var name: ObjectName
    /// Whether the store should look for it first (see ``ObjectStore/stage(_:as:checkExisting:)``).
    package var checkExisting: Bool

    /// Describes a write.
    package init(_ bytes: [UInt8], as name: ObjectName, checkExisting: Bool) {
        self.bytes = bytes
        self.name = name
        self.checkExisting = checkExisting
    }
}

/// A committed object as a listing shows it.
package struct StoredObject: Sendable, Hashable {
    /// Its name.
    package var name: ObjectName
    /// Its stored size in bytes.
    package var size: Int64

    /// Creates a listing entry.
    package init(name: ObjectName, size: Int64) {
        self.name = name
        self.size = size
    }
}

/// What ``ObjectStore/maintenanceReport()`` found.
package struct MaintenanceReport: Sendable, Equatable {
    /// Pieces of interrupted writes (temporary files, unfinished multipart uploads), sorted: never part of an
    /// object, removable with ``ObjectStore/removeLeftover(_:)``.
    package var leftovers: [Leftover]
    /// Entries where objects could be that the store never follows, reads or removes (a planted link, a
    /// pipe or device): reported by `verify` and `gc`, for a person to look at.
    package var strays: [StrayEntry]

    /// Creates a report.
    package init(leftovers: [Leftover] = [], strays: [StrayEntry] = []) {
        self.leftovers = leftovers
        self.strays = strays
    }
}

/// A piece of an interrupted write, as the store that found it names it.
///
/// The ``id`` is opaque to callers, shown to people as it is (`ab/.tmp-<64 hex>.<pid>.<n>` in a folder,
/// `multipart/<upload id>/<key>` on S3), and checked again by the store before it removes anything.
package struct Leftover: Sendable, Hashable, Comparable, CustomStringConvertible {
    /// The store's name for it.
    package let id: String

    /// Wraps a store's name for a leftover.
    package init(id: String) { self.id = id }

    package var description: String { id }
    package static func < (lhs: Leftover, rhs: Leftover) -> Bool { lhs.id < rhs.id }
}

/// Something found in the object store that custody leaves alone and reports: a symbolic link, or a pipe,
/// device or socket, where an object, a shard folder or a temporary file could be. It is never followed,
/// read or removed.
package struct StrayEntry: Sendable, Equatable, CustomStringConvertible {
    /// Its path relative to the store (`objects/`).
    package var path: String
    /// What it is: `symbolic link`, or `pipe, device or socket`.
    package var kind: String

    /// Creates an entry.
    package init(path: String, kind: String) {
        self.path = path
        self.kind = kind
    }

    package var description: String { "objects/\(path) is a \(kind)" }
}

extension ObjectStore {
    /// Stages each write in turn (a store whose staging is cheap per object, such as S3's upload pipeline).
    package func stage(_ writes: [ObjectWrite]) async throws -> [StagedObject?] {
        var staged: [StagedObject?] = []
        for write in writes {
            staged.append(try await stage(write.bytes, as: write.name, checkExisting: write.checkExisting))
        }
        return staged
    }

    /// Writes one object and makes it durable and visible (stage, then commit): for single writes (a grant,
    /// an annotation, a notice). An object already stored is left as it is.
    ///
    /// - Throws: ``StorageError``.
    package func put(_ bytes: [UInt8], as name: ObjectName) async throws {
        guard let staged = try await stage(bytes, as: name, checkExisting: true) else { return }
        do {
            try await commit([staged])
        } catch {
            await discard([staged])
            throw error
        }
    }

    /// Every committed object's size, by name (one pass over ``objects()``).
    ///
    /// - Throws: ``StorageError``.
    package func allObjects() async throws -> [ObjectName: Int64] {
        var found: [ObjectName: Int64] = [:]
        for try await object in objects() { found[object.name] = object.size }
        return found
    }
}

/// Process-unique staging tickets (a counter; no randomness needed).
package enum StagingTicket {
    private static let counter = Atomic<UInt64>(0)

    /// The next ticket.
    package static func next() -> UInt64 { counter.wrappingAdd(1, ordering: .relaxed).newValue }
}
