import CustodyStorage

#if canImport(Glibc)
import Glibc
#endif

/// The patterns of `ingest --exclude`, and the operating systems' litter left out by default.
///
/// A pattern is an `fnmatch(3)` glob: `*` any run of characters, `?` one character, `[…]` a set (`[!…]` its
/// complement), `\` quotes the next character. It is matched against each entry found inside a folder given to
/// `ingest`, twice: against the entry's name, and against its path relative to that folder (`sub/dir/name`,
/// where `*`, `?` and sets never match `/`). A pattern ending in `/` matches folders only (the `/` is not part of
/// the glob); an excluded folder is not entered. Paths named on the command line are never excluded. `**` has no
/// special meaning. User patterns are case-sensitive; the default ones ignore case (they come from
/// case-insensitive file systems: `THUMBS.DB` is litter too).
package struct IngestExclusions: Sendable, Equatable {
    /// One pattern.
    package struct Pattern: Sendable, Equatable {
        /// The pattern as given, trailing `/` included.
        package var text: String
        /// The glob, without a trailing `/`.
        var glob: [UInt8]
        /// Matches folders only.
        var foldersOnly: Bool
        /// Matched ignoring case.
        var ignoringCase: Bool
    }

    /// The patterns, defaults first.
    package private(set) var patterns: [Pattern] = []

    /// Longest pattern, in bytes.
    package static let maxPatternBytes = 1024
    /// Most patterns.
    package static let maxPatterns = 256

    /// The defaults: macOS (`.DS_Store`, AppleDouble `._*` files, `.Trashes/`, `.Spotlight-V100/`, `.fseventsd/`)
    /// and Windows (`Thumbs.db`, `desktop.ini`, `$RECYCLE.BIN/`, `System Volume Information/`) litter.
    package static let defaultPatterns = [
        ".DS_Store", "._*", ".Trashes/", ".Spotlight-V100/", ".fseventsd/", "Thumbs.db", "desktop.ini",
        "$RECYCLE.BIN/", "System Volume Information/",
    ]

    /// No exclusions.
    package static let none = IngestExclusions()

    /// The ``defaultPatterns`` alone.
    package static let defaults: IngestExclusions = {
        var exclusions = IngestExclusions()
        exclusions.patterns = defaultPatterns.map { pattern($0, ignoringCase: true) }
        return exclusions
    }()

    private init() {}

    /// The user's `patterns`, after the defaults unless `defaults` is false.
    ///
    /// - Throws: ``ArchiveError`` (usage) for an empty pattern, one with a NUL, one over ``maxPatternBytes``, or
    ///   more than ``maxPatterns``.
    package init(_ patterns: [String], defaults: Bool = true) throws {
        guard patterns.count <= Self.maxPatterns else {
            throw ArchiveError(
                .usage,
                "\(patterns.count) --exclude patterns given",
                fix: "give at most \(Self.maxPatterns)"
            )
        }
        if defaults {
            self.patterns = Self.defaultPatterns.map { Self.pattern($0, ignoringCase: true) }
        }
        for text in patterns {
            guard !text.isEmpty, text != "/", !text.utf8.contains(0), text.utf8.count <= Self.maxPatternBytes else {
                throw ArchiveError(
                    .usage,
                    "--exclude \(text.prefix(40)) is not a pattern",
                    fix: "give a non-empty glob of at most \(Self.maxPatternBytes) bytes, such as '*.tmp' or 'cache/'"
                )
            }
            self.patterns.append(Self.pattern(text, ignoringCase: false))
        }
    }

    private static func pattern(_ text: String, ignoringCase: Bool) -> Pattern {
        var glob = Array(text.utf8)
        let foldersOnly = glob.last == 0x2F
        while glob.count > 1 && glob.last == 0x2F { glob.removeLast() }
        return Pattern(text: text, glob: glob, foldersOnly: foldersOnly, ignoringCase: ignoringCase)
    }

    /// The first pattern that excludes the entry `name`, at `relative` below the folder given.
    ///
    /// - Parameters:
    ///   - name: The entry's name, raw bytes.
    ///   - relative: Its path below the folder given, raw bytes (`name` for an entry of that folder).
    ///   - isFolder: Whether it is a folder.
    /// - Returns: The pattern, or `nil` when none does.
    package func excluding(name: [UInt8], relative: [UInt8], isFolder: Bool) -> Pattern? {
        guard !patterns.isEmpty else { return nil }
        return patterns.first { pattern in
            guard isFolder || !pattern.foldersOnly else { return false }
            let flags = pattern.ignoringCase ? Self.caseFold : 0
            return Self.matches(pattern.glob, name, flags: flags)
                || (relative != name && Self.matches(pattern.glob, relative, flags: flags | FNM_PATHNAME))
        }
    }

    /// glibc's `FNM_CASEFOLD` (a GNU extension the Glibc module may not import).
    private static let caseFold: Int32 = 1 << 4

    private static func matches(_ glob: [UInt8], _ text: [UInt8], flags: Int32) -> Bool {
        // Both are NUL-free (a pattern is checked above, a file name cannot hold NUL) and NUL-terminated here.
        FileScanner.withCString(glob) { g in FileScanner.withCString(text) { t in fnmatch(g, t, flags) == 0 } }
    }
}

/// An entry left out by an `--exclude` pattern (or a default one).
package struct ExcludedEntry: Sendable, Equatable {
    /// Its path as shown (non-UTF-8 bytes as U+FFFD).
    package var path: String
    /// Whether it is a folder (not entered).
    package var isFolder: Bool
    /// The pattern that excluded it.
    package var pattern: String
    /// Its real path, raw bytes (``SourceFile/absolutePath``).
    package var absolutePath: [UInt8] = []
}
