extension SLIP39 {
    /// One SLIP-0039 share, parsed and checked from its mnemonic: the header fields a user can be shown, and the
    /// share value, which stays in guarded memory.
    ///
    /// The identifier and iteration exponent are the first two words: shares of one split begin alike. Group and
    /// member indices are the 0-based x-coordinates of the standard; show them to people as `index + 1`.
    package struct Share: Sendable {
        /// The header fields all shares of one split have in common.
        struct Parameters: Sendable, Hashable {
            /// The 15-bit random identifier of the split.
            var identifier: Int
            /// The `ext` flag: whether the identifier stays out of the encryption.
            var extendable: Bool
            /// The iteration exponent `e`: PBKDF2 runs 2500 · 2^e iterations per Feistel round.
            var iterationExponent: Int
            /// The number of groups needed, 1 to 16.
            var groupThreshold: Int
            /// The number of groups, 1 to 16.
            var groupCount: Int

            /// The first field in which `self` and `other` differ, or `nil` when they agree.
            func firstDifference(from other: Self) -> Error.Field? {
                if identifier != other.identifier { return .identifier }
                if extendable != other.extendable { return .extendable }
                if iterationExponent != other.iterationExponent { return .iterationExponent }
                if groupThreshold != other.groupThreshold { return .groupThreshold }
                if groupCount != other.groupCount { return .groupCount }
                return nil
            }
        }

        /// The fields shared by the whole split.
        let parameters: Parameters
        /// The group's x-coordinate, 0 to ``groupCount`` − 1.
        package let groupIndex: Int
        /// The member's x-coordinate in its group, 0 to 15.
        package let memberIndex: Int
        /// How many members of this group rebuild the group share, 1 to 16.
        package let memberThreshold: Int
        /// The share value `ps` without its padding, as long as the master secret.
        let value: SecretBytes

        /// The 15-bit random identifier of the split, the same in every share of it.
        package var identifier: Int { parameters.identifier }
        /// Whether the split is extendable (`ext` = 1): its identifier is not part of the encryption.
        package var extendable: Bool { parameters.extendable }
        /// The iteration exponent `e`; combining costs 10000 · 2^e PBKDF2-HMAC-SHA256 iterations.
        package var iterationExponent: Int { parameters.iterationExponent }
        /// How many groups rebuild the secret, 1 to 16.
        package var groupThreshold: Int { parameters.groupThreshold }
        /// How many groups the split has, 1 to 16.
        package var groupCount: Int { parameters.groupCount }
        /// The length of the master secret in bytes.
        package var secretByteCount: Int { value.count }

        /// Parses and checks one mnemonic: its length, every word, the RS1024 checksum, the padding, and that the
        /// header is self-consistent.
        ///
        /// Words are matched case-insensitively; any run of ASCII whitespace separates them.
        ///
        /// - Parameter mnemonic: The words of one share.
        /// - Throws: ``Error`` (with `share: nil`) naming the first problem found.
        package init(mnemonic: String) throws(Error) {
            var values = try Self.wordValues(of: mnemonic)
            defer { wipe(&values) }
            let extendable = values[1] >> 4 & 1 == 1
            guard RS1024.isValid(values, extendable: extendable) else { throw .invalidChecksum(share: nil) }
            let head = Int(values[0]) << 10 | Int(values[1])
            let fields = Int(values[2]) << 10 | Int(values[3])
            let parameters = Parameters(
                identifier: head >> 5,
                extendable: extendable,
                iterationExponent: head & 0xF,
                groupThreshold: (fields >> 12 & 0xF) + 1,
                groupCount: (fields >> 8 & 0xF) + 1
            )
            var bytes = try Self.unpack(values[4..<(values.count - RS1024.checksumWordCount)])
            defer { wipe(&bytes) }
            guard parameters.groupThreshold <= parameters.groupCount else {
                throw .groupThresholdExceedsGroupCount(share: nil)
            }
            guard fields >> 16 < parameters.groupCount else { throw .groupIndexOutOfRange(share: nil) }
            self.parameters = parameters
            self.groupIndex = fields >> 16
            self.memberIndex = fields >> 4 & 0xF
            self.memberThreshold = (fields & 0xF) + 1
            do {
                self.value = try SecretBytes(copying: bytes)
            } catch {
                throw .secureMemoryUnavailable
            }
        }

        /// The header words before the share value: identifier, flag and exponent; then the index fields.
        static let headerWordCount = 4
        /// The fewest words a share has (a 16-byte secret).
        static let minimumWordCount = 20
        /// The most words a share has (a 64-byte secret).
        static let maximumWordCount = headerWordCount + (maximumSecretByteCount * 8 + 9) / 10 + RS1024.checksumWordCount

        /// Whether `count` words make a share: enough for 128 bits, and padding of at most 8 bits (the standard).
        static func isValidWordCount(_ count: Int) -> Bool {
            guard count >= minimumWordCount, count <= maximumWordCount else { return false }
            return (count - headerWordCount - RS1024.checksumWordCount) * 10 % 16 <= 8
        }

        /// The 10-bit values of the words of `mnemonic`, after bounding its size and word count.
        static func wordValues(of mnemonic: String) throws(Error) -> [UInt16] {
            guard mnemonic.utf8.count <= maximumMnemonicByteCount else { throw .mnemonicTooLong(share: nil) }
            var text = Array(mnemonic.utf8)
            defer { wipe(&text) }
            var words: [Range<Int>] = []
            var start: Int?
            for (offset, byte) in text.enumerated() {
                let isSpace = byte == 0x20 || (0x09...0x0D).contains(byte)
                if isSpace, let begin = start {
                    words.append(begin..<offset)
                    start = nil
                } else if !isSpace, start == nil {
                    start = offset
                }
            }
            if let begin = start { words.append(begin..<text.count) }
            guard isValidWordCount(words.count) else { throw .wrongWordCount(share: nil, count: words.count) }

            var values: [UInt16] = []
            values.reserveCapacity(words.count)
            for (position, range) in words.enumerated() {
                guard let value = Self.value(ofWord: text[range]) else {
                    wipe(&values)
                    throw .unknownWord(share: nil, position: position + 1)
                }
                values.append(value)
            }
            return values
        }

        /// The 10-bit value of one word, matched case-insensitively, or `nil` when it is not in the list.
        static func value(ofWord word: ArraySlice<UInt8>) -> UInt16? {
            // Every listed word has 4 to 8 ASCII letters; the lowered copy is a small (inline, unallocated) string.
            guard word.count >= 4, word.count <= 8 else { return nil }
            var lowered: [UInt8] = []
            lowered.reserveCapacity(8)
            for byte in word {
                switch byte {
                case 0x61...0x7A: lowered.append(byte)
                case 0x41...0x5A: lowered.append(byte | 0x20)
                default: return nil
                }
            }
            defer { wipe(&lowered) }
            return SLIP39.wordIndex[String(decoding: lowered, as: UTF8.self)]
        }

        /// The share value from its 10-bit words: the leading `bits mod 16` padding bits must be zero.
        static func unpack(_ words: ArraySlice<UInt16>) throws(Error) -> [UInt8] {
            let bitCount = words.count * 10
            let padding = bitCount % 16
            var out: [UInt8] = []
            out.reserveCapacity((bitCount - padding) / 8)
            var accumulator: UInt32 = 0
            var held = 0
            for (offset, word) in words.enumerated() {
                accumulator = accumulator << 10 | UInt32(word)
                held += 10
                if offset == 0 {
                    guard accumulator >> (10 - padding) == 0 else {
                        wipe(&out)
                        throw .invalidPadding(share: nil)
                    }
                    held -= padding
                }
                while held >= 8 {
                    held -= 8
                    out.append(UInt8(truncatingIfNeeded: accumulator >> held))
                }
                accumulator &= (1 << held) - 1
            }
            return out
        }

        /// The 10-bit words of a share value, left-padded with zero bits to a multiple of 10.
        static func pack(_ value: [UInt8]) -> [UInt16] {
            let wordCount = (value.count * 8 + 9) / 10
            var out: [UInt16] = []
            out.reserveCapacity(wordCount)
            var accumulator: UInt32 = 0
            var held = wordCount * 10 - value.count * 8
            for byte in value {
                accumulator = accumulator << 8 | UInt32(byte)
                held += 8
                while held >= 10 {
                    held -= 10
                    out.append(UInt16(truncatingIfNeeded: accumulator >> held) & 0x3FF)
                }
                accumulator &= (1 << held) - 1
            }
            return out
        }

        /// The mnemonic of one member share: header, padded value and checksum, words joined by single spaces.
        static func mnemonic(
            parameters: Parameters,
            groupIndex: Int,
            memberIndex: Int,
            memberThreshold: Int,
            value: [UInt8]
        ) -> String {
            let head = parameters.identifier << 5 | (parameters.extendable ? 1 << 4 : 0) | parameters.iterationExponent
            let fields =
                groupIndex << 16 | (parameters.groupThreshold - 1) << 12 | (parameters.groupCount - 1) << 8
                | memberIndex << 4 | (memberThreshold - 1)
            var values = [UInt16(head >> 10), UInt16(head & 0x3FF), UInt16(fields >> 10), UInt16(fields & 0x3FF)]
            var packed = pack(value)
            values += packed
            wipe(&packed)
            values += RS1024.checksum(values, extendable: parameters.extendable)
            defer { wipe(&values) }
            return values.map { wordlist[Int($0)] }.joined(separator: " ")
        }
    }

    /// The RS1024 checksum of SLIP-0039: a Reed-Solomon code over GF(1024) with three check words.
    enum RS1024 {
        /// The number of checksum words at the end of a mnemonic.
        static let checksumWordCount = 3

        /// The generator constants of the standard's `rs1024_polymod`.
        private static let generator: [UInt32] = [
            0xE0_E040, 0x1C1_C080, 0x383_8100, 0x707_0200, 0xE0E_0009,
            0x1C0C_2412, 0x3808_6C24, 0x3090_FC48, 0x21B1_F890, 0x3F3_F120,
        ]

        /// The customization string: "shamir", or "shamir_extendable" when `ext` = 1.
        private static func customization(extendable: Bool) -> [UInt8] {
            Array((extendable ? "shamir_extendable" : "shamir").utf8)
        }

        /// The polynomial remainder over the customization string's bytes, then `values`, then `trailingZeros` zeros.
        private static func polymod(_ values: [UInt16], extendable: Bool, trailingZeros: Int = 0) -> UInt32 {
            var checksum: UInt32 = 1
            func absorb(_ value: UInt32) {
                let top = checksum >> 20
                checksum = (checksum & 0xF_FFFF) << 10 ^ value
                // Masks instead of branches: the word values are secret.
                for bit in 0..<10 { checksum ^= generator[bit] & (0 &- (top >> UInt32(bit) & 1)) }
            }
            for byte in customization(extendable: extendable) { absorb(UInt32(byte)) }
            for value in values { absorb(UInt32(value)) }
            for _ in 0..<trailingZeros { absorb(0) }
            return checksum
        }

        /// Whether `values` (the whole mnemonic, checksum included) pass the checksum.
        static func isValid(_ values: [UInt16], extendable: Bool) -> Bool {
            polymod(values, extendable: extendable) == 1
        }

        /// The three checksum words for the data words `values`.
        static func checksum(_ values: [UInt16], extendable: Bool) -> [UInt16] {
            let remainder = polymod(values, extendable: extendable, trailingZeros: checksumWordCount) ^ 1
            return [20, 10, 0].map { UInt16(truncatingIfNeeded: remainder >> UInt32($0)) & 0x3FF }
        }
    }
}
