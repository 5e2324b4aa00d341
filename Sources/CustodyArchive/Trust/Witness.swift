import CustodyCrypto
import CustodyStorage
import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// Witnessing: cosigning other bodies' log checkpoints (C2SP tlog-cosignature) after checking that each one
/// extends the last one cosigned for that log, and collecting other bodies' cosignatures of our own.
extension Archive {
    /// What `witness cosign` did.
    package struct Cosignature: Sendable {
        /// The cosignature line (C2SP tlog-cosignature, type 0x04), ending in a newline.
        package var line: String
        /// The witnessed log's origin.
        package var origin: String
        /// The cosigned checkpoint's size.
        package var size: Int
        /// The size of the previous checkpoint cosigned for that log, or `nil` on first contact.
        package var previousSize: Int?
        /// The log's body's fingerprint.
        package var fingerprint: String
    }

    /// The largest `witness cosign` input read.
    package static let maxWitnessInput = 64 * 1024

    /// What `witness attach` did.
    package struct AttachedCosignature: Sendable {
        /// The witness's origin (the cosignature's key name).
        package var witness: String
        /// Its fingerprint.
        package var fingerprint: String
        /// The size of our checkpoint it cosigned.
        package var size: Int
        /// The cosignature's time (seconds since the epoch).
        package var timestamp: UInt64
    }
}

extension ArchiveContext {

    /// Where the last checkpoint cosigned for `origin` is kept.
    func witnessStatePath(origin: String) -> String {
        witnessDirectory + "/" + Encoding.hex(SHA256Hasher.hash(Array(origin.utf8)).prefix(16)) + ".checkpoint"
    }

    /// Splits a tlog-witness request into its old size, proof and note; a bare note has neither.
    package static func parseWitnessRequest(_ text: String) throws -> (oldSize: Int?, proof: [[UInt8]], note: String) {
        guard text.hasPrefix("old ") else { return (nil, [], text) }
        let bad = ArchiveError(
            .badInput,
            "the consistency request is malformed",
            fix: "give the exact output of custody prove --consistency N"
        )
        guard let blank = text.range(of: "\n\n") else { throw bad }
        let header = text[..<blank.lowerBound].split(separator: "\n", omittingEmptySubsequences: false)
        guard let first = header.first, let size = Int(first.dropFirst(4)), size >= 0,
            String(size) == first.dropFirst(4),
            header.count - 1 <= 63
        else { throw bad }
        let proof = try header.dropFirst().map { line -> [UInt8] in
            guard let hash = Encoding.bytes(base64: String(line)), hash.count == Merkle.hashByteCount else { throw bad }
            return hash
        }
        return (size, proof, String(text[blank.upperBound...]))
    }

    /// Checks that `checkpoint` extends `previous`, the last one cosigned for its log.
    fileprivate func checkExtends(
        _ previous: Checkpoint,
        with checkpoint: Checkpoint,
        oldSize: Int?,
        proof: [[UInt8]]
    ) throws {
        if checkpoint.size == previous.size, checkpoint.root == previous.root { return }
        if checkpoint.size < previous.size {
            throw ArchiveError(
                .badInput,
                "\(checkpoint.origin)'s checkpoint of size \(checkpoint.size) is older than the one of size \(previous.size) already cosigned; a witness only moves forward",
                fix:
                    "ask \(checkpoint.origin) for its current checkpoint with custody prove --consistency \(previous.size)"
            )
        }
        // What proves a fork: two checkpoints signed by the log key that cannot both be prefixes of one history —
        // the same size with different roots, or a proof that leads to the new signed root while showing that its
        // first `previous.size` leaves have another root. A proof that does not lead to the new root proves
        // nothing (it was damaged or forged on the way; the log key never signs proofs): refused, nothing filed.
        var proofText: String?
        if checkpoint.size > previous.size {
            guard let oldSize else {
                throw ArchiveError(
                    .badInput,
                    "a checkpoint of size \(checkpoint.size) without a consistency proof from size \(previous.size), the last one cosigned for \(checkpoint.origin)",
                    fix: "ask \(checkpoint.origin) for custody prove --consistency \(previous.size)"
                )
            }
            guard oldSize == previous.size else {
                throw ArchiveError(
                    .badInput,
                    "the request proves consistency from size \(oldSize), but the last checkpoint cosigned for \(checkpoint.origin) has size \(previous.size)",
                    fix: "ask \(checkpoint.origin) for custody prove --consistency \(previous.size)"
                )
            }
            let outcome = Merkle.consistency(
                proof,
                first: previous.size,
                second: checkpoint.size,
                firstRoot: previous.root,
                secondRoot: checkpoint.root
            )
            switch outcome {
            case .consistent:
                return
            case .invalid:
                throw ArchiveError(
                    .proofInvalid,
                    "proof-invalid: the consistency proof from size \(previous.size) to \(checkpoint.origin)'s checkpoint of size \(checkpoint.size) does not lead to that checkpoint's root (damaged or altered on the way); it proves neither consistency nor a fork; not cosigned",
                    fix:
                        "ask \(checkpoint.origin) again for custody prove --consistency \(previous.size), over another channel if it fails again"
                )
            case .inconsistent:
                proofText = "old \(previous.size)\n" + proof.map { Encoding.base64($0) + "\n" }.joined() + "\n"
            }
        }
        let evidence = try saveConflict(previous, checkpoint, proof: proofText)
        throw ArchiveError(
            .fork,
            "FORK: \(checkpoint.origin)'s checkpoint of size \(checkpoint.size) (root \(Encoding.base64(checkpoint.root))) is inconsistent with its checkpoint of size \(previous.size) (root \(Encoding.base64(previous.root))) cosigned before: the log was forked or its history rewritten; not cosigned",
            fix:
                "keep both signed checkpoints (saved in \(evidence)) as evidence and alert \(checkpoint.origin)'s operators"
        )
    }

    /// Saves two conflicting signed checkpoints, as proof of the conflict anyone can check.
    ///
    /// The file is the earlier note, an empty line, then the later one — preceded, when the proof is what shows the
    /// conflict, by that proof as a tlog-witness request header (`old <size>`, its hashes, an empty line).
    func saveConflict(_ previous: Checkpoint, _ checkpoint: Checkpoint, proof: String? = nil) throws -> String {
        let directory = witnessDirectory + "/conflicts"
        let code = POSIX.makeDirectories(directory)
        guard code == 0 else { throw ArchiveError.writeFailed("cannot create \(directory)", errno: code) }
        let path = directory + "/\(time(nil))-\(previous.size)-\(checkpoint.size).txt"
        try ArchiveFiles.writeAtomically(path, Array((previous.note + "\n" + (proof ?? "") + checkpoint.note).utf8))
        return path
    }

    /// Attaches cosignature lines (from `custody witness cosign` at another body) to the checkpoints they cosign.
    ///
    /// - Throws: ``ArchiveError``: bad input for text that is not cosignature lines; not authorised for a witness
    ///   not added with `witness add`; damaged (exit 1) for a line that cosigns none of our checkpoints.
    package func attachCosignatures(
        _ input: [UInt8],
        alsoFrom grantees: Bool = false
    ) async throws -> [Archive.AttachedCosignature] {
        guard input.count <= Archive.maxWitnessInput, let text = String(validating: input, as: UTF8.self) else {
            throw ArchiveError(
                .badInput,
                "the input is not cosignature lines",
                fix: "give the output of custody witness cosign"
            )
        }
        let lines = text.split(separator: "\n").filter { !$0.trimmingCharacters(in: .whitespaces).isEmpty }
        let signatures = lines.compactMap(SignedNote.parseSignatureLine)
        guard !signatures.isEmpty, signatures.count == lines.count else {
            throw ArchiveError(
                .badInput,
                "the input is not cosignature lines (\"— <name> <base64>\")",
                fix: "give the output of custody witness cosign"
            )
        }
        let sizes = ledger.checkpointSizes().reversed()
        var attached: [Archive.AttachedCosignature] = []
        for signature in signatures {
            // A known witness, or (online, from a peer that pulled) the grantee of one of this archive's grants.
            let registered = try knownBody(origin: signature.name, role: .witness).flatMap { body in
                body.signingKey.map { (key: $0, fingerprint: body.identity.fingerprint) }
            }
            let granted = grantees ? try await granteeKey(origin: signature.name) : nil
            guard let (key, fingerprint) = registered ?? granted else {
                throw ArchiveError(
                    .logUnknown,
                    "the cosigner \(signature.name) is not a known witness",
                    fix: "add its identity first: custody witness add <identity-file>"
                )
            }
            let witness = (identity: (fingerprint: fingerprint, name: signature.name), signingKey: key)
            var found: Archive.AttachedCosignature?
            for size in sizes {
                var checkpoint = try ledger.storedCheckpoint(size: size)
                guard
                    let timestamp = SignedNote.cosignatureTime(
                        signature,
                        body: checkpoint.body,
                        name: signature.name,
                        publicKey: key
                    )
                else { continue }
                let line = SignedNote.line(signature)
                if !checkpoint.note.contains(line) {
                    checkpoint.note += line
                    try ledger.replaceStoredCheckpoint(checkpoint)
                }
                found = Archive.AttachedCosignature(
                    witness: signature.name,
                    fingerprint: witness.identity.fingerprint,
                    size: size,
                    timestamp: timestamp
                )
                break
            }
            guard let found else {
                throw ArchiveError(
                    .damaged,
                    "the cosignature by \(signature.name) does not cosign any checkpoint this log signed",
                    fix: "check that it was made for this archive's checkpoint (custody checkpoint)"
                )
            }
            attached.append(found)
        }
        return attached
    }

    /// The signing key and fingerprint of the grantee called `origin` in one of this archive's grants.
    func granteeKey(origin: String) async throws -> (key: [UInt8], fingerprint: String)? {
        for summary in try await index().grants() where summary.direction == .outgoing {
            let grant = try await storedGrant(summary.id).grant
            if grant.grantee.origin == origin, let key = Encoding.bytes(base64: grant.grantee.signingKey),
                key.count == 32
            {
                return (key, grant.grantee.fingerprint)
            }
        }
        return nil
    }

    /// The size of the last checkpoint this archive cosigned for the log `origin`, if any.
    package func witnessedSize(origin: String) -> Int? {
        guard let bytes = try? ArchiveFiles.read(witnessStatePath(origin: origin), limit: Checkpoint.maxNoteBytes),
            let (body, _) = SignedNote.parse(String(decoding: bytes, as: UTF8.self)),
            let parsed = Checkpoint.parseBody(body)
        else { return nil }
        return parsed.size
    }

    /// The size of our newest checkpoint that the witness `origin` has validly cosigned, if any.
    package func sizeCosigned(by origin: String) async -> Int? {
        var keys: [String: [UInt8]?] = [:]
        for size in ledger.checkpointSizes().reversed() {
            guard let checkpoint = try? ledger.storedCheckpoint(size: size) else { continue }
            if await verifiedCosignatures(of: checkpoint, keys: &keys).contains(where: { $0.name == origin }) {
                return size
            }
        }
        return nil
    }

    /// The newest of our checkpoints that carries valid cosignatures, with only those (and the log's signature);
    /// `nil` when none does yet. A line that does not verify with the key of the witness it names is left out:
    /// what is printed or put in a bundle as cosigned was cosigned.
    package func cosignedCheckpoint() async throws -> Checkpoint? {
        var keys: [String: [UInt8]?] = [:]
        for size in ledger.checkpointSizes().reversed() {
            var checkpoint = try ledger.storedCheckpoint(size: size)
            let cosignatures = await verifiedCosignatures(of: checkpoint, keys: &keys)
            guard !cosignatures.isEmpty, let (body, signatures) = SignedNote.parse(checkpoint.note) else { continue }
            let own = signatures.filter {
                SignedNote.isValid($0, body: body, name: config.origin, publicKey: ledger.logPublicKey)
            }
            checkpoint.note = body + "\n" + (own.prefix(1) + cosignatures).map(SignedNote.line).joined()
            return checkpoint
        }
        return nil
    }

    /// The cosignature lines of `checkpoint` that verify over its body with the key of the cosigner they name: a
    /// known witness, or the grantee of one of this archive's grants (the cosigners ``attachCosignatures(_:alsoFrom:)``
    /// accepts). `keys` caches the lookups by name (`nil`: no such cosigner).
    func verifiedCosignatures(
        of checkpoint: Checkpoint,
        keys: inout [String: [UInt8]?]
    ) async -> [SignedNote.Signature] {
        guard let (body, signatures) = SignedNote.parse(checkpoint.note) else { return [] }
        var verified: [SignedNote.Signature] = []
        for signature in signatures where signature.name != config.origin {
            if keys[signature.name] == nil {
                var key = (try? knownBody(origin: signature.name, role: .witness))??.signingKey
                if key == nil { key = (try? await granteeKey(origin: signature.name))??.key }
                keys[signature.name] = .some(key)
            }
            guard let key = keys[signature.name] ?? nil else { continue }
            if SignedNote.cosignatureTime(signature, body: body, name: signature.name, publicKey: key) != nil {
                verified.append(signature)
            }
        }
        return verified
    }
}

extension Archive.Unlocked {

    /// Cosigns a peer's checkpoint: `input` is a bare signed checkpoint or a C2SP tlog-witness add-checkpoint body
    /// (`old <size>`, proof hashes in base64 one a line, a blank line, the signed checkpoint).
    ///
    /// The checkpoint must be signed by the log key of a body added with ``trust(_:role:)`` (role `witness`) and,
    /// unless it is the first seen for that log, be proved consistent with the last one cosigned. The new
    /// checkpoint is stored before the cosignature is returned, under `witness/lock`.
    ///
    /// - Throws: ``ArchiveError``: not authorised for an unknown log; bad input for malformed input, a stale
    ///   `old` size or a missing proof; damaged (exit 1) for a bad signature or a checkpoint inconsistent with
    ///   the one cosigned before — a fork or rewritten history, saved under `witness/conflicts/`.
    package func cosign(_ input: [UInt8], now: UInt64 = UInt64(time(nil))) throws -> Archive.Cosignature {
        guard input.count <= Archive.maxWitnessInput, let text = String(validating: input, as: UTF8.self) else {
            throw ArchiveError(
                .badInput,
                "the input is not a checkpoint (not UTF-8 text of at most 64 KiB)",
                fix: "give the output of custody checkpoint or custody prove --consistency N"
            )
        }
        let (oldSize, proof, note) = try Self.parseWitnessRequest(text)
        guard let (body, _) = SignedNote.parse(note), let parsed = Checkpoint.parseBody(body) else {
            throw ArchiveError(
                .badInput,
                "the input holds no signed checkpoint",
                fix: "give the output of custody checkpoint or custody prove --consistency N"
            )
        }
        guard let peer = try knownBody(origin: parsed.origin, role: .witness), let logKey = peer.logKey else {
            throw ArchiveError(
                .logUnknown,
                "the log \(parsed.origin) is not known to this archive",
                fix: "add its body's identity first: custody witness add <identity-file>"
            )
        }
        guard let checkpoint = Checkpoint.verified(note, origin: parsed.origin, publicKey: logKey.publicKey) else {
            throw ArchiveError(
                .damaged,
                "the checkpoint of \(parsed.origin) (size \(parsed.size)) is not signed by its log key",
                fix: "do not trust it; ask \(parsed.origin)'s operators for their checkpoint"
            )
        }
        let code = POSIX.makeDirectories(witnessDirectory)
        guard code == 0 else { throw ArchiveError.writeFailed("cannot create \(witnessDirectory)", errno: code) }
        let lock = try FileLock(path: witnessDirectory + "/lock", mode: .exclusive)
        defer { withExtendedLifetime(lock) {} }
        let statePath = witnessStatePath(origin: parsed.origin)
        var previous: Checkpoint?
        if POSIX.statPath(statePath) != nil {
            let bytes = try ArchiveFiles.read(statePath, limit: Checkpoint.maxNoteBytes)
            previous = Checkpoint.verified(
                String(decoding: bytes, as: UTF8.self),
                origin: parsed.origin,
                publicKey: logKey.publicKey
            )
            guard previous != nil else {
                throw ArchiveError(
                    .damaged,
                    "the stored checkpoint of \(parsed.origin) (\(statePath)) is not valid",
                    fix: "restore the witness/ folder from a backup"
                )
            }
        }
        if let previous {
            try checkExtends(previous, with: checkpoint, oldSize: oldSize, proof: proof)
        }
        if previous?.note != checkpoint.note {
            try ArchiveFiles.writeAtomically(statePath, Array(checkpoint.note.utf8))
        }
        let line = SignedNote.cosignatureLine(
            body: checkpoint.body,
            name: config.origin,
            key: keys.signing,
            timestamp: now
        )
        return Archive.Cosignature(
            line: line,
            origin: checkpoint.origin,
            size: checkpoint.size,
            previousSize: previous?.size,
            fingerprint: peer.identity.fingerprint
        )
    }
}
