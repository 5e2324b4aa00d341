import CustodyCrypto
import CustodyStorage
import CustodyTestSupport
import Foundation
import Synchronization
import Testing

@testable import CustodyArchive

@Suite struct VerifyTests {
    let dir = TempDirectory("verify")

    private func archiveWithItems() async throws -> (Archive.Unlocked, [IngestedItem]) {
        let archive = try await Fixtures.archive(in: dir, chunkSize: 4096)
        dir.write("up/a.bin", randomBytes(10_000))
        dir.write("up/b.bin", randomBytes(20_000))
        let report = try await archive.ingest([dir.path + "/up"], options: IngestOptions())
        return (archive, report.items)
    }

    private func objectPath(_ name: ObjectName) -> String {
        "\(dir.path)/archive/objects/\(name.hex.prefix(2))/\(name.hex)"
    }

    @Test func cleanArchivePassesEveryMode() async throws {
        let (archive, _) = try await archiveWithItems()
        for mode in [VerifyMode.quick, .standard, .deep] {
            let report = try await archive.verify(mode: mode)
            #expect(report.ok, "\(mode): \(report.problems)")
            #expect(report.items == 2)
            #expect(report.orphans.isEmpty)
        }
    }

    @Test func progressCountsEveryObjectThenEveryItem() async throws {
        let (archive, items) = try await archiveWithItems()
        let seen = Mutex<[String: (Int, Int)]>([:])
        let report = try await archive.verify(mode: .deep) { unit, done, total in
            seen.withLock { counts in
                if done >= (counts[unit]?.0 ?? 0) { counts[unit] = (done, total) }
            }
        }
        let final = seen.withLock { $0 }
        #expect(final["objects"]?.0 == report.objectsChecked)
        #expect(final["objects"]?.1 == report.objectsChecked)
        #expect(final["items"]?.0 == items.count)
        #expect(final["items"]?.1 == items.count)
    }

    @Test func flippedByteIsNamedWithItsItem() async throws {
        let (archive, items) = try await archiveWithItems()
        let target = try await #require(try archive.objectNames(of: items[0].id.hex).last)
        var bytes = Fixtures.read(objectPath(target))
        bytes[7] ^= 0x40
        try Data(bytes).write(to: URL(fileURLWithPath: objectPath(target)))
        #expect(try await archive.verify(mode: .quick).ok, "quick checks sizes only")
        let report = try await archive.verify(mode: .standard)
        #expect(!report.ok)
        #expect(report.problems.count == 1)
        #expect(report.problems.first?.kind == .corrupt)
        #expect(report.problems.first?.object == target.hex)
        #expect(report.problems.first?.item == items[0].id.hex)
        let error = await #expect(throws: ArchiveError.self) {
            try await archive.extract(items[0].id.hex, to: dir.path + "/x", force: false)
        }
        #expect(error?.code == .damaged)
        #expect(!FileManager.default.fileExists(atPath: dir.path + "/x"))
    }

    @Test func missingAndTruncatedObjectsAreFoundByQuickVerify() async throws {
        let (archive, items) = try await archiveWithItems()
        let names0 = try await archive.objectNames(of: items[0].id.hex)
        let names1 = try await archive.objectNames(of: items[1].id.hex)
        try FileManager.default.removeItem(atPath: objectPath(names0[0]))
        let truncated = Fixtures.read(objectPath(names1[2]))
        try Data(truncated.dropLast(10)).write(to: URL(fileURLWithPath: objectPath(names1[2])))
        let report = try await archive.verify(mode: .quick)
        #expect(Set(report.problems.map(\.kind)) == [.missing, .sizeMismatch])
        #expect(Set(report.problems.compactMap(\.item)) == [items[0].id.hex, items[1].id.hex])
    }

    @Test func deepVerifyNeedsThePassphraseAndChecksContent() async throws {
        let (_, items) = try await archiveWithItems()
        let keyless = try Archive.open(at: dir.path + "/archive")
        #expect(try await keyless.verify(mode: .standard).ok)
        let error = await #expect(throws: ArchiveError.self) { try await keyless.verify(mode: .deep) }
        #expect(error?.code == .notAuthorised)
        #expect(items.count == 2)
    }

    @Test func orphansAreWarningsAndGCRemovesThem() async throws {
        let (archive, _) = try await archiveWithItems()
        let orphan = randomBytes(100)
        let name = ObjectName(of: orphan)
        try FileManager.default.createDirectory(
            atPath: "\(dir.path)/archive/objects/\(name.hex.prefix(2))",
            withIntermediateDirectories: true
        )
        try Data(orphan).write(to: URL(fileURLWithPath: objectPath(name)))
        dir.write("archive/objects/tmp/leftover.partial", [1, 2, 3])
        let report = try await archive.verify(mode: .standard)
        #expect(report.ok)
        #expect(report.orphans == [name.hex, "tmp/leftover.partial"])
        let gcArchive = try Fixtures.reopen(dir, access: .shared)
        let dry = try await gcArchive.collectGarbage(dryRun: true)
        #expect(dry.objects == [name.hex])
        #expect(FileManager.default.fileExists(atPath: objectPath(name)))
        let collected = try await gcArchive.collectGarbage(dryRun: false)
        #expect(collected.objects == [name.hex])
        #expect(collected.temporaryFiles == 1)
        #expect(try await archive.verify(mode: .standard).orphans.isEmpty)
        #expect(try await archive.verify(mode: .deep).ok)
    }

    @Test func tornJournalTailIsAWarningAndIsSetAsideOnTheNextWrite() async throws {
        let (archive, _) = try await archiveWithItems()
        let journal = dir.path + "/archive/journal/entries"
        let handle = try #require(FileHandle(forWritingAtPath: journal))
        handle.seekToEndOfFile()
        handle.write(Data(Array("CJ1\n".utf8) + [0, 0, 1, 0] + randomBytes(40)))
        try handle.close()
        let report = try await archive.verify(mode: .standard)
        #expect(report.ok)
        #expect(report.warnings.count == 1)
        _ = try await archive.ingest([dir.write("c.txt", text: "after the crash")], options: IngestOptions())
        let after = try await archive.verify(mode: .deep)
        #expect(after.ok)
        #expect(after.warnings.isEmpty)
        #expect(after.items == 3)
        let aside = try FileManager.default.contentsOfDirectory(atPath: dir.path + "/archive/journal").filter {
            $0.hasPrefix("torn-")
        }
        #expect(aside.count == 1)
    }

    @Test func damageInTheMiddleOfTheJournalIsReportedAndNeverRewritten() async throws {
        let (archive, _) = try await archiveWithItems()
        _ = try await archive.ingest([dir.write("c.txt", text: "third")], options: IngestOptions())
        let journal = dir.path + "/archive/journal/entries"
        var bytes = Fixtures.read(journal)
        bytes[60] ^= 0x01  // inside the first entry's body
        try Data(bytes).write(to: URL(fileURLWithPath: journal))
        let report = try await Fixtures.reopen(dir).verify(mode: .standard)
        #expect(!report.ok)
        #expect(report.problems.contains { $0.kind == .journalDamaged })
        // Appends after the damage leave the damaged bytes exactly as they were, for forensics.
        _ = try await Fixtures.reopen(dir).record([
            Event(type: .extract, time: RFC3339.now(), actor: "t", item: .random())
        ])
        let after = Fixtures.read(journal)
        #expect(SHA256Hasher.hash(Array(after.prefix(bytes.count))) == SHA256Hasher.hash(bytes))
        await #expect(!(try Fixtures.reopen(dir).verify(mode: .standard).ok))
    }

    @Test func damagedLastEntryIsDamageNotATornWrite() async throws {
        let (archive, _) = try await archiveWithItems()
        let journal = dir.path + "/archive/journal/entries"
        var bytes = Fixtures.read(journal)
        bytes[bytes.count - 50] ^= 0x01  // inside the last entry's signature line
        try Data(bytes).write(to: URL(fileURLWithPath: journal))
        let report = try await archive.verify(mode: .standard)
        #expect(!report.ok)
        #expect(report.problems.contains { $0.kind == .journalDamaged })
        let error = await #expect(throws: ArchiveError.self) { try await archive.collectGarbage(dryRun: true) }
        #expect(error?.code == .damaged)
        _ = try await archive.ingest([dir.write("d.txt", text: "d")], options: IngestOptions())
        #expect(SHA256Hasher.hash(Array(Fixtures.read(journal).prefix(bytes.count))) == SHA256Hasher.hash(bytes))
        await #expect(!(try archive.verify(mode: .standard).ok))
    }

    @Test func appendWhoseHashNeverLandedIsATornWrite() async throws {
        let (archive, _) = try await archiveWithItems()
        let journal = dir.path + "/archive/journal/entries"
        // A whole frame whose data and hash are zeros, as a filesystem may leave after power loss mid-append.
        let body = Array("{\"type\":\"extract\"}".utf8)
        let n = UInt32(body.count)
        let frame =
            Array("CJ1\n".utf8) + [UInt8(n >> 24), UInt8(n >> 16 & 0xFF), UInt8(n >> 8 & 0xFF), UInt8(n & 0xFF)]
            + [UInt8](repeating: 0, count: body.count + 32)
        let handle = try #require(FileHandle(forWritingAtPath: journal))
        handle.seekToEndOfFile()
        handle.write(Data(frame))
        try handle.close()
        let report = try await archive.verify(mode: .standard)
        #expect(report.ok)
        #expect(report.warnings.count == 1)
    }

    @Test func reindexRefusesADamagedJournalAndKeepsTheIndex() async throws {
        do {
            let (archive, _) = try await archiveWithItems()
            _ = try await archive.ingest([dir.write("c.txt", text: "third")], options: IngestOptions())
        }
        let journal = dir.path + "/archive/journal/entries"
        var bytes = Fixtures.read(journal)
        bytes[60] ^= 0x01
        try Data(bytes).write(to: URL(fileURLWithPath: journal))
        let exclusive = try Fixtures.reopen(dir, access: .exclusive)
        let error = await #expect(throws: ArchiveError.self) { try await exclusive.reindex() }
        #expect(error?.code == .damaged)
        #expect(FileManager.default.fileExists(atPath: dir.path + "/archive/index.sqlite"))
    }

    @Test func aJournalRestoredFromAnOlderBackupIsNoticedAndNeverExtendedWithAHole() async throws {
        let journal = dir.path + "/archive/journal/entries"
        let older: [UInt8]
        do {
            let (archive, _) = try await archiveWithItems()
            older = Fixtures.read(journal)
            _ = try await archive.ingest([dir.write("later.txt", text: "later")], options: IngestOptions())
        }
        try Data(older).write(to: URL(fileURLWithPath: journal))
        let archive = try Fixtures.reopen(dir)
        let error = await #expect(throws: ArchiveError.self) { try await archive.index() }
        #expect(error?.code == .damaged)
        #expect(error?.fix.contains("reindex") == true)  // the fix names the command that repairs it
        // An append with the stale hint writes right after the restored entries, never past the end.
        let event = try Event(type: .extract, time: RFC3339.now(), actor: "t", item: .random())
            .entryBytes(signedBy: archive.keys.signing)
        let position = try archive.journal.append([event], hint: JournalPosition(count: 99, offset: 1 << 30))
        #expect(position.offset == Int64(older.count))
    }

    @Test func deepVerifyWithAWrongPassphraseIsNotAuthorised() async throws {
        do { _ = try await archiveWithItems() }
        let archive = try Archive.open(at: dir.path + "/archive") { _ in Fixtures.secret("wrong") }
        let error = await #expect(throws: ArchiveError.self) { try await archive.verify(mode: .deep) }
        #expect(error?.code == .notAuthorised)
    }

    @Test func replayedEntryIsReportedAndDoesNotBreakTheIndex() async throws {
        do {
            let (archive, _) = try await archiveWithItems()
            // The first item's ingest entry (entry 0 founds the roster), appended again.
            var first: [UInt8] = []
            try archive.journal.scan(from: JournalPosition.start) { if $0.index == 1 { first = $0.bytes } }
            _ = try archive.journal.append([first], hint: .start)
        }
        let report = try await Fixtures.reopen(dir).verify(mode: .standard)
        #expect(report.problems.contains { $0.kind == .replayedEntry && $0.entry == 3 })
        #expect(try await Fixtures.reopen(dir).index().list(ItemFilter()).count == 2)
        do {
            let exclusive = try Fixtures.reopen(dir, access: .exclusive)
            #expect(try await exclusive.reindex() == 2)
        }
    }

    @Test func forgedEntryWithAValidFrameIsCaughtBySignature() async throws {
        let (archive, _) = try await archiveWithItems()
        let forger = try SigningKey(seed: SecretBytes(randomCount: 32))
        let forged = try Event(type: .extract, time: RFC3339.now(), actor: "forger", item: .random()).entryBytes(
            signedBy: forger
        )
        let position = try archive.journal.append([forged], hint: .start)
        let report = try await Fixtures.reopen(dir).verify(mode: .standard)
        #expect(report.problems.contains { $0.kind == .badEntry && $0.entry == position.count })
    }
}

@Suite struct KeysAndIndexTests {
    let dir = TempDirectory("keys")

    @Test func wrongPassphraseIsNotAuthorised() async throws {
        _ = try await Fixtures.archive(in: dir)
        let archive = try Archive.open(at: dir.path + "/archive")
        let error = #expect(throws: ArchiveError.self) { try archive.unlock(passphrase: Fixtures.secret("wrong")) }
        #expect(error?.code == .notAuthorised && error?.reason == .wrongPassphrase)
    }

    @Test func keyFileIsPrivateAndHoldsNoPlainSecret() async throws {
        let archive = try await Fixtures.archive(in: dir)
        // The founder's key file holds the secrets; there is no keys.json.
        let path = dir.path + "/archive/members/\(try #require(archive.member).member.id).json"
        var st = stat()
        #expect(stat(path, &st) == 0)
        #expect(st.st_mode & 0o777 == 0o600)
        #expect(stat(dir.path + "/archive/keys.json", &st) == -1 && errno == ENOENT)
        let text = String(decoding: Fixtures.read(path), as: UTF8.self)
        #expect(text.contains("\"preset\" : \"insecure-test\""))
        #expect(!text.contains(Fixtures.passphrase))
    }

    @Test func initRefusesAnExistingArchiveOrANonEmptyFolder() async throws {
        _ = try await Fixtures.archive(in: dir)
        let error = await #expect(throws: ArchiveError.self) { try await Fixtures.archive(in: dir) }
        #expect(error?.code == .cannotCreate)
        dir.write("other/file.txt", text: "x")
        let second = await #expect(throws: ArchiveError.self) {
            try await Archive.create(
                at: dir.path + "/other",
                name: "X",
                passphrase: Fixtures.secret(),
                kdfPreset: "insecure-test"
            )
        }
        #expect(second?.code == .cannotCreate)
        await #expect(throws: ArchiveError.self) {
            try await Archive.create(
                at: dir.path + "/third",
                name: "X",
                origin: "has space",
                passphrase: Fixtures.secret()
            )
        }
    }

    @Test func passphraseChangeReSealsAndChangesNothingElse() async throws {
        do {
            let archive = try await Fixtures.archive(in: dir)
            _ = try await archive.ingest([dir.write("a.txt", text: "a")], options: IngestOptions())
        }
        // Keys, configuration, identity and objects stay as they were; the log gains one passphrase event.
        func unchangedFiles() async -> [(String, [UInt8])] {
            Fixtures.allFiles(under: dir.path + "/archive").filter {
                $0.contains("/objects/") || $0.hasSuffix("archive.json") || $0.hasSuffix("identity.json")
            }
            .map { ($0, Fixtures.read($0)) }
        }
        let before = await unchangedFiles()
        let journalBefore = Fixtures.read(dir.path + "/archive/journal/entries")
        do {
            let reopened = try Archive.open(at: dir.path + "/archive", access: .exclusive) { _ in Fixtures.secret() }
            try await reopened.changePassphrase(to: Fixtures.secret("new passphrase"))
        }
        let after = await unchangedFiles()
        #expect(before.map(\.0) == after.map(\.0))
        #expect(before.map(\.1) == after.map(\.1))
        let journalAfter = Fixtures.read(dir.path + "/archive/journal/entries")
        #expect(journalAfter.starts(with: journalBefore) && journalAfter.count > journalBefore.count)
        var types: [String] = []
        try Archive.open(at: dir.path + "/archive").forEachLogEntry { types.append($0.event.type.rawValue) }
        #expect(types == ["member-add", "ingest", "passphrase"])
        let old = try Archive.open(at: dir.path + "/archive")
        #expect(throws: ArchiveError.self) { try old.unlock(passphrase: Fixtures.secret()) }
        let new = try Archive.open(at: dir.path + "/archive").unlock(passphrase: Fixtures.secret("new passphrase"))
        #expect(try await new.verify(mode: .deep).ok)
    }

    @Test func identityIsSelfSignedAndTamperEvident() async throws {
        let archive = try await Fixtures.archive(in: dir)
        let identity = try archive.identity()
        #expect(identity.isValid)
        #expect(identity.fingerprint.split(separator: "-").count == 8)
        #expect(identity.origin.hasPrefix("custody/"))
        #expect(identity.logVerifierKey.hasPrefix(identity.origin + "+"))
        var swapped = identity
        swapped.boxKey = Encoding.base64(randomBytes(32))
        #expect(!swapped.isValid)
        var renamed = identity
        renamed.name = "Someone Else"
        #expect(!renamed.isValid)
    }

    @Test func verifierKeyMatchesTheSharedVector() {
        // shared/vectors/signed-note.json: seed 00..1f, name example.org/custody/log.
        let publicKey =
            Encoding.bytes(base64: "AQOhB7/zzhC+HXDdGOdLwJln5NYwm6UNXx3chmQSVTG4").map { Array($0.dropFirst()) } ?? []
        #expect(
            Identity.verifierKey(origin: "example.org/custody/log", publicKey: publicKey)
                == "example.org/custody/log+db981e3f+AQOhB7/zzhC+HXDdGOdLwJln5NYwm6UNXx3chmQSVTG4"
        )
    }

    @Test func lostIndexCatchesUpAndReindexRebuildsTheSameRows() async throws {
        let (items, original, originalEvents) = try await {
            let archive = try await Fixtures.archive(in: dir)
            var options = IngestOptions()
            options.fields.tags = ["x", "y"]
            options.fields.note = "note"
            dir.write("up/1.txt", text: "1")
            dir.write("up/2.txt", text: "2")
            dir.write("up/3.txt", text: "2")
            let items = try await archive.ingest([dir.path + "/up"], options: options).items
            _ = try await archive.extract(items[0].id.hex, to: dir.path + "/out", force: false)
            return (
                items, try await archive.index().list(ItemFilter()),
                try await archive.index().events(of: items[0].id.hex)
            )
        }()
        #expect(originalEvents.map(\.type) == ["ingest", "extract"])

        do {
            let rebuilt = try Fixtures.reopen(dir, access: .exclusive)
            #expect(try await rebuilt.reindex() == 3)
            #expect(try await rebuilt.index().list(ItemFilter()) == original)
            #expect(try await rebuilt.index().events(of: items[0].id.hex) == originalEvents)
        }

        for suffix in ["", "-wal", "-shm"] {
            try? FileManager.default.removeItem(atPath: dir.path + "/archive/index.sqlite" + suffix)
        }
        let caughtUp = try Fixtures.reopen(dir)
        #expect(try await caughtUp.index().list(ItemFilter()) == original)
        #expect(try await caughtUp.index().search("note").count == 3)
    }

    @Test func corruptIndexIsAClearErrorAndReindexRepairsIt() async throws {
        do {
            let archive = try await Fixtures.archive(in: dir)
            _ = try await archive.ingest([dir.write("a.txt", text: "a")], options: IngestOptions())
        }
        for suffix in ["-wal", "-shm"] {
            try? FileManager.default.removeItem(atPath: dir.path + "/archive/index.sqlite" + suffix)
        }
        try Data(repeating: 0x41, count: 8192).write(to: URL(fileURLWithPath: dir.path + "/archive/index.sqlite"))
        do {
            let broken = try Fixtures.reopen(dir)
            let error = await #expect(throws: ArchiveError.self) { try await broken.index().list(ItemFilter()) }
            #expect(error?.code == .damaged)
            #expect(error?.fix.contains("reindex") == true)  // the fix names the command that repairs it
            #expect(try await broken.verify(mode: .standard).ok, "verify does not need the index")
        }
        // The rebuild in place needs an index SQLite can open; `custody reindex` makes a new file.
        await #expect(throws: ArchiveError.self) { try await Fixtures.reopen(dir, access: .exclusive).reindex() }
        #expect(try await Archive.reindex(at: dir.path + "/archive") { _ in Fixtures.secret() } == 1)
    }

    @Test func idPrefixesResolveUniquelyOrFailClearly() async throws {
        let archive = try await Fixtures.archive(in: dir)
        let item = try await #require(
            try archive.ingest([dir.write("a.txt", text: "a")], options: IngestOptions()).items.first
        )
        #expect(try await archive.resolveItem(String(item.id.hex.prefix(8))).id == item.id.hex)
        #expect(try await archive.resolveItem(item.id.hex.uppercased()).id == item.id.hex)
        await #expect(
            (await #expect(throws: ArchiveError.self) { try await archive.resolveItem("abc") })?.code == .usage
        )
        await #expect(
            (await #expect(throws: ArchiveError.self) { try await archive.resolveItem("zzzzzzzzzz") })?.code == .usage
        )
        let unknown = item.id.hex.first == "0" ? "11111111" : "00000000"
        await #expect(
            (await #expect(throws: ArchiveError.self) { try await archive.resolveItem(unknown) })?.code == .notFound
        )
        // Two ids sharing a prefix: index a second row whose id differs only at the end.
        let index = try await archive.index()
        var twin = try index.items(ids: [item.id.hex])[0]
        twin.id = String(item.id.hex.dropLast()) + (item.id.hex.last == "0" ? "1" : "0")
        twin.seq = 99
        let position = try index.position()
        _ = try index.apply(
            IndexBatch(items: [twin], end: JournalPosition(count: position.count, offset: position.offset)),
            expectedStart: position
        )
        let ambiguous = await #expect(throws: ArchiveError.self) {
            try await index.items(withPrefix: String(item.id.hex.prefix(8))).count == 2
                ? try await archive.resolveItem(String(item.id.hex.prefix(8))) : nil
        }
        #expect(ambiguous?.code == .usage)
    }
}
