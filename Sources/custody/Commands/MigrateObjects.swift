import ArgumentParser
import CustodyArchive
import Foundation

extension CustodyCommand {
    struct MigrateObjects: ParsableCommand {
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

        func run() throws {
            try runReportingErrors {
                let settings = try s3.settings(for: to)
                let archive = try global.openArchive(access: .exclusive)
                let bar = ProgressBar(enabled: Terminal.stderrIsTTY && !json, label: "migrate")
                let report = try archive.migrateObjects(to: settings) { done, total, _ in
                    bar.update(done: done, total: total, unit: "objects")
                }
                bar.finish()
                if json {
                    try printJSON(
                        MigrationJSON(
                            target: report.target,
                            objects: report.objects,
                            uploaded: report.uploaded,
                            alreadyThere: report.alreadyThere,
                            bytesUploaded: report.bytes,
                            localCopies: report.localCopies
                        )
                    )
                } else {
                    print(
                        "\(report.objects) object(s) on \(report.target), each read back and re-hashed: \(report.uploaded) uploaded now (\(formatBytes(report.bytes))), \(report.alreadyThere) already there"
                    )
                    print("the archive now uses \(report.target)")
                    print("the local objects remain in \(report.localCopies): delete them once custody verify passes")
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
