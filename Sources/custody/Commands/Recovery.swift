import ArgumentParser
import CustodyArchive
import CustodyCrypto
import CustodyStorage
import Foundation

extension CustodyCommand {
    struct RecoveryCommand: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "recovery",
            abstract: "M-of-N recovery: split the archive's secrets into SLIP-39 shares, restore an administrator.",
            discussion: """
                For the day every administrator's passphrase is lost. `split` gives each custodian one share \
                (SLIP-39 words, the Trezor standard: checksummed, readable aloud); any threshold of them \
                re-creates an administrator with `restore`, as a logged recovery event. Fewer shares reveal \
                nothing. Docs/OPERATIONS.md section 19 describes the ceremony.
                """,
            subcommands: [Split.self, OpenShare.self, Restore.self]
        )

        struct Split: AsyncParsableCommand {
            static let configuration = CommandConfiguration(
                abstract: "Make a recovery split; its shares are printed once. Replaces any earlier split.",
                discussion: """
                    Needs an administrator (and, under a roster threshold, other administrators' approval: \
                    custody member approve). A fresh recovery seed is split into SLIP-39 shares; the archive keeps \
                    only the secrets sealed under it (recovery.json) and the log records the split's public key. \
                    The shares are printed once, on standard output: hand each to its custodian and keep none here. \
                    Groups: --group 2/3 --group 1/1 --group-threshold 2 (two of three board members and the \
                    lawyer, for example); or simply --threshold 3 --shares 5.
                    """
            )
            @OptionGroup var global: GlobalOptions
            @Option(help: "Shares needed to restore (one group).") var threshold: Int?
            @Option(help: "Shares made (one group).") var shares: Int?
            @Option(help: ArgumentHelp("A group: THRESHOLD/COUNT (repeatable).", valueName: "t/n")) var group:
                [String] = []
            @Option(help: "How many groups are needed (with --group).") var groupThreshold: Int?
            @Option(
                help: ArgumentHelp(
                    "Seal the shares, in order, to these members' own keys instead of printing them (one per share).",
                    valueName: "member"
                )
            ) var sealTo: [String] = []
            @Option(name: .shortAndLong, help: "With --seal-to: the folder to write the sealed shares to.") var output:
                String?
            @Flag(help: "Print JSON.") var json = false

            func groups() throws -> (threshold: Int, groups: [SLIP39.Group]) {
                if !group.isEmpty {
                    guard threshold == nil, shares == nil else {
                        throw ArchiveError(.usage, "--group does not go with --threshold/--shares", fix: "use one form")
                    }
                    let parsed = try group.map { text -> SLIP39.Group in
                        let parts = text.split(separator: "/")
                        guard parts.count == 2, let t = Int(parts[0]), let n = Int(parts[1]) else {
                            throw ArchiveError(
                                .usage,
                                "--group \(TerminalText.escape(String(text.prefix(20)))) is not THRESHOLD/COUNT",
                                fix: "write e.g. --group 2/3"
                            )
                        }
                        return SLIP39.Group(memberThreshold: t, memberCount: n)
                    }
                    return (groupThreshold ?? parsed.count, parsed)
                }
                guard let threshold, let shares else {
                    throw ArchiveError(.usage, "no split given", fix: "pass --threshold M --shares N, or --group T/N")
                }
                guard groupThreshold == nil else {
                    throw ArchiveError(.usage, "--group-threshold goes with --group", fix: "add --group T/N options")
                }
                // SLIP-39 makes a 1-of-1 group for one share; a 1-of-N split is N groups of one, any one of which
                // restores.
                if threshold == 1 && shares > 1 {
                    return (1, Array(repeating: SLIP39.Group(memberThreshold: 1, memberCount: 1), count: shares))
                }
                return (1, [SLIP39.Group(memberThreshold: threshold, memberCount: shares)])
            }

            func run() async throws {
                try await runReportingErrorsAsync {
                    let (groupThreshold, groups) = try groups()
                    let shareCount = groups.reduce(0) { $0 + $1.memberCount }
                    guard sealTo.isEmpty || (sealTo.count == shareCount && output != nil) else {
                        throw ArchiveError(
                            .usage,
                            "--seal-to names \(sealTo.count) member(s) for \(shareCount) share(s)\(output == nil ? ", and no -o folder" : "")",
                            fix: "give one --seal-to per share, in share order, and -o DIR"
                        )
                    }
                    guard Set(sealTo).count == sealTo.count else {
                        throw ArchiveError(
                            .usage,
                            "--seal-to names a member twice",
                            fix: "give each custodian one share"
                        )
                    }
                    let archive = try global.unlockArchive(for: [.manageMembers])
                    // Every custodian must be a current member, checked before anything is split.
                    let roster = try archive.roster()
                    let custodians = try sealTo.map { name in
                        guard let member = roster.current(named: name) else {
                            throw ArchiveError(
                                .memberUnknown,
                                "\(TerminalText.escape(String(name.prefix(80)))) is not a current member",
                                fix: "check the names with custody member list"
                            )
                        }
                        return member
                    }
                    if let output, !custodians.isEmpty {
                        guard FileManager.default.fileExists(atPath: output) || POSIX.makeDirectories(output) == 0
                        else {
                            throw ArchiveError(
                                .cannotCreate,
                                "cannot create \(output)",
                                fix: "choose another -o folder"
                            )
                        }
                    }
                    let split = try await archive.splitRecovery(groupThreshold: groupThreshold, groups: groups)
                    if let output, !custodians.isEmpty {
                        let mnemonics = split.groups.flatMap { $0 }
                        var written: [SealedShareJSON] = []
                        for (index, (words, member)) in zip(mnemonics, custodians).enumerated() {
                            let sealed = try SealedRecoveryShare.seal(
                                words,
                                identifier: split.identifier,
                                to: member,
                                origin: archive.config.origin
                            )
                            let path = output + "/recovery-share-\(index + 1)-\(member.id).json"
                            try ArchiveFiles.writeAtomically(path, JSONFormat.fileBytes(sealed), mode: 0o600)
                            written.append(SealedShareJSON(share: index + 1, member: member.name, file: path))
                        }
                        if json {
                            try printJSON(written)
                        } else {
                            print("Recovery split \(split.identifier): \(groupThreshold) of \(groups.count) group(s).")
                            for share in written {
                                print(
                                    "share \(share.share) sealed to \(TerminalText.escape(share.member)): \(TerminalText.escape(share.file))"
                                )
                            }
                            print("Hand each file to its custodian; they open it with custody recovery open-share.")
                        }
                        return
                    }
                    if json {
                        try printJSON(
                            SplitJSON(
                                identifier: split.identifier,
                                recoveryKey: split.recoveryKey,
                                groupThreshold: groupThreshold,
                                groups: split.groups,
                                status: split.outcome == .recorded ? "recorded" : "proposed"
                            )
                        )
                        return
                    }
                    if case .proposed(let id, let approvals, let needed) = split.outcome {
                        printError(
                            "custody: the split waits for approvals (\(approvals) of \(needed)): custody member approve \(id); its shares work only once it is recorded"
                        )
                    }
                    print("Recovery split \(split.identifier): \(groupThreshold) of \(groups.count) group(s).")
                    print(
                        "Write each share down and hand it to its custodian. They are not stored; this is the only copy."
                    )
                    for (g, members) in split.groups.enumerated() {
                        for (m, words) in members.enumerated() {
                            print("")
                            print(
                                "share \(g + 1).\(m + 1)  (group \(g + 1): \(groups[g].memberThreshold) of \(groups[g].memberCount))"
                            )
                            print(words)
                        }
                    }
                }
            }
        }

        struct OpenShare: AsyncParsableCommand {
            static let configuration = CommandConfiguration(
                commandName: "open-share",
                abstract: "Print the words of a recovery share sealed to you (recovery split --seal-to).",
                discussion: """
                    Opens the file with the acting member's own key file and passphrase (--member NAME), and \
                    prints the SLIP-39 words on standard output, for recovery restore. Only the member the share \
                    was sealed to can open it; another member's, another archive's or an altered file is refused.
                    """
            )
            @OptionGroup var global: GlobalOptions
            @Argument(help: "The sealed share file.", completion: .file()) var file: String

            func run() async throws {
                try await runReportingErrorsAsync {
                    let share = try SealedRecoveryShare.parse(
                        try ArchiveFiles.read(file, limit: SealedRecoveryShare.maxBytes + 1),
                        source: file
                    )
                    print(try global.openArchive().openSealedShare(share))
                }
            }
        }

        struct Restore: AsyncParsableCommand {
            static let configuration = CommandConfiguration(
                abstract: "Re-create an administrator from a threshold of recovery shares (a logged recovery event).",
                discussion: """
                    Reads the shares from --shares-file (mode 0600) or standard input, one share per line (blank \
                    lines and lines starting with # are skipped). Needs no member's passphrase: the new \
                    administrator's own comes from --new-passphrase-file, $CUSTODY_NEW_PASSPHRASE or a prompt. \
                    Refuses, changing nothing, too few shares, a duplicated share, shares of different splits, and \
                    shares of an earlier split than the archive's current one.
                    """
            )
            @OptionGroup var global: GlobalOptions
            @Option(help: "The new administrator's display name.") var name: String
            @Option(help: "Read the shares from this file (mode 0600), one a line.", completion: .file())
            var sharesFile: String?
            @Option(help: "Read the new administrator's passphrase from this file.", completion: .file())
            var newPassphraseFile: String?
            @Option(help: "Argon2id strength of their key file (interactive, moderate, sensitive).") var kdf =
                "interactive"
            @Flag(help: "Print JSON.") var json = false

            func run() async throws {
                try await runReportingErrorsAsync {
                    var input =
                        try sharesFile.map { try POSIX.readPrivateFile($0, limit: 64 * 1024) }
                        ?? Array(FileHandle.standardInput.readData(ofLength: 64 * 1024 + 1))
                    defer { wipe(&input) }
                    guard input.count <= 64 * 1024 else {
                        throw ArchiveError(.badInput, "the shares are longer than 64 KiB", fix: "give one share a line")
                    }
                    let shares = String(decoding: input, as: UTF8.self).split(whereSeparator: \.isNewline)
                        .map { $0.trimmingCharacters(in: .whitespaces) }
                        .filter { !$0.isEmpty && !$0.hasPrefix("#") }
                    let archive = try global.openArchive()
                    let fresh = try global.readNewPassphrase(
                        file: newPassphraseFile,
                        prompt: "Passphrase for \(name): "
                    )
                    let member = try await archive.restoreRecovery(
                        shares: shares,
                        name: name,
                        passphrase: fresh,
                        kdfPreset: kdf
                    )
                    if json {
                        try printJSON(MemberJSON(member))
                    } else {
                        print("recovered: \(member.name) (\(member.id)) is an administrator")
                        print("make a new split (custody recovery split): these shares have been seen together")
                    }
                }
            }
        }
    }
}

/// `recovery split --json`.
struct SplitJSON: Encodable {
    var identifier: Int
    var recoveryKey: String
    var groupThreshold: Int
    var groups: [[String]]
    var status: String

    enum CodingKeys: String, CodingKey {
        case identifier, groups, status
        case recoveryKey = "recovery_key"
        case groupThreshold = "group_threshold"
    }
}

/// `recovery split --seal-to … --json`: where each sealed share went.
struct SealedShareJSON: Encodable {
    var share: Int
    var member: String
    var file: String
}
