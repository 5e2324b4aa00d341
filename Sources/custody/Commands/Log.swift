import ArgumentParser
import CustodyArchive
import CustodyCrypto
import Foundation

extension CustodyCommand {
    struct Log: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "List the custody log: every signed event, in order. No keys needed.",
            discussion: """
                Each entry's signature is checked as it is read. With --json, "entry" is the base64 of the exact \
                leaf bytes (see Docs/LEDGER.md), so anyone can re-hash and re-verify them.
                """
        )

        @OptionGroup var global: GlobalOptions
        @Option(help: "The first entry to list.") var from = 0
        @Option(help: "At most this many entries.") var limit: Int?
        @Flag(help: "Print JSON.") var json = false

        func validate() throws {
            if from < 0 { throw ValidationError("--from must be 0 or more") }
            if let limit, limit < 0 { throw ValidationError("--limit must be 0 or more") }
        }

        func run() async throws {
            try await runReportingErrorsAsync {
                let archive = try global.openArchive()
                var entries: [LogEntryJSON] = []
                try archive.forEachLogEntry(from: from, limit: limit ?? .max) { entry in
                    let event = entry.event
                    if json {
                        entries.append(
                            LogEntryJSON(
                                index: entry.index,
                                type: event.type.rawValue,
                                time: event.time,
                                actor: event.actor,
                                item: event.item?.hex,
                                entry: Encoding.base64(entry.bytes)
                            )
                        )
                    } else {
                        print(
                            "#\(entry.index)  \(event.time)  \(event.type)  \(event.item?.hex ?? "-")  by \(event.actor)"
                        )
                    }
                }
                if json { try printJSON(["entries": entries]) }
            }
        }
    }
}

struct LogEntryJSON: Encodable {
    var index: Int
    var type: String
    var time: String
    var actor: String
    var item: String?
    var entry: String
}
