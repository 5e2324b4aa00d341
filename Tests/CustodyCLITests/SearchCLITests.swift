import CustodyTestSupport
import Foundation
import Testing

/// `search` in Arabic through the binary, its usage errors, and the `ls`/`search` listings (Docs/SEARCH.md).
@Suite struct SearchCLITests: CLIArchiveSuite {
    let dir = TempDirectory("search-cli")
    static let passphrase = "search cli passphrase"

    @Test func malformedQueriesAreUsageErrorsBeforeAnyPassphrase() throws {
        #expect(initArchive("a").status == 0)
        // No passphrase in the environment and no terminal: a query that reached the archive would exit 77.
        let noPassphrase = ["CUSTODY_ARCHIVE": dir.path + "/a"].jsonErrors
        for (query, problem) in [
            ("\"roof", "without its closing \""), ("AND (", "before AND"), ("roof AND", "after AND"),
            ("roof)", "without its opening ("), ("NOT roof", "NOT with nothing before it"), ("-", "no letter or digit"),
            ("", "is empty"),
        ] {
            let result = CLI.run(["search", query], environment: noPassphrase)
            #expect(result.status == 64, "\(query): \(result.stderr)")
            #expect(result.errorReason == "query-malformed", "\(query): \(result.stderr)")
            #expect(result.error?.problem.contains(problem) == true, "\(query): \(result.stderr)")
            #expect(result.stderr.split(separator: "\n").count == 1)
        }
        let text = CLI.run(["search", "\"roof"], environment: env("a"))
        #expect(text.status == 64 && text.stderr.hasPrefix("custody: the search query has a \" without"))
        #expect(!text.stderr.contains("no items match"))
    }

    @Test func arabicSpellingsFindEachOtherAndAreShownAsRecorded() throws {
        #expect(initArchive("a").status == 0)
        let ingest = CLI.run(
            [
                "ingest", dir.write("w/شهادة.txt", text: "x"), "--note", "رأى أخاه يُعتقَل", "--location", "حَلَب",
                "--case", "COI-٢٠٢٦", "--json",
            ],
            environment: env("a")
        )
        #expect(ingest.status == 0, "\(ingest.stderr)")
        for query in ["اخاه", "يعتقل", "حلب", "شهاده", "2026", "راي AND اخاه", "\"اخاه يعتقل\""] {
            let found = CLI.run(["search", query, "--json"], environment: env("a"))
            let items = try #require(found.json?["items"] as? [[String: Any]], "\(query): \(found.stderr)")
            #expect(items.count == 1, "\(query)")
            #expect(items.first?["location"] as? String == "حَلَب")
            #expect(items.first?["case"] as? String == "COI-٢٠٢٦")
            #expect(items.first?["name"] as? String == "شهادة.txt")
        }
        let none = CLI.run(["search", "دمشق"], environment: env("a"))
        #expect(none.status == 0 && none.stdout.isEmpty && none.stderr.contains("no items match"))
    }

    @Test func listingsCarryProvenanceInTextCSVAndJSON() throws {
        #expect(initArchive("a").status == 0)
        let source = "=HYPERLINK(\"http://x.example\",\"open\")"
        _ = dir.write("upload/sub/roof.txt", text: "roof")
        let ingest = CLI.run(
            [
                "ingest", dir.path + "/upload", "--case", "COI-7", "--source", source, "--location", "Aleppo, Syria",
                "--consent", "share-with-mechanisms", "--sensitivity", "high", "--collected-at",
                "2026-03-02T10:00:00Z", "--tag", "detention", "--tag", "a \"quoted\", tag", "--json",
            ],
            environment: env("a")
        )
        #expect(ingest.status == 0, "\(ingest.stderr)")
        let item = try #require((ingest.json?["items"] as? [[String: Any]])?.first)
        let id = try #require(item["id"] as? String)
        let sha = try #require(item["sha256"] as? String)

        let csv = CLI.run(["ls", "--format", "csv"], environment: env("a"))
        #expect(csv.status == 0, "\(csv.stderr)")
        #expect(csv.stdout.hasSuffix("\r\n"))
        let records = Self.parseCSV(csv.stdout)
        #expect(
            records.first == [
                "id", "case", "path", "name", "size", "media_type", "sha256", "ingested_at", "collected_at", "source",
                "location", "consent", "sensitivity", "tags", "duplicate_of",
            ]
        )
        #expect(records.count == 2)
        let row = try #require(records.last)
        #expect(
            row[0] == id && row[1] == "COI-7" && row[2] == "upload/sub/roof.txt" && row[3] == "roof.txt"
                && row[4] == "4"
        )
        #expect(row[6] == sha && row[8] == "2026-03-02T10:00:00Z")
        #expect(row[9] == "'" + source, "a formula is written as text")
        #expect(row[10] == "Aleppo, Syria" && row[11] == "share-with-mechanisms" && row[12] == "high")
        #expect(row[13] == "[\"a \\\"quoted\\\", tag\",\"detention\"]" && row[14] == "")
        #expect(csv.stdout.contains("\"'=HYPERLINK(\"\"http://x.example\"\",\"\"open\"\")\""))

        let long = CLI.run(["ls", "--long"], environment: env("a"))
        #expect(long.status == 0)
        for line in [
            "item         \(id)", "path         upload/sub/roof.txt", "case         COI-7", "sha256       \(sha)",
            "collected at 2026-03-02T10:00:00Z", "source       \(source)", "location     Aleppo, Syria",
            "consent      share-with-mechanisms", "sensitivity  high", "duplicate of -",
        ] {
            #expect(long.stdout.contains(line + "\n"), "--long lacks \(line)")
        }

        let json = CLI.run(["ls", "--format", "json"], environment: env("a"))
        let rows = try #require(json.json?["items"] as? [[String: Any]])
        #expect(rows.first?["source"] as? String == source, "JSON carries the value exactly")
        #expect(rows.first?["location"] as? String == "Aleppo, Syria")
        #expect(rows.first?["consent"] as? String == "share-with-mechanisms")
        #expect(rows.first?["sensitivity"] as? String == "high")
        #expect(rows.first?["collected_at"] as? String == "2026-03-02T10:00:00Z")
        #expect(rows.first?["path"] as? String == "upload/sub/roof.txt")
        #expect(rows.first?["duplicate_of"] is NSNull)
        #expect(CLI.run(["ls", "--json"], environment: env("a")).stdout == json.stdout)

        let searched = CLI.run(["search", "aleppo", "--format", "csv"], environment: env("a"))
        #expect(Self.parseCSV(searched.stdout).last?[0] == id)
        #expect(CLI.run(["ls", "--json", "--format", "csv"], environment: env("a")).status == 64)
        #expect(CLI.run(["ls", "--long", "--format", "json"], environment: env("a")).status == 64)
    }

    /// An RFC 4180 reader, for checking the writer: records of fields, quotes undone.
    static func parseCSV(_ text: String) -> [[String]] {
        var records: [[String]] = []
        var record: [String] = []
        var field = String.UnicodeScalarView()
        var quoted = false
        var scalars = text.unicodeScalars.makeIterator()
        var pending: Unicode.Scalar? = nil
        while let scalar = pending ?? scalars.next() {
            pending = nil
            if quoted {
                if scalar == "\"" {
                    let after = scalars.next()
                    if after == "\"" {
                        field.append("\"")
                    } else {
                        quoted = false
                        pending = after
                    }
                } else {
                    field.append(scalar)
                }
            } else if scalar == "\"" {
                quoted = true
            } else if scalar == "," {
                record.append(String(field))
                field = String.UnicodeScalarView()
            } else if scalar == "\r" {
                continue
            } else if scalar == "\n" {
                record.append(String(field))
                records.append(record)
                record = []
                field = String.UnicodeScalarView()
            } else {
                field.append(scalar)
            }
        }
        return records
    }
}
