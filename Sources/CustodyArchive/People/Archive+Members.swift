import CustodyCrypto
import CustodyStorage
import Foundation
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// The member a command acts as: their public record and their own signing key, which cosigns every event they
/// record.
package struct ActingMember: Sendable {
    /// The member's public record (its role as their key file has it; the roster's role is the one that counts).
    package let member: Member
    /// Their own Ed25519 key.
    let signing: SigningKey
}

extension Archive {
    /// Members' key files, `members/<id>.json`.
    static func membersPath(_ root: String) -> String { root + "/members" }

    static func memberKeyPath(_ root: String, _ id: MemberID) -> String { membersPath(root) + "/\(id.hex).json" }

    /// Writes a member's key file (0600) durably into `members/`, creating the folder if needed.
    static func writeMemberKeyFile(_ file: MemberKeyFile, root: String) throws {
        let made = POSIX.makeDirectories(membersPath(root))
        guard made == 0 else { throw ArchiveError.writeFailed("cannot create \(membersPath(root))", errno: made) }
        try ArchiveFiles.writeAtomically(memberKeyPath(root, file.member.id), JSONFormat.fileBytes(file))
        _ = POSIX.syncDirectory(membersPath(root))
    }
}

extension Archive {
    /// The members whose key files are in the archive at `root` (current or not: the roster says which are),
    /// each checked: a file named for its member's id, of the documented form, at most 64 KiB. Anything else in
    /// `members/` is refused, so a planted file is never silently passed over.
    static func memberKeyFiles(root: String) throws -> [MemberKeyFile] {
        let directory = membersPath(root)
        let names = try listDirectory(directory).filter { !$0.hasPrefix(".") }
        guard names.count <= Roster.maxMembers else {
            throw ArchiveError(.damaged, "members/ holds more than \(Roster.maxMembers) files", fix: "check the folder")
        }
        return try names.sorted().map { name in
            let bad = ArchiveError(
                .damaged,
                "members/\(TerminalText.escape(String(name.prefix(80)))) is not a member key file",
                fix: "remove it, or restore members/ from a backup"
            )
            guard name.hasSuffix(".json"), let id = MemberID(hex: String(name.dropLast(5))) else { throw bad }
            let bytes = try ArchiveFiles.read(directory + "/" + name, limit: MemberKeyFile.maxBytes)
            guard let file = try? JSONDecoder().decode(MemberKeyFile.self, from: Data(bytes)),
                file.format == "custody-member", file.version == 1, file.member.id == id, file.member.problem == nil
            else { throw bad }
            return file
        }
    }

    /// Whether the archive at `root` keeps its secrets in members' key files (otherwise in the one `keys.json`).
    static func hasMembers(root: String) -> Bool {
        (try? listDirectory(membersPath(root)).contains { $0.hasSuffix(".json") && !$0.hasPrefix(".") }) ?? false
    }

    /// The key file of the member named `name`, or of the only member when `name` is `nil`.
    ///
    /// - Throws: ``ArchiveError``: member unknown for a name no key file has; usage when several members could act.
    static func memberKeyFile(root: String, named name: String?) throws -> MemberKeyFile {
        let files = try memberKeyFiles(root: root)
        if let name {
            guard let file = files.first(where: { $0.member.name == name }) else {
                throw ArchiveError(
                    .memberUnknown,
                    "no member named \(TerminalText.escape(String(name.prefix(80)))) has keys in this archive",
                    fix: "check the name with custody member list"
                )
            }
            return file
        }
        guard files.count == 1, let only = files.first else {
            throw ArchiveError(
                .usage,
                "this archive has \(files.count) members' keys; the command must say which member acts",
                fix: "pass --member NAME or set CUSTODY_MEMBER (custody member list shows the names)"
            )
        }
        return only
    }

    /// Opens the key file of member `name` (the only one when `nil`) with the passphrase `source` gives.
    static func openMember(
        root: String,
        config: ArchiveConfig,
        named name: String?,
        passphrase source: PassphraseSource?
    ) throws -> (file: MemberKeyFile, opened: MemberKeyFile.Opened) {
        try refuseDuringRotation(root: root)
        let file = try memberKeyFile(root: root, named: name)
        guard let source else {
            throw ArchiveError(
                .passphraseNeeded,
                "this operation needs the passphrase of member \(TerminalText.escape(file.member.name))",
                fix: "set CUSTODY_PASSPHRASE, pass --passphrase-file, or run in a terminal to be asked"
            )
        }
        let opened = try file.open(passphrase: source("\(file.member.name) in \(config.name)"), origin: config.origin)
        return (file, opened)
    }

    /// The archive's keys as the acting member holds them, checked against the public keys of `archive.json`.
    ///
    /// - Throws: ``ArchiveError``: role not allowed for field staff (``deposit()`` is theirs); damaged for a share
    ///   that is not of this archive's keys.
    static func openMemberKeys(
        root: String,
        config: ArchiveConfig,
        named name: String?,
        passphrase source: PassphraseSource?
    ) throws -> (keys: ArchiveKeys, member: ActingMember) {
        let (file, opened) = try openMember(root: root, config: config, named: name, passphrase: source)
        guard let keys = try ArchiveKeys(share: opened.kind, secrets: opened.secrets) else {
            throw ArchiveError(
                .roleNotAllowed,
                "\(TerminalText.escape(file.member.name)) is field staff, who add items but cannot read them",
                fix: "ask an investigator or an administrator"
            )
        }
        try checkKeys(keys, config: config, file: "members/\(file.member.id).json")
        return (keys, ActingMember(member: file.member, signing: opened.signing))
    }

    /// Checks that `keys` are those `config` publishes.
    static func checkKeys(_ keys: ArchiveKeys, config: ArchiveConfig, file: String) throws {
        guard Encoding.base64(keys.signing.publicKey) == config.signingKey,
            Encoding.base64(keys.box.publicKey) == config.boxKey,
            Encoding.base64(keys.log.publicKey) == config.logKey
        else {
            throw ArchiveError(
                .damaged,
                "\(file) does not match archive.json",
                fix: "restore both from the same backup"
            )
        }
    }
}

extension ArchiveContext {
    /// The members whose key files are in this archive (``Archive/memberKeyFiles(root:)``).
    package func memberKeyFiles() throws -> [MemberKeyFile] { try Archive.memberKeyFiles(root: root) }

    /// Whether this archive keeps its secrets in members' key files.
    package var hasMembers: Bool { Archive.hasMembers(root: root) }

    /// The roster as the log builds it up to its end: the index's copy, then any roster event the index has not
    /// applied yet. Needs no keys.
    package func roster() throws -> Roster {
        let index = try archive.openedIndex.get()
        let indexed = try index.position()
        guard indexed.offset <= journal.byteCount() else { throw Self.indexAheadOfJournal }
        // Where this archive value last read to, if that is beyond the index (field staff never catch the index
        // up): each call then reads only what was appended since, not the whole unindexed tail again.
        var (start, roster) = try archive.rosterCache.withLock { cached in
            if let cached, cached.position.count >= indexed.count { return cached }
            return (indexed, try index.roster() ?? Roster())
        }
        let (end, _) = try journal.scan(from: start) { entry in
            roster.replay(entry, publicKey: signingPublicKey, origin: config.origin)
        }
        start = end
        archive.rosterCache.withLock { $0 = (start, roster) }
        return roster
    }

    /// Checks that `acting` may take every one of `actions` now: a current member of the roster whose role
    /// allows them. An archive without members (`acting` `nil`) must have no roster.
    ///
    /// - Throws: ``ArchiveError``: member unknown, member removed, role not allowed.
    @discardableResult
    package func authorize(_ acting: ActingMember?, for actions: Set<Member.Action>) throws -> Roster {
        let roster = try roster()
        guard let acting else {
            guard !roster.isFounded else {
                throw ArchiveError(
                    .notAuthorised,
                    "this archive has a roster, but the command acts as no member",
                    fix: "act as a member (--member NAME); a keys.json left beside members/ is not used"
                )
            }
            return roster
        }
        guard roster.isFounded else {
            throw ArchiveError(
                .damaged,
                "members have keys but the log has no roster yet (an interrupted migration)",
                fix: "run custody member migrate again to finish it"
            )
        }
        let name = TerminalText.escape(acting.member.name)
        guard let entry = roster.entries[acting.member.id] else {
            throw ArchiveError(
                .memberUnknown,
                "\(name) (\(acting.member.id)) is not in this archive's roster",
                fix: "ask an administrator to add you (custody member add)"
            )
        }
        guard entry.removed == nil else {
            throw ArchiveError(
                .memberRemoved,
                "\(name) was removed from the roster at log entry \(entry.removed ?? 0)",
                fix: "ask an administrator if this is a mistake"
            )
        }
        let role = entry.member.role
        if let refused = actions.sorted(by: { $0.rawValue < $1.rawValue }).first(where: { !role.allows($0) }) {
            throw ArchiveError(
                .roleNotAllowed,
                "\(name) is \(role.article) \(role), whose role does not allow \(refused)",
                fix: "ask a member whose role allows it, or an administrator to change your role"
            )
        }
        return roster
    }
}

extension Role {
    /// `a` or `an`, for messages.
    var article: String { self == .admin || self == .investigator ? "an" : "a" }
}

extension Archive {
    /// Unlocks for field staff: the keys that add items and nothing that opens them.
    ///
    /// - Throws: ``ArchiveError`` (usage) for a member who opens items (``unlock()`` is theirs).
    package func deposit() throws -> Depositor { try deposit(passphrase: passphrase) }

    func deposit(passphrase source: PassphraseSource?) throws -> Depositor {
        let (file, opened) = try Self.openMember(root: root, config: config, named: memberName, passphrase: source)
        guard opened.kind == .depositor else {
            throw ArchiveError(
                .usage,
                "\(TerminalText.escape(file.member.name)) opens items; deposit is for field staff",
                fix: "use the ordinary commands"
            )
        }
        let keys = try DepositKeys(share: opened.secrets, personalBox: opened.boxSecret, boxPublicKey: boxPublicKey)
        guard Encoding.base64(keys.signing.publicKey) == config.signingKey,
            Encoding.base64(keys.log.publicKey) == config.logKey
        else {
            throw ArchiveError(
                .damaged,
                "members/\(file.member.id).json does not match archive.json",
                fix: "restore both from the same backup"
            )
        }
        return Depositor(archive: self, keys: keys, member: ActingMember(member: file.member, signing: opened.signing))
    }

    /// Whether the acting member is field staff (their key file holds a depositor's share), without opening it.
    package func actsAsFieldStaff() throws -> Bool {
        guard hasMembers else { return false }
        return try Self.memberKeyFile(root: root, named: memberName).member.role == .fieldStaff
    }
}

/// The archive unlocked by field staff: enough to add items (``IngestRecording``), nothing to open them.
package struct Depositor: ArchiveContext {
    package let archive: Archive
    package let keys: DepositKeys
    package let member: ActingMember

    package func unlocked() throws -> Archive.Unlocked {
        throw ArchiveError(
            .roleNotAllowed,
            "\(TerminalText.escape(member.member.name)) is field staff, who add items but cannot read them",
            fix: "ask an investigator or an administrator"
        )
    }
}

extension Archive.Unlocked {
    /// The acting member, for a command that needs one.
    func actingMember() throws -> ActingMember {
        guard let member else {
            throw ArchiveError(
                .usage,
                "this archive has no members yet",
                fix: "run custody member migrate to make its passphrase the first administrator"
            )
        }
        return member
    }

    /// Founds the roster of an archive unlocked without members: `founder` (an administrator whose key file is
    /// already written) adds themselves under the archive's signature, setting the threshold.
    ///
    /// - Returns: The archive unlocked as the founder.
    func foundRoster(_ founder: MemberKeyFile, signing: SigningKey, threshold: Int) async throws -> Archive.Unlocked {
        let roster = try roster()
        guard !roster.isFounded else {
            throw ArchiveError(.usage, "this archive already has a roster", fix: "see custody member list")
        }
        let acting = ActingMember(member: founder.member, signing: signing)
        var event = Event(type: .memberAdd, time: RFC3339.now(), actor: config.origin, item: nil)
        event.subject = founder.member
        event.roster = 0
        event.threshold = threshold
        try await recordRosterChange(event, roster: roster, approvals: [], acting: acting) {}
        return Archive.Unlocked(archive: archive, keys: keys, member: acting)
    }

    /// Records a roster change approved by `acting` and `approvals`, after checking it against the roster exactly
    /// as `verify` will (so a change the roster would refuse is never written); `write` runs between the check and
    /// the append.
    func recordRosterChange(
        _ change: Event,
        roster: Roster,
        approvals: [Event.Approval],
        acting: ActingMember,
        checkOnly: Bool = false,
        before write: () throws -> Void
    ) async throws {
        var event = change
        event.by = acting.member.id
        guard
            let own = RosterStatement.approval(
                of: event,
                origin: config.origin,
                by: acting.member.id,
                key: acting.signing
            )
        else { preconditionFailure("a roster change without its subject") }
        // A recovery is signed by the recovery key instead of approved by administrators.
        event.approvals = event.type == .recovery ? nil : [own] + approvals.filter { $0.by != acting.member.id }
        let entry = try event.entryBytes(signedBy: keys.signing, member: acting.signing)
        guard let envelope = SignedEnvelope.parse(entry, maxBytes: Journal.maxEntryBytes, allowingCosignature: true)
        else { preconditionFailure("an entry just signed does not parse") }
        var check = roster
        let position = try await index().position().count
        do {
            try check.apply(
                event,
                envelope: envelope,
                at: position,
                origin: config.origin,
                countingApprovals: !checkOnly
            )
        } catch {
            throw ArchiveError(
                .rosterRefused,
                "the roster refuses this change: \(error.detail)",
                fix: roster.fix(error)
            )
        }
        if checkOnly { return }
        try write()
        _ = try await record([event], signed: [entry])
    }

    /// Seals a reason (a revocation's, a removal's) to this archive's own box key, as an object an event names:
    /// `crypto_box_seal({"reason":"…"})`, so the public log shows only that there was one.
    func sealReason(_ reason: String) async throws -> ObjectRef {
        try Self.checkReason(reason)
        let sealed = try BoxKey.seal(Array(try Event.encoder.encode(["reason": reason])), to: boxPublicKey)
        let ref = ObjectRef(name: ObjectName(of: sealed), size: Int64(sealed.count))
        try await store.putObject(sealed, as: ref.name)
        return ref
    }
}

extension ArchiveContext {
    /// Checks a `--reason` before anything else is done: not blank, at most 4096 bytes.
    static func checkReason(_ reason: String) throws {
        guard !reason.trimmingCharacters(in: .whitespaces).isEmpty, reason.utf8.count <= 4096 else {
            throw ArchiveError(.usage, "the reason is empty or over 4096 bytes", fix: "give --reason \"…\"")
        }
    }
}

extension Roster {
    /// What to do about a refused change.
    func fix(_ problem: Problem) -> String {
        problem.lacksApprovals
            ? "collect the approvals of \(neededApprovals) administrators (custody member approve), or check the roster with custody member list"
            : "check the roster with custody member list"
    }
}

extension Archive {
    /// Changes the acting member's own passphrase: their key file re-sealed, and a `passphrase` event they sign.
    func changeMemberPassphrase(to newPassphrase: SecretBytes, kdfPreset: String?) async throws {
        let file = try Self.memberKeyFile(root: root, named: memberName)
        guard let passphrase else {
            throw ArchiveError(
                .passphraseNeeded,
                "the current passphrase of \(TerminalText.escape(file.member.name)) is needed",
                fix: "set CUSTODY_PASSPHRASE or --passphrase-file"
            )
        }
        let current = try passphrase("\(file.member.name) in \(config.name)")
        let preset = kdfPreset ?? file.kdf.preset
        guard let parameters = Self.kdfPresets[preset] else {
            throw ArchiveError(.usage, "unknown KDF preset \(preset)", fix: "use interactive, moderate or sensitive")
        }
        let event = Event(type: .passphrase, time: RFC3339.now(), actor: config.origin)
        // Authorised (and the event signed) with the current passphrase, before the file changes.
        let recorder: any EventRecording =
            file.member.role == .fieldStaff
            ? try deposit(passphrase: { _ in current }) : try unlock(passphrase: current)
        try recorder.authorize(recorder.acting, for: [.ownPassphrase])
        let sealed = try file.resealed(
            passphrase: current,
            to: newPassphrase,
            parameters: parameters,
            preset: preset,
            origin: config.origin
        )
        try ArchiveFiles.writeAtomically(Self.memberKeyPath(root, file.member.id), JSONFormat.fileBytes(sealed))
        _ = try await recorder.recordEvents([event], known: [:])
    }
}

/// An archive unlocked by a member who can record events: an ``Archive/Unlocked`` one, or field staff's
/// ``Depositor``.
package protocol EventRecording: ArchiveContext {
    /// The member who acts; `nil` in an archive without members.
    var acting: ActingMember? { get }
    /// The key that signs items' wrapped keys' recipient: the archive's X25519 public key.
    var convergence: SecretBytes { get }
    /// Signs `events` as the acting member (checking first that their role allows them), appends them, and
    /// applies them to the index where the recorder can.
    ///
    /// - Returns: For each item recorded, the id of an earlier item with the same content, where known.
    func recordEvents(_ events: [Event], known: [ItemID: ItemMetadata]) async throws -> [String: String?]
}

extension Archive.Unlocked: EventRecording {
    package var acting: ActingMember? { member }
    package var convergence: SecretBytes { keys.convergence }

    package func recordEvents(_ events: [Event], known: [ItemID: ItemMetadata]) async throws -> [String: String?] {
        try await record(events, known: known)
    }
}

extension Depositor: EventRecording {
    package var acting: ActingMember? { member }
    package var convergence: SecretBytes { keys.convergence }

    /// Signs and appends: field staff cannot open what the index needs to apply, so the index catches up when a
    /// member who can next opens it, and nothing about earlier items (a duplicate) is reported.
    package func recordEvents(_ events: [Event], known: [ItemID: ItemMetadata]) async throws -> [String: String?] {
        try authorize(member, for: Set(events.compactMap { Member.Action.of($0.type) }))
        let named = events.map { event in
            var event = event
            event.by = member.member.id
            return event
        }
        let entries = try await Event.entries(of: named, signedBy: keys.signing, member: member.signing)
        try ledger.append(entries, logKey: keys.log)
        return [:]
    }
}

extension Archive {
    /// Converts an archive without members (its secrets in `keys.json` under one passphrase) into one with a
    /// roster: its passphrase becomes the key-file passphrase of `founder`, its first administrator, whose
    /// `member-add` event founds the roster; then `keys.json` is removed. Nothing else changes: every key, item,
    /// grant and log entry is as it was, and events from then on name their member.
    ///
    /// Resumable: a run interrupted after the founder's key file was written finishes from it.
    ///
    /// - Returns: The founder.
    /// - Throws: ``ArchiveError``: usage when the archive already has a roster; not authorised for a wrong
    ///   passphrase.
    package func migrateToMembers(founder name: String) async throws -> Member {
        try Member.validateName(name)
        guard !(try roster().isFounded) else {
            throw ArchiveError(.usage, "this archive already has a roster", fix: "see custody member list")
        }
        let keysPath = Self.keysPath(root)
        if hasMembers {
            // An interrupted migration: the founder's key file is there, its event is not.
            let (keys, member) = try Self.openMemberKeys(
                root: root,
                config: config,
                named: nil,
                passphrase: passphrase
            )
            guard keys.isComplete, let file = try memberKeyFiles().first(where: { $0.member.id == member.member.id })
            else {
                throw ArchiveError(
                    .damaged,
                    "members/ holds a key file that is not an administrator's",
                    fix: "restore it"
                )
            }
            _ = try await Unlocked(archive: self, keys: keys, member: nil)
                .foundRoster(file, signing: member.signing, threshold: 1)
        } else {
            guard let source = passphrase else {
                throw ArchiveError(
                    .passphraseNeeded,
                    "the archive's passphrase is needed",
                    fix: "set CUSTODY_PASSPHRASE"
                )
            }
            let preset = try kdfPreset()
            let passphrase = try source(config.name)
            let unlocked = try unlock(passphrase: passphrase)
            guard let parameters = Self.kdfPresets[preset] else {
                throw ArchiveError(.damaged, "keys.json names an unknown KDF preset", fix: "restore it from a backup")
            }
            let (file, signing) = try MemberKeyFile.enrol(
                name: name,
                role: .admin,
                passphrase: passphrase,
                parameters: parameters,
                preset: preset,
                origin: config.origin,
                keys: unlocked.keys
            )
            try Self.writeMemberKeyFile(file, root: root)
            _ = try await unlocked.foundRoster(file, signing: signing, threshold: 1)
        }
        // Last: the one shared passphrase no longer opens anything.
        guard unlink(keysPath) == 0 || errno == ENOENT else {
            throw ArchiveError.writeFailed("cannot remove keys.json", errno: errno)
        }
        _ = POSIX.syncDirectory(root)
        guard let founder = try roster().currentMembers.first else {
            throw ArchiveError(.damaged, "the roster was not founded", fix: "run custody verify")
        }
        return founder
    }
}

extension Archive {
    /// For a command that reads only indexed or public data but is an action of some roles (listing items,
    /// listing grants, exporting a bundle): checks that the acting member is who they say (their key file opens
    /// with their passphrase) and that the roster lets them take `actions`. Nothing to check in an archive
    /// without members, whose one passphrase guards only the secrets.
    ///
    /// - Throws: ``ArchiveError``: wrong passphrase, member unknown or removed, role not allowed.
    package func authenticate(for actions: Set<Member.Action>) throws {
        guard hasMembers else { return }
        let (file, opened) = try Self.openMember(root: root, config: config, named: memberName, passphrase: passphrase)
        try authorize(ActingMember(member: file.member, signing: opened.signing), for: actions)
    }
}
