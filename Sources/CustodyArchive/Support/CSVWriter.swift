/// Comma-separated values as RFC 4180 defines them, made safe to open in a spreadsheet.
///
/// Records end with CRLF; a field holding `"`, `,`, CR or LF is enclosed in `"` with each `"` doubled. A field
/// that a spreadsheet would run as a formula — one starting with `=`, `+`, `-`, `@`, a tab or a CR, or their
/// fullwidth forms `＝ ＋ － ＠` — is prefixed with `'` first (OWASP "CSV injection"), so it is shown as text.
/// Docs/SEARCH.md section 4 describes the `ls --format csv` columns.
package enum CSVWriter {
    /// The scalars that make a spreadsheet read a cell as a formula when it starts with one.
    static let formulaStarts: Set<Unicode.Scalar> = [
        "=", "+", "-", "@", "\t", "\r", "\u{FF1D}", "\u{FF0B}", "\u{FF0D}", "\u{FF20}",
    ]

    /// One field: guarded against formulas, then quoted when RFC 4180 requires it. `nil` is the empty field.
    package static func field(_ value: String?) -> String {
        guard var text = value, !text.isEmpty else { return "" }
        if let first = text.unicodeScalars.first, formulaStarts.contains(first) { text = "'" + text }
        let needsQuotes = text.unicodeScalars.contains { $0 == "\"" || $0 == "," || $0 == "\r" || $0 == "\n" }
        return needsQuotes ? "\"" + doublingQuotes(text) + "\"" : text
    }

    /// `text` with each `"` scalar doubled. Scalar by scalar: a `"` followed by a combining mark is one
    /// `Character`, which a character-level replacement would miss.
    static func doublingQuotes(_ text: String) -> String {
        var out = String.UnicodeScalarView()
        for scalar in text.unicodeScalars {
            out.append(scalar)
            if scalar == "\"" { out.append(scalar) }
        }
        return String(out)
    }

    /// One record, ending with CRLF.
    package static func record(_ values: [String?]) -> String {
        values.map(field).joined(separator: ",") + "\r\n"
    }
}
