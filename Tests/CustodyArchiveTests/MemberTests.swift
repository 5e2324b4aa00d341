import CustodyCrypto
import CustodyStorage
import CustodyTestSupport
import Foundation
import Testing

@testable import CustodyArchive

/// Members and roles attacked at library level (issue 13): what each role may not do, the same thing forged into
/// the journal and caught by `verify`, removal, migration, passphrases, planted and edited key files, and two
/// members at once.
@Suite(.serialized) struct MemberTests {
    let dir = TempDirectory("members")
    var root: String { dir.path + "/archive" }

    /// Each member's own passphrase ("admin" is the founder, with the fixtures' passphrase).
    static let passphrases = [
        "admin": Fixtures.passphrase, "rita": "rita's own words", "ivan": "ivan's own words",
        "fay": "fay's own words",
    ]

    /// An archive with an administrator (returned, acting), a records officer, an investigator and field staff.
    private func team() async throws -> Archive.Unlocked {
        let admin = try await Fixtures.archive(in: dir, chunkSize: 4096)
        for (name, role) in [("rita", Role.recordsOfficer), ("ivan", .investigator), ("fay", .fieldStaff)] {
            try await admin.addMember(
                name,
                role: role,
                passphrase: Fixtures.secret(Self.passphrases[name] ?? ""),
                kdfPreset: "insecure-test"
            )
        }
        return admin
    }

    /// The archive opened to act as `name`, with `passphrase` (default: their own).
    private func open(_ name: String, passphrase: String? = nil) throws -> Archive {
        let words = passphrase ?? Self.passphrases[name] ?? ""
        return try Archive.open(at: root, passphrase: { _ in Fixtures.secret(words) }, member: name)
    }

    /// Every journal entry.
    private func entries(_ archive: some ArchiveContext) throws -> [JournalEntry] {
        var all: [JournalEntry] = []
        _ = try archive.journal.scan(from: .start) { all.append($0) }
        return all
    }

    /// The event of the last journal entry.
    private func lastEvent(_ archive: some ArchiveContext) throws -> Event {
        let last = try #require(try entries(archive).last)
        return try Event.parse(last.bytes, publicKey: archive.signingPublicKey)
    }

    /// Appends `event` as `acting` would have signed it with the archive's key (which every role but field staff
    /// holds) — written around every command's checks. Returns its log index.
    @discardableResult
    private func forge(_ event: Event, by acting: ActingMember?, in archive: Archive.Unlocked) throws -> Int {
        var event = event
        event.by = acting?.member.id
        let index = try entries(archive).count
        let entry = try event.entryBytes(signedBy: archive.keys.signing, member: acting?.signing)
        try archive.ledger.append([entry], logKey: archive.keys.log)
        return index
    }

    /// Appends entry bytes as they are (a replay).
    @discardableResult
    private func replay(_ entry: [UInt8], in archive: Archive.Unlocked) throws -> Int {
        let index = try entries(archive).count
        try archive.ledger.append([entry], logKey: archive.keys.log)
        return index
    }

    /// The kinds `verify` reports at log entry `index`.
    private func problems(at index: Int, in archive: Archive.Unlocked) async throws -> Set<VerifyProblem.Kind> {
        let report = try await archive.verify(mode: .quick)
        return Set(report.problems.filter { $0.entry == index }.map(\.kind))
    }

    /// A person with keys of their own who is in no roster.
    private func outsider(_ name: String, role: Role = .admin) throws -> ActingMember {
        let signing = try SigningKey(seed: try SecretBytes(randomCount: 32))
        let box = try BoxKey(secretKey: try SecretBytes(randomCount: 32))
        let member = Member(
            id: MemberID(signingKey: signing.publicKey, boxKey: box.publicKey),
            name: name,
            role: role,
            signingKey: Encoding.base64(signing.publicKey),
            boxKey: Encoding.base64(box.publicKey)
        )
        return ActingMember(member: member, signing: signing)
    }

    /// A roster event by `acting`, on `subject`, bound to the roster version now, approved by `approvers`.
    private func rosterEvent(
        _ type: Event.Kind,
        subject: Member,
        by acting: ActingMember,
        approvers: [ActingMember],
        in archive: Archive.Unlocked,
        version: Int? = nil,
        threshold: Int? = nil
    ) throws -> Event {
        var event = Event(type: type, time: RFC3339.now(), actor: archive.config.origin, item: nil)
        event.subject = subject
        event.roster = try version ?? archive.roster().version
        event.threshold = threshold
        event.by = acting.member.id
        event.approvals = approvers.compactMap {
            RosterStatement.approval(of: event, origin: archive.config.origin, by: $0.member.id, key: $0.signing)
        }
        return event
    }

    private func acting(_ name: String) throws -> ActingMember {
        if name == "fay" { return try open(name).deposit().member }
        return try #require(try open(name).unlock().member)
    }

    private func snapshot() -> [String: [UInt8]] {
        var files: [String: [UInt8]] = [:]
        for path in Fixtures.allFiles(under: root) where !path.contains("index.sqlite") && !path.hasSuffix("/lock") {
            files[path] = Fixtures.read(path)
        }
        return files
    }

    /// The files added, removed or changed since `before` (names only: the bytes say nothing to a person).
    private func changes(since before: [String: [UInt8]]) -> [String] {
        let after = snapshot()
        return Set(before.keys).union(after.keys).filter { before[$0] != after[$0] }
            .map { $0.replacingOccurrences(of: root + "/", with: "") }.sorted()
    }

    // MARK: Role boundaries refused by the library, with nothing written

    @Test func eachRoleIsRefusedWhatItMayNotDoAndNothingIsWritten() async throws {
        let admin = try await team()
        let item = try await admin.ingest([dir.write("up/a.txt", text: "statement")], options: IngestOptions())
            .items[0].id.hex
        let before = snapshot()
        let rita = try open("rita").unlock()
        let ivan = try open("ivan").unlock()
        func refused(_ what: String, _ body: () async throws -> Void) async {
            let before = snapshot()
            let error = await #expect(throws: ArchiveError.self, "\(what)") { try await body() }
            #expect(error?.reason == .roleNotAllowed, "\(what): \(String(describing: error))")
            #expect(changes(since: before).isEmpty, "\(what) wrote \(changes(since: before)) before it was refused")
        }
        await refused("records officer tags") { _ = try await rita.tag(item, add: ["x"], remove: []) }
        await refused("records officer notes") { try await rita.note(item, text: "n") }
        await refused("records officer extracts") {
            _ = try await rita.extract(item, to: dir.path + "/out-r", force: false)
        }
        await refused("records officer ingests") {
            _ = try await rita.ingest([dir.write("up2/b.txt", text: "b")], options: IngestOptions())
        }
        await refused("records officer adds a member") {
            try await rita.addMember("zed", role: .admin, passphrase: Fixtures.secret("z"), kdfPreset: "insecure-test")
        }
        await refused("investigator removes a member") { try await ivan.removeMember("fay", reason: "r") }
        await refused("investigator changes a role") { try await ivan.changeRole(of: "ivan", to: .admin) }
        let grantee = try await Archive.create(
            at: dir.path + "/grantee",
            name: "Grantee",
            passphrase: Fixtures.secret(),
            kdfPreset: "insecure-test"
        )
        await refused("investigator grants") {
            var request = GrantRequest(
                grantee: try grantee.identity(),
                expires: Expiry.resolve("30d") ?? "",
                purpose: "p"
            )
            request.items = [item]
            _ = try await ivan.createGrant(request)
        }
        // Field staff cannot even unlock the keys that open items.
        let fay = try open("fay")
        let error = #expect(throws: ArchiveError.self) { try fay.unlock() }
        #expect(error?.reason == .roleNotAllowed)
        #expect(!FileManager.default.fileExists(atPath: dir.path + "/out-r"))
        #expect(changes(since: before).isEmpty, "\(changes(since: before)): a refused command changed the archive")
    }

    @Test func fieldStaffCannotTellWhetherAFileIsHeld() async throws {
        let admin = try await team()
        let evidence = randomBytes(10_000)
        let ivan = try open("ivan").unlock()
        let held = try await ivan.ingest([dir.write("ivan/v.bin", evidence)], options: IngestOptions()).items[0]
        let fay = try open("fay").deposit()
        let report = try await fay.ingest([dir.write("fay/v.bin", evidence)], options: IngestOptions())
        let theirs = try #require(report.items.first)
        #expect(theirs.duplicateOf == nil, "field staff learnt that the file was held")
        #expect(theirs.id != held.id)
        // No object name of theirs is one of the investigator's: nothing in objects/ answers "is it held?".
        let heldNames = Set(try await admin.objectNames(of: held.id.hex))
        let theirNames = Set(try await admin.objectNames(of: theirs.id.hex))
        #expect(!heldNames.isEmpty && !theirNames.isEmpty)
        #expect(heldNames.isDisjoint(with: theirNames))
        // The index (read by an administrator) knows both, and extracts field staff's upload byte for byte.
        let out = try await admin.extract(theirs.id.hex, to: dir.path + "/fay-out", force: false)
        #expect(out.sha256 == held.sha256)
        #expect(Fixtures.read(dir.path + "/fay-out") == evidence)
        // Field staff's own view of the index is refused: it would name what is held. (Commands authenticate the
        // acting member before reading the index; the file itself is plaintext, THREAT-MODEL.md section 7.)
        let refused = #expect(throws: ArchiveError.self) { try open("fay").authenticate(for: [.read]) }
        #expect(refused?.reason == .roleNotAllowed)
        #expect(try await admin.verify(mode: .standard).ok)
    }

    @Test func deepVerifyAcceptsTheChunksFieldStaffKeyedWithTheirOwnSecret() async throws {
        let admin = try await team()
        let fay = try open("fay").deposit()
        _ = try await fay.ingest([dir.write("fay/v.bin", randomBytes(10_000))], options: IngestOptions())
        let report = try await admin.verify(mode: .deep)
        #expect(report.ok, "\(Set(report.problems.map(\.kind)))")
    }

    // MARK: The same forbidden events forged into the journal, caught by verify

    @Test func aForgedEventOfARoleThatDoesNotAllowItIsFlaggedRoleNotAllowed() async throws {
        let admin = try await team()
        let item = try await admin.ingest([dir.write("up/a.txt", text: "statement")], options: IngestOptions())
            .items[0].id
        try await admin.tag(item.hex, add: ["checked"], remove: [])
        let tag = try lastEvent(admin)
        _ = try await admin.extract(item.hex, to: dir.path + "/x", force: false)
        let extract = try lastEvent(admin)
        #expect(try await admin.verify(mode: .quick).ok)

        let fieldTag = try forge(tag, by: try acting("fay"), in: admin)
        let officerExtract = try forge(extract, by: try acting("rita"), in: admin)
        let investigatorAccess = try forge(
            Event(type: .access, time: RFC3339.now(), actor: admin.config.origin, item: nil),
            by: try acting("ivan"),
            in: admin
        )
        let newcomer = try outsider("newcomer", role: .investigator).member
        let ivan = try acting("ivan")
        let investigatorAdd = try forge(
            try rosterEvent(.memberAdd, subject: newcomer, by: ivan, approvers: [ivan], in: admin),
            by: ivan,
            in: admin
        )
        #expect(try await problems(at: fieldTag, in: admin).contains(.roleNotAllowed))
        #expect(try await problems(at: officerExtract, in: admin).contains(.roleNotAllowed))
        #expect(try await problems(at: investigatorAccess, in: admin).contains(.roleNotAllowed))
        #expect(try await problems(at: investigatorAdd, in: admin).contains(.roleNotAllowed))
        // The refused member-add was not applied: the newcomer is in no roster.
        #expect(try admin.roster().current(newcomer.id) == nil)
    }

    @Test func aForgedEventByARemovedMemberIsFlaggedMemberRemoved() async throws {
        let admin = try await team()
        let item = try await admin.ingest([dir.write("up/a.txt", text: "s")], options: IngestOptions()).items[0].id
        let ivan = try acting("ivan")
        let keyFile = root + "/members/\(ivan.member.id.hex).json"
        let kept = Fixtures.read(keyFile)
        try await admin.removeMember("ivan", reason: "left the team")
        #expect(!FileManager.default.fileExists(atPath: keyFile), "the removed member's key file is still there")
        try await admin.tag(item.hex, add: ["t"], remove: [])
        let index = try forge(try lastEvent(admin), by: ivan, in: admin)
        #expect(try await problems(at: index, in: admin) == [.memberRemoved])

        // The copy they kept, put back, opens nothing a command accepts.
        dir.write("archive/members/\(ivan.member.id.hex).json", kept)
        let back = try open("ivan").unlock()
        let error = await #expect(throws: ArchiveError.self) {
            _ = try await back.tag(item.hex, add: ["u"], remove: [])
        }
        #expect(error?.reason == .memberRemoved)
        let read = await #expect(throws: ArchiveError.self) {
            _ = try await back.extract(item.hex, to: dir.path + "/x", force: false)
        }
        #expect(read?.reason == .memberRemoved)
    }

    @Test func aForgedEventByAnOutsiderIsFlaggedMemberUnknown() async throws {
        let admin = try await team()
        let index = try forge(
            Event(type: .passphrase, time: RFC3339.now(), actor: admin.config.origin, item: nil),
            by: try outsider("mallory"),
            in: admin
        )
        #expect(try await problems(at: index, in: admin) == [.memberUnknown])
    }

    @Test func aForgedEventSignedByAnotherKeyThanItsMembersIsFlaggedSignatureInvalid() async throws {
        let admin = try await team()
        let ivan = try acting("ivan")
        let impostor = ActingMember(member: ivan.member, signing: try outsider("mallory").signing)
        let index = try forge(
            Event(type: .passphrase, time: RFC3339.now(), actor: admin.config.origin, item: nil),
            by: impostor,
            in: admin
        )
        #expect(try await problems(at: index, in: admin) == [.memberSignatureInvalid])
    }

    @Test func aForgedEventNamingNoMemberAfterTheFoundingIsFlaggedSignatureMissing() async throws {
        let admin = try await team()
        let index = try forge(
            Event(type: .passphrase, time: RFC3339.now(), actor: admin.config.origin, item: nil),
            by: nil,
            in: admin
        )
        #expect(try await problems(at: index, in: admin) == [.memberSignatureMissing])
    }

    @Test func anEventNamingAMemberBeforeAnyRosterIsFlaggedMemberUnknown() async throws {
        let plain = try await Archive.create(
            at: root,
            name: "Old Body",
            passphrase: Fixtures.secret(),
            kdfPreset: "insecure-test",
            founder: nil
        )
        let index = try forge(
            Event(type: .passphrase, time: RFC3339.now(), actor: plain.config.origin, item: nil),
            by: try outsider("mallory"),
            in: plain
        )
        #expect(try await problems(at: index, in: plain) == [.memberUnknown])
    }

    @Test func aRosterChangeWithFewerApprovalsThanTheThresholdIsInvalid() async throws {
        // A roster founded with a threshold of 2 (forged into an archive without members, as only a log can say).
        let plain = try await Archive.create(
            at: root,
            name: "Old Body",
            passphrase: Fixtures.secret(),
            kdfPreset: "insecure-test",
            founder: nil
        )
        let first = try outsider("first")
        try forge(
            try rosterEvent(.memberAdd, subject: first.member, by: first, approvers: [first], in: plain, threshold: 2),
            by: first,
            in: plain
        )
        #expect(try plain.roster().threshold == 2)
        // While there are fewer administrators than the threshold, all of them suffice (Roster.neededApprovals):
        // the founder alone adds the second administrator.
        let second = try outsider("second")
        let added = try forge(
            try rosterEvent(.memberAdd, subject: second.member, by: first, approvers: [first], in: plain),
            by: first,
            in: plain
        )
        #expect(try await problems(at: added, in: plain).isEmpty)
        #expect(try plain.roster().current(second.member.id)?.role == .admin)
        // Now two are needed: one administrator's approval is not enough.
        let third = try outsider("third", role: .investigator)
        let index = try forge(
            try rosterEvent(.memberAdd, subject: third.member, by: first, approvers: [first], in: plain),
            by: first,
            in: plain
        )
        #expect(try await problems(at: index, in: plain) == [.rosterChangeInvalid])
        #expect(try plain.roster().current(third.member.id) == nil, "a change under the threshold was applied")
        // Nor does the would-be member's own approval count, nor the same administrator's twice.
        let own = try forge(
            try rosterEvent(.memberAdd, subject: third.member, by: first, approvers: [first, third], in: plain),
            by: first,
            in: plain
        )
        #expect(try await problems(at: own, in: plain) == [.rosterChangeInvalid])
        var twice = try rosterEvent(.memberAdd, subject: third.member, by: first, approvers: [first], in: plain)
        twice.approvals = (twice.approvals ?? []) + (twice.approvals ?? [])
        let repeated = try forge(twice, by: first, in: plain)
        #expect(try await problems(at: repeated, in: plain) == [.rosterChangeInvalid])
        let after = try forge(
            Event(type: .passphrase, time: RFC3339.now(), actor: plain.config.origin, item: nil),
            by: third,
            in: plain
        )
        #expect(try await problems(at: after, in: plain) == [.memberUnknown])
        // Both administrators' approvals admit them (the rule refuses only what it should).
        let approved = try forge(
            try rosterEvent(.memberAdd, subject: third.member, by: first, approvers: [first, second], in: plain),
            by: first,
            in: plain
        )
        #expect(try await problems(at: approved, in: plain).isEmpty)
        #expect(try plain.roster().current(third.member.id)?.role == .investigator)
    }

    @Test func anApprovalFromAnEarlierRosterVersionCannotBeReplayed() async throws {
        let admin = try await team()
        let chief = try #require(admin.member)
        try await admin.changeRole(of: "ivan", to: .admin)
        let promotion = try #require(try entries(admin).last).bytes
        let promoted = try lastEvent(admin)
        try await admin.changeRole(of: "ivan", to: .investigator)
        // The whole entry again: bound to the version it was approved at.
        let replayed = try replay(promotion, in: admin)
        #expect(try await problems(at: replayed, in: admin) == [.rosterChangeInvalid])
        // A fresh event at the version now, carrying the old approval.
        var fresh = try rosterEvent(
            .memberRole,
            subject: try #require(promoted.subject),
            by: chief,
            approvers: [],
            in: admin
        )
        fresh.approvals = promoted.approvals
        let moved = try forge(fresh, by: chief, in: admin)
        #expect(try await problems(at: moved, in: admin) == [.rosterChangeInvalid])
        #expect(try admin.roster().current(named: "ivan")?.role == .investigator)
    }

    @Test func aRemovedMembersIDCannotBeAddedAgain() async throws {
        let admin = try await team()
        let chief = try #require(admin.member)
        let ivan = try acting("ivan")
        try await admin.removeMember("ivan", reason: "left")
        let index = try forge(
            try rosterEvent(.memberAdd, subject: ivan.member, by: chief, approvers: [chief], in: admin),
            by: chief,
            in: admin
        )
        #expect(try await problems(at: index, in: admin) == [.rosterChangeInvalid])
        #expect(try admin.roster().current(ivan.member.id) == nil)
        let after = try forge(
            Event(type: .passphrase, time: RFC3339.now(), actor: admin.config.origin, item: nil),
            by: ivan,
            in: admin
        )
        #expect(try await problems(at: after, in: admin) == [.memberRemoved])
    }

    @Test func aSecondFoundingEventIsInvalid() async throws {
        let admin = try await team()
        let chief = try #require(admin.member)
        // By the administrator: a member-add that sets a threshold again.
        let another = try outsider("another")
        let refounded = try forge(
            try rosterEvent(
                .memberAdd,
                subject: another.member,
                by: chief,
                approvers: [chief],
                in: admin,
                threshold: 1
            ),
            by: chief,
            in: admin
        )
        #expect(try await problems(at: refounded, in: admin) == [.rosterChangeInvalid])
        // By someone holding the archive's key (an investigator) founding a roster of their own from version 0.
        let usurper = try outsider("usurper")
        let usurped = try forge(
            try rosterEvent(
                .memberAdd,
                subject: usurper.member,
                by: usurper,
                approvers: [usurper],
                in: admin,
                version: 0,
                threshold: 1
            ),
            by: usurper,
            in: admin
        )
        let kinds = try await problems(at: usurped, in: admin)
        #expect(!kinds.isEmpty && kinds.isSubset(of: [.rosterChangeInvalid, .memberUnknown]), "\(kinds)")
        let roster = try admin.roster()
        #expect(roster.current(another.member.id) == nil && roster.current(usurper.member.id) == nil)
        #expect(roster.threshold == 1)
    }

    @Test func theLastAdministratorCannotBeRemovedOrDemoted() async throws {
        let admin = try await team()
        let chief = try #require(admin.member)
        let before = snapshot()
        let removal = await #expect(throws: ArchiveError.self) { try await admin.removeMember("admin", reason: "r") }
        #expect(removal?.reason == .rosterRefused)
        let demotion = await #expect(throws: ArchiveError.self) {
            try await admin.changeRole(of: "admin", to: .investigator)
        }
        #expect(demotion?.reason == .rosterRefused)
        #expect(
            changes(since: before).isEmpty,
            "\(changes(since: before)): a refused roster change changed the archive"
        )
        let forged = try forge(
            try rosterEvent(.memberRemove, subject: chief.member, by: chief, approvers: [chief], in: admin),
            by: chief,
            in: admin
        )
        #expect(try await problems(at: forged, in: admin) == [.rosterChangeInvalid])
        #expect(try admin.roster().current(chief.member.id)?.role == .admin)
    }

    // MARK: Migration

    /// What an archive without members held before its migration.
    struct OldArchive {
        var keys: ArchiveKeys
        var origin: String
        var entries: Int
        var contents: [(item: IngestedItem, bytes: [UInt8])]
    }

    /// An archive without members holding two items, a tag, a note and a grant. Nothing of it stays open when
    /// this returns (a migration takes the archive's lock exclusively).
    private func oldArchive() async throws -> OldArchive {
        let plain = try await Archive.create(
            at: root,
            name: "Old Body",
            passphrase: Fixtures.secret(),
            kdfPreset: "insecure-test",
            chunkSize: 4096,
            founder: nil
        )
        let contents = [randomBytes(9_000), Array("a statement".utf8)]
        let items = try await plain.ingest(
            [dir.write("old/a.bin", contents[0]), dir.write("old/b.txt", contents[1])],
            options: IngestOptions()
        ).items.sorted { $0.path < $1.path }
        try await plain.tag(items[0].id.hex, add: ["verified"], remove: [])
        try await plain.note(items[1].id.hex, text: "reviewed")
        let grantee = try await Archive.create(
            at: dir.path + "/grantee",
            name: "Grantee",
            passphrase: Fixtures.secret(),
            kdfPreset: "insecure-test"
        )
        var request = GrantRequest(grantee: try grantee.identity(), expires: Expiry.resolve("30d") ?? "", purpose: "p")
        request.items = items.map(\.id.hex)
        _ = try await plain.createGrant(request)
        #expect(try await plain.verify(mode: .deep).ok)
        return OldArchive(
            keys: plain.keys,
            origin: plain.config.origin,
            entries: try entries(plain).count,
            contents: zip(items, contents).map { (item: $0, bytes: $1) }
        )
    }

    @Test func migrationKeepsEveryItemTagAndGrantAndNamesTheMemberFromThenOn() async throws {
        let old = try await oldArchive()
        let (oldEntries, contents) = (old.entries, old.contents)
        let founder = try await Archive.open(at: root, access: .exclusive, passphrase: { _ in Fixtures.secret() })
            .migrateToMembers(founder: "chair")
        #expect(founder.role == .admin && founder.name == "chair")
        #expect(!FileManager.default.fileExists(atPath: root + "/keys.json"), "keys.json outlived the migration")
        do {
            // The same passphrase now opens the founder's key file (the only member, so none needs naming).
            let chair = try Archive.open(at: root, passphrase: { _ in Fixtures.secret() }).unlock()
            #expect(chair.member?.member.id == founder.id)
            for (item, bytes) in contents {
                let out = dir.path + "/out-\(item.id.hex)"
                _ = try await chair.extract(item.id.hex, to: out, force: false)
                #expect(Fixtures.read(out) == bytes, "item \(item.path) changed in the migration")
            }
            var tagged = ItemFilter()
            tagged.tags = ["verified"]
            #expect(try await chair.index().list(tagged).count == 1)
            #expect(try await chair.index().grants().count == 1)
            try await chair.tag(contents[0].item.id.hex, add: ["after"], remove: [])
            var events: [Event] = []
            try chair.forEachLogEntry { events.append($0.event) }
            #expect(events.prefix(oldEntries).allSatisfy { $0.by == nil })
            #expect(events[oldEntries].type == .memberAdd)
            #expect(events.dropFirst(oldEntries).allSatisfy { $0.by == founder.id })
            let report = try await chair.verify(mode: .deep)
            #expect(report.ok, "\(report.problems)")
        }
        // Twice is refused, and changes nothing.
        let before = snapshot()
        let again = await #expect(throws: ArchiveError.self) {
            _ = try await Archive.open(at: root, access: .exclusive, passphrase: { _ in Fixtures.secret() })
                .migrateToMembers(founder: "chair2")
        }
        #expect(again?.code == .usage)
        #expect(changes(since: before).isEmpty, "\(changes(since: before))")
    }

    @Test func anInterruptedMigrationIsFinishedByRunningItAgain() async throws {
        let old = try await oldArchive()
        let contents = old.contents
        // As migrate does before the founding event: the founder's key file, under the archive's passphrase.
        let (file, _) = try MemberKeyFile.enrol(
            name: "chair",
            role: .admin,
            passphrase: Fixtures.secret(),
            parameters: .insecureTest,
            preset: "insecure-test",
            origin: old.origin,
            keys: old.keys
        )
        #expect(POSIX.makeDirectories(root + "/members") == 0)
        try ArchiveFiles.writeAtomically(root + "/members/\(file.member.id.hex).json", JSONFormat.fileBytes(file))
        // Until it is finished, a command says so instead of acting as a member the log does not know.
        do {
            let halfway = try Archive.open(at: root, passphrase: { _ in Fixtures.secret() }).unlock()
            let refused = await #expect(throws: ArchiveError.self) {
                _ = try await halfway.tag(contents[0].item.id.hex, add: ["x"], remove: [])
            }
            #expect(refused?.code == .damaged)
        }
        let founder = try await Archive.open(at: root, access: .exclusive, passphrase: { _ in Fixtures.secret() })
            .migrateToMembers(founder: "chair")
        #expect(founder.id == file.member.id)
        #expect(!FileManager.default.fileExists(atPath: root + "/keys.json"))
        let chair = try Archive.open(at: root, passphrase: { _ in Fixtures.secret() }).unlock()
        for (item, bytes) in contents {
            let out = dir.path + "/out-\(item.id.hex)"
            _ = try await chair.extract(item.id.hex, to: out, force: false)
            #expect(Fixtures.read(out) == bytes)
        }
        #expect(try await chair.verify(mode: .deep).ok)
    }

    // MARK: Role changes

    @Test func aRoleChangeReSealsTheShareAndAKeptOldKeyFileActsOnlyAsTheNewRole() async throws {
        let admin = try await team()
        let item = try await admin.ingest([dir.write("up/a.txt", text: "statement")], options: IngestOptions())
            .items[0].id.hex
        // Field staff promoted: their key file now opens items.
        try await admin.changeRole(of: "fay", to: .investigator)
        let out = try await open("fay").unlock().extract(item, to: dir.path + "/fay-out", force: false)
        #expect(Fixtures.read(out.path) == Array("statement".utf8))
        // An investigator demoted to field staff, who kept their old key file.
        let ivan = try acting("ivan")
        let path = root + "/members/\(ivan.member.id.hex).json"
        let kept = Fixtures.read(path)
        try await admin.changeRole(of: "ivan", to: .fieldStaff)
        #expect(Fixtures.read(path) != kept, "the demoted member's share was not re-sealed")
        let now = #expect(throws: ArchiveError.self) { try open("ivan").unlock() }
        #expect(now?.reason == .roleNotAllowed)
        dir.write("archive/members/\(ivan.member.id.hex).json", kept)
        let before = snapshot()
        let withOld = try open("ivan").unlock()
        let tag = await #expect(throws: ArchiveError.self) { _ = try await withOld.tag(item, add: ["x"], remove: []) }
        #expect(tag?.reason == .roleNotAllowed)
        let extract = await #expect(throws: ArchiveError.self) {
            _ = try await withOld.extract(item, to: dir.path + "/ivan-out", force: false)
        }
        #expect(extract?.reason == .roleNotAllowed)
        // Nothing in the log (what a refused library call leaves in objects/ is the first test's business).
        #expect(changes(since: before).filter { !$0.hasPrefix("objects/") }.isEmpty, "\(changes(since: before))")
        #expect(try await admin.verify(mode: .quick).ok)
    }

    @Test func eachMemberHasTheirOwnPassphraseAndChangingItTouchesOnlyTheirFile() async throws {
        let admin = try await team()
        _ = admin
        let wrong = #expect(throws: ArchiveError.self) { try open("ivan", passphrase: Fixtures.passphrase).unlock() }
        #expect(wrong?.reason == .wrongPassphrase)
        let ivanID = try acting("ivan").member.id
        let files = Dictionary(
            uniqueKeysWithValues: Fixtures.allFiles(under: root + "/members").map { ($0, Fixtures.read($0)) }
        )
        try await open("ivan").changePassphrase(to: Fixtures.secret("ivan's new words"), kdfPreset: nil)
        for (path, bytes) in files {
            if path.hasSuffix("/\(ivanID.hex).json") {
                #expect(Fixtures.read(path) != bytes)
            } else {
                #expect(Fixtures.read(path) == bytes, "\(path) changed with another member's passphrase")
            }
        }
        let old = #expect(throws: ArchiveError.self) { try open("ivan").unlock() }
        #expect(old?.reason == .wrongPassphrase)
        #expect(try open("ivan", passphrase: "ivan's new words").unlock().member?.member.id == ivanID)
        // Field staff change theirs too, without keys that open items.
        try await open("fay").changePassphrase(to: Fixtures.secret("fay's new words"), kdfPreset: nil)
        _ = try open("fay", passphrase: "fay's new words").deposit()
        #expect(try await admin.verify(mode: .quick).ok)
    }

    // MARK: Bad input and planted or edited key files

    @Test func badMemberNamesAndRolesAreRefused() async throws {
        let admin = try await team()
        let before = snapshot()
        for name in [
            "bad\u{07}name", "two\nlines", "", String(repeating: "x", count: 201), "rtl\u{202E}gpj.exe", "ivan",
        ] {
            let error = await #expect(throws: ArchiveError.self, "\(name.debugDescription)") {
                try await admin.addMember(
                    name,
                    role: .investigator,
                    passphrase: Fixtures.secret("p"),
                    kdfPreset: "insecure-test"
                )
            }
            #expect(error?.code == .usage, "\(name.debugDescription): \(String(describing: error))")
        }
        #expect(throws: ArchiveError.self) { try Role.named("superuser") }
        let unknown = #expect(throws: ArchiveError.self) { try open("nobody").unlock() }
        #expect(unknown?.reason == .memberUnknown)
        let anyone = #expect(throws: ArchiveError.self) {
            try Archive.open(at: root, passphrase: { _ in Fixtures.secret() }).unlock()
        }
        #expect(anyone?.code == .usage, "several members and none named")
        #expect(changes(since: before).isEmpty, "\(changes(since: before))")
    }

    @Test func aFilePlantedInMembersIsRefusedAsDamage() async throws {
        _ = try await team()
        for (name, bytes) in [
            ("notes.txt", Array("hello".utf8)), ("0123456789abcdef.json", Array("{}".utf8)),
            ("ABCDEF0123456789.json", Array("{}".utf8)),
        ] {
            let path = dir.write("archive/members/\(name)", bytes)
            let error = #expect(throws: ArchiveError.self, "\(name)") { try open("ivan").unlock() }
            #expect(error?.code == .damaged, "\(name): \(String(describing: error))")
            unlink(path)
        }
        _ = try open("ivan").unlock()
    }

    @Test func aFieldStaffKeyFileEditedToClaimAdminStillOpensNoItem() async throws {
        let admin = try await team()
        let item = try await admin.ingest([dir.write("up/a.txt", text: "s")], options: IngestOptions()).items[0].id
        let fay = try acting("fay")
        let path = root + "/members/\(fay.member.id.hex).json"
        var json = try #require(try JSONSerialization.jsonObject(with: Data(Fixtures.read(path))) as? [String: Any])
        var member = try #require(json["member"] as? [String: Any])
        member["role"] = "admin"
        json["member"] = member
        try JSONSerialization.data(withJSONObject: json).write(to: URL(fileURLWithPath: path))
        let before = snapshot()
        let error = #expect(throws: ArchiveError.self) { try open("fay").unlock() }
        #expect(error?.reason == .roleNotAllowed)
        let read = await #expect(throws: ArchiveError.self) {
            _ = try await open("fay").unlock().extract(item.hex, to: dir.path + "/x", force: false)
        }
        #expect(read != nil)
        #expect(!FileManager.default.fileExists(atPath: dir.path + "/x"))
        #expect(changes(since: before).isEmpty, "\(changes(since: before))")
    }

    @Test func aKeyFileFromAnotherArchiveOpensNothingHere() async throws {
        _ = try await team()
        let other = try await Archive.create(
            at: dir.path + "/other",
            name: "Other Body",
            passphrase: Fixtures.secret("mallory's words"),
            kdfPreset: "insecure-test",
            founder: "mallory"
        )
        let mallory = try #require(other.member)
        let foreign = Fixtures.read(dir.path + "/other/members/\(mallory.member.id.hex).json")
        dir.write("archive/members/\(mallory.member.id.hex).json", foreign)
        let before = snapshot()
        let error = #expect(throws: ArchiveError.self) { try open("mallory", passphrase: "mallory's words").unlock() }
        #expect(error != nil && error?.reason != .roleNotAllowed)
        let deposit = #expect(throws: ArchiveError.self) {
            try open("mallory", passphrase: "mallory's words").deposit()
        }
        #expect(deposit != nil)
        #expect(changes(since: before).isEmpty, "\(changes(since: before))")
    }

    // MARK: Concurrency

    @Test func twoMembersIngestingAtOnceLoseNothing() async throws {
        let admin = try await team()
        let perMember = 12
        for name in ["ivan", "fay"] {
            for i in 0..<perMember { dir.write("\(name)-up/\(i).txt", text: "\(name) file \(i)") }
        }
        let ivan = try open("ivan").unlock()
        let fay = try open("fay").deposit()
        let path = dir.path
        async let a = ivan.ingest([path + "/ivan-up"], options: IngestOptions())
        async let b = fay.ingest([path + "/fay-up"], options: IngestOptions())
        let (ivanReport, fayReport) = try await (a, b)
        #expect(ivanReport.items.count == perMember && fayReport.items.count == perMember)
        var byMember: [MemberID: Int] = [:]
        try admin.forEachLogEntry { entry in
            if entry.event.type == .ingest, let by = entry.event.by { byMember[by, default: 0] += 1 }
        }
        #expect(byMember[try acting("ivan").member.id] == perMember)
        #expect(byMember[try acting("fay").member.id] == perMember)
        #expect(try await admin.index().list(ItemFilter()).count == 2 * perMember)
        // Standard, not deep: deep verify's view of field staff's chunks is the test above's.
        let report = try await admin.verify(mode: .standard)
        #expect(report.ok, "\(report.problems)")
    }
}
