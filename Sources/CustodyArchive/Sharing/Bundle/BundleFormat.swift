import CustodyCrypto
import Foundation

/// The offline share bundle: one file, written and read as a stream of records (Docs/SHARING.md section 3).
///
/// ```
/// bundle = "custody-bundle/v1\n" record…
/// record = type (1 byte) ‖ BE64(length) ‖ payload
///   I  the granter's identity file                 (exactly one, first)
///   G  the signed grant                             (exactly one)
///   P  a signed ancestor grant, for a re-share      (one per ancestor, parent first)
///   C  the granter's signed checkpoint (+cosignatures) (exactly one)
///   E  a ledger entry with its inclusion proof      (zero or more, by index)
///   O  an object: name (32 bytes) ‖ stored bytes    (zero or more)
///   Z  the end: {"records": n, "sha256": hex}       (exactly one, last)
/// ```
package enum BundleFormat {
    /// The first bytes of every bundle.
    package static let magic = Array("custody-bundle/v1\n".utf8)

    /// The longest re-share chain: ancestor grants (`P` records) a bundle may carry (``Grant/maxAncestors``).
    package static let maxAncestors = Grant.maxAncestors
    /// The most bytes the ancestor grants of one bundle may hold together (they are kept while reading).
    package static let maxAncestorBytes = 128 << 20
    /// The most annotation events (tags, notes) of one item a bundle may prove.
    package static let maxAnnotationsPerItem = 4096
    /// The most hashes an `E` record's inclusion proof may list (a tree of 2^64 leaves needs 64).
    package static let maxProofHashes = 64

    /// A ledger entry record's payload.
    package struct EntryRecord: Codable, Sendable {
        /// Its index in the granter's log.
        package var index: Int
        /// The entry bytes, base64.
        package var entry: String
        /// The inclusion proof against the bundle's checkpoint, base64 hashes.
        package var proof: [String]

        /// Decodes an `E` payload's form (SHARING.md section 4, step 5): JSON with an integer index, a base64
        /// entry and at most ``BundleFormat/maxProofHashes`` proof strings; `nil` when it is not one.
        ///
        /// - Returns: The record and its decoded entry bytes. The proof strings are not decoded here.
        static func parse(_ payload: [UInt8]) -> (record: EntryRecord, entry: [UInt8])? {
            guard let record = try? JSONDecoder().decode(EntryRecord.self, from: Data(payload)),
                let entry = Encoding.bytes(base64: record.entry), record.proof.count <= BundleFormat.maxProofHashes
            else { return nil }
            return (record, entry)
        }
    }

    /// The end record's payload.
    package struct End: Codable, Sendable {
        /// Records before this one.
        package var records: Int
        /// SHA-256 of every byte before this record, hex.
        package var sha256: String
    }
}

/// One record of a bundle, as read.
struct BundleRecord {
    /// The type of a record: its type byte (ASCII) in the file, its payload limit and its place in the order.
    enum Kind: UInt8, CaseIterable, Sendable {
        /// `I`: the granter's identity file.
        case identity = 0x49
        /// `G`: the signed grant.
        case grant = 0x47
        /// `P`: a signed ancestor grant of a re-share.
        case ancestor = 0x50
        /// `C`: the granter's signed checkpoint, with any cosignatures.
        case checkpoint = 0x43
        /// `E`: a ledger entry with its inclusion proof (``BundleFormat/EntryRecord``).
        case entry = 0x45
        /// `O`: an object, its 32-byte name then its stored bytes.
        case object = 0x4F
        /// `Z`: the end record (``BundleFormat/End``).
        case end = 0x5A

        /// The largest payload of a record of this kind (bounds every allocation while reading).
        var limit: Int {
            switch self {
            case .identity, .checkpoint: 64 * 1024
            case .grant, .ancestor: Grant.maxBytes
            case .entry: 1 << 20
            case .object: 32 + SealedPart.maxContentStoredBytes
            case .end: 1024
            }
        }

        /// The type byte as a letter, for messages.
        var letter: Character { Character(UnicodeScalar(rawValue)) }

        /// Its place in the file: records come in the order of the cases (`I`, `G`, `P`…, `C`, `E`…, `O`…, `Z`).
        var order: Int { Self.allCases.firstIndex(of: self) ?? 0 }

        /// Whether a bundle holds exactly one record of this kind (`I`, `G`, `C`, `Z`); the others repeat, or are
        /// absent.
        var isMandatory: Bool {
            switch self {
            case .identity, .grant, .checkpoint, .end: true
            case .ancestor, .entry, .object: false
            }
        }

        /// Whether a record of this kind may follow one of kind `last` (`nil` before the first record): the next
        /// of a repeating kind, or a later kind with no mandatory kind skipped.
        func mayFollow(_ last: Kind?) -> Bool {
            let stage = last?.order ?? -1
            if order == stage { return !isMandatory }
            return order > stage && !Self.allCases.contains { $0.isMandatory && $0.order > stage && $0.order < order }
        }
    }

    /// Its type.
    var kind: Kind
    /// Its payload.
    var payload: [UInt8]
    /// Byte offset of the record in the file.
    var offset: Int64

    /// The type byte.
    var type: UInt8 { kind.rawValue }
}
