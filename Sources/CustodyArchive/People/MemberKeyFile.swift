import CustodyCrypto
import CustodyStorage
import Foundation

/// A member's key file, `members/<id>.json` (mode 0600; Docs/FORMAT.md section 4.1).
///
/// Two sealed parts: the member's own secrets (Ed25519 seed ‖ X25519 secret, 64 bytes) under their passphrase,
/// as the archive key file is sealed (Argon2id, XChaCha20-Poly1305) with associated data
/// `"custody/member-key/v1\n" + origin + "\n" + id + "\n" + signing_key + "\n" + box_key`; and their share of the
/// archive's secrets, `crypto_box_seal` to their X25519 key of `"custody/member-share/v1\n"` ‖ member id (8 bytes)
/// ‖ share kind (1 byte) ‖ the share (``ArchiveKeys/Share``). The role written here is a convenience for
/// `member list`; what a member may do is the roster's to say, never this file's.
package struct MemberKeyFile: Codable, Sendable {
    /// Always `custody-member`.
    package var format = "custody-member"
    /// Format version (1).
    package var version = 1
    /// The member's public record.
    package var member: Member
    /// Key derivation of the personal secrets.
    package var kdf: KeyFile.KDF
    /// 24-byte nonce, base64.
    package var nonce: String
    /// The personal secrets, sealed, base64.
    package var ciphertext: String
    /// The member's share of the archive's secrets, sealed to their box key, base64.
    package var share: String

    /// The largest key file read.
    static let maxBytes = 64 * 1024
    static let shareDomain = Array("custody/member-share/v1\n".utf8)

    static func associatedData(_ member: Member, origin: String) -> [UInt8] {
        Array("custody/member-key/v1\n\(origin)\n\(member.id.hex)\n\(member.signingKey)\n\(member.boxKey)".utf8)
    }

    /// A new member's keys: fresh personal keys sealed under `passphrase`, and `share` of `keys` sealed to them.
    static func enrol(
        name: String,
        role: Role,
        passphrase: SecretBytes,
        parameters: PasswordHash.Parameters,
        preset: String,
        origin: String,
        keys: ArchiveKeys
    ) throws -> (file: MemberKeyFile, signing: SigningKey) {
        let personal = try SecretBytes(randomCount: 64)
        let signing = try SigningKey(seed: ArchiveKeys.slice(personal, 0..<32))
        let box = try BoxKey(secretKey: ArchiveKeys.slice(personal, 32..<64))
        let member = Member(
            id: MemberID(signingKey: signing.publicKey, boxKey: box.publicKey),
            name: name,
            role: role,
            signingKey: Encoding.base64(signing.publicKey),
            boxKey: Encoding.base64(box.publicKey)
        )
        let sealed = try PassphraseSeal.seal(
            personal,
            passphrase: passphrase,
            parameters: parameters,
            preset: preset,
            associatedData: associatedData(member, origin: origin)
        )
        var file = MemberKeyFile(
            member: member,
            kdf: sealed.kdf,
            nonce: sealed.nonce,
            ciphertext: sealed.ciphertext,
            share: ""
        )
        try file.seal(ArchiveKeys.Share(role: role), of: keys)
        return (file, signing)
    }

    /// Seals `kind` of `keys` to the member, replacing their share (a role change, a rotation).
    mutating func seal(_ kind: ArchiveKeys.Share, of keys: ArchiveKeys) throws {
        guard let (written, secrets) = try keys.share(kind), let box = Encoding.bytes(base64: member.boxKey) else {
            throw ArchiveError(
                .notAuthorised,
                "only an administrator can give a member a share of the archive's secrets",
                fix: "run the command as an administrator (--member NAME)"
            )
        }
        var plaintext = Self.shareDomain + member.id.bytes + [written.rawValue]
        defer { wipe(&plaintext) }
        secrets.withUnsafeBytes { plaintext += $0 }
        share = Encoding.base64(try BoxKey.seal(plaintext, to: box))
    }

    /// What opening the key file gives.
    struct Opened: Sendable {
        /// The member's own signing key.
        var signing: SigningKey
        /// The member's own X25519 secret.
        var boxSecret: SecretBytes
        /// The kind of share they hold.
        var kind: ArchiveKeys.Share
        /// The share's secret bytes.
        var secrets: SecretBytes
    }

    /// Opens the personal secrets with `passphrase`, then the share with them.
    ///
    /// - Throws: ``ArchiveError``: not authorised for a wrong passphrase; damaged for a file that is malformed,
    ///   not of these keys, or whose share does not open or is not this member's.
    func open(passphrase: SecretBytes, origin: String) throws -> Opened {
        let path = "members/\(member.id.hex).json"
        let damaged = ArchiveError(
            .damaged,
            "the member key file \(path) is malformed",
            fix: "restore it from a backup"
        )
        let personal = try PassphraseSeal(kdf: kdf, nonce: nonce, ciphertext: ciphertext).open(
            passphrase: passphrase,
            byteCount: 64,
            associatedData: Self.associatedData(member, origin: origin),
            malformed: damaged,
            wrong: ArchiveError(
                .wrongPassphrase,
                "wrong passphrase for member \(TerminalText.escape(member.name))",
                fix: "check the passphrase (each member has their own) and try again"
            )
        )
        let signing = try SigningKey(seed: ArchiveKeys.slice(personal, 0..<32))
        let boxSecret = try ArchiveKeys.slice(personal, 32..<64)
        let box = try BoxKey(secretKey: boxSecret)
        guard Encoding.base64(signing.publicKey) == member.signingKey, Encoding.base64(box.publicKey) == member.boxKey
        else { throw damaged }
        guard let sealed = Encoding.bytes(base64: share), sealed.count <= 4096, var opened = try? box.open(sealed)
        else {
            throw damaged
        }
        defer { wipe(&opened) }
        let header = Self.shareDomain + member.id.bytes
        guard opened.count > header.count, Array(opened[..<header.count]) == header,
            let kind = ArchiveKeys.Share(rawValue: opened[header.count]),
            kind.allows(byteCount: opened.count - header.count - 1)
        else { throw damaged }
        return Opened(
            signing: signing,
            boxSecret: boxSecret,
            kind: kind,
            secrets: try SecretBytes(copying: opened[(header.count + 1)...])
        )
    }

    /// Re-seals the personal secrets under a new passphrase; the share is unchanged.
    func resealed(
        passphrase old: SecretBytes,
        to new: SecretBytes,
        parameters: PasswordHash.Parameters,
        preset: String,
        origin: String
    ) throws -> MemberKeyFile {
        let personal = try PassphraseSeal(kdf: kdf, nonce: nonce, ciphertext: ciphertext).open(
            passphrase: old,
            byteCount: 64,
            associatedData: Self.associatedData(member, origin: origin),
            malformed: ArchiveError(.damaged, "the member key file is malformed", fix: "restore it from a backup"),
            wrong: ArchiveError(
                .wrongPassphrase,
                "wrong passphrase for member \(TerminalText.escape(member.name))",
                fix: "check the current passphrase and try again"
            )
        )
        let sealed = try PassphraseSeal.seal(
            personal,
            passphrase: new,
            parameters: parameters,
            preset: preset,
            associatedData: Self.associatedData(member, origin: origin)
        )
        var copy = self
        copy.kdf = sealed.kdf
        copy.nonce = sealed.nonce
        copy.ciphertext = sealed.ciphertext
        return copy
    }
}
