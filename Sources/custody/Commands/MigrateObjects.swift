import ArgumentParser
import CustodyArchive
import CustodyS3
import CustodyStorage
import Foundation

extension CustodyCommand {
    struct MigrateObjects: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "migrate-objects",
            abstract: "Move the archive's encrypted objects from objects/ to an S3 bucket.",
            discussion: """
                Copies every object the journal names, reads each copy back and re-hashes it, and only then \
                switches the archive over (objects.json); the local folder is kept as objects-before-s3/ until you \
                delete it. Resumable: run it again after an interruption and it uploads only what the bucket lacks. \
                Runs alone (waits for other custody commands). Credentials come from AWS_ACCESS_KEY_ID and \
                AWS_SECRET_ACCESS_KEY and are never stored. No passphrase needed.
                """
        )

        @OptionGroup var global: GlobalOptions
        @Option(help: ArgumentHelp("The bucket and prefix.", valueName: "s3://bucket/prefix")) var to: String
        @OptionGroup var s3: S3Options
        @Flag(help: "Print JSON.") var json = false

        func run() async throws {
            try await runReportingErrorsAsync {
                let settings = try s3.settings(for: to)
                let archive = try global.openArchive(authorizing: [.manageMembers], access: .exclusive)
                guard case .folder = try ObjectStoreLocation.of(archive: archive.root) else {
                    throw ArchiveError(
                        .usage,
                        "this archive's objects are already on S3",
                        fix: "migrate-objects copies from the local objects/ folder only"
                    )
                }
                let target = S3ObjectStore(client: try S3Client(settings: settings))
                try await target.client.checkBucket()
                // Every object the journal names, from a journal that verifies: otherwise nothing is copied.
                let objects = try await archive.referencedObjects()
                let bar = ProgressBar(enabled: Terminal.stderrIsTTY && !json, label: "migrate")
                let copied = try await target.copy(objects, from: archive.store.backend) { done, total, _ in
                    bar.update(done: done, total: total, unit: "objects")
                }
                bar.finish()
                // Every object is on the target and verified: switch over, atomically.
                let localCopies = try ObjectStoreLocation.switchToS3(settings, archive: archive.root)
                if json {
                    try printJSON(
                        MigrationJSON(
                            target: settings.url,
                            objects: objects.count,
                            uploaded: copied.uploaded,
                            alreadyThere: copied.alreadyThere,
                            bytesUploaded: copied.bytes,
                            localCopies: localCopies
                        )
                    )
                } else {
                    print(
                        "\(objects.count) object(s) on \(settings.url), each read back and re-hashed: \(copied.uploaded) uploaded now (\(formatBytes(copied.bytes))), \(copied.alreadyThere) already there"
                    )
                    print("the archive now uses \(settings.url)")
                    print("the local objects remain in \(localCopies): delete them once custody verify passes")
                }
            }
        }
    }
}

struct MigrationJSON: Encodable {
    var target: String
    var objects: Int
    var uploaded: Int
    var alreadyThere: Int
    var bytesUploaded: Int64
    var localCopies: String

    enum CodingKeys: String, CodingKey {
        case target, objects, uploaded
        case alreadyThere = "already_there"
        case bytesUploaded = "bytes_uploaded"
        case localCopies = "local_copies"
    }
}
