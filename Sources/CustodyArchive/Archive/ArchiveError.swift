import CustodyStorage

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

    /// Why it failed, for code: a name that does not change when the wording of ``problem`` does, and the
    /// class of failure (``Code``) that fixes the exit code.
    ///
    /// An extensible set, as swift-nio's and Hummingbird's error codes are: each class has a general reason of
    /// its own name (``damaged``, ``usage``…), and the failures callers and tests tell apart have their own
    /// (``fork``, ``wrongPassphrase``…). Compare reasons, never ``problem`` text.
    package struct Reason: Hashable, Sendable, CustomStringConvertible {
        /// A stable kebab-case name.
        package let name: String
        /// The class of failure.
        package let code: Code

        package init(_ name: String, _ code: Code) {
            self.name = name
            self.code = code
        }

        package var description: String { name }

        /// Verification found damage, or a check failed.
        package static let damaged = Reason("damaged", .damaged)
        /// The command was used wrongly.
        package static let usage = Reason("usage", .usage)
        /// Input data is malformed or refused.
        package static let badInput = Reason("bad-input", .badInput)
        /// A file, item or archive was not found.
        package static let notFound = Reason("not-found", .notFound)
        /// Something could not be created or written.
        package static let cannotCreate = Reason("cannot-create", .cannotCreate)
        /// A temporary failure.
        package static let temporary = Reason("temporary", .temporary)
        /// Not authorised.
        package static let notAuthorised = Reason("not-authorised", .notAuthorised)

        /// A log showed two histories: a checkpoint inconsistent with one witnessed or cosigned before.
        package static let fork = Reason("fork", .damaged)
        /// A proof that proves nothing: neither consistency nor a fork (damaged or altered on the way).
        package static let proofInvalid = Reason("proof-invalid", .badInput)
        /// The passphrase does not open the key file.
        package static let wrongPassphrase = Reason("wrong-passphrase", .notAuthorised)
        /// The operation needs the passphrase and none can be had.
        package static let passphraseNeeded = Reason("passphrase-needed", .notAuthorised)
        /// Another command holds the archive.
        package static let busy = Reason("busy", .temporary)
        /// No space left on the device (or over quota).
        package static let noSpace = Reason("no-space", .cannotCreate)
        /// The index cannot be opened or read.
        package static let indexDamaged = Reason("index-damaged", .damaged)
        /// A grant that was revoked.
        package static let grantRevoked = Reason("grant-revoked", .notAuthorised)
    }

    /// Why it failed.
    package let reason: Reason
    /// The class of failure.
    package var code: Code { reason.code }
    /// What went wrong, naming the object.
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

extension ArchiveError.Reason {
    /// The general reason of a class of failure.
    package static func general(_ code: ArchiveError.Code) -> Self {
        switch code {
        case .damaged: .damaged
        case .usage: .usage
        case .badInput: .badInput
        case .notFound: .notFound
        case .cannotCreate: .cannotCreate
        case .temporary: .temporary
        case .notAuthorised: .notAuthorised
        }
    }
}

extension ArchiveError {
    /// The archive's form of an object store's error: the same reason name and class (so the same exit
    /// code), the same problem and fix. The one place a ``StorageError`` becomes an ``ArchiveError``.
    package init(_ error: StorageError) {
        let code: Code =
            switch error.reason.code {
            case .damaged: .damaged
            case .usage: .usage
            case .badInput: .badInput
            case .notFound: .notFound
            case .cannotCreate: .cannotCreate
            case .temporary: .temporary
            case .notAuthorised: .notAuthorised
            }
        let general = Reason.general(code)
        let reason = error.reason.name == general.name ? general : Reason(error.reason.name, code)
        self.init(reason, error.problem, fix: error.fix)
    }

    /// Any error from below the archive (an object store, the blocking-work pool) as an ``ArchiveError``.
    package init(_ error: any Error) {
        switch error {
        case let error as ArchiveError: self = error
        case let error as StorageError: self.init(error)
        case is CancellationError:
            self.init(.temporary, "the operation was cancelled", fix: "run the command again")
        default: self.init(.temporary, "the operation failed: \(error)", fix: "run the command again")
        }
    }

    /// Maps an `errno` from a failed write to a one-line error (the object store's wording).
    static func writeFailed(_ what: String, errno code: Int32) -> ArchiveError {
        ArchiveError(StorageError.writeFailed(what, errno: code))
    }
}
