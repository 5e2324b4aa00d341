#if canImport(Glibc)
import Glibc
#endif

/// An error from an archive operation: what went wrong and how to fix it, in one line.
///
/// The CLI prints `custody: <description>` and exits with the code that ``Code`` maps to (DESIGN.md sysexits).
/// Descriptions name paths, ids and objects, never secrets.
package struct ArchiveError: Error, Sendable, CustomStringConvertible {
    /// The class of failure, which fixes the exit code.
    package enum Code: Sendable, Hashable {
        /// Verification found damage, or a check failed (exit 1).
        case damaged
        /// The command was used wrongly (exit 64).
        case usage
        /// Input data is malformed or refused (exit 65).
        case badInput
        /// A file, item or archive was not found (exit 66).
        case notFound
        /// Something could not be created or written, e.g. a full disk (exit 73).
        case cannotCreate
        /// A temporary failure: busy, retry later (exit 75).
        case temporary
        /// Wrong passphrase or not authorised (exit 77).
        case notAuthorised

        /// The sysexits code of DESIGN.md.
        package var exitCode: Int32 {
            switch self {
            case .damaged: 1
            case .usage: 64
            case .badInput: 65
            case .notFound: 66
            case .cannotCreate: 73
            case .temporary: 75
            case .notAuthorised: 77
            }
        }
    }

    /// The class of failure.
    package let code: Code
    /// What went wrong, naming the object.
    package let problem: String
    /// How to fix it.
    package let fix: String

    /// Creates an error.
    package init(_ code: Code, _ problem: String, fix: String) {
        self.code = code
        self.problem = problem
        self.fix = fix
    }

    package var description: String { "\(problem) — \(fix)" }
}

extension ArchiveError {
    /// Maps an `errno` from a failed write to a one-line error.
    static func writeFailed(_ what: String, errno code: Int32) -> ArchiveError {
        switch code {
        case 28, 122:  // ENOSPC, EDQUOT
            ArchiveError(
                .cannotCreate,
                "\(what): no space left on device",
                fix: "free disk space and run the command again"
            )
        case 13, 1:  // EACCES, EPERM
            ArchiveError(
                .cannotCreate,
                "\(what): permission denied",
                fix: "check the permissions of the archive folder"
            )
        case 30:  // EROFS
            ArchiveError(.cannotCreate, "\(what): read-only file system", fix: "use a writable archive location")
        default:
            ArchiveError(
                .cannotCreate,
                "\(what): \(errnoDescription(code))",
                fix: "check the disk and run the command again"
            )
        }
    }
}

/// The C library's text for an `errno` value.
func errnoDescription(_ code: Int32) -> String {
    String(cString: strerror(code))
}
