import CustodyCrypto
import CustodyTestSupport
import Foundation
import Testing

@testable import CustodyArchive

/// C2SP signed-note checkpoints and cosignatures against Vectors/signed-note.json (copied from shared/vectors).
@Suite struct SignedNoteTests {
    struct Vectors: Decodable {
        struct Log: Decodable {
            var name: String
            var seed: String
            var verifier_key: String
            var checkpoint_body: String
            var signed_note: String
        }
        struct Witness: Decodable {
            var name: String
            var seed: String
            var timestamp: UInt64
            var cosignature_line: String
        }
        var log: Log
        var witness: Witness
    }

    let vectors: Vectors

    init() throws {
        let path = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
            .appendingPathComponent("Vectors/signed-note.json")
        vectors = try JSONDecoder().decode(Vectors.self, from: Data(contentsOf: path))
    }

    private func key(_ seedHex: String) throws -> SigningKey {
        try SigningKey(seed: SecretBytes(copying: try #require(Encoding.bytes(hex: seedHex))))
    }

    @Test func checkpointBodyAndSignatureAreByteExact() throws {
        let log = try key(vectors.log.seed)
        // The checkpoint commits to the first 5 leaves of merkle.json.
        let leaves = (0..<5).map { Merkle.leafHash(Array("leaf-\($0)".utf8)) }
        let root = Merkle.subtreeHash(start: 0, count: 5) { leaves[$0] }
        let body = SignedNote.checkpointBody(origin: vectors.log.name, size: 5, root: root)
        #expect(body == vectors.log.checkpoint_body)
        #expect(SignedNote.sign(body: body, name: vectors.log.name, key: log) == vectors.log.signed_note)
        #expect(Identity.verifierKey(origin: vectors.log.name, publicKey: log.publicKey) == vectors.log.verifier_key)
        #expect(SignedNote.isSigned(vectors.log.signed_note, name: vectors.log.name, publicKey: log.publicKey))
    }

    @Test func cosignatureLineIsByteExact() throws {
        let witness = try key(vectors.witness.seed)
        let line = SignedNote.cosignatureLine(
            body: vectors.log.checkpoint_body,
            name: vectors.witness.name,
            key: witness,
            timestamp: vectors.witness.timestamp
        )
        #expect(line == vectors.witness.cosignature_line + "\n")
        let parsed = try #require(SignedNote.parse(vectors.log.checkpoint_body + "\n" + line))
        let time = SignedNote.cosignatureTime(
            parsed.signatures[0],
            body: parsed.body,
            name: vectors.witness.name,
            publicKey: witness.publicKey
        )
        #expect(time == vectors.witness.timestamp)
    }

    @Test func tamperedNotesAndForeignKeysAreRejected() throws {
        let log = try key(vectors.log.seed)
        let note = vectors.log.signed_note
        #expect(
            !SignedNote.isSigned(
                note.replacingOccurrences(of: "\n5\n", with: "\n6\n"),
                name: vectors.log.name,
                publicKey: log.publicKey
            )
        )
        #expect(!SignedNote.isSigned(note, name: "other.example/log", publicKey: log.publicKey))
        let other = try SigningKey(seed: SecretBytes(randomCount: 32))
        #expect(!SignedNote.isSigned(note, name: vectors.log.name, publicKey: other.publicKey))
        for malformed in [
            "", "no blank line\n", vectors.log.checkpoint_body + "\nnot a signature\n",
            vectors.log.checkpoint_body + "\n",
        ] {
            #expect(SignedNote.parse(malformed) == nil, "\(malformed.debugDescription)")
        }
        // A cosignature over another body, or replayed with another timestamp, fails.
        let witness = try key(vectors.witness.seed)
        let line = SignedNote.cosignatureLine(body: "other\n1\nAAAA\n", name: "w", key: witness, timestamp: 7)
        let parsed = try #require(SignedNote.parse(vectors.log.checkpoint_body + "\n" + line))
        #expect(
            SignedNote.cosignatureTime(parsed.signatures[0], body: parsed.body, name: "w", publicKey: witness.publicKey)
                == nil
        )
    }
}
