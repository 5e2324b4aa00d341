/// A suite that drives the `custody` binary on archives in its temporary folder: one environment per archive
/// name, and `custody init` with the fast test KDF. Written once here for every CLI suite.
package protocol CLIArchiveSuite {
    /// The suite's temporary folder; archive `name` is `dir/name`.
    var dir: TempDirectory { get }
    /// The passphrase of every archive the suite makes.
    static var passphrase: String { get }
}

extension CLIArchiveSuite {
    /// The environment that points the CLI at archive `name`, with the suite's passphrase.
    package func env(_ name: String) -> [String: String] {
        ["CUSTODY_ARCHIVE": dir.path + "/" + name, "CUSTODY_PASSPHRASE": Self.passphrase]
    }

    /// Runs `custody init` for archive `name`, displayed as `displayName` (default: `name` in capitals), with the
    /// insecure-test KDF.
    @discardableResult
    package func initArchive(_ name: String, displayName: String? = nil) -> CLIResult {
        CLI.run(
            ["init", "--name", displayName ?? name.uppercased(), "--kdf", "insecure-test"],
            environment: env(name)
        )
    }
}
