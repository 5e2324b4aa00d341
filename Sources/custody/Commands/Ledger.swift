import ArgumentParser
import CustodyArchive
import CustodyCrypto
import CustodyStorage
import Foundation

extension CustodyCommand {
    struct CheckpointCommand: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "checkpoint",
            abstract: "Print the log's latest signed checkpoint (C2SP signed note), byte for byte.",
            discussion: """
                The note is the log's origin, its size and its root hash (base64), a blank line, and the log key's \
                signature line. Give it to witnesses (custody witness cosign) and auditors. --cosigned prints the \
                newest checkpoint that witnesses have cosigned, with their cosignature lines. --sign first signs a \
                checkpoint covering entries an interrupted command left unsigned (needs the passphrase).
                """
        )

        @OptionGroup var global: GlobalOptions
        @Flag(help: "Print the newest checkpoint that carries cosignatures.") var cosigned = false
        @Flag(help: "Sign a checkpoint over every entry first, if one is missing.") var sign = false

        func validate() throws {
            if cosigned && sign { throw ValidationError("--cosigned and --sign do not go together") }
        }

        func run() async throws {
            try await runReportingErrorsAsync {
                let archive = try global.unlockArchive(for: [.read])
                let checkpoint: CustodyArchive.Checkpoint?
                if sign {
                    checkpoint = try archive.signCheckpoint()
                } else if cosigned {
                    checkpoint = try await archive.cosignedCheckpoint()
                    if checkpoint == nil {
                        throw ArchiveError(
                            .notFound,
                            "no checkpoint of this log has been cosigned yet",
                            fix: "send custody checkpoint to a witness and attach its reply with custody witness attach"
                        )
                    }
                } else {
                    checkpoint = try archive.ledger.latestCheckpoint()
                }
                guard let checkpoint else {
                    throw ArchiveError(
                        .notFound,
                        "the log has no signed checkpoint yet",
                        fix: "run custody checkpoint --sign"
                    )
                }
                FileHandle.standardOutput.write(Data(checkpoint.note.utf8))
            }
        }
    }

    struct Prove: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Prove an item's ingest event is in the log, or that the log only grew since an earlier size.",
            discussion: """
                custody prove ITEM prints a C2SP tlog-proof: "c2sp.org/tlog-proof@v1", "index N", the inclusion proof \
                hashes (base64, one a line), a blank line, and the signed checkpoint. The leaf is the ingest entry \
                that custody log --json shows. custody prove --consistency OLD prints a C2SP tlog-witness \
                add-checkpoint request: "old OLD", the consistency proof hashes, a blank line, the checkpoint — \
                what custody witness cosign reads. --json gives hex hashes instead. No passphrase needed.
                """
        )

        @OptionGroup var global: GlobalOptions
        @Argument(help: "Item id or unique prefix.") var item: String?
        @Option(help: "Prove consistency from this earlier tree size to the latest checkpoint.") var consistency: Int?
        @Flag(help: "Print JSON.") var json = false

        func validate() throws {
            if (item == nil) == (consistency == nil) {
                throw ValidationError("give either an item or --consistency OLD-SIZE")
            }
            if let consistency, consistency < 0 { throw ValidationError("--consistency must be 0 or more") }
        }

        func run() async throws {
            try await runReportingErrorsAsync {
                let archive = try global.openArchive()
                if let consistency {
                    let proof = try archive.ledger.consistencyProof(from: consistency)
                    if json {
                        try printJSON(
                            ConsistencyJSON(
                                first: proof.first,
                                second: proof.checkpoint.size,
                                proof: proof.proof.map(Encoding.hex),
                                checkpoint: proof.checkpoint.note
                            )
                        )
                    } else {
                        FileHandle.standardOutput.write(Data(proof.witnessRequest.utf8))
                    }
                    return
                }
                let proof = try await archive.proveItem(item ?? "")
                if json {
                    try printJSON(
                        InclusionJSON(
                            index: proof.index,
                            size: proof.checkpoint.size,
                            leafHash: Encoding.hex(proof.leafHash),
                            proof: proof.proof.map(Encoding.hex),
                            checkpoint: proof.checkpoint.note
                        )
                    )
                } else {
                    FileHandle.standardOutput.write(Data(proof.text.utf8))
                }
            }
        }
    }

    struct Witness: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Witness other bodies' logs, and collect their cosignatures of this one.",
            discussion: """
                Witnessing is mutual: add each other's identity files, then cosign each other's checkpoints. A \
                witness refuses any checkpoint that does not extend the last one it cosigned for that log.
                """,
            subcommands: [Add.self, Cosign.self, Attach.self, List.self]
        )

        struct Add: AsyncParsableCommand {
            static let configuration = CommandConfiguration(
                abstract: "Trust another body's log key (and its cosignatures), from its identity file.",
                discussion: "Compare the printed fingerprint with the body out of band before relying on it."
            )
            @OptionGroup var global: GlobalOptions
            @Argument(help: "The body's identity file (custody id export).", completion: .file())
            var identityFile: String
            @Flag(help: "Print JSON.") var json = false

            func run() async throws {
                try await runReportingErrorsAsync {
                    let archive = try global.openArchive(authorizing: [.share])
                    let identity = try Archive.readIdentity(identityFile)
                    let followed = try archive.followRotation(of: identity)
                    if let followed, !json { printFollowed(followed.body, from: followed.previousFingerprint) }
                    let (body, already) = try archive.trust(identity, role: .witness)
                    if json {
                        try printJSON(
                            WitnessJSON(
                                name: body.identity.name,
                                origin: body.identity.origin,
                                fingerprint: body.identity.fingerprint,
                                logVerifierKey: body.identity.logVerifierKey,
                                alreadyKnown: already
                            )
                        )
                    } else {
                        print(
                            "\(already ? "already a witness" : "witness added"): \(body.identity.name) (\(body.identity.origin))"
                        )
                        print("fingerprint  \(body.identity.fingerprint)  — compare it with them out of band")
                    }
                }
            }
        }

        struct Cosign: AsyncParsableCommand {
            static let configuration = CommandConfiguration(
                abstract: "Cosign another body's checkpoint after checking it extends the last one cosigned.",
                discussion: """
                    FILE ('-' for standard input) is a bare signed checkpoint (first contact with that log) or the \
                    output of custody prove --consistency OLD at that body, OLD being the size this archive cosigned \
                    last. Prints the cosignature line (C2SP tlog-cosignature) to send back. A checkpoint that \
                    contradicts what was cosigned before is refused with exit 1, and both are kept in \
                    witness/conflicts/ as evidence. Needs the passphrase.
                    """
            )
            @OptionGroup var global: GlobalOptions
            @Argument(help: "The checkpoint or consistency request.", completion: .file()) var file: String

            func run() async throws {
                try await runReportingErrorsAsync {
                    let archive = try global.unlockArchive(for: [.share])
                    let input = try readInputArgument(file)
                    let result = try archive.cosign(input)
                    FileHandle.standardOutput.write(Data(result.line.utf8))
                    let from =
                        result.previousSize.map { "consistent with size \($0) cosigned before" } ?? "first contact"
                    printError(
                        "cosigned \(result.origin) at size \(result.size) (\(from)); fingerprint \(result.fingerprint)"
                    )
                }
            }
        }

        struct Attach: AsyncParsableCommand {
            static let configuration = CommandConfiguration(
                abstract: "Store a witness's cosignature of one of this log's checkpoints, after checking it.",
                discussion: "FILE ('-' for standard input) holds the line(s) custody witness cosign printed."
            )
            @OptionGroup var global: GlobalOptions
            @Argument(help: "The cosignature line(s).", completion: .file()) var file: String

            func run() async throws {
                try await runReportingErrorsAsync {
                    let archive = try global.openArchive(authorizing: [.share])
                    let input = try readInputArgument(file)
                    for attached in try await archive.attachCosignatures(input) {
                        print(
                            "attached: \(attached.witness) cosigned size \(attached.size) at \(RFC3339.format(Int(attached.timestamp))) (fingerprint \(attached.fingerprint))"
                        )
                    }
                }
            }
        }

        struct List: AsyncParsableCommand {
            static let configuration = CommandConfiguration(abstract: "List the witnesses this archive knows.")
            @OptionGroup var global: GlobalOptions
            @Flag(help: "Print JSON.") var json = false

            func run() async throws {
                try await runReportingErrorsAsync {
                    let bodies = try global.openArchive().knownBodies().filter { $0.roles.contains(.witness) }
                    if json {
                        try printJSON(
                            [
                                "witnesses": bodies.map {
                                    WitnessJSON(
                                        name: $0.identity.name,
                                        origin: $0.identity.origin,
                                        fingerprint: $0.identity.fingerprint,
                                        logVerifierKey: $0.identity.logVerifierKey,
                                        alreadyKnown: nil
                                    )
                                }
                            ]
                        )
                    } else {
                        for body in bodies {
                            print("\(body.identity.origin)  \(body.identity.fingerprint)  \(body.identity.name)")
                        }
                    }
                }
            }
        }
    }
}

struct InclusionJSON: Encodable {
    var index: Int
    var size: Int
    var leafHash: String
    var proof: [String]
    var checkpoint: String

    enum CodingKeys: String, CodingKey {
        case index, size, proof, checkpoint
        case leafHash = "leaf_hash"
    }
}

struct ConsistencyJSON: Encodable {
    var first: Int
    var second: Int
    var proof: [String]
    var checkpoint: String
}

struct WitnessJSON: Encodable {
    var name: String
    var origin: String
    var fingerprint: String
    var logVerifierKey: String
    var alreadyKnown: Bool?

    enum CodingKeys: String, CodingKey {
        case name, origin, fingerprint
        case logVerifierKey = "log_verifier_key"
        case alreadyKnown = "already_known"
    }
}
