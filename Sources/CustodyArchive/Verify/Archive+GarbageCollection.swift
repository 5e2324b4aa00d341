import CustodyCrypto
import CustodyStorage
import Foundation
import Synchronization

extension Archive {

    /// The outcome of `gc`.
    package struct CollectionReport: Sendable {
        /// Orphan objects removed (or that would be, with `dryRun`).
        package var objects: [String] = []
        /// Bytes they held.
        package var bytes: Int64 = 0
        /// Leftover temporary files removed.
        package var temporaryFiles = 0
        /// Links and special files found in the object store, left alone (never followed or removed).
        package var strays: [StrayEntry] = []
    }
}

extension ArchiveContext {
    /// Every object the journal names, with the size it records, sorted by name: what a copy of the store
    /// (`migrate-objects`) must hold.
    ///
    /// - Throws: ``ArchiveError`` (damaged) when the journal does not verify: then nothing should be copied.
    package func referencedObjects() async throws -> [StoredObject] {
        let map = try await referenceMap()
        if let problem = map.problems.first {
            throw ArchiveError(
                .damaged,
                "the journal does not verify (\(problem.detail)); nothing was copied",
                fix: "run custody verify and repair the archive first"
            )
        }
        return map.sizes.sorted { $0.key < $1.key }.map { StoredObject(name: $0.key, size: $0.value) }
    }

    /// Removes objects that no journal event names, and leftover temporary files. Needs exclusive access.
    ///
    /// - Throws: ``ArchiveError`` (damaged) when the journal cannot be read in full: then nothing is removed.
    package func collectGarbage(dryRun: Bool) async throws -> Archive.CollectionReport {
        var map = try await referenceMap()
        if case .torn = map.tail {
            // A torn tail is an append that never completed: set it aside first, as the next write would.
            try journal.repairTornTail()
            map = try await referenceMap()
        }
        guard map.problems.isEmpty, map.tail == .clean else {
            throw ArchiveError(
                .damaged,
                "the journal has problems, so no object is provably unused",
                fix: "run custody verify first"
            )
        }
        var report = Archive.CollectionReport()
        var orphans: [(ObjectName, Int64)] = []
        do {
            for try await object in store.objects() where map.sizes[object.name] == nil {
                orphans.append((object.name, object.size))
            }
        } catch {
            throw ArchiveError(error)
        }
        for (name, size) in orphans.sorted(by: { $0.0 < $1.0 }) {
            if !dryRun { try await store.remove(name) }
            report.objects.append(name.hex)
            report.bytes += size
        }
        let maintenance = try await store.maintenanceReport()
        for leftover in maintenance.leftovers {
            if !dryRun { try await store.removeLeftover(leftover) }
            report.temporaryFiles += 1
        }
        report.strays = maintenance.strays
        return report
    }
}
