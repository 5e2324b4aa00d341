import Foundation

/// The two JSON forms Custody writes, set up once.
package enum JSONFormat {
    /// Compact, keys sorted, `/` unescaped: event bodies and sealed parts (signed or hashed, so byte-stable).
    package static func compactEncoder() -> JSONEncoder {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return encoder
    }

    /// Indented, keys sorted, `/` unescaped: files people read (`archive.json`, `keys.json`, identities, the
    /// registry) and `--json` output.
    package static func prettyEncoder() -> JSONEncoder {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .prettyPrinted, .withoutEscapingSlashes]
        return encoder
    }

    /// `value` as a file: the pretty form and a final newline.
    package static func fileBytes(_ value: some Encodable) throws -> [UInt8] {
        Array(try prettyEncoder().encode(value)) + [0x0A]
    }
}
