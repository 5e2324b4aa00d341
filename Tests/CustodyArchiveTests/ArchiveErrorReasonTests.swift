import CustodyArchive
import CustodyStorage
import CustodyTestSupport
import Foundation
import Testing

/// Reasons are what code compares; their class fixes the exit code (DESIGN.md sysexits).
@Suite struct ArchiveErrorReasonTests {
    @Test func eachReasonBelongsToTheClassItsExitCodeNeeds() throws {
        let expected: [(ArchiveError.Reason, Int32)] = [
            (.damaged, 1), (.fork, 1), (.indexDamaged, 1), (.usage, 64), (.badInput, 65), (.proofInvalid, 65),
            (.notFound, 66), (.cannotCreate, 73), (.noSpace, 73), (.temporary, 75), (.busy, 75),
            (.notAuthorised, 77), (.wrongPassphrase, 77), (.passphraseNeeded, 77), (.grantRevoked, 77),
            (.grantNotValid, 77), (.ancestorNotHeld, 77), (.outlastsParent, 64), (.metadataOnly, 77),
            (.addressedElsewhere, 77), (.granterUnknown, 77), (.identityClash, 77), (.revocationUnverifiable, 77),
            (.notABundle, 65), (.bundleTruncated, 65), (.bundleInvalid, 65), (.changedSinceScan, 65),
            (.journalTruncated, 1), (.historyAltered, 1), (.checkpointInvalid, 1), (.peerTooSlow, 75),
            (.logUnknown, 77), (.fileExposed, 77), (.notRegularFile, 65), (.tooLarge, 65),
            (.identityInvalid, 65), (.revocationInvalid, 1), (.revocationMalformed, 65), (.splitView, 65),
            (.peerMalformed, 65), (.grantUnexpected, 65), (.queryMalformed, 64), (.ingestsArchive, 64),
            (.nothingIngested, 65),
        ]
        for (reason, exit) in expected {
            #expect(reason.code.exitCode == exit, "\(reason)")
            #expect(ArchiveError(reason, "p", fix: "f").code == reason.code)
        }
        // Names are stable and distinct: scripts and logs may rely on them.
        #expect(Set(expected.map(\.0.name)).count == expected.count)
        // Each is documented for scripts (CUSTODY_ERROR_FORMAT=json), with its class.
        let docs = try String(contentsOfFile: CLI.packageRoot + "/Docs/OPERATIONS.md", encoding: .utf8)
        for (reason, _) in expected where reason != .general(reason.code) {
            #expect(docs.contains("| `\(reason.name)` | \(reason.code.name) |"), "\(reason) in Docs/OPERATIONS.md")
        }
        #expect(ArchiveError.Reason.general(.damaged) == .damaged && ArchiveError.Reason.fork != .damaged)
        let classes: [(ArchiveError.Code, String)] = [
            (.damaged, "damaged"), (.usage, "usage"), (.badInput, "bad-input"), (.notFound, "not-found"),
            (.cannotCreate, "cannot-create"), (.temporary, "temporary"), (.notAuthorised, "not-authorised"),
        ]
        for (code, name) in classes { #expect(code.name == name && ArchiveError.Reason.general(code).name == name) }
    }

    @Test func theOneLineIsProblemThenFix() {
        let error = ArchiveError(.busy, "the archive is busy", fix: "wait")
        #expect(error.description == "the archive is busy — wait")
        #expect(!error.description.contains("\n"))
    }
}
