/// SLIP-0039, Shamir's Secret-Sharing for Mnemonic Codes: the Trezor standard for splitting a secret into word lists.
///
/// A master secret of 16 to 64 bytes (an even count) is encrypted with a passphrase (a four-round Feistel network
/// over PBKDF2-HMAC-SHA256), split into group shares with a group threshold, and each group share is split again
/// into member shares with that group's member threshold (Shamir over GF(256), with a digest share at index 254 and
/// the secret at index 255). Every share becomes a mnemonic of 20 (16-byte secret) to 59 (64-byte secret) words from
/// the 1024-word SLIP-0039 list, ending in a three-word RS1024 checksum.
///
/// ```swift
/// let groups = try SLIP39.split(
///     masterSecret: secret,
///     groupThreshold: 1,
///     groups: [SLIP39.Group(memberThreshold: 2, memberCount: 3)]
/// )
/// let recovered = try SLIP39.combine([groups[0][0], groups[0][2]])  // == secret
/// ```
///
/// Mnemonics are read case-insensitively and any run of ASCII whitespace separates words. Errors name the share
/// (its position in the list given to ``combine(_:passphrase:)``) and the word position, never a word.
///
/// - Warning: There is no way to tell a wrong passphrase: every passphrase yields *a* secret (SLIP-0039's
///   plausible deniability). A caller that needs to know must check the result against something it stored.
///
/// ## Topics
/// - ``split(masterSecret:groupThreshold:groups:passphrase:iterationExponent:extendable:)``
/// - ``combine(_:passphrase:)``
/// - ``Share``
/// - ``Error``
package enum SLIP39 {
    /// The shortest master secret (128 bits), the minimum of the standard.
    package static let minimumSecretByteCount = 16
    /// The longest master secret accepted (512 bits, the largest BIP-32 seed); mnemonics then have 59 words.
    package static let maximumSecretByteCount = 64
    /// The most groups in a split and the most members in a group (4-bit fields).
    package static let maximumShareCount = 16
    /// The largest iteration exponent (a 4-bit field): PBKDF2 then runs 2500 · 2^15 iterations per round.
    package static let maximumIterationExponent = 15
    /// The longest passphrase accepted, in bytes.
    package static let maximumPassphraseByteCount = 1024
    /// The most mnemonics ``combine(_:passphrase:)`` reads (16 groups of 16 members).
    package static let maximumMnemonicCount = 256
    /// The longest mnemonic text read, in UTF-8 bytes (59 words of at most 8 letters fit with room for whitespace).
    package static let maximumMnemonicByteCount = 2048

    /// One group of a split: how many member shares it has and how many of them rebuild the group share.
    package struct Group: Sendable, Hashable {
        /// The number of member shares that rebuild this group's share, 1 ≤ threshold ≤ count.
        package var memberThreshold: Int
        /// The number of member shares made for this group, at most 16 (exactly 1 when the threshold is 1).
        package var memberCount: Int

        /// Creates a `memberThreshold`-of-`memberCount` group.
        package init(memberThreshold: Int, memberCount: Int) {
            self.memberThreshold = memberThreshold
            self.memberCount = memberCount
        }
    }

    /// Splits `masterSecret` into SLIP-0039 mnemonics, one list per group.
    ///
    /// Any `groupThreshold` groups, each with `memberThreshold` of its member mnemonics, rebuild the secret with
    /// the same passphrase. The identifier and every share value come from libsodium's `randombytes_buf`.
    ///
    /// - Parameters:
    ///   - masterSecret: 16 to 64 bytes, an even count.
    ///   - groupThreshold: How many groups are needed, 1 ≤ groupThreshold ≤ `groups.count`.
    ///   - groups: 1 to 16 groups; a group with threshold 1 must have exactly one member (the standard's rule).
    ///   - passphrase: Printable ASCII (32 to 126), at most ``maximumPassphraseByteCount`` bytes; empty for none.
    ///   - iterationExponent: 0 to 15; PBKDF2 runs 10000 · 2^e iterations in all.
    ///   - extendable: Whether the identifier stays out of the encryption (`ext` = 1, the standard's default), so
    ///     later splits of the same secret and passphrase give the same encrypted master secret.
    /// - Returns: For each group in order, its member mnemonics in member-index order, words joined by one space.
    /// - Throws: ``Error`` naming the first invalid parameter, or ``Error/secureMemoryUnavailable``.
    package static func split(
        masterSecret: SecretBytes,
        groupThreshold: Int,
        groups: [Group],
        passphrase: [UInt8] = [],
        iterationExponent: Int = 1,
        extendable: Bool = true
    ) throws(Error) -> [[String]] {
        let byteCount = masterSecret.count
        guard byteCount >= minimumSecretByteCount, byteCount <= maximumSecretByteCount, byteCount % 2 == 0 else {
            throw .invalidSecretLength(byteCount: byteCount)
        }
        guard groups.count >= 1, groups.count <= maximumShareCount else {
            throw .invalidGroupCount(groups.count)
        }
        guard groupThreshold >= 1, groupThreshold <= groups.count else {
            throw .invalidGroupThreshold(groupThreshold, groupCount: groups.count)
        }
        for (index, group) in groups.enumerated() {
            guard group.memberCount >= 1, group.memberCount <= maximumShareCount else {
                throw .invalidMemberCount(groupIndex: index, count: group.memberCount)
            }
            guard group.memberThreshold >= 1, group.memberThreshold <= group.memberCount else {
                throw .invalidMemberThreshold(
                    groupIndex: index,
                    threshold: group.memberThreshold,
                    count: group.memberCount
                )
            }
            guard group.memberThreshold > 1 || group.memberCount == 1 else {
                throw .singleThresholdWithSeveralMembers(groupIndex: index, count: group.memberCount)
            }
        }
        guard iterationExponent >= 0, iterationExponent <= maximumIterationExponent else {
            throw .invalidIterationExponent(iterationExponent)
        }
        try validate(passphrase: passphrase)

        let random = randomBytes(2)
        let identifier = (Int(random[0]) << 8 | Int(random[1])) & 0x7FFF
        let parameters = Share.Parameters(
            identifier: identifier,
            extendable: extendable,
            iterationExponent: iterationExponent,
            groupThreshold: groupThreshold,
            groupCount: groups.count
        )
        var secret = masterSecret.withUnsafeBytes { Array($0) }
        var encrypted = Cipher.encrypt(secret, passphrase: passphrase, parameters: parameters)
        wipe(&secret)
        defer { wipe(&encrypted) }

        var groupShares = Shamir.split(encrypted, threshold: groupThreshold, count: groups.count)
        defer { for index in groupShares.indices { wipe(&groupShares[index]) } }
        var mnemonics: [[String]] = []
        for (groupIndex, group) in groups.enumerated() {
            var memberShares = Shamir.split(
                groupShares[groupIndex],
                threshold: group.memberThreshold,
                count: group.memberCount
            )
            mnemonics.append(
                memberShares.enumerated().map { memberIndex, value in
                    Share.mnemonic(
                        parameters: parameters,
                        groupIndex: groupIndex,
                        memberIndex: memberIndex,
                        memberThreshold: group.memberThreshold,
                        value: value
                    )
                }
            )
            for index in memberShares.indices { wipe(&memberShares[index]) }
        }
        return mnemonics
    }

    /// Rebuilds the master secret from SLIP-0039 mnemonics.
    ///
    /// The mnemonics must be exactly a threshold set: `groupThreshold` distinct groups, each with exactly its
    /// `memberThreshold` distinct members, all from one split (the standard's rule; extra shares are refused rather
    /// than guessed about). Each is parsed with ``Share/init(mnemonic:)``.
    ///
    /// - Parameters:
    ///   - mnemonics: At most ``maximumMnemonicCount`` mnemonics, in any order.
    ///   - passphrase: The passphrase of the split (printable ASCII); a different one gives a different secret.
    /// - Returns: The master secret, in guarded memory.
    /// - Throws: ``Error``: a parse error carries the 1-based position of the mnemonic in `mnemonics`.
    package static func combine(_ mnemonics: [String], passphrase: [UInt8] = []) throws(Error) -> SecretBytes {
        guard !mnemonics.isEmpty else { throw .noShares }
        guard mnemonics.count <= maximumMnemonicCount else { throw .tooManyMnemonics(count: mnemonics.count) }
        var shares: [Share] = []
        shares.reserveCapacity(mnemonics.count)
        for (position, mnemonic) in mnemonics.enumerated() {
            do {
                shares.append(try Share(mnemonic: mnemonic))
            } catch {
                throw error.locating(share: position + 1)
            }
        }
        return try combine(shares, passphrase: passphrase)
    }

    /// Rebuilds the master secret from parsed shares (see ``combine(_:passphrase:)-([String],_)``).
    ///
    /// - Parameters:
    ///   - shares: A threshold set of shares from one split, at most ``maximumMnemonicCount``.
    ///   - passphrase: The passphrase of the split (printable ASCII).
    /// - Returns: The master secret, in guarded memory.
    /// - Throws: ``Error`` naming the first inconsistency, or ``Error/digestMismatch(groupIndex:)`` when the
    ///   shares are consistent but do not belong together (tampered or mixed from two splits with one identifier).
    package static func combine(_ shares: [Share], passphrase: [UInt8] = []) throws(Error) -> SecretBytes {
        guard let first = shares.first else { throw .noShares }
        guard shares.count <= maximumMnemonicCount else { throw .tooManyMnemonics(count: shares.count) }
        try validate(passphrase: passphrase)
        let parameters = first.parameters
        for share in shares {
            if let field = share.parameters.firstDifference(from: parameters) { throw .mismatchedShares(field) }
            guard share.value.count == first.value.count else { throw .mismatchedShares(.length) }
        }

        // Group by group index, keeping the order of first appearance.
        var groups: [(index: Int, members: [Share])] = []
        for share in shares {
            if let slot = groups.firstIndex(where: { $0.index == share.groupIndex }) {
                let members = groups[slot].members
                if let twin = members.first(where: { $0.memberIndex == share.memberIndex }) {
                    throw twin.value == share.value
                        ? .duplicateShare(groupIndex: share.groupIndex, memberIndex: share.memberIndex)
                        : .conflictingShares(groupIndex: share.groupIndex, memberIndex: share.memberIndex)
                }
                guard members[0].memberThreshold == share.memberThreshold else {
                    throw .mismatchedMemberThresholds(groupIndex: share.groupIndex)
                }
                groups[slot].members.append(share)
            } else {
                groups.append((share.groupIndex, [share]))
            }
        }
        guard groups.count >= parameters.groupThreshold else {
            throw .tooFewGroups(have: groups.count, need: parameters.groupThreshold)
        }
        guard groups.count == parameters.groupThreshold else {
            throw .tooManyGroups(have: groups.count, need: parameters.groupThreshold)
        }
        for group in groups {
            let need = group.members[0].memberThreshold
            guard group.members.count >= need else {
                throw .tooFewShares(groupIndex: group.index, have: group.members.count, need: need)
            }
            guard group.members.count == need else {
                throw .tooManyShares(groupIndex: group.index, have: group.members.count, need: need)
            }
        }

        var groupShares: [Shamir.Point] = []
        defer { for index in groupShares.indices { wipe(&groupShares[index].y) } }
        for group in groups {
            var points = group.members.map {
                Shamir.Point(x: UInt8($0.memberIndex), y: $0.value.withUnsafeBytes(Array.init))
            }
            defer { for index in points.indices { wipe(&points[index].y) } }
            guard let value = Shamir.recover(points, threshold: group.members[0].memberThreshold) else {
                throw .digestMismatch(groupIndex: group.index)
            }
            groupShares.append(Shamir.Point(x: UInt8(group.index), y: value))
        }
        guard var encrypted = Shamir.recover(groupShares, threshold: parameters.groupThreshold) else {
            throw .digestMismatch(groupIndex: nil)
        }
        defer { wipe(&encrypted) }
        var secret = Cipher.decrypt(encrypted, passphrase: passphrase, parameters: parameters)
        defer { wipe(&secret) }
        do {
            return try SecretBytes(copying: secret)
        } catch {
            throw .secureMemoryUnavailable
        }
    }

    /// Checks the standard's passphrase rule: printable ASCII only, and a bounded length.
    static func validate(passphrase: [UInt8]) throws(Error) {
        guard passphrase.count <= maximumPassphraseByteCount, passphrase.allSatisfy({ (32...126).contains($0) })
        else { throw .invalidPassphrase }
    }
}

/// Overwrites the elements of `buffer` with zeros (for the 10-bit word values of a mnemonic).
func wipe(_ buffer: inout [UInt16]) {
    buffer.withUnsafeMutableBytes { raw in
        if let base = raw.baseAddress { wipe(base, count: raw.count) }
    }
}
