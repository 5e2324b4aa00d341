import CustodyStorage

#if canImport(Glibc)
import Glibc
#endif

/// An error from an archive operation: what went wrong and how to fix it, in one line.
///
/// The CLI prints `custody: <description>` and exits with the code that ``Code`` maps to (DESIGN.md sysexits).
/// Descriptions name paths, ids and objects, never secrets.
package struct ArchiveError: Error, Sendable, CustomStringConvertible {
    /// The class of failure, which fixes the exit code: the one set of classes every layer uses (defined with
    /// the object store's errors, the lowest layer that fails).
    package typealias Code = StorageError.Code

    /// Why it failed, for code: a name that does not change when the wording of ``problem`` does, and the
    /// class of failure (``Code``) that fixes the exit code.
    ///
    /// An extensible set, as swift-nio's and Hummingbird's error codes are: each class has a general reason of
    /// its own name (``damaged``, ``usage``…), and the failures callers and tests tell apart have their own
    /// (``fork``, ``wrongPassphrase``…). Compare reasons, never ``problem`` text.
    package typealias Reason = StorageError.Reason

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

/// The reasons of the archive's own failures, beside the general and storage ones that ``StorageError/Reason``
/// declares (one type for every layer, so a storage failure keeps its reason as it rises).
extension ArchiveError.Reason {
    /// A log showed two histories: a checkpoint inconsistent with one witnessed or cosigned before.
    package static let fork = Self("fork", .damaged)
    /// A proof that proves nothing: neither consistency nor a fork (damaged or altered on the way).
    package static let proofInvalid = Self("proof-invalid", .badInput)
    /// The passphrase does not open the key file.
    package static let wrongPassphrase = Self("wrong-passphrase", .notAuthorised)
    /// The operation needs the passphrase and none can be had.
    package static let passphraseNeeded = Self("passphrase-needed", .notAuthorised)
    /// Another command holds the archive.
    package static let busy = Self("busy", .temporary)
    /// The index cannot be opened or read.
    package static let indexDamaged = Self("index-damaged", .damaged)
    /// A grant that was revoked.
    package static let grantRevoked = Self("grant-revoked", .notAuthorised)
    /// A grant that is not valid now (expired, or not yet valid).
    package static let grantNotValid = Self("grant-not-valid", .notAuthorised)
    /// A re-share whose ancestor grant is not held here intact.
    package static let ancestorNotHeld = Self("ancestor-not-held", .notAuthorised)
    /// A re-share that would outlast its parent grant.
    package static let outlastsParent = Self("outlasts-parent", .usage)
    /// An item whose content was not shared with this archive (a metadata-only grant).
    package static let metadataOnly = Self("metadata-only", .notAuthorised)
    /// A bundle addressed to another body than this archive.
    package static let addressedElsewhere = Self("addressed-elsewhere", .notAuthorised)
    /// A granter this archive does not know (import it with `--trust-granter`).
    package static let granterUnknown = Self("granter-unknown", .notAuthorised)
    /// An identity that shares the origin or a key of a known body but is not that body's identity.
    package static let identityClash = Self("identity-clash", .notAuthorised)
    /// A log or cosigner this archive does not know (add it with `custody witness add`).
    package static let logUnknown = Self("log-unknown", .notAuthorised)
    /// A revocation notice that does not verify (a signature, the proof or the grant does not match).
    package static let revocationInvalid = Self("revocation-invalid", .damaged)
    /// A revocation notice that is not of the documented form.
    package static let revocationMalformed = Self("revocation-malformed", .badInput)
    /// A revocation notice whose granter is not a body this archive knows, so it cannot be checked.
    package static let revocationUnverifiable = Self("revocation-unverifiable", .notAuthorised)
    /// A file that is not a Custody bundle (wrong magic).
    package static let notABundle = Self("not-a-bundle", .badInput)
    /// A bundle that ends inside a record.
    package static let bundleTruncated = Self("bundle-truncated", .badInput)
    /// A bundle that does not verify (its report names each problem).
    package static let bundleInvalid = Self("bundle-invalid", .badInput)
    /// A file that must be private (a passphrase file) but group or others may read.
    package static let fileExposed = Self("file-exposed", .notAuthorised)
    /// An identity that is not validly self-signed, or whose name or origin breaks the rules.
    package static let identityInvalid = Self("identity-invalid", .badInput)
    /// A file that changed between the scan and its ingest (replaced, or no longer a regular file).
    package static let changedSinceScan = Self("changed-since-scan", .badInput)
    /// The journal holds fewer entries than the log signed.
    package static let journalTruncated = Self("journal-truncated", .damaged)
    /// The journal's entries do not hash to the root the log signed.
    package static let historyAltered = Self("history-altered", .damaged)
    /// A stored checkpoint that is not signed by this archive's log key.
    package static let checkpointInvalid = Self("checkpoint-invalid", .damaged)
    /// A peer's head shows a checkpoint beyond its log as it shows it to witnesses (a split view).
    package static let splitView = Self("split-view", .badInput)
    /// A peer's answer that is not of the protocol's form (e.g. a malformed grant list).
    package static let peerMalformed = Self("peer-malformed", .badInput)
    /// A peer sent another grant, granter or checkpoint than the one asked for.
    package static let grantUnexpected = Self("grant-unexpected", .badInput)
    /// A peer that did not send its answer (or an object) within the protocol's deadline.
    package static let peerTooSlow = Self("peer-too-slow", .temporary)
    /// A search query that does not parse (Docs/SEARCH.md section 2).
    package static let queryMalformed = Self("query-malformed", .usage)
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
        self.init(error.reason, error.problem, fix: error.fix)
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

/// The reasons of the roster's refusals (Docs/OPERATIONS.md section 10).
extension ArchiveError.Reason {
    /// The acting member's role does not allow what the command does.
    package static let roleNotAllowed = Self("role-not-allowed", .notAuthorised)
    /// No member of that name has keys in this archive, or the roster has no such member.
    package static let memberUnknown = Self("member-unknown", .notFound)
    /// The member was removed from the roster.
    package static let memberRemoved = Self("member-removed", .notAuthorised)
    /// A roster change lacks approvals, or breaks the roster's rules.
    package static let rosterRefused = Self("roster-refused", .notAuthorised)
}
