import AsyncHTTPClient
import CustodyArchive
import CustodyCrypto
import CustodyNode
import CustodyTestSupport
import Foundation
import Testing

/// Revocation reaches everyone who can act on it, with real nodes on loopback: A grants B a re-sharable grant,
/// B re-shares to C; A revokes; B's pull records A's verified notice, B's node refuses C's child, B cannot make
/// new children, B's listings say revoked, B's extract needs an override; a malicious peer's forged 410 notices
/// are refused and nothing is recorded.
@Suite(.serialized) struct RevocationCLITests: CLIArchiveSuite {
    let dir = TempDirectory("revocation-cli")
    static let passphrase = "revocation test"

    struct Failed: Error { var message: String }

    private func serve(_ name: String) throws -> (CLI.Child, String) {
        guard let (child, url) = CLI.serve(environment: env(name)) else { throw Failed(message: "serve did not start") }
        return (child, url)
    }

    private func stop(_ child: CLI.Child) {
        kill(child.pid, SIGTERM)
        _ = child.wait()
    }

    /// A malicious peer on loopback: lists grant `id` and answers every head request with 410 and `body` as a
    /// revocation notice. Returns the process and its URL.
    private func evilPeer(listing id: String, body: [UInt8]) throws -> (CLI.Child, String) {
        let bodyPath = dir.write("evil-\(Encoding.hex(randomBytes(4))).body", body)
        let script = dir.write(
            "evil.py",
            text: """
                import http.server, json, sys
                body = open(sys.argv[2], 'rb').read()
                listing = json.dumps({"grants": [{"id": sys.argv[1], "items": 1, "created": "2026-01-01T00:00:00Z",
                    "expires": "2099-01-01T00:00:00Z", "permission": "content", "reshare": True}]}).encode()
                class H(http.server.BaseHTTPRequestHandler):
                    def log_message(self, *a): pass
                    def do_GET(self):
                        if self.path.startswith('/v1/grants/'):
                            self.send_response(410)
                            self.send_header('Content-Type', 'application/vnd.custody.revocation+json')
                            data = body
                        else:
                            self.send_response(200)
                            self.send_header('Content-Type', 'application/json')
                            data = listing
                        self.send_header('Content-Length', str(len(data)))
                        self.end_headers()
                        self.wfile.write(data)
                server = http.server.HTTPServer(('127.0.0.1', 0), H)
                print('listening on 127.0.0.1:%d' % server.server_address[1], flush=True)
                server.serve_forever()
                """
        )
        let child = CLI.start(executable: "/usr/bin/env", ["python3", script, id, bodyPath])
        for _ in 0..<200 {
            let out = child.outputSoFar
            if let range = out.range(of: "listening on ") {
                return (child, "http://" + out[range.upperBound...].prefix { !$0.isWhitespace })
            }
            usleep(50_000)
        }
        stop(child)
        throw Failed(message: "the malicious peer did not start")
    }

    private func grants(_ name: String) -> [String: [String: Any]] {
        let listed = CLI.run(["grant", "list", "--json"], environment: env(name)).json?["grants"] as? [[String: Any]]
        return Dictionary((listed ?? []).map { ($0["id"] as? String ?? "", $0) }) { a, _ in a }
    }

    private func logTypes(_ name: String) -> [String] {
        let entries = CLI.run(["log", "--json"], environment: env(name)).json?["entries"] as? [[String: Any]] ?? []
        return entries.compactMap { $0["type"] as? String }
    }

    @Test func revocationReachesTheResharerItsNodeAndItsGrantee() async throws {
        for name in ["a", "b", "c"] {
            #expect(
                initArchive(name).status
                    == 0
            )
            #expect(CLI.run(["id", "export", "-o", dir.path + "/\(name).id"], environment: env(name)).status == 0)
        }
        dir.write("c1/a.txt", text: "statement A")
        dir.write("c2/b.txt", text: "statement B")
        let ingested = CLI.run(["ingest", dir.path + "/c1", "--case", "C1", "--json"], environment: env("a"))
        let item = try #require((ingested.json?["items"] as? [[String: Any]])?.first?["id"] as? String)
        #expect(CLI.run(["ingest", dir.path + "/c2", "--case", "C2"], environment: env("a")).status == 0)
        func grant(_ from: String, to: String, _ caseID: String, reshare: Bool) -> CLIResult {
            CLI.run(
                [
                    "grant", "create", "--to", dir.path + "/\(to).id", "--case", caseID, "--expires",
                    from == "a" ? "5d" : "2d",
                    "--purpose", "p", "--json",
                ] + (reshare ? ["--reshare"] : []),
                environment: env(from)
            )
        }
        let parent = try #require(grant("a", to: "b", "C1", reshare: true).json?["id"] as? String)
        let other = try #require(grant("a", to: "b", "C2", reshare: false).json?["id"] as? String)

        let (serverA, urlA) = try serve("a")
        defer { stop(serverA) }
        #expect(
            CLI.run(["peer", "add", "a", urlA, "--identity", dir.path + "/a.id"], environment: env("b")).status == 0
        )
        let first = CLI.run(["pull", "a"], environment: env("b"))
        #expect(first.status == 0, "\(first.stderr)")
        let childMade = grant("b", to: "c", "C1", reshare: false)
        let child = try #require(childMade.json?["id"] as? String, "\(childMade.stderr)")
        let (serverB, urlB) = try serve("b")
        var serverBStopped = false
        defer { if !serverBStopped { stop(serverB) } }
        #expect(
            CLI.run(["peer", "add", "b", urlB, "--identity", dir.path + "/b.id"], environment: env("c")).status == 0
        )
        let cFirst = CLI.run(["pull", "b", "--grant", child], environment: env("c"))
        #expect(cFirst.status == 0, "\(cFirst.stderr)")

        // A revokes the other grant first; its genuine notice, written offline, is a forger's raw material.
        let noticeFile = dir.path + "/other.notice"
        let revokedOther = CLI.run(
            ["grant", "revoke", other, "--reason", "withdrawn", "-o", noticeFile],
            environment: env("a")
        )
        #expect(revokedOther.status == 0, "\(revokedOther.stderr)")
        let genuine = try #require(
            try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: noticeFile))) as? [String: Any]
        )

        // A malicious peer (registered with A's identity) answers 410 with forged notices: each is refused, the
        // pull fails loudly, and nothing is recorded.
        var relabelled = genuine
        relabelled["grant"] = parent
        var badProof = genuine
        badProof["index"] = (genuine["index"] as? Int ?? 0) + 1
        var badEntry = genuine
        var entry = try #require(Encoding.bytes(base64: genuine["entry"] as? String ?? ""))
        entry[entry.count - 2] ^= 1
        badEntry["entry"] = Encoding.base64(entry)
        let forgeries: [(String, String, [UInt8], Int32)] = [
            ("event for another grant", parent, Array(try JSONSerialization.data(withJSONObject: relabelled)), 1),
            (
                "proof not matching the checkpoint", other, Array(try JSONSerialization.data(withJSONObject: badProof)),
                1
            ),
            ("bad signature", other, Array(try JSONSerialization.data(withJSONObject: badEntry)), 1),
            ("malformed", other, Array("{\"format\": \"custody-revocation/v1\", \"grant\": \"../x\"}".utf8), 65),
        ]
        let before = logTypes("b").count
        for (what, listed, body, status) in forgeries {
            let (evil, evilURL) = try evilPeer(listing: listed, body: body)
            defer { stop(evil) }
            #expect(
                CLI.run(["peer", "add", "evil", evilURL, "--identity", dir.path + "/a.id"], environment: env("b"))
                    .status == 0
            )
            let pulled = CLI.run(["pull", "evil"], environment: env("b"))
            #expect(pulled.status == status, "\(what): \(pulled.status) \(pulled.stderr)")
            #expect(pulled.stderr.hasPrefix("custody: ") && pulled.stderr.split(separator: "\n").count == 1)
            #expect(pulled.stderr.contains("does not verify") || pulled.stderr.contains("malformed"), "\(what)")
        }
        #expect(logTypes("b").count == before, "nothing recorded")
        #expect(
            CLI.run(["peer", "add", "a", urlA, "--identity", dir.path + "/a.id"], environment: env("b")).status == 0
        )
        #expect(grants("b").values.allSatisfy { $0["revoked"] as? Bool == false })

        // The real granter's answer verifies: B records it and says so.
        let learned = CLI.run(["pull", "a", "--json"], environment: env("b"))
        #expect(learned.status == 0, "\(learned.stderr)")
        let received = learned.json?["revocations_received"] as? [[String: Any]] ?? []
        #expect(received.map { $0["grant"] as? String } == [other])
        #expect(grants("b")[other]?["revoked"] as? Bool == true)
        #expect(grants("b")[parent]?["revoked"] as? Bool == false)

        // Split view: a copy of A with A's keys shows B a revocation of the parent on another history than the one
        // B witnessed. Every signature in that notice is A's, but its checkpoint is a fork: refused, not recorded.
        try FileManager.default.copyItem(atPath: dir.path + "/a", toPath: dir.path + "/fork")
        dir.write("later.txt", text: "the real history goes on")
        #expect(CLI.run(["ingest", dir.path + "/later.txt"], environment: env("a")).status == 0)
        #expect(CLI.run(["pull", "a"], environment: env("b")).status == 0, "B witnesses A's real log")
        #expect(CLI.run(["grant", "revoke", parent, "--reason", "fork"], environment: env("fork")).status == 0)
        let (forkServer, forkURL) = try serve("fork")
        defer { stop(forkServer) }
        #expect(
            CLI.run(["peer", "add", "a", forkURL, "--identity", dir.path + "/a.id"], environment: env("b")).status == 0
        )
        let split = CLI.run(["pull", "a"], environment: env("b"))
        #expect(split.status == 1 && split.stderr.contains("FORK"), "\(split.status): \(split.stderr)")
        #expect(grants("b")[parent]?["revoked"] as? Bool == false)
        #expect(logTypes("b").filter { $0 == "revocation-received" }.count == 1)
        #expect(
            CLI.run(["peer", "add", "a", urlA, "--identity", dir.path + "/a.id"], environment: env("b")).status == 0
        )

        // A revokes the re-shared parent; B's next pull learns it.
        #expect(
            CLI.run(["grant", "revoke", parent, "--reason", "consent withdrawn"], environment: env("a")).status == 0
        )
        let second = CLI.run(["pull", "a"], environment: env("b"))
        #expect(second.status == 0 && second.stderr.contains("grant \(parent) was REVOKED by A"), "\(second.stderr)")
        #expect(logTypes("b").filter { $0 == "revocation-received" }.count == 2)
        let row = try #require(grants("b")[parent])
        let revocation = try #require(row["revocation"] as? [String: Any])
        #expect(row["revoked"] as? Bool == true && revocation["revoked_by"] as? String == "A")
        #expect(revocation["revoked_at"] as? String == row["revoked_at"] as? String)
        let childRow = grants("b")[child]?["parent_revoked"] as? [String: Any]
        #expect(childRow?["grant"] as? String == parent, "B's listing says its node refuses the child")
        let listText = CLI.run(["grant", "list"], environment: env("b")).stdout
        #expect(listText.contains("REFUSED by this node: its parent grant \(parent) was revoked"))
        #expect(listText.contains("\(parent)  from A") && listText.contains("REVOKED: revoked by A"), "\(listText)")
        let shown = CLI.run(["grant", "show", parent], environment: env("b"))
        #expect(shown.status == 0 && shown.stdout.contains("REVOKED") && shown.stdout.contains("by A"))
        let showJSON = CLI.run(["grant", "show", parent, "--json"], environment: env("b")).json
        #expect((showJSON?["revocation"] as? [String: Any])?["revoked_by"] as? String == "A")
        let itemShown = CLI.run(["show", item], environment: env("b"))
        #expect(itemShown.stdout.contains("GRANT REVOKED") && itemShown.stdout.contains("by A"), "\(itemShown.stdout)")
        let itemJSON = CLI.run(["show", item, "--json"], environment: env("b")).json
        #expect((itemJSON?["grant_revocation"] as? [String: Any])?["grant"] as? String == parent)

        // Extract: refused without the override; with it, a loud warning and the extract is recorded.
        let out = dir.path + "/extracted.txt"
        let refusedExtract = CLI.run(["extract", item, "-o", out], environment: env("b"))
        #expect(refusedExtract.status == 77 && refusedExtract.stderr.contains("--despite-revocation"))
        #expect(!FileManager.default.fileExists(atPath: out))
        let forced = CLI.run(["extract", item, "-o", out, "--despite-revocation"], environment: env("b"))
        #expect(forced.status == 0 && forced.stderr.contains("WARNING") && forced.stderr.contains("revoked"))
        #expect(logTypes("b").last == "extract")

        // B's node refuses C's child of the revoked parent, with the notice B received; C's pull says revoked.
        let cPull = CLI.run(["pull", "b", "--grant", child], environment: env("c"))
        #expect(cPull.status == 77 && cPull.stderr.contains("revoked"), "\(cPull.stderr)")
        let signing: SigningKey = try {
            let c = try Archive.open(at: dir.path + "/c").unlock(
                passphrase: try SecretBytes(copying: Array("revocation test".utf8))
            )
            return try c.keys.signing
        }()
        let client = NodeClient(base: try #require(URL(string: urlB)), key: signing)
        let gone = try await NodeClient.execute(client.signedRequest("v1/grants/\(child)/head"))
        #expect(gone.status == 410 && gone.headers["content-type"] == "application/vnd.custody.revocation+json")
        #expect(RevocationNotice.parse(gone.body)?.grant == parent)
        #expect(grants("c")[child]?["revoked"] as? Bool == false, "C cannot check A's notice: it does not know A")
        let cAll = CLI.run(["pull", "b"], environment: env("c"))
        #expect(
            cAll.status == 0 && cAll.stderr.contains("note: grant \(child) is no longer valid (410)"),
            "\(cAll.stderr)"
        )
        #expect(cAll.stderr.contains("not a body this archive knows"))
        // Once C knows A (fingerprint compared out of band), the relayed notice verifies and marks C's grant.
        #expect(
            CLI.run(["peer", "add", "a", urlA, "--identity", dir.path + "/a.id"], environment: env("c")).status == 0
        )
        let cAgain = CLI.run(["pull", "b"], environment: env("c"))
        #expect(cAgain.status == 0 && cAgain.stderr.contains("was REVOKED by A"), "\(cAgain.stderr)")
        let cRevocation = grants("c")[child]?["revocation"] as? [String: Any]
        #expect(cRevocation?["ancestor"] as? String == parent && cRevocation?["revoked_by"] as? String == "A")
        #expect(CLI.run(["extract", item, "-o", dir.path + "/c-out.txt"], environment: env("c")).status == 77)

        // No new child under the revoked parent.
        let refusedChild = grant("b", to: "c", "C1", reshare: false)
        #expect(refusedChild.status == 77 && refusedChild.stderr.contains("was revoked by A"), "\(refusedChild.stderr)")

        // Offline: importing the same notice again records nothing more; a tampered file is refused (exit 1).
        let again = CLI.run(["grant", "revocation", "import", noticeFile], environment: env("b"))
        #expect(again.status == 0, "\(again.stderr)")
        #expect(logTypes("b").filter { $0 == "revocation-received" }.count == 2)
        let tampered = dir.write("tampered.notice", Array(try JSONSerialization.data(withJSONObject: badProof)))
        let refusedImport = CLI.run(["grant", "revocation", "import", tampered], environment: env("b"))
        #expect(refusedImport.status == 1 && refusedImport.stderr.contains("does not verify"))

        // The record survives a rebuilt index, and the archive verifies.
        stop(serverB)
        serverBStopped = true
        #expect(CLI.run(["reindex"], environment: env("b")).status == 0)
        #expect(grants("b")[parent]?["revocation"] != nil && grants("b")[other]?["revocation"] != nil)
        #expect(CLI.run(["verify"], environment: env("b")).status == 0)
    }
}
