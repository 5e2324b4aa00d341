import Foundation  // only for NFC (String.precomposedStringWithCanonicalMapping); no file IO here

/// Turning a file's text fields into strings safe to store and show.
package enum ClaimText {
    /// The longest string kept, in UTF-8 bytes (longer ones are cut at a character boundary).
    package static let maxBytes = 256

    /// `scalars` as a stored string: cut at the first NUL (EXIF ASCII fields end with one), control, format
    /// (bidirectional overrides, zero-width characters) and line or paragraph separator characters removed,
    /// surrounding spaces trimmed, NFC, at most `limit` UTF-8 bytes; `nil` when nothing is left.
    package static func sanitize(scalars: some Sequence<Unicode.Scalar>, limit: Int = maxBytes) -> String? {
        var kept = String.UnicodeScalarView()
        var budget = limit * 4  // bounds the work before normalisation
        for scalar in scalars {
            if scalar.value == 0 { break }
            budget -= 1
            if budget < 0 { break }
            switch scalar.properties.generalCategory {
            case .control, .format, .lineSeparator, .paragraphSeparator, .surrogate, .unassigned, .privateUse:
                continue
            default:
                kept.append(scalar)
            }
        }
        let trimmed = String(kept).trimmingCharacters(in: .whitespaces)
        let normalized = trimmed.precomposedStringWithCanonicalMapping
        var result = ""
        var bytes = 0
        for character in normalized {
            let size = character.utf8.count
            guard bytes + size <= limit else { break }
            result.append(character)
            bytes += size
        }
        return result.isEmpty ? nil : result
    }

    /// `bytes` decoded as UTF-8 (invalid sequences become U+FFFD), then sanitized.
    package static func sanitize(_ bytes: some Collection<UInt8>, limit: Int = maxBytes) -> String? {
        let prefix = bytes.prefix(limit * 4)
        return sanitize(scalars: String(decoding: prefix, as: UTF8.self).unicodeScalars, limit: limit)
    }
}
