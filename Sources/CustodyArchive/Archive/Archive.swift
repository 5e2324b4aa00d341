import CustodyCrypto
import CustodyStorage
import Foundation
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// An archive on disk: objects, journal, index, keys — opened, not unlocked.
///
/// ```
/// <archive>/archive.json    public configuration (name, origin, chunk size, public keys)
/// <archive>/identity.json   the self-signed public identity
/// <archive>/members/        each member's key file, members/<id>.json (0600)
/// <archive>/keys.json       the sealed secrets of an archive without members (0600)
/// <archive>/objects/        encrypted objects, objects/<2 hex>/<64 hex>
/// <archive>/journal/        the append-only event journal (the ledger's storage)
/// <archive>/index.sqlite    the derived search index (plaintext metadata)
/// <archive>/lock            shared by most commands, exclusive for gc, reindex and passphrase change
/// ```
///
/// An `Archive` is immutable and `Sendable`: everything it holds is fixed when it is opened (the index
/// included), so one value serves any number of concurrent tasks. Operations that read only public or indexed
/// data are methods of ``ArchiveContext``, which both an `Archive` and an ``Archive/Unlocked`` are; operations
/// that need the secrets (sealing, signing, decrypting) are methods of ``Archive/Unlocked`` alone, which only
/// ``unlock()`` or ``unlock(passphrase:)`` make, so "needs the passphrase" is checked by the compiler.
package final class Archive: Sendable {
    /// The archive folder.
    package let root: String
    /// The public configuration.
    package let config: ArchiveConfig
    /// The object store, whichever backend the opener gave (``ObjectStoreOpener``).
    package let store: ArchiveObjects
    /// The event journal.
    package let journal: Journal
    /// The custody ledger: the journal as a Merkle log with signed checkpoints.
    package let ledger: Ledger
    /// The search index, opened with the archive (catch it up with ``ArchiveContext/index()``), or why it could
    /// not be: an archive whose index is damaged still opens, verifies and rebuilds it; only uses of the index
    /// fail, with that error.
    let openedIndex: Result<ArchiveIndex, ArchiveError>
    /// Supplies the passphrase for ``unlock()``; `nil` when the caller has none to give.
    let passphrase: PassphraseSource?
    /// The member the caller acts as (`nil`: the only one).
    let memberName: String?
    /// The roster as last read by ``ArchiveContext/roster()``, and to where in the journal.
    let rosterCache = Mutex<(position: JournalPosition, roster: Roster)?>(nil)

    let signingPublicKey: [UInt8]
    let boxPublicKey: [UInt8]
    private let lock: FileLock

    /// Supplies a passphrase (asked of a person, read from a file or the environment), given whose it is (the
    /// archive's display name, or a member's name and the archive's) to name in a prompt.
    package typealias PassphraseSource = @Sendable (_ whose: String) throws -> SecretBytes

    /// The archive with its secrets open: what sealing, signing and decrypting operations take.
    ///
    /// Made only by ``Archive/unlock()``, ``Archive/unlock(passphrase:)`` and ``Archive/create(at:name:origin:passphrase:kdfPreset:chunkSize:objects:)``.
    /// The keys live in guarded memory (``SecretBytes``), wiped when the last copy is released.
    package struct Unlocked: ArchiveContext {
        /// The archive.
        package let archive: Archive
        /// The unlocked secrets.
        package let keys: ArchiveKeys
        /// The member who acts, whose key cosigns every event recorded; `nil` in an archive without members.
        package let member: ActingMember?

        init(archive: Archive, keys: ArchiveKeys, member: ActingMember?) {
            self.archive = archive
            self.keys = keys
            self.member = member
        }

        package func unlocked() throws -> Unlocked { self }
    }

    /// How an operation holds the archive.
    package enum Access {
        /// Alongside other commands (ingest, extract, ls, verify…).
        case shared
        /// Alone (gc, reindex, passphrase change).
        case exclusive
        /// Alongside other commands, writing nothing in the folder: the index is opened immutable (a dry run).
        case readOnly
    }

    static func configPath(_ root: String) -> String { root + "/archive.json" }
    static func keysPath(_ root: String) -> String { root + "/keys.json" }
    static func identityPath(_ root: String) -> String { root + "/identity.json" }
    /// Where the objects are when not in `objects/`: an S3 bucket (no credentials in it).
    static func objectsPath(_ root: String) -> String { root + "/objects.json" }

    static func indexPath(_ root: String) -> String { root + "/index.sqlite" }

    private init(
        root: String,
        config: ArchiveConfig,
        access: Access,
        passphrase: PassphraseSource?,
        member: String? = nil,
        objects: ObjectStoreOpener,
        rebuildingIndex: ((ArchiveConfig, Journal, Ledger) throws -> Void)? = nil
    ) throws {
        guard let signing = Encoding.bytes(base64: config.signingKey), signing.count == 32,
            let box = Encoding.bytes(base64: config.boxKey), box.count == 32,
            let logKey = Encoding.bytes(base64: config.logKey), logKey.count == 32,
            config.format == "custody-archive", config.version == 1,
            config.chunkSize >= 4096, config.chunkSize <= 16 << 20
        else {
            throw ArchiveError(
                .damaged,
                "\(root)/archive.json is not a valid archive configuration",
                fix: "restore it from a backup"
            )
        }
        self.root = root
        self.config = config
        signingPublicKey = signing
        boxPublicKey = box
        lock = try FileLock(path: root + "/lock", mode: access == .exclusive ? .exclusive : .shared)
        do {
            store = ArchiveObjects(try objects(root))
        } catch {
            throw ArchiveError(error)
        }
        journal = try Journal(directory: root + "/journal")
        ledger = Ledger(root: root, origin: config.origin, logPublicKey: logKey, journal: journal)
        self.passphrase = passphrase
        memberName = member
        if let rebuildingIndex {
            // Checks first (the journal whole, the Merkle log recomputed): the index is removed only after them.
            try rebuildingIndex(config, journal, ledger)
            for suffix in ["", "-wal", "-shm"] {
                let path = Self.indexPath(root) + suffix
                guard unlink(path) == 0 || errno == ENOENT else {
                    throw ArchiveError.writeFailed("cannot remove \(path)", errno: errno)
                }
            }
        }
        do {
            openedIndex = .success(
                access == .readOnly
                    ? try ArchiveIndex(immutableAt: Self.indexPath(root)) : try ArchiveIndex(path: Self.indexPath(root))
            )
        } catch {
            openedIndex = .failure(ArchiveIndex.mapped(error))
        }
    }

    /// Opens an existing archive without unlocking its secrets.
    ///
    /// - Parameters:
    ///   - root: The archive folder.
    ///   - access: How the archive lock is held while the value lives.
    ///   - passphrase: Asked by ``unlock()``, at most once per call, only when an operation needs the secrets.
    ///   - member: The member who acts (``unlock()`` opens their key file); `nil` for the only one.
    ///   - objects: Opens the object store (the composition root picks the backend); by default the archive's
    ///     own `objects/` folder.
    /// - Returns: The archive, holding its lock as `access` says until it is released.
    /// - Throws: ``ArchiveError`` (not found) when `root` holds no archive.
    package static func open(
        at root: String,
        access: Access = .shared,
        passphrase: PassphraseSource? = nil,
        member: String? = nil,
        objects: @escaping ObjectStoreOpener = localObjects
    ) throws -> Archive {
        try open(
            at: root,
            access: access,
            passphrase: passphrase,
            member: member,
            objects: objects,
            rebuildingIndex: nil
        )
    }

    private static func open(
        at root: String,
        access: Access,
        passphrase: PassphraseSource?,
        member: String? = nil,
        objects: @escaping ObjectStoreOpener,
        rebuildingIndex: ((ArchiveConfig, Journal, Ledger) throws -> Void)?
    ) throws -> Archive {
        let path = configPath(root)
        guard Glibc.access(path, F_OK) == 0 else {
            throw ArchiveError(
                .notFound,
                "no archive at \(root)",
                fix: "create one with custody init, or point --archive / CUSTODY_ARCHIVE at an existing archive"
            )
        }
        let bytes = try ArchiveFiles.read(path, limit: 64 * 1024)
        guard let config = try? JSONDecoder().decode(ArchiveConfig.self, from: Data(bytes)) else {
            throw ArchiveError(.damaged, "\(path) is not valid", fix: "restore it from a backup")
        }
        return try Archive(
            root: root,
            config: config,
            access: access,
            passphrase: passphrase,
            member: member,
            objects: objects,
            rebuildingIndex: rebuildingIndex
        )
    }

    /// The Argon2id presets `init --kdf` accepts.
    package static let kdfPresets: [String: PasswordHash.Parameters] = [
        "interactive": .interactive, "moderate": .moderate, "sensitive": .sensitive, "insecure-test": .insecureTest,
    ]

    /// Creates a new archive at `root`.
    ///
    /// - Parameters:
    ///   - root: The archive folder (new, or empty).
    ///   - name: Display name.
    ///   - origin: Log origin; default `custody/<8 hex of the fingerprint>`.
    ///   - passphrase: Seals the secrets.
    ///   - kdfPreset: A key of ``kdfPresets``.
    ///   - chunkSize: Plaintext chunk size (default 1 MiB).
    ///   - objects: Opens the object store (by default the new `objects/` folder); a backend elsewhere (a
    ///     bucket) is checked by the caller before this is called.
    ///   - recordObjects: Writes what tells later opens where the objects are (`objects.json`), for a backend
    ///     outside the folder; called before `archive.json` is written.
    ///   - founder: The first member, an administrator whose key file `passphrase` seals and whose `member-add`
    ///     event founds the roster; `nil` makes an archive without members, its secrets in one `keys.json` (as
    ///     archives were before members; `custody member migrate` converts them).
    ///   - rosterThreshold: How many administrators' approvals later roster changes need.
    /// - Returns: The new archive, unlocked (``unlock()`` on its ``Unlocked/archive`` asks `passphrase` again).
    /// - Throws: ``ArchiveError`` (cannot create) when an archive or other files are already there.
    package static func create(
        at root: String,
        name: String,
        origin: String? = nil,
        passphrase: SecretBytes,
        kdfPreset: String = "interactive",
        chunkSize: Int = 1 << 20,
        objects: @escaping ObjectStoreOpener = localObjects,
        recordObjects: ((_ root: String) throws -> Void)? = nil,
        founder: String? = "admin",
        rosterThreshold: Int = 1
    ) async throws -> Unlocked {
        try validateName(name)
        if let origin { try validateOrigin(origin) }
        if let founder { try Member.validateName(founder) }
        guard (1...Roster.maxThreshold).contains(rosterThreshold) else {
            throw ArchiveError(
                .usage,
                "the roster threshold must be from 1 to \(Roster.maxThreshold)",
                fix: "give --roster-threshold N"
            )
        }
        guard let parameters = kdfPresets[kdfPreset] else {
            throw ArchiveError(.usage, "unknown KDF preset \(kdfPreset)", fix: "use interactive, moderate or sensitive")
        }
        guard passphrase.count >= 1 else {
            throw ArchiveError(.usage, "the passphrase is empty", fix: "choose a passphrase")
        }
        if access(configPath(root), F_OK) == 0 {
            throw ArchiveError(
                .cannotCreate,
                "an archive already exists at \(root)",
                fix: "choose another --archive path"
            )
        }
        if let st = POSIX.statPath(root) {
            guard POSIX.isDirectory(st.st_mode) else {
                throw ArchiveError(
                    .cannotCreate,
                    "\(root) exists and is not a folder",
                    fix: "choose another --archive path"
                )
            }
            guard try listDirectory(root).isEmpty else {
                throw ArchiveError(.cannotCreate, "\(root) is not empty", fix: "choose an empty or new folder")
            }
        }
        let code = POSIX.makeDirectories(root)
        guard code == 0 else { throw ArchiveError.writeFailed("cannot create \(root)", errno: code) }
        guard chmod(root, 0o700) == 0 else { throw ArchiveError.writeFailed("cannot protect \(root)", errno: errno) }

        let secrets = try ArchiveKeys.generateSecrets()
        let keys = try ArchiveKeys(secrets: secrets)
        let fingerprint = Identity.fingerprint(signingKey: keys.signing.publicKey, boxKey: keys.box.publicKey)
        let resolvedOrigin = origin ?? "custody/" + fingerprint.prefix(4) + fingerprint.dropFirst(5).prefix(4)
        let config = ArchiveConfig(
            name: name,
            origin: resolvedOrigin,
            createdAt: RFC3339.now(),
            chunkSize: chunkSize,
            signingKey: Encoding.base64(keys.signing.publicKey),
            boxKey: Encoding.base64(keys.box.publicKey),
            logKey: Encoding.base64(keys.log.publicKey)
        )
        var identity = Identity(
            name: name,
            origin: resolvedOrigin,
            signingKey: config.signingKey,
            boxKey: config.boxKey,
            logVerifierKey: Identity.verifierKey(origin: resolvedOrigin, publicKey: keys.log.publicKey),
            fingerprint: fingerprint,
            selfSignature: "",
            logOrigin: resolvedOrigin
        )
        identity.selfSignature = Encoding.base64(keys.signing.signature(for: identity.signedMessage))
        var first: (file: MemberKeyFile, signing: SigningKey)?
        if let founder {
            // The founder's key file holds the secrets: there is no keys.json.
            let enrolled = try MemberKeyFile.enrol(
                name: founder,
                role: .admin,
                passphrase: passphrase,
                parameters: parameters,
                preset: kdfPreset,
                origin: resolvedOrigin,
                keys: keys
            )
            try writeMemberKeyFile(enrolled.file, root: root)
            first = enrolled
        } else {
            let keyFile = try KeyFile.seal(
                secrets,
                passphrase: passphrase,
                parameters: parameters,
                preset: kdfPreset,
                config: config
            )
            try ArchiveFiles.writeAtomically(keysPath(root), JSONFormat.fileBytes(keyFile), mode: 0o600)
        }
        try ArchiveFiles.writeAtomically(identityPath(root), identity.jsonBytes(), mode: 0o644)
        do {
            try recordObjects?(root)
            _ = try objects(root)
        } catch {
            throw ArchiveError(error)
        }
        _ = try Journal(directory: root + "/journal")
        // archive.json is written last: its presence marks a complete archive.
        try ArchiveFiles.writeAtomically(configPath(root), JSONFormat.fileBytes(config), mode: 0o644)
        let archive = try Archive(
            root: root,
            config: config,
            access: .shared,
            passphrase: { _ in passphrase },
            objects: objects
        )
        let unlocked = Unlocked(archive: archive, keys: keys, member: nil)
        // The empty tree's checkpoint: a witness can start following the log from its first moment.
        try archive.ledger.append([], logKey: keys.log)
        _ = try await unlocked.index()
        guard let first else { return unlocked }
        return try await unlocked.foundRoster(first.file, signing: first.signing, threshold: rosterThreshold)
    }

    static func validateName(_ name: String) throws {
        guard OutsideInput.isDisplayName(name) else {
            throw ArchiveError(
                .usage,
                "the name must be 1 to 200 bytes of NFC text without control, format or line-separator characters",
                fix: "choose another --name"
            )
        }
    }

    static func validateOrigin(_ origin: String) throws {
        guard OutsideInput.isOrigin(origin) else {
            throw ArchiveError(
                .usage,
                "the origin \(TerminalText.escape(String(origin.prefix(60)))) is not valid",
                fix: "use printable ASCII without spaces or '+', e.g. example.org/custody"
            )
        }
    }

    /// Unlocks the secrets with the passphrase ``passphrase`` supplies (asked again on every call).
    ///
    /// - Throws: ``ArchiveError`` (not authorised) for a wrong or missing passphrase.
    package func unlock() throws -> Unlocked {
        if hasMembers {
            let (keys, member) = try Self.openMemberKeys(
                root: root,
                config: config,
                named: memberName,
                passphrase: passphrase
            )
            return Unlocked(archive: self, keys: keys, member: member)
        }
        guard let passphrase else {
            throw ArchiveError(
                .passphraseNeeded,
                "this operation needs the archive's passphrase",
                fix: "set CUSTODY_PASSPHRASE, pass --passphrase-file, or run in a terminal to be asked"
            )
        }
        return try unlock(passphrase: passphrase(config.name))
    }

    /// Unlocks the secrets with `passphrase`.
    ///
    /// - Throws: ``ArchiveError`` (not authorised) for a wrong passphrase, damaged for a key file that is not
    ///   this archive's.
    package func unlock(passphrase: SecretBytes) throws -> Unlocked {
        if hasMembers {
            let (keys, member) = try Self.openMemberKeys(
                root: root,
                config: config,
                named: memberName,
                passphrase: { _ in passphrase }
            )
            return Unlocked(archive: self, keys: keys, member: member)
        }
        return Unlocked(
            archive: self,
            keys: try Self.openKeys(root: root, config: config, passphrase: passphrase),
            member: nil
        )
    }

    /// Unlocks to bring the index up to date, which reads items' metadata: the acting member's role must allow
    /// reading.
    package func unlocked() throws -> Unlocked {
        let unlocked = try unlock()
        try unlocked.authorize(unlocked.member, for: [.read])
        return unlocked
    }

    /// Opens `keys.json` with `passphrase` and checks the secrets are those `config` publishes.
    private static func openKeys(root: String, config: ArchiveConfig, passphrase: SecretBytes) throws -> ArchiveKeys {
        let bytes = try ArchiveFiles.read(keysPath(root), limit: 64 * 1024)
        guard let keyFile = try? JSONDecoder().decode(KeyFile.self, from: Data(bytes)) else {
            throw ArchiveError(.damaged, "the key file keys.json is malformed", fix: "restore it from your backup")
        }
        let keys = try ArchiveKeys(secrets: keyFile.open(passphrase: passphrase, config: config))
        try checkKeys(keys, config: config, file: "keys.json")
        return keys
    }

    /// Re-seals the secrets under a new passphrase (the current one asked of ``passphrase``); nothing else changes.
    package func changePassphrase(to newPassphrase: SecretBytes, kdfPreset: String? = nil) async throws {
        guard newPassphrase.count >= 1 else {
            throw ArchiveError(.usage, "the new passphrase is empty", fix: "choose a passphrase")
        }
        if hasMembers {
            return try await changeMemberPassphrase(to: newPassphrase, kdfPreset: kdfPreset)
        }
        let bytes = try ArchiveFiles.read(Self.keysPath(root), limit: 64 * 1024)
        guard let old = try? JSONDecoder().decode(KeyFile.self, from: Data(bytes)) else {
            throw ArchiveError(.damaged, "the key file keys.json is malformed", fix: "restore it from your backup")
        }
        guard let passphrase else {
            throw ArchiveError(
                .passphraseNeeded,
                "the current passphrase is needed",
                fix: "set CUSTODY_PASSPHRASE or --passphrase-file"
            )
        }
        let secrets = try old.open(passphrase: passphrase(config.name), config: config)
        let preset = kdfPreset ?? old.kdf.preset
        guard let parameters = Self.kdfPresets[preset] else {
            throw ArchiveError(.usage, "unknown KDF preset \(preset)", fix: "use interactive, moderate or sensitive")
        }
        let sealed = try KeyFile.seal(
            secrets,
            passphrase: newPassphrase,
            parameters: parameters,
            preset: preset,
            config: config
        )
        try ArchiveFiles.writeAtomically(Self.keysPath(root), JSONFormat.fileBytes(sealed), mode: 0o600)
        let unlocked = Unlocked(archive: self, keys: try ArchiveKeys(secrets: secrets), member: nil)
        // The keys themselves are unchanged; the log records that the passphrase guarding them changed.
        _ = try await unlocked.record([Event(type: .passphrase, time: RFC3339.now(), actor: config.origin)])
    }

    /// Rebuilds the index from journal + objects, holding the archive alone; checks the Merkle log first.
    ///
    /// The journal must be whole and every log hash must recompute to the signed checkpoint before the old
    /// index is removed: a failed check leaves it as it was. The index file is removed and made again, so this
    /// also mends an index SQLite can no longer open.
    ///
    /// - Returns: The number of items indexed.
    @discardableResult
    package static func reindex(
        at root: String,
        passphrase: @escaping PassphraseSource,
        member: String? = nil,
        objects: @escaping ObjectStoreOpener = localObjects
    ) async throws -> Int {
        var opened: (keys: ArchiveKeys, member: ActingMember?)?
        let archive = try open(
            at: root,
            access: .exclusive,
            passphrase: passphrase,
            member: member,
            objects: objects
        ) { config, journal, ledger in
            let keys: (keys: ArchiveKeys, member: ActingMember?) =
                hasMembers(root: root)
                ? try openMemberKeys(root: root, config: config, named: member, passphrase: passphrase)
                : (try openKeys(root: root, config: config, passphrase: passphrase(config.name)), nil)
            try checkBeforeReindex(journal: journal, ledger: ledger, logKey: keys.keys.log)
            opened = keys
        }
        guard let opened else { preconditionFailure("the rebuild step ran without opening the keys") }
        let unlocked = Unlocked(archive: archive, keys: opened.keys, member: opened.member)
        try unlocked.authorize(unlocked.member, for: [.read])
        return try await unlocked.index().itemCount()
    }

    /// What a rebuild checks first: the journal whole, then every log hash recomputed and checked against the
    /// signed checkpoint.
    static func checkBeforeReindex(journal: Journal, ledger: Ledger, logKey: SigningKey) throws {
        let (_, tail) = try journal.scan(from: .start) { _ in }
        if case .damaged(let offset) = tail {
            throw ArchiveError(
                .damaged,
                "the journal is damaged at byte \(offset); a rebuilt index would silently miss what follows",
                fix: "run custody verify and restore the journal from a backup; the index was left as it was"
            )
        }
        try ledger.append([], logKey: logKey, rebuild: true)
    }
}

extension ArchiveContext {
    /// The KDF preset recorded in the key file.
    package func kdfPreset() throws -> String {
        let bytes = try ArchiveFiles.read(Archive.keysPath(root), limit: 64 * 1024)
        return (try? JSONDecoder().decode(KeyFile.self, from: Data(bytes)))?.kdf.preset ?? "unknown"
    }

    /// The archive's self-signed public identity.
    ///
    /// - Throws: ``ArchiveError`` (damaged) naming what is wrong: not an identity file, not validly self-signed, or
    ///   not this archive's (its name, origin, signing, box or log key differ from `archive.json`).
    package func identity() throws -> Identity {
        let bytes = try ArchiveFiles.read(Archive.identityPath(root), limit: 64 * 1024)
        func bad(_ why: String) -> ArchiveError {
            ArchiveError(.damaged, "identity.json \(why)", fix: "restore it from a backup")
        }
        guard let identity = try? JSONDecoder().decode(Identity.self, from: Data(bytes)) else {
            throw bad("is not an identity file")
        }
        guard identity.isValid else { throw bad("is not validly self-signed (altered)") }
        guard identity.signingKey == config.signingKey, identity.boxKey == config.boxKey,
            identity.logVerifierKey == Identity.verifierKey(origin: config.origin, publicKey: ledger.logPublicKey),
            identity.origin == config.origin, identity.name == config.name
        else {
            throw bad("is not this archive's identity: its name, origin or keys differ from archive.json")
        }
        return identity
    }

    /// Resolves an item id or a unique prefix of at least 8 characters.
    ///
    /// - Throws: ``ArchiveError``: usage for a short or ambiguous prefix, not found for an unknown one.
    package func resolveItem(_ text: String) async throws -> IndexedItem {
        let prefix = text.lowercased()
        guard prefix.utf8.count >= 8, prefix.utf8.count <= 32, Encoding.isLowercaseHex(prefix, count: prefix.utf8.count)
        else {
            throw ArchiveError(
                .usage,
                "\(text.prefix(40)) is not an item id",
                fix: "give at least 8 hex characters of an id from custody ls"
            )
        }
        let matches = try await index().items(withPrefix: prefix, limit: 2)
        guard let first = matches.first else {
            throw ArchiveError(.notFound, "no item \(prefix)", fix: "list items with custody ls")
        }
        guard matches.count == 1 else {
            throw ArchiveError(.usage, "the id prefix \(prefix) is ambiguous", fix: "give more characters of the id")
        }
        return first
    }

    /// The ingest event of an item (read from the journal, the source of truth).
    func ingestEvent(of item: IndexedItem) throws -> Event {
        var found: Event?
        try journal.scan(from: JournalPosition(count: item.seq, offset: item.entryOffset), limit: 1) { entry in
            found = try Event.parse(entry.bytes, publicKey: signingPublicKey)
        }
        guard var found, found.type == .ingest || found.type == .import, found.item?.hex == item.id else {
            throw ArchiveError(
                .damaged,
                "the journal has no ingest event for item \(item.id)",
                fix: "run custody verify, then custody reindex"
            )
        }
        // After a key rotation the item's keys are wrapped anew, to the new box key, in a `rewrap` entry.
        if let position = try archive.openedIndex.get().rewrapEntry(item.id) {
            var rewrap: Event?
            try journal.scan(from: position, limit: 1) { entry in
                rewrap = try Event.parse(entry.bytes, publicKey: signingPublicKey)
            }
            guard let rewrap, rewrap.type == .rewrap, rewrap.item?.hex == item.id, let keys = rewrap.keys,
                (keys.content == nil) == (found.keys?.content == nil)
            else {
                throw ArchiveError(
                    .damaged,
                    "the journal has no rewrap event for item \(item.id) where the index says",
                    fix: "run custody verify, then custody reindex"
                )
            }
            found.keys = keys
        }
        return found
    }
}
