import CustodyStorage
import Glibc

/// Whether a grant can still be used, and if not, the first reason found (the grant itself before its
/// ancestors, nearest ancestor first).
package enum GrantStanding: Sendable, Equatable {
    /// Within its validity, not revoked as far as this archive knows, every ancestor held, valid and unrevoked.
    case usable
    /// Revoked: by this archive, or by its granter (a verified notice recorded here).
    case revoked(GrantSummary)
    /// Outside `created ≤ now < expires`.
    case expired
    /// An ancestor of a re-share is not held here intact (or the chain is longer than a bundle may carry).
    case ancestorMissing
    /// An ancestor is known here to be revoked.
    case ancestorRevoked(GrantSummary)
    /// An ancestor is outside its validity.
    case ancestorExpired
}

extension ArchiveContext {
    /// A grant's ancestors as stored here, parent first, following `parent` references and checking each
    /// stored grant against the hash its child names.
    ///
    /// The walk is ``Grant/walkAncestors(_:)``: it stops at ``Grant/maxAncestors`` grants (the most a bundle may
    /// carry, SHARING.md): a missing or altered ancestor, or a chain that goes on past the bound, ends the list
    /// with `nil`.
    package func storedAncestors(of grant: Grant) -> [Grant?] {
        var ancestors: [Grant?] = []
        let beyond = grant.walkAncestors { reference in
            guard let stored = storedAncestor(reference) else {
                ancestors.append(nil)
                return nil
            }
            ancestors.append(stored.grant)
            return stored.grant
        }
        if beyond != nil { ancestors.append(nil) }
        return ancestors
    }

    /// The grant `reference` names, as stored here (`grants/<id>.grant`) and hashing to what the reference
    /// says; `nil` when it is not held intact.
    ///
    /// An ancestor of a received grant came in with it (a bundle's `P` records) and has no event of its own in
    /// this archive's log, so the index does not know it: the hash its child names, from a grant the log
    /// recorded, is what vouches for the file.
    package func storedAncestor(_ reference: GrantReference) -> (grant: Grant, signed: [UInt8])? {
        guard let path = try? grantPath(reference.id), let signed = try? ArchiveFiles.read(path, limit: Grant.maxBytes),
            Grant.hash(signed) == reference.hash, let grant = try? Grant.parse(signed)
        else { return nil }
        return (grant, signed)
    }

    /// The one check of whether `grant` can still be used at `time` (Unix seconds): exporting it, serving it,
    /// re-sharing under it. `ancestors` are ``storedAncestors(of:)`` (computed once by a caller that asks often).
    package func standing(of grant: Grant, ancestors: [Grant?]? = nil, at time: Int) async throws -> GrantStanding {
        if let summary = try await index().grant(grant.id), summary.revokedAt != nil { return .revoked(summary) }
        guard grant.isValid(at: time) else { return .expired }
        for ancestor in ancestors ?? storedAncestors(of: grant) {
            guard let ancestor else { return .ancestorMissing }
            if let summary = try await index().grant(ancestor.id), summary.revokedAt != nil {
                return .ancestorRevoked(summary)
            }
            guard ancestor.isValid(at: time) else { return .ancestorExpired }
        }
        return .usable
    }

    /// Throws unless `grant` is ``GrantStanding/usable`` now: the one error for each way it is not.
    func checkUsable(_ grant: Grant, what: String, fix: String) async throws {
        switch try await standing(of: grant, at: Int(time(nil))) {
        case .usable: return
        case .revoked(let summary):
            throw ArchiveError(.grantRevoked, "\(what) was revoked at \(summary.revokedAt ?? "?")", fix: fix)
        case .expired:
            throw ArchiveError(
                .grantNotValid,
                "\(what) is not valid now (valid from \(grant.created) until \(grant.expires))",
                fix: fix
            )
        case .ancestorMissing:
            throw ArchiveError(.ancestorNotHeld, "\(what) re-shares a grant that is not held here intact", fix: fix)
        case .ancestorRevoked(let ancestor):
            throw ArchiveError(
                .grantRevoked,
                "\(what) re-shares grant \(ancestor.id), which was revoked at \(ancestor.revokedAt ?? "?")",
                fix: fix
            )
        case .ancestorExpired:
            throw ArchiveError(.notAuthorised, "\(what) re-shares a grant that is no longer valid", fix: fix)
        }
    }
}
