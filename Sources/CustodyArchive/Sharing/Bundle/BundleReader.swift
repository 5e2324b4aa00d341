import CustodyCrypto
import CustodyStorage
import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// Reads a bundle's records in order, bounding every allocation and hashing as it goes.
final class BundleReader {
    private let fd: Int32
    private var buffer: [UInt8] = []
    private var position = 0
    private var hasher = SHA256Hasher()
    /// Records read so far (the end record excluded).
    private(set) var records = 0
    /// Bytes read so far.
    private(set) var offset: Int64 = 0

    /// Opens `path`; checks the magic.
    init(path: String) throws {
        fd = POSIX.open(path, O_RDONLY)
        guard fd >= 0 else {
            let code = errno
            throw ArchiveError(
                code == ENOENT ? .notFound : .badInput,
                "cannot read \(path): \(errnoDescription(code))",
                fix: "check the bundle's path"
            )
        }
        guard let magic = try? read(BundleFormat.magic.count), magic == BundleFormat.magic else {
            close(fd)
            throw ArchiveError(
                .notABundle,
                "\(path) is not a Custody bundle (it does not start with \"custody-bundle/v1\")",
                fix: "give a file made by custody bundle export or custody submit"
            )
        }
        hasher.update(BundleFormat.magic)
    }

    deinit { close(fd) }

    /// Reads exactly `count` bytes; `nil` at a clean end of file before any of them.
    private func read(_ count: Int) throws -> [UInt8]? {
        var out = [UInt8]()
        out.reserveCapacity(count)
        while out.count < count {
            if position == buffer.count {
                buffer = [UInt8](repeating: 0, count: 1 << 20)
                let n = buffer.withUnsafeMutableBytes { Glibc.read(fd, $0.baseAddress, $0.count) }
                guard n >= 0 else { throw ArchiveError(.badInput, "cannot read the bundle", fix: "check the file") }
                buffer.removeSubrange(n...)
                position = 0
                if n == 0 {
                    if out.isEmpty { return nil }
                    throw Truncated()
                }
            }
            let take = min(count - out.count, buffer.count - position)
            out += buffer[position..<(position + take)]
            position += take
        }
        offset += Int64(count)
        return out
    }

    private struct Truncated: Error {}

    /// The next record, or `nil` at the end of the file; the end record is checked here.
    ///
    /// - Throws: ``ArchiveError`` (bad input) for a truncated file, an unknown type, an over-long record, or an end
    ///   record that does not match what was read.
    func next() throws -> BundleRecord? {
        let start = offset
        do {
            guard let header = try read(9) else { return nil }
            let length = bigEndianValue(header[1...])
            guard let kind = BundleRecord.Kind(rawValue: header[0]) else {
                throw ArchiveError(
                    .badInput,
                    "the bundle holds an unknown record type 0x\(String(header[0], radix: 16)) at byte \(start)",
                    fix: "the file is damaged or not a bundle; ask for it again"
                )
            }
            guard length <= UInt64(kind.limit) else {
                throw ArchiveError(
                    .badInput,
                    "a \(kind.letter) record at byte \(start) claims \(length) bytes, over its limit of \(kind.limit)",
                    fix: "the file is damaged; ask for it again"
                )
            }
            let payload = try read(Int(length)) ?? []
            guard payload.count == Int(length) else { throw Truncated() }
            if kind == .end {
                try checkEnd(payload)
            } else {
                hasher.update(header)
                hasher.update(payload)
                records += 1
            }
            return BundleRecord(kind: kind, payload: payload, offset: start)
        } catch is Truncated {
            throw ArchiveError(
                .bundleTruncated,
                "the bundle is truncated (it ends inside the record at byte \(start))",
                fix: "copy the whole file again"
            )
        }
    }

    /// Checks the end record against what was read, and that nothing follows it.
    private func checkEnd(_ payload: [UInt8]) throws {
        guard let end = try? JSONDecoder().decode(BundleFormat.End.self, from: Data(payload)),
            end.records == records, end.sha256 == Encoding.hex(hasher.finalize())
        else {
            throw ArchiveError(
                .badInput,
                "the bundle's end record does not match its \(records) records (bytes were changed, removed or reordered)",
                fix: "the file is damaged; ask for it again"
            )
        }
        guard try read(1) == nil else {
            throw ArchiveError(.badInput, "the bundle has bytes after its end record", fix: "ask for it again")
        }
    }
}
