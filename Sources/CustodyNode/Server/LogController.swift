import CustodyArchive
import CustodyCrypto
import CustodyStorage
import Hummingbird
import HummingbirdCore

/// The public log (PROTOCOL.md section 3): the node's identity, its latest checkpoint, its tiles (C2SP
/// tlog-tiles) and proofs. Unsigned requests; nothing here is secret.
struct LogController: Sendable {
    let node: NodeServer

    /// Registers `identity`, `log/checkpoint`, `log/tile/**`, `log/consistency` and `log/inclusion` on `v1`.
    func addRoutes(to group: RouterGroup<NodeRequestContext>) {
        group.get("identity", use: identity)
            .get("log/checkpoint", use: checkpoint)
            .get("log/tile/**", use: tile)
            .get("log/consistency", use: consistency)
            .get("log/inclusion", use: inclusion)
    }

    /// `GET /v1/identity`: the node's identity file.
    @Sendable func identity(_ request: Request, context: NodeRequestContext) async throws -> Response {
        let bytes = try await node.archive { try $0.identity().jsonBytes() }
        return NodeServer.response(.ok, bytes, type: "application/json")
    }

    /// `GET /v1/log/checkpoint`: the latest signed checkpoint (404 before the first).
    @Sendable func checkpoint(_ request: Request, context: NodeRequestContext) async throws -> Response {
        guard let note = try await node.archive({ try $0.ledger.latestCheckpoint()?.note }) else {
            throw ServerRefusal(.notFound)
        }
        return NodeServer.response(.ok, Array(note.utf8), type: "text/plain; charset=utf-8")
    }

    /// `GET /v1/log/tile/**`: one C2SP tlog-tiles tile, named exactly as ``Tiles`` writes it (404 otherwise).
    @Sendable func tile(_ request: Request, context: NodeRequestContext) async throws -> Response {
        // The file's path is made from the numbers parsed, never from the request's text.
        guard let tile = Self.tilePath(context.parameters.getCatchAll().joined(separator: "/")) else {
            throw ServerRefusal(.notFound)
        }
        let file = try await node.archive { $0.ledger.logDirectory } + "/" + tile
        guard let bytes = try? await NodeServer.offload({ try ArchiveFiles.read(file, limit: Self.maxTileBytes) })
        else {
            throw ServerRefusal(.notFound)
        }
        return NodeServer.response(.ok, bytes, type: "application/octet-stream")
    }

    /// `GET /v1/log/consistency?old=N`: a consistency proof from size `N` to the latest checkpoint.
    @Sendable func consistency(_ request: Request, context: NodeRequestContext) async throws -> Response {
        guard let old = Self.count(request, "old") else { throw ServerRefusal(.badRequest) }
        do {
            let proof = try await node.archive { try $0.ledger.consistencyProof(from: old).witnessRequest }
            return NodeServer.response(.ok, Array(proof.utf8))
        } catch let error as ArchiveError {
            throw ServerRefusal(.badRequest, detail: error.problem)
        }
    }

    /// `GET /v1/log/inclusion?index=N`: the inclusion proof of entry `N` in the latest checkpoint.
    @Sendable func inclusion(_ request: Request, context: NodeRequestContext) async throws -> Response {
        guard let index = Self.count(request, "index") else { throw ServerRefusal(.badRequest) }
        do {
            let proof = try await node.archive { try $0.ledger.inclusionProof(index: index).text }
            return NodeServer.response(.ok, Array(proof.utf8))
        } catch let error as ArchiveError {
            throw ServerRefusal(error.code == .notFound ? .notFound : .internalError, detail: error.problem)
        }
    }

    /// The largest tile served: a full entry bundle (256 entries of at most 64 KiB, each with its 2-byte length).
    static let maxTileBytes = Tiles.width * (Tiles.maxEntryBytes + 2)

    /// The log-relative path of the tile a request names, when it is exactly a C2SP tlog-tiles path —
    /// `<L>/<N>[.p/<W>]` or `entries/<N>[.p/<W>]`, `L` in 0…63, `N` in groups of three ASCII digits all but the
    /// last prefixed `x` (at most six groups), `W` in 1…255 without leading zeros — and `nil` for anything else.
    /// The path returned is written anew from the numbers (``Tiles``), so it holds nothing of the request's text.
    static func tilePath(_ path: String) -> String? {
        func digits(_ text: Substring) -> Int? {
            guard !text.isEmpty, text.utf8.count <= 3, text.utf8.allSatisfy({ (0x30...0x39).contains($0) }) else {
                return nil
            }
            return Int(text)
        }
        var parts = path.split(separator: "/", omittingEmptySubsequences: false)[...]
        guard parts.count >= 2, parts.count <= 9, let first = parts.popFirst() else { return nil }
        let level: Int?  // nil: the entry bundles
        if first == "entries" {
            level = nil
        } else {
            guard let value = digits(first), value <= 63, String(value) == first else { return nil }
            level = value
        }
        var width = Tiles.width
        if parts.count >= 2, let last = parts.last, parts[parts.endIndex - 2].hasSuffix(".p") {
            guard let value = digits(last), (1...255).contains(value), String(value) == last else { return nil }
            width = value
            parts.removeLast()
            parts[parts.endIndex - 1] = parts[parts.endIndex - 1].dropLast(2)
        }
        guard (1...6).contains(parts.count) else { return nil }
        var index = 0
        for (offset, part) in parts.enumerated() {
            let isLast = offset == parts.count - 1
            guard isLast ? part.utf8.count == 3 : (part.hasPrefix("x") && part.utf8.count == 4),
                let group = digits(isLast ? part : part.dropFirst())
            else { return nil }
            index = index * 1000 + group
        }
        let canonical =
            level.map { Tiles.hashTilePath(level: $0, index: index, width: width) }
            ?? Tiles.bundlePath(index: index, width: width)
        // Only the one spelling Tiles writes is served: "tile/" + the request's path, byte for byte.
        return canonical == "tile/" + path ? canonical : nil
    }

    /// A query parameter that must be a count: 1 to 18 ASCII digits, nothing else, given once.
    static func count(_ request: Request, _ name: String) -> Int? {
        let values = request.uri.queryParameters.getAll(name)
        guard values.count == 1, let text = values.first, (1...18).contains(text.utf8.count),
            text.utf8.allSatisfy({ (0x30...0x39).contains($0) })
        else { return nil }
        return Int(text)
    }
}
