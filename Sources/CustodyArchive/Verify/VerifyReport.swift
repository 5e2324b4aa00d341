import CustodyCrypto
import CustodyStorage
import Foundation
import Synchronization

/// How thoroughly `verify` checks.
package enum VerifyMode: String, Sendable {
    /// Presence and sizes only.
    case quick
    /// Every object re-hashed against its name (no keys needed).
    case standard
    /// Also decrypts everything and re-checks every SHA-256 (needs the passphrase).
    case deep
}

/// One problem found by `verify`, in the `--json` shape of DESIGN.md.
package struct VerifyProblem: Sendable, Equatable, Codable {
    /// `missing`, `corrupt`, `size-mismatch`, `bad-entry`, `journal-damaged`, `undecryptable`, `sha256-mismatch`,
    /// `commitment-mismatch`, the ledger's kinds (`ledger-mismatch`, `tile-mismatch`, `tile-unexpected`, …) and the
    /// trust kinds (`identity-invalid`, `cosignature-invalid`, `cosignature-unknown`, `witness-state-invalid`):
    /// Docs/LEDGER.md section 14.
    package var kind: Kind
    /// The object concerned.
    package var object: String?
    /// The item concerned.
    package var item: String?
    /// The journal entry concerned.
    package var entry: Int?
    /// What is wrong.
    package var detail: String
}

/// The outcome of `verify`.
package struct VerifyReport: Sendable {
    /// No problems (orphans and warnings do not count).
    package var ok: Bool { problems.isEmpty }
    /// Objects checked.
    package var objectsChecked = 0
    /// Journal entries read.
    package var entries = 0
    /// Items found.
    package var items = 0
    /// Damage found.
    package var problems: [VerifyProblem] = []
    /// Objects no event names, then leftover temporary files (as paths under `objects/`).
    package var orphans: [String] = []
    /// Things worth knowing that are not damage (e.g. a torn journal tail from a crash).
    package var warnings: [String] = []
    /// The size of the latest signed checkpoint, if there is one.
    package var checkpointSize: Int?
    /// Signed checkpoints whose roots were recomputed from the entries.
    package var checkpointsChecked = 0
    /// For `--sample`: the slice of the name space checked in this run.
    package var sample: VerifySample?
}

/// The slice of object names one `verify --sample P%` run re-hashes: names whose first two bytes, read as a
/// number 0–65535, fall in `[start, start + count)` modulo 65536. Each run starts where the last one ended
/// (`verify-sample.json` in the archive folder), so ⌈100 / P⌉ runs cover every object, as restic's
/// `--read-data-subset n/t` does.
package struct VerifySample: Sendable, Codable, Equatable {
    /// The first position (0–65535).
    package var start: Int
    /// How many positions (1–65536).
    package var count: Int
    /// Where the next run starts.
    package var next: Int { (start + count) % 65536 }
    /// The objects of the archive that fall in it.
    package var objects = 0
    /// All objects the journal names.
    package var totalObjects = 0

    enum CodingKeys: String, CodingKey {
        case start, count, objects
        case totalObjects = "total_objects"
    }

    /// Whether `name` falls in the slice.
    func contains(_ name: ObjectName) -> Bool {
        let position = Int(name.hex.prefix(4), radix: 16) ?? 0
        return (position - start + 65536) % 65536 < count
    }
}

/// The objects the journal names, and which items use them.
struct ReferenceMap {
    var sizes: [ObjectName: Int64] = [:]
    var users: [ObjectName: [String]] = [:]
    var ingests: [(index: Int, event: Event)] = []
    /// Log positions of items ingested by field staff, whose chunks are keyed by a convergence secret of their own
    /// (FORMAT.md section 4.1): a deep check cannot re-derive those keys.
    var ownConvergence = Set<Int>()
    /// The `key-rotation` events, in log order.
    var rotations: [(index: Int, event: Event)] = []
    /// Each item's keys as its latest `rewrap` event wrapped them.
    var rewraps: [ItemID: WrappedKeys] = [:]
    var problems: [VerifyProblem] = []
    var tail: Journal.Tail = .clean
    var entries = 0
    var warnings: [String] = []
    var checkpointSize: Int?
    var checkpointsChecked = 0
    /// The grants `grant` events name whose stored file is the one signed (their grantees may cosign).
    var grants: [GrantReference] = []

    mutating func add(_ ref: ObjectRef, item: String) {
        sizes[ref.name] = ref.size
        users[ref.name, default: []].append(item)
    }
}
