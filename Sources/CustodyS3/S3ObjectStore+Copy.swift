import CustodyStorage
import Synchronization

/// What ``S3ObjectStore/copy(_:from:width:progress:)`` did.
package struct ObjectCopyReport: Sendable, Equatable {
    /// Objects uploaded in this run.
    package var uploaded = 0
    /// Objects already in the bucket (from an interrupted earlier run), verified and kept.
    package var alreadyThere = 0
    /// Bytes uploaded in this run.
    package var bytes: Int64 = 0

    /// Creates a report.
    package init(uploaded: Int = 0, alreadyThere: Int = 0, bytes: Int64 = 0) {
        self.uploaded = uploaded
        self.alreadyThere = alreadyThere
        self.bytes = bytes
    }
}

extension S3ObjectStore {
    /// Copies `objects` from `source` into the bucket, each unless the bucket has it at that size, and reads
    /// every copy back and re-hashes it either way (`migrate-objects`).
    ///
    /// Resumable: what an interrupted run uploaded is found at its size, verified and kept. `width` copies are
    /// in flight at once (a task group); the first failure stops the rest and is thrown.
    ///
    /// - Parameters:
    ///   - objects: The objects to copy, with the sizes the journal records.
    ///   - source: Where they are now (the archive's `objects/` folder).
    ///   - width: Copies in flight at once.
    ///   - progress: Called after each object with (done, total, bytes uploaded so far).
    /// - Returns: What was uploaded and what was there already.
    /// - Throws: ``StorageError``: damaged when a local object is missing or does not hash to its name, when
    ///   the bucket holds other content under a name, or when a copy does not read back intact; the store's
    ///   errors otherwise.
    package func copy(
        _ objects: [StoredObject],
        from source: any ObjectStore,
        width: Int = 16,
        progress: (@Sendable (Int, Int, Int64) -> Void)? = nil
    ) async throws -> ObjectCopyReport {
        let report = Mutex(ObjectCopyReport())
        let done = Atomic<Int>(0)
        try await objects.concurrentForEach(width: width) { object in
            let uploaded = try await copyOne(object, from: source)
            CrashPoint.hit("migrate-object-copied")
            let bytes = report.withLock { report -> Int64 in
                if uploaded {
                    report.uploaded += 1
                    report.bytes += object.size
                } else {
                    report.alreadyThere += 1
                }
                return report.bytes
            }
            progress?(done.wrappingAdd(1, ordering: .relaxed).newValue, objects.count, bytes)
        }
        return report.withLock { $0 }
    }

    /// Copies one object unless the bucket has it at its size; reads the copy back and re-hashes it.
    ///
    /// - Returns: Whether it was uploaded now.
    private func copyOne(_ object: StoredObject, from source: any ObjectStore) async throws -> Bool {
        let (name, size) = (object.name, object.size)
        var uploaded = false
        if try await self.size(of: name) != size {
            guard let bytes = try await source.read(name, limit: Int(size) + 1), Int64(bytes.count) == size,
                ObjectName(of: bytes) == name
            else {
                throw StorageError(
                    .damaged,
                    "the local object \(name) is missing or damaged; nothing was switched",
                    fix: "run custody verify, and restore the object from a backup first"
                )
            }
            if try await !putIfAbsent(bytes, as: name) {
                // Present after all (412), yet the size differed: a wrong object under this name.
                throw StorageError(
                    .damaged,
                    "the bucket holds an object named \(name) with other content",
                    fix: "remove s3 key \(client.key(name.hex)) after checking it, then run again"
                )
            }
            uploaded = true
        }
        guard let copy = try await read(name, limit: Int(size) + 1), ObjectName(of: copy) == name else {
            throw StorageError(
                .damaged,
                "the copy of object \(name) on S3 does not read back intact; nothing was switched",
                fix: "check the store, then run migrate-objects again"
            )
        }
        return uploaded
    }
}
