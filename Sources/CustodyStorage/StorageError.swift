#if canImport(Glibc)
import Glibc
#endif

/// An error from an object store: what went wrong and how to fix it, in one line.
///
/// Its reasons have the names and classes of the archive's error reasons (each class fixes an exit code,
/// DESIGN.md sysexits), so the archive maps a storage error to its own without rewording it. Descriptions
/// name paths, buckets and objects, never credentials.
package struct StorageError: Error, Sendable, CustomStringConvertible {
    /// The class of a failure, which fixes the exit code (DESIGN.md sysexits): one set for every layer, the
    /// archive's errors included (`ArchiveError.Code` is this type).
    package enum Code: Hashable, Sendable {
        /// Verification found damage, or a check failed; what is stored is not what was written (exit 1).
        case damaged
        /// Used or configured wrongly (exit 64).
        case usage
        /// Input data is malformed or refused; a store answered something unexpected (exit 65).
        case badInput
        /// A file, item, archive or bucket was not found (exit 66).
        case notFound
        /// Something could not be created, written or read, e.g. a full disk (exit 73).
        case cannotCreate
        /// A temporary failure: busy, timed out, kept failing; the command can be run again (exit 75).
        case temporary
        /// Wrong passphrase, refused credentials, not authorised (exit 77).
        case notAuthorised

        /// A stable kebab-case name of the class (the `class` of `CUSTODY_ERROR_FORMAT=json`).
        package var name: String {
            switch self {
            case .damaged: "damaged"
            case .usage: "usage"
            case .badInput: "bad-input"
            case .notFound: "not-found"
            case .cannotCreate: "cannot-create"
            case .temporary: "temporary"
            case .notAuthorised: "not-authorised"
            }
        }

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

    /// Why it failed, for code: an extensible set (a stable kebab-case name and its class), as swift-nio's and
    /// Hummingbird's error codes are. One type for every layer: the general reason of each class and the
    /// storage ones are here, the archive adds its own (`ArchiveError.Reason` is this type), so a storage
    /// failure keeps its reason as it rises. Callers compare reasons, never the message.
    package struct Reason: Hashable, Sendable, CustomStringConvertible {
        /// A stable kebab-case name.
        package let name: String
        /// The class of failure.
        package let code: Code

        /// A reason named `name`, of class `code`.
        package init(_ name: String, _ code: Code) {
            self.name = name
            self.code = code
        }

        package var description: String { name }

        /// Damage found, or a check failed (in a store: a link or special file, a short or oversized object,
        /// a copy that does not read back).
        package static let damaged = Reason("damaged", .damaged)
        /// Used or configured wrongly (a store: a bad URL or endpoint, no credentials).
        package static let usage = Reason("usage", .usage)
        /// Input malformed or refused (a store's answer, a path that is not what a store can be).
        package static let badInput = Reason("bad-input", .badInput)
        /// Not found (a file, an item, an archive, a bucket).
        package static let notFound = Reason("not-found", .notFound)
        /// Something could not be written or read.
        package static let cannotCreate = Reason("cannot-create", .cannotCreate)
        /// A temporary failure: kept failing, timed out, closed, busy.
        package static let temporary = Reason("temporary", .temporary)
        /// Not authorised (refused credentials, a wrong passphrase).
        package static let notAuthorised = Reason("not-authorised", .notAuthorised)
        /// No space left on the device (or over quota).
        package static let noSpace = Reason("no-space", .cannotCreate)
        /// A file read as a small file is not a regular file (a pipe, device or folder).
        package static let notRegularFile = Reason("not-regular-file", .badInput)
        /// A file or object is larger than it may be.
        package static let tooLarge = Reason("too-large", .badInput)
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
                .noSpace,
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
