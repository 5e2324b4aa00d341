import CustodyTestSupport
import Foundation
import Testing

@testable import CustodyArchive

#if canImport(Glibc)
import Glibc
#endif

/// The record types of the bundle format are exactly the table of Docs/SHARING.md section 3: the same type
/// bytes, in the same order, with the same payload limits, and a reader refuses a record one byte over its limit.
@Suite struct BundleRecordKindTests {
    /// A row of the documented table: type letter, count and order, largest payload.
    struct Row {
        var letter: Character
        var count: String
        var limit: Int
    }

    /// The table's rows, in the document's order.
    static func documentedRows() throws -> [Row] {
        let text = try String(contentsOfFile: CLI.packageRoot + "/Docs/SHARING.md", encoding: .utf8)
        let section = try #require(text.range(of: "## 3. The bundle file"))
        var rows: [Row] = []
        for line in text[section.upperBound...].split(separator: "\n") {
            if line.hasPrefix("## ") { break }
            guard line.hasPrefix("| `") else { continue }
            let cells = line.split(separator: "|").map { $0.trimmingCharacters(in: .whitespaces) }
            let letter = try #require(cells.first?.dropFirst().first)
            let limit = try #require(bytes(cells[3]))
            rows.append(Row(letter: letter, count: cells[2], limit: limit))
        }
        return rows
    }

    /// `64 KiB`, `64 MiB`, `256 MiB + 32` as a number of bytes.
    static func bytes(_ text: String) -> Int? {
        let words = text.split(separator: " ")
        guard words.count == 2 || words.count == 4, let number = Int(words[0]) else { return nil }
        let units = ["KiB": 1 << 10, "MiB": 1 << 20]
        guard let unit = units[String(words[1])] else { return nil }
        guard words.count == 4 else { return number * unit }
        guard words[2] == "+", let extra = Int(words[3]) else { return nil }
        return number * unit + extra
    }

    @Test func everyKindHasTheDocumentedLimit() throws {
        let rows = try Self.documentedRows()
        #expect(rows.map(\.letter) == BundleRecord.Kind.allCases.map(\.letter))
        for row in rows {
            let kind = try #require(BundleRecord.Kind(rawValue: row.letter.asciiValue ?? 0))
            #expect(kind.limit == row.limit, "the \(row.letter) record's limit")
            #expect(kind.isMandatory == row.count.hasPrefix("exactly one"), "whether one \(row.letter) is mandatory")
        }
    }

    @Test("A record one byte over its limit is refused", arguments: BundleRecord.Kind.allCases)
    func recordOverItsLimitIsRefused(_ kind: BundleRecord.Kind) throws {
        let path = NSTemporaryDirectory() + "/kind-\(kind.letter)-\(UUID().uuidString).bundle"
        defer { unlink(path) }
        // Only the header: a reader must refuse the length before it reads (or allocates) the payload.
        let header = [kind.rawValue] + bigEndianBytes(UInt64(kind.limit + 1))
        try Data(BundleFormat.magic + header).write(to: URL(fileURLWithPath: path))
        let reader = try BundleReader(path: path)
        let error = #expect(throws: ArchiveError.self) { try reader.next() }
        let claim = "claims \(kind.limit + 1) bytes, over its limit of \(kind.limit)"
        #expect(error?.problem == "a \(kind.letter) record at byte 18 \(claim)")
    }

    @Test func recordsComeInTheDocumentedOrder() {
        let kinds = BundleRecord.Kind.allCases
        // I, G, P…, C, E…, O…, Z: a mandatory kind cannot be skipped or repeated, the others can.
        #expect(BundleRecord.Kind.identity.mayFollow(nil))
        #expect(!BundleRecord.Kind.grant.mayFollow(nil))
        #expect(BundleRecord.Kind.checkpoint.mayFollow(.grant))
        #expect(!BundleRecord.Kind.entry.mayFollow(.grant))
        #expect(BundleRecord.Kind.end.mayFollow(.checkpoint))
        for kind in kinds { #expect(kind.mayFollow(kind) == !kind.isMandatory) }
        for (earlier, later) in zip(kinds, kinds.dropFirst()) { #expect(!earlier.mayFollow(later)) }
    }
}
