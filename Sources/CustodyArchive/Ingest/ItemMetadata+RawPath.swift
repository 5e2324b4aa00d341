import CustodyCrypto

extension ItemMetadata {
    /// The recorded path as the bytes it was found under: ``pathBytes`` decoded, or ``path`` in UTF-8.
    ///
    /// A ``pathBytes`` that is not valid base64 (never written by Custody) gives ``path``.
    package var rawPath: [UInt8] {
        guard let pathBytes, let bytes = Encoding.bytes(base64: pathBytes), !bytes.isEmpty else {
            return Array(path.utf8)
        }
        return bytes
    }

    /// The original file name (the last component of ``rawPath``) as bytes: what `extract` writes it under.
    package var rawName: [UInt8] {
        let raw = rawPath
        return Array(raw.split(separator: 0x2F).last ?? raw[...])
    }

    /// ``path`` for people: a path that is not UTF-8 with each invalid byte written `\xHH`.
    package var shownPath: String { pathBytes == nil ? path : Self.escapingInvalidUTF8(rawPath) }

    /// `bytes` as text, each byte that is not part of a valid UTF-8 sequence written `\xHH` (uppercase hex).
    package static func escapingInvalidUTF8(_ bytes: [UInt8]) -> String {
        var out = String.UnicodeScalarView()
        var parser = Unicode.UTF8.ForwardParser()
        var iterator = bytes.makeIterator()
        var position = 0
        while true {
            switch parser.parseScalar(from: &iterator) {
            case .valid(let encoded):
                out.append(Unicode.UTF8.decode(encoded))
                position += encoded.count
            case .error(let length):
                for byte in bytes[position..<min(bytes.count, position + length)] {
                    let hex = String(byte, radix: 16, uppercase: true)
                    out.append(contentsOf: ("\\x" + (hex.count == 1 ? "0" + hex : hex)).unicodeScalars)
                }
                position += length
            case .emptyInput:
                return String(out)
            }
        }
    }
}
