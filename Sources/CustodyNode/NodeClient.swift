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

    /// A signed request for `path` (with `query`, and a body for POST).
    func request(_ path: String, query: String = "", method: String = "GET", body: [UInt8] = []) -> URLRequest {
        var components = URLComponents(url: base.appendingPathComponent(path), resolvingAgainstBaseURL: false)
        if !query.isEmpty { components?.percentEncodedQuery = query }
        let url = components?.url ?? base.appendingPathComponent(path)
        var request = URLRequest(url: url)
        request.httpMethod = method
        request.timeoutInterval = 300
        if !body.isEmpty { request.httpBody = Data(body) }
        let authority = (url.host ?? "") + (url.port.map { ":\($0)" } ?? "")
        let signed = HTTPSignature.Request(
            method: method,
            authority: authority,
            path: url.path,
            query: url.query ?? "",
            body: body
        )
        for (name, value) in HTTPSignature.sign(signed, key: key) { request.setValue(value, forHTTPHeaderField: name) }
        return request
    }

    /// A signed GET request for `path`, to send as is.
    package func signedRequest(_ path: String) -> URLRequest { request(path) }

    /// Sends a signed request; returns the status and body.
    package func send(
        _ path: String,
        query: String = "",
        method: String = "GET",
        body: [UInt8] = []
    ) async throws
        -> (status: Int, body: Data)
    {
        do {
            let (data, response) = try await URLSession.shared.data(
                for: request(path, query: query, method: method, body: body)
            )
            return ((response as? HTTPURLResponse)?.statusCode ?? 0, data)
        } catch {
            throw ArchiveError(
                .temporary,
                "cannot reach \(base.absoluteString): \(error.localizedDescription)",
                fix: "check the peer's URL and that its node is running"
            )
        }
    }

    /// GETs `path` into the file `destination`, resuming a partial file there with a Range request.
    ///
    /// - Returns: The status (200 for a whole download, 206 for a resumed one).
    package func download(_ path: String, to destination: String) async throws -> Int {
        let have = (try? FileManager.default.attributesOfItem(atPath: destination)[.size] as? Int) ?? 0
        var request = self.request(path)
        if have > 0 { request.setValue("bytes=\(have)-", forHTTPHeaderField: "Range") }
        do {
            let (file, response) = try await URLSession.shared.download(for: request)
            defer { try? FileManager.default.removeItem(at: file) }
            let status = (response as? HTTPURLResponse)?.statusCode ?? 0
            if status == 206, have > 0 {
                let handle = try FileHandle(forWritingTo: URL(fileURLWithPath: destination))
                defer { try? handle.close() }
                try handle.seekToEnd()
                let input = try FileHandle(forReadingFrom: file)
                defer { try? input.close() }
                while let chunk = try input.read(upToCount: 1 << 20), !chunk.isEmpty {
                    try handle.write(contentsOf: chunk)
                }
            } else {
                try? FileManager.default.removeItem(atPath: destination)
                try FileManager.default.moveItem(at: file, to: URL(fileURLWithPath: destination))
            }
            return status
        } catch let error as ArchiveError {
            throw error
        } catch {
            throw ArchiveError(
                .temporary,
                "cannot download from \(base.absoluteString): \(error.localizedDescription)",
                fix: "check the peer's URL and that its node is running, then pull again (it resumes)"
            )
        }
    }
}

/// `custody pull`: fetches the grants a peer made to this archive and imports them through the same path as
/// `custody bundle import`.
package enum Puller {
    /// What a pull did besides importing: the two cosignatures exchanged.
    package struct Witnessing: Sendable {
        /// The size of the peer's checkpoint this archive cosigned (and delivered).
        package var cosignedPeerSize: Int?
        /// The size of this archive's checkpoint the peer cosigned.
        package var peerCosignedSize: Int?
        /// Why the peer did not cosign, when it did not.
        package var peerDeclined: String?
    }

    /// Witnessing on every pull: cosign the peer's checkpoint (after checking it extends the one cosigned before,
    /// refusing a fork loudly) and deliver the cosignature; have the peer cosign this archive's checkpoint.
    package static func witness(archive: Archive, peer alias: String) async throws -> Witnessing {
        let peer = try archive.peer(alias)
        guard let url = peer.url.flatMap(URL.init(string:)) else {
            throw ArchiveError(.damaged, "peer \(alias) has no URL", fix: "add it again with custody peer add")
        }
        let client = NodeClient(base: url, key: try archive.keys().signing)
        var report = Witnessing()
        // Theirs: a consistency request from the size cosigned last (or their bare checkpoint, the first time).
        let (status, body): (Int, Data)
        if let stored = archive.witnessedSize(origin: peer.identity.origin) {
            (status, body) = try await client.send("v1/log/consistency", query: "old=\(stored)")
        } else {
            (status, body) = try await client.send("v1/log/checkpoint")
        }
        guard status == 200 else { throw refusal(status, body, what: "the peer's checkpoint") }
        let cosignature = try archive.cosign(Array(body))  // a fork throws here, loudly
        let (delivered, reply) = try await client.send(
            "v1/cosignatures",
            method: "POST",
            body: Array(cosignature.line.utf8)
        )
        guard delivered == 200 else { throw refusal(delivered, reply, what: "the cosignature delivery") }
        report.cosignedPeerSize = cosignature.size
        // Ours: from the size the peer cosigned last; a 409 names the size it holds, and we try once more from it.
        var from = archive.sizeCosigned(by: peer.identity.origin) ?? 0
        for _ in 0..<2 {
            let request = try archive.ledger.consistencyProof(from: from).witnessRequest
            let (answer, text) = try await client.send(
                "v1/witness/add-checkpoint",
                method: "POST",
                body: Array(request.utf8)
            )
            switch answer {
            case 200:
                report.peerCosignedSize = try archive.attachCosignatures(Array(text)).first?.size
                return report
            case 409:
                from = Int(String(decoding: text, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)) ?? 0
            case 403:
                report.peerDeclined =
                    "the peer does not witness this log yet (it can: custody witness add <this archive's identity file>)"
                return report
            default:
                report.peerDeclined =
                    "the peer refused to cosign (\(answer)): \(String(decoding: text.prefix(300), as: UTF8.self))"
                return report
            }
        }
        report.peerDeclined = "the peer and this archive disagree on the size it last cosigned"
        return report
    }

    /// Pulls `grant` (or every valid grant addressed to this archive) from the peer called `alias`.
    package static func pull(archive: Archive, peer alias: String, grant wanted: String?) async throws -> [BundleImport]
    {
        let peer = try archive.peer(alias)
        guard let url = peer.url.flatMap(URL.init(string:)) else {
            throw ArchiveError(.damaged, "peer \(alias) has no URL", fix: "add it again with custody peer add")
        }
        let client = NodeClient(base: url, key: try archive.keys().signing)
        let (status, body) = try await client.send("v1/grants")
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
            // A partial download stays in pull-tmp/ and the next pull resumes it.
            let path = directory + "/\(id).bundle.part"
            for attempt in 0..<2 {
                let resumed = ((try? FileManager.default.attributesOfItem(atPath: path)[.size] as? Int) ?? 0) > 0
                let status = try await client.download("v1/grants/\(id)/bundle", to: path)
                guard status == 200 || status == 206 else {
                    let reason = (try? Data(contentsOf: URL(fileURLWithPath: path))) ?? Data()
                    try? FileManager.default.removeItem(atPath: path)
                    if wanted == nil, status == 410 { break }  // revoked or expired: nothing to pull
                    throw refusal(status, reason, what: "grant \(id)")
                }
                do {
                    results.append(try archive.importBundle(path: path))
                    try? FileManager.default.removeItem(atPath: path)
                    break
                } catch let error as ArchiveError where error.code == .badInput && resumed && attempt == 0 {
                    // The kept part was of an older bundle: download the whole bundle once more.
                    try? FileManager.default.removeItem(atPath: path)
                } catch {
                    try? FileManager.default.removeItem(atPath: path)
                    throw error
                }
            }
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
