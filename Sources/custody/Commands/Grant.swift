import ArgumentParser
import CustodyArchive
import Foundation

extension CustodyCommand {
    struct GrantCommand: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "grant",
            abstract: "Give another body scoped access to items, list and show grants, revoke them.",
            discussion: """
                A grant is signed by this archive and names the grantee's keys, the exact items (resolved from the \
                query when it is made), the objects and wrapped keys it releases, the permission, re-share and \
                expiry. Its purpose and query are sealed to the two bodies. Export it with custody bundle export. \
                Keys already delivered cannot be taken back by a revocation (Docs/SHARING.md).
                """,
            subcommands: [Create.self, List.self, Show.self, Revoke.self]
        )

        struct Create: ParsableCommand {
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

            func run() throws {
                try runReportingErrors {
                    let archive = try global.openArchive()
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
                        scope = try archive.resolveScope(request)
                        id = nil
                    } else {
                        let made = try archive.createGrant(request)
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
                    for (id, reason) in scope.excluded { print("  \(id)  — \(reason)") }
                }
            }

            private func normalized(_ text: String) throws -> String {
                guard let value = RFC3339.normalize(text) else {
                    throw ArchiveError(.usage, "\(text) is not an RFC 3339 time", fix: "use e.g. 2026-03-02T10:00:00Z")
                }
                return value
            }
        }

        struct List: ParsableCommand {
            static let configuration = CommandConfiguration(
                abstract: "List grants made and received; with --item, who holds that item and under which grant."
            )
            @OptionGroup var global: GlobalOptions
            @Option(help: "Only grants that include this item.") var item: String?
            @Flag(help: "Print JSON.") var json = false

            func run() throws {
                try runReportingErrors {
                    let archive = try global.openArchive()
                    let itemID = try item.map { try archive.resolveItem($0).id }
                    let grants = try archive.index().grants(item: itemID)
                    if json {
                        try printJSON(["grants": grants.map { GrantListJSON($0, me: archive.config.name) }])
                        return
                    }
                    for grant in grants {
                        let state = grant.revokedAt.map { "revoked \($0)" } ?? "until \(grant.expires)"
                        let arrow = grant.direction == "out" ? "to" : "from"
                        print(
                            "\(grant.id)  \(arrow) \(grant.party)  \(grant.items) item(s)  \(grant.permission)  \(state)"
                        )
                    }
                }
            }
        }

        struct Show: ParsableCommand {
            static let configuration = CommandConfiguration(
                abstract: "Show a grant: parties, terms, and exactly which items are in scope and why.",
                discussion: "The purpose and query are sealed: this needs the passphrase."
            )
            @OptionGroup var global: GlobalOptions
            @Argument(help: "Grant id or unique prefix (8+ characters).") var grant: String
            @Flag(help: "Print JSON.") var json = false

            func run() throws {
                try runReportingErrors {
                    let archive = try global.openArchive()
                    let (grant, signed) = try archive.storedGrant(grant)
                    let terms = try archive.terms(of: grant)
                    let summary = try archive.index().grants().first { $0.id == grant.id }
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
                    print("permission   \(grant.permission)\(grant.reshare ? ", may re-share" : ", no re-share")")
                    if let revoked = summary?.revokedAt { print("REVOKED      \(revoked)") }
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

        struct Revoke: ParsableCommand {
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
            @Flag(help: "Print JSON.") var json = false

            func run() throws {
                try runReportingErrors {
                    let archive = try global.openArchive()
                    let summary = try archive.revokeGrant(grant, reason: reason)
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
    var direction: String
    var grantee: String?
    var granter: String?
    var fingerprint: String
    var items: Int
    var created: String
    var expires: String
    var permission: String
    var reshare: Bool
    var revoked: Bool
    var revokedAt: String?
    var kind: String

    /// A row; `me` is this archive's name (the grantee of grants received, the granter of grants made).
    init(_ s: GrantSummary, me: String) {
        id = s.id
        direction = s.direction
        grantee = s.direction == "out" ? s.party : me
        granter = s.direction == "in" ? s.party : me
        fingerprint = s.partyFingerprint
        items = s.items
        created = s.created
        expires = s.expires
        permission = s.permission
        reshare = s.reshare
        revoked = s.revokedAt != nil
        revokedAt = s.revokedAt
        kind = s.kind
    }

    enum CodingKeys: String, CodingKey {
        case id, direction, grantee, granter, fingerprint, items, created, expires, permission, reshare, revoked, kind
        case revokedAt = "revoked_at"
    }
}

struct GrantShowJSON: Encodable {
    var id: String
    var hash: String
    var kind: String
    var granter: GrantParty
    var grantee: GrantParty
    var created: String
    var expires: String
    var permission: String
    var reshare: Bool
    var revokedAt: String?
    var purpose: String
    var query: [String: String]
    var consentOverride: GrantTerms.ConsentOverride?
    var items: [String]

    enum CodingKeys: String, CodingKey {
        case id, hash, kind, granter, grantee, created, expires, permission, reshare, purpose, query, items
        case revokedAt = "revoked_at"
        case consentOverride = "consent_override"
    }
}
