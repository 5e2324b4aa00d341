import CustodyCrypto
import Foundation
import Testing

@testable import CustodyArchive

/// The one framing of signed grants and journal entries (so of revocation notices' events): a body, a newline,
/// and the canonical base64 of a 64-byte signature — nothing else is an envelope.
@Suite struct SignedEnvelopeTests {
    let key: SigningKey
    let domain = Array("custody/test/v1\n".utf8)
    let body = Array(#"{"a":1,"b":"two"}"#.utf8)

    init() throws {
        key = try SigningKey(seed: SecretBytes(randomCount: 32))
    }

    var envelope: SignedEnvelope { SignedEnvelope.signing(body, domain: domain, with: key) }

    @Test func roundTrip() throws {
        let bytes = envelope.bytes
        #expect(bytes.count == body.count + 1 + SignedEnvelope.signatureTextByteCount)
        let parsed = try #require(SignedEnvelope.parse(bytes, maxBytes: bytes.count))
        #expect(parsed == envelope)
        #expect(parsed.body == body)
        #expect(parsed.isSigned(domain: domain, by: key.publicKey))
        let other = try SigningKey(seed: SecretBytes(randomCount: 32))
        #expect(!parsed.isSigned(domain: domain, by: other.publicKey))
        #expect(!parsed.isSigned(domain: Array("custody/grant/v1\n".utf8), by: key.publicKey))
    }

    @Test func newlineInTheSignaturePartIsRefused() {
        var bytes = envelope.bytes
        bytes.insert(0x0A, at: body.count + 1 + 40)
        #expect(SignedEnvelope.parse(bytes, maxBytes: 1 << 20) == nil)
        // A body line, then the signature split over two lines.
        var split = body + [0x0A] + Array(Encoding.base64(envelope.signature).utf8)
        split.insert(0x0A, at: split.count - 2)
        #expect(SignedEnvelope.parse(split, maxBytes: 1 << 20) == nil)
    }

    @Test func emptyOrMissingSignatureIsRefused() {
        #expect(SignedEnvelope.parse(body + [0x0A], maxBytes: 1 << 20) == nil)
        #expect(SignedEnvelope.parse(body, maxBytes: 1 << 20) == nil)
        #expect(SignedEnvelope.split(body) == nil)
        #expect(SignedEnvelope.parse([0x0A], maxBytes: 1 << 20) == nil)
        // A signature of the wrong length, even if well-formed base64.
        let short = body + [0x0A] + Array(Encoding.base64(envelope.signature.prefix(63)).utf8)
        #expect(SignedEnvelope.parse(short, maxBytes: 1 << 20) == nil)
    }

    @Test func overLongEnvelopeIsRefused() {
        let bytes = envelope.bytes
        #expect(SignedEnvelope.parse(bytes, maxBytes: bytes.count - 1) == nil)
        #expect(SignedEnvelope.parse(bytes, maxBytes: bytes.count) != nil)
    }

    @Test("Trailing bytes are refused", arguments: [[0x0A], [0x41], [0x00], Array("==".utf8), Array(" \n".utf8)])
    func trailingBytesAreRefused(_ trailer: [UInt8]) {
        #expect(SignedEnvelope.parse(envelope.bytes + trailer, maxBytes: 1 << 20) == nil)
    }

    @Test func nonCanonicalBase64IsRefused() throws {
        let bytes = envelope.bytes
        // The last digit before "==" carries 4 unused bits: setting one decodes to the same signature in a
        // lenient decoder, and would give the same signed body a second hash.
        let digits = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/".utf8)
        let position = bytes.count - 3
        let value = try #require(digits.firstIndex(of: bytes[position]))
        var forged = bytes
        forged[position] = digits[value | 1]
        #expect(SignedEnvelope.parse(forged, maxBytes: 1 << 20) == nil)
        // Without its padding.
        #expect(SignedEnvelope.parse(Array(bytes.dropLast(2)), maxBytes: 1 << 20) == nil)
    }

    @Test func aGrantWithTrailingBytesDoesNotVerify() throws {
        let signed = envelope.bytes
        // Grants judge the body first: this body is no grant, so it is malformed whatever the signature part.
        let notAGrant = "its body is not a version 1 grant (fields, types or bounds)"
        #expect(Grant.parseSignature(signed + [0x0A]) == .failure(.malformed(notAGrant)))
        #expect(Grant.parseSignature(body) == .failure(.malformed("it is not a signed body")))
    }

    @Test func aJournalEntryWithTrailingBytesDoesNotVerify() throws {
        let event = Event(type: .tag, time: "2026-01-01T00:00:00Z", actor: "test.example")
        let entry = try event.entryBytes(signedBy: key)
        #expect(try Event.parse(entry, publicKey: key.publicKey).type == .tag)
        let refused = #expect(throws: ArchiveError.self) { try Event.parse(entry + [0x0A], publicKey: key.publicKey) }
        #expect(refused?.problem == "a journal entry has an invalid signature")
        let unsigned = #expect(throws: ArchiveError.self) {
            try Event.parse(Array(entry.prefix(while: { $0 != 0x0A })), publicKey: key.publicKey)
        }
        #expect(unsigned?.problem == "a journal entry has no signature line")
    }
}
