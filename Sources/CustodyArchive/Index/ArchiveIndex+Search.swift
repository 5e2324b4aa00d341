import CustodyStorage
import Foundation
import GRDB

extension ArchiveIndex {
    /// Full-text search (FTS5 query syntax) over all text metadata, best match first.
    ///
    /// - Throws: ``ArchiveError`` (usage) when the query is not valid FTS5 syntax.
    package func search(_ query: String, limit: Int? = nil) throws -> [IndexedItem] {
        var sql = """
            SELECT items.* FROM items_fts
            JOIN items ON items.id = items_fts.item_id
            WHERE items_fts MATCH ? ORDER BY rank, items.seq
            """
        if let limit { sql += " LIMIT \(max(0, limit))" }
        do {
            return try read { db in
                try ItemRecord.fetchAll(db, sql: sql, arguments: [Self.ftsQuery(query)]).map(\.indexed)
            }
        } catch let error as ArchiveError where error.code == .damaged {
            throw ArchiveError(
                .usage,
                "the search query \"\(query.prefix(80))\" is not valid",
                fix: "use words, \"phrases\", AND, OR, NOT and parentheses (FTS5 syntax)"
            )
        }
    }

    /// Quotes bare words that FTS5 would misread (`W-17`, `a.b`, `x:y`) so they search as phrases;
    /// operators (AND, OR, NOT), parentheses, "quoted phrases" and `prefix*` pass through unchanged.
    static func ftsQuery(_ query: String) -> String {
        var words: [String] = []
        var current = ""
        var inQuote = false
        for character in query {
            if character == "\"" { inQuote.toggle() }
            if character.isWhitespace && !inQuote {
                words.append(current)
                current = ""
            } else {
                current.append(character)
            }
        }
        words.append(current)
        return words.filter { !$0.isEmpty }.map(ftsWord).joined(separator: " ")
    }

    /// One whitespace-separated word of a query, quoted as a phrase unless FTS5 reads it as meant.
    private static func ftsWord(_ raw: String) -> String {
        var word = Substring(raw)
        var open = ""
        var close = ""
        while word.first == "(" {
            open += "("
            word = word.dropFirst()
        }
        while word.last == ")" {
            close += ")"
            word = word.dropLast()
        }
        let star = word.hasSuffix("*") && word.count > 1
        if star { word = word.dropLast() }
        let plain = word.unicodeScalars.allSatisfy {
            $0.properties.isAlphabetic || $0.properties.numericType != nil || $0 == "_"
                || $0.properties.generalCategory == .nonspacingMark
        }
        let text: String
        if word.hasPrefix("\"") || ["AND", "OR", "NOT"].contains(String(word)) || word.isEmpty || plain {
            text = String(word)
        } else {
            text = "\"" + word.replacingOccurrences(of: "\"", with: "\"\"") + "\""
        }
        return open + text + (star ? "*" : "") + close
    }
}
