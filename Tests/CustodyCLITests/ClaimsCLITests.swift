import CustodyTestSupport
import Foundation
import Testing

/// `ingest` records what files say about themselves; `show` prints it under "The file says" (and `claims` in
/// JSON) beside the collector's provenance; `ls --captured-after/--captured-before` filter by it.
@Suite struct ClaimsCLITests: CLIArchiveSuite {
    let dir = TempDirectory("claims-cli")
    static let passphrase = "claims cli passphrase"

    @Test func ingestShowAndFilterByClaimedCaptureTime() throws {
        #expect(initArchive("a").status == 0)
        dir.write("field/photo.jpg", ClaimFixtures.jpeg(c2pa: true))
        dir.write("field/clip.mp4", ClaimFixtures.mp4(created: 3_855_280_530 + 86_400))  // a day later
        dir.write("field/statement.pdf", ClaimFixtures.pdf(info: [("CreationDate", "D:20251231")]))
        dir.write("field/notes.txt", text: "no claims here")
        let ingest = CLI.run(
            [
                "ingest", dir.path + "/field", "--collected-at", "2026-04-01T09:00:00Z", "--location", "Office",
                "--json",
            ],
            environment: env("a")
        )
        #expect(ingest.status == 0, "\(ingest.stderr)")
        let items = try #require(ingest.json?["items"] as? [[String: Any]])
        var ids: [String: String] = [:]
        for item in items {
            let path = try #require(item["path"] as? String)
            ids[String(path.split(separator: "/").last ?? "")] = item["id"] as? String
        }
        let photo = try #require(ids["photo.jpg"])

        let show = CLI.run(["show", photo, "--json"], environment: env("a"))
        #expect(show.status == 0, "\(show.stderr)")
        let json = try #require(show.json)
        #expect(json["collected_at"] as? String == "2026-04-01T09:00:00Z")
        #expect(json["location"] as? String == "Office")
        let claims = try #require(json["claims"] as? [String: Any])
        #expect(claims["format"] as? String == "jpeg")
        #expect(claims["make"] as? String == "Fixture Cam")
        #expect(claims["c2pa"] as? Bool == true)
        #expect(claims["captured_from"] as? String == "exif")
        let captured = try #require(claims["captured_at"] as? [String: Any])
        #expect(captured["value"] as? String == "2026-03-02T10:15:30+03:00")
        #expect(captured["precision"] as? String == "offset")
        #expect(captured["utc"] as? String == "2026-03-02T07:15:30Z")
        let gps = try #require(claims["gps"] as? [String: Any])
        #expect(gps["lat"] as? Double == 48.85837)
        #expect(claims["file_modified_at"] is String)

        let text = CLI.run(["show", photo], environment: env("a"))
        #expect(text.stdout.contains("The file says"))
        #expect(text.stdout.contains("2026-03-02T10:15:30+03:00 (exif, offset)"))
        #expect(text.stdout.contains("collected at  2026-04-01T09:00:00Z"))

        func listed(_ arguments: [String]) throws -> Set<String> {
            let ls = CLI.run(["ls", "--json"] + arguments, environment: env("a"))
            #expect(ls.status == 0, "\(ls.stderr)")
            let rows = try #require(ls.json?["items"] as? [[String: Any]])
            return Set(rows.compactMap { $0["name"] as? String })
        }
        #expect(try listed(["--captured-after", "2026-03-02"]) == ["photo.jpg", "clip.mp4"])
        #expect(try listed(["--captured-after", "2026-03-03"]) == ["clip.mp4"])
        #expect(try listed(["--captured-before", "2026-03-02T07:15:31Z"]) == ["photo.jpg", "statement.pdf"])
        #expect(try listed(["--captured-after", "2026", "--captured-before", "2026-03-02T10:15:30+03:00"]).isEmpty)
        let row = CLI.run(["ls", "--json", "--captured-after", "2026-03-03"], environment: env("a"))
        #expect((row.json?["items"] as? [[String: Any]])?.first?["captured_at"] as? String == "2026-03-03T07:15:30Z")

        let bad = CLI.run(["ls", "--captured-after", "last tuesday"], environment: env("a").jsonErrors)
        #expect(bad.status == 64)
        #expect(bad.error?.problem.contains("--captured-after") == true)

        // --no-claims: nothing recorded.
        dir.write("more/photo2.jpg", ClaimFixtures.jpeg(tiff: ClaimFixtures.exifTIFF(make: "Second")))
        let plain = CLI.run(["ingest", dir.path + "/more", "--no-claims", "--json"], environment: env("a"))
        let plainID = try #require((plain.json?["items"] as? [[String: Any]])?.first?["id"] as? String)
        #expect(CLI.run(["show", plainID, "--json"], environment: env("a")).json?["claims"] == nil)
    }
}
