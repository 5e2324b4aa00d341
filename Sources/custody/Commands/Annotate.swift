import ArgumentParser
import CustodyArchive
import Foundation

extension CustodyCommand {
    struct Tag: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Add or remove an item's tags (a signed tag event in the custody log).",
            discussion: """
                The tags are sealed in an object under the item's metadata key; the public event names only that \
                object. Needs the passphrase.
                """
        )

        @OptionGroup var global: GlobalOptions
        @Argument(help: "Item id or unique prefix.") var item: String
        @Option(help: "A tag to add (repeatable).") var add: [String] = []
        @Option(help: "A tag to remove (repeatable).") var remove: [String] = []
        @Flag(help: "Print JSON.") var json = false

        func run() async throws {
            try await runReportingErrorsAsync {
                let archive = try global.unlockArchive(for: [.annotate])
                let tags = try await archive.tag(item, add: add, remove: remove)
                if json {
                    try await printJSON(TagJSON(item: archive.resolveItem(item).id, tags: tags))
                } else {
                    print("tags: \(tags.isEmpty ? "(none)" : tags.joined(separator: ", "))")
                }
            }
        }
    }

    struct Note: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Add a note to an item (a signed note event in the custody log).",
            discussion: """
                The text is sealed in an object under the item's metadata key; the public event names only that \
                object. `custody show` lists notes with the item's history. Needs the passphrase.
                """
        )

        @OptionGroup var global: GlobalOptions
        @Argument(help: "Item id or unique prefix.") var item: String
        @Argument(help: "The note (at most 64 KiB).") var text: String

        func run() async throws {
            try await runReportingErrorsAsync {
                let archive = try global.unlockArchive(for: [.annotate])
                try await archive.note(item, text: text)
                print("note added to \(try await archive.resolveItem(item).id)")
            }
        }
    }
}

struct TagJSON: Encodable {
    var item: String
    var tags: [String]
}
