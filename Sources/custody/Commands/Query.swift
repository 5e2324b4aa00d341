import ArgumentParser
import CustodyArchive
import CustodyClaims
import CustodyStorage
import Foundation

extension CustodyCommand {
    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "ls",
            abstract: "List items, filtered by case, tags and dates.",
            discussion: """
                Repeating --tag lists items that carry all of those tags. Dates are RFC 3339. --long prints each \
                item's path, case, provenance fields and SHA-256; --format csv writes RFC 4180 CSV (CRLF, UTF-8, \
                cells a spreadsheet would run as formulas prefixed with '); --format json is --json. The columns \
                and keys: Docs/SEARCH.md section 4. --captured-after and --captured-before compare the capture time the files claim (EXIF, XMP, MP4/MOV, PDF creation date): \
                they take a year, month, day (2026, 2026-03, 2026-03-02, as UTC) or an RFC 3339 time; a claimed time \
                without a UTC offset is compared as if it were UTC, and items whose files claim none never match.
                """
        )

        @OptionGroup var global: GlobalOptions
        @Option(name: .customLong("case"), help: "Only this case.") var caseID: String?
        @Option(help: "Only items with this tag (repeat: all of them).") var tag: [String] = []
        @Option(help: "Ingested at or after this time.") var since: String?
        @Option(help: "Ingested before this time.") var until: String?
        @Option(help: "Collected at or after this time.") var collectedAfter: String?
        @Option(help: "Collected before this time.") var collectedBefore: String?
        @Option(help: ArgumentHelp("Captured at or after this time, as the file claims.", valueName: "date"))
        var capturedAfter: String?
        @Option(help: ArgumentHelp("Captured before this time, as the file claims.", valueName: "date"))
        var capturedBefore: String?
        @Option(help: "At most this many items.") var limit: Int?
        @OptionGroup var listing: ListingOptions

        func run() async throws {
            try await runReportingErrorsAsync {
                var filter = ItemFilter()
                filter.caseID = caseID
                filter.tags = tag
                filter.ingestedAfter = try time(since, "--since")
                filter.ingestedBefore = try time(until, "--until")
                filter.collectedAfter = try time(collectedAfter, "--collected-after")
                filter.collectedBefore = try time(collectedBefore, "--collected-before")
                filter.capturedAfter = try claimedTime(capturedAfter, "--captured-after")
                filter.capturedBefore = try claimedTime(capturedBefore, "--captured-before")
                filter.limit = limit
                let items = try await global.openArchive(authorizing: [.read]).index().list(filter)
                try listing.printItems(items)
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

        /// A `--captured-*` bound as the index compares it (``ClaimedTime/sortKey``).
        private func claimedTime(_ text: String?, _ option: String) throws -> String? {
            guard let text else { return nil }
            guard let key = ClaimExtractor.sortKey(parsing: text) else {
                throw ArchiveError(
                    .usage,
                    "\(option) \(text.prefix(40)) is not a date or an RFC 3339 time",
                    fix: "write it like 2026-03-02 or 2026-03-02T10:00:00Z"
                )
            }
            return key
        }
    }

    struct Search: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Full-text search over all text metadata: words, \"phrases\", prefix*, AND, OR, NOT, ( ).",
            discussion: """
                Terms side by side must all match (AND). NOT binds tightest, then AND, then OR; NOT needs a term \
                before it (aleppo NOT draft). Operators are upper case; lower-case and, or, not are words. A word \
                with punctuation (W-17) matches as a phrase. Case, Latin accents and Arabic marks are ignored, \
                and letter forms are folded (أ إ آ to ا, ى to ي, ة to ه, Persian ک ی to ك ي, Arabic-Indic \
                digits to 0-9), in the index and in the query alike. A malformed query is a usage error (exit 64). \
                The full rules: Docs/SEARCH.md.
                """
        )

        @OptionGroup var global: GlobalOptions
        @Argument(help: "The query, e.g. \"roof AND aleppo\" or '\"chain of custody\" OR detain*'.") var query: String
        @Option(help: "At most this many items.") var limit: Int?
        @OptionGroup var listing: ListingOptions

        func run() async throws {
            try await runReportingErrorsAsync {
                // Checked before the archive is opened: a malformed query never asks for the passphrase.
                let parsed = try SearchQuery.checked(query)
                let items = try await global.openArchive(authorizing: [.read]).index().search(parsed, limit: limit)
                try listing.printItems(items)
            }
        }
    }
}
