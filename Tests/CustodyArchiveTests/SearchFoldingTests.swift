import CustodyStorage
import CustodyTestSupport
import Foundation
import GRDB
import Testing

@testable import CustodyArchive

/// The folding table of Docs/SEARCH.md section 1, known answers: each input folds to exactly this text.
@Suite struct SearchFoldingTests {
    @Test(
        "Known answers",
        arguments: [
            ("يُعتقَل", "يعتقل"),  // harakat (damma, fatha)
            ("أخاه", "اخاه"), ("إسلام", "اسلام"), ("آمن", "امن"), ("ٱلقدس", "القدس"),  // alef forms
            ("ا\u{0654}", "ا"), ("ا\u{0655}", "ا"), ("ا\u{0653}", "ا"),  // alef + combining hamza or madda
            ("مـحـمـد", "محمد"),  // tatweel
            ("مؤمن", "مومن"), ("سائل", "سايل"), ("على", "علي"), ("مدرسة", "مدرسه"),  // ؤ ئ ى ة
            ("بِسْمِ ٱللَّهِ ٱلرَّحْمَٰنِ ٱلرَّحِيمِ", "بسم الله الرحمن الرحيم"),  // shadda, sukun, superscript alef
            ("ذٰلِكَ ٱلْكِتَٰبُ لَا رَيْبَ ۛ فِيهِ ۛ", "ذلك الكتب لا ريب  فيه "),  // U+06DB; dagger alef removed
            ("کتاب", "كتاب"), ("یک", "يك"), ("ی", "ي"),  // Persian keheh and Farsi yeh
            ("کہانی", "كهاني"), ("ہے", "هي"), ("ۂ", "ه"), ("ھ", "ه"), ("ە", "ه"), ("ۀ", "ه"),  // Urdu, Kurdish
            ("٢٠٢٦", "2026"), ("۱۴۰۵", "1405"), ("२०२६", "2026"),  // Arabic-Indic, Persian, Devanagari digits
            ("\u{FEE3}\u{FEA4}\u{FEE4}\u{FEAA}", "محمد"), ("\u{FEFB}", "لا"), ("\u{FEF7}", "لا"),  // presentation forms
            ("ＡＢＣ１２", "ABC12"), ("ﬁle", "file"),  // NFKC
            ("cárcel", "cárcel"), ("Declaración", "Declaración"),  // Latin is left to SQLite's unicode61
            ("a\u{0}b\u{7}c", "a b c"), ("x\u{200F}y\u{202E}z\u{2066}w", "xyzw"), ("co\u{00AD}operate", "cooperate"),
            ("می\u{200C}خواهم", "مي\u{200C}خواهم"),  // ZWNJ stays
            ("W-17 roof", "W-17 roof"),
        ]
    )
    func knownAnswer(input: String, folded: String) {
        #expect(SearchFolding.fold(input) == folded)
        #expect(SearchFolding.fold(folded) == folded, "folding twice changes nothing")
    }

    /// The shortcut of `fold` (no NFKC for Latin, Cyrillic and Arabic-block text) gives what the three steps
    /// give, on random text from the scalars it covers and their neighbours.
    @Test func theShortcutFoldsAsTheDefinitionDoes() {
        let ranges: [ClosedRange<UInt32>] = [
            0x00...0x7F, 0xA0...0x24F, 0x300...0x36F, 0x370...0x3FF, 0x400...0x52F, 0x600...0x6FF, 0x750...0x77F,
            0x8A0...0x8FF, 0xFB50...0xFDFF, 0xFE70...0xFEFF, 0x200B...0x206F,
        ]
        var generator = SystemRandomNumberGenerator()
        for _ in 0..<5000 {
            var scalars = String.UnicodeScalarView()
            // Mostly from one range, as real text is, with a few from the others.
            let home = ranges.randomElement(using: &generator) ?? ranges[0]
            for _ in 0..<Int.random(in: 1...10, using: &generator) {
                let range =
                    Bool.random(using: &generator) ? home : (ranges.randomElement(using: &generator) ?? home)
                if let scalar = Unicode.Scalar(UInt32.random(in: range, using: &generator)) { scalars.append(scalar) }
            }
            let text = String(scalars)
            #expect(
                SearchFolding.fold(text) == SearchFolding.byDefinition(text),
                "\(text.unicodeScalars.map { String($0.value, radix: 16) })"
            )
        }
        // And on every scalar of the ranges the shortcut covers, each after an alef and before a hamza above.
        for value: UInt32 in 0...0x6FF {
            guard let scalar = Unicode.Scalar(value), SearchFolding.isNFKCStable(scalar) else { continue }
            let text = "ا" + String(Character(scalar)) + "\u{654}"
            #expect(SearchFolding.fold(text) == SearchFolding.byDefinition(text), "U+\(String(value, radix: 16))")
        }
    }

    @Test func foldingIsStableOnRandomText() {
        let alphabet = Array(
            ("aé\u{301}ابتثأإآٱؤئىةکیہےەھ٠١٢۰۱۲\u{64B}\u{64E}\u{650}\u{651}\u{652}\u{653}\u{654}\u{655}\u{670}\u{640}"
                + "\u{6D6}\u{6ED}\u{FEFB}\u{FEF7}ﬁ\u{200C}\u{200D}\u{200F} \u{0}").unicodeScalars
        )
        var generator = SystemRandomNumberGenerator()
        for _ in 0..<2000 {
            let count = Int.random(in: 0...12, using: &generator)
            var scalars = String.UnicodeScalarView()
            for _ in 0..<count { scalars.append(alphabet.randomElement(using: &generator) ?? "a") }
            let text = String(scalars)
            let once = SearchFolding.fold(text)
            #expect(SearchFolding.fold(once) == once, "\(text.unicodeScalars.map { String($0.value, radix: 16) })")
        }
    }
}

/// The query language of Docs/SEARCH.md section 2: what each query becomes, and each malformed one's error.
@Suite struct SearchQueryTests {
    @Test(
        "MATCH expressions",
        arguments: [
            ("roof", "\"roof\""),
            ("roof aleppo", "(\"roof\" AND \"aleppo\")"),
            ("roof AND aleppo", "(\"roof\" AND \"aleppo\")"),
            ("a OR b c", "(\"a\" OR (\"b\" AND \"c\"))"),
            ("a b NOT c", "(\"a\" AND (\"b\" NOT \"c\"))"),
            ("(roof OR nothing) AND ale*", "((\"roof\" OR \"nothing\") AND \"ale\"*)"),
            ("\"chain of custody\"", "\"chain of custody\""),
            ("\"chain of cust\"*", "\"chain of cust\"*"),
            ("W-17", "\"W-17\""),
            ("and or not", "(\"and\" AND \"or\" AND \"not\")"),
            ("name:x ^y NEAR(z)", "(\"name:x\" AND \"^y\" AND \"NEAR\" AND \"z\")"),
            ("يُعتقَل OR أخاه", "(\"يعتقل\" OR \"اخاه\")"),
            ("a NOT b NOT c", "((\"a\" NOT \"b\") NOT \"c\")"),
            ("\"a\"\"b\"", "(\"a\" AND \"b\")"),
        ]
    )
    func matchExpression(query: String, expected: String) throws {
        #expect(try SearchQuery(parsing: query).matchExpression == expected)
    }

    @Test(
        "Malformed queries",
        arguments: [
            ("", SearchQueryError.empty), ("  \t ", .empty),
            ("\"roof", .unbalancedQuote), ("roof \"a\" \"b", .unbalancedQuote), ("\"\"", .emptyPhrase),
            ("(roof", .unclosedParenthesis), ("roof (", .unclosedParenthesis), ("roof)", .unopenedParenthesis),
            ("()", .emptyParentheses), ("AND (", .missingTermBefore("AND")), ("OR roof", .missingTermBefore("OR")),
            ("roof AND", .missingTermAfter("AND")), ("roof OR OR a", .missingTermAfter("OR")),
            ("roof NOT", .missingTermAfter("NOT")), ("NOT roof", .notWithoutLeft), ("a OR NOT b", .notWithoutLeft),
            ("-", .nothingToSearch("-")), ("roof *", .nothingToSearch("*")), ("\"--\"", .nothingToSearch("\"--\"")),
            ("\u{64E}\u{640}", .nothingToSearch("\u{64E}\u{640}")),
            (String(repeating: "(", count: 17) + "a" + String(repeating: ")", count: 17), .tooDeep),
            (Array(repeating: "a", count: 65).joined(separator: " "), .tooManyTerms(65)),
            (String(repeating: "a", count: 4097), .tooLong(byteCount: 4097)),
        ]
    )
    func malformed(query: String, error: SearchQueryError) {
        #expect(throws: error) { try SearchQuery(parsing: query) }
        #expect(!error.description.contains("\n") && error.description.contains(" — "))
    }

    @Test func theLimitsThemselvesAreAccepted() throws {
        _ = try SearchQuery(parsing: String(repeating: "(", count: 16) + "a" + String(repeating: ")", count: 16))
        _ = try SearchQuery(parsing: Array(repeating: "a", count: 64).joined(separator: " "))
        _ = try SearchQuery(parsing: String(repeating: "a", count: 4096))
    }
}

/// Search through an archive's index, in Arabic, Persian, Urdu and Latin.
@Suite struct FoldedSearchTests {
    let dir = TempDirectory("folded-search")

    /// Ingests one small file per note; returns the item ids by label.
    private func ingest(_ notes: [(String, String)], into archive: Archive.Unlocked) async throws -> [String: String] {
        var ids: [String: String] = [:]
        for (label, note) in notes {
            var options = IngestOptions()
            options.fields.note = note
            let path = dir.write("\(label).txt", text: label)
            ids[label] = try await #require(try archive.ingest([path], options: options).items.first).id.hex
        }
        return ids
    }

    static let notes = [
        ("vowelled", "قال إنه يُعتقَل في السجن"),
        ("hamza", "رأى أخاه في المستشفى"),
        ("tatweel", "شهادة مـحـمـد"),
        ("persian", "کتاب یک شاهد"),
        ("persian-arabic", "شهادة في كتاب"),
        ("urdu", "یہ کہانی ہے"),
        ("digits", "تاريخ ٢٠٢٦/٠٣/٠٢"),
        ("spanish", "trasladado a la cárcel"),
        ("maqsura", "مستشفى القدس"),
    ]

    @Test(
        "Each spelling finds the other",
        arguments: [
            ("يعتقل", ["vowelled"]), ("يُعتقَل", ["vowelled"]), ("اخاه", ["hamza"]), ("أخاه", ["hamza"]),
            ("محمد", ["tatweel"]), ("مـحمـد", ["tatweel"]), ("كتاب", ["persian", "persian-arabic"]),
            ("کتاب", ["persian", "persian-arabic"]), ("يك", ["persian"]), ("یک", ["persian"]),
            ("كهاني", ["urdu"]), ("کہانی", ["urdu"]), ("هي", ["urdu"]), ("2026", ["digits"]), ("٢٠٢٦", ["digits"]),
            ("۲۰۲۶", ["digits"]), ("carcel", ["spanish"]), ("CÁRCEL", ["spanish"]), ("مستشفي", ["maqsura"]),
            ("المستشفي", ["hamza"]),
            ("شهاده", ["tatweel", "persian-arabic"]), ("\"يعتقل في السجن\"", ["vowelled"]), ("يعت*", ["vowelled"]),
            ("السجن NOT يعتقل", []), ("کتاب NOT شهادة", ["persian"]),
        ]
    )
    func spellingsFindEachOther(query: String, labels: [String]) async throws {
        let archive = try await Fixtures.archive(in: dir)
        let ids = try await ingest(Self.notes, into: archive)
        let found = try await archive.index().search(query).map(\.id)
        #expect(Set(found) == Set(labels.compactMap { ids[$0] }), "\(query)")
    }

    @Test func foldingChangesOnlyMatchingNeverTheStoredValues() async throws {
        let archive = try await Fixtures.archive(in: dir)
        var options = IngestOptions()
        options.fields.note = "يُعتقَل مـحـمـد ٢٠٢٦"
        options.fields.location = "حلب الشهباء"
        options.fields.tags = ["شهادة"]
        let path = dir.write("أخاه.txt", text: "x")
        let id = try await #require(try archive.ingest([path], options: options).items.first).id.hex
        try await archive.note(id, text: "رأى أخاه")
        let index = try await archive.index()
        let item = try #require(try index.search("يعتقل AND محمد AND 2026 AND اخاه AND شهاده AND راي").first)
        #expect(item.id == id)
        #expect(item.metadata.note == "يُعتقَل مـحـمـد ٢٠٢٦")
        #expect(item.metadata.name == "أخاه.txt")
        #expect(item.metadata.tags == ["شهادة"])
        let shown = try await archive.resolveItem(id)
        #expect(shown.metadata.note == "يُعتقَل مـحـمـد ٢٠٢٦" && shown.metadata.location == "حلب الشهباء")
    }

    @Test func anOlderIndexIsFoldedByItsMigration() async throws {
        let archive = try await Fixtures.archive(in: dir)
        let ids = try await ingest(Self.notes, into: archive)
        let indexPath = try await archive.index().path
        // Make the index as v5 left it: unfolded text, and no record of the v6 migration.
        do {
            let db = try DatabaseQueue(path: indexPath)
            try await db.write { db in
                for (label, note) in Self.notes {
                    try db.execute(
                        sql: "UPDATE items_fts SET note = ? WHERE item_id = ?",
                        arguments: [note, ids[label]]
                    )
                }
                try db.execute(sql: "DELETE FROM grdb_migrations WHERE identifier = 'v7-folded-search'")
            }
            let unfolded = try await db.read { db in
                try String.fetchOne(db, sql: "SELECT note FROM items_fts WHERE item_id = ?", arguments: [ids["hamza"]])
            }
            #expect(unfolded == "رأى أخاه في المستشفى")
            try db.close()
        }
        let reopened = try ArchiveIndex(path: indexPath)
        #expect(try reopened.search("اخاه").map(\.id) == [ids["hamza"]])
        #expect(try reopened.search("2026").map(\.id) == [ids["digits"]])
        #expect(try reopened.search("كتاب").count == 2)
        let dump = try reopened.dump()
        let row = try #require(dump["items_fts"]?.first { $0["item_id"] == .text(ids["hamza"] ?? "") })
        #expect(row["note"] == .text("راي اخاه في المستشفي"))
    }

    /// Random strings of query syntax and hostile text: every one either searches or is a usage error
    /// naming the problem; no SQLite error ever escapes.
    @Test func randomQueriesSearchOrAreUsageErrors() async throws {
        let archive = try await Fixtures.archive(in: dir)
        _ = try await ingest(Array(Self.notes.prefix(3)), into: archive)
        let index = try await archive.index()
        let pieces = [
            "\"", "(", ")", "*", ":", "^", "-", "+", "{", "}", "[", "]", ",", ";", "'", "`", "\\", "/", "\u{0}",
            "\n", "\t", " ", " ", " ", "AND", "OR", "NOT", "NEAR", "NEAR(", "and", "col:", "name:", "roof", "يُعتقَل",
            "أخاه", "\u{64E}", "\u{640}", "٢", "\u{200F}", "\u{FEFB}", "é", "🙂", "%", "_", "''", "\"\"", "x*y",
        ]
        var seed = UInt64.random(in: .min ... .max)
        func next() -> UInt64 {  // SplitMix64: a failure names its seed
            seed &+= 0x9E37_79B9_7F4A_7C15
            var z = seed
            z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
            z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
            return z ^ (z >> 31)
        }
        let start = seed
        var searched = 0
        var refused = 0
        for _ in 0..<3000 {
            let count = Int(next() % 9)
            let query = (0..<count).map { _ in pieces[Int(next() % UInt64(pieces.count))] }.joined()
            do {
                let parsed = try SearchQuery(parsing: query)
                _ = try index.search(parsed)
                searched += 1
            } catch let error as SearchQueryError {
                #expect(!error.description.contains("\n"))
                refused += 1
            } catch {
                Issue.record("seed \(start): \(String(reflecting: query)) gave \(error)")
            }
        }
        #expect(searched > 0 && refused > 0)
    }
}
