import CustodyArchive
import CustodyCrypto
import CustodyStorage
import Foundation
import Hummingbird
import Synchronization

extension NodeServer {
    /// Grant `id` for `requester`, when they may have its parts now; opens their pull session (one `access`
    /// event) when it does.
    ///
    /// Served only when the grant was made here, is addressed to the requester, is neither revoked nor expired,
    /// and, for a re-share, every ancestor grant is still held, unexpired and (as far as this node knows) unrevoked.
    ///
    /// - Throws: ``ServerRefusal``: `not-found` for another body's grant, or none; for the requester's own grant
    ///   that is no longer valid, 410 with its reason (a revocation notice when there is one).
    func access(_ id: String, requester: [UInt8]) async throws -> ServedGrant {
        let now = Int(Date().timeIntervalSince1970)
        let grants = self.grants
        let sessions = self.sessions
        return try await archiveOperation { archive -> ServedGrant in
            guard id.utf8.count == 32, Encoding.isLowercaseHex(id, count: 32),
                let summary = try await archive.index().grant(id), summary.direction == .outgoing
            else { throw ServerRefusal(.notFound) }
            guard let served = try? await grants.get(id, archive: archive), served.grantee == requester else {
                throw ServerRefusal(.notFound)
            }
            switch try await archive.standing(of: served.grant, ancestors: served.ancestors, at: now) {
            case .usable: break
            case .revoked(let summary):
                throw await Self.revokedRefusal(grant: id, at: summary.revokedAt ?? "", archive: archive)
            case .expired: throw ServerRefusal(.grantExpired)
            case .ancestorMissing: throw ServerRefusal(.ancestorMissing)
            case .ancestorRevoked(let ancestor):
                throw await Self.revokedAncestorRefusal(grant: id, ancestor: ancestor, archive: archive)
            case .ancestorExpired: throw ServerRefusal(.ancestorExpired)
            }
            if sessions.open(grant: id, requester: requester, lifetime: Self.sessionLifetime) {
                do {
                    try await archive.recordAccess(grant: served.reference, requester: requester)
                } catch {
                    sessions.close(grant: id, requester: requester)
                    throw error
                }
            }
            return served
        }
    }
}

/// A grant as the server serves it, parsed once.
struct ServedGrant: Sendable {
    var grant: Grant
    var reference: GrantReference
    /// The grantee's signing key.
    var grantee: [UInt8]
    /// The objects it releases, with their sizes.
    var released: [ObjectName: Int64]
    /// Its ancestor grants for a re-share, parent first; `nil` for one this node no longer holds intact.
    var ancestors: [Grant?]
}

/// Grants parsed once per server run (a signed grant never changes; its revocation is read from the index).
final class GrantCache: Sendable {
    private let grants = Mutex<[String: ServedGrant]>([:])

    func get(_ id: String, archive: Archive.Unlocked) async throws -> ServedGrant {
        if let cached = grants.withLock({ $0[id] }) { return cached }
        let (grant, signed) = try await archive.storedGrant(id)
        // A node serves only grants it made: a stored grant of another granter (imported, or planted) is none of
        // its business to hand out, whoever it names as grantee.
        guard grant.granter.signingKey == archive.config.signingKey,
            archive.config.boxKeys.contains(grant.granter.boxKey)
        else {
            throw ArchiveError(.notFound, "grant \(id) was not made by this node", fix: "ask its granter")
        }
        let ancestors = archive.storedAncestors(of: grant)
        let served = ServedGrant(
            grant: grant,
            reference: GrantReference(id: grant.id, hash: Grant.hash(signed)),
            grantee: Encoding.bytes(base64: grant.grantee.signingKey) ?? [],
            released: Dictionary(grant.releasedObjects.map { ($0.name, $0.size) }) { first, _ in first },
            ancestors: ancestors
        )
        grants.withLock { $0[id] = served }
        return served
    }
}

/// Open pull sessions, per (grant, requester): a session opens with its first request and lasts an hour.
final class PullSessions: Sendable {
    private let opened = Mutex<[String: Date]>([:])

    /// Opens a session unless one is open; `true` when this call opened it.
    func open(grant: String, requester: [UInt8], lifetime: TimeInterval) -> Bool {
        let key = grant + ":" + Encoding.hex(requester)
        let now = Date()
        return opened.withLock { map in
            if let since = map[key], now.timeIntervalSince(since) < lifetime { return false }
            map = map.filter { now.timeIntervalSince($0.value) < lifetime }
            map[key] = now
            return true
        }
    }

    /// Forgets a session (its access event could not be recorded).
    func close(grant: String, requester: [UInt8]) {
        _ = opened.withLock { $0.removeValue(forKey: grant + ":" + Encoding.hex(requester)) }
    }
}
