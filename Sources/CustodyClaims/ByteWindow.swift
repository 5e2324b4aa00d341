/// A bounds-checked view of bytes from outside: every read returns `nil` instead of trapping when it would run
/// past the end, and every offset arithmetic is overflow-checked.
struct ByteWindow {
    let bytes: ArraySlice<UInt8>
    /// Whether multi-byte integers are little-endian (TIFF "II").
    var littleEndian = false

    init(_ bytes: ArraySlice<UInt8>, littleEndian: Bool = false) {
        self.bytes = bytes
        self.littleEndian = littleEndian
    }

    init(_ bytes: [UInt8], littleEndian: Bool = false) {
        self.init(bytes[...], littleEndian: littleEndian)
    }

    var count: Int { bytes.count }

    /// The byte at `offset` (from the window's start).
    func u8(_ offset: Int) -> UInt8? {
        guard offset >= 0, offset < bytes.count else { return nil }
        return bytes[bytes.startIndex + offset]
    }

    /// `count` bytes at `offset`, or `nil` when they are not all there.
    func slice(_ offset: Int, _ count: Int) -> ArraySlice<UInt8>? {
        guard offset >= 0, count >= 0, offset <= bytes.count, count <= bytes.count - offset else { return nil }
        let start = bytes.startIndex + offset
        return bytes[start..<(start + count)]
    }

    /// The window of `count` bytes at `offset`, with the same byte order.
    func window(_ offset: Int, _ count: Int) -> ByteWindow? {
        slice(offset, count).map { ByteWindow($0, littleEndian: littleEndian) }
    }

    func u16(_ offset: Int) -> UInt16? {
        guard let s = slice(offset, 2) else { return nil }
        let a = UInt16(s[s.startIndex])
        let b = UInt16(s[s.startIndex + 1])
        return littleEndian ? (b << 8 | a) : (a << 8 | b)
    }

    func u32(_ offset: Int) -> UInt32? {
        guard let s = slice(offset, 4) else { return nil }
        var value: UInt32 = 0
        for i in 0..<4 {
            let byte = UInt32(s[s.startIndex + (littleEndian ? 3 - i : i)])
            value = value << 8 | byte
        }
        return value
    }

    func u64(_ offset: Int) -> UInt64? {
        guard let s = slice(offset, 8) else { return nil }
        var value: UInt64 = 0
        for i in 0..<8 {
            let byte = UInt64(s[s.startIndex + (littleEndian ? 7 - i : i)])
            value = value << 8 | byte
        }
        return value
    }

    /// Whether the bytes at `offset` are `ascii`.
    func matches(_ offset: Int, _ ascii: String) -> Bool {
        let expected = Array(ascii.utf8)
        guard let s = slice(offset, expected.count) else { return false }
        return s.elementsEqual(expected)
    }
}

/// Finds `needle` in `haystack` (naive search; callers bound the haystack), returning its offset from the
/// haystack's start.
func firstOffset(of needle: [UInt8], in haystack: ArraySlice<UInt8>, from start: Int = 0) -> Int? {
    guard let first = needle.first, needle.count <= haystack.count, start >= 0 else { return nil }
    let last = haystack.count - needle.count
    guard start <= last else { return nil }
    var i = haystack.startIndex + start
    let end = haystack.startIndex + last
    while i <= end {
        if haystack[i] == first && haystack[i..<(i + needle.count)].elementsEqual(needle) {
            return i - haystack.startIndex
        }
        i += 1
    }
    return nil
}
