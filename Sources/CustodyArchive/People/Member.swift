import CustodyCrypto
import CustodyStorage
import Foundation

/// A member's id: the first 8 bytes of SHA-256(`"custody/member/v1\n"` ‖ Ed25519 key ‖ X25519 key), as 16
/// lowercase hex characters (Docs/FORMAT.md section 4.1).
package struct MemberID: Hashable, Sendable, Comparable, Codable, CustomStringConvertible {
    /// 16 lowercase hex characters.
    package let hex: String

    /// Validates an id.
    package init?(hex: String) {
        guard Encoding.isLowercaseHex(hex, count: 16) else { return nil }
        self.hex = hex
    }

    /// The id of a member's two public keys.
    package init(signingKey: [UInt8], boxKey: [UInt8]) {
        hex = Encoding.hex(SHA256Hasher.hash(Array("custody/member/v1\n".utf8) + signingKey + boxKey).prefix(8))
    }

    /// The raw 8 bytes.
    package var bytes: [UInt8] { Encoding.bytes(hex: hex) ?? [] }

    package var description: String { hex }
    package static func < (lhs: MemberID, rhs: MemberID) -> Bool { lhs.hex < rhs.hex }

    package init(from decoder: any Decoder) throws {
        let text = try decoder.singleValueContainer().decode(String.self)
        guard let id = MemberID(hex: text) else {
            throw DecodingError.dataCorrupted(
                .init(codingPath: decoder.codingPath, debugDescription: "not a member id")
            )
        }
        self = id
    }

    package func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        try container.encode(hex)
    }
}

/// What a member may do: each role is a fixed set of ``Member/Action``s (Docs/THREAT-MODEL.md section 7).
package enum Role: String, Codable, Sendable, CaseIterable, CustomStringConvertible {
    /// Everything: members, keys, recovery, and every action of the other roles.
    case admin
    /// Sharing: grants, bundles, serving, pulling, importing, revoking; reads metadata.
    case recordsOfficer = "records-officer"
    /// Ingest, read, annotate and extract.
    case investigator
    /// Adds items and nothing else: holds no key that opens an item, and cannot tell whether a file is held.
    case fieldStaff = "field-staff"

    package var description: String { rawValue }

    /// The actions of the role.
    package var actions: Set<Member.Action> {
        switch self {
        case .admin: Set(Member.Action.allCases)
        case .recordsOfficer: [.read, .share, .ownPassphrase]
        case .investigator: [.ingest, .read, .annotate, .extract, .ownPassphrase]
        case .fieldStaff: [.ingest, .ownPassphrase]
        }
    }

    /// Whether the role may take `action`.
    package func allows(_ action: Member.Action) -> Bool { actions.contains(action) }

    /// Whether the role holds the keys that open items (every role but field staff).
    package var opensItems: Bool { self != .fieldStaff }

    /// The role named `text`, or a usage error listing the roles.
    package static func named(_ text: String) throws -> Role {
        guard let role = Role(rawValue: text) else {
            throw ArchiveError(
                .usage,
                "unknown role \(TerminalText.escape(String(text.prefix(40))))",
                fix: "use one of: \(Role.allCases.map(\.rawValue).joined(separator: ", "))"
            )
        }
        return role
    }
}

/// A person in an archive's roster, as roster events publish them.
package struct Member: Codable, Sendable, Equatable {
    /// The member's id (from the two keys).
    package var id: MemberID
    /// Display name, unique among current members.
    package var name: String
    /// What the member may do.
    package var role: Role
    /// Ed25519 public key that cosigns the member's events, base64.
    package var signingKey: String
    /// X25519 public key the member's share of the archive's secrets is sealed to, base64.
    package var boxKey: String

    enum CodingKeys: String, CodingKey {
        case id, name, role
        case signingKey = "signing_key"
        case boxKey = "box_key"
    }

    package init(id: MemberID, name: String, role: Role, signingKey: String, boxKey: String) {
        self.id = id
        self.name = name
        self.role = role
        self.signingKey = signingKey
        self.boxKey = boxKey
    }

    /// The raw Ed25519 key, when it is 32 bytes of base64.
    package var signingKeyBytes: [UInt8]? {
        Encoding.bytes(base64: signingKey).flatMap { $0.count == 32 ? $0 : nil }
    }

    /// What is wrong with the record, or `nil`: a display name, 32-byte keys, and the id of those keys.
    package var problem: String? {
        guard OutsideInput.isDisplayName(name) else { return "its name is not a valid display name" }
        guard let signing = signingKeyBytes, let box = Encoding.bytes(base64: boxKey), box.count == 32 else {
            return "its keys are not 32-byte base64 keys"
        }
        guard MemberID(signingKey: signing, boxKey: box) == id else { return "its id is not the id of its keys" }
        return nil
    }

    /// Checks a member name given on the command line.
    package static func validateName(_ name: String) throws {
        guard OutsideInput.isDisplayName(name) else {
            throw ArchiveError(
                .usage,
                "a member name must be 1 to 200 bytes of NFC text without control, format or line-separator characters",
                fix: "choose another name"
            )
        }
    }
}

extension Member {
    /// What a command or an event does, as roles allow it (Docs/THREAT-MODEL.md section 7).
    package enum Action: String, Sendable, CaseIterable, CustomStringConvertible {
        /// Add, remove and change members; rotate keys; split and restore recovery shares.
        case manageMembers = "manage-members"
        /// Add items.
        case ingest
        /// Read items' metadata (ls, search, show, log with names).
        case read
        /// Tag and note items.
        case annotate
        /// Write an item's plaintext out of the archive.
        case extract
        /// Grants, bundles, serving, pulling, importing and revoking.
        case share
        /// Change one's own passphrase.
        case ownPassphrase = "own-passphrase"

        package var description: String { rawValue }

        /// The action an event of `kind` records; `nil` for a kind this version does not know.
        package static func of(_ kind: Event.Kind) -> Action? {
            switch kind {
            case .ingest: .ingest
            case .import, .grant, .revoke, .access, .revocationReceived: .share
            case .extract: .extract
            case .tag, .note: .annotate
            case .passphrase: .ownPassphrase
            case .memberAdd, .memberRole, .memberRemove, .keyRotation, .rewrap: .manageMembers
            default: nil
            }
        }
    }
}
