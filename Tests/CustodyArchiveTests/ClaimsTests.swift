import CustodyTestSupport
import Foundation
import Testing

@testable import CustodyArchive
@testable import CustodyClaims

/// The claims parsers on real files built by ``ClaimFixtures``, on truncated and hostile variants, and through
/// ingest. Expected values were worked out from the fixtures' inputs, independently of the parsers (the MP4
/// times with Python's `datetime`).
@Suite struct ClaimsTests {
    let dir = TempDirectory("claims")

    /// Extracts from a whole file held in memory.
    static func claims(_ bytes: [UInt8]) -> FileClaims {
        ClaimExtractor.extract(head: bytes[...], tail: bytes[...], size: Int64(bytes.count)) { offset, count in
            guard offset >= 0, offset < Int64(bytes.count) else { return nil }
            return Array(bytes[Int(offset)..<min(bytes.count, Int(offset) + count)])
        }
    }

    @Test func jpegWithEXIFGivesEveryClaim() throws {
        let c = Self.claims(ClaimFixtures.jpeg())
        #expect(c.format == "jpeg")
        #expect(c.make == "Fixture Cam")
        #expect(c.model == "FC-1")
        #expect(
            c.exifOriginal
                == ClaimedTime(value: "2026-03-02T10:15:30+03:00", precision: .offset, utc: "2026-03-02T07:15:30Z")
        )
        #expect(c.capturedAt == c.exifOriginal)
        #expect(c.capturedFrom == "exif")
        let gps = try #require(c.gps)
        #expect(gps.lat == 48.85837)
        #expect(gps.lon == 2.29448)
        #expect(gps.alt == 35.5)
        #expect(gps.from == "exif")
        #expect(!c.c2pa)
    }

    @Test func localTimeWithoutOffsetKeepsItsPrecision() {
        let c = Self.claims(ClaimFixtures.jpeg(tiff: ClaimFixtures.exifTIFF(offset: nil)))
        #expect(c.capturedAt == ClaimedTime(value: "2026-03-02T10:15:30", precision: .local, utc: nil))
        #expect(c.capturedAt?.sortKey == "2026-03-02T10:15:30Z")
    }

    @Test func southWestAndBelowSeaLevel() throws {
        let tiff = ClaimFixtures.exifTIFF(software: "Editor 2.1", gps: (-33.8688, -70.6693, -12.25))
        let c = Self.claims(ClaimFixtures.jpeg(tiff: tiff))
        let gps = try #require(c.gps)
        #expect(gps.lat == -33.8688)
        #expect(gps.lon == -70.6693)
        #expect(gps.alt == -12.25)
        #expect(c.software == "Editor 2.1")
    }

    @Test func xmpCaptureTimeWhenThereIsNoEXIF() {
        let xmp = """
            <x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF><rdf:Description xmlns:xmp="http://ns.adobe.com/xap/1.0/" \
            xmp:CreateDate="2026-01-05T08:00:00.25-05:00"/></rdf:RDF></x:xmpmeta>
            """
        let c = Self.claims(ClaimFixtures.jpeg(tiff: nil, xmp: xmp))
        #expect(
            c.capturedAt
                == ClaimedTime(value: "2026-01-05T08:00:00-05:00", precision: .offset, utc: "2026-01-05T13:00:00Z")
        )
        #expect(c.capturedFrom == "xmp")
        let element = "<exif:DateTimeOriginal>2025-12-31</exif:DateTimeOriginal>"
        let day = Self.claims(ClaimFixtures.jpeg(tiff: nil, xmp: element))
        #expect(day.capturedAt == ClaimedTime(value: "2025-12-31", precision: .day, utc: nil))
    }

    @Test func c2paIsDetectedInJPEGMP4AndPDF() {
        #expect(Self.claims(ClaimFixtures.jpeg(c2pa: true)).c2pa)
        #expect(Self.claims(ClaimFixtures.mp4(c2pa: true)).c2pa)
        #expect(Self.claims(ClaimFixtures.pdf(c2pa: true)).c2pa)
        #expect(!Self.claims(ClaimFixtures.mp4()).c2pa)
        #expect(!Self.claims(ClaimFixtures.pdf()).c2pa)
    }

    @Test("MP4 movie header and location", arguments: [false, true])
    func mp4CreationTimeAndLocation(version1: Bool) throws {
        let c = Self.claims(ClaimFixtures.mp4(version1: version1))
        #expect(c.format == "mp4")
        let created = ClaimedTime(value: "2026-03-02T07:15:30Z", precision: .utc, utc: "2026-03-02T07:15:30Z")
        #expect(c.mp4Created == created)
        #expect(c.capturedAt == created)
        #expect(c.capturedFrom == "mvhd")
        #expect(c.iso6709 == "+48.8584+002.2945+035.500/")
        let gps = try #require(c.gps)
        #expect(gps.lat == 48.8584)
        #expect(gps.lon == 2.2945)
        #expect(gps.alt == 35.5)
        #expect(gps.from == "iso6709")
    }

    @Test func quickTimeKeysAndAMovieHeaderAfterLargeMediaData() throws {
        let file = ClaimFixtures.mp4(
            location: nil,
            keys: [
                ("com.apple.quicktime.make", "Apple"),
                ("com.apple.quicktime.location.ISO6709", "-3348.13-07040.16+520.0/"),
                ("com.apple.quicktime.creationdate", "2026-03-02T10:15:30+0300"),
            ],
            payload: [UInt8](repeating: 0, count: 3 << 20),
            moovLast: true
        )
        // Only the first 64 KiB in hand: the movie box, at the end, is reached by reads at offsets.
        var reads = 0
        let c = ClaimExtractor.extract(head: file.prefix(65_536), tail: [], size: Int64(file.count)) { offset, count in
            reads += 1
            return Array(file[Int(offset)..<min(file.count, Int(offset) + count)])
        }
        #expect(reads < 20)
        #expect(c.iso6709 == "-3348.13-07040.16+520.0/")
        let gps = try #require(c.gps)
        #expect(abs(gps.lat - -(33 + 48.13 / 60)) < 1e-6)
        #expect(abs(gps.lon - -(70 + 40.16 / 60)) < 1e-6)
        #expect(c.capturedFrom == "quicktime")
        #expect(c.capturedAt?.utc == "2026-03-02T07:15:30Z")
        #expect(c.mp4Created?.value == "2026-03-02T07:15:30Z")
    }

    @Test func largeTracksBeforeTheUserDataDoNotSpendTheReadBudget() {
        let trak = ClaimFixtures.box("trak", [UInt8](repeating: 7, count: 200_000))
        let file = ClaimFixtures.mp4(tracks: Array([[UInt8]](repeating: trak, count: 16).joined()))
        var bytesRead = 0
        let c = ClaimExtractor.extract(head: file.prefix(1024), tail: [], size: Int64(file.count)) { offset, count in
            bytesRead += count
            return Array(file[Int(offset)..<min(file.count, Int(offset) + count)])
        }
        #expect(c.iso6709 == "+48.8584+002.2945+035.500/")
        #expect(bytesRead < 4096)
    }

    @Test func pdfInfoDictionary() {
        let c = Self.claims(ClaimFixtures.pdf())
        #expect(c.format == "pdf")
        #expect(c.producer == "Fixture PDF 1.0")
        #expect(c.creator == "Statement (Writer)")
        #expect(
            c.pdfCreated
                == ClaimedTime(value: "2026-03-02T10:15:30+03:00", precision: .offset, utc: "2026-03-02T07:15:30Z")
        )
        #expect(
            c.pdfModified
                == ClaimedTime(value: "2026-03-03T09:00:00+00:00", precision: .offset, utc: "2026-03-03T09:00:00Z")
        )
        #expect(c.capturedFrom == "pdf")
    }

    @Test func pdfInfoObjectFoundThroughTheCrossReferenceTable() {
        let file = ClaimFixtures.pdf(info: [("Producer", "Via xref"), ("CreationDate", "D:2026")])
        // Neither the head nor the tail holds the Info object: only the xref table's offset leads to it.
        let xref = file.count - 400
        let c = ClaimExtractor.extract(head: file.prefix(16), tail: file[xref...], size: Int64(file.count)) { o, n in
            Array(file[Int(o)..<min(file.count, Int(o) + n)])
        }
        #expect(c.producer == "Via xref")
        #expect(c.pdfCreated == ClaimedTime(value: "2026", precision: .year, utc: nil))
    }

    @Test func pdfStringsInUTF16AndDocEncodingAndEncryptedPDFs() {
        let utf16 = ClaimFixtures.pdf(info: [("Producer", "x")])
        // Replace the literal (x) with a UTF-16BE hex string: "Déclaration" with its byte order mark.
        let hex = "<FEFF0044" + "00E9" + "0063006C00610072006100740069006F006E>"
        let replaced = String(decoding: utf16, as: UTF8.self).replacingOccurrences(
            of: "/Producer (x)",
            with: "/Producer " + hex
        )
        #expect(Self.claims(Array(replaced.utf8)).producer == "Déclaration")
        let encrypted = String(decoding: ClaimFixtures.pdf(), as: UTF8.self)
            .replacingOccurrences(of: "/Root 1 0 R", with: "/Root 1 0 R /Encrypt 9 0 R")
        let c = Self.claims(Array(encrypted.utf8))
        #expect(c.producer == nil && c.pdfCreated == nil)
        #expect(PDFLexer.text([0x93, 0x84]) == "ﬁ—")
    }

    @Test(
        "PDF dates",
        arguments: [
            ("D:20260302101530+03'00'", "2026-03-02T10:15:30+03:00"),
            ("D:20260302101530-05'30", "2026-03-02T10:15:30-05:30"),
            ("D:202603021015", "2026-03-02T10:15:00"),
            ("D:20260302", "2026-03-02"),
            ("D:202603", "2026-03"),
            ("20240229235959Z", "2024-02-29T23:59:59+00:00"),
        ]
    )
    func pdfDates(text: String, value: String) {
        #expect(ClaimTime.pdf(text)?.value == value)
    }

    @Test(
        "Impossible times give no claim",
        arguments: [
            "D:20261302", "D:20260230", "D:20250229", "D:2026030225", "D:20260302101530+19'00'", "D:2026x", "D:",
        ]
    )
    func impossiblePDFDates(text: String) {
        #expect(ClaimTime.pdf(text) == nil)
    }

    @Test func exifTimesAreChecked() {
        #expect(ClaimTime.exif("0000:00:00 00:00:00", offset: nil) == nil)
        #expect(ClaimTime.exif("    :  :     :  :  ", offset: nil) == nil)
        #expect(ClaimTime.exif("2026:04:31 10:00:00", offset: nil) == nil)
        #expect(ClaimTime.exif("2026:03:02 23:30:00", offset: "-04:00")?.utc == "2026-03-03T03:30:00Z")
        #expect(ClaimTime.utcString(0) == "1970-01-01T00:00:00Z")
        #expect(ClaimTime.utcString(-1) == "1969-12-31T23:59:59Z")
        #expect(ClaimTime.utcString(951_782_400) == "2000-02-29T00:00:00Z")
        #expect(ClaimTime.mp4(0) == nil)
    }

    @Test func textIsSanitized() {
        #expect(ClaimText.sanitize(Array("Cam\u{202E}era\u{0007}\nX\0junk".utf8)) == "CameraX")
        #expect(ClaimText.sanitize(Array("e\u{301}".utf8)) == "é")
        #expect(ClaimText.sanitize(Array("   ".utf8)) == nil)
        #expect(ClaimText.sanitize([UInt8](repeating: 0x41, count: 10_000))?.utf8.count == ClaimText.maxBytes)
        #expect(ClaimText.sanitize(Array(String(repeating: "é", count: 200).utf8))?.utf8.count == 256)
    }

    // MARK: - Hostile input

    @Test func ifdLoopsAndPointersPastTheEndGiveNoClaims() {
        // The Exif pointer points back at IFD0, the GPS pointer past the end.
        var ifd0: [ClaimFixtures.Entry] = [.ascii(0x010F, "Loop"), .long(0x8769, 8), .long(0x8825, 0x7FFF_FFF0)]
        var tiff = Array("MM".utf8) + ClaimFixtures.be16(42) + ClaimFixtures.be32(8) + ClaimFixtures.ifd(ifd0, at: 8)
        var c = Self.claims(ClaimFixtures.jpeg(tiff: tiff))
        #expect(c.make == "Loop")
        #expect(c.exifOriginal == nil && c.gps == nil)
        // Huge counts and a value offset past the end.
        ifd0 = [
            ClaimFixtures.Entry(tag: 0x010F, type: 2, count: 0xFFFF_FFFF, value: ClaimFixtures.be32(8)),
            ClaimFixtures.Entry(tag: 0x0110, type: 2, count: 100, value: ClaimFixtures.be32(0xFFFF_FF00)),
            ClaimFixtures.Entry(tag: 0x8825, type: 4, count: 1, value: ClaimFixtures.be32(3)),
        ]
        tiff = Array("MM".utf8) + ClaimFixtures.be16(42) + ClaimFixtures.be32(8) + ClaimFixtures.ifd(ifd0, at: 8)
        c = Self.claims(ClaimFixtures.jpeg(tiff: tiff))
        #expect(c.make == nil && c.model == nil && c.gps == nil)
        // A directory claiming 65535 entries in a few bytes, and a first IFD past the end.
        c = Self.claims(ClaimFixtures.jpeg(tiff: Array("II".utf8) + [42, 0, 8, 0, 0, 0, 0xFF, 0xFF, 1, 2]))
        #expect(c.make == nil)
        c = Self.claims(ClaimFixtures.jpeg(tiff: Array("MM".utf8) + [0, 42, 0xFF, 0xFF, 0xFF, 0xFF]))
        #expect(c == FileClaims(format: "jpeg"))
    }

    @Test func everyTruncationOfEveryFixtureIsSafe() {
        let files = [
            ClaimFixtures.jpeg(xmp: "<x xmp:CreateDate=\"2026-01-01\"/>", c2pa: true),
            ClaimFixtures.mp4(keys: [("com.apple.quicktime.location.ISO6709", "+1+2/")], c2pa: true),
            ClaimFixtures.pdf(c2pa: true),
        ]
        for file in files {
            for length in 0...file.count {
                let cut = Array(file.prefix(length))
                let c = Self.claims(cut)
                if length < 4 { #expect(c.format == "other" || c.format == "jpeg") }
            }
        }
        // A truncated JPEG keeps no half-read segment's claims.
        let jpeg = ClaimFixtures.jpeg()
        #expect(Self.claims(Array(jpeg.prefix(40))).make == nil)
    }

    @Test func hostileBoxesAndDictionariesAreBounded() {
        // A box whose 64-bit size is huge, a zero-size box, a box shorter than its header, a moov claiming the
        // whole file and a long run of tiny boxes.
        let be32 = ClaimFixtures.be32
        let ftyp = ClaimFixtures.box("ftyp", Array("isom".utf8) + be32(0))
        for tail in [
            be32(1) + Array("moov".utf8) + ClaimFixtures.be64(UInt64.max),
            be32(0) + Array("moov".utf8) + be32(3) + Array("mvhd".utf8),
            be32(4) + Array("moov".utf8),
            be32(0xFFFF_FFFF) + Array("moov".utf8) + [UInt8](repeating: 0, count: 100),
            (0..<10_000).flatMap { _ in be32(8) + Array("free".utf8) },
        ] {
            var reads = 0
            let file = ftyp + tail
            _ = ClaimExtractor.extract(head: file[...], tail: file[...], size: Int64(file.count)) { o, n in
                reads += 1
                return o < Int64(file.count) ? Array(file[Int(o)..<min(file.count, Int(o) + n)]) : nil
            }
            #expect(reads <= ClaimExtractor.maxReads)
        }
        // A PDF whose Info dictionary never closes, nests deeply or holds an endless string.
        for body in [
            "<< /Producer (open", String(repeating: "<<", count: 10_000),
            "<< /Producer (" + String(repeating: "(", count: 50_000),
        ] {
            let pdf = "%PDF-1.4\n4 0 obj\n\(body)\ntrailer << /Info 4 0 R >>\n%%EOF"
            let c = Self.claims(Array(pdf.utf8))
            #expect(c.format == "pdf" && c.producer == nil)
        }
    }

    @Test func randomMutationsNeverTrap() {
        var generator = SystemRandomNumberGenerator()
        let seeds = [ClaimFixtures.jpeg(c2pa: true), ClaimFixtures.mp4(keys: [("k", "v")]), ClaimFixtures.pdf()]
        for _ in 0..<600 {
            var bytes = seeds[Int.random(in: 0..<seeds.count, using: &generator)]
            for _ in 0..<Int.random(in: 1...8, using: &generator) {
                let i = Int.random(in: 0..<bytes.count, using: &generator)
                bytes[i] = UInt8.random(in: 0...255, using: &generator)
            }
            _ = Self.claims(bytes)
        }
    }

    // MARK: - Through ingest

    @Test func ingestSealsClaimsApartFromProvenanceAndIndexesTheCaptureTime() async throws {
        let archive = try await Fixtures.archive(in: dir, chunkSize: 4096)
        let photo = dir.write("in/photo.jpg", ClaimFixtures.jpeg(scan: [UInt8](repeating: 0x55, count: 20_000)))
        let movie = dir.write(
            "in/clip.mp4",
            ClaimFixtures.mp4(payload: [UInt8](repeating: 1, count: 50_000), moovLast: true)
        )
        let pdf = dir.write("in/statement.pdf", ClaimFixtures.pdf(filler: 30_000))
        var options = IngestOptions()
        options.fields.collectedAt = "2026-04-01T00:00:00Z"
        options.fields.location = "collector's office"
        let report = try await archive.ingest([photo, movie, pdf], options: options)
        #expect(report.items.count == 3)
        let items = try await archive.index().list(ItemFilter())
        let byName = Dictionary(uniqueKeysWithValues: items.map { ($0.metadata.name, $0.metadata) })
        let p = try #require(byName["photo.jpg"])
        #expect(p.collectedAt == "2026-04-01T00:00:00Z")
        #expect(p.location == "collector's office")
        #expect(p.claims?.capturedAt?.utc == "2026-03-02T07:15:30Z")
        #expect(p.claims?.gps?.lat == 48.85837)
        #expect(p.claims?.fileModifiedAt != nil)
        #expect(byName["clip.mp4"]?.claims?.mp4Created?.utc == "2026-03-02T07:15:30Z")
        #expect(byName["clip.mp4"]?.claims?.iso6709 == "+48.8584+002.2945+035.500/")
        #expect(byName["statement.pdf"]?.claims?.producer == "Fixture PDF 1.0")
        var filter = ItemFilter()
        filter.capturedAfter = "2026-03-02T07:15:30Z"
        filter.capturedBefore = "2026-03-02T07:15:31Z"
        #expect(try await archive.index().list(filter).count == 3)
        filter.capturedAfter = "2026-03-02T07:15:31Z"
        filter.capturedBefore = nil
        #expect(try await archive.index().list(filter).isEmpty)

        var off = IngestOptions()
        off.extractClaims = false
        let plain = dir.write("in2/photo.jpg", ClaimFixtures.jpeg(tiff: ClaimFixtures.exifTIFF(make: "Other")))
        let item = try #require(try await archive.ingest([plain], options: off).items.first)
        #expect(try await archive.resolveItem(item.id.hex).metadata.claims == nil)
    }
}
