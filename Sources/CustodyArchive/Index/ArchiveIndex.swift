import CustodyStorage
import Foundation
import GRDB

#if canImport(Glibc)
import Glibc
#endif

/// The SQLite index (`index.sqlite`, WAL, FTS5): derived from journal + objects, rebuildable with `reindex`.
///
/// It holds plaintext metadata, so it belongs on an encrypted disk (Docs/THREAT-MODEL.md).
///
/// ## Topics
/// - The schema: IndexSchema.swift; its rows as GRDB records: IndexRecords.swift.
/// - Reading: ArchiveIndex+Queries.swift; full-text search: ArchiveIndex+Search.swift.
/// - Writing: ``IndexBatch`` (IndexBatch.swift), applied in one transaction.
package final class ArchiveIndex: Sendable {
    private let pool: any DatabaseWriter
    /// The database file.
    let path: String

    /// Opens (creating and migrating) the index.
    ///
    /// - Throws: ``ArchiveError`` (damaged) when the file is not a valid index.
    init(path: String) throws {
        self.path = path
        var config = Configuration()
        config.busyMode = .timeout(60)
        config.label = "custody.index"
        do {
            pool = try DatabasePool(path: path, configuration: config)
            try IndexSchema.migrator.migrate(pool)
            // The index holds plaintext metadata: owner-only, whatever the umask.
            for suffix in ["", "-wal", "-shm"] { chmod(path + suffix, 0o600) }
        } catch {
            throw Self.mapped(error)
        }
    }

    /// Opens the index to read it without writing a byte of the folder: SQLite's `immutable` URI parameter (no
    /// lock, no `-wal` or `-shm` file made, nothing migrated), for a dry run. A write through it fails.
    ///
    /// The file is read as it is on disk: a WAL file another command is writing is not seen.
    ///
    /// - Throws: ``ArchiveError`` when it cannot be opened (it does not exist, or is not an index).
    init(immutableAt path: String) throws {
        self.path = path
        var config = Configuration()
        config.readonly = true
        config.label = "custody.index.immutable"
        // RFC 3986 percent-encoding of everything but unreserved characters and `/`, as SQLite's URI filenames
        // require (a `?`, `#` or `%` in the path must not end it).
        var encoded = ""
        for byte in path.utf8 {
            switch byte {
            case 0x41...0x5A, 0x61...0x7A, 0x30...0x39, 0x2D, 0x2E, 0x5F, 0x7E, 0x2F:
                encoded.unicodeScalars.append(Unicode.Scalar(byte))
            default:
                encoded += "%" + (byte < 16 ? "0" : "") + String(byte, radix: 16, uppercase: true)
            }
        }
        do {
            pool = try DatabaseQueue(path: "file:\(encoded)?immutable=1", configuration: config)
        } catch {
            throw Self.mapped(error)
        }
    }

    /// Runs `body` in a read transaction; every failure becomes an ``ArchiveError``.
    func read<T>(_ body: (Database) throws -> T) throws -> T {
        do {
            return try pool.read(body)
        } catch {
            throw Self.mapped(error)
        }
    }

    /// Runs `body` in a write transaction; every failure becomes an ``ArchiveError`` and nothing is written.
    func write<T>(_ body: (Database) throws -> T) throws -> T {
        do {
            return try pool.write(body)
        } catch {
            throw Self.mapped(error)
        }
    }

    /// The ``ArchiveError`` for a failure of the index: what the user can do about it.
    static func mapped(_ error: any Error) -> ArchiveError {
        if let error = error as? ArchiveError { return error }
        if error is DecodingError || error is RowDecodingError {
            return ArchiveError(.damaged, "the index holds an unreadable row", fix: "run custody reindex")
        }
        if let db = error as? DatabaseError {
            switch db.resultCode {
            case .SQLITE_CORRUPT, .SQLITE_NOTADB:
                return ArchiveError(.indexDamaged, "the index (index.sqlite) is corrupt", fix: "run custody reindex")
            case .SQLITE_FULL:
                return ArchiveError(
                    .noSpace,
                    "the index: no space left on device",
                    fix: "free disk space and retry"
                )
            case .SQLITE_BUSY, .SQLITE_LOCKED:
                return ArchiveError(
                    .busy,
                    "the index is busy",
                    fix: "wait for the other custody command and retry"
                )
            case .SQLITE_READONLY, .SQLITE_CANTOPEN, .SQLITE_PERM:
                return ArchiveError(
                    .cannotCreate,
                    "cannot open the index for writing",
                    fix: "check the archive folder's permissions"
                )
            default:
                return ArchiveError(.damaged, "the index failed (\(db.resultCode))", fix: "run custody reindex")
            }
        }
        return ArchiveError(.damaged, "the index failed", fix: "run custody reindex")
    }

    /// The journal position up to which the index is complete.
    func position() throws -> JournalPosition {
        try read { db in try Self.position(in: db) }
    }

    /// The roster as of ``position()``; `nil` before the first roster event.
    func roster() throws -> Roster? {
        try read { db in try RosterRecord.fetchOne(db, key: 1)?.roster }
    }

    /// The journal position recorded in `db`.
    static func position(in db: Database) throws -> JournalPosition {
        let count = try StateRecord.fetchOne(db, key: StateRecord.journalCount)?.value ?? 0
        let offset = try StateRecord.fetchOne(db, key: StateRecord.journalOffset)?.value ?? 0
        return JournalPosition(count: Int(count), offset: offset)
    }
}
