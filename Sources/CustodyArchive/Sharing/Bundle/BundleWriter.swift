import CCustodySystem
import CustodyCrypto
import CustodyStorage
import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// Writes a bundle to a file descriptor, hashing as it goes.
final class BundleWriter {
    private let fd: Int32
    private var hasher = SHA256Hasher()
    private(set) var records = 0
    private(set) var bytes: Int64 = 0
    private var writtenBack: Int64 = 0

    init(fd: Int32) throws {
        self.fd = fd
        try put(BundleFormat.magic)
    }

    private func put(_ data: [UInt8]) throws {
        hasher.update(data)
        try write(data)
        // Start writing back every 32 MiB, so the final fsync of a multi-GB bundle does not wait for all of it.
        if bytes - writtenBack >= 32 << 20 {
            _ = CCustodySystem_start_writeback(fd, writtenBack, bytes - writtenBack)
            writtenBack = bytes
        }
    }

    private func write(_ data: [UInt8]) throws {
        let code = data.withUnsafeBytes { POSIX.writeAll(fd, $0) }
        guard code == 0 else { throw ArchiveError.writeFailed("cannot write the bundle", errno: code) }
        bytes += Int64(data.count)
    }

    /// Writes one record (any kind but ``BundleRecord/Kind/end``, which ``finish()`` writes).
    func record(_ kind: BundleRecord.Kind, _ payload: [UInt8]) throws {
        precondition(kind != .end, "the end record is written by finish()")
        try put([kind.rawValue] + bigEndianBytes(UInt64(payload.count)))
        try put(payload)
        records += 1
    }

    /// Writes the end record.
    func finish() throws {
        let end = BundleFormat.End(records: records, sha256: Encoding.hex(hasher.finalize()))
        let payload = try Array(Event.encoder.encode(end))
        try write([BundleRecord.Kind.end.rawValue] + bigEndianBytes(UInt64(payload.count)))
        try write(payload)
    }
}
