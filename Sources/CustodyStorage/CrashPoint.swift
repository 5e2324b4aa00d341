#if canImport(Glibc)
import Glibc
#endif

/// Deterministic kill points for crash-safety tests.
///
/// When the environment variable `CUSTODY_TEST_CRASH_AT` names a point, the process kills itself with
/// SIGKILL on reaching it. Documented in Docs/FORMAT.md ("Crash-safety test hooks"); it grants nothing an
/// attacker with the power to set the environment does not already have.
package enum CrashPoint {
    private static let target: String? = getenv("CUSTODY_TEST_CRASH_AT").map { String(cString: $0) }

    /// Kills the process if `point` is the configured crash point.
    package static func hit(_ point: String) {
        if let target, target == point { kill(getpid(), SIGKILL) }
    }

    /// Whether `point` is the configured crash point.
    package static func isArmed(_ point: String) -> Bool { target == point }
}
