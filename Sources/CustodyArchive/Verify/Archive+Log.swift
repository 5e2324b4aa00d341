import CustodyCrypto
import CustodyStorage
import Foundation
import Synchronization

extension ArchiveContext {
    /// Every object an item uses, in the order its ingest event names them (meta, content, chunks).
    package func objectNames(of id: String) async throws -> [ObjectName] {
        let event = try await ingestEvent(of: resolveItem(id))
        var list: [ObjectRef] = []
        if let ref = event.objects?.chunkList, let bytes = try await store.read(ref.name, limit: 64 << 20) {
            list = decodeChunkList(bytes) ?? []
        }
        return event.namedObjects(chunkList: list).map(\.name)
    }
}

extension Archive {
    /// One entry of the custody log, for `custody log`.
    package struct LogEntry: Sendable {
        /// Zero-based position in the log.
        package var index: Int
        /// The signed event.
        package var event: Event
        /// The exact leaf bytes.
        package var bytes: [UInt8]
    }
}

extension ArchiveContext {

    /// Calls `body` for log entries `from..<from+limit`, each with its signature checked.
    ///
    /// - Parameters:
    ///   - from: The first index.
    ///   - limit: How many entries at most.
    ///   - body: Receives each entry in order.
    /// - Throws: ``ArchiveError`` (damaged) at the first entry that is not a validly signed event.
    package func forEachLogEntry(from: Int = 0, limit: Int = .max, _ body: (Archive.LogEntry) throws -> Void) throws {
        var seen = 0
        let (end, tail) = try journal.scan(from: .start) { entry in
            guard entry.index >= from, seen < limit else { return }
            seen += 1
            do {
                try body(
                    Archive.LogEntry(
                        index: entry.index,
                        event: try Event.parse(entry.bytes, publicKey: signingPublicKey),
                        bytes: entry.bytes
                    )
                )
            } catch let error as ArchiveError where error.code == .damaged {
                throw ArchiveError(.damaged, "log entry \(entry.index): \(error.problem)", fix: error.fix)
            }
        }
        if case .damaged(let offset) = tail, seen < limit {
            throw ArchiveError(
                .damaged,
                "the log is damaged at entry \(end.count) (byte \(offset)); later entries cannot be read",
                fix: "run custody verify"
            )
        }
    }
}
