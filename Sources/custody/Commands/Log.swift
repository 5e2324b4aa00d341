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
                let roster = try archive.roster()
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
                                member: event.by.map { MemberRefJSON($0, roster: roster) },
                                item: event.item?.hex,
                                entry: Encoding.base64(entry.bytes)
                            )
                        )
                    } else {
                        let by = event.by.map { roster.label(of: $0) } ?? event.actor
                        let subject = event.subject.map { "  \($0.name) as \($0.role)" } ?? ""
                        print(
                            "#\(entry.index)  \(event.time)  \(event.type)  \(event.item?.hex ?? "-")\(subject)  by \(by)"
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
    /// The member who acted, named from the roster.
    var member: MemberRefJSON?
    var item: String?
    var entry: String
}

/// A member an event names, as `log --json` and `show --json` give it: id, and name and role from the roster.
struct MemberRefJSON: Encodable {
    var id: String
    var name: String?
    var role: String?

    init(_ id: MemberID, roster: Roster) {
        self.id = id.hex
        name = roster.entries[id]?.member.name
        role = roster.entries[id]?.member.role.rawValue
    }
}

extension Roster {
    /// How a person is named in text output: `alice (investigator)`, from the roster; never a key.
    func label(of id: MemberID) -> String {
        guard let entry = entries[id] else { return "\(id) (not in the roster)" }
        return "\(entry.member.name) (\(entry.member.role))"
    }
}
