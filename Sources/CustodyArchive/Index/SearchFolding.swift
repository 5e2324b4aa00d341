import Foundation

/// The one folding that search applies, before SQLite's tokenizer, to the text it indexes and to every query
/// term alike, so that spellings which differ only in marks, letter forms or digits find each other.
///
/// Folding affects matching only: it is applied to the rows of `items_fts` and to query terms, never to the
/// metadata that `ls`, `show` and `search` print (Docs/SEARCH.md section 1 gives the exact table).
///
/// The steps, in order:
/// 1. Unicode NFKC: presentation forms (PDF text often holds `U+FE70…U+FEFF`), ligatures and fullwidth forms
///    become the letters they stand for, and a letter followed by a combining hamza or madda becomes one letter.
/// 2. Per scalar: Arabic marks and tatweel are removed; alef, waw, yeh, heh and kaf forms become the base
///    letter; every decimal digit becomes its ASCII digit; control characters become a space; bidirectional
///    controls and zero-width joiners are removed.
/// 3. Unicode NFC again, when step 2 removed a scalar (so the result is stable: folding twice changes nothing).
///
/// SQLite's `unicode61` tokenizer (`remove_diacritics 2`) then splits words, folds case and removes Latin
/// diacritics, on both sides.
package enum SearchFolding {
    /// The folded form of `text`, for matching only.
    package static func fold(_ text: String) -> String {
        // Printable ASCII folds to itself (NFKC and the table leave it unchanged).
        if text.utf8.allSatisfy({ (0x20...0x7E).contains($0) }) { return text }
        // Text whose every scalar is in ``isNFKCStable(_:)`` (ASCII, most Latin, Cyrillic, the Arabic block):
        // NFKC changes nothing there that step 2 does not also do, and nothing is left for NFC to compose.
        if text.unicodeScalars.allSatisfy(isNFKCStable) { return foldScalars(text).folded }
        return byDefinition(text)
    }

    /// Whether text made only of such scalars folds the same without NFKC and NFC (a test checks it on random
    /// text): scalars without a decomposition that no scalar of the set composes with, and the Arabic block,
    /// whose decompositions are a letter + madda or hamza (step 2 folds the two forms alike: it maps the letter
    /// and removes the mark) and U+0675…U+0678 (the table maps them to what NFKC + step 2 make of them).
    /// Every combining mark of the Arabic block is removed, so no mark is left to reorder or compose.
    static func isNFKCStable(_ scalar: Unicode.Scalar) -> Bool {
        switch scalar.value {
        case 0x00...0x7F, 0x00C0...0x0131, 0x0134...0x013E, 0x0141...0x0148, 0x014A...0x017E: true
        case 0x0400...0x04FF: true  // Cyrillic
        case 0x0600...0x06FF: true  // Arabic
        default: false
        }
    }

    /// The three steps exactly as documented, without the shortcuts of ``fold(_:)`` (which tests compare with).
    static func byDefinition(_ text: String) -> String {
        let (folded, removed) = foldScalars(text.precomposedStringWithCompatibilityMapping)
        return removed ? folded.precomposedStringWithCanonicalMapping : folded
    }

    /// Step 2 over every scalar; `removed` when a scalar was dropped.
    private static func foldScalars(_ text: String) -> (folded: String, removed: Bool) {
        // Into UTF-8 bytes: appending to a String.UnicodeScalarView scalar by scalar costs several times more.
        var bytes: [UInt8] = []
        bytes.reserveCapacity(text.utf8.count)
        var removed = false
        for scalar in text.unicodeScalars {
            switch step2(scalar) {
            case .keep: bytes.append(contentsOf: scalar.utf8)
            case .replace(let replacement): bytes.append(contentsOf: replacement.utf8)
            case .remove: removed = true
            }
        }
        return (String(decoding: bytes, as: UTF8.self), removed)
    }

    /// What step 2 does with one scalar.
    enum Folded: Equatable {
        case keep
        case replace(Unicode.Scalar)
        case remove
    }

    /// Step 2 for one scalar (after NFKC).
    static func step2(_ scalar: Unicode.Scalar) -> Folded {
        let value = scalar.value
        switch value {
        // General Category Cc is exactly these: C0 controls, DEL and C1 controls. They separate words; a NUL
        // would otherwise end the text SQLite reads.
        case 0x00...0x1F, 0x7F...0x9F: return .replace(" ")
        case 0x20...0x7E: return .keep
        case 0x0660...0x0669: return .replace(asciiDigit(value - 0x0660))  // Arabic-Indic digits
        case 0x06F0...0x06F9: return .replace(asciiDigit(value - 0x06F0))  // Persian (extended Arabic-Indic)
        default: break
        }
        if let base = base(of: value) { return .replace(base) }
        if isRemoved(value) { return .remove }
        // Below NKo (U+07C0) the only decimal digits are ASCII's and the two Arabic sets above: skip the
        // (slow) property lookup for Latin, Greek, Cyrillic, Hebrew and Arabic text.
        guard value >= 0x07C0 else { return .keep }
        let properties = scalar.properties
        if properties.numericType == .decimal, let digit = properties.numericValue, (0...9).contains(digit) {
            return .replace(asciiDigit(UInt32(digit)))
        }
        return .keep
    }

    private static func asciiDigit(_ digit: UInt32) -> Unicode.Scalar {
        Unicode.Scalar(UInt8(0x30 + digit))
    }

    /// Whether step 2 removes `value`: Arabic marks, high hamza, tatweel, soft hyphen, bidirectional controls,
    /// zero-width joiner and byte-order mark.
    static func isRemoved(_ value: UInt32) -> Bool {
        switch value {
        case 0x00AD: true  // SOFT HYPHEN (PDF text breaks words with it)
        case 0x0610...0x061A: true  // Arabic signs above and below (honorifics, small high letters)
        case 0x061C: true  // ARABIC LETTER MARK (bidirectional)
        case 0x0640: true  // TATWEEL
        case 0x064B...0x065F: true  // tanwin, harakat, shadda, sukun, madda/hamza above and below, subscript alef…
        case 0x0670: true  // SUPERSCRIPT ALEF
        case 0x0674: true  // HIGH HAMZA (what NFKC leaves of ٵ ٶ ٷ ٸ)
        case 0x06D6...0x06ED: true  // Quranic annotation marks (small high ligatures, end of ayah, small waw/yeh…)
        case 0x08D3...0x08E1, 0x08E3...0x08FF: true  // Arabic Extended-A marks
        case 0x200D...0x200F: true  // ZERO WIDTH JOINER, LEFT-TO-RIGHT MARK, RIGHT-TO-LEFT MARK
        case 0x202A...0x202E: true  // bidirectional embeddings and overrides
        case 0x2066...0x2069: true  // bidirectional isolates
        case 0xFEFF: true  // ZERO WIDTH NO-BREAK SPACE (byte-order mark)
        default: false
        }
    }

    /// The base letter that step 2 puts for an Arabic, Persian, Urdu, Kurdish or Pashto letter form, if any.
    static func base(of value: UInt32) -> Unicode.Scalar? {
        switch value {
        // آ أ إ, ٱ (wasla), ٲ ٳ (wavy hamza), ٵ (high hamza alef)
        case 0x0622, 0x0623, 0x0625, 0x0671, 0x0672, 0x0673, 0x0675: "\u{0627}"
        // ؤ, ٶ (high hamza waw)
        case 0x0624, 0x0676: "\u{0648}"
        // ئ, ى (alef maqsura), ٸ (high hamza yeh), ی (Farsi yeh), ې (Pashto e), ے ۓ (yeh barree)
        case 0x0626, 0x0649, 0x0678, 0x06CC, 0x06D0, 0x06D2, 0x06D3: "\u{064A}"
        // ة (teh marbuta), ھ (heh doachashmee), ۀ (heh with yeh above), ہ ۂ (heh goal), ە (ae)
        case 0x0629, 0x06BE, 0x06C0, 0x06C1, 0x06C2, 0x06D5: "\u{0647}"
        // ک (keheh), ڪ (swash kaf)
        case 0x06A9, 0x06AA: "\u{0643}"
        // ٷ (U with hamza above): NFKC makes it ۇ + high hamza, and the hamza is removed
        case 0x0677: "\u{06C7}"
        default: nil
        }
    }
}
