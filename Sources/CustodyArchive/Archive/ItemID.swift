import CustodyCrypto

/// An item id: 16 random bytes, written as 32 lowercase hex characters.
package struct ItemID: Hashable, Sendable, Comparable, CustomStringConvertible, Codable {
    /// 32 lowercase hex characters.
    package let hex: String

    /// Validates a full id.
    package init?(hex: String) {
        guard Encoding.isLowercaseHex(hex, count: 32) else { return nil }
        self.hex = hex
    }

    /// A fresh random id.
    package static func random() -> ItemID {
        ItemID(uncheckedHex: Encoding.hex(randomBytes(16)))
    }

    private init(uncheckedHex: String) { hex = uncheckedHex }

    /// The id of 16 raw bytes.
    package init(bytes: [UInt8]) {
        precondition(bytes.count == 16, "an item id is 16 bytes")
        hex = Encoding.hex(bytes)
    }

    /// The raw 16 bytes.
    package var bytes: [UInt8] { Encoding.bytes(hex: hex) ?? [] }

    package var description: String { hex }
    package static func < (lhs: ItemID, rhs: ItemID) -> Bool { lhs.hex < rhs.hex }

    package init(from decoder: any Decoder) throws {
        let text = try decoder.singleValueContainer().decode(String.self)
        guard let id = ItemID(hex: text) else {
            throw DecodingError.dataCorrupted(.init(codingPath: decoder.codingPath, debugDescription: "not an item id"))
        }
        self = id
    }

    package func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        try container.encode(hex)
    }
}
