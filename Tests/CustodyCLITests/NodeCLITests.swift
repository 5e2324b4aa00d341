import AsyncHTTPClient
import CustodyArchive
import CustodyCrypto
import CustodyNode
import CustodyStorage
import CustodyTestSupport
import Foundation
import Testing

/// Two real nodes on loopback: a grant pulled online, and the refusals the protocol requires.
@Suite(.serialized) struct NodeCLITests: CLIArchiveSuite {
    let dir = TempDirectory("node")
    static let passphrase = "node test"

    /// Starts `custody serve` for `name` on a free port and returns the child and its base URL.
    private func serve(_ name: String) throws -> (CLI.Child, String) {
        guard let (child, url) = CLI.serve(environment: env(name)) else {
            throw ArchiveErrorForTest("the server did not start")
        }
        return (child, url)
    }

    struct ArchiveErrorForTest: Error {
        var message: String
        init(_ message: String) { self.message = message }
    }

    @Test func badNodeArgumentsAreOneLineErrors() throws {
        #expect(initArchive("a", displayName: "A").status == 0)
        #expect(CLI.run(["id", "export", "-o", dir.path + "/a.id"], environment: env("a")).status == 0)
        #expect(initArchive("b", displayName: "B").status == 0)
        let cases: [([String], Int32, String)] = [
            (["serve", "--listen", "nonsense"], 64, "usage"),
            (["serve", "--listen", "127.0.0.1:99999"], 64, "usage"),
            (["peer", "add", "bad name", "http://x", "--identity", dir.path + "/a.id"], 64, "usage"),
            (["peer", "add", "a", "ftp://x", "--identity", dir.path + "/a.id"], 64, "usage"),
            (["peer", "add", "a", "http://x", "--identity", dir.write("junk.id", text: "{}")], 65, "bad-input"),
            (["pull", "nobody"], 66, "not-found"),
        ]
        for (arguments, status, reason) in cases {
            let result = CLI.run(arguments, environment: env("b").jsonErrors)
            #expect(result.status == status && result.errorReason == reason, "\(arguments): \(result.stderr)")
            // For people: one `custody: ` line (the text form is the property under test here).
            let text = CLI.run(arguments, environment: env("b"))
            #expect(text.status == status && text.stderr.hasPrefix("custody: "), "\(arguments): \(text.stderr)")
            #expect(text.stderr.split(separator: "\n").count == 1)
        }
        // A peer that is not running: a temporary failure (75), not a crash.
        #expect(
            CLI.run(
                ["peer", "add", "a", "http://127.0.0.1:9", "--identity", dir.path + "/a.id"],
                environment: env("b")
            ).status == 0
        )
        #expect(CLI.run(["pull", "a"], environment: env("b")).status == 75)
    }

    /// OHCHR's node serving on loopback: OHCHR holds case C1 (granted to IACHR) and case C2 (granted to THIRD),
    /// witnesses IACHR's log, and IACHR has OHCHR as a peer. With `pulled`, IACHR has pulled its grant once.
    struct Node {
        /// The items of case C1.
        let ids: [String]
        /// The grant of C1 to IACHR, and the grant of C2 to THIRD.
        let granted: String
        let toThird: String
        let server: CLI.Child
        let url: String
    }

    private func node(pulled: Bool = true) throws -> Node {
        for name in ["ohchr", "iachr", "third"] {
            try #require(initArchive(name).status == 0)
            try #require(CLI.run(["id", "export", "-o", dir.path + "/\(name).id"], environment: env(name)).status == 0)
        }
        dir.write("case/a.txt", text: "statement A")
        dir.write("case/b.bin", randomBytes(3_500_000))  // four 1 MiB chunks: a pull fetches several objects
        let ingest = CLI.run(["ingest", dir.path + "/case", "--case", "C1", "--json"], environment: env("ohchr"))
        let ids = (ingest.json?["items"] as? [[String: Any]] ?? []).compactMap { $0["id"] as? String }
        dir.write("other/x.txt", text: "other case")
        try #require(CLI.run(["ingest", dir.path + "/other", "--case", "C2"], environment: env("ohchr")).status == 0)
        func grant(_ to: String, _ caseID: String) throws -> String {
            let made = CLI.run(
                [
                    "grant", "create", "--to", dir.path + "/\(to).id", "--case", caseID, "--expires", "1d", "--purpose",
                    "p", "--json",
                ],
                environment: env("ohchr")
            )
            return try #require(made.json?["id"] as? String, "\(made.stderr)")
        }
        let granted = try grant("iachr", "C1")
        let toThird = try grant("third", "C2")
        // OHCHR witnesses IACHR's log too, so each pull exchanges cosignatures both ways.
        try #require(CLI.run(["witness", "add", dir.path + "/iachr.id"], environment: env("ohchr")).status == 0)
        let (server, url) = try serve("ohchr")
        let node = Node(ids: ids, granted: granted, toThird: toThird, server: server, url: url)
        let added = CLI.run(
            ["peer", "add", "ohchr", url, "--identity", dir.path + "/ohchr.id"],
            environment: env("iachr")
        )
        guard added.status == 0 else {
            stop(server)
            throw ArchiveErrorForTest("peer add failed: \(added.stderr)")
        }
        if pulled {
            let pull = CLI.run(["pull", "ohchr", "--grant", granted], environment: env("iachr"))
            guard pull.status == 0 else {
                stop(server)
                throw ArchiveErrorForTest("the set-up pull failed: \(pull.stderr)")
            }
        }
        return node
    }

    private func stop(_ server: CLI.Child) {
        kill(server.pid, SIGTERM)
        _ = server.wait()
    }

    /// A client that signs as IACHR, for raw requests to the node.
    private func iachrClient(_ n: Node) throws -> NodeClient {
        let iachr = try Archive.open(at: dir.path + "/iachr").unlock(
            passphrase: try SecretBytes(copying: Array("node test".utf8))
        )
        return NodeClient(base: try #require(URL(string: n.url)), key: try iachr.keys.signing)
    }

    /// The largest object OHCHR's grant to IACHR releases.
    private func releasedObject(_ n: Node) async throws -> ObjectRef {
        let released = try await Archive.open(at: dir.path + "/ohchr").storedGrant(n.granted).grant.releasedObjects
        return try #require(released.max { $0.size < $1.size })
    }

    @Test func serveStopsCleanlyOnSIGTERM() throws {
        let n = try node()
        kill(n.server.pid, SIGTERM)
        let stopped = n.server.wait()
        #expect(stopped.status == 0, "serve did not stop cleanly on SIGTERM: \(stopped.stderr)")
    }

    @Test func aSecondServeOnABusyAddressCannotServe() throws {
        let n = try node(pulled: false)
        defer { stop(n.server) }
        let busy = CLI.run(
            ["serve", "--listen", String(n.url.dropFirst("http://".count))],
            environment: env("third").jsonErrors
        )
        #expect(busy.status == 73 && busy.errorReason == "cannot-create", "\(busy.stderr)")
    }

    /// IACHR's pull of its grant, killed after its first batch of fetched objects was stored.
    private func killedPull(_ n: Node) -> CLIResult {
        var crashing = env("iachr")
        crashing["CUSTODY_TEST_CRASH_AT"] = "pull-objects-committed"
        return CLI.run(["pull", "ohchr", "--grant", n.granted], environment: crashing)
    }

    @Test func aPullKilledAfterStoringObjectsImportsNothing() throws {
        let n = try node(pulled: false)
        defer { stop(n.server) }
        #expect(killedPull(n).status != 0)
        #expect((CLI.run(["ls", "--json"], environment: env("iachr")).json?["items"] as? [Any])?.isEmpty == true)
    }

    @Test func thePullAfterAKilledOneReusesTheStoredObjectsAndImportsTheGrant() throws {
        let n = try node(pulled: false)
        defer { stop(n.server) }
        _ = killedPull(n)
        // The next pull resumes: it reads those objects from the store instead of fetching them again.
        let pulled = CLI.run(["pull", "ohchr", "--grant", n.granted, "--json"], environment: env("iachr"))
        #expect(pulled.status == 0, "\(pulled.stderr)")
        let report = try #require((pulled.json?["grants"] as? [[String: Any]])?.first, "\(pulled.stdout)")
        let fetched = report["objects_fetched"] as? Int ?? 0
        let reused = report["objects_reused"] as? Int ?? 0
        #expect(reused >= 1 && fetched >= 1, "fetched \(fetched), reused \(reused)")
        #expect((report["imported"] as? [String]).map(Set.init) == Set(n.ids))
    }

    @Test func aPullFollowsTheGranterAfterItRotatedItsKeys() throws {
        let n = try node()
        stop(n.server)
        let rotated = CLI.run(["keys", "rotate", "--reason", "a member left"], environment: env("ohchr"))
        #expect(rotated.status == 0, "\(rotated.stderr)")
        // A new grant after the rotation names the new box key; IACHR still holds the old identity.
        let made = CLI.run(
            [
                "grant", "create", "--to", dir.path + "/iachr.id", "--case", "C2", "--expires", "1d", "--purpose", "p",
                "--json",
            ],
            environment: env("ohchr")
        )
        let grant = try #require(made.json?["id"] as? String, "\(made.stderr)")
        let (server, url) = try serve("ohchr")
        defer { stop(server) }
        // The node moved to another port: the old identity file, with the new URL.
        let readded = CLI.run(
            ["peer", "add", "ohchr", url, "--identity", dir.path + "/ohchr.id"],
            environment: env("iachr")
        )
        #expect(readded.status == 0, "\(readded.stderr)")
        let pulled = CLI.run(["pull", "ohchr", "--grant", grant], environment: env("iachr"))
        #expect(pulled.status == 0, "\(pulled.stderr)")
        let fingerprint = CLI.run(["id", "show", "--json"], environment: env("ohchr")).json?["fingerprint"] as? String
        let registry = String(decoding: Fixtures.read(dir.path + "/iachr/bodies.json"), as: UTF8.self)
        #expect(registry.contains(try #require(fingerprint)))
        // The grant pulled before the rotation still opens at IACHR.
        #expect(
            CLI.run(["extract", n.ids[0], "-o", dir.path + "/after-rotation"], environment: env("iachr")).status == 0
        )
    }

    @Test func aPullExchangesCosignaturesBothWays() throws {
        let n = try node()
        defer { stop(n.server) }
        // Mutual witnessing: each side's newest cosigned checkpoint carries the other's cosignature.
        let ohchrCosigned = CLI.run(["checkpoint", "--cosigned"], environment: env("ohchr"))
        #expect(ohchrCosigned.status == 0 && ohchrCosigned.stdout.contains("— custody/"), "\(ohchrCosigned.stderr)")
        let iachrOrigin = try #require(
            CLI.run(["id", "show", "--json"], environment: env("iachr")).json?["origin"] as? String
        )
        let ohchrOrigin = try #require(
            CLI.run(["id", "show", "--json"], environment: env("ohchr")).json?["origin"] as? String
        )
        #expect(ohchrCosigned.stdout.contains("— \(iachrOrigin) "))
        #expect(CLI.run(["checkpoint", "--cosigned"], environment: env("iachr")).stdout.contains("— \(ohchrOrigin) "))
    }

    @Test func theServedCheckpointCarriesTheGranteesCosignature() async throws {
        let n = try node()
        defer { stop(n.server) }
        let iachrOrigin = try #require(
            CLI.run(["id", "show", "--json"], environment: env("iachr")).json?["origin"] as? String
        )
        // The checkpoint the node serves (as tlog-tiles clients fetch it) carries the cosignature too.
        let served = try await NodeClient.execute(HTTPClientRequest(url: n.url + "/v1/log/checkpoint"))
        #expect(String(decoding: served.body, as: UTF8.self).contains("— \(iachrOrigin) "))
    }

    @Test func aPulledGrantsItemsAreListedAndVerify() throws {
        let n = try node()
        defer { stop(n.server) }
        let listed = CLI.run(["ls", "--json"], environment: env("iachr")).json?["items"] as? [[String: Any]] ?? []
        #expect(Set(listed.compactMap { $0["id"] as? String }) == Set(n.ids))
        #expect(CLI.run(["verify", "--deep"], environment: env("iachr")).status == 0)
    }

    @Test func pullingAgainImportsNothingAndTheServerLogsOneAccessPerSession() throws {
        let n = try node()
        defer { stop(n.server) }
        // The server logs one access event per pull session (an hour per grant and requester), not one per object
        // or per request.
        let again = CLI.run(["pull", "ohchr", "--json"], environment: env("iachr"))
        #expect(again.status == 0, "\(again.stderr)")
        let log = CLI.run(["log", "--json"], environment: env("ohchr")).json?["entries"] as? [[String: Any]] ?? []
        #expect(log.filter { $0["type"] as? String == "access" }.count == 1)
        let imports = CLI.run(["log", "--json"], environment: env("iachr")).json?["entries"] as? [[String: Any]] ?? []
        #expect(imports.filter { $0["type"] as? String == "import" }.count == n.ids.count)
        #expect(CLI.run(["verify"], environment: env("ohchr")).status == 0)
    }

    @Test func theSameSignedRequestTwiceIsAReplay() async throws {
        let n = try node()
        defer { stop(n.server) }
        let once = try iachrClient(n).signedRequest("v1/grants")
        #expect(try await NodeClient.execute(once).status == 200)
        #expect(try await NodeClient.execute(once).status == 401)
    }

    @Test func aReleasedObjectIsServedWholeAndByRange() async throws {
        let n = try node()
        defer { stop(n.server) }
        let client = try iachrClient(n)
        let object = try await releasedObject(n)
        let whole = try await client.send("v1/grants/\(n.granted)/objects/\(object.name.hex)")
        #expect(whole.status == 200 && Int64(whole.body.count) == object.size)
        #expect(ObjectName(of: Array(whole.body)) == object.name)
        let ranged = client.signedRequest(
            "v1/grants/\(n.granted)/objects/\(object.name.hex)",
            headers: [("Range", "bytes=10-19")]
        )
        let part = try await NodeClient.execute(ranged)
        #expect(part.status == 206 && part.body == Array(whole.body[10..<20]))
        #expect(part.headers["content-range"] == "bytes 10-19/\(object.size)")
        let beyond = client.signedRequest(
            "v1/grants/\(n.granted)/objects/\(object.name.hex)",
            headers: [("Range", "bytes=\(object.size)-")]
        )
        #expect(try await NodeClient.execute(beyond).status == 416)
    }

    @Test func anyOtherObjectNameOrAnotherBodysGrantIs404() async throws {
        let n = try node()
        defer { stop(n.server) }
        let client = try iachrClient(n)
        let object = try await releasedObject(n)
        let unreleased = Encoding.hex(randomBytes(32))
        #expect(try await client.send("v1/grants/\(n.granted)/objects/\(unreleased)").status == 404)
        #expect(try await client.send("v1/grants/\(n.granted)/objects/..%2F..%2Fkeys").status == 404)
        #expect(try await client.send("v1/grants/\(n.toThird)/objects/\(object.name.hex)").status == 404)
        #expect(try await client.send("v1/grants/\(n.toThird)/head").status == 404)
        #expect(try await client.send("v1/grants/\(Encoding.hex(randomBytes(16)))/head").status == 404)
    }

    @Test func theWholeBundleIsResumableWithRange() async throws {
        let n = try node()
        defer { stop(n.server) }
        let bundleStart = try iachrClient(n).signedRequest(
            "v1/grants/\(n.granted)/bundle",
            headers: [("Range", "bytes=0-17")]
        )
        let bundlePart = try await NodeClient.execute(bundleStart)
        #expect(bundlePart.status == 206 && bundlePart.body == Array("custody-bundle/v1\n".utf8))
    }

    @Test func inclusionProofsArePublicAndABadIndexIsRefused() async throws {
        let n = try node()
        defer { stop(n.server) }
        let proof = try await NodeClient.execute(HTTPClientRequest(url: n.url + "/v1/log/inclusion?index=0"))
        #expect(
            proof.status == 200
                && String(decoding: proof.body, as: UTF8.self).hasPrefix("c2sp.org/tlog-proof@v1\nindex 0\n")
        )
        #expect(
            try await NodeClient.execute(HTTPClientRequest(url: n.url + "/v1/log/inclusion?index=99999")).status == 404
        )
        for bad in ["abc", "-1", ""] {
            let refused = try await NodeClient.execute(HTTPClientRequest(url: n.url + "/v1/log/inclusion?index=\(bad)"))
            #expect(refused.status == 400, "index=\(bad)")
        }
    }

    @Test func aStrangerAndNobodyAre401ButTheIdentityIsPublic() async throws {
        let n = try node()
        defer { stop(n.server) }
        let object = try await releasedObject(n)
        let stranger = NodeClient(
            base: try #require(URL(string: n.url)),
            key: try SigningKey(seed: SecretBytes(randomCount: 32))
        )
        #expect(try await stranger.send("v1/grants").status == 401)
        #expect(try await stranger.send("v1/grants/\(n.granted)/objects/\(object.name.hex)").status == 401)
        #expect(try await NodeClient.execute(HTTPClientRequest(url: n.url + "/v1/grants")).status == 401)
        #expect(
            try await NodeClient.execute(
                HTTPClientRequest(url: n.url + "/v1/grants/\(n.granted)/objects/\(object.name.hex)")
            ).status
                == 401
        )
        #expect(try await NodeClient.execute(HTTPClientRequest(url: n.url + "/v1/identity")).body.count > 100)
    }

    @Test func pullingAnotherBodysGrantIsNotFound() throws {
        let n = try node()
        defer { stop(n.server) }
        // Another body's grant looks like no grant at all.
        let notMine = CLI.run(["pull", "ohchr", "--grant", n.toThird], environment: env("iachr"))
        #expect(notMine.status == 66)
    }

    @Test func pullingFromACopyThatGrewAnotherHistoryIsAFork() throws {
        let n = try node()
        defer { stop(n.server) }
        // A copy of OHCHR's archive, with the same keys, that grows another history: pulling from it is a fork.
        try FileManager.default.copyItem(atPath: dir.path + "/ohchr", toPath: dir.path + "/fork")
        // Two items, so the size IACHR sees (9) is no power of two: a proof from a complete tree leaves its root
        // out and can never show a fork (LEDGER.md section 12).
        dir.write("real/1.txt", text: "the real history")
        dir.write("real/2.txt", text: "and more of it")
        #expect(CLI.run(["ingest", dir.path + "/real"], environment: env("ohchr")).status == 0)
        #expect(CLI.run(["pull", "ohchr"], environment: env("iachr")).status == 0)
        for i in 0..<6 {
            dir.write("fake-\(i).txt", text: "another history \(i)")
            #expect(CLI.run(["ingest", dir.path + "/fake-\(i).txt"], environment: env("fork")).status == 0)
        }
        let (forkServer, forkURL) = try serve("fork")
        defer { stop(forkServer) }
        #expect(
            CLI.run(["peer", "add", "fork", forkURL, "--identity", dir.path + "/ohchr.id"], environment: env("iachr"))
                .status == 0
        )
        let forked = CLI.run(["pull", "fork"], environment: env("iachr").jsonErrors)
        #expect(forked.status == 1 && forked.errorReason == "fork", "\(forked.status): \(forked.stderr)")
        #expect(
            CLI.run(["peer", "add", "ohchr", n.url, "--identity", dir.path + "/ohchr.id"], environment: env("iachr"))
                .status == 0
        )
    }

    @Test func aRevokedGrantIsAnswered410WithTheReason() async throws {
        let n = try node()
        defer { stop(n.server) }
        let object = try await releasedObject(n)
        #expect(
            CLI.run(["grant", "revoke", n.granted, "--reason", "withdrawn"], environment: env("ohchr")).status == 0
        )
        let revoked = CLI.run(["pull", "ohchr", "--grant", n.granted], environment: env("iachr").jsonErrors)
        #expect(revoked.status == 77 && revoked.errorReason == "grant-revoked", "\(revoked.stderr)")
        let gone = try await iachrClient(n).send("v1/grants/\(n.granted)/objects/\(object.name.hex)")
        #expect(gone.status == 410 && String(decoding: gone.body, as: UTF8.self).contains("revoked"))
    }
}
