import CustodyCrypto
import CustodyStorage
import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// What `custody keys rotate` did.
package struct KeyRotationResult: Sendable, Encodable {
    /// The fingerprint before and after (it changes with the box key).
    package var previousFingerprint: String
    package var fingerprint: String
    /// The new box key, base64.
    package var boxKey: String
    /// The `key-rotation` entry's index in the log.
    package var logIndex: Int
    /// How many items' keys were wrapped anew.
    package var rewrapped: Int
    /// How many members' key files received the new secrets.
    package var members: Int
    /// Whether a recovery split was retired (its shares rebuild the old secrets; a new split is needed).
    package var recoveryRetired: Bool
    /// Whether an interrupted rotation was finished rather than a new one made.
    package var resumed: Bool

    enum CodingKeys: String, CodingKey {
        case fingerprint, members, rewrapped, resumed
        case previousFingerprint = "previous_fingerprint"
        case boxKey = "box_key"
        case logIndex = "log_index"
        case recoveryRetired = "recovery_retired"
    }
}

/// `rotation/state.json`: a rotation under way (Docs/FORMAT.md section 4.3). Written after the new key files are
/// staged in `rotation/members/` and before the `key-rotation` event: while it exists every other command that
/// unlocks refuses, and `keys rotate` finishes (the event is in the log) or discards (it is not) the rotation.
struct RotationState: Codable {
    var format = "custody-rotation"
    var version = 1
    var boxKey: String
    var previousBoxKey: String

    enum CodingKeys: String, CodingKey {
        case format, version
        case boxKey = "box_key"
        case previousBoxKey = "previous_box_key"
    }
}

extension ArchiveError.Reason {
    /// A key rotation was interrupted and must be finished first.
    package static let rotationUnfinished = Self("rotation-unfinished", .temporary)
}

extension Archive {
    static func rotationPath(_ root: String) -> String { root + "/rotation" }
    static func rotationStatePath(_ root: String) -> String { rotationPath(root) + "/state.json" }
    static func stagedMembersPath(_ root: String) -> String { rotationPath(root) + "/members" }

    /// Refuses to unlock while a key rotation is unfinished: the keys in `members/` may be on either side of it.
    static func refuseDuringRotation(root: String) throws {
        guard POSIX.lstatPath(rotationStatePath(root)) != nil else { return }
        throw rotationUnfinished
    }

    static var rotationUnfinished: ArchiveError {
        ArchiveError(
            .rotationUnfinished,
            "a key rotation of this archive was interrupted",
            fix: "an administrator finishes it with custody keys rotate --resume"
        )
    }

    fileprivate static func rotationState(root: String) throws -> RotationState? {
        guard POSIX.lstatPath(rotationStatePath(root)) != nil else { return nil }
        let bytes = try ArchiveFiles.read(rotationStatePath(root), limit: 4096)
        guard let state = try? JSONDecoder().decode(RotationState.self, from: Data(bytes)),
            state.format == "custody-rotation", state.version == 1,
            Encoding.bytes(base64: state.boxKey)?.count == 32, Encoding.bytes(base64: state.previousBoxKey)?.count == 32
        else {
            throw ArchiveError(.damaged, "rotation/state.json is malformed", fix: "restore the archive from a backup")
        }
        return state
    }

    /// Removes `rotation/` and everything staged in it.
    fileprivate static func removeRotation(root: String) throws {
        let staged = stagedMembersPath(root)
        for name in (try? listDirectory(staged)) ?? [] {
            guard unlink(staged + "/" + name) == 0 || errno == ENOENT else {
                throw ArchiveError.writeFailed("cannot delete \(staged)/\(name)", errno: errno)
            }
        }
        _ = rmdir(staged)
        _ = unlink(rotationStatePath(root))
        guard rmdir(rotationPath(root)) == 0 || errno == ENOENT else {
            throw ArchiveError.writeFailed("cannot delete \(rotationPath(root))", errno: errno)
        }
        _ = POSIX.syncDirectory(root)
    }

    /// Rotates the archive's content secrets as an administrator, or finishes (`resume`) a rotation that was
    /// interrupted (Docs/OPERATIONS.md section 19, Docs/LEDGER.md section 19).
    ///
    /// A rotation draws a new master secret (so a new convergence secret) and a new box key; keeps the signing and
    /// log keys; stages every current member's key file with a share of the new secrets; records a `key-rotation`
    /// event (the reason sealed to the new box key) — the commit point; wraps every item's keys anew to the new
    /// box key (`rewrap` events); then switches `archive.json`, the key files and `identity.json` (which now
    /// carries the key transition peers follow) and retires the recovery split. Someone who copied the old
    /// secrets cannot open what is ingested afterwards.
    ///
    /// - Parameters:
    ///   - reason: Why (sealed; required unless resuming).
    ///   - resume: Finish an interrupted rotation instead of starting one.
    ///   - progress: Called with (items rewrapped, items to rewrap).
    /// - Returns: What was done: fingerprints, the log index of the rotation, counts.
    /// - Throws: ``ArchiveError``: role not allowed for a member who is not an administrator; usage for a blank
    ///   reason, an archive without members, pending roster proposals or members without a key file here;
    ///   rotation unfinished when one is under way and `resume` is not given.
    package func rotateKeys(
        reason: String?,
        resume: Bool,
        progress: (@Sendable (Int, Int) -> Void)? = nil
    ) async throws -> KeyRotationResult {
        guard hasMembers else {
            throw ArchiveError(
                .usage,
                "this archive keeps its secrets in keys.json, under one passphrase",
                fix: "run custody member migrate first, then rotate"
            )
        }
        if let state = try Self.rotationState(root: root) {
            guard resume else { throw Self.rotationUnfinished }
            return try await finishRotation(state, progress: progress)
        }
        guard !resume else {
            throw ArchiveError(.notFound, "no key rotation is under way", fix: "start one with --reason \"…\"")
        }
        guard let reason else {
            throw ArchiveError(.usage, "a rotation needs a reason", fix: "give --reason \"…\" (it is sealed)")
        }
        try Self.checkReason(reason)
        let unlocked = try unlock()
        return try await unlocked.startRotation(reason: reason, progress: progress)
    }

    /// Finishes the rotation `state` describes, or discards it when its event never reached the log.
    private func finishRotation(
        _ state: RotationState,
        progress: (@Sendable (Int, Int) -> Void)? = nil
    ) async throws -> KeyRotationResult {
        // The acting member's new share: staged, or already switched into members/.
        let file = try Self.memberKeyFile(root: root, named: memberName)
        let stagedPath = Self.stagedMembersPath(root) + "/\(file.member.id.hex).json"
        let staged: MemberKeyFile? =
            POSIX.lstatPath(stagedPath) == nil
            ? nil
            : try JSONDecoder().decode(
                MemberKeyFile.self,
                from: Data(try ArchiveFiles.read(stagedPath, limit: MemberKeyFile.maxBytes))
            )
        guard let passphrase else {
            throw ArchiveError(
                .passphraseNeeded,
                "finishing the rotation needs the passphrase of \(TerminalText.escape(file.member.name))",
                fix: "set CUSTODY_PASSPHRASE, pass --passphrase-file, or run in a terminal to be asked"
            )
        }
        let secret = try passphrase("\(file.member.name) in \(config.name)")
        let current = try file.open(passphrase: secret, origin: config.origin)
        let opened = try staged.map { try $0.open(passphrase: secret, origin: config.origin) } ?? current
        guard let next = try ArchiveKeys(share: opened.kind, secrets: opened.secrets), next.isComplete,
            Encoding.base64(next.box.publicKey) == state.boxKey
        else {
            throw ArchiveError(
                .roleNotAllowed,
                "only an administrator whose key file was staged can finish the rotation",
                fix: "run custody keys rotate --resume --member NAME as an administrator"
            )
        }
        let acting = ActingMember(member: file.member, signing: opened.signing)
        let unlocked = Unlocked(archive: self, keys: next, member: acting)
        try unlocked.authorize(acting, for: [.manageMembers])
        guard let event = try unlocked.rotationEvent(boxKey: state.boxKey) else {
            // Staged but never committed: nothing changed; the staging goes.
            try Self.removeRotation(root: root)
            throw ArchiveError(
                .notFound,
                "the interrupted rotation never reached the log; it was discarded and nothing changed",
                fix: "start a new one with custody keys rotate --reason \"…\""
            )
        }
        var result = try await unlocked.completeRotation(
            previous: state.previousBoxKey,
            rotationIndex: event.index,
            progress: progress
        )
        result.resumed = true
        return result
    }
}

extension Archive.Unlocked {
    /// Stages, commits and completes a new rotation (``Archive/rotateKeys(reason:resume:progress:)``).
    fileprivate func startRotation(
        reason: String,
        progress: (@Sendable (Int, Int) -> Void)?
    ) async throws -> KeyRotationResult {
        let acting = try actingMember()
        let roster = try authorize(acting, for: [.manageMembers])
        guard keys.isComplete else {
            throw ArchiveError(
                .roleNotAllowed,
                "only an administrator can rotate the archive's keys",
                fix: "run the command as an administrator (--member NAME)"
            )
        }
        _ = try await index()
        let proposals = (try? listDirectory(proposalsPath))?.filter { $0.hasSuffix(".json") } ?? []
        guard proposals.isEmpty else {
            throw ArchiveError(
                .usage,
                "\(proposals.count) roster change(s) await approval; their key files hold the current secrets",
                fix: "approve or discard them (custody member proposals), then rotate"
            )
        }
        let files = try memberKeyFiles()
        var staged: [MemberKeyFile] = []
        let next = try keys.rotated()
        for member in roster.currentMembers {
            guard var file = files.first(where: { $0.member.id == member.id }) else {
                throw ArchiveError(
                    .usage,
                    "member \(TerminalText.escape(member.name)) has no key file in this archive, so cannot receive the new secrets",
                    fix: "bring their key file back into members/, or remove them (custody member remove), then rotate"
                )
            }
            file.member.role = member.role
            try file.seal(ArchiveKeys.Share(role: member.role), of: next)
            staged.append(file)
        }
        // Stage: every new key file, then the state that marks the rotation as under way.
        let directory = Archive.stagedMembersPath(root)
        let made = POSIX.makeDirectories(directory)
        guard made == 0 else { throw ArchiveError.writeFailed("cannot create \(directory)", errno: made) }
        for file in staged {
            try ArchiveFiles.writeAtomically(directory + "/\(file.member.id.hex).json", JSONFormat.fileBytes(file))
        }
        _ = POSIX.syncDirectory(directory)
        let previous = Encoding.base64(keys.box.publicKey)
        let boxKey = Encoding.base64(next.box.publicKey)
        try ArchiveFiles.writeAtomically(
            Archive.rotationStatePath(root),
            JSONFormat.fileBytes(RotationState(boxKey: boxKey, previousBoxKey: previous))
        )
        _ = POSIX.syncDirectory(Archive.rotationPath(root))
        CrashPoint.hit("rotation-staged")
        // Commit: the key-rotation event, its reason sealed to the new box key.
        let sealed = try BoxKey.seal(Array(try Event.encoder.encode(["reason": reason])), to: next.box.publicKey)
        let reasonRef = ObjectRef(name: ObjectName(of: sealed), size: Int64(sealed.count))
        try await store.putObject(sealed, as: reasonRef.name)
        var event = Event(type: .keyRotation, time: RFC3339.now(), actor: config.origin)
        event.boxKey = boxKey
        event.previousBoxKey = previous
        event.sealed = reasonRef
        let rotationIndex = try await index().position().count
        _ = try await record([event])
        let completing = Archive.Unlocked(archive: archive, keys: next, member: acting)
        return try await completing.completeRotation(
            previous: previous,
            rotationIndex: rotationIndex,
            progress: progress
        )
    }

    /// The latest `key-rotation` event naming `boxKey`, with its index and entry bytes.
    fileprivate func rotationEvent(boxKey: String) throws -> (index: Int, event: Event, entry: [UInt8])? {
        var found: (index: Int, event: Event, entry: [UInt8])?
        let marker = Array("\"type\":\"key-rotation\"".utf8)
        _ = try journal.scan(from: .start) { entry in
            guard entry.bytes.firstRange(of: marker) != nil,
                let event = try? Event.parse(entry.bytes, publicKey: signingPublicKey), event.type == .keyRotation,
                event.boxKey == boxKey
            else { return }
            found = (entry.index, event, entry.bytes)
        }
        return found
    }

    /// Wraps every item's keys anew to these (the new) keys' box key, then switches the archive's files over.
    fileprivate func completeRotation(
        previous: String,
        rotationIndex: Int,
        progress: (@Sendable (Int, Int) -> Void)?
    ) async throws -> KeyRotationResult {
        let index = try await index()
        let items = try index.list(ItemFilter())
        var pending: [IndexedItem] = []
        for item in items {
            if let rewrap = try index.rewrapEntry(item.id), rewrap.count > rotationIndex { continue }
            pending.append(item)
        }
        let total = pending.count
        var done = 0
        progress?(0, total)
        let recipient = box.publicKey
        for start in stride(from: 0, to: pending.count, by: 1000) {
            let batch = pending[start..<Swift.min(pending.count, start + 1000)]
            let events = try batch.map { indexed -> Event in
                let ingest = try ingestEvent(of: indexed)
                guard let item = ingest.item, let wrapped = ingest.keys else {
                    throw ArchiveError(.damaged, "an ingest event is incomplete", fix: "run custody verify")
                }
                var meta = try keys.unwrap(wrapped.meta, item: item)
                defer { wipe(&meta) }
                var rewrapped = WrappedKeys(meta: try ArchiveKeys.wrap(meta, item: item, to: recipient))
                if let content = wrapped.content {
                    var key = try keys.unwrap(content, item: item)
                    defer { wipe(&key) }
                    rewrapped.content = try ArchiveKeys.wrap(key, item: item, to: recipient)
                }
                var event = Event(type: .rewrap, time: RFC3339.now(), actor: config.origin, item: item)
                event.keys = rewrapped
                return event
            }
            _ = try await record(events)
            done += batch.count
            progress?(done, total)
            CrashPoint.hit("rotation-rewrapped-batch")
        }
        return try switchToRotatedKeys(previous: previous, rotationIndex: rotationIndex, rewrapped: total)
    }

    /// The last step: `archive.json` names the new box key, the staged key files replace the old, `identity.json`
    /// carries the transition, the recovery split retires and `rotation/` goes. Each step is idempotent, so an
    /// interruption anywhere here is finished by `keys rotate --resume`.
    private func switchToRotatedKeys(
        previous: String,
        rotationIndex: Int,
        rewrapped: Int
    ) throws -> KeyRotationResult {
        let boxKey = Encoding.base64(box.publicKey)
        guard let previousBox = Encoding.bytes(base64: previous) else {
            throw ArchiveError(.damaged, "the rotation names a malformed box key", fix: "run custody verify")
        }
        let previousFingerprint = Identity.fingerprint(signingKey: signing.publicKey, boxKey: previousBox)
        var updated = config
        if updated.boxKey != boxKey {
            updated.retiredBoxKeys = (updated.retiredBoxKeys ?? []) + [updated.boxKey]
            updated.boxKey = boxKey
            try ArchiveFiles.writeAtomically(Archive.configPath(root), JSONFormat.fileBytes(updated), mode: 0o644)
        }
        CrashPoint.hit("rotation-config-switched")
        let staged = Archive.stagedMembersPath(root)
        var members = 0
        for name in try listDirectory(staged) where name.hasSuffix(".json") {
            guard let id = MemberID(hex: String(name.dropLast(5))) else { continue }
            guard rename(staged + "/" + name, Archive.memberKeyPath(root, id)) == 0 else {
                throw ArchiveError.writeFailed("cannot move the new key file of member \(id)", errno: errno)
            }
            members += 1
        }
        _ = POSIX.syncDirectory(Archive.membersPath(root))
        let recoveryRetired = POSIX.lstatPath(recoveryPath) != nil
        if recoveryRetired {
            guard unlink(recoveryPath) == 0 || errno == ENOENT else {
                throw ArchiveError.writeFailed("cannot delete \(recoveryPath)", errno: errno)
            }
        }
        let identity = try rotatedIdentity(config: updated, rotationIndex: rotationIndex)
        try ArchiveFiles.writeAtomically(Archive.identityPath(root), identity.jsonBytes(), mode: 0o644)
        try Archive.removeRotation(root: root)
        return KeyRotationResult(
            previousFingerprint: previousFingerprint,
            fingerprint: identity.fingerprint,
            boxKey: boxKey,
            logIndex: rotationIndex,
            rewrapped: rewrapped,
            members: members,
            recoveryRetired: recoveryRetired,
            resumed: false
        )
    }

    /// The identity after the rotation: the new box key and fingerprint, self-signed, carrying the latest
    /// transitions (this one proved against the newest checkpoint).
    private func rotatedIdentity(config updated: ArchiveConfig, rotationIndex: Int) throws -> Identity {
        let stored = try? JSONDecoder().decode(
            Identity.self,
            from: Data(try ArchiveFiles.read(Archive.identityPath(root), limit: 64 * 1024))
        )
        guard let box = Encoding.bytes(base64: updated.boxKey) else {
            throw ArchiveError(.damaged, "archive.json names a malformed box key", fix: "restore it from a backup")
        }
        guard let entryBytes = try rotationEvent(boxKey: updated.boxKey)?.entry,
            let checkpoint = try ledger.latestCheckpoint(), checkpoint.size > rotationIndex
        else {
            throw ArchiveError(.damaged, "the log has no checkpoint covering the rotation", fix: "run custody verify")
        }
        let proof = try ledger.inclusionProof(index: rotationIndex, entry: entryBytes, at: checkpoint)
        let transition = KeyTransition(
            format: KeyTransition.formatName,
            index: rotationIndex,
            entry: Encoding.base64(entryBytes),
            proof: proof.proof.map { Encoding.base64($0) },
            checkpoint: checkpoint.note
        )
        let earlier = (stored?.transitions ?? []).filter { $0.index != rotationIndex }
        var identity = Identity(
            name: updated.name,
            origin: updated.origin,
            signingKey: updated.signingKey,
            boxKey: updated.boxKey,
            logVerifierKey: Identity.verifierKey(origin: updated.origin, publicKey: ledger.logPublicKey),
            fingerprint: Identity.fingerprint(signingKey: signing.publicKey, boxKey: box),
            selfSignature: "",
            logOrigin: updated.origin,
            transitions: Array((earlier + [transition]).suffix(KeyTransition.maxPerIdentity))
        )
        identity.selfSignature = Encoding.base64(signing.signature(for: identity.signedMessage))
        return identity
    }

    private var box: BoxKey { keys.box }
    private var signing: SigningKey { keys.signing }
}
