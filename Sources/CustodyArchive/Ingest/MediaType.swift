/// Media type sniffing from magic bytes, with the file extension only as a tie-breaker for text.
package enum MediaType {
    /// The media type of content starting with `head` (the first few KiB) and named `name`.
    package static func sniff(_ head: [UInt8], name: String) -> String {
        func starts(_ magic: [UInt8], at offset: Int = 0) -> Bool {
            head.count >= offset + magic.count && Array(head[offset..<(offset + magic.count)]) == magic
        }
        func ascii(_ text: String, at offset: Int = 0) -> Bool { starts(Array(text.utf8), at: offset) }

        if starts([0xFF, 0xD8, 0xFF]) { return "image/jpeg" }
        if starts([0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A]) { return "image/png" }
        if ascii("GIF87a") || ascii("GIF89a") { return "image/gif" }
        if ascii("%PDF-") { return "application/pdf" }
        if ascii("RIFF") && ascii("WEBP", at: 8) { return "image/webp" }
        if ascii("RIFF") && ascii("WAVE", at: 8) { return "audio/wav" }
        if ascii("RIFF") && ascii("AVI ", at: 8) { return "video/x-msvideo" }
        if ascii("ftyp", at: 4) {
            let brand = head.count >= 12 ? String(decoding: head[8..<12], as: UTF8.self) : ""
            switch brand {
            case "heic", "heix", "mif1", "msf1": return "image/heic"
            case "qt  ": return "video/quicktime"
            case "M4A ": return "audio/mp4"
            case "3gp4", "3gp5", "3g2a": return "video/3gpp"
            default: return "video/mp4"
            }
        }
        if starts([0x1A, 0x45, 0xDF, 0xA3]) {
            return name.lowercased().hasSuffix(".webm") ? "video/webm" : "video/x-matroska"
        }
        if ascii("OggS") { return "audio/ogg" }
        if ascii("fLaC") { return "audio/flac" }
        if ascii("ID3") || starts([0xFF, 0xFB]) || starts([0xFF, 0xF3]) || starts([0xFF, 0xF2]) {
            return "audio/mpeg"
        }
        if starts([0x49, 0x49, 0x2A, 0x00]) || starts([0x4D, 0x4D, 0x00, 0x2A]) { return "image/tiff" }
        if starts([0x50, 0x4B, 0x03, 0x04]) {
            let lower = name.lowercased()
            if lower.hasSuffix(".docx") {
                return "application/vnd.openxmlformats-officedocument.wordprocessingml.document"
            }
            if lower.hasSuffix(".xlsx") { return "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet" }
            return "application/zip"
        }
        if starts([0x1F, 0x8B]) { return "application/gzip" }
        if ascii("7z") && starts([0xBC, 0xAF, 0x27, 0x1C], at: 2) { return "application/x-7z-compressed" }
        if ascii("SQLite format 3") { return "application/vnd.sqlite3" }
        if ascii("From ") || ascii("Return-Path:") || ascii("Received:") { return "message/rfc822" }
        if isText(head) {
            let lower = name.lowercased()
            let trimmed = head.drop {
                $0 == 0x20 || $0 == 0x0A || $0 == 0x0D || $0 == 0x09 || $0 == 0xEF || $0 == 0xBB || $0 == 0xBF
            }
            if trimmed.first == 0x3C {
                let start = String(decoding: trimmed.prefix(64), as: UTF8.self).lowercased()
                if start.hasPrefix("<!doctype html") || start.hasPrefix("<html") { return "text/html" }
                if start.hasPrefix("<?xml") { return "application/xml" }
            }
            if lower.hasSuffix(".json"), trimmed.first == 0x7B || trimmed.first == 0x5B { return "application/json" }
            if lower.hasSuffix(".csv") { return "text/csv" }
            if lower.hasSuffix(".md") { return "text/markdown" }
            return "text/plain"
        }
        return "application/octet-stream"
    }

    /// Whether `bytes` look like UTF-8 text (no NULs, valid apart from a cut last character).
    private static func isText(_ bytes: [UInt8]) -> Bool {
        guard !bytes.isEmpty, !bytes.contains(0) else { return false }
        var slice = bytes[...]
        for _ in 0..<4 {
            if String(validating: slice, as: UTF8.self) != nil { return true }
            guard !slice.isEmpty else { return false }
            slice = slice.dropLast()
        }
        return false
    }
}
