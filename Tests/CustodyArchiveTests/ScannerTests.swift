import CustodyCrypto
import CustodyStorage
import CustodyTestSupport
import Foundation
import Testing

@testable import CustodyArchive

@Suite struct ScannerTests {
    let dir = TempDirectory("scan")

    @Test func walksFoldersInOrderWithRelativeDisplayPaths() throws {
        dir.write("up/b.txt", text: "b")
        dir.write("up/a/c.txt", text: "c")
        let (files, problems) = try FileScanner.scan([dir.path + "/up/"])
        #expect(problems.isEmpty)
        #expect(files.map(\.displayPath) == ["up/a/c.txt", "up/b.txt"])
    }

    @Test func missingPathIsNotFound() {
        let error = #expect(throws: ArchiveError.self) { try FileScanner.scan([dir.path + "/nope"]) }
        #expect(error?.code == .notFound)
    }

    @Test func symlinksAndLoopsAreRefusedNotFollowed() throws {
        dir.write("up/real.txt", text: "r")
        try FileManager.default.createSymbolicLink(
            atPath: dir.path + "/up/link.txt",
            withDestinationPath: dir.path + "/up/real.txt"
        )
        try FileManager.default.createSymbolicLink(atPath: dir.path + "/up/loop", withDestinationPath: dir.path + "/up")
        let (files, problems) = try FileScanner.scan([dir.path + "/up"])
        #expect(files.map(\.displayPath) == ["up/real.txt"])
        #expect(problems.count == 2)
        #expect(problems.allSatisfy { $0.kind == .symbolicLink })
    }

    @Test func nonUTF8NamesAreKeptAsBytes() throws {
        dir.write("up/ok.txt", text: "ok")
        let raw = Array((dir.path + "/up/bad-").utf8) + [0xFF, 0xFE, 0x2E, 0x74, 0x78, 0x74, 0]
        let fd = raw.withUnsafeBufferPointer { buffer in
            buffer.baseAddress!.withMemoryRebound(to: CChar.self, capacity: raw.count) {
                open($0, O_CREAT | O_WRONLY, 0o600)
            }
        }
        #expect(fd >= 0)
        close(fd)
        let (files, problems) = try FileScanner.scan([dir.path + "/up"])
        #expect(problems.isEmpty)
        #expect(files.map(\.displayPath) == ["up/bad-\u{FFFD}\u{FFFD}.txt", "up/ok.txt"])
        #expect(files[0].rawDisplayPath == Array("up/bad-".utf8) + [0xFF, 0xFE, 0x2E, 0x74, 0x78, 0x74])
        #expect(files[0].path == dir.path + "/up/bad-\\xFF\\xFE.txt")
        #expect(!files[0].pathIsUTF8 && files[1].pathIsUTF8)
        // Opened by its bytes, not by its display form.
        let opened = try files[0].openForReading().get()
        close(opened)
    }

    @Test func specialFilesAreReported() throws {
        dir.write("up/ok.txt", text: "ok")
        #expect(mkfifo(dir.path + "/up/pipe", 0o600) == 0)
        let (files, problems) = try FileScanner.scan([dir.path + "/up"])
        #expect(files.count == 1)
        #expect(problems.first?.kind == .notRegularFile)
    }

    @Test(.enabled(if: getuid() != 0, "root can read every file"))
    func unreadableFilesAreReported() async throws {
        let path = dir.write("up/locked.txt", text: "x")
        chmod(path, 0)
        let (files, problems) = try FileScanner.scan([dir.path + "/up"])
        #expect(files.isEmpty)
        #expect(problems.first?.kind == .unreadable)
    }

    @Test func scanProblemsAbortIngestUnlessSkipped() async throws {
        let archive = try await Fixtures.archive(in: dir)
        dir.write("up/ok.txt", text: "ok")
        try FileManager.default.createSymbolicLink(atPath: dir.path + "/up/link", withDestinationPath: "/etc/passwd")
        let error = await #expect(throws: ArchiveError.self) {
            try await archive.ingest([dir.path + "/up"], options: IngestOptions())
        }
        #expect(error?.code == .badInput)
        #expect(try await archive.index().itemCount() == 0)
        var options = IngestOptions()
        options.skipProblems = true
        let report = try await archive.ingest([dir.path + "/up"], options: options)
        #expect(report.items.count == 1)
        #expect(report.skipped.count == 1)
    }
}

@Suite struct PaddingAndFormatTests {
    @Test func padmeMatchesThePaper() {
        // L=1000: E=9, S=4, last 5 bits zeroed → 1024.
        #expect(Padme.paddedLength(1000) == 1024)
        #expect(Padme.paddedLength(1024) == 1024)
        #expect(Padme.paddedLength(1025) == 1088)
        #expect(Padme.paddedLength(0, minimum: 512) == 512)
        #expect(Padme.paddedLength(100, minimum: 512) == 512)
        for length in [1, 7, 513, 70_000, 1 << 20, 5_000_000, 1 << 30] {
            let padded = Padme.paddedLength(length)
            #expect(padded >= length)
            #expect(Double(padded - length) <= Double(length) * 0.12 + 1)
        }
    }

    @Test func rfc3339ParsesOffsetsAndRejectsNonsense() {
        #expect(RFC3339.normalize("2026-03-02T10:00:00Z") == "2026-03-02T10:00:00Z")
        #expect(RFC3339.normalize("2026-03-02T12:30:00+02:30") == "2026-03-02T10:00:00Z")
        #expect(RFC3339.normalize("2026-03-02T10:00:00.123Z") == "2026-03-02T10:00:00Z")
        for bad in ["2026-02-30T10:00:00Z", "2026-03-02 10:00:00Z", "yesterday", "2026-03-02T10:00:00", ""] {
            #expect(RFC3339.parse(bad) == nil, "\(bad) should be refused")
        }
    }

    @Test func mediaTypesAreSniffedFromContent() {
        #expect(MediaType.sniff([0xFF, 0xD8, 0xFF, 0xE0], name: "x.txt") == "image/jpeg")
        #expect(MediaType.sniff([0, 0, 0, 0x18] + Array("ftypisom".utf8), name: "clip") == "video/mp4")
        #expect(MediaType.sniff(Array("%PDF-1.7".utf8), name: "doc.bin") == "application/pdf")
        #expect(MediaType.sniff(Array("hello\n".utf8), name: "a.mp4") == "text/plain")
        #expect(MediaType.sniff([0, 1, 2, 3], name: "a.txt") == "application/octet-stream")
    }

    @Test func eventsRoundTripAndRejectTampering() throws {
        let key = try SigningKey(seed: SecretBytes(randomCount: 32))
        let event = Event(type: .extract, time: "2026-03-02T10:00:00Z", actor: "custody/test", item: ItemID.random())
        let entry = try event.entryBytes(signedBy: key)
        let parsed = try Event.parse(entry, publicKey: key.publicKey)
        #expect(parsed.item == event.item)
        var tampered = entry
        tampered[5] ^= 0x01
        #expect(throws: ArchiveError.self) { try Event.parse(tampered, publicKey: key.publicKey) }
        let other = try SigningKey(seed: SecretBytes(randomCount: 32))
        #expect(throws: ArchiveError.self) { try Event.parse(entry, publicKey: other.publicKey) }
    }

    @Test func sealedPartsAreBoundToItemKindAndKey() throws {
        let key = randomBytes(32)
        let item = ItemID.random()
        let sealed = SealedPart.seal(Array("{}".utf8), kind: .meta, item: item, key: key)
        #expect(try SealedPart.open(sealed, kind: .meta, item: item, key: key) == Array("{}".utf8))
        #expect(throws: ArchiveError.self) { try SealedPart.open(sealed, kind: .content, item: item, key: key) }
        #expect(throws: ArchiveError.self) { try SealedPart.open(sealed, kind: .meta, item: .random(), key: key) }
        #expect(throws: ArchiveError.self) {
            try SealedPart.open(sealed, kind: .meta, item: item, key: randomBytes(32))
        }
        #expect(sealed.count >= 24 + 32 + 512 + 16)
    }
}
