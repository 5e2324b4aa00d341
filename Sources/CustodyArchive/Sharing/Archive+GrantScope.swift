import CustodyCrypto
import CustodyStorage
import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// What `grant create` is asked for.
package struct GrantRequest: Sendable {
    /// The grantee's identity (checked, self-signed).
    package var grantee: Identity
    /// Items of this case.
    package var caseID: String?
    /// Items carrying all of these tags.
    package var tags: [String] = []
    /// These items (ids or unique prefixes).
    package var items: [String] = []
    /// Collected at or after.
    package var collectedAfter: String?
    /// Collected before.
    package var collectedBefore: String?
    /// Exclude items more sensitive than this (see ``Archive/sensitivityScale``).
    package var maxSensitivity: String?
    /// Not valid after (RFC 3339).
    package var expires: String
    /// Why access is given.
    package var purpose: String
    /// Release metadata only (no content keys, no chunks).
    package var metadataOnly = false
    /// Let the grantee re-share.
    package var reshare = false
    /// Include items whose consent forbids sharing, for this reason.
    package var overrideConsentReason: String?
    /// A grant or a submission.
    package var kind = Grant.Kind.grant

    /// A request for `grantee` until `expires` for `purpose`; add the scope.
    package init(grantee: Identity, expires: String, purpose: String) {
        self.grantee = grantee
        self.expires = expires
        self.purpose = purpose
    }
}

/// The scope a request resolves to.
package struct GrantScope: Sendable {
    /// Items in scope, with why each is.
    package var items: [(item: IndexedItem, why: String)] = []
    /// Items the query matched that are left out, with why: a kind for code, a reason for people.
    package var excluded: [(id: String, kind: Exclusion, reason: String)] = []
    /// For a re-share: the grant the items were imported under.
    package var parent: String?
    /// Parent grants of matched items that their granters revoked (a verified notice was received), by id.
    package var revokedParents: [String: GrantSummary] = [:]

    /// Why a matched item is left out of the scope.
    package enum Exclusion: Sendable, Hashable {
        /// Imported under a grant its granter revoked.
        case parentRevoked
        /// Imported under a grant that does not allow re-sharing.
        case notResharable
        /// Imported under another grant than the re-share's one parent.
        case otherParent
        /// A re-share cannot mix imported items with this archive's own.
        case mixesOwnAndImported
        /// Its consent forbids sharing (and no override was given).
        case consentForbids
        /// Its sensitivity is not a level of the scale.
        case sensitivityUnknown
        /// Its sensitivity is above the request's maximum.
        case sensitivityAbove
    }
}

extension Archive {
    /// The sensitivity labels `--max-sensitivity` understands, least sensitive first.
    package static let sensitivityScale = ["public", "low", "medium", "high", "critical"]

    /// Consent values that forbid sharing (compared without case).
    package static let noShareConsents: Set<String> = ["no-share", "no-sharing", "do-not-share", "internal-only"]

}

extension ArchiveContext {

    /// Resolves a request to explicit items, with the reason for each inclusion and exclusion.
    ///
    /// - Throws: ``ArchiveError`` (usage) when the request names no scope or an unknown sensitivity level.
    package func resolveScope(_ request: GrantRequest) async throws -> GrantScope {
        let hasQuery =
            request.caseID != nil || !request.tags.isEmpty || request.collectedAfter != nil
            || request.collectedBefore != nil
        guard hasQuery || !request.items.isEmpty else {
            throw ArchiveError(
                .usage,
                "the grant names no items",
                fix: "give --case, --tag, --item or --collected-after/--collected-before"
            )
        }
        let maxLevel = try Self.sensitivityLevel(request)
        let candidates = try await scopeCandidates(request, hasQuery: hasQuery)
        let imported = try await index().importedItems()
        let grants = Dictionary(try await index().grants().map { ($0.id, $0) }, uniquingKeysWith: { a, _ in a })
        var scope = GrantScope()
        for (item, why) in candidates {
            if let parent = imported[item.id] {
                // A re-share: a child grant of the grant the item came under, which must allow it.
                if let (kind, reason) = Self.reshareExclusion(
                    parent: parent,
                    grants: grants,
                    imported: imported,
                    scope: &scope
                ) {
                    scope.excluded.append((item.id, kind, reason))
                    continue
                }
                scope.parent = parent
                scope.items.append((item, why + "; re-shared under grant \(parent)"))
                continue
            }
            if let (kind, reason) = Self.ownItemExclusion(item, request: request, scope: scope, maxLevel: maxLevel) {
                scope.excluded.append((item.id, kind, reason))
                continue
            }
            scope.items.append((item, why))
        }
        return scope
    }

    /// The position of the request's `--max-sensitivity` on ``Archive/sensitivityScale``, if it gives one.
    ///
    /// - Throws: ``ArchiveError`` (usage) for a label not on the scale.
    private static func sensitivityLevel(_ request: GrantRequest) throws -> Int? {
        guard let max = request.maxSensitivity else { return nil }
        guard let level = Archive.sensitivityScale.firstIndex(of: max.lowercased()) else {
            throw ArchiveError(
                .usage,
                "--max-sensitivity \(max) is not a level",
                fix: "use one of \(Archive.sensitivityScale.joined(separator: ", "))"
            )
        }
        return level
    }

    /// The items a request names — those its query matches (if it has one), then those named with `--item` —
    /// each with why.
    private func scopeCandidates(_ request: GrantRequest, hasQuery: Bool) async throws -> [(IndexedItem, String)] {
        var candidates: [(IndexedItem, String)] = []
        if hasQuery {
            var filter = ItemFilter()
            filter.caseID = request.caseID
            filter.tags = request.tags
            filter.collectedAfter = request.collectedAfter
            filter.collectedBefore = request.collectedBefore
            var why: [String] = []
            if let caseID = request.caseID { why.append("case \(caseID)") }
            if !request.tags.isEmpty { why.append("tags " + request.tags.joined(separator: ", ")) }
            if let after = request.collectedAfter { why.append("collected at or after \(after)") }
            if let before = request.collectedBefore { why.append("collected before \(before)") }
            let reason = "matches " + why.joined(separator: "; ")
            candidates = try await index().list(filter).map { ($0, reason) }
        }
        for text in request.items {
            let item = try await resolveItem(text)
            if !candidates.contains(where: { $0.0.id == item.id }) { candidates.append((item, "named with --item")) }
        }
        return candidates
    }

    /// Why an item imported under grant `parent` cannot be re-shared in `scope`, or `nil`: its parent grant was
    /// revoked (recorded in `scope`) or does not allow a re-share, `scope` re-shares from another parent, or it
    /// holds this archive's own items.
    private static func reshareExclusion(
        parent: String,
        grants: [String: GrantSummary],
        imported: [String: String],
        scope: inout GrantScope
    ) -> (GrantScope.Exclusion, String)? {
        if let summary = grants[parent], let revoked = summary.revokedAt {
            scope.revokedParents[parent] = summary
            let by = summary.revocation.map { " by " + TerminalText.escape($0.revokedBy) } ?? ""
            return (.parentRevoked, "imported under grant \(parent), which was revoked\(by) at \(revoked)")
        }
        guard let summary = grants[parent], summary.reshare else {
            return (.notResharable, "imported under grant \(parent), which does not allow this archive to re-share it")
        }
        if let first = scope.parent, first != parent {
            return (
                .otherParent,
                "imported under grant \(parent); a re-share has one parent grant (\(first)): make one grant per source"
            )
        }
        if scope.items.contains(where: { imported[$0.item.id] == nil }) {
            return (.mixesOwnAndImported, "a re-share cannot mix imported items with this archive's own")
        }
        return nil
    }

    /// Why one of this archive's own items is left out of `scope`, or `nil`: the scope is a re-share, its consent
    /// forbids sharing (without an override), or its sensitivity is off the scale or above `maxLevel`.
    private static func ownItemExclusion(
        _ item: IndexedItem,
        request: GrantRequest,
        scope: GrantScope,
        maxLevel: Int?
    ) -> (GrantScope.Exclusion, String)? {
        let m = item.metadata
        if scope.parent != nil {
            return (.mixesOwnAndImported, "a re-share cannot mix imported items with this archive's own")
        }
        if let consent = m.consent, Archive.noShareConsents.contains(consent.lowercased()),
            request.overrideConsentReason == nil
        {
            return (
                .consentForbids,
                "its consent (\(consent)) forbids sharing; --override-consent --reason \"…\" includes it"
            )
        }
        if let maxLevel {
            guard let label = m.sensitivity, let level = Archive.sensitivityScale.firstIndex(of: label.lowercased())
            else {
                return (.sensitivityUnknown, "its sensitivity (\(m.sensitivity ?? "none")) is not a level of the scale")
            }
            if level > maxLevel {
                return (.sensitivityAbove, "its sensitivity (\(label)) is above \(request.maxSensitivity ?? "")")
            }
        }
        return nil
    }
}
