import ArgumentParser
import CustodyArchive
import CustodyClaims
import Foundation

extension CustodyCommand {
    struct Show: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Show an item's metadata, SHA-256, size and whole custody history (tags and notes included).",
            discussion: "Ids may be abbreviated to a unique prefix of at least 8 characters."
        )

        @OptionGroup var global: GlobalOptions
        @Argument(help: "Item id or unique prefix.") var item: String
        @Flag(help: "Print JSON.") var json = false

        func run() async throws {
            try await runReportingErrorsAsync {
                let archive = try global.openArchive(authorizing: [.read])
                let found = try await archive.resolveItem(item)
                let events = try await archive.index().events(of: found.id)
                let roster = try archive.roster()
                let m = found.metadata
                if json {
                    try await printJSON(
                        ShowJSON(
                            item: found,
                            events: events,
                            roster: roster,
                            provenance: try archive.index().provenance(of: found.id),
                            grantRevocation: try archive.revocation(ofItem: found.id).map {
                                RevocationJSON(grant: $0.grant, $0.revocation)
                            }
                        )
                    )
                    return
                }
                let rows: [(String, String?)] = [
                    ("id", found.id), ("name", m.name), ("path", m.shownPath), ("media type", m.mediaType),
                    ("size", "\(m.size) bytes (\(formatBytes(m.size)))"), ("sha256", m.sha256), ("case", m.caseID),
                    ("tags", m.tags.isEmpty ? nil : m.tags.joined(separator: ", ")), ("source", m.source),
                    ("collected at", m.collectedAt), ("location", m.location), ("consent", m.consent),
                    ("sensitivity", m.sensitivity), ("note", m.note), ("ingested at", m.ingestedAt),
                    ("ingested by", m.ingestedBy), ("duplicate of", found.duplicateOf),
                    ("matched list", m.matchedManifest.map { "SHA-256 matched the --expect-from list \($0)" }),
                    ("raw path", m.pathBytes.map { "not UTF-8, kept as bytes (base64 \($0))" }),
                ]
                for (label, value) in rows {
                    if let value { print(label.padding(toLength: 14, withPad: " ", startingAt: 0) + value) }
                }
                if let provenance = try await archive.index().provenance(of: found.id) {
                    print(
                        "received from".padding(toLength: 14, withPad: " ", startingAt: 0)
                            + "\(provenance.granter) (\(provenance.granterOrigin)) \(provenance.granterFingerprint)"
                    )
                    print(
                        "under grant".padding(toLength: 14, withPad: " ", startingAt: 0)
                            + "\(provenance.grant) (\(provenance.kind.rawValue))"
                    )
                    print("purpose".padding(toLength: 14, withPad: " ", startingAt: 0) + provenance.purpose)
                    print("imported at".padding(toLength: 14, withPad: " ", startingAt: 0) + provenance.importedAt)
                    if let (_, revoked) = try await archive.revocation(ofItem: found.id) {
                        print(
                            "GRANT REVOKED".padding(toLength: 14, withPad: " ", startingAt: 0)
                                + "by \(TerminalText.escape(revoked.revokedBy)) at \(revoked.revokedAt) (signed notice received \(revoked.receivedAt))"
                        )
                    }
                }
                for (key, value) in m.meta.sorted(by: { $0.key < $1.key }) {
                    print("meta".padding(toLength: 14, withPad: " ", startingAt: 0) + "\(key)=\(value)")
                }
                if let claims = m.claims { printClaims(claims) }
                print("custody events:")
                for event in events {
                    let by = event.member.flatMap(MemberID.init(hex:)).map { roster.label(of: $0) } ?? event.actor
                    var line = "  #\(event.seq)  \(event.time)  \(event.type)  by \(by)"
                    if let annotation = event.annotation {
                        if annotation.type == "tag" {
                            let changes =
                                (annotation.add ?? []).map { "+" + $0 } + (annotation.remove ?? []).map { "-" + $0 }
                            line += "  " + changes.joined(separator: " ")
                        } else if annotation.type == "extract", let text = annotation.text {
                            line += "  purpose: " + text
                        } else if let text = annotation.text {
                            line += ": " + text.replacingOccurrences(of: "\n", with: "\n      ")
                        }
                    }
                    printBlock(line)  // a note's own line breaks are indented under it
                }
            }
        }
    }
}

/// Prints the "The file says" block of `show`: what the file claims about itself, never verified.
private func printClaims(_ c: FileClaims) {
    func time(_ t: ClaimedTime?, _ from: String? = nil) -> String? {
        guard let t else { return nil }
        let precision = t.precision == .local ? "local time, no offset" : t.precision.rawValue
        return t.value + " (" + ([from, precision].compactMap { $0 }.joined(separator: ", ")) + ")"
    }
    let gps = c.gps.map { g in
        "\(g.lat), \(g.lon)" + (g.alt.map { ", altitude \($0) m" } ?? "") + " (\(g.from))"
    }
    let camera = [c.make, c.model].compactMap { $0 }.joined(separator: " ")
    let rows: [(String, String?)] = [
        ("format", c.format), ("captured at", time(c.capturedAt, c.capturedFrom)), ("gps", gps),
        ("camera", camera.isEmpty ? nil : camera), ("software", c.software),
        ("mp4 created", time(c.mp4Created)), ("iso 6709", c.iso6709),
        ("pdf created", time(c.pdfCreated)), ("pdf modified", time(c.pdfModified)),
        ("producer", c.producer), ("creator", c.creator),
        ("c2pa", c.c2pa ? "a C2PA manifest is present (not verified; bytes kept untouched)" : nil),
        ("file modified", c.fileModifiedAt.map { $0 + " (file system, at ingest)" }),
    ]
    print("The file says (its own claims, not verified):")
    for (label, value) in rows {
        if let value {
            print("  " + label.padding(toLength: 14, withPad: " ", startingAt: 0) + TerminalText.escape(value))
        }
    }
}

struct ShowJSON: Encodable {
    var item: IndexedItem
    var events: [IndexedEvent]
    var roster: Roster
    var provenance: Provenance?
    /// The grant the item came under was revoked (a verified notice was recorded).
    var grantRevocation: RevocationJSON?

    enum Key: String, CodingKey {
        case id, name, path
        case mediaType = "media_type"
        case size, sha256, `case`, tags, source
        case collectedAt = "collected_at"
        case location, consent, sensitivity, note, meta
        case ingestedAt = "ingested_at"
        case ingestedBy = "ingested_by"
        case duplicateOf = "duplicate_of"
        case claims
        case events, provenance
        case grantRevocation = "grant_revocation"
        case matchedManifest = "matched_manifest"
        case pathBytes = "path_bytes"
        case shownPath = "path_escaped"
    }

    struct EventJSON: Encodable {
        var index: Int
        var type: String
        var time: String
        var actor: String
        /// The member who acted, named from the roster.
        var member: MemberRefJSON?
        /// Extract events: the purpose given.
        var purpose: String?
        /// Tag events: tags added and removed.
        var add: [String]?
        var remove: [String]?
        /// Note events: the text.
        var text: String?
    }

    func encode(to encoder: any Encoder) throws {
        let m = item.metadata
        var c = encoder.container(keyedBy: Key.self)
        try c.encode(item.id, forKey: .id)
        try c.encode(m.name, forKey: .name)
        try c.encode(m.path, forKey: .path)
        try c.encode(m.mediaType, forKey: .mediaType)
        try c.encode(m.size, forKey: .size)
        try c.encode(m.sha256, forKey: .sha256)
        try c.encode(m.caseID, forKey: .case)
        try c.encode(m.tags, forKey: .tags)
        try c.encode(m.source, forKey: .source)
        try c.encode(m.collectedAt, forKey: .collectedAt)
        try c.encode(m.location, forKey: .location)
        try c.encode(m.consent, forKey: .consent)
        try c.encode(m.sensitivity, forKey: .sensitivity)
        try c.encode(m.note, forKey: .note)
        try c.encode(m.meta, forKey: .meta)
        try c.encode(m.ingestedAt, forKey: .ingestedAt)
        try c.encode(m.ingestedBy, forKey: .ingestedBy)
        try c.encode(item.duplicateOf, forKey: .duplicateOf)
        try c.encodeIfPresent(m.matchedManifest, forKey: .matchedManifest)
        try c.encodeIfPresent(m.pathBytes, forKey: .pathBytes)
        if m.pathBytes != nil { try c.encode(m.shownPath, forKey: .shownPath) }
        try c.encodeIfPresent(m.claims, forKey: .claims)
        try c.encode(provenance, forKey: .provenance)
        try c.encode(grantRevocation, forKey: .grantRevocation)
        try c.encode(
            events.map {
                EventJSON(
                    index: $0.seq,
                    type: $0.type,
                    time: $0.time,
                    actor: $0.actor,
                    member: $0.member.flatMap(MemberID.init(hex:)).map { MemberRefJSON($0, roster: roster) },
                    purpose: $0.annotation?.type == "extract" ? $0.annotation?.text : nil,
                    add: $0.annotation?.add,
                    remove: $0.annotation?.remove,
                    text: $0.annotation?.type == "extract" ? nil : $0.annotation?.text
                )
            },
            forKey: .events
        )
    }
}
