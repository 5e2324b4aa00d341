import ArgumentParser
import CustodyArchive
import CustodyStorage
import Foundation

extension CustodyCommand {
    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "ls",
            abstract: "List items, filtered by case, tags and dates.",
            discussion: "Repeating --tag lists items that carry all of those tags. Dates are RFC 3339."
        )

        @OptionGroup var global: GlobalOptions
        @Option(name: .customLong("case"), help: "Only this case.") var caseID: String?
        @Option(help: "Only items with this tag (repeat: all of them).") var tag: [String] = []
        @Option(help: "Ingested at or after this time.") var since: String?
        @Option(help: "Ingested before this time.") var until: String?
        @Option(help: "Collected at or after this time.") var collectedAfter: String?
        @Option(help: "Collected before this time.") var collectedBefore: String?
        @Option(help: "At most this many items.") var limit: Int?
        @Flag(help: "Print JSON.") var json = false

        func run() async throws {
            try await runReportingErrorsAsync {
                var filter = ItemFilter()
                filter.caseID = caseID
                filter.tags = tag
                filter.ingestedAfter = try time(since, "--since")
                filter.ingestedBefore = try time(until, "--until")
                filter.collectedAfter = try time(collectedAfter, "--collected-after")
                filter.collectedBefore = try time(collectedBefore, "--collected-before")
                filter.limit = limit
                let items = try await global.openArchive(authorizing: [.read]).index().list(filter)
                try printItems(items, json: json)
            }
        }

        private func time(_ text: String?, _ option: String) throws -> String? {
            guard let text else { return nil }
            guard let normalized = RFC3339.normalize(text) else {
                throw ArchiveError(
                    .usage,
                    "\(option) \(text.prefix(40)) is not an RFC 3339 time",
                    fix: "write it like 2026-03-02T10:00:00Z"
                )
            }
            return normalized
        }
    }

    struct Search: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Full-text search over all text metadata (FTS5 syntax: words, \"phrases\", AND, OR, NOT).",
            discussion: "Case and diacritics are ignored; Arabic, Cyrillic and Latin scripts are tokenised."
        )

        @OptionGroup var global: GlobalOptions
        @Argument(help: "The query, e.g. \"roof AND aleppo\".") var query: String
        @Option(help: "At most this many items.") var limit: Int?
        @Flag(help: "Print JSON.") var json = false

        func run() async throws {
            try await runReportingErrorsAsync {
                guard !query.trimmingCharacters(in: .whitespaces).isEmpty else {
                    throw ArchiveError(.usage, "the search query is empty", fix: "give words to search for")
                }
                let items = try await global.openArchive(authorizing: [.read]).index().search(query, limit: limit)
                try printItems(items, json: json)
            }
        }
    }
}

/// `ls --json` / `search --json` rows.
struct ItemRowJSON: Encodable {
    var id: String
    var `case`: String?
    var tags: [String]
    var name: String
    var sha256: String
    var size: Int64
    var ingestedAt: String
    var mediaType: String

    enum CodingKeys: String, CodingKey {
        case id, `case`, tags, name, sha256, size
        case ingestedAt = "ingested_at"
        case mediaType = "media_type"
    }

    init(_ item: IndexedItem) {
        id = item.id
        `case` = item.metadata.caseID
        tags = item.metadata.tags
        name = item.metadata.name
        sha256 = item.metadata.sha256
        size = item.metadata.size
        ingestedAt = item.metadata.ingestedAt
        mediaType = item.metadata.mediaType
    }

    func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(id, forKey: .id)
        try c.encode(`case`, forKey: .case)
        try c.encode(tags, forKey: .tags)
        try c.encode(name, forKey: .name)
        try c.encode(sha256, forKey: .sha256)
        try c.encode(size, forKey: .size)
        try c.encode(ingestedAt, forKey: .ingestedAt)
        try c.encode(mediaType, forKey: .mediaType)
    }
}

private struct ItemsJSON: Encodable { var items: [ItemRowJSON] }

func printItems(_ items: [IndexedItem], json: Bool) throws {
    if json {
        try printJSON(ItemsJSON(items: items.map(ItemRowJSON.init)))
        return
    }
    for item in items {
        let m = item.metadata
        let tags = m.tags.isEmpty ? "" : "  [" + m.tags.joined(separator: ", ") + "]"
        print("\(item.id)  \(m.ingestedAt)  \(m.caseID ?? "-")  \(formatBytes(m.size))  \(m.name)\(tags)")
    }
    if items.isEmpty { printError("no items match") }
}
