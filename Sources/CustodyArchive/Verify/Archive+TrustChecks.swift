import CustodyCrypto
import CustodyStorage
import Foundation
import Synchronization

extension ArchiveContext {
    /// `identity.json`: an identity file, validly self-signed, naming exactly the name, origin and keys of
    /// `archive.json` (so another body's valid identity swapped in is caught too).
    func identityProblems() -> [VerifyProblem] {
        do {
            _ = try identity()
            return []
        } catch let error as ArchiveError {
            return [VerifyProblem(kind: .identityInvalid, detail: error.problem)]
        } catch {
            return [VerifyProblem(kind: .identityInvalid, detail: "identity.json cannot be read")]
        }
    }

    /// Every signature line of every checkpoint this log stores (`log/checkpoint`, `journal/checkpoints/<size>`):
    /// besides the log's own signature, each must be a valid cosignature of that checkpoint by the body it names —
    /// a known witness (`bodies.json`, role `witness`) or the grantee of one of this archive's grants, the cosigners
    /// `witness attach` accepts.
    ///
    /// - Parameter grants: The grants this log's `grant` events name (their files already checked).
    /// - Returns: A `cosignature-invalid` or `cosignature-unknown` problem per bad line.
    func cosignatureProblems(grants: [GrantReference]) -> [VerifyProblem] {
        var cosigners: [String: [UInt8]] = [:]
        // The grantees' keys are read (from the grant files) only when a line names no known witness.
        var grantees: [String: [UInt8]]?
        func granteeKeys() -> [String: [UInt8]] {
            if let grantees { return grantees }
            var keys: [String: [UInt8]] = [:]
            for reference in grants {
                guard
                    let signed = try? ArchiveFiles.read(
                        grantsDirectory + "/\(reference.id).grant",
                        limit: Grant.maxBytes
                    ),
                    Grant.hash(signed) == reference.hash, let grant = try? Grant.parse(signed),
                    grant.granter.signingKey == config.signingKey,
                    let key = Encoding.bytes(base64: grant.grantee.signingKey), key.count == 32
                else { continue }
                keys[grant.grantee.origin] = key
            }
            grantees = keys
            return keys
        }
        var problems: [VerifyProblem] = []
        let bodies: [KnownBody]
        do {
            bodies = try knownBodies()
        } catch let error as ArchiveError {
            problems.append(
                VerifyProblem(kind: .cosignatureUnknown, detail: "\(error.problem); no cosigner is known")
            )
            bodies = []
        } catch {
            bodies = []
        }
        for body in bodies where body.roles.contains(.witness) {
            if let key = body.signingKey { cosigners[body.identity.origin] = key }
        }
        var notes: [(path: String, note: String)] = []
        if let latest = try? ledger.latestCheckpoint() { notes.append(("log/checkpoint", latest.note)) }
        for size in ledger.checkpointSizes() {
            if let stored = try? ledger.storedCheckpoint(size: size) {
                notes.append(("journal/checkpoints/\(size)", stored.note))
            }
        }
        // (Notes that are not validly signed by the log are reported as checkpoint-invalid by the ledger audit.)
        for (path, note) in notes {
            guard let (body, signatures) = SignedNote.parse(note) else { continue }
            for signature in signatures {
                let name = TerminalText.escape(signature.name)
                if signature.name == config.origin {
                    if SignedNote.isValid(signature, body: body, name: config.origin, publicKey: ledger.logPublicKey) {
                        continue
                    }
                    problems.append(
                        VerifyProblem(
                            kind: .cosignatureInvalid,
                            detail:
                                "\(path) holds a signature line under this log's own name that does not verify with its log key"
                        )
                    )
                } else if let key = cosigners[signature.name] ?? granteeKeys()[signature.name] {
                    guard SignedNote.cosignatureTime(signature, body: body, name: signature.name, publicKey: key) == nil
                    else { continue }
                    problems.append(
                        VerifyProblem(
                            kind: .cosignatureInvalid,
                            detail:
                                "\(path) holds a cosignature by \(name) that does not verify with that witness's key over this checkpoint (forged or altered)"
                        )
                    )
                } else {
                    problems.append(
                        VerifyProblem(
                            kind: .cosignatureUnknown,
                            detail:
                                "\(path) holds a signature line by \(name), which is no known witness of this archive (planted, or its witness was never added)"
                        )
                    )
                }
            }
        }
        return problems
    }

    /// What this archive stores about peers' logs: each `witness/<hex>.checkpoint` must be the state file of a known
    /// witness's log (its name the hash of that origin) and hold a checkpoint signed by that log's key.
    func witnessStateProblems() -> [VerifyProblem] {
        guard let names = try? listDirectory(witnessDirectory), !names.isEmpty else { return [] }
        var logs: [String: KnownBody] = [:]
        for body in (try? knownBodies()) ?? [] where body.roles.contains(.witness) {
            let path = witnessStatePath(origin: body.identity.origin)
            logs[String(path.dropFirst(witnessDirectory.count + 1))] = body
        }
        var problems: [VerifyProblem] = []
        for name in names.sorted() where name.hasSuffix(".checkpoint") {
            let shown = "witness/" + TerminalText.escape(name)
            guard let body = logs[name], let logKey = body.logKey else {
                problems.append(
                    VerifyProblem(
                        kind: .witnessStateInvalid,
                        detail: "\(shown) is the state of no known witness's log (planted, or its body was never added)"
                    )
                )
                continue
            }
            let path = witnessDirectory + "/" + name
            let regular = POSIX.lstatPath(path).map { POSIX.isRegular($0.st_mode) } ?? false
            let bytes = regular ? try? ArchiveFiles.read(path, limit: Checkpoint.maxNoteBytes) : nil
            guard let bytes,
                Checkpoint.verified(
                    String(decoding: bytes, as: UTF8.self),
                    origin: body.identity.origin,
                    publicKey: logKey.publicKey
                ) != nil
            else {
                problems.append(
                    VerifyProblem(
                        kind: .witnessStateInvalid,
                        detail:
                            "\(shown) is not a checkpoint of \(TerminalText.escape(body.identity.origin)) signed by its log key; witness cosign refuses that log until it is restored from a backup"
                    )
                )
                continue
            }
        }
        return problems
    }

    /// The fork evidence under `witness/conflicts/` (LEDGER.md section 12): each file must hold two checkpoints
    /// validly signed by the log key of one known witness. Evidence that is not validly signed is a problem (it
    /// would accuse a body of a fork it never signed); validly signed checkpoints that do not by themselves prove
    /// a fork (kept before proofs were saved with them) are a warning.
    ///
    /// - Returns: `witness-conflict-invalid` problems, and warnings.
    func conflictRecordProblems() -> (problems: [VerifyProblem], warnings: [String]) {
        let directory = witnessDirectory + "/conflicts"
        guard let names = try? listDirectory(directory), !names.isEmpty else { return ([], []) }
        var logs: [String: [UInt8]] = [:]
        for body in (try? knownBodies()) ?? [] where body.roles.contains(.witness) {
            if let key = body.logKey { logs[body.identity.origin] = key.publicKey }
        }
        var problems: [VerifyProblem] = []
        var warnings: [String] = []
        for name in names.sorted() {
            let shown = "witness/conflicts/" + TerminalText.escape(name)
            let path = directory + "/" + name
            guard let stat = POSIX.lstatPath(path), POSIX.isRegular(stat.st_mode),
                let bytes = try? ArchiveFiles.read(path, limit: 3 * Checkpoint.maxNoteBytes),
                let text = String(validating: bytes, as: UTF8.self)
            else {
                problems.append(
                    VerifyProblem(
                        kind: .witnessConflictInvalid,
                        detail: "\(shown) is not a readable conflict record"
                    )
                )
                continue
            }
            // "<body>\n\n<signatures>\n" "\n" ["old m\n<hashes>\n" "\n"] "<body>\n\n<signatures>\n"
            let parts = text.components(separatedBy: "\n\n")
            guard parts.count == 4 || parts.count == 5,
                let origin = parts[0].split(separator: "\n", maxSplits: 1).first.map(String.init),
                let key = logs[origin],
                let earlier = Checkpoint.verified(parts[0] + "\n\n" + parts[1] + "\n", origin: origin, publicKey: key),
                let later = Checkpoint.verified(
                    parts[parts.count - 2] + "\n\n" + parts[parts.count - 1],
                    origin: origin,
                    publicKey: key
                )
            else {
                problems.append(
                    VerifyProblem(
                        kind: .witnessConflictInvalid,
                        detail:
                            "\(shown) does not hold two checkpoints signed by the log key of a known witness: it is no evidence of a fork (altered or planted)"
                    )
                )
                continue
            }
            var proven = earlier.size == later.size && earlier.root != later.root
            if parts.count == 5, earlier.size < later.size,
                let (oldSize, proof, _) = try? Self.parseWitnessRequest(parts[2] + "\n\n"), oldSize == earlier.size,
                case .inconsistent = Merkle.consistency(
                    proof,
                    first: earlier.size,
                    second: later.size,
                    firstRoot: earlier.root,
                    secondRoot: later.root
                )
            {
                proven = true
            }
            if !proven {
                warnings.append(
                    "\(shown) holds two validly signed checkpoints of \(TerminalText.escape(origin)) that do not by themselves prove a fork (no proof was kept with them)"
                )
            }
        }
        return (problems, warnings)
    }
}
