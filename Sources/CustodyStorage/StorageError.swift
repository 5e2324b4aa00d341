#if canImport(Glibc)
import Glibc
#endif

/// An error from an object store: what went wrong and how to fix it, in one line.
///
/// The reasons are the archive's classes of failure (each fixes an exit code, DESIGN.md sysexits), so the
/// archive maps a storage error to its own without rewording it. Descriptions name paths, buckets and
/// objects, never credentials.
package struct StorageError: Error, Sendable, CustomStringConvertible {
    /// The class of failure: an extensible set that callers switch on, never on the message.
    package struct Reason: Hashable, Sendable, CustomStringConvertible {
        enum Storage: Hashable, Sendable {
            case damaged, usage, badInput, notFound, cannotCreate, temporary, notAuthorised
        }
        let storage: Storage

        /// What is stored is not what was written: a link or special file in the store, a short or oversized
        /// object, a copy that does not read back (exit 1).
        package static var damaged: Self { .init(storage: .damaged) }
        /// The store was named or configured wrongly: a bad URL or endpoint, no credentials (exit 64).
        package static var usage: Self { .init(storage: .usage) }
        /// The store answered something malformed or unexpected (exit 65).
        package static var badInput: Self { .init(storage: .badInput) }
        /// The store itself (a bucket) does not exist (exit 66).
        package static var notFound: Self { .init(storage: .notFound) }
        /// Something could not be written or read, e.g. a full disk (exit 73).
        package static var cannotCreate: Self { .init(storage: .cannotCreate) }
        /// The store kept failing or timed out; the command can be run again (exit 75).
        package static var temporary: Self { .init(storage: .temporary) }
        /// The store refused the credentials (exit 77).
        package static var notAuthorised: Self { .init(storage: .notAuthorised) }

        package var description: String { "\(storage)" }
    }

    /// The class of failure.
    package let reason: Reason
    /// What went wrong, naming the object, path or bucket.
    package let problem: String
    /// How to fix it.
    package let fix: String

    /// Creates an error.
    package init(_ reason: Reason, _ problem: String, fix: String) {
        self.reason = reason
        self.problem = problem
        self.fix = fix
    }

    package var description: String { "\(problem) — \(fix)" }
}

extension StorageError {
    /// Maps an `errno` from a failed write to a one-line error.
    package static func writeFailed(_ what: String, errno code: Int32) -> StorageError {
        switch code {
        case ENOSPC, EDQUOT:
            StorageError(
                .cannotCreate,
                "\(what): no space left on device",
                fix: "free disk space and run the command again"
            )
        case EACCES, EPERM:
            StorageError(
                .cannotCreate,
                "\(what): permission denied",
                fix: "check the permissions of the archive folder"
            )
        case EROFS:
            StorageError(.cannotCreate, "\(what): read-only file system", fix: "use a writable archive location")
        default:
            StorageError(
                .cannotCreate,
                "\(what): \(errnoDescription(code))",
                fix: "check the disk and run the command again"
            )
        }
    }
}

/// The C library's text for an `errno` value.
package func errnoDescription(_ code: Int32) -> String {
    String(cString: strerror(code))
}
