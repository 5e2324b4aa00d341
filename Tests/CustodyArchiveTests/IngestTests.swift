import CustodyCrypto
import CustodyStorage
import CustodyTestSupport
import Foundation
import Testing

@testable import CustodyArchive

@Suite struct IngestTests {
    let dir = TempDirectory("ingest")

    @Test func ingestExtractRoundTripForSeveralSizes() async throws {
        let archive = try await Fixtures.archive(in: dir, chunkSize: 4096)
        for size in [0, 1, 511, 4096, 4097, 3 * 4096 + 17, 300_000] {
            let data = randomBytes(size)
            let path = dir.write("in/file-\(size).bin", data)
            let report = try await archive.ingest([path], options: IngestOptions())
            let item = try #require(report.items.first)
            #expect(item.size == Int64(size))
            #expect(item.sha256 == Encoding.hex(SHA256Hasher.hash(data)))
            let out = dir.path + "/out-\(size).bin"
            let result = try await archive.extract(item.id.hex, to: out, force: false)
            #expect(result.sha256 == item.sha256)
            #expect(Fixtures.read(out) == data)
        }
        #expect(try await archive.verify(mode: .deep).ok)
    }

    @Test func itemsWithManyChunksUseAChunkListObject() async throws {
        let archive = try await Fixtures.archive(in: dir, chunkSize: 4096)
        let data = randomBytes(4096 * (Event.inlineChunkLimit + 10))
        let path = dir.write("big.bin", data)
        let item = try await #require(try archive.ingest([path], options: IngestOptions()).items.first)
        let event = try await archive.ingestEvent(of: archive.resolveItem(item.id.hex))
        #expect(event.objects?.chunks == nil)
        #expect(event.objects?.chunkList != nil)
        try await archive.extract(item.id.hex, to: dir.path + "/big.out", force: false)
        #expect(Fixtures.read(dir.path + "/big.out") == data)
        let report = try await archive.verify(mode: .standard)
        #expect(report.ok)
        #expect(report.objectsChecked >= Event.inlineChunkLimit + 10)
    }

    @Test func metadataIsRecordedAndSearchable() async throws {
        let archive = try await Fixtures.archive(in: dir)
        var options = IngestOptions()
        options.fields.caseID = "COI-2026-04"
        options.fields.tags = ["video", "detention", "video"]
        options.fields.source = "witness W-17"
        options.fields.collectedAt = "2026-03-02T12:00:00+02:00"
        options.fields.location = "Aleppo"
        options.fields.consent = "share-with-mechanisms"
        options.fields.sensitivity = "high"
        options.fields.note = "filmed from the roof"
        options.fields.meta = ["device": "Pixel7"]
        let png = [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A] + randomBytes(100)
        let path = dir.write("upload/sub/photo.dat", png)
        let item = try await #require(try archive.ingest([dir.path + "/upload"], options: options).items.first)
        let shown = try await archive.resolveItem(String(item.id.hex.prefix(8)))
        let m = shown.metadata
        #expect(m.name == "photo.dat")
        #expect(m.path == "upload/sub/photo.dat")
        #expect(m.mediaType == "image/png")
        #expect(m.tags == ["detention", "video"])
        #expect(m.collectedAt == "2026-03-02T10:00:00Z")
        #expect(m.meta == ["device": "Pixel7"])
        #expect(m.ingestedBy == archive.config.origin)
        #expect(try await archive.index().search("roof AND aleppo").map(\.id) == [item.id.hex])
        #expect(try await archive.index().search("pixel7").map(\.id) == [item.id.hex])
        #expect(try await archive.index().search("nothing-like-this").isEmpty)
        #expect(try await archive.index().search("W-17").map(\.id) == [item.id.hex])
        #expect(try await archive.index().search("(roof OR nothing) AND ale*").map(\.id) == [item.id.hex])
        let events = try await archive.index().events(of: item.id.hex)
        #expect(events.map(\.type) == ["ingest"])
    }

    @Test func searchFindsArabicCyrillicAndAccentedLatin() async throws {
        let archive = try await Fixtures.archive(in: dir)
        var ids: [String: String] = [:]
        for (label, note) in [
            ("ar", "شهادة من حلب"), ("ru", "Показания свидетеля"), ("es", "Declaración en la estación"),
        ] {
            var options = IngestOptions()
            options.fields.note = note
            let path = dir.write("\(label).txt", text: label)
            ids[label] = try await archive.ingest([path], options: options).items.first?.id.hex
        }
        let index = try await archive.index()
        #expect(try index.search("حلب").map(\.id) == [ids["ar"]])
        #expect(try index.search("показания").map(\.id) == [ids["ru"]])
        #expect(try index.search("ПОКАЗАНИЯ").map(\.id) == [ids["ru"]])
        #expect(try index.search("declaracion AND estacion").map(\.id) == [ids["es"]])
        #expect(try index.search("Declaración").map(\.id) == [ids["es"]])
    }

    @Test func badSearchSyntaxIsAUsageError() async throws {
        let archive = try await Fixtures.archive(in: dir)
        let error = await #expect(throws: ArchiveError.self) { try await archive.index().search("AND (") }
        #expect(error?.code == .usage)
    }

    @Test func listFiltersByCaseAllTagsAndDates() async throws {
        let archive = try await Fixtures.archive(in: dir)
        func ingest(_ name: String, _ caseID: String, _ tags: [String], _ collected: String) async throws -> String {
            var options = IngestOptions()
            options.fields.caseID = caseID
            options.fields.tags = tags
            options.fields.collectedAt = collected
            return try await #require(
                try await archive.ingest([dir.write(name, text: name)], options: options).items.first
            ).id.hex
        }
        let a = try await ingest("a", "C1", ["video", "detention"], "2026-01-01T00:00:00Z")
        let b = try await ingest("b", "C1", ["video"], "2026-02-01T00:00:00Z")
        let c = try await ingest("c", "C2", ["video", "detention"], "2026-03-01T00:00:00Z")
        var filter = ItemFilter()
        filter.caseID = "C1"
        #expect(try await archive.index().list(filter).map(\.id) == [a, b])
        filter.tags = ["video", "detention"]
        #expect(try await archive.index().list(filter).map(\.id) == [a])
        filter = ItemFilter()
        filter.tags = ["detention"]
        filter.collectedAfter = "2026-02-15T00:00:00Z"
        #expect(try await archive.index().list(filter).map(\.id) == [c])
        filter = ItemFilter()
        filter.collectedBefore = "2026-02-15T00:00:00Z"
        await #expect(Set(try archive.index().list(filter).map(\.id)) == [a, b])
    }

    @Test func identicalContentIsStoredOnceButIsASeparateItem() async throws {
        let archive = try await Fixtures.archive(in: dir)
        let data = randomBytes(200_000)
        let first = try await #require(
            try archive.ingest([dir.write("one.bin", data)], options: IngestOptions()).items.first
        )
        let objectsAfterFirst = Fixtures.allFiles(under: dir.path + "/archive/objects").count
        let second = try await #require(
            try archive.ingest([dir.write("two.bin", data)], options: IngestOptions()).items.first
        )
        let objectsAfterSecond = Fixtures.allFiles(under: dir.path + "/archive/objects").count
        #expect(first.id != second.id)
        #expect(first.duplicateOf == nil)
        #expect(second.duplicateOf == first.id.hex)
        // Only the second item's two sealed parts are new; its chunks were already there.
        #expect(objectsAfterSecond == objectsAfterFirst + 2)
    }

    @Test func expectedHashMismatchIsRefusedAndNothingIsRecorded() async throws {
        let archive = try await Fixtures.archive(in: dir)
        let path = dir.write("evidence.bin", randomBytes(1000))
        var options = IngestOptions()
        options.expectedSHA256[path] = String(repeating: "0", count: 64)
        options.requireExpected = true
        let report = try await archive.ingest([path], options: options)
        #expect(report.items.isEmpty)
        #expect(report.refused.count == 1)
        #expect(try await archive.index().itemCount() == 0)
        #expect(try await archive.verify(mode: .standard).ok)
        #expect(try await archive.verify(mode: .standard).orphans.isEmpty)

        options.expectedSHA256[path] = Encoding.hex(SHA256Hasher.hash(Fixtures.read(path)))
        #expect(try await archive.ingest([path], options: options).items.count == 1)
    }

    @Test func aFailureInALaterBatchKeepsEarlierBatchesAndSaysSo() async throws {
        let archive = try await Fixtures.archive(in: dir)
        var options = IngestOptions()
        options.batchItems = 2
        let paths = [dir.write("a.txt", text: "a"), dir.write("b.txt", text: "b"), "/proc/self/mem"]
        let error = await #expect(throws: ArchiveError.self) { try await archive.ingest(paths, options: options) }
        #expect(error?.code == .badInput)
        // Saying how many went in is the property under test: the count exists only in the message.
        #expect(error?.problem.contains("2 item(s) of earlier batches were ingested") == true)
        #expect(try await archive.index().itemCount() == 2)
        #expect(try await archive.verify(mode: .deep).ok)
    }

    @Test func objectsHoldNoPlaintextNamesOrHashes() async throws {
        let archive = try await Fixtures.archive(in: dir)
        let marker = "PLAINTEXT-MARKER-\(Encoding.hex(randomBytes(8)))"
        let content = Array(String(repeating: marker + " ", count: 50).utf8)
        let fileName = "secret-name-\(Encoding.hex(randomBytes(4))).txt"
        var options = IngestOptions()
        options.fields.note = "NOTE-MARKER-4711"
        options.fields.caseID = "CASE-MARKER-0815"
        let item = try await #require(try archive.ingest([dir.write(fileName, content)], options: options).items.first)
        let sha = SHA256Hasher.hash(content)
        let needles: [[UInt8]] = [
            Array(marker.utf8), Array(fileName.utf8), Array("NOTE-MARKER-4711".utf8), Array("CASE-MARKER-0815".utf8),
            sha, Array(Encoding.hex(sha).utf8), Array(Encoding.base64(sha).utf8),
        ]
        let stored = Fixtures.allFiles(under: dir.path + "/archive/objects") + [dir.path + "/archive/journal/entries"]
        #expect(stored.count >= 4)
        for file in stored {
            let bytes = Fixtures.read(file)
            for needle in needles { #expect(!contains(bytes, needle), "\(file) leaks a plaintext value") }
        }
        // Object sizes are padded: a 1,000-odd byte file does not show its exact size.
        let sizes = stored.dropLast().map { Fixtures.read($0).count }
        #expect(!sizes.contains(content.count + 16))
        _ = item
    }

    @Test func absurdlyLongMetadataIsRefusedBeforeAnythingIsWritten() async throws {
        let archive = try await Fixtures.archive(in: dir)
        let path = dir.write("a.txt", text: "a")
        let journalBefore = Fixtures.read(dir.path + "/archive/journal/entries")
        for mutate: (inout IngestOptions) -> Void in [
            { $0.fields.note = String(repeating: "x", count: 70_000) },
            { $0.fields.caseID = String(repeating: "c", count: 5000) },
            { $0.fields.tags = (0..<100).map { "t\($0)" } },
            { $0.fields.collectedAt = "yesterday" },
            { $0.fields.meta = ["k": String(repeating: "v", count: 10_000)] },
        ] {
            var options = IngestOptions()
            mutate(&options)
            let error = await #expect(throws: ArchiveError.self) { try await archive.ingest([path], options: options) }
            #expect(error?.code == .badInput)
        }
        #expect(Fixtures.read(dir.path + "/archive/journal/entries") == journalBefore)
        #expect(Fixtures.allFiles(under: dir.path + "/archive/objects").isEmpty)
    }
}
