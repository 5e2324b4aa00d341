import CustodyCrypto
import CustodyStorage
import Foundation

/// The archive's secrets sealed for M-of-N recovery, `recovery.json` (mode 0600; Docs/FORMAT.md section 4.2).
///
/// `custody recovery split` draws a fresh 32-byte **recovery seed**, splits it into SLIP-39 shares for the
/// custodians, and keeps here only what the seed opens: the administrator's share (96 bytes, or 128 + 32·n after a
/// key rotation) sealed under a key derived from it,
/// and the public key of a signing key derived from it, which the log records (a `recovery-split` event) so that
/// an auditor can check that a later `recovery` event was signed by whoever rebuilt the seed. No single person
/// holds the seed after the split; fewer shares than the threshold reveal nothing about it.
package struct RecoveryFile: Codable, Sendable {
    /// Always `custody-recovery`.
    package var format = "custody-recovery"
    /// Format version (1).
    package var version = 1
    /// The recovery signing key's public key, base64 (as the `recovery-split` event names it).
    package var recoveryKey: String
    /// The SLIP-39 identifier of the split (15 bits), to tell shares of another split apart.
    package var identifier: Int
    /// How many groups, and which thresholds, the split has.
    package var groupThreshold: Int
    /// Each group's `[threshold, count]`.
    package var groups: [[Int]]
    /// 24-byte nonce, base64.
    package var nonce: String
    /// The administrator's share (96 bytes; after a key rotation, its rotated form) sealed under the wrapping key, base64.
    package var ciphertext: String

    enum CodingKeys: String, CodingKey {
        case format, version, identifier, groups, nonce, ciphertext
        case recoveryKey = "recovery_key"
        case groupThreshold = "group_threshold"
    }

    static let maxBytes = 64 * 1024
    /// KDF contexts of the keys derived from the recovery seed.
    static let signingContext = "cstdrcsg"
    static let wrappingContext = "cstdrcwk"

    static func associatedData(origin: String, recoveryKey: String) -> [UInt8] {
        Array("custody/recovery/v1\n\(origin)\n\(recoveryKey)".utf8)
    }

    /// The two keys a recovery seed gives: the signing key of `recovery` events and the key sealing the secrets.
    static func keys(of seed: SecretBytes) throws -> (signing: SigningKey, wrapping: SecretBytes) {
        (
            try SigningKey(seed: SubkeyDerivation.derive(from: seed, id: 1, context: signingContext)),
            try SubkeyDerivation.derive(from: seed, id: 2, context: wrappingContext)
        )
    }
}

extension ArchiveContext {
    var recoveryPath: String { root + "/recovery.json" }

    /// The current recovery file, if a split was made.
    func recoveryFile() throws -> RecoveryFile? {
        guard POSIX.lstatPath(recoveryPath) != nil else { return nil }
        let bytes = try ArchiveFiles.read(recoveryPath, limit: RecoveryFile.maxBytes)
        guard let file = try? JSONDecoder().decode(RecoveryFile.self, from: Data(bytes)),
            file.format == "custody-recovery",
            file.version == 1, Encoding.bytes(base64: file.recoveryKey)?.count == 32
        else {
            throw ArchiveError(
                .damaged,
                "recovery.json is malformed",
                fix: "make a new split with custody recovery split"
            )
        }
        return file
    }
}

/// What `recovery split` made: the shares, to hand out once, and the split's public key.
package struct RecoverySplit: Sendable {
    /// For each group, its members' mnemonics.
    package var groups: [[String]]
    /// The SLIP-39 identifier.
    package var identifier: Int
    /// The recovery key the log records, base64.
    package var recoveryKey: String
    /// What became of the `recovery-split` event.
    package var outcome: RosterOutcome
}

extension Archive.Unlocked {
    /// Splits a fresh recovery seed into SLIP-39 shares (`groupThreshold` of `groups`), seals the archive's secrets
    /// under it in `recovery.json`, and records a `recovery-split` event naming its public key. Any earlier split
    /// stops working: its shares rebuild a seed that opens nothing.
    ///
    /// - Throws: ``ArchiveError``: role not allowed for a member who is not an administrator; usage for invalid
    ///   thresholds.
    package func splitRecovery(groupThreshold: Int, groups: [SLIP39.Group]) async throws -> RecoverySplit {
        try authorize(member, for: [.manageMembers])
        guard keys.isComplete, let secrets = try keys.share(.complete)?.secrets else {
            throw ArchiveError(
                .roleNotAllowed,
                "only an administrator's keys can be split for recovery",
                fix: "run the command as an administrator"
            )
        }
        let seed = try SecretBytes(randomCount: 32)
        let mnemonics: [[String]]
        do {
            mnemonics = try SLIP39.split(masterSecret: seed, groupThreshold: groupThreshold, groups: groups)
        } catch {
            throw ArchiveError(
                .usage,
                "cannot split: \(error)",
                fix: "choose a threshold from 1 to the share count (at most 16)"
            )
        }
        let identifier = try SLIP39.Share(mnemonic: mnemonics[0][0]).identifier
        let (signing, wrapping) = try RecoveryFile.keys(of: seed)
        let recoveryKey = Encoding.base64(signing.publicKey)
        let nonce = randomBytes(XChaCha20Poly1305.nonceByteCount)
        let ad = RecoveryFile.associatedData(origin: config.origin, recoveryKey: recoveryKey)
        let sealed = secrets.withUnsafeBytes { s in
            wrapping.withUnsafeBytes { k in
                nonce.withUnsafeBytes { n in
                    ad.withUnsafeBytes { a in XChaCha20Poly1305.seal(s, key: k, nonce: n, associatedData: a) }
                }
            }
        }
        let file = RecoveryFile(
            recoveryKey: recoveryKey,
            identifier: identifier,
            groupThreshold: groupThreshold,
            groups: groups.map { [$0.memberThreshold, $0.memberCount] },
            nonce: Encoding.base64(nonce),
            ciphertext: Encoding.base64(sealed)
        )
        let roster = try roster()
        var event = Event(type: .recoverySplit, time: RFC3339.now(), actor: config.origin, item: nil)
        event.roster = roster.version
        event.recoveryKey = recoveryKey
        let outcome = try await submit(event, keyFile: nil, recovery: file, roster: roster, approvals: [])
        return RecoverySplit(groups: mnemonics, identifier: identifier, recoveryKey: recoveryKey, outcome: outcome)
    }
}

extension Archive {
    /// Rebuilds the recovery seed from a threshold set of SLIP-39 shares, opens `recovery.json` with it, and
    /// enrols `name` as a new administrator (their key file sealed under `passphrase`) with a `recovery` event
    /// signed by the recovery key: the way back when every administrator's passphrase is lost.
    ///
    /// - Throws: ``ArchiveError`` (bad input) for a share that does not parse, shares of different splits, too
    ///   few, a duplicated share, or shares that are not of this archive's current split; nothing is changed.
    package func restoreRecovery(
        shares mnemonics: [String],
        name: String,
        passphrase: SecretBytes,
        kdfPreset: String
    ) async throws -> Member {
        try Member.validateName(name)
        guard let parameters = Self.kdfPresets[kdfPreset] else {
            throw ArchiveError(.usage, "unknown KDF preset \(kdfPreset)", fix: "use interactive, moderate or sensitive")
        }
        guard let file = try recoveryFile() else {
            throw ArchiveError(
                .notFound,
                "this archive has no recovery split (recovery.json)",
                fix: "an administrator makes one with custody recovery split"
            )
        }
        let seed = try Self.combineShares(mnemonics, file: file)
        let (signing, wrapping) = try RecoveryFile.keys(of: seed)
        guard Encoding.base64(signing.publicKey) == file.recoveryKey else {
            throw ArchiveError(
                .recoveryOtherSplit,
                "these shares rebuild a seed that is not this archive's current recovery split",
                fix: "give shares of the latest split (custody log shows its recovery-split event)"
            )
        }
        guard let nonce = Encoding.bytes(base64: file.nonce), nonce.count == XChaCha20Poly1305.nonceByteCount,
            let sealed = Encoding.bytes(base64: file.ciphertext), sealed.count >= 96 + XChaCha20Poly1305.tagByteCount,
            sealed.count <= 4096
        else {
            throw ArchiveError(.damaged, "recovery.json is malformed", fix: "restore it from a backup")
        }
        let ad = RecoveryFile.associatedData(origin: config.origin, recoveryKey: file.recoveryKey)
        var opened: [UInt8]
        do {
            opened = try wrapping.withUnsafeBytes { k in
                try XChaCha20Poly1305.open(sealed, key: Array(k), nonce: nonce, associatedData: ad)
            }
        } catch {
            throw ArchiveError(
                .damaged,
                "recovery.json does not open with its own seed",
                fix: "restore it from a backup"
            )
        }
        defer { wipe(&opened) }
        // The administrator's share as split: 96 bytes, or the rotated form after a key rotation.
        let kind: ArchiveKeys.Share = opened.count == 96 ? .complete : .rotatedComplete
        guard kind.allows(byteCount: opened.count),
            let keys = try ArchiveKeys(share: kind, secrets: SecretBytes(copying: opened))
        else {
            throw ArchiveError(
                .damaged,
                "recovery.json holds no administrator's share",
                fix: "restore it from a backup"
            )
        }
        try Self.checkKeys(keys, config: config, file: "recovery.json")
        let unlocked = Unlocked(archive: self, keys: keys, member: nil)
        return try await unlocked.recordRecovery(
            name: name,
            passphrase: passphrase,
            parameters: parameters,
            preset: kdfPreset,
            recoverySigning: signing
        )
    }

    /// The recovery seed from `mnemonics`, each read on its own first so an error names the share.
    static func combineShares(_ mnemonics: [String], file: RecoveryFile) throws -> SecretBytes {
        guard !mnemonics.isEmpty else {
            throw ArchiveError(.recoveryTooFewShares, "no recovery shares given", fix: "give a threshold set of shares")
        }
        guard mnemonics.count <= SLIP39.maximumMnemonicCount else {
            throw ArchiveError(.recoveryShareInvalid, "too many shares given", fix: "give a threshold set only")
        }
        var shares: [SLIP39.Share] = []
        for (index, text) in mnemonics.enumerated() {
            do {
                shares.append(try SLIP39.Share(mnemonic: text))
            } catch {
                throw recoveryError(error, share: index + 1)
            }
        }
        if let other = shares.first(where: { $0.identifier != file.identifier }) {
            _ = other
            throw ArchiveError(
                .recoveryOtherSplit,
                "a share is of another split (identifier differs from this archive's current split)",
                fix: "give shares of the latest split only"
            )
        }
        do {
            return try SLIP39.combine(shares)
        } catch {
            throw recoveryError(error, share: nil)
        }
    }

    /// A SLIP-39 error as the one-line error of a command, with a reason scripts can tell apart.
    static func recoveryError(_ error: SLIP39.Error, share: Int?) -> ArchiveError {
        let text = error.description
        let parts = text.split(separator: ";", maxSplits: 1).map { $0.trimmingCharacters(in: .whitespaces) }
        let problem = (share.map { "share \($0): " } ?? "") + parts[0]
        let fix = parts.count > 1 ? parts[1] : "check the shares against their copies"
        let reason: ArchiveError.Reason
        switch error {
        case .tooFewShares, .tooFewGroups, .noShares: reason = .recoveryTooFewShares
        case .duplicateShare: reason = .recoveryDuplicateShare
        case .mismatchedShares, .mismatchedMemberThresholds, .conflictingShares: reason = .recoveryOtherSplit
        default: reason = .recoveryShareInvalid
        }
        return ArchiveError(reason, problem, fix: fix)
    }
}

extension Archive.Unlocked {
    /// Enrols the new administrator a recovery makes and records the `recovery` event.
    fileprivate func recordRecovery(
        name: String,
        passphrase: SecretBytes,
        parameters: PasswordHash.Parameters,
        preset: String,
        recoverySigning: SigningKey
    ) async throws -> Member {
        let roster = try roster()
        guard roster.current(named: name) == nil else {
            throw ArchiveError(
                .usage,
                "a member named \(TerminalText.escape(name)) is already in the roster",
                fix: "choose another name"
            )
        }
        let (file, signing) = try MemberKeyFile.enrol(
            name: name,
            role: .admin,
            passphrase: passphrase,
            parameters: parameters,
            preset: preset,
            origin: config.origin,
            keys: keys
        )
        let acting = ActingMember(member: file.member, signing: signing)
        var event = Event(type: .recovery, time: RFC3339.now(), actor: config.origin, item: nil)
        event.subject = file.member
        event.roster = roster.version
        if let statement = RosterStatement.bytes(of: event, origin: config.origin) {
            event.recoverySignature = Encoding.base64(recoverySigning.signature(for: statement))
        }
        try await recordRosterChange(event, roster: roster, approvals: [], acting: acting) {
            try Archive.writeMemberKeyFile(file, root: root)
        }
        return file.member
    }
}

extension ArchiveError.Reason {
    /// A recovery share does not parse (a wrong word, a bad checksum…).
    package static let recoveryShareInvalid = Self("recovery-share-invalid", .badInput)
    /// Fewer recovery shares than the split's threshold.
    package static let recoveryTooFewShares = Self("recovery-too-few-shares", .badInput)
    /// The same recovery share given twice.
    package static let recoveryDuplicateShare = Self("recovery-duplicate-share", .badInput)
    /// Recovery shares of different splits, or of a split that is not this archive's current one.
    package static let recoveryOtherSplit = Self("recovery-other-split", .badInput)
}

/// A recovery share sealed to one custodian's own X25519 key (`recovery split --seal-to`; Docs/FORMAT.md section
/// 4.2): a file the custodian keeps, which only their key file opens.
///
/// `sealed = crypto_box_seal("custody/recovery-share/v1\n" ‖ origin ‖ "\n" ‖ member id (8 bytes) ‖ mnemonic,
/// member's box key)`.
package struct SealedRecoveryShare: Codable, Sendable {
    /// Always `custody-recovery-share`.
    package var format = "custody-recovery-share"
    /// Format version (1).
    package var version = 1
    /// The archive's log origin.
    package var origin: String
    /// The custodian's member id.
    package var member: MemberID
    /// The SLIP-39 identifier of the split.
    package var identifier: Int
    /// The sealed share, base64.
    package var sealed: String

    /// The largest file read.
    package static let maxBytes = 16 * 1024
    static let domain = Array("custody/recovery-share/v1\n".utf8)

    static func plaintextPrefix(origin: String, member: MemberID) -> [UInt8] {
        domain + Array(origin.utf8) + [0x0A] + member.bytes
    }

    /// Seals `mnemonic` to `member`.
    package static func seal(_ mnemonic: String, identifier: Int, to member: Member, origin: String) throws -> Self {
        guard let box = Encoding.bytes(base64: member.boxKey), box.count == 32 else {
            throw ArchiveError(.damaged, "the roster names a malformed key", fix: "run custody verify")
        }
        var plaintext = plaintextPrefix(origin: origin, member: member.id) + Array(mnemonic.utf8)
        defer { wipe(&plaintext) }
        return Self(
            origin: origin,
            member: member.id,
            identifier: identifier,
            sealed: Encoding.base64(try BoxKey.seal(plaintext, to: box))
        )
    }

    /// Parses a sealed share from outside: at most ``maxBytes`` of JSON of the documented form.
    package static func parse(_ bytes: [UInt8], source: String) throws -> Self {
        guard bytes.count <= maxBytes, let file = try? JSONDecoder().decode(Self.self, from: Data(bytes)),
            file.format == "custody-recovery-share", file.version == 1, OutsideInput.isOrigin(file.origin),
            (0..<32768).contains(file.identifier), file.sealed.utf8.count <= 8192
        else {
            throw ArchiveError(
                .badInput,
                "\(TerminalText.escape(source)) is not a sealed recovery share",
                fix: "give the file recovery split --seal-to wrote for you"
            )
        }
        return file
    }
}

extension Archive {
    /// Opens a share sealed to the acting member (``SealedRecoveryShare``) with their own key file: any member who
    /// was made a custodian, whatever their role, and only them.
    ///
    /// - Returns: The share's SLIP-39 words, to type into `recovery restore`.
    /// - Throws: ``ArchiveError``: not authorised when the share is another member's or another archive's, or does
    ///   not open with the acting member's key; bad input for words that are not a SLIP-39 share.
    package func openSealedShare(_ file: SealedRecoveryShare) throws -> String {
        let (keyFile, opened) = try Self.openMember(
            root: root,
            config: config,
            named: memberName,
            passphrase: passphrase
        )
        guard file.origin == config.origin, file.member == keyFile.member.id else {
            throw ArchiveError(
                .notAuthorised,
                "this recovery share is sealed to member \(file.member) of \(TerminalText.escape(file.origin)), not to \(TerminalText.escape(keyFile.member.name)) of this archive",
                fix: "open it as the member it names (--member NAME), in the archive it belongs to"
            )
        }
        let box = try BoxKey(secretKey: opened.boxSecret)
        let prefix = SealedRecoveryShare.plaintextPrefix(origin: file.origin, member: file.member)
        guard let sealed = Encoding.bytes(base64: file.sealed), var plaintext = try? box.open(sealed),
            plaintext.count > prefix.count, Array(plaintext[..<prefix.count]) == prefix
        else {
            throw ArchiveError(
                .notAuthorised,
                "this recovery share does not open with the key of \(TerminalText.escape(keyFile.member.name))",
                fix: "open it as the member it was sealed to"
            )
        }
        defer { wipe(&plaintext) }
        guard let words = String(validating: plaintext[prefix.count...], as: UTF8.self),
            let share = try? SLIP39.Share(mnemonic: words), share.identifier == file.identifier
        else {
            throw ArchiveError(
                .badInput,
                "the sealed share holds no SLIP-39 share of its split",
                fix: "ask for a new split"
            )
        }
        return words
    }
}
