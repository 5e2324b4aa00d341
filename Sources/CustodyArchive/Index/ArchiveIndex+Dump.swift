import CustodyCrypto
import GRDB

/// One value as SQLite stores it, for comparing two indexes row by row.
enum StoredValue: Hashable, Sendable, CustomStringConvertible {
    case null
    case integer(Int64)
    case real(Double)
    case text(String)
    case blob([UInt8])

    init(_ value: DatabaseValue) {
        switch value.storage {
        case .null: self = .null
        case .int64(let integer): self = .integer(integer)
        case .double(let real): self = .real(real)
        case .string(let text): self = .text(text)
        case .blob(let data): self = .blob(Array(data))
        }
    }

    /// The value as text, when it is text.
    var text: String? {
        if case .text(let text) = self { return text }
        return nil
    }

    var description: String {
        switch self {
        case .null: "NULL"
        case .integer(let integer): String(integer)
        case .real(let real): String(real)
        case .text(let text): String(reflecting: text)
        case .blob(let bytes): "x'\(Encoding.hex(bytes))'"
        }
    }
}

extension ArchiveIndex {
    /// One row: column name → stored value.
    typealias StoredRow = [String: StoredValue]

    /// Every row of every table by table name, rows in a canonical order (sorted by their values).
    ///
    /// Two indexes of the same journal have equal dumps: the order rows were inserted in, and the FTS table's hidden
    /// rowid, are left out. For tests and diagnostics; it reads the whole index into memory.
    func dump() throws -> [String: [StoredRow]] {
        try read { db in
            var tables: [String: [StoredRow]] = [:]
            for table in IndexSchema.tables {
                let rows = try Row.fetchAll(db, sql: "SELECT * FROM \(table.quotedDatabaseIdentifier)").map { row in
                    StoredRow(uniqueKeysWithValues: row.columnNames.map { ($0, StoredValue(row[$0])) })
                }
                tables[table] = rows.sorted { Self.sortKey($0) < Self.sortKey($1) }
            }
            return tables
        }
    }

    private static func sortKey(_ row: StoredRow) -> String {
        row.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: "\u{1}")
    }
}
