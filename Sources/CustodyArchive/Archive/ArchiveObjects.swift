import CustodyStorage
import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// The archive's object store: whichever backend the composition root opened (a folder, a bucket), seen
/// through the ``ObjectStore`` protocol only, with every error as an ``ArchiveError``.
///
/// The one place the archive meets its store: backends throw ``StorageError``, which becomes an
/// ``ArchiveError`` of the same reason here, so the archive's own error handling (a full disk, a damaged
/// object) is the same whatever the backend. Every method throws only ``ArchiveError``; they are declared
/// untyped `async throws` because Swift 6.3's optimiser crashes (LLVM CoroSplit, swifterror) on typed throws
/// in these async functions in a release build.
package struct ArchiveObjects: ObjectStore {
    /// The backend.
    package let backend: any ObjectStore

    /// Wraps `backend`.
    package init(_ backend: any ObjectStore) { self.backend = backend }

    package var readConcurrency: Int { backend.readConcurrency }

    /// How many checks that read objects (verify's re-hashing, deep checks of items) to run at once: the
    /// store's read concurrency, and at least two per processor, so that each read's hop to the store's
    /// thread pool overlaps another check's decryption.
    package var checkConcurrency: Int {
        max(backend.readConcurrency, 2 * max(1, ProcessInfo.processInfo.activeProcessorCount))
    }
    package var prefersBatchedReads: Bool { backend.prefersBatchedReads }

    package func contains(_ name: ObjectName) async throws -> Bool {
        try await mapped { try await backend.contains(name) }
    }

    package func stage(
        _ bytes: [UInt8],
        as name: ObjectName,
        checkExisting: Bool
    ) async throws -> StagedObject? {
        try await mapped { try await backend.stage(bytes, as: name, checkExisting: checkExisting) }
    }

    package func stage(_ writes: [ObjectWrite]) async throws -> [StagedObject?] {
        try await mapped { try await backend.stage(writes) }
    }

    package func commit(_ objects: [StagedObject]) async throws {
        try await mapped { try await backend.commit(objects) }
    }

    package func discard(_ objects: [StagedObject]) async {
        guard !objects.isEmpty else { return }
        await backend.discard(objects)
    }

    package func read(_ name: ObjectName, limit: Int) async throws -> [UInt8]? {
        try await mapped { try await backend.read(name, limit: limit) }
    }

    package func read(_ name: ObjectName, range: ClosedRange<Int64>) async throws -> [UInt8]? {
        try await mapped { try await backend.read(name, range: range) }
    }

    package func size(of name: ObjectName) async throws -> Int64? {
        try await mapped { try await backend.size(of: name) }
    }

    package func objects() -> ObjectListing { backend.objects() }

    package func remove(_ name: ObjectName) async throws {
        try await mapped { try await backend.remove(name) }
    }

    package func maintenanceReport() async throws -> MaintenanceReport {
        try await mapped { try await backend.maintenanceReport() }
    }

    package func removeLeftover(_ leftover: Leftover) async throws {
        try await mapped { try await backend.removeLeftover(leftover) }
    }

    /// Every committed object's size, by name, with archive errors.
    package func allObjectSizes() async throws -> [ObjectName: Int64] {
        try await mapped { try await backend.allObjects() }
    }

    /// Writes one object and makes it durable and visible (``ObjectStore/put(_:as:)``), with archive errors.
    package func putObject(_ bytes: [UInt8], as name: ObjectName) async throws {
        try await mapped { try await backend.put(bytes, as: name) }
    }

    private func mapped<T>(_ body: () async throws -> T) async throws -> T {
        do {
            return try await body()
        } catch {
            throw ArchiveError(error)
        }
    }
}

extension Archive {
    /// Opens the object store of the archive at a root folder: how the composition root (the CLI, which knows
    /// the backends) hands the archive its store.
    package typealias ObjectStoreOpener = @Sendable (_ root: String) throws -> any ObjectStore

    /// The archive's own `objects/` folder: for archives whose objects are local. An archive whose
    /// `objects.json` moves them elsewhere (a bucket) is refused: only the composition root, which knows the
    /// backends, can open it.
    package static let localObjects: ObjectStoreOpener = { root in
        guard POSIX.lstatPath(objectsPath(root)) == nil else {
            throw ArchiveError(
                .usage,
                "the objects of the archive at \(root) are not in its folder (objects.json names their store)",
                fix: "open it with the custody command, which reads objects.json"
            )
        }
        do {
            return try FileObjectStore(root: root + "/objects")
        } catch {
            throw ArchiveError(error)
        }
    }
}
