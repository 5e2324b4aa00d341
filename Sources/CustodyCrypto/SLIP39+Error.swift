extension SLIP39 {
    /// Why a SLIP-0039 split, parse or combination was refused: one case per problem.
    ///
    /// `share` is the 1-based position of the mnemonic in the list given to
    /// ``SLIP39/combine(_:passphrase:)-([String],_)``, or `nil` from ``SLIP39/Share/init(mnemonic:)``. `position`
    /// is a 1-based word position. `groupIndex` and `memberIndex` are the 0-based indices of ``SLIP39/Share``; the
    /// descriptions number groups and members from 1. No case carries a word, a value or a mnemonic: they are secret.
    package enum Error: Swift.Error, Sendable, Hashable, CustomStringConvertible {
        /// Which header field two shares disagree on.
        package enum Field: String, Sendable, Hashable {
            case identifier
            case extendable = "extendable flag"
            case iterationExponent = "iteration exponent"
            case groupThreshold = "group threshold"
            case groupCount = "group count"
            case length = "length"
        }

        // One mnemonic.
        /// The mnemonic text is longer than ``SLIP39/maximumMnemonicByteCount`` bytes.
        case mnemonicTooLong(share: Int?)
        /// The mnemonic has a word count no share can have (20 for a 128-bit secret, 33 for 256-bit, …).
        case wrongWordCount(share: Int?, count: Int)
        /// The word at `position` is not in the SLIP-0039 word list.
        case unknownWord(share: Int?, position: Int)
        /// The RS1024 checksum (the last three words) does not match: a word is wrong or two are swapped.
        case invalidChecksum(share: Int?)
        /// The padding bits before the share value are not zero.
        case invalidPadding(share: Int?)
        /// The share says more groups are needed than exist.
        case groupThresholdExceedsGroupCount(share: Int?)
        /// The share's group index is not below its group count.
        case groupIndexOutOfRange(share: Int?)

        // A set of shares.
        /// No share was given.
        case noShares
        /// More than ``SLIP39/maximumMnemonicCount`` mnemonics were given.
        case tooManyMnemonics(count: Int)
        /// Two shares differ in `field`: they come from different splits.
        case mismatchedShares(Field)
        /// The same share was given twice.
        case duplicateShare(groupIndex: Int, memberIndex: Int)
        /// Two different shares claim the same group and member index: one is forged or from another split.
        case conflictingShares(groupIndex: Int, memberIndex: Int)
        /// Shares of one group disagree on its member threshold.
        case mismatchedMemberThresholds(groupIndex: Int)
        /// Fewer groups than the group threshold are present.
        case tooFewGroups(have: Int, need: Int)
        /// More groups than the group threshold are present (the standard wants exactly the threshold).
        case tooManyGroups(have: Int, need: Int)
        /// A group has fewer member shares than its threshold.
        case tooFewShares(groupIndex: Int, have: Int, need: Int)
        /// A group has more member shares than its threshold (the standard wants exactly the threshold).
        case tooManyShares(groupIndex: Int, have: Int, need: Int)
        /// The recovered secret fails its digest: a share was tampered with or mixed in from another split.
        /// `groupIndex` is the group whose members failed, or `nil` for the group level.
        case digestMismatch(groupIndex: Int?)

        // Splitting.
        /// The master secret is shorter than 16 bytes, longer than 64, or of odd length.
        case invalidSecretLength(byteCount: Int)
        /// The number of groups is not 1 to 16.
        case invalidGroupCount(Int)
        /// The group threshold is not 1 to the number of groups.
        case invalidGroupThreshold(Int, groupCount: Int)
        /// A group's member count is not 1 to 16.
        case invalidMemberCount(groupIndex: Int, count: Int)
        /// A group's member threshold is not 1 to its member count.
        case invalidMemberThreshold(groupIndex: Int, threshold: Int, count: Int)
        /// A group has threshold 1 but several members, which the standard forbids (they would be copies).
        case singleThresholdWithSeveralMembers(groupIndex: Int, count: Int)
        /// The iteration exponent is not 0 to 15.
        case invalidIterationExponent(Int)

        // Either.
        /// The passphrase has a byte outside printable ASCII (32 to 126) or is too long.
        case invalidPassphrase
        /// Guarded memory for the secret could not be allocated.
        case secureMemoryUnavailable

        /// The same error, attributed to the mnemonic at 1-based `position` of a list.
        func locating(share position: Int) -> Self {
            switch self {
            case .mnemonicTooLong: .mnemonicTooLong(share: position)
            case .wrongWordCount(_, let count): .wrongWordCount(share: position, count: count)
            case .unknownWord(_, let word): .unknownWord(share: position, position: word)
            case .invalidChecksum: .invalidChecksum(share: position)
            case .invalidPadding: .invalidPadding(share: position)
            case .groupThresholdExceedsGroupCount: .groupThresholdExceedsGroupCount(share: position)
            case .groupIndexOutOfRange: .groupIndexOutOfRange(share: position)
            default: self
            }
        }

        package var description: String {
            switch self {
            case .mnemonicTooLong(let share):
                "\(prefix(share))mnemonic longer than \(SLIP39.maximumMnemonicByteCount) bytes; give one share only"
            case .wrongWordCount(let share, let count):
                "\(prefix(share))\(count) words is not a share length (20 words for a 128-bit secret, 33 for 256-bit); "
                    + "check for a missing or extra word"
            case .unknownWord(let share, let position):
                "\(prefix(share))word \(position) is not in the slip-39 word list; check its spelling"
            case .invalidChecksum(let share):
                "\(prefix(share))checksum mismatch: a word is wrong or two are swapped; check each word against the copy"
            case .invalidPadding(let share):
                "\(prefix(share))invalid padding: the share is corrupt; check its first words against the copy"
            case .groupThresholdExceedsGroupCount(let share):
                "\(prefix(share))group threshold exceeds group count: the share is corrupt; check it against the copy"
            case .groupIndexOutOfRange(let share):
                "\(prefix(share))group index not below the group count: the share is corrupt; check it against the copy"
            case .noShares:
                "no shares given; give a threshold set of shares"
            case .tooManyMnemonics(let count):
                "\(count) shares given, more than \(SLIP39.maximumMnemonicCount); give a threshold set only"
            case .mismatchedShares(let field):
                "shares differ in their \(field.rawValue): they come from different splits; give shares of one split"
            case .duplicateShare(let group, let member):
                "member \(member + 1) of group \(group + 1) given twice; give another member's share instead"
            case .conflictingShares(let group, let member):
                "two different shares claim to be member \(member + 1) of group \(group + 1): one is forged or from "
                    + "another split; leave one out"
            case .mismatchedMemberThresholds(let group):
                "shares of group \(group + 1) disagree on its threshold: they come from different splits"
            case .tooFewGroups(let have, let need):
                "shares of \(have) group\(have == 1 ? "" : "s") given, \(need) needed; add shares of another group"
            case .tooManyGroups(let have, let need):
                "shares of \(have) groups given, exactly \(need) needed; leave out the shares of the extra groups"
            case .tooFewShares(let group, let have, let need):
                "group \(group + 1) has \(have) share\(have == 1 ? "" : "s"), \(need) needed; add shares of that group"
            case .tooManyShares(let group, let have, let need):
                "group \(group + 1) has \(have) shares, exactly \(need) needed; leave out the extra shares"
            case .digestMismatch(let group):
                "digest mismatch\(group.map { " in group \($0 + 1)" } ?? ""): a share was altered or comes from another "
                    + "split with the same identifier; check each share against its copy"
            case .invalidSecretLength(let count):
                "a \(count)-byte secret cannot be split; give an even number of bytes from "
                    + "\(SLIP39.minimumSecretByteCount) to \(SLIP39.maximumSecretByteCount)"
            case .invalidGroupCount(let count):
                "\(count) groups; give 1 to \(SLIP39.maximumShareCount)"
            case .invalidGroupThreshold(let threshold, let count):
                "group threshold \(threshold) with \(count) group\(count == 1 ? "" : "s"); give 1 to \(count)"
            case .invalidMemberCount(let group, let count):
                "group \(group + 1) has \(count) members; give 1 to \(SLIP39.maximumShareCount)"
            case .invalidMemberThreshold(let group, let threshold, let count):
                "group \(group + 1) has threshold \(threshold) with \(count) members; give 1 to \(count)"
            case .singleThresholdWithSeveralMembers(let group, let count):
                "group \(group + 1) has threshold 1 with \(count) members, which slip-39 forbids; use 1 member "
                    + "or a threshold of 2 or more"
            case .invalidIterationExponent(let exponent):
                "iteration exponent \(exponent); give 0 to \(SLIP39.maximumIterationExponent)"
            case .invalidPassphrase:
                "the passphrase must be printable ascii (space to tilde), at most "
                    + "\(SLIP39.maximumPassphraseByteCount) bytes"
            case .secureMemoryUnavailable:
                "guarded memory for the secret could not be allocated; free memory or raise the locked-memory limit"
            }
        }

        private func prefix(_ share: Int?) -> String { share.map { "share \($0): " } ?? "" }
    }
}
