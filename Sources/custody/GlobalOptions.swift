import ArgumentParser
import CustodyArchive
import CustodyCrypto
import CustodyS3
import CustodyStorage
import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// Options every command takes.
struct GlobalOptions: ParsableArguments {
    @Option(
        name: .long,
        help: ArgumentHelp("The archive folder (default: $CUSTODY_ARCHIVE).", valueName: "path"),
        completion: .directory
    )
    var archive: String?

    @Option(
        name: .long,
        help: ArgumentHelp(
            "Read the passphrase from this file (first line); it must be a regular file of mode 0600 or 0400.",
            valueName: "file"
        ),
        completion: .file()
    )
    var passphraseFile: String?

    @Option(
        name: .long,
        help: ArgumentHelp(
            "The member who acts (default: $CUSTODY_MEMBER, else the archive's only member); their passphrase is asked.",
            valueName: "name"
        )
    )
    var member: String?

    /// The member named by --member or $CUSTODY_MEMBER, if any.
    var memberName: String? {
        if let member, !member.isEmpty { return member }
        if let env = ProcessInfo.processInfo.environment["CUSTODY_MEMBER"], !env.isEmpty { return env }
        return nil
    }

    /// The archive path, or a usage error naming both ways to give it.
    func archivePath() throws -> String {
        if let archive, !archive.isEmpty { return archive }
        if let env = ProcessInfo.processInfo.environment["CUSTODY_ARCHIVE"], !env.isEmpty { return env }
        throw ArchiveError(.usage, "no archive given", fix: "pass --archive PATH or set CUSTODY_ARCHIVE")
    }

    /// Opens the archive, its passphrase source wired to the options (asked only if something needs the keys),
    /// and its object store where `objects.json` says (``objectStore``).
    func openArchive(access: Archive.Access = .shared) throws -> Archive {
        try Archive.open(
            at: archivePath(),
            access: access,
            passphrase: passphraseSource,
            member: memberName,
            objects: Self.objectStore
        )
    }

    /// Opens the archive for a command that needs no secrets but is an action of some roles only (listing items,
    /// exporting a bundle…): in an archive with members the acting member's passphrase is asked and their role
    /// checked first (``Archive/authenticate(for:)``).
    func openArchive(authorizing actions: Set<Member.Action>, access: Archive.Access = .shared) throws -> Archive {
        let archive = try openArchive(access: access)
        try archive.authenticate(for: actions)
        return archive
    }

    /// Asks for the passphrase as the options say, naming the archive in a prompt.
    var passphraseSource: Archive.PassphraseSource {
        let options = self
        return { name in try options.readPassphrase(prompt: "Passphrase for \(name): ") }
    }

    /// The composition root's choice of backend: the S3 bucket `objects.json` names, else the folder
    /// `objects/` (``ObjectStoreLocation``).
    static let objectStore: Archive.ObjectStoreOpener = { root in
        try ObjectStoreLocation.of(archive: root).open()
    }

    /// Opens the archive and unlocks it as the acting member, checking first that their role allows `actions`:
    /// for commands that seal, sign or decrypt.
    func unlockArchive(for actions: Set<Member.Action>, access: Archive.Access = .shared) throws -> Archive.Unlocked {
        let archive = try openArchive(access: access).unlock()
        try archive.authorize(archive.member, for: actions)
        return archive
    }

    /// Reads a new passphrase (a new member's, or one's own new one): `file`, then $CUSTODY_NEW_PASSPHRASE, then a
    /// prompt asked twice.
    func readNewPassphrase(file: String?, prompt: String) throws -> SecretBytes {
        if let file {
            var options = self
            options.passphraseFile = file
            return try options.readPassphrase(prompt: "")
        }
        if let env = getenv("CUSTODY_NEW_PASSPHRASE") {
            var bytes = Array(UnsafeRawBufferPointer(start: env, count: strlen(env)))
            defer { wipe(&bytes) }
            return try checkedPassphrase(bytes)
        }
        let fresh = try Terminal.readSecret(prompt: prompt)
        let again = try Terminal.readSecret(prompt: "Repeat it: ")
        guard fresh == again else { throw ArchiveError(.usage, "the two passphrases differ", fix: "try again") }
        return fresh
    }

    /// The largest `--passphrase-file` read (its first line is the passphrase, at most 4096 bytes).
    static let passphraseFileLimit = 64 * 1024

    /// Reads the passphrase: --passphrase-file, then $CUSTODY_PASSPHRASE, then a prompt without echo.
    ///
    /// A passphrase file must be a regular file that only its owner may access (mode 0600 or 0400), as ssh
    /// demands of a private key; anything else is refused with exit 77 (``POSIX/readPrivateFile(_:limit:)``).
    func readPassphrase(prompt: String, confirm: Bool = false) throws -> SecretBytes {
        if let passphraseFile {
            var bytes = try POSIX.readPrivateFile(passphraseFile, limit: Self.passphraseFileLimit)
            defer { wipe(&bytes) }
            if let newline = bytes.firstIndex(of: 0x0A) { bytes.removeSubrange(newline...) }
            return try checkedPassphrase(bytes)
        }
        if let env = getenv("CUSTODY_PASSPHRASE") {
            var bytes = Array(UnsafeRawBufferPointer(start: env, count: strlen(env)))
            defer { wipe(&bytes) }
            return try checkedPassphrase(bytes)
        }
        let first = try Terminal.readSecret(prompt: prompt)
        if confirm {
            let second = try Terminal.readSecret(prompt: "Repeat it: ")
            guard first == second else {
                throw ArchiveError(.usage, "the two passphrases differ", fix: "run the command again")
            }
        }
        return first
    }
}

/// The one rule for every passphrase source: one trailing CR dropped, 1 to 4096 bytes.
func checkedPassphrase(_ input: [UInt8]) throws -> SecretBytes {
    var bytes = input
    defer { wipe(&bytes) }
    if bytes.last == 0x0D { bytes.removeLast() }
    guard bytes.count <= 4096 else {
        throw ArchiveError(.usage, "the passphrase is longer than 4096 bytes", fix: "use a shorter passphrase")
    }
    guard !bytes.isEmpty else {
        throw ArchiveError(.usage, "the passphrase is empty", fix: "give a non-empty passphrase")
    }
    return try SecretBytes(copying: bytes)
}

/// Reads a small file given on the command line (passphrase, hash list), refusing anything over 16 MiB.
func readSmallFile(_ path: String) throws -> [UInt8] {
    guard let handle = FileHandle(forReadingAtPath: path) else {
        throw ArchiveError(.notFound, "cannot read \(path)", fix: "check the path and its permissions")
    }
    defer { try? handle.close() }
    let data = try handle.read(upToCount: 16 << 20 + 1) ?? Data()
    guard data.count <= 16 << 20 else {
        throw ArchiveError(.badInput, "\(path) is larger than 16 MiB", fix: "check that it is the right file")
    }
    return [UInt8](data)
}

/// A small input named on the command line: a file, or `-` for standard input (read up to 64 KiB + 1 byte,
/// so the library's 64 KiB bound still sees an over-long input).
func readInputArgument(_ file: String) throws -> [UInt8] {
    file == "-" ? Array(FileHandle.standardInput.readData(ofLength: 64 * 1024 + 1)) : try readSmallFile(file)
}

/// Terminal helpers: prompts without echo, TTY detection.
enum Terminal {
    /// Whether standard error is a terminal (progress bars go there).
    static var stderrIsTTY: Bool { isatty(STDERR_FILENO) == 1 }

    /// Prompts on /dev/tty and reads one line without echo.
    static func readSecret(prompt: String) throws -> SecretBytes {
        let fd = open("/dev/tty", O_RDWR | O_CLOEXEC)
        guard fd >= 0 else {
            throw ArchiveError(
                .passphraseNeeded,
                "the passphrase is needed but there is no terminal to ask",
                fix: "set CUSTODY_PASSPHRASE or pass --passphrase-file"
            )
        }
        defer { close(fd) }
        var old = termios()
        let hasTermios = tcgetattr(fd, &old) == 0
        if hasTermios {
            var silent = old
            silent.c_lflag &= ~tcflag_t(ECHO)
            silent.c_lflag |= tcflag_t(ICANON)
            tcsetattr(fd, TCSAFLUSH, &silent)
        }
        defer {
            if hasTermios { tcsetattr(fd, TCSAFLUSH, &old) }
            _ = write(fd, "\n", 1)
        }
        _ = TerminalText.escape(prompt).withCString { write(fd, $0, strlen($0)) }
        var line = [UInt8]()
        defer { wipe(&line) }
        var byte: UInt8 = 0
        while read(fd, &byte, 1) == 1 && byte != 0x0A {
            if line.count <= 4097 { line.append(byte) }  // enough to tell "too long" apart; the rest is dropped
        }
        byte = 0
        return try checkedPassphrase(line)
    }
}

/// Runs a command body, turning archive and storage errors into the one-line message and exit code of
/// DESIGN.md.
func runReportingErrorsAsync(_ body: () async throws -> Void) async throws {
    umask(0o077)
    ProcessSetup.limitAllocatorArenas()
    do {
        try await body()
    } catch let error as ArchiveError {
        reportError(error)
        throw ExitCode(error.code.exitCode)
    } catch let error as StorageError {
        let error = ArchiveError(error)
        reportError(error)
        throw ExitCode(error.code.exitCode)
    } catch let error as SodiumError {
        reportError(cryptographyFailed(error))
        throw ExitCode(1)
    }
}

/// A libsodium failure, as the one error line reports it.
private func cryptographyFailed(_ error: SodiumError) -> ArchiveError {
    ArchiveError(
        ArchiveError.Reason("cryptography-failed", .damaged),
        "cryptography failed (\(error))",
        fix: "check the libsodium installation"
    )
}

/// How the one error line of a failed command is written.
///
/// `custody: <problem> — <fix>` for people; with `CUSTODY_ERROR_FORMAT=json` in the environment, one JSON
/// object on one line for scripts (Docs/OPERATIONS.md section 10): the reason's stable name, its class and exit
/// code, and the same problem and fix, escaped as the text line is.
enum ErrorFormat {
    case text
    case json

    /// The format `CUSTODY_ERROR_FORMAT` asks for (text unless it is exactly `json`).
    static var current: ErrorFormat {
        ProcessInfo.processInfo.environment["CUSTODY_ERROR_FORMAT"] == "json" ? .json : .text
    }

    /// The JSON form: `{"error":{"class":…,"exit":…,"fix":…,"problem":…,"reason":…}}`.
    struct Line: Encodable {
        struct Body: Encodable {
            let reason: String
            let `class`: String
            let exit: Int32
            let problem: String
            let fix: String
        }

        let error: Body

        init(_ error: ArchiveError) {
            self.error = Body(
                reason: error.reason.name,
                class: error.code.name,
                exit: error.code.exitCode,
                problem: TerminalText.escape(error.problem),
                fix: TerminalText.escape(error.fix)
            )
        }
    }
}

/// Writes the error line of a failed command to standard error, in the ``ErrorFormat`` asked for.
func reportError(_ error: ArchiveError) {
    switch ErrorFormat.current {
    case .text:
        printError("custody: \(error)")
    case .json:
        // Escaped problem and fix, encoded by JSONEncoder (which escapes every control character): one line.
        guard let bytes = try? JSONFormat.compactEncoder().encode(ErrorFormat.Line(error)) else {
            printError("custody: \(error)")
            return
        }
        FileHandle.standardError.write(bytes + Data([0x0A]))
    }
}

/// Prints `value` as pretty JSON with sorted keys.
func printJSON(_ value: some Encodable) throws {
    FileHandle.standardOutput.write(Data(try JSONFormat.fileBytes(value)))
}

/// Human-readable byte counts.
func formatBytes(_ bytes: Int64) -> String {
    let units = ["B", "KiB", "MiB", "GiB", "TiB"]
    var value = Double(bytes)
    var unit = 0
    while value >= 1024 && unit < units.count - 1 {
        value /= 1024
        unit += 1
    }
    return unit == 0 ? "\(bytes) B" : String(format: "%.1f %@", value, units[unit])
}
