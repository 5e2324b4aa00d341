import CustodyCrypto
import Foundation

/// The rules every value from outside (a bundle, a head, an identity file, a checkpoint, an HTTP request or
/// response) is checked against before it is used: one place, so each boundary applies the same ones
/// (DESIGN.md "The trust boundary", Docs/THREAT-MODEL.md "The trust boundary").
package enum OutsideInput {
    /// The longest display name, in UTF-8 bytes (the `init --name` rule).
    package static let maxNameBytes = 200

    /// A grant id or item id: exactly 32 lowercase hex digits. Only such ids ever become part of a file name.
    package static func isID(_ text: some StringProtocol) -> Bool { Encoding.isLowercaseHex(text, count: 32) }

    /// A display name (a body's, a grant party's): 1 to ``maxNameBytes`` bytes of UTF-8 in Normalization Form C,
    /// with no character that could change how a terminal or a line-based format shows the text around it:
    /// no control character (Unicode category Cc), no line or paragraph separator (Zl, Zp), and no format
    /// character (Cf: bidirectional overrides and isolates, invisible marks, the byte-order mark) except the
    /// zero-width joiner and non-joiner (U+200C, U+200D), which Persian, Arabic and Indic names need.
    package static func isDisplayName(_ text: String) -> Bool {
        guard !text.isEmpty, text.utf8.count <= maxNameBytes,
            text.utf8.elementsEqual(text.precomposedStringWithCanonicalMapping.utf8)
        else { return false }
        return !text.unicodeScalars.contains(where: isUnsafeScalar)
    }

    /// A log origin: 1 to 200 bytes of printable ASCII without spaces or `+` (C2SP signed notes require it).
    package static func isOrigin(_ text: String) -> Bool {
        !text.isEmpty && text.utf8.count <= 200 && text.utf8.allSatisfy { $0 > 0x20 && $0 < 0x7F && $0 != 0x2B }
    }

    /// Whether a scalar is one a display name may not hold (see ``isDisplayName(_:)``).
    static func isUnsafeScalar(_ scalar: Unicode.Scalar) -> Bool {
        switch scalar.properties.generalCategory {
        case .control, .lineSeparator, .paragraphSeparator, .surrogate: return true
        case .format: return scalar.value != 0x200C && scalar.value != 0x200D
        default: return false
        }
    }

    /// The sum of `sizes`, or `nil` when any is negative or the sum passes `limit` (no overflow is possible:
    /// every partial sum is compared with the limit before the next addition).
    package static func checkedTotal(_ sizes: some Sequence<Int64>, limit: Int64 = .max) -> Int64? {
        var total: Int64 = 0
        for size in sizes {
            guard size >= 0, size <= limit - total else { return nil }
            total += size
        }
        return total
    }
}

/// Text from outside made safe to print on a terminal.
package enum TerminalText {
    /// `text` with every character that a terminal would act on — C0 and C1 controls (ESC included), line and
    /// paragraph separators, bidirectional and other format characters (as ``OutsideInput/isDisplayName(_:)``
    /// forbids them) — written as `\u{XXXX}`, so the printed text cannot move the cursor, recolour the screen,
    /// reorder what follows, or pose as two lines. With `keepingNewlines`, `"\n"` stays (for whole multi-line
    /// outputs whose line breaks are the program's own).
    package static func escape(_ text: String, keepingNewlines: Bool = false) -> String {
        func unsafe(_ scalar: Unicode.Scalar) -> Bool {
            OutsideInput.isUnsafeScalar(scalar) && !(keepingNewlines && scalar == "\n")
        }
        guard text.unicodeScalars.contains(where: unsafe) else { return text }
        var out = String.UnicodeScalarView()
        for scalar in text.unicodeScalars {
            if unsafe(scalar) {
                out.append(contentsOf: "\\u{\(String(scalar.value, radix: 16, uppercase: true))}".unicodeScalars)
            } else {
                out.append(scalar)
            }
        }
        return String(out)
    }
}
