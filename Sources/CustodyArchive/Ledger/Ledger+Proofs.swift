import CustodyCrypto
import CustodyStorage
import Foundation

#if canImport(Glibc)
import Glibc
#endif

extension Ledger {
    // MARK: Proofs

    /// An inclusion proof of one entry in the tree of the latest checkpoint.
    package struct InclusionProof: Sendable {
        /// The entry's index.
        package var index: Int
        /// Its leaf hash, SHA-256(0x00 || entry).
        package var leafHash: [UInt8]
        /// The audit path, leaf to root.
        package var proof: [[UInt8]]
        /// The checkpoint the proof leads to.
        package var checkpoint: Checkpoint

        /// The C2SP tlog-proof text: `c2sp.org/tlog-proof@v1`, `index N`, the hashes in base64 one a line,
        /// an empty line, the checkpoint.
        package var text: String {
            "c2sp.org/tlog-proof@v1\nindex \(index)\n" + proof.map { Encoding.base64($0) + "\n" }.joined() + "\n"
                + checkpoint.note
        }
    }

    /// A consistency proof between an earlier tree size and the latest checkpoint.
    package struct ConsistencyProof: Sendable {
        /// The earlier size.
        package var first: Int
        /// The proof hashes.
        package var proof: [[UInt8]]
        /// The latest checkpoint (size `second`).
        package var checkpoint: Checkpoint

        /// The C2SP tlog-witness add-checkpoint request body: `old N`, the hashes in base64 one a line, an empty
        /// line, the checkpoint.
        package var witnessRequest: String {
            "old \(first)\n" + proof.map { Encoding.base64($0) + "\n" }.joined() + "\n" + checkpoint.note
        }
    }

    /// The latest checkpoint, which proofs need.
    private func requireCheckpoint() throws -> Checkpoint {
        guard let checkpoint = try latestCheckpoint() else {
            throw ArchiveError(
                .notFound,
                "the log has no signed checkpoint yet",
                fix: "run custody checkpoint --sign, or any command that records an event"
            )
        }
        return checkpoint
    }

    /// Proves that `entry` is leaf `index` of the tree the latest checkpoint signs (or `checkpoint`, one the
    /// log signed earlier).
    ///
    /// The proof is checked against the checkpoint before it is returned.
    package func inclusionProof(index: Int, entry: [UInt8], at given: Checkpoint? = nil) throws -> InclusionProof {
        let lock = try journal.lockForReading()
        defer { withExtendedLifetime(lock) {} }
        let checkpoint = try given ?? requireCheckpoint()
        guard index < checkpoint.size else {
            throw ArchiveError(
                .notFound,
                "log entry \(index) is not covered by the latest checkpoint (size \(checkpoint.size)) yet",
                fix: "run custody checkpoint --sign"
            )
        }
        return try checkedInclusionProof(index: index, leafHash: Merkle.leafHash(entry), checkpoint: checkpoint)
    }

    /// The inclusion proof of leaf `index` from the tiles, checked against `checkpoint` before it is returned.
    private func checkedInclusionProof(index: Int, leafHash: [UInt8], checkpoint: Checkpoint) throws -> InclusionProof {
        let reader = TileReader(directory: logDirectory, size: checkpoint.size)
        let proof = try Merkle.inclusionProof(index: index, size: checkpoint.size, subtree: reader.subtree)
        guard
            let root = Merkle.root(fromInclusionProof: proof, leafHash: leafHash, index: index, size: checkpoint.size),
            constantTimeEqual(root, checkpoint.root)
        else {
            throw ArchiveError(
                .damaged,
                "the log's tiles do not prove entry \(index) against the signed checkpoint",
                fix: "run custody verify; custody reindex rebuilds the tiles from the journal"
            )
        }
        return InclusionProof(index: index, leafHash: leafHash, proof: proof, checkpoint: checkpoint)
    }

    /// Proves that leaf `index` (its hash read from the tiles) is in the tree of the latest checkpoint, for a
    /// client that has the entry from elsewhere (the entry tiles, a bundle).
    ///
    /// - Throws: ``ArchiveError``: not found when the latest checkpoint does not cover `index`.
    package func inclusionProof(index: Int) throws -> InclusionProof {
        let lock = try journal.lockForReading()
        defer { withExtendedLifetime(lock) {} }
        let checkpoint = try requireCheckpoint()
        guard index >= 0, index < checkpoint.size else {
            throw ArchiveError(
                .notFound,
                "log entry \(index) is not covered by the latest checkpoint (size \(checkpoint.size))",
                fix: "give an index below \(checkpoint.size)"
            )
        }
        let leafHash = try TileReader(directory: logDirectory, size: checkpoint.size).subtree(index, 1)
        return try checkedInclusionProof(index: index, leafHash: leafHash, checkpoint: checkpoint)
    }

    /// Proves that the tree of the latest checkpoint extends the tree of its first `first` entries.
    ///
    /// - Throws: ``ArchiveError`` (usage) when `first` is larger than the latest checkpoint's size.
    package func consistencyProof(from first: Int) throws -> ConsistencyProof {
        let lock = try journal.lockForReading()
        defer { withExtendedLifetime(lock) {} }
        let checkpoint = try requireCheckpoint()
        guard first >= 0, first <= checkpoint.size else {
            throw ArchiveError(
                .usage,
                "the log has \(checkpoint.size) entries, fewer than \(first)",
                fix: "give an earlier size, at most \(checkpoint.size)"
            )
        }
        let reader = TileReader(directory: logDirectory, size: checkpoint.size)
        let proof = try Merkle.consistencyProof(first: first, second: checkpoint.size, subtree: reader.subtree)
        let firstRoot = try reader.subtree(0, first)
        var sound = Merkle.isConsistent(
            proof,
            first: first,
            second: checkpoint.size,
            firstRoot: firstRoot,
            secondRoot: checkpoint.root
        )
        if let signed = try? storedCheckpoint(size: first), signed.root != firstRoot { sound = false }
        guard sound else {
            throw ArchiveError(
                .damaged,
                "the log's tiles do not prove size \(first) consistent with the signed checkpoint",
                fix: "run custody verify; custody reindex rebuilds the tiles from the journal"
            )
        }
        return ConsistencyProof(first: first, proof: proof, checkpoint: checkpoint)
    }
}
