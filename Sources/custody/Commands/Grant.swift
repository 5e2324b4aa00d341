import ArgumentParser
import CustodyArchive
import CustodyStorage
import Foundation

extension CustodyCommand {
    struct GrantCommand: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "grant",
            abstract: "Give another body scoped access to items, list and show grants, revoke them.",
            discussion: """
                A grant is signed by this archive and names the grantee's keys, the exact items (resolved from the \
                query when it is made), the objects and wrapped keys it releases, the permission, re-share and \
                expiry. Its purpose and query are sealed to the two bodies. Export it with custody bundle export. \
                Keys already delivered cannot be taken back by a revocation (Docs/SHARING.md).
                """,
            subcommands: [Create.self, List.self, Show.self, Revoke.self, Revocation.self]
        )

        struct Create: AsyncParsableCommand {
            static let configuration = CommandConfiguration(
                abstract: "Grant a body access to the items a query selects (a signed grant event).",
                discussion: """
                    The scope is resolved now to explicit item ids: --case, every --tag, --collected-after/before, \
                    plus any --item. Items whose consent forbids sharing (no-share, do-not-share, internal-only) are \
                    left out unless --override-consent --reason; --max-sensitivity leaves out items above a level \
                    (public, low, medium, high, critical) or without one. --dry-run shows the scope and grants \
                    nothing. Needs the passphrase.
                    """
            )
            @OptionGroup var global: GlobalOptions
            @Option(help: "The grantee's identity file (custody id export).", completion: .file()) var to: String
            @Option(name: .customLong("case"), help: "Items of this case.") var caseID: String?
            @Option(help: "Items with this tag (repeatable: all of them).") var tag: [String] = []
            @Option(help: "This item (repeatable).") var item: [String] = []
            @Option(help: "Collected at or after (RFC 3339).") var collectedAfter: String?
            @Option(help: "Collected before (RFC 3339).") var collectedBefore: String?
            @Option(help: "Leave out items above this sensitivity level.") var maxSensitivity: String?
            @Option(help: "Valid for (90d, 12h) or until (RFC 3339).") var expires: String
            @Option(help: "Why access is given (sealed to the two bodies).") var purpose: String
            @Flag(help: "Release metadata only: no content keys, no chunks.") var metadataOnly = false
            @Flag(help: "Let the grantee re-share (as child grants, never wider or longer).") var reshare = false
            @Flag(help: "Include items whose consent forbids sharing (needs --reason).") var overrideConsent = false
            @Option(help: "Why consent is overridden (recorded, sealed).") var reason: String?
            @Flag(help: "Show the scope; grant nothing.") var dryRun = false
            @Flag(help: "Print JSON.") var json = false

            func validate() throws {
                if overrideConsent != (reason != nil) {
                    throw ValidationError("--override-consent and --reason go together")
                }
            }

            func run() async throws {
                try await runReportingErrorsAsync {
                    let archive = try global.unlockArchive(for: [.share])
                    let grantee = try Archive.readIdentity(to)
                    guard let until = Expiry.resolve(expires) else {
                        throw ArchiveError(
                            .usage,
                            "--expires \(expires) is not a duration or time",
                            fix: "use 90d, 12h, 30m or an RFC 3339 time"
                        )
                    }
                    var request = GrantRequest(grantee: grantee, expires: until, purpose: purpose)
                    request.caseID = caseID
                    request.tags = tag
                    request.items = item
                    request.collectedAfter = try collectedAfter.map(normalized)
                    request.collectedBefore = try collectedBefore.map(normalized)
                    request.maxSensitivity = maxSensitivity
                    request.metadataOnly = metadataOnly
                    request.reshare = reshare
                    request.overrideConsentReason = reason
                    printError("grantee: \(grantee.name) (\(grantee.origin)), fingerprint \(grantee.fingerprint)")
                    let id: String?
                    let scope: GrantScope
                    if dryRun {
                        scope = try await archive.resolveScope(request)
                        id = nil
                    } else {
                        let made = try await archive.createGrant(request)
                        scope = made.scope
                        id = made.grant.id
                    }
                    if json {
                        try printJSON(
                            GrantCreateJSON(
                                id: id,
                                dryRun: dryRun,
                                grantee: grantee.name,
                                granteeFingerprint: grantee.fingerprint,
                                expires: until,
                                items: scope.items.map(\.item.id),
                                excluded: scope.excluded.map { GrantCreateJSON.Excluded(id: $0.id, reason: $0.reason) }
                            )
                        )
                        return
                    }
                    print(dryRun ? "dry run: nothing granted" : "grant \(id ?? "")")
                    print(
                        "\(scope.items.count) item(s) in scope, until \(until)\(metadataOnly ? ", metadata only" : "")"
                    )
                    for (item, why) in scope.items { print("  \(item.id)  \(item.metadata.name)  — \(why)") }
                    if !scope.excluded.isEmpty { print("\(scope.excluded.count) left out:") }
                    for excluded in scope.excluded { print("  \(excluded.id)  — \(excluded.reason)") }
                }
            }

            private func normalized(_ text: String) throws -> String {
                guard let value = RFC3339.normalize(text) else {
                    throw ArchiveError(.usage, "\(text) is not an RFC 3339 time", fix: "use e.g. 2026-03-02T10:00:00Z")
                }
                return value
            }
        }

        struct List: AsyncParsableCommand {
            static let configuration = CommandConfiguration(
                abstract: "List grants made and received; with --item, who holds that item and under which grant."
            )
            @OptionGroup var global: GlobalOptions
            @Option(help: "Only grants that include this item.") var item: String?
            @Flag(help: "Print JSON.") var json = false

            func run() async throws {
                try await runReportingErrorsAsync {
                    let archive = try global.openArchive(authorizing: [.read])
                    var itemID: String?
                    if let item { itemID = try await archive.resolveItem(item).id }
                    let grants = try await archive.index().grants(item: itemID)
                    if json {
                        var rows: [GrantListJSON] = []
                        for summary in grants {
                            var row = GrantListJSON(summary, me: archive.config.name)
                            if summary.direction == .outgoing {
                                row.parentRevoked = await archive.revokedAncestor(of: summary.id).map {
                                    .init(grant: $0.grant, revokedAt: $0.revokedAt)
                                }
                            }
                            rows.append(row)
                        }
                        try printJSON(["grants": rows])
                        return
                    }
                    for grant in grants {
                        var state = grant.revokedAt.map { "revoked \($0)" } ?? "until \(grant.expires)"
                        if grant.direction == .outgoing, grant.revokedAt == nil,
                            let (ancestor, when) = await archive.revokedAncestor(of: grant.id)
                        {
                            state = "REFUSED by this node: its parent grant \(ancestor) was revoked at \(when)"
                        }
                        if let received = grant.revocation {
                            let via = received.ancestor.map { "its parent grant \($0) was " } ?? ""
                            state =
                                "REVOKED: \(via)revoked by \(TerminalText.escape(received.revokedBy)) at \(received.revokedAt) (notice received \(received.receivedAt))"
                        }
                        let arrow = grant.direction == .outgoing ? "to" : "from"
                        print(
                            "\(grant.id)  \(arrow) \(grant.party)  \(grant.items) item(s)  \(grant.permission.rawValue)  \(state)"
                        )
                    }
                }
            }
        }

        struct Show: AsyncParsableCommand {
            static let configuration = CommandConfiguration(
                abstract: "Show a grant: parties, terms, and exactly which items are in scope and why.",
                discussion: "The purpose and query are sealed: this needs the passphrase."
            )
            @OptionGroup var global: GlobalOptions
            @Argument(help: "Grant id or unique prefix (8+ characters).") var grant: String
            @Flag(help: "Print JSON.") var json = false

            func run() async throws {
                try await runReportingErrorsAsync {
                    let archive = try global.unlockArchive(for: [.read])
                    let (grant, signed) = try await archive.storedGrant(grant)
                    let terms = try archive.terms(of: grant)
                    let summary = try await archive.index().grants().first { $0.id == grant.id }
                    let why = terms.query.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(
                        separator: " "
                    )
                    if json {
                        try printJSON(
                            GrantShowJSON(
                                id: grant.id,
                                hash: Grant.hash(signed),
                                kind: grant.kind,
                                granter: grant.granter,
                                grantee: grant.grantee,
                                created: grant.created,
                                expires: grant.expires,
                                permission: grant.permission,
                                reshare: grant.reshare,
                                revokedAt: summary?.revokedAt,
                                revocation: summary?.revocation,
                                purpose: terms.purpose,
                                query: terms.query,
                                consentOverride: terms.consentOverride,
                                items: grant.items.map { $0.id.hex }
                            )
                        )
                        return
                    }
                    print("grant        \(grant.id)")
                    print("from         \(grant.granter.name) (\(grant.granter.origin)) \(grant.granter.fingerprint)")
                    print("to           \(grant.grantee.name) (\(grant.grantee.origin)) \(grant.grantee.fingerprint)")
                    print("purpose      \(terms.purpose)")
                    print("created      \(grant.created)")
                    print("expires      \(grant.expires)")
                    print(
                        "permission   \(grant.permission.rawValue)\(grant.reshare ? ", may re-share" : ", no re-share")"
                    )
                    if let received = summary?.revocation {
                        print(
                            "REVOKED      \(received.revokedAt) by \(TerminalText.escape(received.revokedBy)) \(received.revokedByFingerprint) (signed notice received \(received.receivedAt), entry \(received.entry) of its log)\(received.ancestor.map { "; its parent grant \($0) was revoked" } ?? "")"
                        )
                    } else if let revoked = summary?.revokedAt {
                        print("REVOKED      \(revoked)")
                    }
                    print("query        \(why)")
                    if let override = terms.consentOverride {
                        print("consent overridden for \(override.items.count) item(s): \(override.reason)")
                    }
                    print("\(grant.items.count) item(s):")
                    for item in grant.items {
                        print(
                            "  \(item.id)  \(item.objects.count) object(s)\(item.keys.content == nil ? ", metadata only" : "")"
                        )
                    }
                }
            }
        }

        struct Revoke: AsyncParsableCommand {
            static let configuration = CommandConfiguration(
                abstract: "Revoke a grant (a signed revoke event; the reason is sealed to this archive).",
                discussion: """
                    Later bundles and the online protocol refuse the grant and its children from then on. Keys and \
                    evidence already delivered cannot be recalled. Needs the passphrase.
                    """
            )
            @OptionGroup var global: GlobalOptions
            @Argument(help: "Grant id or unique prefix.") var grant: String
            @Option(help: "Why (recorded, sealed).") var reason: String
            @Option(
                name: .shortAndLong,
                help:
                    "Also write the signed revocation notice here, for the grantee (custody grant revocation import).",
                completion: .file()
            ) var output: String?
            @Flag(help: "Print JSON.") var json = false

            func run() async throws {
                try await runReportingErrorsAsync {
                    let archive = try global.unlockArchive(for: [.share])
                    if let output { try refuseExisting(output) }
                    let summary = try await archive.revokeGrant(grant, reason: reason)
                    if let output { try await writeNotice(archive.revocationNotice(grant: summary.id), to: output) }
                    if json {
                        try printJSON(GrantListJSON(summary, me: archive.config.name))
                    } else {
                        print("revoked \(summary.id) at \(summary.revokedAt ?? "")")
                    }
                }
            }
        }
    }
}

extension CustodyCommand.GrantCommand {
    struct Revocation: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Carry a revocation notice offline: export it at the granter, import it at the grantee.",
            discussion: """
                A revocation notice is the granter's signed revoke event with its inclusion proof against the \
                granter's signed checkpoint (Docs/SHARING.md section 2). custody pull receives it online; these \
                carry it as a file. Importing checks it against the granter's identity in this archive's registry \
                and the grant as stored here, and records a revocation-received event.
                """,
            subcommands: [Export.self, Import.self]
        )

        struct Export: AsyncParsableCommand {
            static let configuration = CommandConfiguration(
                abstract: "Write the revocation notice of a grant this archive made and revoked."
            )
            @OptionGroup var global: GlobalOptions
            @Argument(help: "Grant id or unique prefix.") var grant: String
            @Option(name: .shortAndLong, help: "The file to write.", completion: .file()) var output: String

            func run() async throws {
                try await runReportingErrorsAsync {
                    let archive = try global.openArchive(authorizing: [.share])
                    try refuseExisting(output)
                    let id = try await archive.storedGrant(grant).grant.id
                    try await writeNotice(archive.revocationNotice(grant: id), to: output)
                    print("wrote the revocation notice of \(id) to \(output)")
                }
            }
        }

        struct Import: AsyncParsableCommand {
            static let configuration = CommandConfiguration(
                abstract: "Check a revocation notice against the granter's known identity and record it.",
                discussion: "Exit 1 when it does not verify (nothing is recorded), 66 for a grant not held here."
            )
            @OptionGroup var global: GlobalOptions
            @Argument(help: "The notice file (custody grant revoke -o, or revocation export).", completion: .file())
            var file: String
            @Flag(help: "Print JSON.") var json = false

            func run() async throws {
                try await runReportingErrorsAsync {
                    let archive = try global.unlockArchive(for: [.share])
                    let bytes = try ArchiveFiles.read(file, limit: RevocationNotice.maxBytes)
                    let verified = try await archive.verifyRevocationNotice(bytes)
                    let recorded = try await archive.recordRevocation(verified)
                    if json {
                        try printJSON(RevocationJSON(grant: verified.grant.id, recorded))
                    } else {
                        print(
                            "grant \(verified.grant.id): revoked by \(TerminalText.escape(recorded.revokedBy)) at \(recorded.revokedAt); the verified notice is recorded"
                        )
                    }
                }
            }
        }
    }
}

/// Refuses to overwrite `path`.
private func refuseExisting(_ path: String) throws {
    if (try? FileManager.default.attributesOfItem(atPath: path)) != nil {  // lstat: a link counts too
        throw ArchiveError(.cannotCreate, "\(path) already exists", fix: "choose another -o path")
    }
}

/// Writes a revocation notice file.
private func writeNotice(_ bytes: [UInt8], to path: String) throws {
    try ArchiveFiles.writeAtomically(path, bytes + [0x0A])
}

/// A received revocation in `--json` output.
struct RevocationJSON: Encodable {
    var grant: String
    var revokedAt: String
    var revokedBy: String
    var revokedByOrigin: String
    var revokedByFingerprint: String
    var receivedAt: String
    var entry: Int
    var notice: String
    /// For a re-share received here: the ancestor grant that was revoked.
    var ancestor: String?

    init(grant: String, _ r: ReceivedRevocation) {
        self.grant = grant
        revokedAt = r.revokedAt
        revokedBy = r.revokedBy
        revokedByOrigin = r.revokedByOrigin
        revokedByFingerprint = r.revokedByFingerprint
        receivedAt = r.receivedAt
        entry = r.entry
        notice = r.notice
        ancestor = r.ancestor
    }

    enum CodingKeys: String, CodingKey {
        case grant, entry, notice, ancestor
        case revokedAt = "revoked_at"
        case revokedBy = "revoked_by"
        case revokedByOrigin = "revoked_by_origin"
        case revokedByFingerprint = "revoked_by_fingerprint"
        case receivedAt = "received_at"
    }
}

struct GrantCreateJSON: Encodable {
    struct Excluded: Encodable {
        var id: String
        var reason: String
    }
    var id: String?
    var dryRun: Bool
    var grantee: String
    var granteeFingerprint: String
    var expires: String
    var items: [String]
    var excluded: [Excluded]

    enum CodingKeys: String, CodingKey {
        case id, grantee, expires, items, excluded
        case dryRun = "dry_run"
        case granteeFingerprint = "grantee_fingerprint"
    }

    func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(id, forKey: .id)  // null on a dry run
        try c.encode(dryRun, forKey: .dryRun)
        try c.encode(grantee, forKey: .grantee)
        try c.encode(granteeFingerprint, forKey: .granteeFingerprint)
        try c.encode(expires, forKey: .expires)
        try c.encode(items, forKey: .items)
        try c.encode(excluded, forKey: .excluded)
    }
}

struct GrantListJSON: Encodable {
    var id: String
    var direction: GrantSummary.Direction
    var grantee: String?
    var granter: String?
    var fingerprint: String
    var items: Int
    var created: String
    var expires: String
    var permission: Grant.Permission
    var reshare: Bool
    var revoked: Bool
    var revokedAt: String?
    var kind: Grant.Kind
    /// A grant received whose granter's signed revocation notice this archive recorded.
    var revocation: RevocationJSON?
    /// A re-share made here whose ancestor is known to be revoked (this node refuses it).
    var parentRevoked: ParentRevoked?

    struct ParentRevoked: Encodable {
        var grant: String
        var revokedAt: String

        enum CodingKeys: String, CodingKey {
            case grant
            case revokedAt = "revoked_at"
        }
    }

    /// A row; `me` is this archive's name (the grantee of grants received, the granter of grants made).
    init(_ s: GrantSummary, me: String) {
        id = s.id
        direction = s.direction
        grantee = s.direction == .outgoing ? s.party : me
        granter = s.direction == .incoming ? s.party : me
        fingerprint = s.partyFingerprint
        items = s.items
        created = s.created
        expires = s.expires
        permission = s.permission
        reshare = s.reshare
        revoked = s.revokedAt != nil
        revokedAt = s.revokedAt
        kind = s.kind
        revocation = s.revocation.map { RevocationJSON(grant: s.id, $0) }
    }

    enum CodingKeys: String, CodingKey {
        case id, direction, grantee, granter, fingerprint, items, created, expires, permission, reshare, revoked, kind
        case revocation
        case revokedAt = "revoked_at"
        case parentRevoked = "parent_revoked"
    }
}

struct GrantShowJSON: Encodable {
    var id: String
    var hash: String
    var kind: Grant.Kind
    var granter: GrantParty
    var grantee: GrantParty
    var created: String
    var expires: String
    var permission: Grant.Permission
    var reshare: Bool
    var revokedAt: String?
    var revocation: ReceivedRevocation?
    var purpose: String
    var query: [String: String]
    var consentOverride: GrantTerms.ConsentOverride?
    var items: [String]

    enum CodingKeys: String, CodingKey {
        case id, hash, kind, granter, grantee, created, expires, permission, reshare, purpose, query, items
        case revocation
        case revokedAt = "revoked_at"
        case consentOverride = "consent_override"
    }
}
