import CustodyCrypto
import CustodyStorage
import Foundation

/// What `custody submit` produced.
package struct SubmissionResult: Sendable {
    /// The items ingested into the submitter's archive (a throw-away one when anonymous).
    package var items: [IngestedItem]
    /// The submission grant's id.
    package var grant: String
    /// The bundle written.
    package var bundle: BundleExport
    /// The submitting identity's fingerprint (of a throw-away identity when anonymous).
    package var fingerprint: String
}

extension ArchiveContext {

    /// An anonymous submission: a throw-away archive and identity in a private temporary folder, used once and
    /// deleted; the mechanism records an anonymous submission.
    package static func submitAnonymously(
        _ paths: [String],
        options: IngestOptions,
        to mechanism: Identity,
        expires: String,
        purpose: String,
        output: String
    ) async throws -> SubmissionResult {
        let base = NSTemporaryDirectory() + "custody-anonymous-" + Encoding.hex(randomBytes(8))
        defer { try? FileManager.default.removeItem(atPath: base) }
        // A random passphrase nobody ever sees: the throw-away keys die with the folder.
        let passphrase = try SecretBytes(copying: Array(Encoding.hex(randomBytes(32)).utf8))
        let archive = try await Archive.create(at: base, name: "anonymous submitter", passphrase: passphrase)
        var fields = options
        fields.fields.source = nil  // an anonymous submission names no source
        return try await archive.submit(
            paths,
            options: fields,
            to: mechanism,
            expires: expires,
            purpose: purpose,
            output: output,
            kind: .anonymousSubmission
        )
    }
}

extension Archive.Unlocked {
    /// Ingests `paths` and writes a bundle granting them to `mechanism`: full content, no re-share, kind
    /// `submission` — how an NGO or an investigator sends evidence to a mechanism.
    package func submit(
        _ paths: [String],
        options: IngestOptions,
        to mechanism: Identity,
        expires: String,
        purpose: String,
        output: String,
        kind: Grant.Kind = .submission
    ) async throws -> SubmissionResult {
        if POSIX.lstatPath(output) != nil {
            throw ArchiveError(.cannotCreate, "\(output) already exists", fix: "choose another -o path")
        }
        let report = try await ingest(paths, options: options)
        guard !report.items.isEmpty else {
            throw ArchiveError(
                .badInput,
                "nothing was ingested, so nothing is submitted",
                fix: "name the files to submit"
            )
        }
        var request = GrantRequest(grantee: mechanism, expires: expires, purpose: purpose)
        request.items = report.items.map(\.id.hex)
        request.kind = kind
        let (grant, _, scope) = try await createGrant(request)
        if let left = scope.excluded.first {
            throw ArchiveError(
                .badInput,
                "item \(left.id) cannot be submitted: \(left.reason)",
                fix: "the items stay in this archive; submit without --consent no-share"
            )
        }
        let bundle = try await exportBundle(grant: grant.id, to: output)
        return SubmissionResult(
            items: report.items,
            grant: grant.id,
            bundle: bundle,
            fingerprint: try identity().fingerprint
        )
    }
}
