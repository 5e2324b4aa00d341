extension VerifyProblem {
    /// What kind of problem: a stable kebab-case name, the `kind` field of `verify --json` and of a bundle
    /// report (Docs/LEDGER.md section 14, Docs/SHARING.md section 4).
    ///
    /// An extensible set, as ``ArchiveError/Reason`` is; scripts compare these names, code compares values.
    package struct Kind: RawRepresentable, Hashable, Sendable, Codable, CustomStringConvertible {
        package let rawValue: String

        package init(rawValue: String) { self.rawValue = rawValue }

        package var description: String { rawValue }

        /// A journal entry does not parse or its signature does not verify.
        package static let badEntry = Kind(rawValue: "bad-entry")
        /// The bundle is truncated or not well formed.
        package static let bundleDamaged = Kind(rawValue: "bundle-damaged")
        /// Two stored checkpoints are inconsistent with each other.
        package static let checkpointFork = Kind(rawValue: "checkpoint-fork")
        /// A stored checkpoint is unreadable or not signed by the log key.
        package static let checkpointInvalid = Kind(rawValue: "checkpoint-invalid")
        /// A chunk key is not the one its convergence secret derives (deep).
        package static let chunkKeyMismatch = Kind(rawValue: "chunk-key-mismatch")
        /// An item does not open its evidence commitment (deep).
        package static let commitmentMismatch = Kind(rawValue: "commitment-mismatch")
        /// An object does not hash to its name, or cannot be read.
        package static let corrupt = Kind(rawValue: "corrupt")
        /// A stored cosignature does not verify against its witness.
        package static let cosignatureInvalid = Kind(rawValue: "cosignature-invalid")
        /// A stored cosignature is by no known witness.
        package static let cosignatureUnknown = Kind(rawValue: "cosignature-unknown")
        /// A bundle entry does not parse or verify.
        package static let entryInvalid = Kind(rawValue: "entry-invalid")
        /// The bundle's grant is not of the documented form.
        package static let grantMalformed = Kind(rawValue: "grant-malformed")
        /// The grant is not valid now.
        package static let grantNotValid = Kind(rawValue: "grant-not-valid")
        /// The bundle's grant is not signed by its granter.
        package static let grantSignature = Kind(rawValue: "grant-signature")
        /// The bundle carries another grant than the one expected.
        package static let grantUnexpected = Kind(rawValue: "grant-unexpected")
        /// The bundle does not prove the grant is in the granter's log.
        package static let grantUnlogged = Kind(rawValue: "grant-unlogged")
        /// The granter is not the body named.
        package static let granterMismatch = Kind(rawValue: "granter-mismatch")
        /// The granter is not a trusted body.
        package static let granterUntrusted = Kind(rawValue: "granter-untrusted")
        /// The grant event names a member but the bundle does not prove the granter's roster up to it.
        package static let grantMemberUnproven = Kind(rawValue: "grant-member-unproven")
        /// A journal entry appears twice (a replay).
        package static let replayedEntry = Kind(rawValue: "replayed-entry")
        /// A stored grant is missing, altered or not validly signed, or not the one its event hashed.
        package static let grantMismatch = Kind(rawValue: "grant-mismatch")
        /// `identity.json` is not this archive's valid self-signed identity.
        package static let identityInvalid = Kind(rawValue: "identity-invalid")
        /// The index disagrees with the journal.
        package static let indexMismatch = Kind(rawValue: "index-mismatch")
        /// An item of the grant has no proven origin event.
        package static let itemUnproven = Kind(rawValue: "item-unproven")
        /// The journal has invalid bytes after its last whole entry.
        package static let journalDamaged = Kind(rawValue: "journal-damaged")
        /// The Merkle log does not hash to the signed root.
        package static let ledgerMismatch = Kind(rawValue: "ledger-mismatch")
        /// The journal holds fewer entries than a signed checkpoint.
        package static let ledgerTruncated = Kind(rawValue: "ledger-truncated")
        /// An object the journal names is not in the store.
        package static let missing = Kind(rawValue: "missing")
        /// A bundle object does not hash to its name or is not of its size.
        package static let objectCorrupt = Kind(rawValue: "object-corrupt")
        /// A bundle object is sent twice.
        package static let objectDuplicate = Kind(rawValue: "object-duplicate")
        /// An object the grant releases is not in the bundle.
        package static let objectMissing = Kind(rawValue: "object-missing")
        /// Bundle objects are not in the order the grant names them.
        package static let objectOrder = Kind(rawValue: "object-order")
        /// A bundle object is not released by the grant.
        package static let objectUnreferenced = Kind(rawValue: "object-unreferenced")
        /// A re-share's parent grant is not in the bundle.
        package static let parentMissing = Kind(rawValue: "parent-missing")
        /// An inclusion or consistency proof does not verify.
        package static let proofInvalid = Kind(rawValue: "proof-invalid")
        /// A re-share widens its parent or is not allowed by it.
        package static let reshareInvalid = Kind(rawValue: "reshare-invalid")
        /// An item or object is outside the grant's scope.
        package static let scopeMismatch = Kind(rawValue: "scope-mismatch")
        /// A decrypted item does not have the SHA-256 recorded at ingest (deep).
        package static let sha256Mismatch = Kind(rawValue: "sha256-mismatch")
        /// An object is not of the size its event records.
        package static let sizeMismatch = Kind(rawValue: "size-mismatch")
        /// A stored tile disagrees with the journal.
        package static let tileMismatch = Kind(rawValue: "tile-mismatch")
        /// A tile is stored beyond the log.
        package static let tileUnexpected = Kind(rawValue: "tile-unexpected")
        /// A `key-rotation` or `rewrap` event does not follow the rules of Docs/LEDGER.md section 19, or
        /// `archive.json` names other box keys than the log's rotations.
        package static let keyRotationInvalid = Kind(rawValue: "key-rotation-invalid")
        /// An item does not decrypt with its keys (deep).
        package static let undecryptable = Kind(rawValue: "undecryptable")
        /// A recorded fork does not prove one.
        package static let witnessConflictInvalid = Kind(rawValue: "witness-conflict-invalid")
        /// What this archive witnessed of another log is unreadable or unsigned.
        package static let witnessStateInvalid = Kind(rawValue: "witness-state-invalid")
    }
}
