/// ISO base media files (MP4, MOV; ISO/IEC 14496-12, QuickTime File Format): the movie header's
/// `creation_time`, the location (`©xyz` in `moov/udta`, or the `com.apple.quicktime.location.ISO6709` key
/// of `moov/meta`), QuickTime's `com.apple.quicktime.creationdate`, and C2PA's top-level box.
///
/// The file is read through ``BoundedReads`` at explicit offsets: top-level box headers, then inside `moov`
/// only the headers of its children and the bytes of `mvhd`, `udta` and `meta` (each at most
/// ``maxBoxBytes``). The walk is flat — three fixed levels, no recursion.
enum MP4Claims {
    static let maxTopLevelBoxes = 256
    static let maxChildBoxes = 512
    static let maxBoxBytes = 256 * 1024
    /// C2PA's `uuid` box type for a manifest store in BMFF (C2PA 2.1, "Embedding manifests into BMFF").
    static let c2paUUID: [UInt8] = [
        0xD8, 0xFE, 0xC3, 0xD6, 0x1B, 0x0E, 0x48, 0x3C, 0x92, 0x97, 0x58, 0x28, 0x87, 0x7E, 0xC4, 0x81,
    ]
    static let locationKey = "com.apple.quicktime.location.ISO6709"
    static let creationKey = "com.apple.quicktime.creationdate"

    /// A box header: its type, where its content starts and ends.
    struct Box {
        var type: [UInt8]
        var contentStart: Int64
        var end: Int64
    }

    /// The header of the box at `offset`, which must end by `limit`.
    static func box(at offset: Int64, limit: Int64, _ reads: inout BoundedReads) -> Box? {
        guard offset >= 0, limit - offset >= 8, let h = reads.read(offset, Int(min(16, limit - offset))) else {
            return nil
        }
        let w = ByteWindow(h)
        guard let size32 = w.u32(0), let type = w.slice(4, 4) else { return nil }
        var size = Int64(size32)
        var header: Int64 = 8
        if size32 == 1 {
            guard let large = w.u64(8), large <= UInt64(Int64.max) else { return nil }
            size = Int64(large)
            header = 16
        } else if size32 == 0 {
            size = limit - offset  // to the end
        }
        guard size >= header, size <= limit - offset else { return nil }
        return Box(type: Array(type), contentStart: offset + header, end: offset + size)
    }

    static func read(size: Int64, _ reads: inout BoundedReads, into claims: inout FileClaims) {
        var offset: Int64 = 0
        var quicktimeCreated: ClaimedTime?
        for _ in 0..<maxTopLevelBoxes {
            guard let top = box(at: offset, limit: size, &reads) else { break }
            switch top.type {
            case Array("moov".utf8):
                quicktimeCreated = movie(top, &reads, &claims)
            case Array("uuid".utf8):
                if reads.read(top.contentStart, 16) == c2paUUID { claims.c2pa = true }
            case Array("c2pa".utf8):
                claims.c2pa = true
            default: break
            }
            offset = top.end
        }
        if let quicktimeCreated {
            claims.capturedAt = quicktimeCreated
            claims.capturedFrom = "quicktime"
        } else if let mvhd = claims.mp4Created {
            claims.capturedAt = mvhd
            claims.capturedFrom = "mvhd"
        }
        if claims.gps == nil, let iso = claims.iso6709 { claims.gps = ISO6709.parse(iso) }
    }

    /// Reads `moov`'s children; returns QuickTime's creation date key when present.
    static func movie(_ moov: Box, _ reads: inout BoundedReads, _ claims: inout FileClaims) -> ClaimedTime? {
        var offset = moov.contentStart
        var created: ClaimedTime?
        for _ in 0..<maxChildBoxes {
            guard let child = box(at: offset, limit: moov.end, &reads) else { break }
            let length = child.end - child.contentStart
            // Only the three boxes read: a movie's tracks (`trak`) would spend the read budget for nothing.
            let wanted = [Array("mvhd".utf8), Array("udta".utf8), Array("meta".utf8)].contains(child.type)
            if wanted, length <= Int64(maxBoxBytes), let content = reads.read(child.contentStart, Int(length)) {
                let w = ByteWindow(content)
                switch child.type {
                case Array("mvhd".utf8):
                    let time = w.u8(0) == 1 ? w.u64(4) : w.u32(4).map(UInt64.init)
                    claims.mp4Created = time.flatMap(ClaimTime.mp4)
                case Array("udta".utf8):
                    claims.iso6709 = claims.iso6709 ?? userDataLocation(w)
                case Array("meta".utf8):
                    let keys = metadataKeys(w)
                    claims.iso6709 = keys.location ?? claims.iso6709
                    created = keys.created.flatMap(ClaimTime.iso8601)
                default: break
                }
            }
            offset = child.end
        }
        return created
    }

    /// Boxes inside `w`, as (type, content) pairs, at most ``maxChildBoxes``.
    static func children(_ w: ByteWindow, from start: Int = 0) -> [(type: [UInt8], content: ByteWindow)] {
        var found: [(type: [UInt8], content: ByteWindow)] = []
        var offset = start
        while found.count < maxChildBoxes, let size = w.u32(offset), let type = w.slice(offset + 4, 4) {
            let length = size == 0 ? w.count - offset : Int(size)
            guard length >= 8, let content = w.window(offset + 8, length - 8) else { break }
            found.append((Array(type), content))
            offset += length
        }
        return found
    }

    /// `©xyz` in `udta`: a 16-bit string length, a 16-bit language code, then the string.
    static func userDataLocation(_ udta: ByteWindow) -> String? {
        for (type, content) in children(udta) where type == [0xA9, 0x78, 0x79, 0x7A] {
            guard let length = content.u16(0), let text = content.slice(4, Int(length)) else { continue }
            return ClaimText.sanitize(text, limit: 64)
        }
        return nil
    }

    /// The QuickTime metadata of `meta` (`hdlr` mdta, `keys`, `ilst`): the location and creation date values,
    /// UTF-8 (`data` type 1) only.
    static func metadataKeys(_ meta: ByteWindow) -> (location: String?, created: String?) {
        // QuickTime's `meta` has no version and flags; ISO's (a full box) has four bytes of them first.
        let start = meta.matches(4, "hdlr") ? 0 : 4
        var names: [UInt32: String] = [:]
        var values: [UInt32: String] = [:]
        for (type, content) in children(meta, from: start) {
            if type == Array("keys".utf8), let count = content.u32(4) {
                var offset = 8
                for index in 1...max(1, min(count, UInt32(maxChildBoxes))) where count > 0 {
                    guard let size = content.u32(offset), size >= 8,
                        let name = content.slice(offset + 8, Int(size) - 8)
                    else { break }
                    if content.matches(offset + 4, "mdta"), name.count <= 64 {
                        names[index] = String(decoding: name, as: UTF8.self)
                    }
                    offset += Int(size)
                }
            } else if type == Array("ilst".utf8) {
                for (entry, item) in children(content) {
                    let index = ByteWindow(entry).u32(0) ?? 0
                    for (dataType, data) in children(item) where dataType == Array("data".utf8) {
                        guard data.u32(0) == 1, let text = data.slice(8, data.count - 8) else { continue }
                        values[index] = ClaimText.sanitize(text, limit: 64)
                    }
                }
            }
        }
        func value(_ key: String) -> String? {
            names.first(where: { $0.value == key }).flatMap { values[$0.key] }
        }
        return (value(locationKey), value(creationKey))
    }
}

/// An ISO 6709 position string as MP4 and MOV files write it: `±DD.D±DDD.D[±AAA.A][CRS…]/`, the degrees
/// also as `±DDMM.M`/`±DDDMM.M` or `±DDMMSS.S`/`±DDDMMSS.S`.
enum ISO6709 {
    static func parse(_ text: String) -> GPSClaim? {
        let b = Array(text.utf8.prefix(64))
        var parts: [(sign: Double, integer: [UInt8], fraction: [UInt8])] = []
        var i = 0
        while i < b.count, parts.count < 3, b[i] == 0x2B || b[i] == 0x2D {
            let sign: Double = b[i] == 0x2D ? -1 : 1
            i += 1
            var integer: [UInt8] = []
            var fraction: [UInt8] = []
            while i < b.count, (0x30...0x39).contains(b[i]), integer.count < 8 {
                integer.append(b[i])
                i += 1
            }
            if i < b.count, b[i] == 0x2E {
                i += 1
                while i < b.count, (0x30...0x39).contains(b[i]), fraction.count < 12 {
                    fraction.append(b[i])
                    i += 1
                }
            }
            guard !integer.isEmpty else { return nil }
            parts.append((sign, integer, fraction))
        }
        guard parts.count >= 2, let lat = angle(parts[0], degreeDigits: 2), let lon = angle(parts[1], degreeDigits: 3)
        else { return nil }
        let alt = parts.count == 3 ? decimal(parts[2].integer, parts[2].fraction).map { $0 * parts[2].sign } : nil
        return GPSClaim(lat: lat, lon: lon, alt: alt, from: "iso6709")
    }

    static func decimal(_ integer: [UInt8], _ fraction: [UInt8]) -> Double? {
        var value = 0.0
        for d in integer { value = value * 10 + Double(d - 0x30) }
        var scale = 0.1
        for d in fraction {
            value += Double(d - 0x30) * scale
            scale /= 10
        }
        return value
    }

    static func angle(_ p: (sign: Double, integer: [UInt8], fraction: [UInt8]), degreeDigits: Int) -> Double? {
        guard let whole = decimal(p.integer, p.fraction) else { return nil }
        let value: Double
        switch p.integer.count - degreeDigits {
        case 0: value = whole
        case 2:
            let minutes = whole.truncatingRemainder(dividingBy: 100)
            guard minutes < 60 else { return nil }
            value = (whole - minutes) / 100 + minutes / 60
        case 4:
            let seconds = whole.truncatingRemainder(dividingBy: 100)
            let minutes = ((whole - seconds) / 100).truncatingRemainder(dividingBy: 100)
            guard seconds < 60, minutes < 60 else { return nil }
            value = ((whole - seconds) / 100 - minutes) / 100 + minutes / 60 + seconds / 3600
        default: return nil
        }
        return value * p.sign
    }
}
