import CustodyCrypto
import Dispatch
import Foundation
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// What `migrate-objects` did.
package struct ObjectMigration: Sendable {
    /// The target, `s3://bucket/prefix`.
    package var target: String
    /// Objects the journal names (all of them are on the target afterwards).
    package var objects = 0
    /// Objects uploaded in this run.
    package var uploaded = 0
    /// Objects already on the target (from an interrupted earlier run), verified and kept.
    package var alreadyThere = 0
    /// Bytes uploaded in this run.
    package var bytes: Int64 = 0
    /// Where the local objects were moved once the archive switched over.
    package var localCopies: String
}

extension ArchiveContext {
    /// Copies every object the journal names to an S3 bucket, verifies each copy by reading it back and
    /// re-hashing it, and only then switches the archive over (`objects.json`); the local `objects/` folder is
    /// kept, renamed `objects-before-s3/`, for the operator to delete once satisfied.
    ///
    /// Resumable: a run that is stopped leaves the archive on its local objects, and the next run uploads only
    /// what the bucket lacks (re-verifying what is there). Runs alone (open the archive exclusively).
    ///
    /// - Throws: ``ArchiveError``: usage when the objects are already on S3; damaged when the journal or a local
    ///   object does not verify (nothing is switched); not found / not authorised for the bucket; temporary
    ///   when the store fails. The archive keeps using its local objects in every case.
    package func migrateObjects(
        to settings: S3Settings,
        progress: (@Sendable (Int, Int, Int64) -> Void)? = nil
    ) throws -> ObjectMigration {
        guard let local = store as? FileObjectStore else {
            throw ArchiveError(
                .usage,
                "this archive's objects are already on S3",
                fix: "migrate-objects copies from the local objects/ folder only"
            )
        }
        let client = try S3Client(settings: settings)
        try client.checkBucket()
        let target = S3ObjectStore(client: client)
        let map = try referenceMap()
        if let problem = map.problems.first {
            throw ArchiveError(
                .damaged,
                "the journal does not verify (\(problem.detail)); nothing was copied",
                fix: "run custody verify and repair the archive first"
            )
        }
        let names = map.sizes.sorted { $0.key < $1.key }
        var report = ObjectMigration(target: settings.url, localCopies: root + "/objects-before-s3")
        report.objects = names.count
        let counts = Mutex((uploaded: 0, already: 0, bytes: Int64(0), done: 0))
        let failure = Mutex<ArchiveError?>(nil)
        let workers = 16
        BlockingWork.run(workers: workers) { worker in
            var index = worker
            while index < names.count, failure.withLock({ $0 }) == nil {
                let (name, size) = names[index]
                index += workers
                do {
                    let uploaded = try Self.copy(name, size: size, from: local, to: target)
                    CrashPoint.hit("migrate-object-copied")
                    let done = counts.withLock { counts -> (Int, Int64) in
                        if uploaded {
                            counts.uploaded += 1
                            counts.bytes += size
                        } else {
                            counts.already += 1
                        }
                        counts.done += 1
                        return (counts.done, counts.bytes)
                    }
                    progress?(done.0, names.count, done.1)
                } catch let error as ArchiveError {
                    failure.withLock { $0 = $0 ?? error }
                } catch {
                    failure.withLock { $0 = $0 ?? ArchiveError(.temporary, "\(error)", fix: "run it again") }
                }
            }
        }
        if let error = failure.withLock({ $0 }) { throw error }
        let done = counts.withLock { $0 }
        report.uploaded = done.uploaded
        report.alreadyThere = done.already
        report.bytes = done.bytes
        // Every object is on the target and verified: switch over, atomically.
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .prettyPrinted, .withoutEscapingSlashes]
        try POSIX.writeFileAtomically(Archive.objectsPath(root), Array(encoder.encode(settings)) + [0x0A], mode: 0o644)
        _ = POSIX.syncDirectory(root)
        if rename(root + "/objects", report.localCopies) != 0 {
            report.localCopies = root + "/objects"
        }
        return report
    }

    /// Copies one object unless the target has it; reads the copy back and re-hashes it either way.
    ///
    /// - Returns: Whether it was uploaded now.
    fileprivate static func copy(
        _ name: ObjectName,
        size: Int64,
        from local: FileObjectStore,
        to target: S3ObjectStore
    ) throws -> Bool {
        var uploaded = false
        if try target.size(of: name) != size {
            guard let bytes = try local.read(name, limit: Int(size) + 1), Int64(bytes.count) == size,
                ObjectName(of: bytes) == name
            else {
                throw ArchiveError(
                    .damaged,
                    "the local object \(name) is missing or damaged; nothing was switched",
                    fix: "run custody verify, and restore the object from a backup first"
                )
            }
            if try !target.put(bytes, as: name) {
                // Present after all (412), yet the size differed: a wrong object under this name.
                throw ArchiveError(
                    .damaged,
                    "the bucket holds an object named \(name) with other content",
                    fix: "remove s3 key \(target.client.key(name.hex)) after checking it, then run again"
                )
            }
            uploaded = true
        }
        guard let copy = try target.read(name, limit: Int(size) + 1), ObjectName(of: copy) == name else {
            throw ArchiveError(
                .damaged,
                "the copy of object \(name) on S3 does not read back intact; nothing was switched",
                fix: "check the store, then run migrate-objects again"
            )
        }
        return uploaded
    }
}
