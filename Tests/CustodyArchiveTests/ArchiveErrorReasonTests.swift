import CustodyArchive
import Testing

/// Reasons are what code compares; their class fixes the exit code (DESIGN.md sysexits).
@Suite struct ArchiveErrorReasonTests {
    @Test func eachReasonBelongsToTheClassItsExitCodeNeeds() {
        let expected: [(ArchiveError.Reason, Int32)] = [
            (.damaged, 1), (.fork, 1), (.indexDamaged, 1), (.usage, 64), (.badInput, 65), (.proofInvalid, 65),
            (.notFound, 66), (.cannotCreate, 73), (.noSpace, 73), (.temporary, 75), (.busy, 75),
            (.notAuthorised, 77), (.wrongPassphrase, 77), (.passphraseNeeded, 77), (.grantRevoked, 77),
        ]
        for (reason, exit) in expected {
            #expect(reason.code.exitCode == exit, "\(reason)")
            #expect(ArchiveError(reason, "p", fix: "f").code == reason.code)
        }
        // Names are stable and distinct: scripts and logs may rely on them.
        #expect(Set(expected.map(\.0.name)).count == expected.count)
        #expect(ArchiveError.Reason.general(.damaged) == .damaged && ArchiveError.Reason.fork != .damaged)
    }

    @Test func theOneLineIsProblemThenFix() {
        let error = ArchiveError(.busy, "the archive is busy", fix: "wait")
        #expect(error.description == "the archive is busy — wait")
        #expect(!error.description.contains("\n"))
    }
}
