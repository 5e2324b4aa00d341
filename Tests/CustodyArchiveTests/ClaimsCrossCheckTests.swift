import CustodyTestSupport
import Foundation
import Testing

@testable import CustodyClaims

/// The fixtures read by an independent implementation, ExifTool (Debian `libimage-exiftool-perl`), when it is
/// installed: it must find in them what our parsers find, so neither the fixtures nor the parsers share a
/// misreading of the specifications.
@Suite(.enabled(if: FileManager.default.isExecutableFile(atPath: "/usr/bin/exiftool")))
struct ClaimsCrossCheckTests {
    let dir = TempDirectory("claims-exiftool")

    func exiftool(_ bytes: [UInt8], _ name: String) throws -> [String: Any] {
        let path = dir.write(name, bytes)
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/exiftool")
        process.arguments = ["-j", "-n", "-G1", path]
        let pipe = Pipe()
        process.standardOutput = pipe
        try process.run()
        let data = pipe.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        let rows = try #require(try JSONSerialization.jsonObject(with: data) as? [[String: Any]])
        return try #require(rows.first)
    }

    @Test func jpeg() throws {
        let bytes = ClaimFixtures.jpeg(tiff: ClaimFixtures.exifTIFF(gps: (-33.8688, -70.6693, -12.25)))
        let tool = try exiftool(bytes, "photo.jpg")
        let ours = ClaimsTests.claims(bytes)
        #expect(tool["IFD0:Make"] as? String == ours.make)
        #expect(tool["IFD0:Model"] as? String == ours.model)
        #expect(tool["ExifIFD:DateTimeOriginal"] as? String == "2026:03:02 10:15:30")
        #expect(tool["ExifIFD:OffsetTimeOriginal"] as? String == "+03:00")
        let lat = try #require(tool["GPS:GPSLatitude"] as? Double)
        let lon = try #require(tool["GPS:GPSLongitude"] as? Double)
        let alt = try #require(tool["GPS:GPSAltitude"] as? Double)
        #expect(abs(-lat - (ours.gps?.lat ?? 0)) < 1e-6)  // -n gives the magnitude; the reference the sign
        #expect(abs(-lon - (ours.gps?.lon ?? 0)) < 1e-6)
        #expect(abs(-alt - (ours.gps?.alt ?? 0)) < 1e-6)
        #expect(tool["GPS:GPSLatitudeRef"] as? String == "S")
    }

    @Test func mp4() throws {
        let bytes = ClaimFixtures.mp4()
        let tool = try exiftool(bytes, "clip.mp4")
        let ours = ClaimsTests.claims(bytes)
        // ExifTool prints QuickTime dates as YYYY:MM:DD HH:MM:SS (UTC, as stored).
        #expect(tool["QuickTime:CreateDate"] as? String == "2026:03:02 07:15:30")
        #expect(ours.mp4Created?.utc == "2026-03-02T07:15:30Z")
        let position = try #require(tool["UserData:GPSCoordinates"] as? String)
        #expect(position.hasPrefix("48.8584 2.2945"))
    }

    @Test func pdf() throws {
        let bytes = ClaimFixtures.pdf()
        let tool = try exiftool(bytes, "statement.pdf")
        let ours = ClaimsTests.claims(bytes)
        #expect(tool["PDF:Producer"] as? String == ours.producer)
        #expect(tool["PDF:Creator"] as? String == ours.creator)
        #expect(tool["PDF:CreateDate"] as? String == "2026:03:02 10:15:30+03:00")
        #expect(tool["PDF:ModifyDate"] as? String == "2026:03:03 09:00:00Z")
    }
}
