import ArgumentParser
import CustodyArchive
import CustodyS3
import CustodyStorage

extension CustodyCommand {
    struct Init: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Create a new archive and its first member, an administrator, sealed with their passphrase.",
            discussion: """
                The folder must not exist or must be empty. The first member is named by --member (default \
                admin); their key file members/<id>.json (mode 0600) holds the archive's secrets under their \
                passphrase, and their signed member-add event founds the roster. Add the rest of the team with \
                custody member add.
                """
        )

        @OptionGroup var global: GlobalOptions
        @Option(help: "Display name of the body that holds the archive.") var name: String
        @Option(help: "Log origin (no spaces or '+'); default custody/<8 hex of the fingerprint>.") var origin: String?
        @Option(
            help: ArgumentHelp(
                "Argon2id strength: interactive (default), moderate or sensitive. insecure-test is for tests only.",
                valueName: "preset"
            )
        )
        var kdf = "interactive"
        @Option(
            help: ArgumentHelp(
                "Keep the encrypted objects in an S3 bucket instead of objects/ (the ledger, index and keys stay here). Credentials come from AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY and are never stored.",
                valueName: "s3://bucket/prefix"
            )
        )
        var objects: String?
        @Option(
            help: ArgumentHelp(
                "How many administrators must approve each later roster change (default 1).",
                valueName: "n"
            )
        )
        var rosterThreshold = 1
        @OptionGroup var s3: S3Options
        @Flag(help: "Print JSON.") var json = false

        func run() async throws {
            try await runReportingErrorsAsync {
                let path = try global.archivePath()
                let settings = try objects.map { try s3.settings(for: $0) }
                if settings == nil, s3.s3Endpoint != nil || s3.s3Region != nil {
                    throw ArchiveError(
                        .usage,
                        "--s3-endpoint and --s3-region go with --objects",
                        fix: "add --objects s3://BUCKET/PREFIX"
                    )
                }
                let passphrase = try global.readPassphrase(prompt: "New passphrase: ", confirm: true)
                let archive: Archive.Unlocked
                if let settings {
                    // The bucket is checked first (endpoint, credentials, bucket), so a mistake leaves nothing behind.
                    let store = S3ObjectStore(client: try S3Client(settings: settings))
                    try await store.client.checkBucket()
                    archive = try await Archive.create(
                        at: path,
                        name: name,
                        origin: origin,
                        passphrase: passphrase,
                        kdfPreset: kdf,
                        objects: { _ in store },
                        recordObjects: { root in try ObjectStoreLocation.record(settings, archive: root) },
                        founder: global.memberName ?? "admin",
                        rosterThreshold: rosterThreshold
                    )
                } else {
                    archive = try await Archive.create(
                        at: path,
                        name: name,
                        origin: origin,
                        passphrase: passphrase,
                        kdfPreset: kdf,
                        founder: global.memberName ?? "admin",
                        rosterThreshold: rosterThreshold
                    )
                }
                let identity = try archive.identity()
                if json {
                    try printJSON(IdentityJSON(identity, path: path))
                } else {
                    print("Created archive \"\(identity.name)\" at \(path)")
                    print("  origin       \(identity.origin)")
                    print("  fingerprint  \(identity.fingerprint)")
                    if let settings { print("  objects      \(settings.url)") }
                    if let founder = archive.member?.member { print("  admin        \(founder.name) (\(founder.id))") }
                    if kdf == "insecure-test" {
                        print("  WARNING: insecure-test KDF — for tests only, never for evidence")
                    }
                    print(
                        "Give others your identity with: custody id export -o FILE; compare the fingerprint out of band."
                    )
                }
            }
        }
    }
}

/// `id show --json` and `init --json`.
struct IdentityJSON: Encodable {
    var name: String
    var origin: String
    var fingerprint: String
    var signingKey: String
    var boxKey: String
    var logVerifierKey: String
    /// The log's origin (the first line of its checkpoints); the same as `origin`.
    var logOrigin: String
    var archive: String?

    init(_ identity: Identity, path: String? = nil) {
        name = identity.name
        origin = identity.origin
        fingerprint = identity.fingerprint
        signingKey = identity.signingKey
        boxKey = identity.boxKey
        logVerifierKey = identity.logVerifierKey
        logOrigin = identity.origin
        archive = path
    }

    enum CodingKeys: String, CodingKey {
        case name, origin, fingerprint, archive
        case signingKey = "signing_key"
        case boxKey = "box_key"
        case logVerifierKey = "log_verifier_key"
        case logOrigin = "log_origin"
    }
}

/// Where an S3 store is, for `init --objects` and `migrate-objects`: stored with the archive (no credentials).
struct S3Options: ParsableArguments {
    @Option(help: "The S3 endpoint URL, stored with the archive (default: $AWS_ENDPOINT_URL_S3, else AWS).")
    var s3Endpoint: String?
    @Option(help: "The S3 region, stored with the archive (default: $AWS_REGION, else us-east-1).")
    var s3Region: String?

    /// The settings for `url` (`s3://bucket/prefix`), with the endpoint and region from the options, else the
    /// environment.
    func settings(for url: String) throws -> S3Settings {
        var settings = try S3Settings.parse(url)
        let environment = S3Environment.current()
        settings.endpoint = s3Endpoint ?? environment.endpoint
        settings.region = s3Region ?? environment.region
        return settings
    }
}
