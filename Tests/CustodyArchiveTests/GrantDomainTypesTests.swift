import CustodyCrypto
import CustodyStorage
import CustodyTestSupport
import Foundation
import Testing

@testable import CustodyArchive

/// The closed string domains of sharing — a grant's permission and kind, a summary's direction — are enums whose
/// Codable form is exactly the string grants, bundles, the index and `--json` output have always carried; and a
/// signed grant naming any other value is refused where every grant is checked, ``Grant/parse(_:)``.
@Suite struct GrantDomainTypesTests {
    /// `value` encoded alone, as JSON text.
    private func json<T: Encodable>(_ value: T) throws -> String {
        String(decoding: try JSONEncoder().encode(value), as: UTF8.self)
    }

    /// `text` decoded as a `T`.
    private func decoded<T: Decodable>(_ type: T.Type, _ text: String) throws -> T {
        try JSONDecoder().decode(type, from: Data(text.utf8))
    }

    @Test func eachValueIsEncodedAsItsFormatString() throws {
        let permissions: [(Grant.Permission, String)] = [(.content, "content"), (.metadata, "metadata")]
        let kinds: [(Grant.Kind, String)] = [
            (.grant, "grant"), (.submission, "submission"), (.anonymousSubmission, "anonymous-submission"),
        ]
        let directions: [(GrantSummary.Direction, String)] = [(.outgoing, "out"), (.incoming, "in")]
        for (value, text) in permissions {
            #expect(try json(value) == "\"\(text)\"" && value.rawValue == text)
            #expect(try decoded(Grant.Permission.self, "\"\(text)\"") == value)
        }
        for (value, text) in kinds {
            #expect(try json(value) == "\"\(text)\"" && value.rawValue == text)
            #expect(try decoded(Grant.Kind.self, "\"\(text)\"") == value)
        }
        for (value, text) in directions {
            #expect(try json(value) == "\"\(text)\"" && value.rawValue == text)
            #expect(try decoded(GrantSummary.Direction.self, "\"\(text)\"") == value)
        }
        // The domains are closed: no value beyond the ones the formats name.
        #expect(Grant.Permission.allCases.map(\.rawValue) == ["content", "metadata"])
        #expect(Grant.Kind.allCases.map(\.rawValue) == ["grant", "submission", "anonymous-submission"])
        #expect(GrantSummary.Direction.allCases.map(\.rawValue) == ["out", "in"])
    }

    @Test func aSummaryAsTheIndexStoresItKeepsItsStrings() throws {
        let literal = """
            {"id":"00000000000000000000000000000001","direction":"in","party":"p","partyFingerprint":"f","items":1,\
            "created":"2026-01-01T00:00:00Z","expires":"2027-01-01T00:00:00Z","permission":"metadata",\
            "reshare":false,"kind":"anonymous-submission"}
            """
        let summary = try decoded(GrantSummary.self, literal)
        #expect(summary.direction == .incoming && summary.permission == .metadata)
        #expect(summary.kind == .anonymousSubmission)
        let encoder = JSONEncoder()
        encoder.outputFormatting = .sortedKeys
        let text = String(decoding: try encoder.encode(summary), as: UTF8.self)
        #expect(text.contains(#""direction":"in""#) && text.contains(#""permission":"metadata""#))
        #expect(text.contains(#""kind":"anonymous-submission""#))
        #expect(try decoded(GrantSummary.self, text) == summary)
        for forged in [#""direction":"sideways""#, #""permission":"everything""#, #""kind":"gift""#] {
            let field = String(forged.prefix { $0 != ":" })
            let original = try #require(literal.range(of: field + #":"[^"]*""#, options: .regularExpression))
            let bad = literal.replacingCharacters(in: original, with: forged)
            #expect(throws: DecodingError.self) { try decoded(GrantSummary.self, bad) }
        }
    }

    /// A well-formed grant re-keyed to `key`, so that the test can sign bodies of its own choosing under it.
    private func grantSigned(by key: SigningKey) throws -> Grant {
        let seed = try ArchiveFiles.read(CLI.packageRoot + "/Fuzz/corpus/grant/content.grant", limit: Grant.maxBytes)
        var grant = try Grant.parse(seed)
        let box = try #require(Encoding.bytes(base64: grant.granter.boxKey))
        grant.granter.signingKey = Encoding.base64(key.publicKey)
        grant.granter.fingerprint = Identity.fingerprint(signingKey: key.publicKey, boxKey: box)
        return grant
    }

    /// `body` (grant JSON) signed by `key` as a grant is.
    private func signed(_ body: String, by key: SigningKey) -> [UInt8] {
        SignedEnvelope.signing(Array(body.utf8), domain: Grant.signatureDomain, with: key).bytes
    }

    @Test func aSignedGrantWithAnUnknownPermissionOrKindIsRefusedAsMalformed() throws {
        let mallory = try SigningKey(seed: SecretBytes(randomCount: 32))
        let grant = try grantSigned(by: mallory)
        let body = String(decoding: try Event.encoder.encode(grant), as: UTF8.self)
        // The untouched body, signed by the same key, is a grant: only the forged field makes the difference.
        #expect(try Grant.parse(signed(body, by: mallory)) == grant)
        #expect(body.contains(#""permission":"content""#) && body.contains(#""kind":"grant""#))

        let forgeries = [
            (#""permission":"content""#, #""permission":"everything""#),
            (#""permission":"content""#, #""permission":"Content""#),
            (#""permission":"content""#, #""permission":"content ""#),
            (#""permission":"content""#, #""permission":null"#),
            (#""kind":"grant""#, #""kind":"gift""#),
            (#""kind":"grant""#, #""kind":"anonymous_submission""#),
        ]
        for (field, forged) in forgeries {
            let bytes = signed(body.replacingOccurrences(of: field, with: forged), by: mallory)
            // The one refusal a grant whose body is not a version 1 grant has always had.
            guard case .failure(let fault) = Grant.parseSignature(bytes) else {
                Issue.record("a grant with \(forged) was accepted")
                continue
            }
            #expect(fault == .malformed("its body is not a version 1 grant (fields, types or bounds)"), "\(forged)")
            let error = #expect(throws: ArchiveError.self) { try Grant.parse(bytes) }
            #expect(error?.reason == .damaged && error?.problem.hasPrefix("the grant is malformed") == true)
        }
    }
}
