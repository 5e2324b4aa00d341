import CustodyCrypto
import CustodyStorage
import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// What became of a roster change.
package enum RosterOutcome: Sendable, Equatable {
    /// Recorded in the log: the roster has changed.
    case recorded
    /// Approved by fewer administrators than the roster's threshold: kept as a proposal that others approve
    /// with ``Archive/Unlocked/approveRosterChange(_:)``.
    case proposed(id: String, approvals: Int, needed: Int)
}

/// A roster change waiting for administrators' approvals, `roster-proposals/<id>.json` (mode 0600; Docs/LEDGER.md
/// section 18.3): the event as it will be recorded (without `by`), the approvals so far, and for a `member-add`
/// the new member's key file (their secrets sealed under their own passphrase, their share to their own key).
package struct RosterProposal: Codable, Sendable {
    /// Always `custody-roster-proposal`.
    package var format = "custody-roster-proposal"
    /// Format version (1).
    package var version = 1
    /// The change.
    package var event: Event
    /// The approvals collected, each over the change's roster statement.
    package var approvals: [Event.Approval]
    /// A `member-add`'s new key file.
    package var keyFile: MemberKeyFile?
    /// A `recovery-split`'s recovery file (the secrets sealed under the split's seed).
    package var recovery: RecoveryFile?

    enum CodingKeys: String, CodingKey {
        case format, version, event, approvals, recovery
        case keyFile = "key_file"
    }

    /// The proposal's id: the first 8 bytes of SHA-256 of its roster statement, as 16 hex characters.
    package static func id(of event: Event, origin: String) -> String {
        Encoding.hex(SHA256Hasher.hash(RosterStatement.bytes(of: event, origin: origin) ?? []).prefix(8))
    }

    static let maxBytes = 256 * 1024
}

extension ArchiveContext {
    var proposalsPath: String { root + "/roster-proposals" }

    /// The roster changes waiting for approvals, each checked: a proposal of the documented form, named for its
    /// statement, for the current roster version. Stale ones (the roster changed since) are listed too, marked.
    package func rosterProposals() throws -> [(id: String, proposal: RosterProposal, stale: Bool)] {
        let roster = try roster()
        return try listDirectory(proposalsPath).filter { $0.hasSuffix(".json") && !$0.hasPrefix(".") }.sorted()
            .map { name in
                let id = String(name.dropLast(5))
                let proposal = try readProposal(id)
                return (id, proposal, proposal.event.roster != roster.version)
            }
    }

    func readProposal(_ id: String) throws -> RosterProposal {
        guard Encoding.isLowercaseHex(id, count: 16) else {
            throw ArchiveError(
                .usage,
                "\(TerminalText.escape(String(id.prefix(40)))) is not a proposal id",
                fix: "give the 16 hex characters custody member proposals lists"
            )
        }
        let path = proposalsPath + "/\(id).json"
        guard POSIX.lstatPath(path) != nil else {
            throw ArchiveError(.notFound, "no roster proposal \(id)", fix: "list them with custody member proposals")
        }
        let bytes = try ArchiveFiles.read(path, limit: RosterProposal.maxBytes)
        guard let proposal = try? JSONDecoder().decode(RosterProposal.self, from: Data(bytes)),
            proposal.format == "custody-roster-proposal", proposal.version == 1, proposal.event.type.changesRoster,
            RosterProposal.id(of: proposal.event, origin: config.origin) == id,
            proposal.keyFile.map({ $0.member == proposal.event.subject && $0.member.problem == nil }) ?? true
        else {
            throw ArchiveError(.damaged, "roster-proposals/\(id).json is not a valid proposal", fix: "remove it")
        }
        return proposal
    }
}

extension Archive.Unlocked {
    /// Adds a member: fresh personal keys sealed under `passphrase`, the share their role holds, and a signed
    /// `member-add` event approved by the acting administrator — recorded at once, or, when the roster's threshold
    /// needs more approvals, kept as a proposal (``RosterOutcome/proposed(id:approvals:needed:)``).
    ///
    /// - Returns: The new member's record, and what became of the change.
    /// - Throws: ``ArchiveError``: role not allowed for a non-administrator; usage for a name in use or an invalid
    ///   one, or an unknown KDF preset.
    @discardableResult
    package func addMember(
        _ name: String,
        role: Role,
        passphrase: SecretBytes,
        kdfPreset: String
    ) async throws -> (member: Member, outcome: RosterOutcome) {
        try Member.validateName(name)
        guard passphrase.count >= 1 else { throw ArchiveError(.usage, "the passphrase is empty", fix: "choose one") }
        guard let parameters = Archive.kdfPresets[kdfPreset] else {
            throw ArchiveError(.usage, "unknown KDF preset \(kdfPreset)", fix: "use interactive, moderate or sensitive")
        }
        try authorize(member, for: [.manageMembers])
        let roster = try roster()
        guard roster.current(named: name) == nil else {
            throw ArchiveError(
                .usage,
                "a member named \(TerminalText.escape(name)) is already in the roster",
                fix: "choose another name"
            )
        }
        let (file, _) = try MemberKeyFile.enrol(
            name: name,
            role: role,
            passphrase: passphrase,
            parameters: parameters,
            preset: kdfPreset,
            origin: config.origin,
            keys: keys
        )
        var event = Event(type: .memberAdd, time: RFC3339.now(), actor: config.origin, item: nil)
        event.subject = file.member
        event.roster = roster.version
        return (file.member, try await submit(event, keyFile: file, roster: roster, approvals: []))
    }

    /// Removes a member: a signed `member-remove` (its reason sealed to the archive), then their key file deleted.
    /// Their key then unlocks nothing a command accepts; what they copied before is the business of key rotation
    /// (Docs/THREAT-MODEL.md section 7).
    @discardableResult
    package func removeMember(_ name: String, reason: String) async throws -> RosterOutcome {
        try Self.checkReason(reason)
        try authorize(member, for: [.manageMembers])
        let roster = try roster()
        var event = Event(type: .memberRemove, time: RFC3339.now(), actor: config.origin, item: nil)
        event.subject = try currentMember(named: name, in: roster)
        event.roster = roster.version
        // Every rule but the approvals checked before the reason is sealed: a refused removal stores nothing.
        try await recordRosterChange(event, roster: roster, approvals: [], acting: try actingMember(), checkOnly: true)
        {}
        event.sealed = try await sealReason(reason)
        return try await submit(event, keyFile: nil, roster: roster, approvals: [])
    }

    /// Changes a member's role: a signed `member-role`, then their share re-sealed for the new role.
    @discardableResult
    package func changeRole(of name: String, to role: Role) async throws -> RosterOutcome {
        try authorize(member, for: [.manageMembers])
        let roster = try roster()
        var subject = try currentMember(named: name, in: roster)
        guard subject.role != role else {
            throw ArchiveError(
                .usage,
                "\(TerminalText.escape(name)) is already \(role.article) \(role)",
                fix: "nothing to do"
            )
        }
        subject.role = role
        var event = Event(type: .memberRole, time: RFC3339.now(), actor: config.origin, item: nil)
        event.subject = subject
        event.roster = roster.version
        return try await submit(event, keyFile: nil, roster: roster, approvals: [])
    }

    /// Adds the acting administrator's approval to proposal `id`; records the change when the approvals reach the
    /// roster's threshold.
    ///
    /// - Throws: ``ArchiveError``: not found for an unknown proposal; roster refused for a stale one (the roster
    ///   changed since it was made: propose again) or one this member already approved.
    @discardableResult
    package func approveRosterChange(_ id: String) async throws -> RosterOutcome {
        try authorize(member, for: [.manageMembers])
        let proposal = try readProposal(id)
        let roster = try roster()
        guard proposal.event.roster == roster.version else {
            throw ArchiveError(
                .rosterRefused,
                "proposal \(id) was made for roster version \(proposal.event.roster ?? -1); the roster is at \(roster.version) now",
                fix: "propose the change again (custody member proposals --discard \(id) removes this one)"
            )
        }
        let acting = try actingMember()
        guard !proposal.approvals.contains(where: { $0.by == acting.member.id }) else {
            throw ArchiveError(
                .rosterRefused,
                "\(TerminalText.escape(acting.member.name)) has already approved proposal \(id)",
                fix: "another administrator must approve it"
            )
        }
        return try await submit(
            proposal.event,
            keyFile: proposal.keyFile,
            recovery: proposal.recovery,
            roster: roster,
            approvals: proposal.approvals
        )
    }

    /// Discards a pending proposal (any administrator may).
    package func discardRosterProposal(_ id: String) throws {
        try authorize(member, for: [.manageMembers])
        _ = try readProposal(id)
        let path = proposalsPath + "/\(id).json"
        guard unlink(path) == 0 || errno == ENOENT else {
            throw ArchiveError.writeFailed("cannot remove \(path)", errno: errno)
        }
    }

    private func currentMember(named name: String, in roster: Roster) throws -> Member {
        guard let member = roster.current(named: name) else {
            throw ArchiveError(
                .memberUnknown,
                "no current member named \(TerminalText.escape(String(name.prefix(80))))",
                fix: "check the name with custody member list"
            )
        }
        return member
    }

    /// Records `change` approved by the acting administrator and `approvals` — or, when that is fewer than the
    /// roster's threshold, keeps it as a proposal. What the change needs on disk is done around the append: a new
    /// member's key file before it (a crash between leaves a file the roster does not know, which opens nothing
    /// a command accepts), a re-sealed share before it, a removed member's key file deleted after it.
    func submit(
        _ change: Event,
        keyFile: MemberKeyFile?,
        recovery: RecoveryFile? = nil,
        roster: Roster,
        approvals: [Event.Approval]
    ) async throws -> RosterOutcome {
        let acting = try actingMember()
        guard
            let own = RosterStatement.approval(
                of: change,
                origin: config.origin,
                by: acting.member.id,
                key: acting.signing
            )
        else { preconditionFailure("a roster change without its subject") }
        let all = approvals.filter { $0.by != acting.member.id } + [own]
        let approvers = Set(all.filter { roster.isValidApproval($0, of: change, origin: config.origin) }.map(\.by))
        let id = RosterProposal.id(of: change, origin: config.origin)
        guard approvers.count >= roster.neededApprovals else {
            // Every other rule is checked now, so no one is asked to approve a change the roster would refuse.
            try await recordRosterChange(change, roster: roster, approvals: all, acting: acting, checkOnly: true) {}
            var proposal = RosterProposal(event: change, approvals: all, keyFile: keyFile, recovery: recovery)
            proposal.event.by = nil
            proposal.event.approvals = nil
            let made = POSIX.makeDirectories(proposalsPath)
            guard made == 0 else { throw ArchiveError.writeFailed("cannot create \(proposalsPath)", errno: made) }
            try ArchiveFiles.writeAtomically(proposalsPath + "/\(id).json", JSONFormat.fileBytes(proposal))
            return .proposed(id: id, approvals: approvers.count, needed: roster.neededApprovals)
        }
        try await recordRosterChange(change, roster: roster, approvals: all, acting: acting) {
            if change.type == .recoverySplit, let recovery {
                // The file first: a crash before the event leaves a file whose key the log does not name, which a
                // restore refuses and the next split replaces.
                try ArchiveFiles.writeAtomically(recoveryPath, JSONFormat.fileBytes(recovery))
            }
            guard let subject = change.subject else { return }
            switch change.type {
            case .memberAdd:
                guard let keyFile else { preconditionFailure("a member-add without the new key file") }
                try Archive.writeMemberKeyFile(keyFile, root: root)
            case .memberRole:
                // A member whose key file is kept elsewhere (on their own machine) is re-sealed there: their
                // share here, if any, follows the new role.
                if var file = try memberKeyFiles().first(where: { $0.member.id == subject.id }) {
                    file.member.role = subject.role
                    try file.seal(ArchiveKeys.Share(role: subject.role), of: keys)
                    try ArchiveFiles.writeAtomically(
                        Archive.memberKeyPath(root, subject.id),
                        JSONFormat.fileBytes(file)
                    )
                }
            default:
                break
            }
        }
        if change.type == .memberRemove, let subject = change.subject {
            let path = Archive.memberKeyPath(root, subject.id)
            guard unlink(path) == 0 || errno == ENOENT else {
                throw ArchiveError.writeFailed("cannot delete \(path)", errno: errno)
            }
            _ = POSIX.syncDirectory(Archive.membersPath(root))
        }
        _ = unlink(proposalsPath + "/\(id).json")
        return .recorded
    }
}

extension Roster {
    /// Whether `approval` is a current administrator's valid signature over `event`'s roster statement.
    func isValidApproval(_ approval: Event.Approval, of event: Event, origin: String) -> Bool {
        guard let admin = current(approval.by), admin.role == .admin,
            let statement = RosterStatement.bytes(of: event, origin: origin)
        else { return false }
        return isApproval(approval, of: statement, by: admin)
    }
}
