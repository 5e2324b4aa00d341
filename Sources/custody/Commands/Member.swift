import ArgumentParser
import CustodyArchive
import CustodyStorage
import Foundation

extension CustodyCommand {
    struct MemberCommand: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "member",
            abstract: "The people of this archive: enrol, list, change roles, remove; each has their own keys.",
            discussion: """
                Every command acts as a member: --member NAME or $CUSTODY_MEMBER (the only member when there is \
                one), whose own passphrase is asked. Every event they record names them and carries their \
                signature. The roster is in the custody log: `custody verify` checks each event against it. \
                Roles: admin (everything), records-officer (grants, bundles, serve, pull, revoke; reads \
                metadata), investigator (ingest, read, annotate, extract), field-staff (adds items; holds no key \
                that opens one). Docs/OPERATIONS.md section 19.
                """,
            subcommands: [
                Add.self, List.self, Remove.self, Role.self, Approve.self, Proposals.self, Passphrase.self,
                Migrate.self,
            ]
        )

        struct Add: AsyncParsableCommand {
            static let configuration = CommandConfiguration(
                abstract: "Enrol a person: their own keys, sealed under their own passphrase, and a signed member-add.",
                discussion: """
                    Needs an administrator. The new member's passphrase comes from --new-passphrase-file, \
                    $CUSTODY_NEW_PASSPHRASE or a prompt (asked twice): let them type it. Their key file is \
                    members/<id>.json (mode 0600).
                    """
            )
            @OptionGroup var global: GlobalOptions
            @Argument(help: "The new member's display name (unique among current members).") var name: String
            @Option(help: "admin, records-officer, investigator or field-staff.") var role: String
            @Option(help: "Read the new member's passphrase from this file (mode 0600).", completion: .file())
            var newPassphraseFile: String?
            @Option(
                help: ArgumentHelp(
                    "Argon2id strength of their key file: interactive (default), moderate or sensitive.",
                    valueName: "preset"
                )
            )
            var kdf = "interactive"
            @Flag(help: "Print JSON.") var json = false

            func run() async throws {
                try await runReportingErrorsAsync {
                    let role = try CustodyArchive.Role.named(role)
                    try CustodyArchive.Member.validateName(name)
                    let archive = try global.unlockArchive(for: [.manageMembers])
                    let fresh = try global.readNewPassphrase(
                        file: newPassphraseFile,
                        prompt: "Passphrase for \(name): "
                    )
                    let (member, outcome) = try await archive.addMember(
                        name,
                        role: role,
                        passphrase: fresh,
                        kdfPreset: kdf
                    )
                    try report(outcome, json: json, member: member) {
                        "added \(member.name) (\(member.id)) as \(member.role)"
                    }
                }
            }
        }

        struct List: AsyncParsableCommand {
            static let configuration = CommandConfiguration(
                abstract: "List the roster as the custody log builds it (no passphrase needed).",
                discussion: "Without --all, only current members; --all adds those removed, with when."
            )
            @OptionGroup var global: GlobalOptions
            @Flag(help: "Include removed members.") var all = false
            @Flag(help: "Print JSON.") var json = false

            func run() async throws {
                try await runReportingErrorsAsync {
                    let archive = try global.openArchive()
                    let roster = try archive.roster()
                    let withKeys = Set(try archive.memberKeyFiles().map(\.member.id))
                    let entries = roster.entries.values
                        .filter { all || $0.removed == nil }
                        .sorted { ($0.added, $0.member.name) < ($1.added, $1.member.name) }
                    if json {
                        try printJSON(
                            RosterJSON(
                                threshold: roster.threshold,
                                version: roster.version,
                                members: entries.map { MemberJSON($0, hasKeys: withKeys.contains($0.member.id)) }
                            )
                        )
                        return
                    }
                    guard roster.isFounded else {
                        print("no members: this archive's secrets are in keys.json under one passphrase")
                        print("make its passphrase the first administrator with: custody member migrate")
                        return
                    }
                    for entry in entries {
                        let status = entry.removed.map { "removed at entry \($0)" } ?? "since entry \(entry.added)"
                        print(
                            "\(entry.member.id)  \(entry.member.role.rawValue.padding(toLength: 15, withPad: " ", startingAt: 0))  \(entry.member.name)  (\(status))"
                        )
                    }
                    print("roster changes need \(roster.threshold) administrator approval(s)")
                }
            }
        }

        struct Remove: AsyncParsableCommand {
            static let configuration = CommandConfiguration(
                abstract: "Take a member's access away: a signed member-remove, and their key file deleted.",
                discussion: """
                    Needs an administrator. Their key then unlocks nothing the archive accepts, and verify flags \
                    any event they sign afterwards. What they could read before is theirs to keep: Docs/THREAT-MODEL.md \
                    section 9 says what rotating the keys protects.
                    """
            )
            @OptionGroup var global: GlobalOptions
            @Argument(help: "The member's name.") var name: String
            @Option(help: "Why (sealed to this archive; the log shows only that there was a reason).") var reason:
                String
            @Flag(help: "Print JSON.") var json = false

            func run() async throws {
                try await runReportingErrorsAsync {
                    let archive = try global.unlockArchive(for: [.manageMembers])
                    let outcome = try await archive.removeMember(name, reason: reason)
                    try report(outcome, json: json) { "removed \(name)" }
                }
            }
        }

        struct Role: AsyncParsableCommand {
            static let configuration = CommandConfiguration(
                abstract: "Change a member's role: a signed member-role, and their share of the keys re-sealed.",
                discussion: "Needs an administrator."
            )
            @OptionGroup var global: GlobalOptions
            @Argument(help: "The member's name.") var name: String
            @Argument(help: "admin, records-officer, investigator or field-staff.") var role: String
            @Flag(help: "Print JSON.") var json = false

            func run() async throws {
                try await runReportingErrorsAsync {
                    let role = try CustodyArchive.Role.named(role)
                    let archive = try global.unlockArchive(for: [.manageMembers])
                    let outcome = try await archive.changeRole(of: name, to: role)
                    try report(outcome, json: json) { "\(name) is now \(role)" }
                }
            }
        }

        struct Approve: AsyncParsableCommand {
            static let configuration = CommandConfiguration(
                abstract: "Approve a pending roster change as another administrator; recorded once enough approve.",
                discussion: """
                    Under init --roster-threshold N, a member add, remove or role change made by one administrator \
                    waits in roster-proposals/ until N administrators in all have approved it (each with their own \
                    passphrase, one after another, on this archive). The approvals are signatures over the change's \
                    roster statement (Docs/LEDGER.md section 18), recorded in the event.
                    """
            )
            @OptionGroup var global: GlobalOptions
            @Argument(help: "The proposal id (custody member proposals).") var id: String
            @Flag(help: "Print JSON.") var json = false

            func run() async throws {
                try await runReportingErrorsAsync {
                    let archive = try global.unlockArchive(for: [.manageMembers])
                    let outcome = try await archive.approveRosterChange(id)
                    try report(outcome, json: json) { "proposal \(id) approved and recorded" }
                }
            }
        }

        struct Proposals: AsyncParsableCommand {
            static let configuration = CommandConfiguration(
                abstract: "List roster changes waiting for approvals (no passphrase needed), or discard one.",
                discussion: "A proposal made for an older roster version is stale: approving it is refused."
            )
            @OptionGroup var global: GlobalOptions
            @Option(help: "Discard this proposal (needs an administrator).") var discard: String?
            @Flag(help: "Print JSON.") var json = false

            func run() async throws {
                try await runReportingErrorsAsync {
                    if let discard {
                        try global.unlockArchive(for: [.manageMembers]).discardRosterProposal(discard)
                        print("discarded proposal \(discard)")
                        return
                    }
                    let archive = try global.openArchive()
                    let roster = try archive.roster()
                    let pending = try archive.rosterProposals()
                    if json {
                        try printJSON(
                            pending.map {
                                ProposalJSON(
                                    id: $0.id,
                                    type: $0.proposal.event.type.rawValue,
                                    subject: $0.proposal.event.subject.map(MemberJSON.init),
                                    approvedBy: $0.proposal.approvals.map {
                                        roster.entries[$0.by]?.member.name ?? $0.by.hex
                                    },
                                    needed: roster.neededApprovals,
                                    stale: $0.stale
                                )
                            }
                        )
                        return
                    }
                    if pending.isEmpty { print("no pending roster changes") }
                    for (id, proposal, stale) in pending {
                        let subject = proposal.event.subject.map { "\($0.name) as \($0.role)" } ?? "-"
                        let by = proposal.approvals.map { roster.label(of: $0.by) }.joined(separator: ", ")
                        print(
                            "\(id)  \(proposal.event.type)  \(subject)  approved by \(by) (\(proposal.approvals.count) of \(roster.neededApprovals))\(stale ? "  STALE" : "")"
                        )
                    }
                }
            }
        }

        struct Passphrase: AsyncParsableCommand {
            static let configuration = CommandConfiguration(
                abstract: "Change your own passphrase (the acting member's key file is re-sealed).",
                discussion: """
                    The current passphrase comes from --passphrase-file, $CUSTODY_PASSPHRASE or a prompt; the new one \
                    from --new-passphrase-file, $CUSTODY_NEW_PASSPHRASE or a prompt.
                    """
            )
            @OptionGroup var global: GlobalOptions
            @Option(help: "Read the new passphrase from this file.", completion: .file()) var newPassphraseFile: String?
            @Option(help: "Also change the Argon2id preset (interactive, moderate, sensitive).") var kdf: String?

            func run() async throws {
                try await runReportingErrorsAsync {
                    let archive = try global.openArchive(access: .exclusive)
                    guard archive.hasMembers else {
                        throw ArchiveError(
                            .usage,
                            "this archive has no members",
                            fix: "use custody passphrase change, or custody member migrate first"
                        )
                    }
                    let fresh = try global.readNewPassphrase(file: newPassphraseFile, prompt: "New passphrase: ")
                    try await archive.changePassphrase(to: fresh, kdfPreset: kdf)
                    print("passphrase changed")
                }
            }
        }

        struct Migrate: AsyncParsableCommand {
            static let configuration = CommandConfiguration(
                abstract: "Give an archive without members a roster: its passphrase becomes the first administrator's.",
                discussion: """
                    For archives made before members: the secrets move from keys.json into the new administrator's \
                    key file, sealed under the same passphrase, a signed member-add founds the roster, and \
                    keys.json is removed. Nothing else changes; events from then on name their member. Resumable.
                    """
            )
            @OptionGroup var global: GlobalOptions
            @Option(help: "The first administrator's display name.") var name = "admin"
            @Flag(help: "Print JSON.") var json = false

            func run() async throws {
                try await runReportingErrorsAsync {
                    let archive = try global.openArchive(access: .exclusive)
                    let founder = try await archive.migrateToMembers(founder: name)
                    if json {
                        try printJSON(MemberJSON(founder))
                    } else {
                        print("\(founder.name) (\(founder.id)) is this archive's first administrator")
                    }
                }
            }
        }
    }
}

/// Prints what became of a roster change: done, or waiting for approvals.
private func report(
    _ outcome: RosterOutcome,
    json: Bool,
    member: CustodyArchive.Member? = nil,
    done: () -> String
) throws {
    switch outcome {
    case .recorded:
        if json {
            try printJSON(OutcomeJSON(status: "recorded", member: member.map(MemberJSON.init)))
        } else {
            print(done())
        }
    case .proposed(let id, let approvals, let needed):
        if json {
            try printJSON(
                OutcomeJSON(
                    status: "proposed",
                    member: member.map(MemberJSON.init),
                    proposal: id,
                    approvals: approvals,
                    needed: needed
                )
            )
        } else {
            print("proposed as \(id): \(approvals) of \(needed) administrator approvals so far")
            print("each other administrator runs: custody member approve \(id) --member NAME")
        }
    }
}

/// What `member add|remove|role|approve --json` print.
struct OutcomeJSON: Encodable {
    var status: String
    var member: MemberJSON?
    var proposal: String?
    var approvals: Int?
    var needed: Int?
}

/// `member proposals --json`.
struct ProposalJSON: Encodable {
    var id: String
    var type: String
    var subject: MemberJSON?
    var approvedBy: [String]
    var needed: Int
    var stale: Bool

    enum CodingKeys: String, CodingKey {
        case id, type, subject, needed, stale
        case approvedBy = "approved_by"
    }
}

/// A member in `member list --json` and `member add --json`.
struct MemberJSON: Encodable {
    var id: String
    var name: String
    var role: String
    var signingKey: String
    var boxKey: String
    var added: Int?
    var removed: Int?
    var hasKeys: Bool?

    init(_ member: CustodyArchive.Member) {
        id = member.id.hex
        name = member.name
        role = member.role.rawValue
        signingKey = member.signingKey
        boxKey = member.boxKey
    }

    init(_ entry: Roster.Entry, hasKeys: Bool) {
        self.init(entry.member)
        added = entry.added
        removed = entry.removed
        self.hasKeys = hasKeys
    }

    enum CodingKeys: String, CodingKey {
        case id, name, role, added, removed
        case signingKey = "signing_key"
        case boxKey = "box_key"
        case hasKeys = "has_keys"
    }
}

/// `member list --json`.
struct RosterJSON: Encodable {
    var threshold: Int
    var version: Int
    var members: [MemberJSON]
}
