import ArgumentParser
import CustodyArchive
import CustodyNode
import CustodyStorage
import Foundation
import Logging

extension CustodyCommand {
    struct Serve: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Run this archive as a node: serve its identity, log and grants to peers (Docs/PROTOCOL.md).",
            discussion: """
                Plain HTTP: put a TLS-terminating reverse proxy in front of it on a network (content is already \
                end-to-end encrypted to each grantee). Prints "listening on HOST:PORT" when ready; stops cleanly \
                on SIGTERM or SIGINT. Needs the passphrase (use --passphrase-file for a long-running server). \
                Signed requests are answered only when signed for this node's own address: give the URL peers \
                add it with as --public-url (behind a reverse proxy, the proxy's https:// URL); without it, the \
                address it listens on (http://HOST:PORT), which must then not be a wildcard such as 0.0.0.0.
                """
        )
        @OptionGroup var global: GlobalOptions
        @Option(help: "Address and port to listen on (port 0 picks a free one).") var listen = "127.0.0.1:8443"
        @Option(
            help:
                "The URL peers reach this node at, http(s)://HOST[:PORT] (repeat for several; default: http://<listen>)."
        ) var publicURL: [String] = []
        @Option(
            help: "The least severe log lines written to standard error (one per request; refusals at notice)."
        ) var logLevel: Logger.Level = .info

        func run() async throws {
            try await runReportingErrorsAsync {
                guard let colon = listen.lastIndex(of: ":"), let port = Int(listen[listen.index(after: colon)...]),
                    (0...65535).contains(port)
                else {
                    throw ArchiveError(.usage, "--listen \(listen) is not HOST:PORT", fix: "use e.g. 127.0.0.1:8443")
                }
                let host = String(listen[..<colon])
                // Checked before the passphrase is asked for; the derived default needs the bound port, later.
                _ = try NodeServer.authorities(publicURLs: publicURL, host: host, port: port)
                let archive = try global.unlockArchive(for: [.share])
                let server = try NodeServer(archive: archive)
                do {
                    try await serveUntilStopped(server, host: host, port: port)
                } catch let error as ArchiveError {
                    throw error
                } catch {
                    throw ArchiveError(
                        .cannotCreate,
                        "cannot serve on \(listen): \(error)",
                        fix: "choose a free port, or stop what is listening there"
                    )
                }
            }
        }

        private func serveUntilStopped(_ server: NodeServer, host: String, port: Int) async throws {
            var logger = Logger(label: "custody.serve") { StreamLogHandler.standardError(label: $0) }
            logger.logLevel = logLevel
            try await server.run(host: host, port: port, publicURLs: publicURL, logger: logger) { address in
                FileHandle.standardOutput.write(Data("listening on \(address)\n".utf8))
            }
        }
    }

    struct Peer: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Manage the peer nodes this archive pulls from.",
            subcommands: [Add.self]
        )

        struct Add: AsyncParsableCommand {
            static let configuration = CommandConfiguration(
                abstract: "Add a peer node: its name here, its URL, and its identity file (trusted as a granter)."
            )
            @OptionGroup var global: GlobalOptions
            @Argument(help: "A short name for the peer.") var name: String
            @Argument(help: "The peer node's URL, e.g. https://node.example.org:8443.") var url: String
            @Option(help: "The peer's identity file (custody id export).", completion: .file()) var identity: String

            func run() async throws {
                try await runReportingErrorsAsync {
                    let archive = try global.openArchive(authorizing: [.share])
                    let identity = try Archive.readIdentity(identity)
                    if let followed = try archive.followRotation(of: identity) {
                        printFollowed(followed.body, from: followed.previousFingerprint)
                    }
                    let body = try archive.addPeer(alias: name, url: url, identity: identity)
                    print("peer \(name): \(body.identity.name) at \(body.url ?? url)")
                    print("fingerprint  \(body.identity.fingerprint)  — compare it with them out of band")
                }
            }
        }
    }

    struct Pull: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Fetch, verify and import the grants a peer made to this archive (like bundle import).",
            discussion: """
                Without --grant, every valid grant addressed to this archive. For each grant: the bundle head \
                (grant, checkpoint, entries with proofs), then the released objects, six at a time, each checked as \
                it arrives and every item decrypted and its SHA-256 re-checked before one atomic import. A pull that \
                is interrupted keeps the objects it already verified: run it again and it fetches only the rest. \
                Afterwards both archives cosign each other's checkpoints; a fork is refused (exit 1, FORK). Exits 66 \
                for a grant the peer does not have for this archive, 77 for a revoked or expired one, 75 when the \
                peer cannot be reached. Needs the passphrase.
                """
        )
        @OptionGroup var global: GlobalOptions
        @Argument(help: "The peer's name (custody peer add).") var peer: String
        @Option(help: "Only this grant.") var grant: String?
        @Flag(help: "Print JSON.") var json = false

        func run() async throws {
            try await runReportingErrorsAsync {
                let archive = try global.unlockArchive(for: [.share])
                let bar = ProgressBar(enabled: Terminal.stderrIsTTY && !json, label: "pull")
                let knownRevoked = await Set(try archive.index().grants().filter { $0.revocation != nil }.map(\.id))
                let pulled = try await Puller.pull(
                    archive: archive,
                    peer: peer,
                    grant: grant,
                    progress: { progress in
                        bar.update(
                            done: progress.bytes,
                            total: progress.totalBytes,
                            objects: progress.objects,
                            of: progress.totalObjects
                        )
                    },
                    notes: { note in FileHandle.standardError.write(Data("note: \(note)\n".utf8)) }
                )
                bar.finish()
                let results = pulled.map(\.result)
                // Revocations this pull learned (verified notices, recorded).
                let learned = try await archive.index().grants().filter {
                    $0.revocation != nil && !knownRevoked.contains($0.id)
                }.compactMap { summary in summary.revocation.map { RevocationJSON(grant: summary.id, $0) } }
                if !json {
                    for one in learned {
                        FileHandle.standardError.write(
                            Data(
                                "grant \(one.grant) was REVOKED by \(TerminalText.escape(one.revokedBy)) at \(one.revokedAt)\(one.ancestor.map { " (its parent grant \($0))" } ?? ""): the signed notice is verified and recorded\n"
                                    .utf8
                            )
                        )
                    }
                }
                let witnessing = try await Puller.witness(archive: archive, peer: peer)
                if !json {
                    if let size = witnessing.cosignedPeerSize { print("cosigned \(peer)'s checkpoint of size \(size)") }
                    if let size = witnessing.peerCosignedSize {
                        print("\(peer) cosigned this archive's checkpoint of size \(size)")
                    } else if let reason = witnessing.peerDeclined {
                        printError("note: \(reason)")
                    }
                }
                if json {
                    try printJSON(
                        PullReportJSON(
                            grants: pulled.map {
                                PullJSON(
                                    grant: $0.result.grant,
                                    granter: $0.result.granter,
                                    imported: $0.result.imported,
                                    alreadyPresent: $0.result.alreadyPresent,
                                    granterTrustedNow: $0.result.trustedNow,
                                    objectsFetched: $0.fetched,
                                    objectsReused: $0.reused,
                                    bytesFetched: $0.bytes
                                )
                            },
                            revocationsReceived: learned
                        )
                    )
                    return
                }
                for one in pulled {
                    let result = one.result
                    print(
                        "grant \(result.grant) from \(result.granter): \(result.imported.count) item(s) imported, \(result.alreadyPresent.count) already here; \(one.fetched) object(s) fetched (\(formatBytes(one.bytes))), \(one.reused) already here"
                    )
                }
                if results.isEmpty && learned.isEmpty { print("nothing to pull from \(peer)") }
            }
        }
    }
}

/// `pull --json`.
struct PullReportJSON: Encodable {
    var grants: [PullJSON]
    /// Grants this pull learned were revoked (verified revocation notices, now recorded).
    var revocationsReceived: [RevocationJSON]

    enum CodingKeys: String, CodingKey {
        case grants
        case revocationsReceived = "revocations_received"
    }
}

/// One pulled grant in `pull --json`.
struct PullJSON: Encodable {
    var grant: String
    var granter: String
    var imported: [String]
    var alreadyPresent: [String]
    var granterTrustedNow: Bool
    var objectsFetched: Int
    var objectsReused: Int
    var bytesFetched: Int64

    enum CodingKeys: String, CodingKey {
        case grant, granter, imported
        case alreadyPresent = "already_present"
        case granterTrustedNow = "granter_trusted_now"
        case objectsFetched = "objects_fetched"
        case objectsReused = "objects_reused"
        case bytesFetched = "bytes_fetched"
    }
}

extension Logger.Level: @retroactive ExpressibleByArgument {}
