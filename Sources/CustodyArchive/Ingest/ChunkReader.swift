import CustodyClaims
import CustodyCrypto
import CustodyStorage
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// Reads a file being ingested once, in chunks of the archive's chunk size, hashing it as it goes, then pads
/// the stream to Padmé(size) with keystream (``ChunkCipher/padding(count:chunkIndex:key:)``): what is
/// encrypted is every chunk ``next()`` returns, in order.
///
/// A chunk is handed out only once the next one has been read (or the end found), so the last data chunk is
/// known before padding starts. Every call reads the disk: call it from blocking work
/// (``BlockingWork/run(_:)``), one call at a time; the state is behind a lock only so the reader can move
/// between those calls' threads.
final class ChunkReader: Sendable {
    private struct State: ~Copyable {
        var fd: Int32
        var hasher = SHA256Hasher()
        var total: Int64 = 0
        var index = 0
        var head: [UInt8] = []
        /// The first bytes the claims are read from (``ClaimExtractor/headBytes``), when claims are extracted.
        var claimHead: [UInt8] = []
        /// The last bytes read (``ClaimExtractor/tailBytes``), kept only for a PDF (its trailer is at the end).
        var tail: [UInt8] = []
        var keepsTail = false
        /// What the file says about itself, once read (when claims are extracted).
        var claims: FileClaims?
        /// The chunk read but not yet handed out.
        var pending: [UInt8]?
        var phase = Phase.reading
        /// The padding keystream's key, once the data is read (wiped at the end).
        var padKey: [UInt8] = []

        enum Phase {
            case reading
            /// Data read: the remaining padded stream, from `position`, with `last` the unsent data chunk.
            case padding(sha256: [UInt8], padded: Int64, position: Int64, last: [UInt8])
            case done(sha256: [UInt8])
        }
    }

    let source: SourceFile
    let chunkSize: Int
    /// Whether the file's claims are extracted as it is read (``claims()``).
    let extractsClaims: Bool
    private let convergence: SecretBytes
    private let state: Mutex<State>

    /// Opens `source` for reading, as the file the scan found.
    ///
    /// - Parameters:
    ///   - source: The file.
    ///   - chunkSize: The archive's chunk size.
    ///   - convergence: The secret the padding key derives from.
    ///   - claims: Whether to extract the file's claims (``claims()``) from the bytes read, plus at most
    ///     ``ClaimExtractor/maxReadBytes`` read at explicit offsets for MP4/MOV and PDF.
    /// - Throws: ``ChangedSinceScan`` when it is no longer that file.
    init(source: SourceFile, chunkSize: Int, convergence: SecretBytes, claims: Bool = false) throws {
        let fd: Int32
        switch source.openForReading() {
        case .success(let opened): fd = opened
        case .failure(let problem): throw ChangedSinceScan(problem: problem)
        }
        self.source = source
        self.chunkSize = chunkSize
        self.convergence = convergence
        self.extractsClaims = claims
        state = Mutex(State(fd: fd))
    }

    deinit {
        state.withLock { state in
            if state.fd >= 0 { close(state.fd) }
            wipe(&state.padKey)
        }
    }

    /// The next chunk of the padded stream and its index, or `nil` at its end.
    ///
    /// - Throws: ``ArchiveError`` (bad input) when the file cannot be read or is larger than 1 TiB.
    func next() throws -> (index: Int, plaintext: [UInt8])? {
        try state.withLock { state throws -> (index: Int, plaintext: [UInt8])? in
            while case .reading = state.phase {
                let buffer = try Self.readChunk(
                    state.fd,
                    source: source,
                    chunkSize: chunkSize,
                    expected: source.size - state.total
                )
                if buffer.isEmpty {
                    finishReading(&state)
                    break
                }
                state.hasher.update(buffer)
                if state.head.isEmpty {
                    state.head = Array(buffer.prefix(4096))
                    if extractsClaims {
                        // Shares the buffer's storage when the file fits (most do): no copy.
                        state.claimHead =
                            buffer.count <= ClaimExtractor.headBytes
                            ? buffer : Array(buffer.prefix(ClaimExtractor.headBytes))
                        state.keepsTail = Self.isPDF(buffer)
                    }
                }
                if state.keepsTail { Self.keepTail(&state.tail, buffer) }
                state.total += Int64(buffer.count)
                guard state.total <= SealedPart.maxItemBytes else {
                    throw ArchiveError(
                        .badInput,
                        "\(source.path) is larger than 1 TiB",
                        fix: "split it before ingesting"
                    )
                }
                let previous = state.pending
                state.pending = buffer
                if let previous {
                    defer { state.index += 1 }
                    if buffer.count < chunkSize { finishReading(&state, afterSending: 1) }
                    return (state.index, previous)
                }
                if buffer.count < chunkSize { finishReading(&state) }
            }
            guard case .padding(let sha256, let padded, let position, var last) = state.phase else { return nil }
            let want = Int(min(Int64(chunkSize), padded - position))
            if last.count < want {
                last += ChunkCipher.padding(count: want - last.count, chunkIndex: state.index, key: state.padKey)
            }
            let index = state.index
            state.index += 1
            let next = position + Int64(want)
            if next < padded {
                state.phase = .padding(sha256: sha256, padded: padded, position: next, last: [])
            } else {
                wipe(&state.padKey)
                state.phase = .done(sha256: sha256)
            }
            return (index, last)
        }
    }

    /// What was read, once ``next()`` has returned `nil`: the plaintext size, its SHA-256 and its first 4 KiB
    /// (for media type sniffing).
    func summary() -> (size: Int64, sha256: [UInt8], head: [UInt8]) {
        state.withLock { state in
            guard case .done(let sha256) = state.phase else { return (state.total, [], state.head) }
            return (state.total, sha256, state.head)
        }
    }

    /// What the file says about itself, once ``next()`` has returned `nil`; `nil` when claims are not extracted.
    func claims() -> FileClaims? {
        state.withLock { $0.claims }
    }

    /// Whether a file starting with `bytes` is a PDF (`%PDF-` in its first KiB, ISO 32000-1 §7.5.2).
    private static func isPDF(_ bytes: [UInt8]) -> Bool {
        let marker = Array("%PDF-".utf8)
        let window = bytes.prefix(1024)
        guard window.count >= marker.count else { return false }
        return (0...(window.count - marker.count)).contains { window[$0..<($0 + marker.count)].elementsEqual(marker) }
    }

    /// Keeps the last ``ClaimExtractor/tailBytes`` of what was read, `buffer` being the latest.
    private static func keepTail(_ tail: inout [UInt8], _ buffer: [UInt8]) {
        let limit = ClaimExtractor.tailBytes
        if buffer.count >= limit {
            tail = buffer.count == limit ? buffer : Array(buffer.suffix(limit))
        } else {
            tail = Array((tail + buffer).suffix(limit))
        }
    }

    /// The file's claims, from the bytes read plus bounded reads at offsets (the file is still open), and its
    /// modification time.
    private static func extractClaims(_ state: inout State) -> FileClaims {
        let fd = state.fd
        let head = state.claimHead
        let total = state.total
        var claims = ClaimExtractor.extract(head: head[...], tail: state.tail[...], size: total) { offset, count in
            if offset >= 0, offset + Int64(count) <= Int64(head.count) {
                return Array(head[Int(offset)..<(Int(offset) + count)])
            }
            guard fd >= 0, count > 0 else { return nil }
            let bytes = [UInt8](unsafeUninitializedCapacity: count) { raw, initialized in
                initialized = max(POSIX.preadFull(fd, UnsafeMutableRawBufferPointer(raw), at: offset), 0)
            }
            return bytes.isEmpty ? nil : bytes
        }
        var info = stat()
        if fd >= 0, fstat(fd, &info) == 0 {
            claims.fileModifiedAt = ClaimExtractor.utcString(unixSeconds: Int64(info.st_mtim.tv_sec))
        }
        state.claimHead = []
        state.tail = []
        return claims
    }

    /// The data is all read: the padding stream starts after the last data chunk, which is sent first.
    ///
    /// - Parameters:
    ///   - state: The reader's state.
    ///   - afterSending: Chunks still to be handed out before the padding phase's first one (the previous
    ///     chunk, returned by the current call).
    private func finishReading(_ state: inout State, afterSending: Int = 0) {
        if extractsClaims { state.claims = Self.extractClaims(&state) }
        let sha256 = state.hasher.finalize()
        state.padKey = ChunkCipher.paddingKey(sha256: sha256, size: state.total, convergenceSecret: convergence)
        close(state.fd)
        state.fd = -1
        let padded = Int64(Padme.paddedLength(Int(state.total), minimum: 512))
        let position = Int64(state.index + afterSending) * Int64(chunkSize)
        state.phase = .padding(
            sha256: sha256,
            padded: padded,
            position: position,
            last: state.pending ?? []
        )
        state.pending = nil
    }

    /// Reads up to one chunk without zero-filling a whole chunk-sized buffer first (most files are small).
    private static func readChunk(
        _ fd: Int32,
        source: SourceFile,
        chunkSize: Int,
        expected: Int64
    ) throws -> [UInt8] {
        var capacity = Int(min(Int64(chunkSize), max(expected + 1, 4096)))
        var buffer: [UInt8] = []
        while true {
            let start = buffer.count
            var failure: Int32 = 0
            buffer.reserveCapacity(capacity)
            let extra = [UInt8](unsafeUninitializedCapacity: capacity - start) { raw, initialized in
                let n = POSIX.readFull(fd, UnsafeMutableRawBufferPointer(raw))
                if n < 0 { failure = Int32(-n) }
                initialized = max(n, 0)
            }
            guard failure == 0 else {
                throw ArchiveError(
                    .badInput,
                    "cannot read \(source.path): \(errnoDescription(failure))",
                    fix: "check the file"
                )
            }
            buffer += extra
            // A short read means end of file; a full buffer smaller than a chunk means the file grew: read on.
            if extra.count < capacity - start || buffer.count >= chunkSize { return buffer }
            capacity = chunkSize
        }
    }
}

/// A file that is not the one the scan found when ingest opens it: replaced by another file, a link, a FIFO or
/// a device, or reached through a folder that was replaced. It is a scan problem found late: it stops the
/// ingest, or is skipped and reported with ``IngestOptions/skipProblems``.
struct ChangedSinceScan: Error {
    let problem: ScanProblem
}
