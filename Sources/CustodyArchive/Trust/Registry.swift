import CustodyCrypto
import CustodyStorage
import Foundation

/// A body this archive knows: its self-signed identity and what it is trusted for.
package struct KnownBody: Codable, Sendable, Equatable {
    /// What a known body is trusted for, as written in `bodies.json` (Docs/LEDGER.md, Docs/SHARING.md).
    package struct Role: RawRepresentable, Hashable, Sendable, Codable, CustomStringConvertible {
        package let rawValue: String

        package init(rawValue: String) { self.rawValue = rawValue }

        package var description: String { rawValue }

        /// Cosignatures are exchanged with it; its log key verifies its checkpoints.
        package static let witness = Role(rawValue: "witness")
        /// Its grants are imported without `--trust-granter`; its revocation notices are checked against it.
        package static let granter = Role(rawValue: "granter")
        /// A node this archive pulls from (`custody peer add`), with an alias and a URL.
        package static let peer = Role(rawValue: "peer")
    }

    /// The body's identity file, as received.
    package var identity: Identity
    /// What it is trusted for (``Role``).
    package var roles: [Role]
    /// When it was added (RFC 3339 UTC).
    package var added: String
    /// For a peer: the name this archive calls it by (`custody peer add NAME`).
    package var alias: String?
    /// For a peer: its node's base URL.
    package var url: String?

    /// Its log's verifier key.
    package var logKey: VerifierKey? { VerifierKey(identity.logVerifierKey) }

    /// Its Ed25519 signing key.
    package var signingKey: [UInt8]? {
        Encoding.bytes(base64: identity.signingKey).flatMap { $0.count == 32 ? $0 : nil }
    }
}

/// The registry of known bodies (`bodies.json`): the one place `witness add` (and later `peer add` and
/// `--trust-granter`) record whom the archive trusts.
struct RegistryFile: Codable {
    var format = "custody-bodies"
    var version = 1
    var bodies: [KnownBody] = []
}

extension ArchiveContext {
    var registryPath: String { root + "/bodies.json" }

    /// Every known body.
    package func knownBodies() throws -> [KnownBody] {
        guard POSIX.statPath(registryPath) != nil else { return [] }
        let bytes = try ArchiveFiles.read(registryPath, limit: 16 << 20)
        guard let file = try? JSONDecoder().decode(RegistryFile.self, from: Data(bytes)),
            file.format == "custody-bodies", file.version == 1
        else {
            throw ArchiveError(.damaged, "\(registryPath) is not valid", fix: "restore it from a backup")
        }
        // Every entry is re-checked: a hand-edited registry must not smuggle in a key.
        return file.bodies.filter { $0.identity.isValid }
    }

    /// The known body with `role` whose origin is `origin`.
    package func knownBody(origin: String, role: KnownBody.Role) throws -> KnownBody? {
        try knownBodies().first { $0.identity.origin == origin && $0.roles.contains(role) }
    }

    /// Reads and checks an identity file (`custody id export` of another body).
    ///
    /// - Throws: ``ArchiveError`` (bad input) when it is not a valid, self-signed identity.
    package static func readIdentity(_ path: String) throws -> Identity {
        try Identity.parse(try ArchiveFiles.read(path, limit: 64 * 1024), source: path)
    }

    /// Trusts `identity` for `role`, adding it to the registry (or the role to it).
    ///
    /// - Returns: The stored entry, and whether the body had that role already.
    /// - Throws: ``ArchiveError``: usage for the archive's own identity; bad input when another body already
    ///   uses the same origin.
    package func trust(_ identity: Identity, role: KnownBody.Role) throws -> (body: KnownBody, alreadyKnown: Bool) {
        if let problem = identity.problem {
            throw ArchiveError(
                .identityInvalid,
                "the identity of \(TerminalText.escape(identity.origin)) is refused: \(problem)",
                fix: "ask the body for a fresh copy of custody id export"
            )
        }
        guard identity.signingKey != config.signingKey, identity.origin != config.origin else {
            throw ArchiveError(
                .usage,
                "that is this archive's own identity",
                fix: "give the identity file of another body"
            )
        }
        let lock = try FileLock(path: root + "/bodies.lock", mode: .exclusive)
        defer { withExtendedLifetime(lock) {} }
        var file = RegistryFile()
        file.bodies = try knownBodies()
        if let index = file.bodies.firstIndex(where: { $0.identity.origin == identity.origin }) {
            if file.bodies[index].identity != identity, try follows(identity, from: file.bodies[index].identity) {
                // The body rotated its box key and proves it: its new identity replaces the old, roles kept.
                file.bodies[index].identity = identity
            }
            guard file.bodies[index].identity == identity else {
                throw ArchiveError(
                    .badInput,
                    "a different body with origin \(identity.origin) is already known (fingerprint \(file.bodies[index].identity.fingerprint))",
                    fix: "check the identity file's fingerprint with its owner; a changed key is not accepted silently"
                )
            }
            let already = file.bodies[index].roles.contains(role)
            if !already { file.bodies[index].roles.append(role) }
            try writeRegistry(file)
            return (file.bodies[index], already)
        }
        let body = KnownBody(identity: identity, roles: [role], added: RFC3339.now())
        file.bodies.append(body)
        try writeRegistry(file)
        return (body, false)
    }

    /// Whether `identity` is `known`'s body after key rotations it proves (``Identity/transitionSteps(from:)``),
    /// each transition's checkpoint also checked against what this archive witnessed of that log (a checkpoint of
    /// the witnessed size must have the witnessed root).
    func follows(_ identity: Identity, from known: Identity) throws -> Bool {
        guard let steps = identity.transitionSteps(from: known) else { return false }
        for step in steps { try checkAgainstWitnessed(step.checkpoint) }
        return true
    }

    /// Follows, in the registry, the key rotation of a known body whose new `identity` proves it; `nil` when no
    /// known body is followed by it.
    ///
    /// - Returns: The updated entry and the fingerprint it had.
    package func followRotation(of identity: Identity) throws -> (body: KnownBody, previousFingerprint: String)? {
        guard identity.problem == nil else { return nil }
        let lock = try FileLock(path: root + "/bodies.lock", mode: .exclusive)
        defer { withExtendedLifetime(lock) {} }
        var file = RegistryFile()
        file.bodies = try knownBodies()
        guard let index = file.bodies.firstIndex(where: { $0.identity.origin == identity.origin }),
            file.bodies[index].identity != identity, try follows(identity, from: file.bodies[index].identity)
        else { return nil }
        let previous = file.bodies[index].identity.fingerprint
        file.bodies[index].identity = identity
        try writeRegistry(file)
        return (file.bodies[index], previous)
    }

    /// Adds a peer node: trusted as a granter (its bundles import without `--trust-granter`) and reachable at `url`.
    package func addPeer(alias: String, url: String, identity: Identity) throws -> KnownBody {
        guard !alias.isEmpty, alias.utf8.count <= 64,
            alias.allSatisfy({ $0.isLetter || $0.isNumber || $0 == "-" || $0 == "_" })
        else {
            throw ArchiveError(.usage, "the peer name \(alias) is not valid", fix: "use letters, digits, - and _")
        }
        guard let parsed = URL(string: url), ["http", "https"].contains(parsed.scheme ?? ""), parsed.host != nil else {
            throw ArchiveError(.usage, "\(url) is not an http(s) URL", fix: "give e.g. https://node.example.org:8443")
        }
        _ = try trust(identity, role: .granter)
        _ = try trust(identity, role: .witness)
        _ = try trust(identity, role: .peer)
        let lock = try FileLock(path: root + "/bodies.lock", mode: .exclusive)
        defer { withExtendedLifetime(lock) {} }
        var file = RegistryFile()
        file.bodies = try knownBodies()
        guard let index = file.bodies.firstIndex(where: { $0.identity == identity }) else {
            throw ArchiveError(.damaged, "the registry lost the peer just added", fix: "retry")
        }
        if let other = file.bodies.firstIndex(where: { $0.alias == alias }), other != index {
            throw ArchiveError(.usage, "another peer is already called \(alias)", fix: "choose another name")
        }
        file.bodies[index].alias = alias
        file.bodies[index].url = url.hasSuffix("/") ? String(url.dropLast()) : url
        try writeRegistry(file)
        return file.bodies[index]
    }

    /// The peer called `alias`.
    package func peer(_ alias: String) throws -> KnownBody {
        guard let body = try knownBodies().first(where: { $0.alias == alias && $0.roles.contains(.peer) }) else {
            throw ArchiveError(
                .notFound,
                "no peer called \(alias)",
                fix: "add it with custody peer add NAME URL --identity FILE"
            )
        }
        return body
    }

    fileprivate func writeRegistry(_ file: RegistryFile) throws {
        try ArchiveFiles.writeAtomically(registryPath, JSONFormat.fileBytes(file))
    }
}
