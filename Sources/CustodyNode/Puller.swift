import AsyncHTTPClient
import CustodyArchive
import CustodyCrypto
import CustodyStorage
import Foundation
import NIOCore
import NIOHTTP1
import Synchronization

/// What a pull fetched and reused, counted from the fetching tasks.
final class PullCounts: Sendable {
    let state = Mutex((fetched: 0, reused: 0, bytes: Int64(0)))
}

/// `custody pull`: fetches the grants a peer made to this archive and imports them through the same path as
/// `custody bundle import`.
package enum Puller {
    /// One grant pulled.
    package struct Pulled: Sendable {
        /// What the import did.
        package var result: BundleImport
        /// Objects fetched from the peer now.
        package var fetched: Int
        /// Objects already here (kept by an interrupted pull, or shared with other items): not fetched again.
        package var reused: Int
        /// Bytes fetched.
        package var bytes: Int64
    }

    /// Progress of a pull: objects and bytes done of the grant's total.
    package struct Progress: Sendable {
        package var grant: String
        package var objects: Int
        package var totalObjects: Int
        package var bytes: Int64
        package var totalBytes: Int64
    }

    /// The most grants a peer's listing may name.
    static let maxListedGrants = 100_000
    /// How many objects are fetched at once (below the node's per-key limit, which counts the head request too).
    static let parallelFetches = 6
    /// The most object bytes held in memory at once, besides one object larger than it.
    static let maxBytesInFlight: Int64 = 96 << 20

    /// Pulls `grant` (or every valid grant addressed to this archive) from the peer called `alias`: for each,
    /// the bundle head (grant, checkpoint, entries with proofs), then the released objects in parallel, each
    /// checked and staged as it arrives, through ``Archive/importBundle(path:trustGranter:fetch:progress:)``.
    package static func pull(
        archive: Archive.Unlocked,
        peer alias: String,
        grant wanted: String?,
        progress: (@Sendable (Progress) -> Void)? = nil,
        notes: (@Sendable (String) -> Void)? = nil
    ) async throws -> [Pulled] {
        let peer = try archive.peer(alias)
        guard let url = peer.url.flatMap(URL.init(string:)) else {
            throw ArchiveError(.damaged, "peer \(alias) has no URL", fix: "add it again with custody peer add")
        }
        let client = NodeClient(base: url, key: try archive.keys.signing)
        let (status, body) = try await client.send("v1/grants")
        guard status == 200 else { throw refusal(status, body, what: "the grant list") }
        // The listing is outside input: bounded, and every id a grant id before it is used at all.
        guard let listing = try? JSONDecoder().decode(GrantList.self, from: body),
            listing.grants.count <= maxListedGrants, listing.grants.allSatisfy({ OutsideInput.isID($0.id) })
        else {
            throw ArchiveError(
                .peerMalformed,
                "peer \(alias) sent a malformed grant list (over \(maxListedGrants) grants, or an id that is not 32 lowercase hex digits)",
                fix: "check the peer's version"
            )
        }
        var ids = listing.grants.map(\.id)
        if let wanted {
            guard ids.contains(wanted) else {
                throw ArchiveError(
                    .notFound,
                    "peer \(alias) has no grant \(wanted) addressed to this archive",
                    fix: "check the grant id with the granting body"
                )
            }
            ids = [wanted]
        }
        let directory = archive.root + "/pull-tmp"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        var results: [Pulled] = []
        for id in ids {
            let (status, head) = try await client.send("v1/grants/\(id)/head")
            guard status == 200 else {
                if status == 410 {  // revoked (a notice is checked and recorded) or expired: nothing to pull
                    try await gone(
                        archive: archive,
                        client: client,
                        peer: peer,
                        grant: id,
                        body: head,
                        wanted: wanted != nil,
                        notes: notes
                    )
                    continue
                }
                throw refusal(status, head, what: "grant \(id)")
            }
            // A name of our own: nothing the peer sends becomes part of a path.
            let path = directory + "/head-" + Encoding.hex(randomBytes(16))
            try ArchiveFiles.writeAtomically(path, Array(head))
            defer { unlink(path) }
            // Before anything is imported: the head's checkpoint against the log this archive witnesses.
            let note = BundleVerifier.checkpointNote(path: path)
            try await checkHead(note, archive: archive, client: client, peer: peer, grant: id)
            let expected = Archive.ExpectedGrant(grant: id, granter: peer.identity, checkpoint: note)
            let counts = PullCounts()
            let fetch = fetcher(client: client, grant: id, store: archive.store, counts: counts, progress: progress)
            let result = try await archive.importBundle(path: path, expected: expected, fetch: fetch)
            let done = counts.state.withLock { $0 }
            results.append(Pulled(result: result, fetched: done.fetched, reused: done.reused, bytes: done.bytes))
        }
        return results
    }

    /// The objects of grant `id`: those already in the store are read from it, the others fetched in parallel
    /// (at most ``parallelFetches`` and ``maxBytesInFlight`` at once); each is delivered to the import's checks.
    static func fetcher(
        client: NodeClient,
        grant id: String,
        store: ArchiveObjects,
        counts: PullCounts,
        progress: (@Sendable (Progress) -> Void)?
    ) -> ObjectFetcher {
        { objects, deliver in
            let totalBytes = OutsideInput.checkedTotal(objects.map(\.size)) ?? .max
            try await withThrowingTaskGroup(of: Int64.self) { group in
                var running = 0
                var inFlight: Int64 = 0
                var done = (objects: 0, bytes: Int64(0))
                func finishOne() async throws {
                    guard let size = try await group.next() else { return }
                    running -= 1
                    inFlight -= size
                    done.objects += 1
                    done.bytes += size
                    progress?(
                        Progress(
                            grant: id,
                            objects: done.objects,
                            totalObjects: objects.count,
                            bytes: done.bytes,
                            totalBytes: totalBytes
                        )
                    )
                }
                for ref in objects {
                    while running > 0, running >= parallelFetches || inFlight + ref.size > maxBytesInFlight {
                        try await finishOne()
                    }
                    running += 1
                    inFlight += ref.size
                    group.addTask {
                        let bytes: [UInt8]
                        let stored =
                            try await store.size(of: ref.name) == ref.size
                            ? try await store.read(ref.name, limit: Int(ref.size)) : nil
                        if let stored {
                            bytes = stored
                            counts.state.withLock { $0.reused += 1 }
                        } else {
                            switch try await client.object(grant: id, name: ref.name, size: ref.size) {
                            case .success(let fetched): bytes = fetched
                            case .failure(let refused):
                                throw refusal(refused.status, refused.body, what: "object \(ref.name) of grant \(id)")
                            }
                            counts.state.withLock {
                                $0.fetched += 1
                                $0.bytes += ref.size
                            }
                        }
                        // Checked like an object record, and staged, in this task.
                        await deliver(ref.name, bytes)
                        return ref.size
                    }
                }
                while running > 0 { try await finishOne() }
            }
        }
    }

    /// `": <code>"` for a peer's error body that holds a reason code in the documented form, else nothing: no other
    /// text of the peer's reaches this archive's output.
    static func reasonSuffix(_ body: Data) -> String {
        Reason.code(inPeerBody: body).map { ": " + $0 } ?? ""
    }

    static func refusal(_ status: Int, _ body: Data, what: String) -> ArchiveError {
        let code = Reason.code(inPeerBody: body)
        switch status {
        case 401:
            return ArchiveError(
                .notAuthorised,
                "the peer refused the request (401): it does not know this archive's key, or it does not serve at the URL it was added with",
                fix:
                    "have the peer add this archive's identity, and check that the URL given to peer add is one the node serves as (serve --public-url)"
            )
        case 404:
            return ArchiveError(.notFound, "the peer has no \(what) for this archive (404)", fix: "check the grant id")
        case 410:
            let why: String
            let reason: ArchiveError.Reason
            switch code.flatMap(Reason.init(rawValue:)) {
            case .grantRevoked?: (why, reason) = ("it was revoked", .grantRevoked)
            case .grantExpired?: (why, reason) = ("it expired or is not valid yet", .grantNotValid)
            case .ancestorRevoked?: (why, reason) = ("the grant it re-shares was revoked", .grantRevoked)
            case .ancestorExpired?: (why, reason) = ("the grant it re-shares expired", .grantNotValid)
            case .ancestorMissing?:
                (why, reason) = ("the peer no longer holds the grant it re-shares", .ancestorNotHeld)
            default: (why, reason) = ("the peer says so" + (code.map { " (\($0))" } ?? ""), .notAuthorised)
            }
            return ArchiveError(
                reason,
                "\(what) is no longer valid: \(why)",
                fix: "ask the granting body for a new grant"
            )
        default:
            return ArchiveError(
                .temporary,
                "the peer answered \(status) for \(what)\(code.map { " (\($0))" } ?? "")",
                fix: "retry later"
            )
        }
    }
}
