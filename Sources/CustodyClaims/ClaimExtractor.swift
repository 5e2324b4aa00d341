/// Reads at explicit offsets of the file, through the caller's closure, within a total budget.
///
/// The closure returns up to `count` bytes at `offset` (fewer at the end of the file), or `nil` when it cannot.
/// Once ``ClaimExtractor/maxReadBytes`` bytes or ``ClaimExtractor/maxReads`` reads are spent, every read gives
/// `nil`: whatever the file's structure, the extractor reads a bounded amount.
struct BoundedReads {
    let size: Int64
    let source: (_ offset: Int64, _ count: Int) -> [UInt8]?
    var bytesLeft = ClaimExtractor.maxReadBytes
    var readsLeft = ClaimExtractor.maxReads

    mutating func read(_ offset: Int64, _ count: Int) -> [UInt8]? {
        guard offset >= 0, count > 0, offset < size, readsLeft > 0 else { return nil }
        let wanted = Int(min(Int64(count), size - offset))
        guard wanted <= bytesLeft else { return nil }
        readsLeft -= 1
        bytesLeft -= wanted
        guard let bytes = source(offset, wanted), !bytes.isEmpty else { return nil }
        return Array(bytes.prefix(wanted))
    }
}

/// Extracts a file's claims (``FileClaims``) from bounded parts of it.
///
/// What is read: the first ``headBytes`` bytes (`head`), the last ``tailBytes`` (`tail`; PDF trailers), and for
/// MP4/MOV and PDF cross-reference lookups at most ``maxReadBytes`` more in at most ``maxReads`` reads at
/// explicit offsets through `read`. Nothing here allocates more than those bounds, recurses, traps on input
/// or does file IO of its own: every length and offset is checked against the bytes there are.
package enum ClaimExtractor {
    /// Bytes at the start of the file the extractor uses (1 MiB).
    package static let headBytes = 1 << 20
    /// Bytes at the end of the file the extractor uses (64 KiB).
    package static let tailBytes = 64 << 10
    /// Bytes read through `read`, in all (2 MiB).
    package static let maxReadBytes = 2 << 20
    /// Reads through `read`, in all.
    package static let maxReads = 2048

    /// The claims of a file of `size` bytes.
    ///
    /// - Parameters:
    ///   - head: Its first bytes (only the first ``headBytes`` are used).
    ///   - tail: Its last bytes (only the last ``tailBytes`` are used); may overlap `head`.
    ///   - size: Its size.
    ///   - read: Reads bytes at an offset (up to the count asked, or `nil`); called only for MP4/MOV and PDF.
    /// - Returns: The claims; ``FileClaims/format`` is `other`, with nothing else set, for a format it does not
    ///   read. ``FileClaims/fileModifiedAt`` is left for the caller.
    package static func extract(
        head: ArraySlice<UInt8>,
        tail: ArraySlice<UInt8>,
        size: Int64,
        read: (_ offset: Int64, _ count: Int) -> [UInt8]?
    ) -> FileClaims {
        withoutActuallyEscaping(read) { read in  // `reads` lives only during this call
            var reads = BoundedReads(size: max(size, 0), source: read)
            return extract(head: head.prefix(headBytes), tail: tail.suffix(tailBytes), size: size, &reads)
        }
    }

    private static func extract(
        head: ArraySlice<UInt8>,
        tail: ArraySlice<UInt8>,
        size: Int64,
        _ reads: inout BoundedReads
    ) -> FileClaims {
        let window = ByteWindow(head)
        if window.u8(0) == 0xFF, window.u8(1) == 0xD8 {
            var claims = FileClaims(format: "jpeg")
            JPEGClaims.read(window, into: &claims)
            return claims
        }
        if window.matches(0, "II*\0") || window.matches(0, "MM\0*") {
            var claims = FileClaims(format: "tiff")
            TIFFClaims.read(window, into: &claims)
            if let exif = claims.exifOriginal {
                claims.capturedAt = exif
                claims.capturedFrom = "exif"
            }
            return claims
        }
        if window.matches(4, "ftyp") {
            let brand = window.slice(8, 4).map { String(decoding: $0, as: UTF8.self) } ?? ""
            let format: String
            switch brand {
            case "qt  ": format = "mov"
            case "heic", "heix", "mif1", "msf1", "avif": format = "heif"
            default: format = "mp4"
            }
            var claims = FileClaims(format: format)
            MP4Claims.read(size: size, &reads, into: &claims)
            return claims
        }
        if firstOffset(of: Array("%PDF-".utf8), in: head.prefix(1024)) != nil {
            var claims = FileClaims(format: "pdf")
            PDFClaims.read(head: head, tail: tail, tailOffset: size - Int64(tail.count), &reads, into: &claims)
            return claims
        }
        return FileClaims(format: "other")
    }

    /// `unixSeconds` as RFC 3339 UTC with whole seconds (``FileClaims/fileModifiedAt``); `nil` outside years
    /// 1–9999.
    package static func utcString(unixSeconds: Int64) -> String? {
        ClaimTime.utcString(unixSeconds)
    }

    /// Parses a date or time given on the command line as the index compares them: `YYYY`, `YYYY-MM`,
    /// `YYYY-MM-DD`, or an RFC 3339 time with `Z` or an offset; returns the sort key
    /// (``ClaimedTime/sortKey``), or `nil` when it is none of those.
    package static func sortKey(parsing text: String) -> String? {
        guard let time = ClaimTime.iso8601(text), time.precision != .local else { return nil }
        return time.sortKey
    }
}
