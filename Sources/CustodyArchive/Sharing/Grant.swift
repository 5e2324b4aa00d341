import CustodyCrypto
import CustodyStorage
import Foundation

/// One side of a grant: a body's public keys, as its identity file gives them.
package struct GrantParty: Codable, Sendable, Equatable {
    /// Display name.
    package var name: String
    /// Log origin.
    package var origin: String
    /// Ed25519 signing key, base64.
    package var signingKey: String
    /// X25519 box key, base64.
    package var boxKey: String
    /// Fingerprint of the two keys.
    package var fingerprint: String

    enum CodingKeys: String, CodingKey {
        case name, origin, fingerprint
        case signingKey = "signing_key"
        case boxKey = "box_key"
    }

    /// What is wrong with the party's form, or `nil`: a display name and origin by the `init` rules, two
    /// 32-byte keys, and the fingerprint of those keys.
    var formFault: String? {
        guard OutsideInput.isDisplayName(name), OutsideInput.isOrigin(origin) else {
            return "has a name or origin that breaks the naming rules (control or format characters, length)"
        }
        guard let signing = Encoding.bytes(base64: signingKey), signing.count == 32,
            let box = Encoding.bytes(base64: boxKey), box.count == 32,
            fingerprint == Identity.fingerprint(signingKey: signing, boxKey: box)
        else { return "has malformed keys or a fingerprint that is not theirs" }
        return nil
    }

    /// The party of an identity.
    package init(_ identity: Identity) {
        name = identity.name
        origin = identity.origin
        signingKey = identity.signingKey
        boxKey = identity.boxKey
        fingerprint = identity.fingerprint
    }
}

/// The keys of one item, wrapped to the grantee: `crypto_box_seal(item id ‖ key)` to its box key.
package struct GrantKeys: Codable, Sendable, Equatable {
    /// K_meta.
    package var meta: String
    /// K_content; absent in a metadata-only grant.
    package var content: String?
}

/// One item a grant releases.
package struct GrantedItem: Codable, Sendable, Equatable {
    /// The item id.
    package var id: ItemID
    /// Every object released for it: the sealed metadata part and annotations, and — with content permission —
    /// the content part, the chunk list (if any) and every chunk.
    package var objects: [ObjectRef]
    /// Its keys, wrapped to the grantee.
    package var keys: GrantKeys
}

/// A grant's reference to the grant it re-shares from.
package struct GrantReference: Codable, Sendable, Equatable, Hashable {
    /// Grant id.
    package var id: String
    /// SHA-256 of the signed grant, hex.
    package var hash: String

    package init(id: String, hash: String) {
        self.id = id
        self.hash = hash
    }
}

/// The human terms of a grant: sealed to the grantee and to the granter, never public.
package struct GrantTerms: Codable, Sendable, Equatable {
    /// Why access is given (`--purpose`).
    package var purpose: String
    /// The query the scope was resolved from.
    package var query: [String: String]
    /// Items included despite a consent that forbids sharing, and why.
    package var consentOverride: ConsentOverride?

    /// An override of consent.
    package struct ConsentOverride: Codable, Sendable, Equatable {
        /// The items concerned.
        package var items: [String]
        /// The reason given with `--override-consent`.
        package var reason: String
    }

    enum CodingKeys: String, CodingKey {
        case purpose, query
        case consentOverride = "consent_override"
    }
}

/// A grant: what one body releases to another, signed by the granter (DESIGN.md "What a grant is").
///
/// Signed bytes: body JSON (sorted keys, one line) `"\n"` base64(Ed25519 over `"custody/grant/v1\n" || body`).
package struct Grant: Codable, Sendable, Equatable {
    /// Format version (1).
    package var version = 1
    /// Random id, 32 hex.
    package var id: String
    /// When it was made.
    package var created: String
    /// Not valid after this time.
    package var expires: String
    /// Who grants.
    package var granter: GrantParty
    /// To whom.
    package var grantee: GrantParty
    /// What it releases of each item.
    package var permission: Permission
    /// Whether the grantee may re-share (as a child grant).
    package var reshare: Bool
    /// The parent grant, for a re-share.
    package var parent: GrantReference?
    /// A grant, or a (possibly anonymous) submission.
    package var kind: Kind
    /// The items released.
    package var items: [GrantedItem]
    /// ``GrantTerms`` sealed (`crypto_box_seal`) to the grantee's box key, base64.
    package var termsForGrantee: String
    /// The same sealed to the granter's box key, base64.
    package var termsForGranter: String

    enum CodingKeys: String, CodingKey {
        case version = "v"
        case id, created, expires, granter, grantee, permission, reshare, parent, kind, items
        case termsForGrantee = "terms_grantee"
        case termsForGranter = "terms_granter"
    }

    /// What a grant releases of each item; its Codable form is the raw value (`content`, `metadata`).
    ///
    /// A grant naming any other permission does not decode, so ``parse(_:)`` refuses it as malformed.
    package enum Permission: String, Codable, Sendable, CaseIterable {
        /// Metadata, annotations and content: the content key, the content part and every chunk.
        case content
        /// Metadata and annotations only: no content key, no content part, no chunk.
        case metadata
    }

    /// What made a grant; its Codable form is the raw value. The index stores the same strings.
    ///
    /// A grant naming any other kind does not decode, so ``parse(_:)`` refuses it as malformed.
    package enum Kind: String, Codable, Sendable, CaseIterable {
        /// `grant create`.
        case grant
        /// `submit`: a body hands items to another.
        case submission
        /// `submit --anonymous`: the granter is a throw-away identity the grantee shows as anonymous.
        case anonymousSubmission = "anonymous-submission"
    }

    static let signatureDomain = Array("custody/grant/v1\n".utf8)

    /// The largest signed grant accepted when reading (bounds allocation): about 400 000 chunk references.
    package static let maxBytes = 64 << 20

    /// Encodes and signs the grant (a ``SignedEnvelope``).
    package func signed(by key: SigningKey) throws -> [UInt8] {
        try SignedEnvelope.signing(Array(Event.encoder.encode(self)), domain: Self.signatureDomain, with: key).bytes
    }

    /// SHA-256 of signed grant bytes, hex: how events and child grants name a grant.
    package static func hash(_ signed: [UInt8]) -> String { Encoding.hex(SHA256Hasher.hash(signed)) }

    /// Parses signed grant bytes, checks the signature by the granter key the grant names, and checks its form
    /// (``formFault``).
    ///
    /// - Throws: ``ArchiveError`` (damaged) when it is malformed or the signature does not verify.
    package static func parse(_ signed: [UInt8]) throws -> Grant {
        let grant: Grant
        switch parseSignature(signed) {
        case .success(let parsed): grant = parsed
        case .failure(let fault): throw fault.error
        }
        if let fault = grant.formFault { throw Fault.malformed(fault).error }
        return grant
    }

    /// Why signed grant bytes are refused.
    enum Fault: Error, Equatable {
        /// Not a grant of this format (the text says what).
        case malformed(String)
        /// Well formed, but the signature does not verify with the granter key it names.
        case signature

        var error: ArchiveError {
            switch self {
            case .malformed(let what):
                ArchiveError(.damaged, "the grant is malformed: \(what)", fix: "do not use it; ask the granter again")
            case .signature:
                ArchiveError(
                    .damaged,
                    "the grant's signature does not verify with the granter key it names",
                    fix: "do not use it; ask the granter for the bundle again"
                )
            }
        }
    }

    /// Parses signed grant bytes and checks only the signature by the granter key the grant names: the fields
    /// are not yet safe to use (``parse(_:)`` also checks them).
    ///
    /// The body is judged before the signature: a body that is not a grant is `malformed` whatever follows it.
    static func parseSignature(_ signed: [UInt8]) -> Result<Grant, Fault> {
        guard signed.count <= maxBytes, let (body, _) = SignedEnvelope.split(signed) else {
            return .failure(.malformed("it is not a signed body"))
        }
        // An unknown `kind` or `permission` fails to decode (``Kind``, ``Permission``): refused here with the rest.
        guard let grant = try? JSONDecoder().decode(Grant.self, from: Data(body)), grant.version == 1
        else { return .failure(.malformed("its body is not a version 1 grant (fields, types or bounds)")) }
        guard let key = Encoding.bytes(base64: grant.granter.signingKey), key.count == 32,
            let envelope = SignedEnvelope.parse(signed, maxBytes: maxBytes),
            envelope.isSigned(domain: signatureDomain, by: key)
        else { return .failure(.signature) }
        return .success(grant)
    }

    /// The most ancestor grants a chain of re-shares has: as many as a bundle carries as `P` records
    /// (Docs/SHARING.md section 3), so that every walk up a chain (``walkAncestors(_:)``) has the same bound.
    package static let maxAncestors = 8

    /// Walks up the grant's chain of ancestors, parent first: calls `visit` with each `parent` reference and goes
    /// on from the grant it returns, until it returns `nil`, a grant has no parent, or ``maxAncestors`` grants
    /// were visited.
    ///
    /// How to find and check the grant a reference names (a stored file, a served grant) is the caller's: each
    /// walk ends where its check fails.
    ///
    /// - Returns: The reference the walk stopped at because the chain is longer than ``maxAncestors``, else `nil`.
    @discardableResult
    package func walkAncestors(_ visit: (GrantReference) throws -> Grant?) rethrows -> GrantReference? {
        var parent = self.parent
        for _ in 0..<Self.maxAncestors {
            guard let reference = parent, let grant = try visit(reference) else { return nil }
            parent = grant.parent
        }
        return parent
    }

    /// The most items one grant releases.
    package static let maxItems = 1_000_000
    /// The most bytes one grant releases (1 PiB): with each object at most ``ObjectRef/maxSize``, sums stay far
    /// from overflowing.
    package static let maxReleasedBytes: Int64 = 1 << 50

    /// What is wrong with the grant's form, or `nil`: every field a signature alone does not make safe to use
    /// (Docs/SHARING.md section 2, "Form"). A validly signed grant is still outside input.
    var formFault: String? {
        guard OutsideInput.isID(id) else { return "its id is not 32 lowercase hex digits" }
        guard let start = RFC3339.parse(created), let end = RFC3339.parse(expires), start <= end else {
            return "its created and expires times are not RFC 3339 times in order"
        }
        for (role, party) in [("granter", granter), ("grantee", grantee)] {
            if let fault = party.formFault { return "its \(role) \(fault)" }
        }
        if let parent {
            guard OutsideInput.isID(parent.id), Encoding.isLowercaseHex(parent.hash, count: 64) else {
                return "its parent reference is not a grant id and a SHA-256"
            }
            guard parent.id != id else { return "it names itself as its parent" }
        }
        guard !items.isEmpty, items.count <= Self.maxItems, Set(items.map(\.id)).count == items.count else {
            return "it names no item, more than \(Self.maxItems), or one item twice"
        }
        for item in items {
            guard !item.objects.isEmpty, Set(item.objects.map(\.name)).count == item.objects.count else {
                return "item \(item.id) releases no object or one object twice"
            }
            guard Self.isWrappedKey(item.keys.meta), item.keys.content.map(Self.isWrappedKey) ?? true,
                (item.keys.content == nil) == (permission == .metadata)
            else { return "item \(item.id)'s wrapped keys are malformed or do not match the permission" }
        }
        var sizes: [ObjectName: Int64] = [:]
        for ref in items.lazy.flatMap(\.objects)
        where sizes.updateValue(ref.size, forKey: ref.name) ?? ref.size != ref.size {
            return "it gives object \(ref.name) two different sizes"
        }
        guard OutsideInput.checkedTotal(releasedObjects.map(\.size), limit: Self.maxReleasedBytes) != nil else {
            return "its objects add up to more than \(Self.maxReleasedBytes) bytes"
        }
        for terms in [termsForGrantee, termsForGranter] {
            guard terms.utf8.count <= 64 * 1024, Encoding.bytes(base64: terms) != nil else {
                return "its sealed terms are malformed"
            }
        }
        return nil
    }

    /// A key wrapped with `crypto_box_seal(item id ‖ key)`: 48 + 48 bytes, base64.
    static func isWrappedKey(_ text: String) -> Bool {
        text.utf8.count <= 200 && Encoding.bytes(base64: text)?.count == 96
    }

    /// Whether the grant is valid at `time` (Unix seconds): created ≤ time < expires.
    package func isValid(at time: Int) -> Bool {
        guard let created = RFC3339.parse(created), let expires = RFC3339.parse(expires) else { return false }
        return created <= time && time < expires
    }

    /// Every object the grant releases, without repeats, in order.
    package var releasedObjects: [ObjectRef] {
        var seen = Set<ObjectName>()
        return items.flatMap(\.objects).filter { seen.insert($0.name).inserted }
    }
}
