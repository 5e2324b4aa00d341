/// JPEG (ISO/IEC 10918-1 markers; EXIF 2.32 in APP1; XMP in APP1; C2PA's JUMBF in APP11) and bare TIFF.
enum JPEGClaims {
    /// Segments read before giving up (a JPEG has a few dozen before its image data).
    static let maxSegments = 1024

    /// Reads the claims of a JPEG whose first bytes are `head` into `claims`.
    static func read(_ head: ByteWindow, into claims: inout FileClaims) {
        var offset = 2
        var xmp: (original: ClaimedTime?, created: ClaimedTime?) = (nil, nil)
        for _ in 0..<maxSegments {
            guard head.u8(offset) == 0xFF else { return finish(xmp, &claims) }
            var marker = head.u8(offset + 1)
            while marker == 0xFF {  // fill bytes before a marker
                offset += 1
                marker = head.u8(offset + 1)
            }
            guard let marker else { return finish(xmp, &claims) }
            if marker == 0x01 || (0xD0...0xD7).contains(marker) {
                offset += 2
                continue
            }
            // Start of scan or end of image: the metadata segments come before.
            guard marker != 0xDA, marker != 0xD9, let length = head.u16(offset + 2), length >= 2 else {
                return finish(xmp, &claims)
            }
            let payload = head.window(offset + 4, Int(length) - 2)
            if let payload {
                switch marker {
                case 0xE1 where payload.matches(0, "Exif\0\0"):
                    if let tiff = payload.window(6, payload.count - 6) { TIFFClaims.read(tiff, into: &claims) }
                case 0xE1 where payload.matches(0, "http://ns.adobe.com/xap/1.0/\0"):
                    let found = XMPClaims.times(in: payload.bytes.dropFirst(29))
                    xmp.original = xmp.original ?? found.original
                    xmp.created = xmp.created ?? found.created
                case 0xEB:
                    if isC2PAJUMBF(payload) { claims.c2pa = true }
                default: break
                }
            }
            guard payload != nil else { return finish(xmp, &claims) }  // cut off: the rest is not in the head
            offset += 2 + Int(length)
        }
        finish(xmp, &claims)
    }

    /// EXIF's capture time first, then XMP's.
    private static func finish(_ xmp: (original: ClaimedTime?, created: ClaimedTime?), _ claims: inout FileClaims) {
        if let exif = claims.exifOriginal {
            claims.capturedAt = exif
            claims.capturedFrom = "exif"
        } else if let time = xmp.original ?? xmp.created {
            claims.capturedAt = time
            claims.capturedFrom = "xmp"
        }
    }

    /// Whether an APP11 payload is a JUMBF box of a C2PA manifest store: common identifier `JP`, box instance
    /// and sequence numbers, then a `jumb` superbox whose `jumd` description box has the label `c2pa`
    /// (C2PA 2.1, "Embedding manifests into JPEG").
    static func isC2PAJUMBF(_ p: ByteWindow) -> Bool {
        // CI (2) En (2) Z (4), then LBox (4) 'jumb', then LBox (4) 'jumd' UUID (16) toggles (1) label.
        guard p.matches(0, "JP"), p.matches(12, "jumb"), p.matches(20, "jumd") else { return false }
        return p.matches(41, "c2pa\0") || p.matches(41, "c2pa")
    }
}

/// A TIFF structure (EXIF's, or a bare TIFF file): IFD0's Make, Model and Software, the Exif IFD's
/// DateTimeOriginal and OffsetTimeOriginal, the GPS IFD's position. Each IFD is read once (a pointer back to an
/// IFD already read is ignored), at most ``maxEntries`` entries each, every value checked to lie inside.
enum TIFFClaims {
    static let maxEntries = 512
    static let maxIFDs = 4

    struct Entry {
        var type: UInt16
        var count: UInt32
        var value: ByteWindow
    }

    static func read(_ tiff: ByteWindow, into claims: inout FileClaims) {
        var t = tiff
        if t.matches(0, "II") {
            t.littleEndian = true
        } else if !t.matches(0, "MM") {
            return
        }
        guard t.u16(2) == 42, let first = t.u32(4) else { return }
        var visited: Set<UInt32> = []
        guard let ifd0 = ifd(t, at: first, visited: &visited) else { return }
        claims.make = ascii(ifd0[0x010F])
        claims.model = ascii(ifd0[0x0110])
        claims.software = ascii(ifd0[0x0131])
        if let pointer = long(ifd0[0x8769], t), let exif = ifd(t, at: pointer, visited: &visited),
            let original = ascii(exif[0x9003])
        {
            claims.exifOriginal = ClaimTime.exif(original, offset: ascii(exif[0x9011]))
        }
        if let pointer = long(ifd0[0x8825], t), let gps = ifd(t, at: pointer, visited: &visited) {
            claims.gps = position(gps, t)
        }
    }

    /// The entries of the IFD at `offset`, by tag; `nil` when it is out of bounds or read already.
    static func ifd(_ t: ByteWindow, at offset: UInt32, visited: inout Set<UInt32>) -> [UInt16: Entry]? {
        guard visited.count < maxIFDs, visited.insert(offset).inserted, offset <= UInt32(Int32.max),
            let count = t.u16(Int(offset)), count > 0
        else { return nil }
        var entries: [UInt16: Entry] = [:]
        let base = Int(offset) + 2
        for i in 0..<min(Int(count), maxEntries) {
            let at = base + i * 12
            guard let tag = t.u16(at), let type = t.u16(at + 2), let n = t.u32(at + 4) else { break }
            let unit: Int
            switch type {
            case 1, 2, 6, 7: unit = 1
            case 3, 8: unit = 2
            case 4, 9, 11: unit = 4
            case 5, 10, 12: unit = 8
            default: continue
            }
            guard n <= 65_536 else { continue }
            let length = Int(n) * unit
            let value: ByteWindow?
            if length <= 4 {
                value = t.window(at + 8, length)
            } else if let pointer = t.u32(at + 8), pointer <= UInt32(Int32.max) {
                value = t.window(Int(pointer), length)
            } else {
                value = nil
            }
            guard let value, entries[tag] == nil else { continue }
            entries[tag] = Entry(type: type, count: n, value: value)
        }
        return entries
    }

    static func ascii(_ entry: Entry?) -> String? {
        guard let entry, entry.type == 2 || entry.type == 7 else { return nil }
        return ClaimText.sanitize(entry.value.bytes)
    }

    static func long(_ entry: Entry?, _ t: ByteWindow) -> UInt32? {
        guard let entry, entry.count == 1 else { return nil }
        switch entry.type {
        case 4, 13: return entry.value.u32(0)
        case 3: return entry.value.u16(0).map(UInt32.init)
        default: return nil
        }
    }

    /// Unsigned rational `index` of a RATIONAL entry; `nil` for a zero denominator.
    static func rational(_ entry: Entry, _ index: Int) -> Double? {
        guard entry.type == 5, let n = entry.value.u32(index * 8), let d = entry.value.u32(index * 8 + 4), d != 0
        else { return nil }
        return Double(n) / Double(d)
    }

    /// GPSLatitudeRef/GPSLatitude, GPSLongitudeRef/GPSLongitude (degrees, minutes, seconds), GPSAltitudeRef/
    /// GPSAltitude. Both references are required: a latitude without N or S is not a position.
    static func position(_ gps: [UInt16: Entry], _ t: ByteWindow) -> GPSClaim? {
        guard let latRef = gps[1]?.value.u8(0), let lat = gps[2], lat.count == 3,
            let lonRef = gps[3]?.value.u8(0), let lon = gps[4], lon.count == 3,
            latRef == 0x4E || latRef == 0x53, lonRef == 0x45 || lonRef == 0x57,
            let latD = rational(lat, 0), let latM = rational(lat, 1), let latS = rational(lat, 2),
            let lonD = rational(lon, 0), let lonM = rational(lon, 1), let lonS = rational(lon, 2),
            latM < 60, latS < 60, lonM < 60, lonS < 60
        else { return nil }
        let latitude = (latD + latM / 60 + latS / 3600) * (latRef == 0x53 ? -1 : 1)
        let longitude = (lonD + lonM / 60 + lonS / 3600) * (lonRef == 0x57 ? -1 : 1)
        var altitude: Double?
        if let alt = gps[6], alt.count == 1, let metres = rational(alt, 0) {
            altitude = gps[5]?.value.u8(0) == 1 ? -metres : metres
        }
        return GPSClaim(lat: latitude, lon: longitude, alt: altitude, from: "exif")
    }
}

/// The capture times of an XMP packet, found by a bounded text scan (no XML parser): `exif:DateTimeOriginal`
/// and `xmp:CreateDate`, as attributes (`exif:DateTimeOriginal="…"`) or elements
/// (`<exif:DateTimeOriginal>…</…>`), with those conventional prefixes only.
enum XMPClaims {
    /// Bytes of the packet scanned.
    static let maxBytes = 64 * 1024

    static func times(in packet: ArraySlice<UInt8>) -> (original: ClaimedTime?, created: ClaimedTime?) {
        let scanned = packet.prefix(maxBytes)
        return (
            value(of: "exif:DateTimeOriginal", in: scanned).flatMap(ClaimTime.iso8601),
            value(of: "xmp:CreateDate", in: scanned).flatMap(ClaimTime.iso8601)
        )
    }

    static func value(of name: String, in text: ArraySlice<UInt8>) -> String? {
        let key = Array(name.utf8)
        var from = 0
        while let at = firstOffset(of: key, in: text, from: from) {
            from = at + key.count
            let rest = text.dropFirst(from).prefix(80)
            var i = rest.startIndex
            while i < rest.endIndex, rest[i] == 0x20 { i += 1 }
            guard i < rest.endIndex else { return nil }
            let terminator: UInt8
            switch rest[i] {
            case 0x3D:  // ="…" or ='…'
                i += 1
                while i < rest.endIndex, rest[i] == 0x20 { i += 1 }
                guard i < rest.endIndex, rest[i] == 0x22 || rest[i] == 0x27 else { continue }
                terminator = rest[i]
            case 0x3E: terminator = 0x3C  // >…<
            default: continue
            }
            i += 1
            guard let end = rest[i...].firstIndex(of: terminator) else { continue }
            return ClaimText.sanitize(rest[i..<end], limit: 64)
        }
        return nil
    }
}
