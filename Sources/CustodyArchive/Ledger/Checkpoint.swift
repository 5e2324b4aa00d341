import CustodyCrypto

/// A C2SP `tlog-checkpoint`: origin, tree size and root hash, carried in a signed note.
package struct Checkpoint: Sendable, Equatable {
    /// The log's origin (first line).
    package var origin: String
    /// The tree size.
    package var size: Int
    /// The tree's root hash.
    package var root: [UInt8]
    /// The whole note: body, blank line, signature lines.
    package var note: String

    /// The largest note accepted (bounds every read of one).
    package static let maxNoteBytes = 64 * 1024

    /// The checkpoint body (what the signatures cover).
    package var body: String { SignedNote.checkpointBody(origin: origin, size: size, root: root) }

    /// The parsed body of a note, without any signature check; `nil` when it is not a checkpoint.
    ///
    /// The body is three lines — origin, decimal size without leading zeros, base64 of a 32-byte root —
    /// optionally followed by extension lines, which Custody never writes and refuses.
    package static func parseBody(_ body: String) -> (origin: String, size: Int, root: [UInt8])? {
        let lines = body.split(separator: "\n", omittingEmptySubsequences: false)
        guard lines.count == 4, lines[3].isEmpty, !lines[0].isEmpty,
            let size = Int(lines[1]), size >= 0, String(size) == lines[1],
            let root = Encoding.bytes(base64: String(lines[2])), root.count == Merkle.hashByteCount,
            Encoding.base64(root) == lines[2]
        else { return nil }
        return (String(lines[0]), size, root)
    }

    /// Parses `note` and checks that it carries a valid signature by the log key `publicKey` of `origin`.
    ///
    /// - Parameters:
    ///   - note: The note text.
    ///   - origin: The expected origin; also the signature's key name.
    ///   - publicKey: The log's Ed25519 public key.
    /// - Returns: The checkpoint, or `nil` when the note is malformed, for another origin, or not signed by the key.
    package static func verified(_ note: String, origin: String, publicKey: [UInt8]) -> Checkpoint? {
        guard let (body, _) = SignedNote.parse(note), let parsed = parseBody(body), parsed.origin == origin,
            SignedNote.isSigned(note, name: origin, publicKey: publicKey)
        else { return nil }
        return Checkpoint(origin: parsed.origin, size: parsed.size, root: parsed.root, note: note)
    }

    /// Signs a new checkpoint with the log key.
    package static func signed(origin: String, size: Int, root: [UInt8], key: SigningKey) -> Checkpoint {
        let body = SignedNote.checkpointBody(origin: origin, size: size, root: root)
        return Checkpoint(
            origin: origin,
            size: size,
            root: root,
            note: SignedNote.sign(body: body, name: origin, key: key)
        )
    }
}

/// A C2SP verifier key, `name+hexkeyid+base64(type || public key)`, for Ed25519 (type 0x01).
package struct VerifierKey: Sendable, Equatable {
    /// The key name (a log's origin).
    package var name: String
    /// The Ed25519 public key.
    package var publicKey: [UInt8]

    /// Parses and checks a verifier key string; `nil` when it is malformed or its key id does not match.
    package init?(_ text: String) {
        let fields = text.split(separator: "+", maxSplits: 2, omittingEmptySubsequences: false)
        guard text.utf8.count <= 512, fields.count == 3, !fields[0].isEmpty,
            !fields[0].contains(where: { $0.isWhitespace }),
            let id = Encoding.bytes(hex: String(fields[1])), id.count == 4,
            let key = Encoding.bytes(base64: String(fields[2])), key.count == 33, key[0] == SignedNote.ed25519Type
        else { return nil }
        let publicKey = Array(key.dropFirst())
        guard SignedNote.keyID(name: String(fields[0]), publicKey: publicKey, type: SignedNote.ed25519Type) == id
        else { return nil }
        name = String(fields[0])
        self.publicKey = publicKey
    }
}
