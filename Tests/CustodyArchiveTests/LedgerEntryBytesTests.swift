import CustodyCrypto
import CustodyStorage
import Foundation
import Testing

@testable import CustodyArchive

/// The exact bytes of journal entries (Docs/LEDGER.md section 4), which every signature, hash and checkpoint of a
/// log covers: pinned as known answers, and the hand-written event body held to `JSONEncoder`'s output.
@Suite struct LedgerEntryBytesTests {
    /// The archive's key: Ed25519 from the seed 0x00…0x1f.
    let archiveKey: SigningKey
    /// The member's key: Ed25519 from the seed 0x20…0x3f.
    let memberKey: SigningKey

    init() throws {
        archiveKey = try SigningKey(seed: SecretBytes(copying: Array(UInt8(0)..<32)))
        memberKey = try SigningKey(seed: SecretBytes(copying: Array(UInt8(32)..<64)))
    }

    static func name(_ pair: String) throws -> ObjectName {
        try #require(ObjectName(hex: String(repeating: pair, count: 32)))
    }

    /// An ingest event by a member, with inline chunks, wrapped keys and a commitment.
    static func ingest() throws -> Event {
        var event = Event(
            type: .ingest,
            time: "2026-12-01T10:00:00Z",
            actor: "custody/0123456789abcdef",
            item: ItemID(hex: "00112233445566778899aabbccddeeff")
        )
        event.objects = IngestObjects(
            meta: ObjectRef(name: try name("d3"), size: 123),
            content: ObjectRef(name: try name("b2"), size: 4567),
            chunks: [ObjectRef(name: try name("a1"), size: 1000)]
        )
        event.keys = WrappedKeys(meta: "bWV0YQ==", content: "Y29u+dGVudA/=")
        event.commitment = String(repeating: "c1", count: 32)
        event.by = MemberID(hex: "0123456789abcdef")
        return event
    }

    // The known answers: bodies written by hand from Docs/LEDGER.md, signatures computed independently with
    // PyNaCl (libsodium's crypto_sign_detached) from the two seeds above.
    static let ingestBody =
        #"{"actor":"custody/0123456789abcdef","by":"0123456789abcdef","#
        + #""commitment":"c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1","#
        + #""item":"00112233445566778899aabbccddeeff","keys":{"content":"Y29u+dGVudA/=","meta":"bWV0YQ=="},"#
        + #""objects":{"chunks":[{"name":"#
        + #""a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1","size":1000}],"#
        + #""content":{"name":"b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2","size":4567},"#
        + #""meta":{"name":"d3d3d3d3d3d3d3d3d3d3d3d3d3d3d3d3d3d3d3d3d3d3d3d3d3d3d3d3d3d3d3d3","size":123}},"#
        + #""time":"2026-12-01T10:00:00Z","type":"ingest","v":1}"#
    static let ingestSignature =
        "x+4oTI1uQ3z9hlsnxac6/+nPqLOxnW77j+E3GOtx9zaO3nntrLJ+t8/W8wokVLc3xIyA8z+clKIpeEh9FQVBDw=="
    static let ingestMemberSignature =
        "zEcNoPQbd0v6xrUHQQvezETvNFwziFWHA0Pb3LUB5QWMcaWlNlpCYEYw5XCf0dYbTeglmmFFkafnnOb3RB3kCQ=="
    /// An actor with a quote, a backslash, a slash, controls and non-ASCII text: how each is written.
    static let extractBody =
        #"{"actor":"Comisión \"K\" \\ a/b \n\t\u0001\u001f € 😀","#
        + #""item":"ffeeddccbbaa99887766554433221100","time":"2026-12-01T10:00:01Z","type":"extract","v":1}"#
    static let extractSignature =
        "yA8oDmOtyWGnCuaorlOPfHgxLtyukjs5gsHDpgt6bJZd8ybxCan/p55rvjnwQizuaEeql22TJFsW/PrOFCtSCg=="

    @Test func theKeysAreTheKnownOnes() {
        let archive = "03a107bff3ce10be1d70dd18e74bc09967e4d6309ba50d5f1ddc8664125531b8"
        let member = "29acbae141bccaf0b22e1a94d34d0bc7361e526d0bfe12c89794bc9322966dd7"
        #expect(Encoding.hex(archiveKey.publicKey) == archive)
        #expect(Encoding.hex(memberKey.publicKey) == member)
    }

    @Test func aMemberSignedEntryIsTheKnownAnswer() async throws {
        let entry = try Self.ingest().entryBytes(signedBy: archiveKey, member: memberKey)
        let expected = Self.ingestBody + "\n" + Self.ingestSignature + "\n" + Self.ingestMemberSignature
        #expect(String(decoding: entry, as: UTF8.self) == expected)
        #expect(entry == Array(expected.utf8))
        // And it is what the parallel signer writes for a batch of it.
        let batch = try await Event.entries(
            of: Array(repeating: try Self.ingest(), count: 40),
            signedBy: archiveKey,
            member: memberKey
        )
        #expect(batch.allSatisfy { $0 == entry })
    }

    @Test func anArchiveSignedEntryIsTheKnownAnswer() throws {
        let event = Event(
            type: .extract,
            time: "2026-12-01T10:00:01Z",
            actor: "Comisión \"K\" \\ a/b \n\t\u{01}\u{1F} € 😀",
            item: ItemID(hex: "ffeeddccbbaa99887766554433221100")
        )
        let entry = try event.entryBytes(signedBy: archiveKey)
        #expect(entry == Array((Self.extractBody + "\n" + Self.extractSignature).utf8))
        let parsed = try Event.parse(entry, publicKey: archiveKey.publicKey)
        #expect(parsed.actor == event.actor)
    }

    @Test func everyASCIICharacterIsWrittenAsJSONEncoderWritesIt() throws {
        var text = ""
        for value in UInt8(0)...0x7F { text.unicodeScalars.append(Unicode.Scalar(value)) }
        text += "é€\u{80}\u{9F}\u{A0}\u{2028}\u{2029}\u{FEFF}\u{FFFD}😀👩🏽‍⚖️"
        var event = Event(type: Event.Kind(rawValue: text), time: text, actor: text, item: nil)
        event.requester = text
        #expect(try event.body() == Array(JSONFormat.compactEncoder().encode(event)))
    }

    @Test func anEventWithEveryFieldIsWrittenAsJSONEncoderWritesIt() throws {
        var random = SplitMix64(seed: 14)
        var event = try Self.randomEvent(&random, every: true)
        event.subject = nil
        let expected = Array(try JSONFormat.compactEncoder().encode(event))
        // Every field but `subject` (written by JSONEncoder itself) is set: a field added to Event must be added to
        // `randomEvent` and to `Event.body()`, or this fails.
        let object = try #require(try JSONSerialization.jsonObject(with: Data(expected)) as? [String: Any])
        let keys = Set(Event.CodingKeys.allCases.map(\.stringValue)).subtracting(["subject"])
        #expect(Set(object.keys) == keys)
        #expect(try event.body() == expected)
    }

    @Test func bodiesOfRandomEventsAreWhatJSONEncoderWrites() throws {
        var random = SplitMix64(seed: 13)
        for round in 0..<3000 {
            let event = try Self.randomEvent(&random)
            let expected = Array(try JSONFormat.compactEncoder().encode(event))
            let body = try event.body()
            #expect(body == expected, "event \(round): \(String(decoding: expected, as: UTF8.self))")
            if body != expected { return }
        }
    }

    /// An event with each field present or not at random, strings drawn from an alphabet of what JSON escapes.
    static func randomEvent(_ random: inout SplitMix64, every: Bool = false) throws -> Event {
        func maybe<T>(_ make: () throws -> T) rethrows -> T? { every || random.next() % 2 == 0 ? try make() : nil }
        func text() -> String {
            let alphabet: [Unicode.Scalar] =
                (0..<0x20).map { Unicode.Scalar(UInt8($0)) }
                + Array("\"\\/ azAZ09+=-_.:~{}[],\u{7F}é€\u{2028}\u{FEFF}😀".unicodeScalars)
            var out = String.UnicodeScalarView()
            for _ in 0..<(random.next() % 12) { out.append(alphabet[Int(random.next() % UInt64(alphabet.count))]) }
            return String(out)
        }
        func hex(_ count: Int) -> String {
            String((0..<count).map { _ in Array("0123456789abcdef")[Int(random.next() % 16)] })
        }
        func integer() -> Int64 {
            switch random.next() % 4 {
            case 0: 0
            case 1: Int64(random.next() % 100_000)
            case 2: -Int64(random.next() % 1000)
            default: Int64(bitPattern: random.next())
            }
        }
        func ref() throws -> ObjectRef { ObjectRef(name: try #require(ObjectName(hex: hex(64))), size: integer()) }
        func refs() throws -> [ObjectRef] { try (0..<(random.next() % 4)).map { _ in try ref() } }

        var event = Event(
            type: Event.Kind(rawValue: random.next() % 3 == 0 ? text() : "ingest"),
            time: text(),
            actor: text(),
            item: try maybe { try #require(ItemID(hex: hex(32))) }
        )
        event.version = Int(integer() % 1000)
        event.objects = try maybe {
            IngestObjects(
                meta: try ref(),
                content: try maybe(ref),
                chunks: try maybe(refs),
                chunkList: try maybe(ref)
            )
        }
        event.keys = maybe { WrappedKeys(meta: text(), content: maybe(text)) }
        event.commitment = maybe(text)
        event.annotation = try maybe(ref)
        event.grant = maybe { GrantReference(id: text(), hash: text()) }
        event.sealed = try maybe(ref)
        event.requester = maybe(text)
        event.served = maybe(text)
        event.notice = try maybe(ref)
        event.by = try maybe { try #require(MemberID(hex: hex(16))) }
        event.roster = maybe { Int(integer()) }
        event.threshold = maybe { Int(integer()) }
        event.approvals = try maybe {
            try (0..<(random.next() % 3)).map { _ in
                Event.Approval(by: try #require(MemberID(hex: hex(16))), signature: text())
            }
        }
        event.recoveryKey = maybe(text)
        event.recoverySignature = maybe(text)
        event.boxKey = maybe(text)
        event.previousBoxKey = maybe(text)
        return event
    }
}

/// A small seeded generator (SplitMix64), so a failing random case can be found again.
struct SplitMix64: RandomNumberGenerator {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}
