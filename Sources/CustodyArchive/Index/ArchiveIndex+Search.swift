import CustodyStorage
import Foundation
import GRDB

extension ArchiveIndex {
    /// Full-text search over all text metadata, best match first.
    ///
    /// The query language and the folding are in Docs/SEARCH.md: the text is parsed by ``SearchQuery``, and
    /// only the MATCH expression it builds (folded terms as quoted FTS5 strings) reaches SQLite.
    ///
    /// - Throws: ``ArchiveError`` (`query-malformed`, a usage error) when the query does not parse.
    package func search(_ query: String, limit: Int? = nil) throws -> [IndexedItem] {
        try search(SearchQuery.checked(query), limit: limit)
    }

    /// Full-text search for a parsed query, best match first (then in journal order).
    package func search(_ query: SearchQuery, limit: Int? = nil) throws -> [IndexedItem] {
        var sql = """
            SELECT items.* FROM items_fts
            JOIN items ON items.id = items_fts.item_id
            WHERE items_fts MATCH ? ORDER BY rank, items.seq
            """
        if let limit { sql += " LIMIT \(max(0, limit))" }
        return try read { db in
            try ItemRecord.fetchAll(db, sql: sql, arguments: [query.matchExpression]).map(\.indexed)
        }
    }
}

extension SearchQuery {
    /// Parses `text`; a query that does not parse is a usage error.
    ///
    /// - Throws: ``ArchiveError`` (`query-malformed`) with the ``SearchQueryError``'s problem and fix.
    package static func checked(_ text: String) throws -> SearchQuery {
        do {
            return try SearchQuery(parsing: text)
        } catch let error as SearchQueryError {
            throw ArchiveError(.queryMalformed, error.problem, fix: error.fix)
        }
    }
}
