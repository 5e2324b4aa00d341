import Foundation
import Testing

@testable import CustodyCrypto

/// A master secret in guarded memory from hex (test data only).
private func secret(hex: String) throws -> SecretBytes {
    try SecretBytes(copying: try #require(Encoding.bytes(hex: hex)))
}

/// A master secret of `count` random bytes.
private func randomSecret(_ count: Int) throws -> SecretBytes { try SecretBytes(randomCount: count) }

/// Every `size`-element subset of `items`, in order.
func subsets<T>(of items: [T], size: Int) -> [[T]] {
    guard size > 0 else { return [[]] }
    guard items.count >= size else { return [] }
    let rest = Array(items.dropFirst())
    return subsets(of: rest, size: size - 1).map { [items[0]] + $0 } + subsets(of: rest, size: size)
}

/// Whether `text` repeats two consecutive words of `mnemonic` (single words may be ordinary English).
func echoes(_ text: String, _ mnemonic: String) -> Bool {
    let words = mnemonic.lowercased().split(whereSeparator: \.isWhitespace)
    let lowered = text.lowercased()
    return zip(words, words.dropFirst()).contains { lowered.contains("\($0) \($1)") }
}

/// The published SLIP-0039 test vectors (Vectors/slip39-vectors.json, copied unchanged from
/// trezor/python-shamir-mnemonic `vectors.json`): every valid set gives its master secret with passphrase "TREZOR",
/// every invalid set is refused for the reason its description names.
@Suite struct SLIP39VectorTests {
    struct Vector: Decodable, Sendable, CustomTestStringConvertible {
        var description: String
        var mnemonics: [String]
        var masterSecret: String
        var number: Int { Int(description.prefix { $0 != "." }) ?? 0 }
        var testDescription: String { description }

        init(from decoder: any Decoder) throws {
            var fields = try decoder.unkeyedContainer()
            description = try fields.decode(String.self)
            mnemonics = try fields.decode([String].self)
            masterSecret = try fields.decode(String.self)
            _ = try fields.decode(String.self)  // the BIP-32 xprv: outside this module's scope
        }
    }

    static let vectors: [Vector] = {
        let path = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent(
            "Vectors/slip39-vectors.json"
        )
        guard let data = try? Data(contentsOf: path) else { return [] }
        return (try? JSONDecoder().decode([Vector].self, from: data)) ?? []
    }()

    /// The reason each invalid vector must be refused for, by vector number.
    static let expectedErrors: [Int: SLIP39.Error] = {
        var errors: [Int: SLIP39.Error] = [
            39: .wrongWordCount(share: 1, count: 19),
            40: .wrongWordCount(share: 1, count: 21),
        ]
        // Vectors 2 to 16 (128-bit) and 21 to 35 (256-bit) test the same defects in the same order.
        let perDefect: [SLIP39.Error] = [
            .invalidChecksum(share: 1),
            .invalidPadding(share: 1),
            .tooFewShares(groupIndex: 0, have: 1, need: 2),  // 4/23 are valid; 5/24 hold one share of 2-of-3
            .tooFewShares(groupIndex: 0, have: 1, need: 2),
            .mismatchedShares(.identifier),
            .mismatchedShares(.iterationExponent),
            .mismatchedShares(.groupThreshold),
            .mismatchedShares(.groupCount),
            .groupThresholdExceedsGroupCount(share: 1),
            .conflictingShares(groupIndex: 0, memberIndex: 2),
            .mismatchedMemberThresholds(groupIndex: 0),
            .digestMismatch(groupIndex: 0),
            .tooFewGroups(have: 1, need: 2),
            .tooFewGroups(have: 1, need: 2),
            .tooFewShares(groupIndex: 3, have: 1, need: 2),
        ]
        for (offset, error) in perDefect.enumerated() where offset != 2 {
            errors[2 + offset] = error
            errors[21 + offset] = error
        }
        return errors
    }()

    @Test func allVectorsAreLoaded() {
        #expect(Self.vectors.count == 45)
        #expect(Self.vectors.filter { !$0.masterSecret.isEmpty }.count == 15)
    }

    @Test(arguments: vectors)
    func vector(_ vector: Vector) throws {
        let passphrase = Array("TREZOR".utf8)
        if vector.masterSecret.isEmpty {
            let error = #expect(throws: SLIP39.Error.self) {
                try SLIP39.combine(vector.mnemonics, passphrase: passphrase)
            }
            let expected = try #require(Self.expectedErrors[vector.number], "no expected reason for this vector")
            #expect(error == expected)
            let text = error.map(String.init(describing:)) ?? ""
            #expect(vector.mnemonics.allSatisfy { !echoes(text, $0) })
        } else {
            let recovered = try SLIP39.combine(vector.mnemonics, passphrase: passphrase)
            #expect(recovered == (try secret(hex: vector.masterSecret)))
        }
    }

    @Test func everyValidVectorShareParses() throws {
        for vector in Self.vectors where !vector.masterSecret.isEmpty {
            for mnemonic in vector.mnemonics {
                let share = try SLIP39.Share(mnemonic: mnemonic)
                #expect(share.secretByteCount * 2 == vector.masterSecret.count)
                #expect(share.groupThreshold <= share.groupCount)
                #expect(share.groupIndex < share.groupCount)
            }
        }
    }

    @Test func validVectorsFailWithAnotherPassphraseOnlyInTheSecret() throws {
        // No error: a wrong passphrase gives another secret (the standard's plausible deniability).
        let vector = try #require(Self.vectors.first { $0.number == 4 })
        let wrong = try SLIP39.combine(vector.mnemonics, passphrase: Array("trezor".utf8))
        #expect(wrong != (try secret(hex: vector.masterSecret)))
    }
}

@Suite struct SLIP39RoundTripTests {
    @Test("1-of-1 round trips", arguments: [16, 32, 64])
    func singleShare(byteCount: Int) throws {
        let master = try randomSecret(byteCount)
        let groups = try SLIP39.split(
            masterSecret: master,
            groupThreshold: 1,
            groups: [SLIP39.Group(memberThreshold: 1, memberCount: 1)]
        )
        #expect(groups.count == 1)
        #expect(groups[0].count == 1)
        let words = groups[0][0].split(separator: " ")
        #expect(words.count == [16: 20, 32: 33, 64: 59][byteCount])
        #expect(try SLIP39.combine(groups[0]) == master)
    }

    @Test("Any threshold subset recovers; fewer or more are refused", arguments: [(2, 3), (3, 5)])
    func singleGroup(threshold: Int, count: Int) throws {
        let master = try randomSecret(32)
        let groups = try SLIP39.split(
            masterSecret: master,
            groupThreshold: 1,
            groups: [SLIP39.Group(memberThreshold: threshold, memberCount: count)]
        )
        let shares = try #require(groups.first)
        #expect(shares.count == count)
        #expect(Set(shares).count == count)
        for subset in subsets(of: shares, size: threshold) {
            #expect(try SLIP39.combine(subset.shuffled()) == master)
        }
        for subset in subsets(of: shares, size: threshold - 1) {
            let error = #expect(throws: SLIP39.Error.self) { try SLIP39.combine(subset) }
            #expect(error == .tooFewShares(groupIndex: 0, have: threshold - 1, need: threshold))
        }
        let error = #expect(throws: SLIP39.Error.self) { try SLIP39.combine(Array(shares.prefix(threshold + 1))) }
        #expect(error == .tooManyShares(groupIndex: 0, have: threshold + 1, need: threshold))
    }

    @Test func twoGroups() throws {
        let master = try randomSecret(64)
        let groups = try SLIP39.split(
            masterSecret: master,
            groupThreshold: 2,
            groups: [
                SLIP39.Group(memberThreshold: 2, memberCount: 3), SLIP39.Group(memberThreshold: 1, memberCount: 1),
            ]
        )
        #expect(groups.map(\.count) == [3, 1])
        for pair in subsets(of: groups[0], size: 2) {
            #expect(try SLIP39.combine(pair + groups[1]) == master)
            #expect(try SLIP39.combine(groups[1] + pair.reversed()) == master)
        }
        let onlyFirst = #expect(throws: SLIP39.Error.self) { try SLIP39.combine(Array(groups[0].prefix(2))) }
        #expect(onlyFirst == .tooFewGroups(have: 1, need: 2))
        let short = #expect(throws: SLIP39.Error.self) { try SLIP39.combine([groups[0][0]] + groups[1]) }
        #expect(short == .tooFewShares(groupIndex: 0, have: 1, need: 2))
    }

    @Test func groupThresholdOneOfTwoGroups() throws {
        let master = try randomSecret(16)
        let groups = try SLIP39.split(
            masterSecret: master,
            groupThreshold: 1,
            groups: [
                SLIP39.Group(memberThreshold: 2, memberCount: 2), SLIP39.Group(memberThreshold: 1, memberCount: 1),
            ]
        )
        #expect(try SLIP39.combine(groups[0]) == master)
        #expect(try SLIP39.combine(groups[1]) == master)
        let both = #expect(throws: SLIP39.Error.self) { try SLIP39.combine(groups[0] + groups[1]) }
        #expect(both == .tooManyGroups(have: 2, need: 1))
    }

    @Test("Passphrase, exponent and the extendable flag", arguments: [(true, 0), (false, 0), (false, 2)])
    func options(extendable: Bool, exponent: Int) throws {
        let master = try randomSecret(32)
        let passphrase = Array("correct horse battery staple ~!".utf8)
        let shares = try SLIP39.split(
            masterSecret: master,
            groupThreshold: 1,
            groups: [SLIP39.Group(memberThreshold: 2, memberCount: 2)],
            passphrase: passphrase,
            iterationExponent: exponent,
            extendable: extendable
        )[0]
        let share = try SLIP39.Share(mnemonic: shares[0])
        #expect(share.extendable == extendable)
        #expect(share.iterationExponent == exponent)
        #expect(try SLIP39.combine(shares, passphrase: passphrase) == master)
        #expect(try SLIP39.combine(shares) != master)
    }

    @Test func extendableSplitsOfOneSecretShareTheirEncryption() throws {
        // With ext = 1 the identifier is not in the salt: two 1-of-1 splits hold the same encrypted secret.
        let master = try randomSecret(16)
        let group = [SLIP39.Group(memberThreshold: 1, memberCount: 1)]
        let first = try SLIP39.Share(
            mnemonic: try SLIP39.split(masterSecret: master, groupThreshold: 1, groups: group)[0][0]
        )
        let second = try SLIP39.Share(
            mnemonic: try SLIP39.split(masterSecret: master, groupThreshold: 1, groups: group)[0][0]
        )
        #expect(first.value == second.value)
    }

    @Test func sharesDescribeThemselves() throws {
        let master = try randomSecret(32)
        let groups = try SLIP39.split(
            masterSecret: master,
            groupThreshold: 2,
            groups: [
                SLIP39.Group(memberThreshold: 2, memberCount: 3),
                SLIP39.Group(memberThreshold: 1, memberCount: 1),
                SLIP39.Group(memberThreshold: 3, memberCount: 5),
            ],
            iterationExponent: 0
        )
        let parsed = try groups.map { try $0.map { try SLIP39.Share(mnemonic: $0) } }
        let identifier = parsed[0][0].identifier
        #expect(identifier >= 0 && identifier < 1 << 15)
        for (groupIndex, members) in parsed.enumerated() {
            for (memberIndex, share) in members.enumerated() {
                #expect(share.identifier == identifier)
                #expect(share.extendable)
                #expect(share.iterationExponent == 0)
                #expect(share.groupIndex == groupIndex)
                #expect(share.groupThreshold == 2)
                #expect(share.groupCount == 3)
                #expect(share.memberIndex == memberIndex)
                #expect(share.memberThreshold == [2, 1, 3][groupIndex])
                #expect(share.secretByteCount == 32)
            }
        }
    }
}

@Suite struct SLIP39RefusalTests {
    let master: SecretBytes
    let shares: [String]

    init() throws {
        master = try SecretBytes(randomCount: 16)
        shares = try SLIP39.split(
            masterSecret: master,
            groupThreshold: 1,
            groups: [SLIP39.Group(memberThreshold: 2, memberCount: 3)],
            iterationExponent: 0
        )[0]
    }

    @Test func duplicatedShare() {
        let error = #expect(throws: SLIP39.Error.self) { try SLIP39.combine([shares[1], shares[1]]) }
        #expect(error == .duplicateShare(groupIndex: 0, memberIndex: 1))
        let reformatted = shares[1].uppercased().replacingOccurrences(of: " ", with: "\n\t ")
        let again = #expect(throws: SLIP39.Error.self) { try SLIP39.combine([shares[1], reformatted]) }
        #expect(again == .duplicateShare(groupIndex: 0, memberIndex: 1))
    }

    @Test func shareOfAnotherSplit() throws {
        var other: [String]
        repeat {
            other = try SLIP39.split(
                masterSecret: master,
                groupThreshold: 1,
                groups: [SLIP39.Group(memberThreshold: 2, memberCount: 3)],
                iterationExponent: 0
            )[0]
        } while try SLIP39.Share(mnemonic: other[0]).identifier == SLIP39.Share(mnemonic: shares[0]).identifier
        let error = #expect(throws: SLIP39.Error.self) { try SLIP39.combine([shares[0], other[1]]) }
        #expect(error == .mismatchedShares(.identifier))
    }

    @Test func shareOfAnotherSplitWithTheSameIdentifierFailsTheDigest() throws {
        // A forged share: the right header, a well-formed checksum, but another split's value.
        let genuine = try SLIP39.Share(mnemonic: shares[0])
        let forged = SLIP39.Share.mnemonic(
            parameters: genuine.parameters,
            groupIndex: 0,
            memberIndex: 1,
            memberThreshold: 2,
            value: randomBytes(16)
        )
        let error = #expect(throws: SLIP39.Error.self) { try SLIP39.combine([shares[0], forged]) }
        #expect(error == .digestMismatch(groupIndex: 0))
        let conflict = #expect(throws: SLIP39.Error.self) { try SLIP39.combine([shares[1], forged]) }
        #expect(conflict == .conflictingShares(groupIndex: 0, memberIndex: 1))
    }

    @Test("A changed word is caught by the checksum", arguments: [0, 3, 9, 19])
    func tamperedWord(at position: Int) {
        var words = shares[0].split(separator: " ").map(String.init)
        let value = SLIP39.wordIndex[words[position]] ?? 0
        words[position] = SLIP39.wordlist[Int(value ^ 1)]
        let error = #expect(throws: SLIP39.Error.self) {
            try SLIP39.combine([words.joined(separator: " "), shares[1]])
        }
        #expect(error == .invalidChecksum(share: 1))
        let parsed = #expect(throws: SLIP39.Error.self) { try SLIP39.Share(mnemonic: words.joined(separator: " ")) }
        #expect(parsed == .invalidChecksum(share: nil))
    }

    @Test func swappedWordsAreCaught() {
        var words = shares[0].split(separator: " ").map(String.init)
        words.swapAt(5, 6)
        if words[5] != words[6] {
            let error = #expect(throws: SLIP39.Error.self) { try SLIP39.Share(mnemonic: words.joined(separator: " ")) }
            #expect(error == .invalidChecksum(share: nil))
        }
    }

    @Test("Unknown words are named by position only", arguments: ["zzzz", "acade", "académic", "acid1", "ACADEMICS"])
    func unknownWord(_ word: String) {
        var words = shares[0].split(separator: " ").map(String.init)
        words[6] = word
        let mnemonic = words.joined(separator: " ")
        let error = #expect(throws: SLIP39.Error.self) { try SLIP39.combine([shares[1], mnemonic]) }
        #expect(error == .unknownWord(share: 2, position: 7))
        // The description never repeats the unknown word or any part of the (secret) mnemonic.
        let text = error.map(String.init(describing:)) ?? ""
        #expect(!text.lowercased().contains(word.lowercased()))
        #expect(!echoes(text, mnemonic))
    }

    @Test func caseAndWhitespaceAreTolerated() throws {
        let loud = "  " + shares[0].uppercased().replacingOccurrences(of: " ", with: " \t\r\n  ") + "\n"
        let mixed = shares[2].split(separator: " ").enumerated().map { $0 % 2 == 0 ? $1.capitalized : String($1) }
        #expect(try SLIP39.combine([loud, mixed.joined(separator: "   ")]) == master)
    }

    @Test func unicodeWhitespaceIsNotASeparator() {
        let mnemonic = shares[0].replacingOccurrences(of: " ", with: "\u{00A0}")
        let error = #expect(throws: SLIP39.Error.self) { try SLIP39.Share(mnemonic: mnemonic) }
        #expect(error == .wrongWordCount(share: nil, count: 1))
    }

    @Test("Word counts no share has", arguments: [0, 1, 19, 21, 34, 60, 1000])
    func wrongWordCount(_ count: Int) {
        let mnemonic = Array(repeating: "academic", count: count).joined(separator: " ")
        let error = #expect(throws: SLIP39.Error.self) { try SLIP39.Share(mnemonic: mnemonic) }
        #expect(
            error
                == (count * 9 > SLIP39.maximumMnemonicByteCount
                    ? .mnemonicTooLong(share: nil) : .wrongWordCount(share: nil, count: count))
        )
    }

    @Test func oversizedInputIsRefusedBeforeParsing() {
        let huge = String(repeating: " ", count: SLIP39.maximumMnemonicByteCount + 1)
        #expect(throws: SLIP39.Error.mnemonicTooLong(share: nil)) { try SLIP39.Share(mnemonic: huge) }
        let many = Array(repeating: shares[0], count: SLIP39.maximumMnemonicCount + 1)
        #expect(throws: SLIP39.Error.tooManyMnemonics(count: 257)) { try SLIP39.combine(many) }
        #expect(throws: SLIP39.Error.noShares) { try SLIP39.combine([String]()) }
    }

    @Test func nonzeroPaddingIsRefused() throws {
        // Set the top (padding) bit of the first value word and recompute the checksum.
        var values = try SLIP39.Share.wordValues(of: shares[0])
        values.removeLast(3)
        values[4] |= 0x200
        values += SLIP39.RS1024.checksum(values, extendable: true)
        let mnemonic = values.map { SLIP39.wordlist[Int($0)] }.joined(separator: " ")
        #expect(throws: SLIP39.Error.invalidPadding(share: nil)) { try SLIP39.Share(mnemonic: mnemonic) }
    }

    @Test func inconsistentHeadersAreRefused() throws {
        let genuine = try SLIP39.Share(mnemonic: shares[0])
        var parameters = genuine.parameters
        parameters.groupCount = 2
        let outOfRange = SLIP39.Share.mnemonic(
            parameters: parameters,
            groupIndex: 5,
            memberIndex: 0,
            memberThreshold: 2,
            value: randomBytes(16)
        )
        #expect(throws: SLIP39.Error.groupIndexOutOfRange(share: nil)) { try SLIP39.Share(mnemonic: outOfRange) }
        parameters.groupThreshold = 3
        let overThreshold = SLIP39.Share.mnemonic(
            parameters: parameters,
            groupIndex: 0,
            memberIndex: 0,
            memberThreshold: 2,
            value: randomBytes(16)
        )
        #expect(throws: SLIP39.Error.groupThresholdExceedsGroupCount(share: nil)) {
            try SLIP39.Share(mnemonic: overThreshold)
        }
    }

    @Test func passphraseMustBePrintableASCII() {
        for passphrase in [[0x0A], [0x7F], Array("café".utf8), Array(repeating: 0x41, count: 1025)] as [[UInt8]] {
            #expect(throws: SLIP39.Error.invalidPassphrase) { try SLIP39.combine(shares, passphrase: passphrase) }
            #expect(throws: SLIP39.Error.invalidPassphrase) {
                try SLIP39.split(
                    masterSecret: master,
                    groupThreshold: 1,
                    groups: [SLIP39.Group(memberThreshold: 1, memberCount: 1)],
                    passphrase: passphrase
                )
            }
        }
    }

    @Test func invalidSplitParameters() throws {
        func refusal(
            bytes secretCount: Int = 16,
            threshold: Int = 1,
            groups: [(Int, Int)] = [(2, 3)],
            exponent: Int = 0
        ) throws -> SLIP39.Error? {
            let master = try SecretBytes(randomCount: secretCount)
            let groups = groups.map { SLIP39.Group(memberThreshold: $0.0, memberCount: $0.1) }
            return #expect(throws: SLIP39.Error.self) {
                try SLIP39.split(master: master, threshold: threshold, groups: groups, exponent: exponent)
            }
        }
        #expect(try refusal(bytes: 15) == .invalidSecretLength(byteCount: 15))
        #expect(try refusal(bytes: 17) == .invalidSecretLength(byteCount: 17))
        #expect(try refusal(bytes: 66) == .invalidSecretLength(byteCount: 66))
        #expect(try refusal(threshold: 0) == .invalidGroupThreshold(0, groupCount: 1))
        #expect(try refusal(threshold: 2) == .invalidGroupThreshold(2, groupCount: 1))
        #expect(try refusal(groups: []) == .invalidGroupCount(0))
        #expect(try refusal(groups: Array(repeating: (1, 1), count: 17)) == .invalidGroupCount(17))
        #expect(try refusal(groups: [(2, 3), (1, 0)]) == .invalidMemberCount(groupIndex: 1, count: 0))
        #expect(try refusal(groups: [(2, 17)]) == .invalidMemberCount(groupIndex: 0, count: 17))
        #expect(try refusal(groups: [(4, 3)]) == .invalidMemberThreshold(groupIndex: 0, threshold: 4, count: 3))
        #expect(try refusal(groups: [(0, 3)]) == .invalidMemberThreshold(groupIndex: 0, threshold: 0, count: 3))
        #expect(try refusal(groups: [(1, 2)]) == .singleThresholdWithSeveralMembers(groupIndex: 0, count: 2))
        #expect(try refusal(exponent: 16) == .invalidIterationExponent(16))
        #expect(try refusal(exponent: -1) == .invalidIterationExponent(-1))
    }

    @Test func sixteenOfSixteenIsTheLargestGroup() throws {
        let groups = try SLIP39.split(
            masterSecret: master,
            groupThreshold: 1,
            groups: [SLIP39.Group(memberThreshold: 16, memberCount: 16)],
            iterationExponent: 0
        )
        #expect(try SLIP39.combine(groups[0].shuffled()) == master)
    }
}

@Suite struct SLIP39PrimitiveTests {
    @Test func wordlistIsTheOfficialOne() {
        let words = SLIP39.wordlist
        #expect(words.count == 1024)
        #expect(words == words.sorted())
        #expect(Set(words.map { $0.prefix(4) }).count == 1024)
        #expect(words.allSatisfy { (4...8).contains($0.count) && $0.allSatisfy { ("a"..."z").contains($0) } })
        #expect(SLIP39.wordIndex.count == 1024)
        #expect(SLIP39.wordIndex["academic"] == 0)
        #expect(SLIP39.wordIndex["zero"] == 1023)
        // SHA-256 of slip-0039/wordlist.txt (one word per line), as published.
        let file = Array((words.joined(separator: "\n") + "\n").utf8)
        #expect(
            Encoding.hex(SHA256Hasher.hash(file)) == "bcc4555340332d169718aed8bf31dd9d5248cb7da6e5d355140ef4f1e601eec3"
        )
    }

    @Test func pbkdf2MatchesRFC7914() {
        // RFC 7914 section 11, PBKDF2-HMAC-SHA256 (64 bytes: two blocks).
        let one = SLIP39.PBKDF2.deriveSHA256(
            password: Array("passwd".utf8),
            salt: Array("salt".utf8),
            iterations: 1,
            byteCount: 64
        )
        #expect(
            Encoding.hex(one)
                == "55ac046e56e3089fec1691c22544b605f94185216dde0465e68b9d57c20dacbc"
                + "49ca9cccf179b645991664b39d77ef317c71b845b1e30bd509112041d3a19783"
        )
        let many = SLIP39.PBKDF2.deriveSHA256(
            password: Array("Password".utf8),
            salt: Array("NaCl".utf8),
            iterations: 80000,
            byteCount: 64
        )
        #expect(
            Encoding.hex(many)
                == "4ddcd8f60b98be21830cee5ef22701f9641a4418d04c0414aeff08876b34ab56"
                + "a1d425a1225833549adb841b51c9b3176a272bdebba1d078478f62b397f33c8d"
        )
    }

    @Test func galoisFieldArithmetic() {
        #expect(SLIP39.GF256.multiply(0x57, 0x83) == 0xC1)  // FIPS-197 section 4.2
        #expect(SLIP39.GF256.multiply(0x57, 0x13) == 0xFE)
        for a in 1...255 {
            #expect(SLIP39.GF256.multiply(UInt8(a), SLIP39.GF256.inverse(UInt8(a))) == 1)
        }
    }

    @Test func feistelInverts() {
        let parameters = SLIP39.Share.Parameters(
            identifier: 7,
            extendable: false,
            iterationExponent: 0,
            groupThreshold: 1,
            groupCount: 1
        )
        let plain = randomBytes(32)
        let encrypted = SLIP39.Cipher.encrypt(plain, passphrase: [0x41], parameters: parameters)
        #expect(encrypted != plain)
        #expect(SLIP39.Cipher.decrypt(encrypted, passphrase: [0x41], parameters: parameters) == plain)
    }

    @Test func packingRoundTrips() throws {
        for count in stride(from: 16, through: 64, by: 2) {
            let value = randomBytes(count)
            let words = SLIP39.Share.pack(value)
            #expect(words.count == (count * 8 + 9) / 10)
            #expect(try SLIP39.Share.unpack(words[...]) == value)
        }
    }
}

extension SLIP39 {
    /// The split with short labels, for the parameter table of the refusal tests.
    fileprivate static func split(
        master: SecretBytes,
        threshold: Int,
        groups: [Group],
        exponent: Int
    ) throws(Error) -> [[String]] {
        try split(masterSecret: master, groupThreshold: threshold, groups: groups, iterationExponent: exponent)
    }
}
