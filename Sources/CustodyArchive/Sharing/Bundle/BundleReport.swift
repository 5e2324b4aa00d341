import CustodyStorage
import Foundation

/// What `bundle verify` found (its `--json` shape).
package struct BundleReport: Encodable, Sendable {
    /// Integrity and validity at the checked time, and — when the caller named the granter — that it is the
    /// granter.
    package var ok: Bool { integrityOK && validNow && (!granterGiven || granterTrusted) }
    /// Whether the caller named the granter (`--granter`): then a mismatch fails the check.
    package var granterGiven = false
    /// The checkpoint's cosignatures, each checked against the witnesses the caller knows.
    package var cosignatures: [CosignatureCheck] = []
    /// Signatures, hashes, proofs and references all check.
    package var integrityOK: Bool
    /// The grant is valid at the checked time.
    package var validNow: Bool
    /// The granter is the identity given with `--granter`.
    package var granterTrusted: Bool
    /// The grant id.
    package var grant: String?
    /// The granter's name and fingerprint.
    package var granter: String?
    /// The grantee's name and fingerprint.
    package var grantee: String?
    /// Items the grant releases.
    package var items = 0
    /// Objects in the bundle.
    package var objects = 0
    /// The time the validity was checked at.
    package var checkedAt: String
    /// What the grant releases of each item.
    package var permission: Grant.Permission?
    /// Not valid after.
    package var expires: String?
    /// What is wrong.
    package var problems: [VerifyProblem] = []
    /// The member of the granter's roster who made the grant, when its event names one and the bundle proves
    /// the roster (SHARING.md section 4, step 6).
    package var grantedBy: GrantingMember?

    /// A granting member, as the bundle proves them.
    package struct GrantingMember: Sendable, Equatable, Codable {
        package var id: String
        package var name: String
        package var role: String
    }

    enum CodingKeys: String, CodingKey {
        case ok, grant, granter, grantee, items, objects, permission, expires, problems, cosignatures
        case integrityOK = "integrity_ok"
        case validNow = "valid_now"
        case granterTrusted = "granter_trusted"
        case checkedAt = "checked_at"
        case grantedBy = "granted_by"
    }

    package func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(ok, forKey: .ok)
        try c.encode(integrityOK, forKey: .integrityOK)
        try c.encode(validNow, forKey: .validNow)
        try c.encode(granterTrusted, forKey: .granterTrusted)
        try c.encode(grant, forKey: .grant)
        try c.encode(granter, forKey: .granter)
        try c.encode(grantee, forKey: .grantee)
        try c.encode(items, forKey: .items)
        try c.encode(objects, forKey: .objects)
        try c.encode(checkedAt, forKey: .checkedAt)
        try c.encode(permission, forKey: .permission)
        try c.encode(expires, forKey: .expires)
        try c.encode(cosignatures, forKey: .cosignatures)
        try c.encode(problems, forKey: .problems)
        try c.encodeIfPresent(grantedBy, forKey: .grantedBy)
    }
}

/// One cosignature line of a bundle's checkpoint, as checked.
package struct CosignatureCheck: Encodable, Sendable, Equatable {
    /// The key name of the line (a witness's origin).
    package var witness: String
    /// `valid` (a known witness's key signed this checkpoint), `invalid` (it names a known witness, or the log
    /// itself, and does not verify with that key), or `unchecked` (no key is known for that name).
    package var status: String
    /// The cosignature's time (RFC 3339), when valid.
    package var time: String?
}

/// What a verified bundle holds, for `bundle import`.
package struct BundleContents: Sendable {
    /// The granter's identity.
    package var identity: Identity
    /// The grant and its signed bytes.
    package var grant: Grant
    /// The signed grant bytes.
    package var signedGrant: [UInt8]
    /// The granter's checkpoint.
    package var checkpoint: Checkpoint
    /// Each item's ingest (or import) event in the granter's log.
    package var origins: [ItemID: Event]
    /// Each item's annotation events, in log order.
    package var annotations: [ItemID: [Event]]
    /// Signed ancestor grants of a re-share.
    package var ancestors: [[UInt8]] = []
}

/// Delivers a grant's released objects from outside a bundle file: given the objects, calls the delivery closure
/// with each one's name and bytes (concurrently, from its own tasks) and returns when all are delivered (each
/// delivery awaited) or throws.
package typealias ObjectFetcher =
    @Sendable (
        _ objects: [ObjectRef],
        _ deliver: @escaping @Sendable (ObjectName, [UInt8]) async -> Void
    ) async throws -> Void
