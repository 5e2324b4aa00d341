import Testing

@testable import CustodyArchive

/// RFC 4180 fields and records, guarded against spreadsheet formulas (Docs/SEARCH.md section 4).
@Suite struct CSVWriterTests {
    @Test(
        "Known answers",
        arguments: [
            (nil, ""), ("", ""), ("abc", "abc"), ("a,b", "\"a,b\""), ("say \"hi\"", "\"say \"\"hi\"\"\""),
            ("two\nlines", "\"two\nlines\""), ("cr\rlf", "\"cr\rlf\""), ("حلب", "حلب"),
            ("=1+2", "'=1+2"), ("+1", "'+1"), ("-5", "'-5"), ("@SUM(A1)", "'@SUM(A1)"), ("\tx", "'\tx"),
            ("\r=x", "\"'\r=x\""), ("\u{FF1D}cmd", "'\u{FF1D}cmd"), ("\u{FF20}x", "'\u{FF20}x"),
            ("=HYPERLINK(\"http://x\",\"y\")", "\"'=HYPERLINK(\"\"http://x\"\",\"\"y\"\")\""),
            ("a\"\u{301}b", "\"a\"\"\u{301}b\""),  // a quote with a combining mark is one Character, two scalars
            ("x=1", "x=1"), (" =1", " =1"),
        ] as [(String?, String)]
    )
    func field(value: String?, written: String) {
        #expect(CSVWriter.field(value) == written)
    }

    @Test func recordsJoinWithCommasAndEndInCRLF() {
        #expect(CSVWriter.record(["a", nil, "b,c", "-1"]) == "a,,\"b,c\",'-1\r\n")
    }
}
