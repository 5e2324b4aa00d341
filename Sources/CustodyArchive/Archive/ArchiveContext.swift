import CustodyCrypto
import CustodyStorage

/// What every archive operation starts from: an opened ``Archive``, or an ``Archive/Unlocked`` one.
///
/// Operations that need only public or indexed data are written once, as extensions of this protocol, and so
/// work on both; operations that need the secrets extend ``Archive/Unlocked`` alone.
package protocol ArchiveContext: Sendable {
    /// The opened archive.
    var archive: Archive { get }

    /// The archive unlocked, to apply journal entries the index has not seen: ``Archive/Unlocked`` is itself;
    /// an ``Archive`` asks its passphrase (``Archive/unlock()``).
    func unlocked() throws -> Archive.Unlocked
}

extension Archive: ArchiveContext {
    package var archive: Archive { self }
}

extension ArchiveContext {
    /// The archive folder.
    package var root: String { archive.root }
    /// The public configuration.
    package var config: ArchiveConfig { archive.config }
    /// The object store.
    package var store: ArchiveObjects { archive.store }
    /// The event journal.
    package var journal: Journal { archive.journal }
    /// The custody ledger.
    package var ledger: Ledger { archive.ledger }
    var signingPublicKey: [UInt8] { archive.signingPublicKey }
    var boxPublicKey: [UInt8] { archive.boxPublicKey }
    var indexPath: String { Archive.indexPath(archive.root) }
}

extension ArchiveContext {
    /// Signed grants, `grants/<32 hex id>.grant`.
    var grantsDirectory: String { root + "/grants" }
    /// What this archive witnessed of other logs.
    var witnessDirectory: String { root + "/witness" }
}
