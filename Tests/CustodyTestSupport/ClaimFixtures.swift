/// Real files with embedded metadata, built byte by byte for the claims tests and the benchmark: a JPEG with an
/// EXIF APP1 segment (IFD0, Exif IFD, GPS IFD), an MP4 with a movie header and location, a PDF with an Info
/// dictionary. The layouts follow the public specifications (EXIF 2.32 / TIFF 6.0, ISO/IEC 14496-12 and the
/// QuickTime File Format, ISO 32000-1), independently of the parsers under test.
package enum ClaimFixtures {
    /// One TIFF directory entry: tag, type, count and the value's bytes (in the file's byte order).
    package struct Entry {
        package var tag: UInt16
        package var type: UInt16
        package var count: UInt32
        package var value: [UInt8]

        package init(tag: UInt16, type: UInt16, count: UInt32, value: [UInt8]) {
            self.tag = tag
            self.type = type
            self.count = count
            self.value = value
        }

        /// An ASCII entry, NUL-terminated.
        package static func ascii(_ tag: UInt16, _ text: String) -> Entry {
            let bytes = Array(text.utf8) + [0]
            return Entry(tag: tag, type: 2, count: UInt32(bytes.count), value: bytes)
        }

        /// A RATIONAL entry (big-endian).
        package static func rationals(_ tag: UInt16, _ values: [(UInt32, UInt32)]) -> Entry {
            Entry(tag: tag, type: 5, count: UInt32(values.count), value: values.flatMap { be32($0.0) + be32($0.1) })
        }

        /// A LONG entry (big-endian).
        package static func long(_ tag: UInt16, _ value: UInt32) -> Entry {
            Entry(tag: tag, type: 4, count: 1, value: be32(value))
        }

        /// A BYTE entry.
        package static func byte(_ tag: UInt16, _ value: UInt8) -> Entry {
            Entry(tag: tag, type: 1, count: 1, value: [value])
        }
    }

    package static func be16(_ v: UInt16) -> [UInt8] { [UInt8(v >> 8), UInt8(v & 0xFF)] }
    package static func be32(_ v: UInt32) -> [UInt8] { (0..<4).map { UInt8(truncatingIfNeeded: v >> (24 - 8 * $0)) } }
    package static func be64(_ v: UInt64) -> [UInt8] { (0..<8).map { UInt8(truncatingIfNeeded: v >> (56 - 8 * $0)) } }

    /// A big-endian IFD at `offset` of the TIFF structure: entry count, 12-byte entries (values of more than
    /// four bytes placed after the directory), a zero next-IFD offset.
    package static func ifd(_ entries: [Entry], at offset: Int) -> [UInt8] {
        let sorted = entries.sorted { $0.tag < $1.tag }
        var directory = be16(UInt16(sorted.count))
        var data: [UInt8] = []
        let dataStart = offset + 2 + 12 * sorted.count + 4
        for e in sorted {
            directory += be16(e.tag) + be16(e.type) + be32(e.count)
            if e.value.count <= 4 {
                directory += e.value + [UInt8](repeating: 0, count: 4 - e.value.count)
            } else {
                directory += be32(UInt32(dataStart + data.count))
                data += e.value
                if data.count % 2 == 1 { data.append(0) }
            }
        }
        return directory + [0, 0, 0, 0] + data
    }

    /// Degrees as EXIF's degrees, minutes, seconds rationals (seconds to 1/10000).
    package static func dms(_ degrees: Double) -> [(UInt32, UInt32)] {
        let value = abs(degrees)
        let d = value.rounded(.down)
        let m = ((value - d) * 60).rounded(.down)
        let s = ((value - d) * 60 - m) * 60
        return [(UInt32(d), 1), (UInt32(m), 1), (UInt32((s * 10_000).rounded()), 10_000)]
    }

    /// The TIFF structure of an EXIF block: IFD0 (Make, Model, Software, pointers), the Exif IFD
    /// (DateTimeOriginal, OffsetTimeOriginal) and the GPS IFD, big-endian ("MM").
    package static func exifTIFF(
        make: String? = "Fixture Cam",
        model: String? = "FC-1",
        software: String? = nil,
        original: String? = "2026:03:02 10:15:30",
        offset: String? = "+03:00",
        gps: (lat: Double, lon: Double, alt: Double?)? = (48.858_37, 2.294_48, 35.5)
    ) -> [UInt8] {
        var ifd0: [Entry] = []
        if let make { ifd0.append(.ascii(0x010F, make)) }
        if let model { ifd0.append(.ascii(0x0110, model)) }
        if let software { ifd0.append(.ascii(0x0131, software)) }
        var exif: [Entry] = []
        if let original { exif.append(.ascii(0x9003, original)) }
        if let offset { exif.append(.ascii(0x9011, offset)) }
        var gpsEntries: [Entry] = []
        if let gps {
            gpsEntries += [
                Entry(tag: 0, type: 1, count: 4, value: [2, 3, 0, 0]),
                .ascii(1, gps.lat < 0 ? "S" : "N"), .rationals(2, dms(gps.lat)),
                .ascii(3, gps.lon < 0 ? "W" : "E"), .rationals(4, dms(gps.lon)),
            ]
            if let alt = gps.alt {
                gpsEntries += [.byte(5, alt < 0 ? 1 : 0), .rationals(6, [(UInt32((abs(alt) * 100).rounded()), 100)])]
            }
        }
        // Layout: header (8), IFD0, Exif IFD, GPS IFD; IFD0's size depends only on its entry count and data.
        let ifd0Entries = ifd0.count + (exif.isEmpty ? 0 : 1) + (gpsEntries.isEmpty ? 0 : 1)
        let ifd0Data = ifd0.reduce(0) { $0 + ($1.value.count > 4 ? $1.value.count + $1.value.count % 2 : 0) }
        let exifAt = 8 + 2 + 12 * ifd0Entries + 4 + ifd0Data
        let exifBytes = exif.isEmpty ? [] : ifd(exif, at: exifAt)
        let gpsAt = exifAt + exifBytes.count
        if !exif.isEmpty { ifd0.append(.long(0x8769, UInt32(exifAt))) }
        if !gpsEntries.isEmpty { ifd0.append(.long(0x8825, UInt32(gpsAt))) }
        let gpsBytes = gpsEntries.isEmpty ? [] : ifd(gpsEntries, at: gpsAt)
        return Array("MM".utf8) + be16(42) + be32(8) + ifd(ifd0, at: 8) + exifBytes + gpsBytes
    }

    /// A JPEG segment: marker and length-prefixed payload.
    package static func segment(_ marker: UInt8, _ payload: [UInt8]) -> [UInt8] {
        [0xFF, marker] + be16(UInt16(payload.count + 2)) + payload
    }

    /// A JPEG: SOI, APP1 Exif (`tiff`), optional APP1 XMP and APP11 C2PA JUMBF, a quantisation table, a
    /// start-of-frame, a start of scan, `scan` bytes of entropy-coded data, EOI.
    package static func jpeg(
        tiff: [UInt8]? = exifTIFF(),
        xmp: String? = nil,
        c2pa: Bool = false,
        scan: [UInt8] = [0x12, 0x34, 0x56]
    ) -> [UInt8] {
        var bytes: [UInt8] = [0xFF, 0xD8]
        if let tiff { bytes += segment(0xE1, Array("Exif".utf8) + [0, 0] + tiff) }
        if let xmp { bytes += segment(0xE1, Array("http://ns.adobe.com/xap/1.0/".utf8) + [0] + Array(xmp.utf8)) }
        if c2pa {
            // JUMBF (ISO/IEC 19566-5) as C2PA embeds it: CI "JP", En, Z, then the jumb superbox and its jumd.
            let label = Array("c2pa".utf8) + [0]
            let uuid: [UInt8] = [
                0x63, 0x32, 0x70, 0x61, 0x00, 0x11, 0x00, 0x10, 0x80, 0x00, 0x00, 0xAA, 0x00, 0x38, 0x9B, 0x71,
            ]
            let jumd = be32(UInt32(8 + 16 + 1 + label.count)) + Array("jumd".utf8) + uuid + [0x03] + label
            let jumb = be32(UInt32(8 + jumd.count)) + Array("jumb".utf8) + jumd
            bytes += segment(0xEB, Array("JP".utf8) + [0x02, 0x11] + be32(1) + jumb)
        }
        bytes += segment(0xDB, [0] + [UInt8](repeating: 1, count: 64))
        bytes += segment(0xC0, [8] + be16(8) + be16(8) + [1, 1, 0x11, 0])
        bytes += segment(0xDA, [1, 1, 0, 0, 63, 0])
        return bytes + scan + [0xFF, 0xD9]
    }

    /// An ISO BMFF box.
    package static func box(_ type: String, _ content: [UInt8]) -> [UInt8] {
        be32(UInt32(8 + content.count)) + Array(type.utf8.prefix(4)) + content
    }

    /// The `©xyz` user-data box (QuickTime): length, language, string.
    package static func xyz(_ text: String) -> [UInt8] {
        let bytes = Array(text.utf8)
        return be32(UInt32(8 + 4 + bytes.count)) + [0xA9, 0x78, 0x79, 0x7A] + be16(UInt16(bytes.count))
            + be16(0x15C7) + bytes
    }

    /// An MP4: `ftyp` (isom), `moov` with an `mvhd` (version 0 or 1) whose creation_time is `created`
    /// (seconds since 1904; the default is 2026-03-02T07:15:30Z), a `udta` with `©xyz` (`location`), optionally a QuickTime `meta` with mdta keys;
    /// an optional C2PA `uuid` box; then `mdat` with `payload`; `moovLast` puts `moov` after `mdat`; `tracks`
    /// are boxes put in `moov` between `mvhd` and `udta`.
    package static func mp4(
        created: UInt64 = 3_855_280_530,
        version1: Bool = false,
        location: String? = "+48.8584+002.2945+035.500/",
        keys: [(String, String)] = [],
        c2pa: Bool = false,
        payload: [UInt8] = [UInt8](repeating: 0xAB, count: 64),
        moovLast: Bool = false,
        tracks: [UInt8] = []
    ) -> [UInt8] {
        let ftyp = box("ftyp", Array("isom".utf8) + be32(0x200) + Array("isomiso2mp41".utf8))
        var mvhd: [UInt8] =
            version1
            ? [1, 0, 0, 0] + be64(created) + be64(created)
            : [0, 0, 0, 0] + be32(UInt32(truncatingIfNeeded: created)) + be32(UInt32(truncatingIfNeeded: created))
        mvhd +=
            be32(1000) + (version1 ? be64(0) : be32(0)) + be32(0x0001_0000) + be16(0x0100)
            + [UInt8](repeating: 0, count: 10)
        mvhd += [UInt8](repeating: 0, count: 36) + [UInt8](repeating: 0, count: 24) + be32(2)
        var moovContent = box("mvhd", mvhd) + tracks
        if let location { moovContent += box("udta", xyz(location)) }
        if !keys.isEmpty {
            let hdlr = box("hdlr", [0, 0, 0, 0] + be32(0) + Array("mdta".utf8) + [UInt8](repeating: 0, count: 13))
            var keyEntries = [0, 0, 0, 0] + be32(UInt32(keys.count))
            var items: [UInt8] = []
            for (index, (key, value)) in keys.enumerated() {
                keyEntries += be32(UInt32(8 + key.utf8.count)) + Array("mdta".utf8) + Array(key.utf8)
                let data = box("data", be32(1) + be32(0) + Array(value.utf8))
                items += be32(UInt32(8 + data.count)) + be32(UInt32(index + 1)) + data
            }
            moovContent += box("meta", hdlr + box("keys", keyEntries) + box("ilst", items))
        }
        let moov = box("moov", moovContent)
        var file = ftyp
        if c2pa {
            let uuid: [UInt8] = [
                0xD8, 0xFE, 0xC3, 0xD6, 0x1B, 0x0E, 0x48, 0x3C, 0x92, 0x97, 0x58, 0x28, 0x87, 0x7E, 0xC4, 0x81,
            ]
            file += box("uuid", uuid + [0, 0, 0, 0] + Array("manifest".utf8) + [0])
        }
        let mdat = box("mdat", payload)
        file += moovLast ? mdat + moov : moov + mdat
        return file
    }

    /// A PDF 1.4 with one page, an Info dictionary of `info` (literal strings, escaped), a classic
    /// cross-reference table with exact offsets and a trailer; `filler` bytes of comment lines after the header
    /// push the Info object past the first MiB when large. `c2pa` adds an embedded file marked as a C2PA manifest.
    package static func pdf(
        info: [(String, String)] = [
            ("Producer", "Fixture PDF 1.0"), ("Creator", "Statement (Writer)"),
            ("CreationDate", "D:20260302101530+03'00'"), ("ModDate", "D:20260303090000Z"),
        ],
        c2pa: Bool = false,
        filler: Int = 0
    ) -> [UInt8] {
        var out = Array("%PDF-1.4\n%\u{E2}\u{E3}\u{CF}\u{D3}\n".utf8)
        var line = 0
        while out.count < filler {
            out += Array("% filler line \(line) ..............................................\n".utf8)
            line += 1
        }
        var offsets: [Int] = []
        func object(_ body: String) {
            offsets.append(out.count)
            out += Array("\(offsets.count) 0 obj\n\(body)\nendobj\n".utf8)
        }
        func literal(_ s: String) -> String {
            "(" + s.replacingAll("\\", "\\\\").replacingAll("(", "\\(").replacingAll(")", "\\)") + ")"
        }
        object("<< /Type /Catalog /Pages 2 0 R" + (c2pa ? " /AF [5 0 R]" : "") + " >>")
        object("<< /Type /Pages /Kids [3 0 R] /Count 1 >>")
        object("<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] >>")
        object("<< " + info.map { "/\($0.0) \(literal($0.1))" }.joined(separator: " ") + " >>")
        if c2pa {
            object(
                "<< /Type /Filespec /F (manifest.c2pa) /AFRelationship /C2PA_Manifest /Subtype /application#2Fc2pa >>"
            )
        }
        let xref = out.count
        out += Array("xref\n0 \(offsets.count + 1)\n0000000000 65535 f \n".utf8)
        for offset in offsets {
            let digits = String(offset)
            out += Array((String(repeating: "0", count: 10 - digits.count) + digits + " 00000 n \n").utf8)
        }
        out += Array(
            "trailer\n<< /Size \(offsets.count + 1) /Root 1 0 R /Info 4 0 R >>\nstartxref\n\(xref)\n%%EOF\n".utf8
        )
        return out
    }
}

extension String {
    fileprivate func replacingAll(_ target: Character, _ replacement: String) -> String {
        var result = ""
        for character in self { if character == target { result += replacement } else { result.append(character) } }
        return result
    }
}
