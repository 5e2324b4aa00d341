import ArgumentParser
import CustodyArchive
import CustodyClaims
import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// How `ls` and `search` print items: `--long`, `--format text|csv|json` and `--json`.
struct ListingOptions: ParsableArguments {
    enum Format: String, ExpressibleByArgument, CaseIterable {
        case text, csv, json
    }

    @Flag(help: "Print every item's path, case, provenance fields and SHA-256, one block per item.")
    var long = false
    @Option(help: "Output format: text, csv (RFC 4180, spreadsheet-safe) or json.") var format: Format?
    @Flag(help: "Print JSON (the same as --format json).") var json = false

    func validate() throws {
        if json, let format, format != .json {
            throw ValidationError("--json and --format \(format) do not go together")
        }
        if long, let format, format != .text {
            throw ValidationError("--long is a text format; drop --format \(format)")
        }
        if long && json { throw ValidationError("--long and --json do not go together") }
    }

    /// The format asked for.
    var chosen: Format { json ? .json : format ?? .text }

    /// Prints `items` in the chosen format.
    func printItems(_ items: [IndexedItem]) throws {
        switch chosen {
        case .json: try printJSON(ItemsJSON(items: items.map(ItemRowJSON.init)))
        case .csv: writeCSV(items)
        case .text: long ? printLong(items) : printShort(items)
        }
        if items.isEmpty && chosen == .text { printError("no items match") }
    }

    private func printShort(_ items: [IndexedItem]) {
        for item in items {
            let m = item.metadata
            let tags = m.tags.isEmpty ? "" : "  [" + m.tags.joined(separator: ", ") + "]"
            print("\(item.id)  \(m.ingestedAt)  \(m.caseID ?? "-")  \(formatBytes(m.size))  \(m.path)\(tags)")
        }
    }

    private func printLong(_ items: [IndexedItem]) {
        for (index, item) in items.enumerated() {
            let m = item.metadata
            if index > 0 { print("") }
            let fields: [(String, String?)] = [
                ("item", item.id), ("path", m.path), ("case", m.caseID),
                ("size", "\(m.size) bytes (\(formatBytes(m.size)))"), ("media type", m.mediaType),
                ("sha256", m.sha256), ("ingested at", m.ingestedAt), ("collected at", m.collectedAt),
                ("captured at", m.claims?.capturedAt?.value), ("source", m.source), ("location", m.location),
                ("consent", m.consent),
                ("sensitivity", m.sensitivity), ("tags", m.tags.isEmpty ? nil : m.tags.joined(separator: ", ")),
                ("duplicate of", item.duplicateOf),
            ]
            for (label, value) in fields {
                print(label.padding(toLength: 13, withPad: " ", startingAt: 0) + (value ?? "-"))
            }
        }
    }

    /// The CSV columns, in order (Docs/SEARCH.md section 4).
    static let csvColumns = [
        "id", "case", "path", "name", "size", "media_type", "sha256", "ingested_at", "collected_at", "source",
        "location", "consent", "sensitivity", "tags", "duplicate_of",
    ]

    private func writeCSV(_ items: [IndexedItem]) {
        // On a terminal, cells are escaped as all text output is (a value cannot act on the terminal);
        // into a file or a pipe they are written exactly.
        let escape = isatty(STDOUT_FILENO) == 1
        var out = CSVWriter.record(Self.csvColumns)
        for item in items {
            let m = item.metadata
            // Tags may hold any character but NUL: a JSON array is the unambiguous form.
            let tags =
                m.tags.isEmpty
                ? nil
                : (try? JSONFormat.compactEncoder().encode(m.tags)).map {
                    String(decoding: $0, as: UTF8.self)
                }
            let cells: [String?] = [
                item.id, m.caseID, m.path, m.name, String(m.size), m.mediaType, m.sha256, m.ingestedAt, m.collectedAt,
                m.source, m.location, m.consent, m.sensitivity, tags, item.duplicateOf,
            ]
            out += CSVWriter.record(escape ? cells.map { $0.map { TerminalText.escape($0) } } : cells)
        }
        FileHandle.standardOutput.write(Data(out.utf8))
    }
}

/// `ls --json` / `search --json` rows.
struct ItemRowJSON: Encodable {
    var item: IndexedItem

    enum CodingKeys: String, CodingKey {
        case id, `case`, tags, name, path, sha256, size, source, location, consent, sensitivity
        case ingestedAt = "ingested_at"
        case collectedAt = "collected_at"
        case capturedAt = "captured_at"
        case mediaType = "media_type"
        case duplicateOf = "duplicate_of"
    }

    init(_ item: IndexedItem) { self.item = item }

    func encode(to encoder: any Encoder) throws {
        let m = item.metadata
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(item.id, forKey: .id)
        try c.encode(m.caseID, forKey: .case)
        try c.encode(m.tags, forKey: .tags)
        try c.encode(m.name, forKey: .name)
        try c.encode(m.path, forKey: .path)
        try c.encode(m.sha256, forKey: .sha256)
        try c.encode(m.size, forKey: .size)
        try c.encode(m.ingestedAt, forKey: .ingestedAt)
        try c.encode(m.collectedAt, forKey: .collectedAt)
        try c.encode(m.claims?.capturedAt?.value, forKey: .capturedAt)
        try c.encode(m.mediaType, forKey: .mediaType)
        try c.encode(m.source, forKey: .source)
        try c.encode(m.location, forKey: .location)
        try c.encode(m.consent, forKey: .consent)
        try c.encode(m.sensitivity, forKey: .sensitivity)
        try c.encode(item.duplicateOf, forKey: .duplicateOf)
    }
}

private struct ItemsJSON: Encodable { var items: [ItemRowJSON] }
