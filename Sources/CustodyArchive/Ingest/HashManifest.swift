import CustodyCrypto
import CustodyStorage

#if canImport(Glibc)
import Glibc
#endif

/// A collector's list of SHA-256 hashes (`--expect-from`), in the forms `sha256sum` writes.
///
/// Each line is `<64 hex> <space or *><name>` (text or binary mode; GNU coreutils), or `SHA256 (<name>) = <64 hex>`
/// (`sha256sum --tag`, BSD). A line starting with `\` has its name escaped as GNU writes names holding a backslash,
/// a newline or a carriage return (`\\`, `\n`, `\r`). A trailing carriage return (a list written on Windows) is
/// dropped; empty lines are skipped. A name relative to nothing is relative to the folder the list is in (with its
/// links resolved), whether written `x` or `./x`; an absolute name is taken as written; `.` and `..` are resolved
/// as text. Names are bytes: a list may name files whose names are not UTF-8.
///
/// Everything in it is outside input: its size is bounded line by line as it is read (``maxLineBytes``,
/// ``maxLines``), and a line not of these forms is refused with its number.
package struct HashManifest: Sendable {
    /// One line.
    package struct Entry: Sendable, Equatable {
        /// Its line number (1-based).
        package var line: Int
        /// The name as written (unescaped).
        package var listed: [UInt8]
        /// The expected SHA-256, lowercase hex.
        package var sha256: String
    }

    /// The path the list was read from, as given.
    package let path: String
    /// SHA-256 of the list's bytes, lowercase hex: recorded in every item that matched it.
    package let sha256: String
    /// The list file's device and inode (so it is not ingested as evidence of itself unless asked).
    package let identity: FileIdentity
    /// The entries by the real path they name (normalised as text), raw bytes.
    package let entries: [[UInt8]: Entry]

    /// The longest line, in bytes (a 64-hex hash, a separator and a name of up to 4096 bytes, escaped).
    package static let maxLineBytes = 8192 + 80
    /// The most lines (blank ones included).
    package static let maxLines = 200_000

    /// Reads and parses the list at `path`.
    ///
    /// - Throws: ``ArchiveError``: not found when it cannot be opened; bad input when it is not a regular file,
    ///   has a line too long, too many lines, a malformed line (naming its number) or one name listed twice
    ///   with different hashes.
    package init(contentsOf path: String) throws {
        var fd: Int32
        repeat { fd = Glibc.open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC | O_NOCTTY) } while fd < 0 && errno == EINTR
        guard fd >= 0 else {
            throw ArchiveError(
                .notFound,
                "cannot read the --expect-from list \(path): \(errnoDescription(errno))",
                fix: "check the path and its permissions"
            )
        }
        defer { close(fd) }
        var st = stat()
        guard fstat(fd, &st) == 0, POSIX.isRegular(st.st_mode) else {
            throw ArchiveError(
                .notRegularFile,
                "the --expect-from list \(path) is not a regular file",
                fix: "give the SHA256SUMS file itself"
            )
        }
        _ = fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK)
        let folder = Array(canonicalPath(POSIX.parentDirectory(of: path)).utf8)
        var hasher = SHA256Hasher()
        var parser = Parser(path: path, folder: folder)
        var block = [UInt8](repeating: 0, count: 1 << 20)
        while true {
            let n = block.withUnsafeMutableBytes { POSIX.readFull(fd, $0) }
            guard n >= 0 else {
                throw ArchiveError(
                    .badInput,
                    "cannot read the --expect-from list \(path): \(errnoDescription(Int32(-n)))",
                    fix: "check the file"
                )
            }
            if n == 0 { break }
            block[0..<n].withUnsafeBytes { hasher.update($0) }
            try parser.feed(block[0..<n])
            if n < block.count { break }
        }
        try parser.finish()
        self.path = path
        self.sha256 = Encoding.hex(hasher.finalize())
        self.identity = FileIdentity(st)
        self.entries = parser.entries
    }

    /// Parses a list's bytes (for tests and fuzzing); `folder` stands for the list's folder.
    package init(parsing bytes: [UInt8], path: String = "SHA256SUMS", folder: String) throws {
        var parser = Parser(path: path, folder: Array(folder.utf8))
        try parser.feed(bytes[...])
        try parser.finish()
        self.path = path
        self.sha256 = Encoding.hex(SHA256Hasher.hash(bytes))
        self.identity = FileIdentity(device: 0, inode: 0)
        self.entries = parser.entries
    }

    /// The entry naming the file at the real path `absolute`.
    package func entry(for absolute: [UInt8]) -> Entry? { entries[absolute] }

    /// `path` (bytes) with empty and `.` components dropped and `..` taking one away (never above `/`).
    static func normalize(_ path: [UInt8]) -> [UInt8] {
        var parts: [ArraySlice<UInt8>] = []
        for part in path.split(separator: 0x2F, omittingEmptySubsequences: true) {
            if part.elementsEqual([0x2E]) { continue }
            if part.elementsEqual([0x2E, 0x2E]) {
                if !parts.isEmpty { parts.removeLast() }
                continue
            }
            parts.append(part)
        }
        var out: [UInt8] = []
        for part in parts { out += [0x2F] + part }
        return out.isEmpty ? [0x2F] : out
    }

    /// A line-at-a-time parser with every bound checked before bytes are kept.
    private struct Parser {
        let path: String
        let folder: [UInt8]
        var entries: [[UInt8]: Entry] = [:]
        var pending: [UInt8] = []
        var line = 0

        init(path: String, folder: [UInt8]) {
            self.path = path
            self.folder = folder
        }

        mutating func feed(_ bytes: ArraySlice<UInt8>) throws {
            var rest = bytes
            while let newline = rest.firstIndex(of: 0x0A) {
                guard pending.count + (newline - rest.startIndex) <= maxLineBytes else { throw tooLong(line + 1) }
                pending += rest[rest.startIndex..<newline]
                try take()
                rest = rest[(newline + 1)...]
            }
            guard pending.count + rest.count <= maxLineBytes else { throw tooLong(line + 1) }
            pending += rest
        }

        mutating func finish() throws {
            if !pending.isEmpty { try take() }
        }

        private func tooLong(_ number: Int) -> ArchiveError {
            ArchiveError(
                .badInput,
                "\(path) line \(number) is longer than \(maxLineBytes) bytes",
                fix: "check that it is a sha256sum list"
            )
        }

        private func malformed(_ number: Int, _ why: String) -> ArchiveError {
            ArchiveError(
                .badInput,
                "\(path) line \(number) \(why)",
                fix: "use the output format of sha256sum: '<sha256>  <name>'"
            )
        }

        private mutating func take() throws {
            line += 1
            guard line <= maxLines else {
                throw ArchiveError(
                    .badInput,
                    "\(path) has more than \(maxLines) lines",
                    fix: "split the list and ingest its folders in several runs"
                )
            }
            var text = pending
            pending = []
            if text.last == 0x0D { text.removeLast() }
            guard !text.isEmpty else { return }
            let (hex, rawName, escaped) = try split(text)
            let name = escaped ? try unescape(rawName) : rawName
            guard !name.isEmpty else { throw malformed(line, "names no file") }
            guard !name.contains(0) else { throw malformed(line, "has a NUL byte in its name") }
            let absolute = normalize(name.first == 0x2F ? name : folder + [0x2F] + name)
            let entry = Entry(line: line, listed: name, sha256: hex)
            if let earlier = entries[absolute] {
                guard earlier.sha256 == hex else {
                    throw malformed(line, "lists the file of line \(earlier.line) again with another SHA-256")
                }
                return
            }
            entries[absolute] = entry
        }

        /// The hash (lowercase), the name as written and whether it is escaped.
        private func split(_ text: [UInt8]) throws -> (String, [UInt8], Bool) {
            var body = text[...]
            let escaped = body.first == 0x5C
            if escaped { body = body.dropFirst() }
            let tag = Array("SHA256 (".utf8)
            if body.starts(with: tag) {
                // BSD form: SHA256 (<name>) = <hex>
                let hexPart = body.suffix(64)
                let head = body.dropLast(64)
                guard body.count > tag.count + 4 + 64, head.suffix(4).elementsEqual(Array(") = ".utf8)),
                    let hex = Self.hex(hexPart)
                else { throw malformed(line, "is not 'SHA256 (<name>) = <sha256>'") }
                return (hex, Array(head.dropFirst(tag.count).dropLast(4)), escaped)
            }
            guard body.count > 66, let hex = Self.hex(body.prefix(64)) else {
                throw malformed(line, "does not start with a 64-digit hex SHA-256")
            }
            let separator = body.dropFirst(64).prefix(2)
            guard separator.first == 0x20, separator.last == 0x20 || separator.last == 0x2A else {
                throw malformed(line, "has no '  ' or ' *' between the SHA-256 and the name")
            }
            return (hex, Array(body.dropFirst(66)), escaped)
        }

        private static func hex(_ digits: ArraySlice<UInt8>) -> String? {
            guard digits.count == 64 else { return nil }
            var out = ""
            for digit in digits {
                switch digit {
                case 0x30...0x39, 0x61...0x66: out.unicodeScalars.append(Unicode.Scalar(digit))
                case 0x41...0x46: out.unicodeScalars.append(Unicode.Scalar(digit + 0x20))
                default: return nil
                }
            }
            return out
        }

        private func unescape(_ name: [UInt8]) throws -> [UInt8] {
            var out: [UInt8] = []
            var iterator = name.makeIterator()
            while let byte = iterator.next() {
                guard byte == 0x5C else {
                    out.append(byte)
                    continue
                }
                switch iterator.next() {
                case 0x5C: out.append(0x5C)
                case 0x6E: out.append(0x0A)
                case 0x72: out.append(0x0D)
                default: throw malformed(line, "has an escape in its name other than \\\\, \\n or \\r")
                }
            }
            return out
        }
    }
}
