import CustodyArchive
import CustodyCrypto
import Foundation

#if canImport(FoundationNetworking)
import FoundationNetworking
#endif

/// A client of another node: every request signed with this archive's signing key (Docs/PROTOCOL.md section 2).
package struct NodeClient: Sendable {
    /// The node's base URL (`https://host:port`).
    package let base: URL
    let key: SigningKey

    package init(base: URL, key: SigningKey) {
        self.base = base
        self.key = key
    }

    /// A signed request for `path` (no body).
    func request(_ path: String) -> URLRequest {
        let url = base.appendingPathComponent(path)
        var request = URLRequest(url: url)
        request.httpMethod = "GET"
        request.timeoutInterval = 300
        let authority = (url.host ?? "") + (url.port.map { ":\($0)" } ?? "")
        let signed = HTTPSignature.Request(method: "GET", authority: authority, path: url.path, query: url.query ?? "")
        for (name, value) in HTTPSignature.sign(signed, key: key) { request.setValue(value, forHTTPHeaderField: name) }
        return request
    }

    /// GETs `path`; returns the status and body.
    package func get(_ path: String) async throws -> (status: Int, body: Data) {
        do {
            let (data, response) = try await URLSession.shared.data(for: request(path))
            return ((response as? HTTPURLResponse)?.statusCode ?? 0, data)
        } catch {
            throw ArchiveError(
                .temporary,
                "cannot reach \(base.absoluteString): \(error.localizedDescription)",
                fix: "check the peer's URL and that its node is running"
            )
        }
    }

    /// GETs `path` into the file `destination`; returns the status.
    package func download(_ path: String, to destination: String) async throws -> Int {
        do {
            let (file, response) = try await URLSession.shared.download(for: request(path))
            let status = (response as? HTTPURLResponse)?.statusCode ?? 0
            try? FileManager.default.removeItem(atPath: destination)
            try FileManager.default.moveItem(at: file, to: URL(fileURLWithPath: destination))
            return status
        } catch {
            throw ArchiveError(
                .temporary,
                "cannot download from \(base.absoluteString): \(error.localizedDescription)",
                fix: "check the peer's URL and that its node is running, then pull again"
            )
        }
    }
}

/// `custody pull`: fetches the grants a peer made to this archive and imports them through the same path as
/// `custody bundle import`.
package enum Puller {
    /// Pulls `grant` (or every valid grant addressed to this archive) from the peer called `alias`.
    package static func pull(archive: Archive, peer alias: String, grant wanted: String?) async throws -> [BundleImport]
    {
        let peer = try archive.peer(alias)
        guard let url = peer.url.flatMap(URL.init(string:)) else {
            throw ArchiveError(.damaged, "peer \(alias) has no URL", fix: "add it again with custody peer add")
        }
        let client = NodeClient(base: url, key: try archive.keys().signing)
        let (status, body) = try await client.get("v1/grants")
        guard status == 200 else { throw refusal(status, body, what: "the grant list") }
        struct Listing: Decodable { var grants: [GrantListing] }
        guard let listing = try? JSONDecoder().decode(Listing.self, from: body) else {
            throw ArchiveError(.badInput, "peer \(alias) sent a malformed grant list", fix: "check the peer's version")
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
        var results: [BundleImport] = []
        for id in ids {
            let path = directory + "/\(id).bundle"
            defer { try? FileManager.default.removeItem(atPath: path) }
            let status = try await client.download("v1/grants/\(id)/bundle", to: path)
            guard status == 200 else {
                let reason = (try? Data(contentsOf: URL(fileURLWithPath: path))) ?? Data()
                if wanted == nil, status == 410 { continue }  // revoked or expired: nothing to pull
                throw refusal(status, reason, what: "grant \(id)")
            }
            results.append(try archive.importBundle(path: path))
        }
        return results
    }

    static func refusal(_ status: Int, _ body: Data, what: String) -> ArchiveError {
        let text = String(decoding: body.prefix(300), as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
        switch status {
        case 401:
            return ArchiveError(
                .notAuthorised,
                "the peer refused the request (401): it does not know this archive's key",
                fix: "have the peer add this archive's identity"
            )
        case 404:
            return ArchiveError(.notFound, "the peer has no \(what) for this archive (404)", fix: "check the grant id")
        case 410:
            return ArchiveError(
                .notAuthorised,
                "\(what) is no longer valid: \(text)",
                fix: "ask the granting body for a new grant"
            )
        default: return ArchiveError(.temporary, "the peer answered \(status) for \(what): \(text)", fix: "retry later")
        }
    }
}
