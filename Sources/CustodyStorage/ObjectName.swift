import CustodyCrypto

/// The name of a stored object: lowercase hex BLAKE2b-256 of its exact stored bytes.
///
/// The only way to name an object: every name that reaches a store went through ``init(hex:)`` (64 lowercase
/// hex characters) or was computed from bytes, so a name can never carry a path separator, `..` or a
/// character that needs escaping.
package struct ObjectName: Hashable, Sendable, Comparable, CustomStringConvertible, Codable {
    /// 64 lowercase hex characters.
    package let hex: String

    /// Validates `hex` as an object name.
    package init?(hex: String) {
        guard Encoding.isLowercaseHex(hex, count: 64) else { return nil }
        self.hex = hex
    }

    /// The name of `bytes` (their BLAKE2b-256).
    package init(of bytes: UnsafeRawBufferPointer) { hex = Encoding.hex(BLAKE2b.hash(bytes)) }

    /// The name of `bytes` (their BLAKE2b-256).
    package init(of bytes: [UInt8]) { self = bytes.withUnsafeBytes { ObjectName(of: $0) } }

    /// The raw 32 bytes.
    package var bytes: [UInt8] { Encoding.bytes(hex: hex) ?? [] }

    package var description: String { hex }
    package static func < (lhs: ObjectName, rhs: ObjectName) -> Bool { lhs.hex < rhs.hex }

    package init(from decoder: any Decoder) throws {
        let text = try decoder.singleValueContainer().decode(String.self)
        guard let name = ObjectName(hex: text) else {
            throw DecodingError.dataCorrupted(
                .init(codingPath: decoder.codingPath, debugDescription: "not an object name")
            )
        }
        self = name
    }

    package func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        try container.encode(hex)
    }
}
