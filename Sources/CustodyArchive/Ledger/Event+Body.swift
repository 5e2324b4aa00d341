import CustodyStorage
import Foundation

// An event's body written field by field instead of through `JSONEncoder`: the same bytes (tests hold it to
// `JSONFormat.compactEncoder()`'s output for random events and strings), at a small fraction of the cost. Every
// event is encoded once, when it is signed, and for an ingest event `JSONEncoder` cost more than the two
// signatures together.

extension Event {
    /// The body of the event's journal entry: compact JSON, keys sorted, `/` not escaped, absent fields left
    /// out — exactly the bytes ``JSONFormat/compactEncoder()`` writes for it (Docs/LEDGER.md section 4).
    ///
    /// Roster events that carry a `subject` (rare) go through `JSONEncoder` whole.
    package func body() throws -> [UInt8] {
        guard subject == nil else { return Array(try Self.encoder.encode(self)) }
        var json = CompactJSONWriter(capacity: objects == nil ? 192 : 1024)
        json.object { json in
            json.field("actor", actor)
            json.field("annotation", annotation)
            if let approvals {
                json.array("approvals", approvals) { json, approval in
                    json.object { json in
                        json.field("by", approval.by.hex)
                        json.field("sig", approval.signature)
                    }
                }
            }
            json.field("box_key", boxKey)
            json.field("by", by?.hex)
            json.field("commitment", commitment)
            if let grant {
                json.key("grant")
                json.object { json in
                    json.field("hash", grant.hash)
                    json.field("id", grant.id)
                }
            }
            json.field("item", item?.hex)
            if let keys {
                json.key("keys")
                json.object { json in
                    json.field("content", keys.content)
                    json.field("meta", keys.meta)
                }
            }
            json.field("notice", notice)
            if let objects {
                json.key("objects")
                json.object { json in
                    json.field("chunk_list", objects.chunkList)
                    if let chunks = objects.chunks {
                        json.array("chunks", chunks) { json, ref in json.value(ref) }
                    }
                    json.field("content", objects.content)
                    json.field("meta", objects.meta)
                }
            }
            json.field("previous_box_key", previousBoxKey)
            json.field("recovery_key", recoveryKey)
            json.field("recovery_sig", recoverySignature)
            json.field("requester", requester)
            json.field("roster", roster.map(Int64.init))
            json.field("sealed", sealed)
            json.field("served", served)
            json.field("threshold", threshold.map(Int64.init))
            json.field("time", time)
            json.field("type", type.rawValue)
            json.field("v", Int64(version))
        }
        return json.bytes
    }
}

/// Writes JSON as `JSONEncoder` with `[.sortedKeys, .withoutEscapingSlashes]` does: no whitespace; strings as
/// their UTF-8 with `"` and `\` escaped, U+0008, U+0009, U+000A, U+000C and U+000D as `\b \t \n \f \r`, the
/// other controls below U+0020 as `\u00xx` (lowercase hex), and everything else (`/`, U+007F, non-ASCII) as is;
/// integers in decimal. The caller writes each object's keys in sorted (byte) order.
struct CompactJSONWriter {
    private(set) var bytes: [UInt8] = []
    /// Whether the object or array being written has no member yet (no comma before the next one).
    private var atFirstMember = true

    init(capacity: Int) {
        bytes.reserveCapacity(capacity)
    }

    /// An object: `{`, what `members` writes, `}`.
    mutating func object(_ members: (inout CompactJSONWriter) -> Void) {
        separate()
        bytes.append(UInt8(ascii: "{"))
        atFirstMember = true
        members(&self)
        bytes.append(UInt8(ascii: "}"))
        atFirstMember = false
    }

    /// A member's key and its colon; the value must follow.
    mutating func key(_ name: StaticString) {
        separate()
        bytes.append(UInt8(ascii: "\""))
        name.withUTF8Buffer { bytes.append(contentsOf: $0) }
        bytes.append(contentsOf: [UInt8(ascii: "\""), UInt8(ascii: ":")])
        // The value that follows is not a new member.
        atFirstMember = true
    }

    /// A string member, left out when `nil`.
    mutating func field(_ name: StaticString, _ value: String?) {
        guard let value else { return }
        key(name)
        string(value)
    }

    /// An integer member, left out when `nil`.
    mutating func field(_ name: StaticString, _ value: Int64?) {
        guard let value else { return }
        key(name)
        separate()
        bytes.append(contentsOf: String(value).utf8)
        atFirstMember = false
    }

    /// An object reference member (`{"name":…,"size":…}`), left out when `nil`.
    mutating func field(_ name: StaticString, _ ref: ObjectRef?) {
        guard let ref else { return }
        key(name)
        value(ref)
    }

    /// An array member: `[`, each element as `element` writes it, `]`.
    mutating func array<Element>(
        _ name: StaticString,
        _ elements: [Element],
        element: (inout CompactJSONWriter, Element) -> Void
    ) {
        key(name)
        separate()
        bytes.append(UInt8(ascii: "["))
        atFirstMember = true
        for value in elements { element(&self, value) }
        bytes.append(UInt8(ascii: "]"))
        atFirstMember = false
    }

    /// An object reference as a value.
    mutating func value(_ ref: ObjectRef) {
        object { json in
            json.field("name", ref.name.hex)
            json.field("size", ref.size)
        }
    }

    /// A string value.
    mutating func string(_ value: String) {
        separate()
        bytes.append(UInt8(ascii: "\""))
        for byte in value.utf8 {
            switch byte {
            case UInt8(ascii: "\""), UInt8(ascii: "\\"): bytes.append(contentsOf: [UInt8(ascii: "\\"), byte])
            case 0x08: bytes.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "b")])
            case 0x09: bytes.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "t")])
            case 0x0A: bytes.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "n")])
            case 0x0C: bytes.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "f")])
            case 0x0D: bytes.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "r")])
            case 0x00..<0x20:
                let digits = Array("0123456789abcdef".utf8)
                bytes.append(contentsOf: Array(#"\u00"#.utf8))
                bytes.append(contentsOf: [digits[Int(byte >> 4)], digits[Int(byte & 0x0F)]])
            default: bytes.append(byte)
            }
        }
        bytes.append(UInt8(ascii: "\""))
        atFirstMember = false
    }

    /// A comma before any member or element but the first.
    private mutating func separate() {
        if !atFirstMember { bytes.append(UInt8(ascii: ",")) }
    }
}
