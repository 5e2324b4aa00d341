import CustodyCrypto

/// A body and its Ed25519 signature, as journal entries (so also a revocation notice's `revoke` event) and grants
/// are framed: `body ‖ 0x0A ‖ base64(signature over domain ‖ body)` (Docs/LEDGER.md section 4, Docs/SHARING.md
/// section 2); a journal entry signed by a member too has a second signature line,
/// `‖ 0x0A ‖ base64(member signature over member domain ‖ body)`.
///
/// The body is everything before the first `0x0A` (a one-line JSON body holds none); each signature part is
/// exactly 88 bytes of standard base64, with padding, of the 64-byte signature, in its one canonical form —
/// nothing else, not even a final newline, may follow. The signed message is a fixed domain string for the kind
/// of body, then the body.
package struct SignedEnvelope: Sendable, Equatable {
    /// The length of the signature part: base64 of ``SigningKey/signatureByteCount`` bytes.
    package static let signatureTextByteCount = 88

    /// The signed bytes.
    package var body: [UInt8]
    /// The Ed25519 signature.
    package var signature: [UInt8]
    /// The second signature, by the member who acted, over a domain of its own then the body (journal entries
    /// of an archive with members only); `nil` when there is none.
    package var cosignature: [UInt8]?

    package init(body: [UInt8], signature: [UInt8], cosignature: [UInt8]? = nil) {
        self.body = body
        self.signature = signature
        self.cosignature = cosignature
    }

    /// An envelope of `body` signed by `key` over `domain ‖ body`, and by `cosigner` over `cosignerDomain ‖ body`
    /// when one is given.
    package static func signing(
        _ body: [UInt8],
        domain: [UInt8],
        with key: SigningKey,
        cosigner: (key: SigningKey, domain: [UInt8])? = nil
    ) -> SignedEnvelope {
        SignedEnvelope(
            body: body,
            signature: key.signature(for: domain + body),
            cosignature: cosigner.map { $0.key.signature(for: $0.domain + body) }
        )
    }

    /// The envelope's bytes: the body, a newline and the base64 signature (then a newline and the base64
    /// cosignature, if there is one).
    package var bytes: [UInt8] {
        let width = Self.signatureTextByteCount + 1
        var out: [UInt8] = []
        out.reserveCapacity(body.count + (cosignature == nil ? width : 2 * width))
        out += body
        out.append(0x0A)
        out += Encoding.base64(signature).utf8
        if let cosignature {
            out.append(0x0A)
            out += Encoding.base64(cosignature).utf8
        }
        return out
    }

    /// Splits `bytes` at its first newline, checking nothing else: for a reader that judges the body before the
    /// signature. `nil` when there is no newline.
    package static func split(_ bytes: [UInt8]) -> (body: ArraySlice<UInt8>, signature: ArraySlice<UInt8>)? {
        guard let newline = bytes.firstIndex(of: 0x0A) else { return nil }
        return (bytes[..<newline], bytes[(newline + 1)...])
    }

    /// Parses envelope bytes of at most `maxBytes`; `nil` unless they are a body, a newline and the canonical
    /// base64 of a 64-byte signature (and, only where `allowingCosignature`, optionally a newline and a second
    /// one), and nothing more. The signatures are not checked here (``isSigned(domain:by:)``,
    /// ``isCosigned(domain:by:)``).
    package static func parse(_ bytes: [UInt8], maxBytes: Int, allowingCosignature: Bool = false) -> SignedEnvelope? {
        guard bytes.count <= maxBytes, let (body, text) = split(bytes) else { return nil }
        if let signature = decodeSignature(text) {
            return SignedEnvelope(body: Array(body), signature: signature)
        }
        let width = signatureTextByteCount
        guard allowingCosignature, text.count == 2 * width + 1, text[text.startIndex + width] == 0x0A,
            let signature = decodeSignature(text.prefix(width)),
            let cosignature = decodeSignature(text.suffix(width))
        else { return nil }
        return SignedEnvelope(body: Array(body), signature: signature, cosignature: cosignature)
    }

    /// Whether the signature verifies over `domain ‖ body` with the Ed25519 `publicKey`.
    package func isSigned(domain: [UInt8], by publicKey: [UInt8]) -> Bool {
        SigningKey.isValidSignature(signature, for: domain + body, publicKey: publicKey)
    }

    /// Whether there is a cosignature and it verifies over `domain ‖ body` with the Ed25519 `publicKey`.
    package func isCosigned(domain: [UInt8], by publicKey: [UInt8]) -> Bool {
        guard let cosignature else { return false }
        return SigningKey.isValidSignature(cosignature, for: domain + body, publicKey: publicKey)
    }

    /// The signature whose canonical base64 is `text`: 86 base64 digits, the last with its 4 unused bits zero,
    /// then `==`.
    private static func decodeSignature(_ text: ArraySlice<UInt8>) -> [UInt8]? {
        guard text.count == signatureTextByteCount, text.suffix(2).elementsEqual("==".utf8),
            let last = text.dropLast(2).last, let value = base64Value(last), value & 0x0F == 0,
            text.dropLast(2).allSatisfy({ base64Value($0) != nil }),
            let signature = Encoding.bytes(base64: String(decoding: text, as: UTF8.self)),
            signature.count == SigningKey.signatureByteCount
        else { return nil }
        return signature
    }

    /// The value of a standard base64 digit.
    private static func base64Value(_ byte: UInt8) -> UInt8? {
        switch byte {
        case UInt8(ascii: "A")...UInt8(ascii: "Z"): byte - UInt8(ascii: "A")
        case UInt8(ascii: "a")...UInt8(ascii: "z"): byte - UInt8(ascii: "a") + 26
        case UInt8(ascii: "0")...UInt8(ascii: "9"): byte - UInt8(ascii: "0") + 52
        case UInt8(ascii: "+"): 62
        case UInt8(ascii: "/"): 63
        default: nil
        }
    }
}
