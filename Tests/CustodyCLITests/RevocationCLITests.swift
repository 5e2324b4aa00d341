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

    /// `from`'s grant of case `caseID` to `to` (re-sharable with `reshare`), made with `grant create --json`.
    private func grant(
        _ from: String,
        to: String,
        _ caseID: String,
        reshare: Bool,
        errors: [String: String] = [:]
    ) -> CLIResult {
        CLI.run(
            [
                "grant", "create", "--to", dir.path + "/\(to).id", "--case", caseID, "--expires",
                from == "a" ? "5d" : "2d",
                "--purpose", "p", "--json",
            ] + (reshare ? ["--reshare"] : []),
            environment: env(from).merging(errors) { $1 }
        )
    }

    /// A has granted B case C1 re-sharably (`parent`) and case C2 (`other`); B has pulled both from A's node and
    /// re-shared C1 to C (`child`), which C has pulled from B's node. Both nodes run: stop them with `stop(_:)`.
    struct Bodies {
        /// The item of case C1.
        let item: String
        let parent: String
        let other: String
        let child: String
        let serverA: CLI.Child
        let urlA: String
        let serverB: CLI.Child
        let urlB: String
    }

    private func bodies() throws -> Bodies {
        for name in ["a", "b", "c"] {
            try #require(initArchive(name).status == 0)
            try #require(CLI.run(["id", "export", "-o", dir.path + "/\(name).id"], environment: env(name)).status == 0)
        }
        dir.write("c1/a.txt", text: "statement A")
        dir.write("c2/b.txt", text: "statement B")
        let ingested = CLI.run(["ingest", dir.path + "/c1", "--case", "C1", "--json"], environment: env("a"))
        let item = try #require((ingested.json?["items"] as? [[String: Any]])?.first?["id"] as? String)
        try #require(CLI.run(["ingest", dir.path + "/c2", "--case", "C2"], environment: env("a")).status == 0)
        let parent = try #require(grant("a", to: "b", "C1", reshare: true).json?["id"] as? String)
        let other = try #require(grant("a", to: "b", "C2", reshare: false).json?["id"] as? String)
        let (serverA, urlA) = try serve("a")
        var started = [serverA]
        defer { if started.count < 2 { for server in started { stop(server) } } }
        try #require(
            CLI.run(["peer", "add", "a", urlA, "--identity", dir.path + "/a.id"], environment: env("b")).status == 0
        )
        let first = CLI.run(["pull", "a"], environment: env("b"))
        try #require(first.status == 0, "\(first.stderr)")
        let childMade = grant("b", to: "c", "C1", reshare: false)
        let child = try #require(childMade.json?["id"] as? String, "\(childMade.stderr)")
        let (serverB, urlB) = try serve("b")
        started.append(serverB)
        let bodies = Bodies(
            item: item,
            parent: parent,
            other: other,
            child: child,
            serverA: serverA,
            urlA: urlA,
            serverB: serverB,
            urlB: urlB
        )
        func fail(_ message: String) -> Failed {
            stop(bodies)
            return Failed(message: message)
        }
        let added = CLI.run(["peer", "add", "b", urlB, "--identity", dir.path + "/b.id"], environment: env("c"))
        guard added.status == 0 else { throw fail("C's peer add failed: \(added.stderr)") }
        let cFirst = CLI.run(["pull", "b", "--grant", child], environment: env("c"))
        guard cFirst.status == 0 else { throw fail("C's pull failed: \(cFirst.stderr)") }
        return bodies
    }

    private func stop(_ b: Bodies) {
        stop(b.serverA)
        stop(b.serverB)
    }

    /// A revokes `other`, writing its genuine notice offline to `file`: a forger's raw material.
    private func revokeOther(_ b: Bodies) throws -> (file: String, genuine: [String: Any]) {
        let file = dir.path + "/other.notice"
        let revoked = CLI.run(["grant", "revoke", b.other, "--reason", "withdrawn", "-o", file], environment: env("a"))
        try #require(revoked.status == 0, "\(revoked.stderr)")
        let genuine = try #require(
            try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: file))) as? [String: Any]
        )
        return (file, genuine)
    }

    /// The genuine notice with an index its proof does not match.
    private func badProof(_ genuine: [String: Any]) -> [String: Any] {
        var badProof = genuine
        badProof["index"] = (genuine["index"] as? Int ?? 0) + 1
        return badProof
    }

    /// Forged 410 notices, each with the grant the malicious peer lists and the exit status B's pull must have.
    private func forgeries(_ b: Bodies, _ genuine: [String: Any]) throws -> [(String, String, [UInt8], Int32)] {
        var relabelled = genuine
        relabelled["grant"] = b.parent
        var badEntry = genuine
        var entry = try #require(Encoding.bytes(base64: genuine["entry"] as? String ?? ""))
        entry[entry.count - 2] ^= 1
        badEntry["entry"] = Encoding.base64(entry)
        return [
            ("event for another grant", b.parent, Array(try JSONSerialization.data(withJSONObject: relabelled)), 1),
            (
                "proof not matching the checkpoint", b.other,
                Array(try JSONSerialization.data(withJSONObject: badProof(genuine))), 1
            ),
            ("bad signature", b.other, Array(try JSONSerialization.data(withJSONObject: badEntry)), 1),
            ("malformed", b.other, Array("{\"format\": \"custody-revocation/v1\", \"grant\": \"../x\"}".utf8), 65),
        ]
    }

    /// B pulls from a malicious peer (registered with A's identity) that answers 410 with `body` for `listed`.
    private func pullFromMaliciousPeer(listing listed: String, body: [UInt8]) throws -> (added: Int32, CLIResult) {
        let (evil, evilURL) = try evilPeer(listing: listed, body: body)
        defer { stop(evil) }
        let added = CLI.run(["peer", "add", "evil", evilURL, "--identity", dir.path + "/a.id"], environment: env("b"))
        return (added.status, CLI.run(["pull", "evil"], environment: env("b").jsonErrors))
    }

    @Test func forgedNoticesFromAPeerAreRefusedInOneLine() throws {
        let b = try bodies()
        defer { stop(b) }
        let (_, genuine) = try revokeOther(b)
        for (what, listed, body, status) in try forgeries(b, genuine) {
            let (added, pulled) = try pullFromMaliciousPeer(listing: listed, body: body)
            #expect(added == 0)
            #expect(pulled.status == status, "\(what): \(pulled.status) \(pulled.stderr)")
            #expect(pulled.stderr.split(separator: "\n").count == 1, "\(what): \(pulled.stderr)")
            #expect(pulled.errorReason == (status == 1 ? "revocation-invalid" : "revocation-malformed"), "\(what)")
        }
    }

    @Test func forgedNoticesRecordNothing() throws {
        let b = try bodies()
        defer { stop(b) }
        let (_, genuine) = try revokeOther(b)
        let before = logTypes("b").count
        for (_, listed, body, _) in try forgeries(b, genuine) {
            _ = try pullFromMaliciousPeer(listing: listed, body: body)
        }
        #expect(logTypes("b").count == before, "nothing recorded")
        #expect(
            CLI.run(["peer", "add", "a", b.urlA, "--identity", dir.path + "/a.id"], environment: env("b")).status == 0
        )
        #expect(grants("b").values.allSatisfy { $0["revoked"] as? Bool == false })
    }

    @Test func theGrantersOwnNoticeVerifiesAndIsRecorded() throws {
        let b = try bodies()
        defer { stop(b) }
        _ = try revokeOther(b)
        let learned = CLI.run(["pull", "a", "--json"], environment: env("b"))
        #expect(learned.status == 0, "\(learned.stderr)")
        let received = learned.json?["revocations_received"] as? [[String: Any]] ?? []
        #expect(received.map { $0["grant"] as? String } == [b.other])
        #expect(grants("b")[b.other]?["revoked"] as? Bool == true)
        #expect(grants("b")[b.parent]?["revoked"] as? Bool == false)
    }

    @Test func aRevocationOnAForkOfTheGrantersLogIsRefusedAndNotRecorded() throws {
        let b = try bodies()
        defer { stop(b) }
        _ = try revokeOther(b)
        try #require(CLI.run(["pull", "a"], environment: env("b")).status == 0)
        // Split view: a copy of A with A's keys shows B a revocation of the parent on another history than the one
        // B witnessed. Every signature in that notice is A's, but its checkpoint is a fork: refused, not recorded.
        try FileManager.default.copyItem(atPath: dir.path + "/a", toPath: dir.path + "/fork")
        dir.write("later.txt", text: "the real history goes on")
        #expect(CLI.run(["ingest", dir.path + "/later.txt"], environment: env("a")).status == 0)
        #expect(CLI.run(["pull", "a"], environment: env("b")).status == 0, "B witnesses A's real log")
        #expect(CLI.run(["grant", "revoke", b.parent, "--reason", "fork"], environment: env("fork")).status == 0)
        let (forkServer, forkURL) = try serve("fork")
        defer { stop(forkServer) }
        #expect(
            CLI.run(["peer", "add", "a", forkURL, "--identity", dir.path + "/a.id"], environment: env("b")).status == 0
        )
        let split = CLI.run(["pull", "a"], environment: env("b").jsonErrors)
        #expect(split.status == 1 && split.errorReason == "fork", "\(split.status): \(split.stderr)")
        #expect(grants("b")[b.parent]?["revoked"] as? Bool == false)
        #expect(logTypes("b").filter { $0 == "revocation-received" }.count == 1)
        #expect(
            CLI.run(["peer", "add", "a", b.urlA, "--identity", dir.path + "/a.id"], environment: env("b")).status == 0
        )
    }

    /// The bodies after A revoked `other` (B pulled and recorded it) and then the re-shared `parent`: `learned` is
    /// B's pull after that, which learns the parent's revocation.
    struct Revoked {
        let b: Bodies
        let noticeFile: String
        let genuine: [String: Any]
        let learned: CLIResult
    }

    private func parentRevoked() throws -> Revoked {
        let b = try bodies()
        do {
            let (noticeFile, genuine) = try revokeOther(b)
            try #require(CLI.run(["pull", "a"], environment: env("b")).status == 0)
            try #require(
                CLI.run(["grant", "revoke", b.parent, "--reason", "consent withdrawn"], environment: env("a")).status
                    == 0
            )
            let learned = CLI.run(["pull", "a"], environment: env("b"))
            return Revoked(b: b, noticeFile: noticeFile, genuine: genuine, learned: learned)
        } catch {
            stop(b)
            throw error
        }
    }

    @Test func aPullAfterTheParentsRevocationRecordsWhoRevokedItAndWhen() throws {
        let r = try parentRevoked()
        defer { stop(r.b) }
        let parent = r.b.parent
        // A note or warning of a command that succeeded, for people: the output under test.
        #expect(
            r.learned.status == 0 && r.learned.stderr.contains("grant \(parent) was REVOKED by A"),
            "\(r.learned.stderr)"
        )
        #expect(logTypes("b").filter { $0 == "revocation-received" }.count == 2)
        let row = try #require(grants("b")[parent])
        let revocation = try #require(row["revocation"] as? [String: Any])
        #expect(row["revoked"] as? Bool == true && revocation["revoked_by"] as? String == "A")
        #expect(revocation["revoked_at"] as? String == row["revoked_at"] as? String)
    }

    @Test func theResharersListingsSayTheParentIsRevokedAndTheChildRefused() throws {
        let r = try parentRevoked()
        defer { stop(r.b) }
        let parent = r.b.parent
        let childRow = grants("b")[r.b.child]?["parent_revoked"] as? [String: Any]
        #expect(childRow?["grant"] as? String == parent, "B's listing says its node refuses the child")
        let listText = CLI.run(["grant", "list"], environment: env("b")).stdout
        #expect(listText.contains("REFUSED by this node: its parent grant \(parent) was revoked"))
        #expect(listText.contains("\(parent)  from A") && listText.contains("REVOKED: revoked by A"), "\(listText)")
        let shown = CLI.run(["grant", "show", parent], environment: env("b"))
        #expect(shown.status == 0 && shown.stdout.contains("REVOKED") && shown.stdout.contains("by A"))
        let showJSON = CLI.run(["grant", "show", parent, "--json"], environment: env("b")).json
        #expect((showJSON?["revocation"] as? [String: Any])?["revoked_by"] as? String == "A")
    }

    @Test func anItemOfTheRevokedGrantShowsTheRevocation() throws {
        let r = try parentRevoked()
        defer { stop(r.b) }
        let itemShown = CLI.run(["show", r.b.item], environment: env("b"))
        #expect(itemShown.stdout.contains("GRANT REVOKED") && itemShown.stdout.contains("by A"), "\(itemShown.stdout)")
        let itemJSON = CLI.run(["show", r.b.item, "--json"], environment: env("b")).json
        #expect((itemJSON?["grant_revocation"] as? [String: Any])?["grant"] as? String == r.b.parent)
    }

    @Test func extractingAnItemOfTheRevokedGrantIsRefusedWithoutTheOverride() throws {
        let r = try parentRevoked()
        defer { stop(r.b) }
        let out = dir.path + "/extracted.txt"
        let refusedExtract = CLI.run(["extract", r.b.item, "-o", out], environment: env("b").jsonErrors)
        #expect(refusedExtract.status == 77 && refusedExtract.errorReason == "grant-revoked")
        #expect(refusedExtract.error?.fix.contains("--despite-revocation") == true)  // the fix names the override
        #expect(!FileManager.default.fileExists(atPath: out))
    }

    @Test func theOverrideExtractsWithALoudWarningAndIsRecorded() throws {
        let r = try parentRevoked()
        defer { stop(r.b) }
        let out = dir.path + "/extracted.txt"
        let forced = CLI.run(["extract", r.b.item, "-o", out, "--despite-revocation"], environment: env("b"))
        // A note or warning of a command that succeeded, for people: the output under test.
        #expect(forced.status == 0 && forced.stderr.contains("WARNING") && forced.stderr.contains("revoked"))
        #expect(logTypes("b").last == "extract")
    }

    @Test func theResharersNodeAnswersTheChild410WithTheNoticeItReceived() async throws {
        let r = try parentRevoked()
        defer { stop(r.b) }
        let cPull = CLI.run(["pull", "b", "--grant", r.b.child], environment: env("c").jsonErrors)
        #expect(cPull.status == 77 && cPull.errorReason == "grant-not-valid", "\(cPull.stderr)")
        let c = try Archive.open(at: dir.path + "/c").unlock(
            passphrase: try SecretBytes(copying: Array("revocation test".utf8))
        )
        let client = NodeClient(base: try #require(URL(string: r.b.urlB)), key: try c.keys.signing)
        let gone = try await NodeClient.execute(client.signedRequest("v1/grants/\(r.b.child)/head"))
        #expect(gone.status == 410 && gone.headers["content-type"] == "application/vnd.custody.revocation+json")
        #expect(RevocationNotice.parse(gone.body)?.grant == r.b.parent)
    }

    @Test func theChildsGranteeCannotCheckTheRelayedNoticeWithoutKnowingTheGranter() throws {
        let r = try parentRevoked()
        defer { stop(r.b) }
        _ = CLI.run(["pull", "b", "--grant", r.b.child], environment: env("c"))
        #expect(grants("c")[r.b.child]?["revoked"] as? Bool == false, "C cannot check A's notice: it does not know A")
        let cAll = CLI.run(["pull", "b"], environment: env("c"))
        // A note or warning of a command that succeeded, for people: the output under test.
        #expect(
            cAll.status == 0 && cAll.stderr.contains("note: grant \(r.b.child) is no longer valid (410)"),
            "\(cAll.stderr)"
        )
        #expect(cAll.stderr.contains("not a body this archive knows"))
    }

    @Test func onceTheChildsGranteeKnowsTheGranterTheRelayedNoticeMarksItsGrant() throws {
        let r = try parentRevoked()
        defer { stop(r.b) }
        // Once C knows A (fingerprint compared out of band), the relayed notice verifies and marks C's grant.
        #expect(
            CLI.run(["peer", "add", "a", r.b.urlA, "--identity", dir.path + "/a.id"], environment: env("c")).status == 0
        )
        let cAgain = CLI.run(["pull", "b"], environment: env("c"))
        // A note or warning of a command that succeeded, for people: the output under test.
        #expect(cAgain.status == 0 && cAgain.stderr.contains("was REVOKED by A"), "\(cAgain.stderr)")
        let cRevocation = grants("c")[r.b.child]?["revocation"] as? [String: Any]
        #expect(cRevocation?["ancestor"] as? String == r.b.parent && cRevocation?["revoked_by"] as? String == "A")
        #expect(CLI.run(["extract", r.b.item, "-o", dir.path + "/c-out.txt"], environment: env("c")).status == 77)
    }

    @Test func noNewChildCanBeMadeUnderTheRevokedParent() throws {
        let r = try parentRevoked()
        defer { stop(r.b) }
        let refusedChild = grant("b", to: "c", "C1", reshare: false, errors: CLI.errorFormat)
        #expect(refusedChild.status == 77 && refusedChild.errorReason == "grant-revoked", "\(refusedChild.stderr)")
        #expect(refusedChild.error?.problem.contains("revoked by A") == true)  // names who revoked it
    }

    @Test func importingANoticeAlreadyRecordedRecordsNothingMore() throws {
        let r = try parentRevoked()
        defer { stop(r.b) }
        let again = CLI.run(["grant", "revocation", "import", r.noticeFile], environment: env("b"))
        #expect(again.status == 0, "\(again.stderr)")
        #expect(logTypes("b").filter { $0 == "revocation-received" }.count == 2)
    }

    @Test func importingATamperedNoticeFileIsRefused() throws {
        let r = try parentRevoked()
        defer { stop(r.b) }
        let tampered = dir.write(
            "tampered.notice",
            Array(try JSONSerialization.data(withJSONObject: badProof(r.genuine)))
        )
        let refusedImport = CLI.run(["grant", "revocation", "import", tampered], environment: env("b").jsonErrors)
        #expect(refusedImport.status == 1 && refusedImport.errorReason == "revocation-invalid")
    }

    @Test func theRevocationsSurviveAReindexAndTheArchiveVerifies() throws {
        let r = try parentRevoked()
        defer { stop(r.b.serverA) }
        stop(r.b.serverB)
        #expect(CLI.run(["reindex"], environment: env("b")).status == 0)
        #expect(grants("b")[r.b.parent]?["revocation"] != nil && grants("b")[r.b.other]?["revocation"] != nil)
        #expect(CLI.run(["verify"], environment: env("b")).status == 0)
    }
}
