import CustodyArchive
import CustodyCrypto
import CustodyTestSupport
import Foundation
import Testing

/// One `Archive.Unlocked` value shared by concurrent tasks, as the node shares it between requests.
@Suite struct ConcurrentArchiveTests {
    let dir = TempDirectory("concurrent-archive")

    @Test func oneArchiveValueServesConcurrentIngestsAndReadsAndStaysWhole() async throws {
        let archive = try await Fixtures.archive(in: dir)
        let writers = 4
        let filesPerWriter = 3
        let paths = (0..<writers).map { writer in
            (0..<filesPerWriter).map { file in
                dir.write("w\(writer)/f\(file).bin", randomBytes(2_000 + 97 * (writer * filesPerWriter + file)))
            }
        }
        try await withThrowingTaskGroup(of: Int.self) { group in
            for batch in paths {
                group.addTask {
                    var total = 0
                    for path in batch {
                        await total += try archive.ingest([path], options: IngestOptions()).items.count
                    }
                    return total
                }
            }
            for _ in 0..<writers {
                group.addTask {
                    // Readers meanwhile: listing, search and the log, through the same value.
                    var seen = 0
                    for _ in 0..<20 {
                        seen = await max(seen, try archive.index().list(ItemFilter()).count)
                        _ = try await archive.index().search("f1")
                        _ = try archive.ledger.latestCheckpoint()
                    }
                    return 0
                }
            }
            var ingested = 0
            for try await count in group { ingested += count }
            #expect(ingested == writers * filesPerWriter)
        }
        // Every item once in the index, one log entry each, and the archive verifies deeply.
        let listed = try await archive.index().list(ItemFilter())
        #expect(listed.count == writers * filesPerWriter)
        #expect(Set(listed.map(\.id)).count == listed.count)
        var ingests = 0
        try archive.forEachLogEntry { if $0.event.type == .ingest { ingests += 1 } }
        #expect(ingests == writers * filesPerWriter)
        #expect(try await archive.verify(mode: .deep).ok)
        // A second process's view (a new value on the same folder) agrees after a rebuild from the journal.
        #expect(try await archive.reindex() == writers * filesPerWriter)
    }

    @Test func aKeylessArchiveReadsWithoutThePassphraseUntilTheIndexLags() async throws {
        do {
            let archive = try await Fixtures.archive(in: dir)
            _ = try await archive.ingest([dir.write("a.txt", text: "a")], options: IngestOptions())
            // An entry appended to the log without the index hearing of it (a command killed in between).
            let event = Event(type: .extract, time: RFC3339.now(), actor: archive.config.origin, item: nil)
            try archive.ledger.append([try event.entryBytes(signedBy: archive.keys.signing)], logKey: archive.keys.log)
        }
        // The index lags the journal: a keyless archive cannot apply the entry, and says why.
        let keyless = try Archive.open(at: dir.path + "/archive")
        let refused = await #expect(throws: ArchiveError.self) { try await keyless.index() }
        #expect(refused?.reason == .passphraseNeeded)
        // With a passphrase source it unlocks once, applies the entry, and reads.
        let asking = try Archive.open(at: dir.path + "/archive") { _ in Fixtures.secret() }
        #expect(try await asking.index().list(ItemFilter()).count == 1)
        #expect(try await asking.index().events(of: try asking.index().list(ItemFilter())[0].id).count == 1)
        // Caught up now: the keyless value reads without any passphrase.
        #expect(try await keyless.index().list(ItemFilter()).count == 1)
        #expect(throws: ArchiveError.self) { try keyless.unlock() }
    }

    @Test func aTornJournalTailDoesNotMakeAKeylessReaderAskForThePassphrase() async throws {
        do {
            let archive = try await Fixtures.archive(in: dir)
            _ = try await archive.ingest([dir.write("a.txt", text: "a")], options: IngestOptions())
        }
        // A crash mid-append leaves part of a frame after the last whole entry.
        let journal = try FileHandle(forWritingTo: URL(fileURLWithPath: dir.path + "/archive/journal/entries"))
        try journal.seekToEnd()
        try journal.write(contentsOf: Data([0x43, 0x4A, 0x31, 0x00, 0x00, 0x00, 0x10]))
        try journal.close()
        let keyless = try Archive.open(at: dir.path + "/archive")
        #expect(try await keyless.index().list(ItemFilter()).count == 1)
    }
}
