import CustodyCrypto
import CustodyStorage

extension ArchiveContext {
    /// The inclusion proof of an item's ingest event in the tree of the latest checkpoint.
    ///
    /// - Parameter id: An item id or unique prefix.
    /// - Returns: The proof, already checked against the checkpoint.
    /// - Throws: ``ArchiveError``: not found for an unknown item, damaged when the log cannot prove it.
    package func proveItem(_ id: String) async throws -> Ledger.InclusionProof {
        let indexed = try await resolveItem(id)
        var entry: [UInt8]?
        try journal.scan(from: JournalPosition(count: indexed.seq, offset: indexed.entryOffset), limit: 1) {
            entry = $0.bytes
        }
        guard let entry, let event = try? Event.parse(entry, publicKey: signingPublicKey),
            event.type == .ingest || event.type == .import,
            event.item?.hex == indexed.id
        else {
            throw ArchiveError(
                .damaged,
                "the journal has no ingest event for item \(indexed.id)",
                fix: "run custody verify, then custody reindex"
            )
        }
        return try ledger.inclusionProof(index: indexed.seq, entry: entry)
    }
}

extension Archive.Unlocked {

    /// Signs a checkpoint covering every entry in the journal (after an interrupted append), or returns the
    /// latest one when it already does.
    @discardableResult
    package func signCheckpoint() throws -> Checkpoint {
        try ledger.append([], logKey: keys.log).checkpoint
    }
}
