import Foundation

@testable import CustodyArchive

#if canImport(Glibc)
import Glibc
#endif

/// A bundle as a list of records, for tests that forge bundles: read one, change records, write it back
/// well formed (a correct end record), so that only the deeper checks can object.
enum BundleRecords {
    /// The records of the bundle at `path`, the end record excluded.
    static func read(_ path: String) throws -> [(Character, [UInt8])] {
        let reader = try BundleReader(path: path)
        var out: [(Character, [UInt8])] = []
        while let record = try reader.next(), record.type != UInt8(ascii: "Z") {
            out.append((Character(UnicodeScalar(record.type)), record.payload))
        }
        return out
    }

    /// Writes `records` as a bundle at `path`, with its end record.
    static func write(_ records: [(Character, [UInt8])], to path: String) throws {
        let fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0o600)
        defer { close(fd) }
        let writer = try BundleWriter(fd: fd)
        for (type, payload) in records {
            guard let kind = BundleRecord.Kind(rawValue: type.asciiValue ?? 0) else { throw UnknownKind(type: type) }
            try writer.record(kind, payload)
        }
        try writer.finish()
    }

    /// A record type the format does not have.
    struct UnknownKind: Error {
        var type: Character
    }
}
