/// A PDF's document information dictionary (ISO 32000-1 §14.3.3): `/CreationDate`, `/ModDate`, `/Producer`,
/// `/Creator`; and whether it embeds a C2PA manifest.
///
/// The trailer's `/Info N G R` is looked for in the file's last bytes (the classic trailer, or a
/// cross-reference stream's dictionary, which is not compressed); the object `N G obj` in the first and last
/// bytes, else at the offset the classic cross-reference table gives (one bounded read). An Info dictionary
/// inside a compressed object stream, or in an encrypted PDF (`/Encrypt` in the trailer), gives no claims.
enum PDFClaims {
    /// Bytes of one Info dictionary read.
    static let maxDictionaryBytes = 16 * 1024

    static func read(
        head: ArraySlice<UInt8>,
        tail: ArraySlice<UInt8>,
        tailOffset: Int64,
        _ reads: inout BoundedReads,
        into claims: inout FileClaims
    ) {
        claims.c2pa = hasC2PA(head) || hasC2PA(tail)
        guard let (number, generation, trailerAt) = infoReference(tail) else { return }
        // An encrypted PDF's strings are ciphertext.
        let trailer = tail.dropFirst(max(0, trailerAt - 2048)).prefix(4096)
        if firstOffset(of: Array("/Encrypt".utf8), in: trailer) != nil { return }
        let header = Array("\(number) \(generation) obj".utf8)
        var body: ArraySlice<UInt8>?
        for window in [tail, head] {
            if let at = objectOffset(header, in: window) {
                body = window.dropFirst(at + header.count).prefix(maxDictionaryBytes)
                break
            }
        }
        if body == nil, let offset = xrefOffset(of: number, in: tail),
            let bytes = reads.read(offset, maxDictionaryBytes + header.count)
        {
            let w = bytes[...]
            if let at = objectOffset(header, in: w), at == 0 || at < 32 {
                body = w.dropFirst(at + header.count)
            }
        }
        guard let body, let dictionary = dictionary(body) else { return }
        claims.pdfCreated = string(dictionary["CreationDate"]).flatMap(ClaimTime.pdf)
        claims.pdfModified = string(dictionary["ModDate"]).flatMap(ClaimTime.pdf)
        claims.producer = string(dictionary["Producer"])
        claims.creator = string(dictionary["Creator"])
        if let created = claims.pdfCreated {
            claims.capturedAt = created
            claims.capturedFrom = "pdf"
        }
    }

    /// The C2PA embedded-file markers (C2PA 2.1, "Embedding manifests into PDFs": an embedded file with
    /// `/AFRelationship /C2PA_Manifest` and subtype `application/c2pa`).
    static func hasC2PA(_ bytes: ArraySlice<UInt8>) -> Bool {
        for marker in ["/C2PA_Manifest", "application#2Fc2pa", "/application/c2pa"] {
            if firstOffset(of: Array(marker.utf8), in: bytes) != nil { return true }
        }
        return false
    }

    /// The last `/Info N G R` in `tail`, and where it is.
    static func infoReference(_ tail: ArraySlice<UInt8>) -> (Int, Int, Int)? {
        let key = Array("/Info".utf8)
        var last: (Int, Int, Int)?
        var from = 0
        while let at = firstOffset(of: key, in: tail, from: from) {
            from = at + key.count
            var lexer = PDFLexer(tail.dropFirst(from).prefix(64))
            if case .integer(let n)? = lexer.next(), case .integer(let g)? = lexer.next(),
                case .keyword("R")? = lexer.next(), n >= 0, g >= 0
            {
                last = (n, g, at)
            }
        }
        return last
    }

    /// The offset of `header` in `bytes` at the start of a line (or of the bytes), not inside `10 0 obj` of `110 0 obj`.
    static func objectOffset(_ header: [UInt8], in bytes: ArraySlice<UInt8>) -> Int? {
        var from = 0
        while let at = firstOffset(of: header, in: bytes, from: from) {
            if at == 0 || PDFLexer.isWhitespace(bytes[bytes.startIndex + at - 1]) { return at }
            from = at + 1
        }
        return nil
    }

    /// The byte offset of object `number` from the classic cross-reference table (`xref`, subsections of
    /// 20-byte entries) in `tail`.
    static func xrefOffset(of number: Int, in tail: ArraySlice<UInt8>) -> Int64? {
        let key = Array("xref".utf8)
        guard let at = lastOffset(of: key, in: tail) else { return nil }
        var rest = tail.dropFirst(at + key.count)
        for _ in 0..<1024 {
            var lexer = PDFLexer(rest.prefix(64))
            guard case .integer(let first)? = lexer.next(), case .integer(let count)? = lexer.next(), first >= 0,
                count >= 0, count <= 10_000_000
            else { return nil }
            rest = rest.dropFirst(lexer.position)
            while let byte = rest.first, PDFLexer.isWhitespace(byte) { rest = rest.dropFirst() }
            if number >= first, number - first < count {
                let entry = rest.dropFirst((number - first) * 20).prefix(20)
                var fields = PDFLexer(entry)
                guard entry.count == 20, case .integer(let offset)? = fields.next(), case .integer? = fields.next(),
                    case .keyword("n")? = fields.next()
                else { return nil }
                return Int64(offset)
            }
            guard count * 20 <= rest.count else { return nil }
            rest = rest.dropFirst(count * 20)
        }
        return nil
    }

    static func lastOffset(of needle: [UInt8], in bytes: ArraySlice<UInt8>) -> Int? {
        var last: Int?
        var from = 0
        while let at = firstOffset(of: needle, in: bytes, from: from) {
            last = at
            from = at + 1
        }
        return last
    }

    /// The dictionary at the start of `body`: its direct name, string, number and keyword values by key
    /// (nested dictionaries and arrays skipped, nesting at most ``PDFLexer/maxDepth``).
    static func dictionary(_ body: ArraySlice<UInt8>) -> [String: PDFLexer.Token]? {
        var lexer = PDFLexer(body)
        guard case .open? = lexer.next() else { return nil }
        var values: [String: PDFLexer.Token] = [:]
        var key: String?
        var depth = 1
        while let token = lexer.next() {
            switch token {
            case .open, .arrayOpen:
                depth += 1
                guard depth <= PDFLexer.maxDepth else { return nil }
                key = nil
            case .close, .arrayClose:
                depth -= 1
                if depth == 0 { return values }
                key = nil
            case .name(let name) where depth == 1 && key == nil:
                key = name
            default:
                if depth == 1, let k = key {
                    if values[k] == nil { values[k] = token }
                    key = nil
                }
            }
        }
        return nil
    }

    static func string(_ token: PDFLexer.Token?) -> String? {
        guard case .string(let bytes)? = token else { return nil }
        return PDFLexer.text(bytes)
    }
}

/// The few PDF tokens an Info dictionary needs (ISO 32000-1 §7.2–7.3), from bounded bytes.
struct PDFLexer {
    static let maxDepth = 8
    static let maxStringBytes = 4096

    enum Token: Equatable, Sendable {
        case open, close, arrayOpen, arrayClose
        case name(String)
        case string([UInt8])
        case integer(Int)
        case keyword(String)
        case other
    }

    let bytes: ArraySlice<UInt8>
    /// Offset of the next byte to read.
    var position = 0

    init(_ bytes: ArraySlice<UInt8>) { self.bytes = bytes }

    static func isWhitespace(_ b: UInt8) -> Bool {
        b == 0x20 || b == 0x0A || b == 0x0D || b == 0x09 || b == 0x0C || b == 0
    }
    static func isDelimiter(_ b: UInt8) -> Bool { "()<>[]{}/%".utf8.contains(b) }

    func peek(_ k: Int = 0) -> UInt8? {
        let i = position + k
        return i < bytes.count ? bytes[bytes.startIndex + i] : nil
    }

    mutating func next() -> Token? {
        while let b = peek() {
            if Self.isWhitespace(b) {
                position += 1
            } else if b == 0x25 {  // comment to end of line
                while let c = peek(), c != 0x0A, c != 0x0D { position += 1 }
            } else {
                break
            }
        }
        guard let b = peek() else { return nil }
        switch b {
        case 0x3C where peek(1) == 0x3C:
            position += 2
            return .open
        case 0x3E where peek(1) == 0x3E:
            position += 2
            return .close
        case 0x5B:
            position += 1
            return .arrayOpen
        case 0x5D:
            position += 1
            return .arrayClose
        case 0x2F:
            position += 1
            let start = position
            while let c = peek(), !Self.isWhitespace(c), !Self.isDelimiter(c), position - start < 128 { position += 1 }
            return .name(String(decoding: bytes.dropFirst(start).prefix(position - start), as: UTF8.self))
        case 0x28: return literalString()
        case 0x3C: return hexString()
        default:
            let start = position
            while let c = peek(), !Self.isWhitespace(c), !Self.isDelimiter(c), position - start < 64 { position += 1 }
            if position == start {  // a stray delimiter
                position += 1
                return .other
            }
            let word = bytes.dropFirst(start).prefix(position - start)
            if word.count <= 18, word.allSatisfy({ (0x30...0x39).contains($0) }),
                let n = Int(String(decoding: word, as: UTF8.self))
            {
                return .integer(n)
            }
            return .keyword(String(decoding: word, as: UTF8.self))
        }
    }

    /// `( … )`: balanced parentheses, backslash escapes, octal `\ddd`, line continuations.
    mutating func literalString() -> Token? {
        position += 1
        var out: [UInt8] = []
        var depth = 1
        while let b = peek() {
            position += 1
            switch b {
            case 0x5C:
                guard let e = peek() else { return nil }
                position += 1
                switch e {
                case 0x6E: out.append(0x0A)
                case 0x72: out.append(0x0D)
                case 0x74: out.append(0x09)
                case 0x62: out.append(0x08)
                case 0x66: out.append(0x0C)
                case 0x0D:
                    if peek() == 0x0A { position += 1 }
                case 0x0A: break
                case 0x30...0x37:
                    var value = Int(e - 0x30)
                    for _ in 0..<2 {
                        guard let d = peek(), (0x30...0x37).contains(d) else { break }
                        value = value * 8 + Int(d - 0x30)
                        position += 1
                    }
                    out.append(UInt8(truncatingIfNeeded: value))
                default: out.append(e)
                }
            case 0x28:
                depth += 1
                out.append(b)
            case 0x29:
                depth -= 1
                if depth == 0 { return .string(out) }
                out.append(b)
            default: out.append(b)
            }
            if out.count > Self.maxStringBytes { return nil }
        }
        return nil
    }

    /// `< hex >`, whitespace ignored, an odd last digit followed by 0.
    mutating func hexString() -> Token? {
        position += 1
        var out: [UInt8] = []
        var high: UInt8?
        while let b = peek() {
            position += 1
            if b == 0x3E {
                if let high { out.append(high << 4) }
                return .string(out)
            }
            if Self.isWhitespace(b) { continue }
            let nibble: UInt8
            switch b {
            case 0x30...0x39: nibble = b - 0x30
            case 0x41...0x46: nibble = b - 0x41 + 10
            case 0x61...0x66: nibble = b - 0x61 + 10
            default: return nil
            }
            if let h = high {
                out.append(h << 4 | nibble)
                high = nil
            } else {
                high = nibble
            }
            if out.count > Self.maxStringBytes { return nil }
        }
        return nil
    }

    /// A PDF text string: UTF-16BE with its byte order mark, UTF-8 with its mark (PDF 2.0), else
    /// PDFDocEncoding (ISO 32000-1 Annex D), then sanitized.
    static func text(_ bytes: [UInt8]) -> String? {
        if bytes.starts(with: [0xFE, 0xFF]) {
            var units: [UInt16] = []
            var i = 2
            while i + 1 < bytes.count {
                units.append(UInt16(bytes[i]) << 8 | UInt16(bytes[i + 1]))
                i += 2
            }
            return ClaimText.sanitize(scalars: String(decoding: units, as: UTF16.self).unicodeScalars)
        }
        if bytes.starts(with: [0xEF, 0xBB, 0xBF]) { return ClaimText.sanitize(bytes.dropFirst(3)) }
        return ClaimText.sanitize(scalars: bytes.map(docEncoding))
    }

    /// PDFDocEncoding's differences from Latin-1 (Annex D.2): 0x18–0x1F and 0x80–0xA0; 0x7F, 0x9F and 0xAD
    /// are undefined (U+FFFD).
    static func docEncoding(_ b: UInt8) -> Unicode.Scalar {
        let low: [UInt32] = [0x02D8, 0x02C7, 0x02C6, 0x02D9, 0x02DD, 0x02DB, 0x02DA, 0x02DC]
        let high: [UInt32] = [
            0x2022, 0x2020, 0x2021, 0x2026, 0x2014, 0x2013, 0x0192, 0x2044, 0x2039, 0x203A, 0x2212, 0x2030, 0x201E,
            0x201C, 0x201D, 0x2018, 0x2019, 0x201A, 0x2122, 0xFB01, 0xFB02, 0x0141, 0x0152, 0x0160, 0x0178, 0x017D,
            0x0131, 0x0142, 0x0153, 0x0161, 0x017E, 0xFFFD, 0x20AC,
        ]
        let value: UInt32
        switch b {
        case 0x18...0x1F: value = low[Int(b - 0x18)]
        case 0x80...0xA0: value = high[Int(b - 0x80)]
        case 0x7F, 0xAD: value = 0xFFFD
        default: value = UInt32(b)
        }
        return Unicode.Scalar(value) ?? "\u{FFFD}"
    }
}
