import AsyncHTTPClient
import CustodyArchive
import CustodyCrypto
import CustodyNode
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
            (["serve", "--listen", "nonsense"], 64, "is not HOST:PORT"),
            (["serve", "--listen", "127.0.0.1:99999"], 64, "is not HOST:PORT"),
            (["peer", "add", "bad name", "http://x", "--identity", dir.path + "/a.id"], 64, "is not valid"),
            (["peer", "add", "a", "ftp://x", "--identity", dir.path + "/a.id"], 64, "is not an http(s) URL"),
            (
                ["peer", "add", "a", "http://x", "--identity", dir.write("junk.id", text: "{}")], 65,
                "is not an identity"
            ),
            (["pull", "nobody"], 66, "no peer called nobody"),
        ]
        for (arguments, status, message) in cases {
            let result = CLI.run(arguments, environment: env("b"))
            #expect(result.status == status && result.stderr.contains(message), "\(arguments): \(result.stderr)")
            #expect(result.stderr.hasPrefix("custody: ") && result.stderr.split(separator: "\n").count == 1)
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

    @Test func aGrantIsPulledOnlineAndTheServerRefusesWhatItMust() async throws {
        for name in ["ohchr", "iachr", "third"] {
            #expect(
                initArchive(name).status
                    == 0
            )
            #expect(CLI.run(["id", "export", "-o", dir.path + "/\(name).id"], environment: env(name)).status == 0)
        }
        dir.write("case/a.txt", text: "statement A")
        dir.write("case/b.bin", randomBytes(3_500_000))  // four 1 MiB chunks: a pull fetches several objects
        let ingest = CLI.run(["ingest", dir.path + "/case", "--case", "C1", "--json"], environment: env("ohchr"))
        let ids = (ingest.json?["items"] as? [[String: Any]] ?? []).compactMap { $0["id"] as? String }
        dir.write("other/x.txt", text: "other case")
        #expect(CLI.run(["ingest", dir.path + "/other", "--case", "C2"], environment: env("ohchr")).status == 0)
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
        #expect(CLI.run(["witness", "add", dir.path + "/iachr.id"], environment: env("ohchr")).status == 0)
        let (server, url) = try serve("ohchr")
        defer {
            kill(server.pid, SIGTERM)
            let stopped = server.wait()
            #expect(stopped.status == 0, "serve did not stop cleanly on SIGTERM: \(stopped.stderr)")
        }
        let busy = CLI.run(["serve", "--listen", String(url.dropFirst("http://".count))], environment: env("third"))
        #expect(busy.status == 73 && busy.stderr.contains("cannot serve on"), "\(busy.stderr)")
        #expect(
            CLI.run(["peer", "add", "ohchr", url, "--identity", dir.path + "/ohchr.id"], environment: env("iachr"))
                .status == 0
        )
        // A pull killed after its first batch of fetched objects was stored imports nothing; the next pull
        // resumes: it reads those objects from the store instead of fetching them again.
        var crashing = env("iachr")
        crashing["CUSTODY_TEST_CRASH_AT"] = "pull-objects-committed"
        let killed = CLI.run(["pull", "ohchr", "--grant", granted], environment: crashing)
        #expect(killed.status != 0)
        #expect((CLI.run(["ls", "--json"], environment: env("iachr")).json?["items"] as? [Any])?.isEmpty == true)
        let pulled = CLI.run(["pull", "ohchr", "--grant", granted, "--json"], environment: env("iachr"))
        #expect(pulled.status == 0, "\(pulled.stderr)")
        let report = try #require((pulled.json?["grants"] as? [[String: Any]])?.first, "\(pulled.stdout)")
        let fetched = report["objects_fetched"] as? Int ?? 0
        let reused = report["objects_reused"] as? Int ?? 0
        #expect(reused >= 1 && fetched >= 1, "fetched \(fetched), reused \(reused)")
        #expect((report["imported"] as? [String]).map(Set.init) == Set(ids))
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
        // The checkpoint the node serves (as tlog-tiles clients fetch it) carries the cosignature too.
        let served = try await NodeClient.execute(HTTPClientRequest(url: url + "/v1/log/checkpoint"))
        #expect(String(decoding: served.body, as: UTF8.self).contains("— \(iachrOrigin) "))
        let listed = CLI.run(["ls", "--json"], environment: env("iachr")).json?["items"] as? [[String: Any]] ?? []
        #expect(Set(listed.compactMap { $0["id"] as? String }) == Set(ids))
        #expect(CLI.run(["verify", "--deep"], environment: env("iachr")).status == 0)
        // Pulling again imports nothing new; the server logs one access event per pull session (an hour per grant
        // and requester), not one per object or per request.
        let again = CLI.run(["pull", "ohchr", "--json"], environment: env("iachr"))
        #expect(again.status == 0, "\(again.stderr)")
        let log = CLI.run(["log", "--json"], environment: env("ohchr")).json?["entries"] as? [[String: Any]] ?? []
        #expect(log.filter { $0["type"] as? String == "access" }.count == 1)
        let imports = CLI.run(["log", "--json"], environment: env("iachr")).json?["entries"] as? [[String: Any]] ?? []
        #expect(imports.filter { $0["type"] as? String == "import" }.count == ids.count)
        #expect(CLI.run(["verify"], environment: env("ohchr")).status == 0)

        // Raw requests as IACHR, as a stranger and as nobody.
        let signing: SigningKey = try {
            let iachr = try Archive.open(at: dir.path + "/iachr").unlock(
                passphrase: try SecretBytes(copying: Array("node test".utf8))
            )
            return try iachr.keys.signing
        }()
        let base = try #require(URL(string: url))
        let client = NodeClient(base: base, key: signing)
        // The same signed request twice: the second is a replay.
        let once = client.signedRequest("v1/grants")
        #expect(try await NodeClient.execute(once).status == 200)
        #expect(try await NodeClient.execute(once).status == 401)
        // Objects: one the grant releases, whole and as a range; any other name, or another body's grant, is 404.
        let released = try {
            let ohchr = try Archive.open(at: dir.path + "/ohchr")
            return try ohchr.storedGrant(granted).grant.releasedObjects
        }()
        let object = try #require(released.max { $0.size < $1.size })
        let whole = try await client.send("v1/grants/\(granted)/objects/\(object.name.hex)")
        #expect(whole.status == 200 && Int64(whole.body.count) == object.size)
        #expect(ObjectName(of: Array(whole.body)) == object.name)
        let ranged = client.signedRequest(
            "v1/grants/\(granted)/objects/\(object.name.hex)",
            headers: [("Range", "bytes=10-19")]
        )
        let part = try await NodeClient.execute(ranged)
        #expect(part.status == 206 && part.body == Array(whole.body[10..<20]))
        #expect(part.headers["content-range"] == "bytes 10-19/\(object.size)")
        let beyond = client.signedRequest(
            "v1/grants/\(granted)/objects/\(object.name.hex)",
            headers: [("Range", "bytes=\(object.size)-")]
        )
        #expect(try await NodeClient.execute(beyond).status == 416)
        let unreleased = Encoding.hex(randomBytes(32))
        #expect(try await client.send("v1/grants/\(granted)/objects/\(unreleased)").status == 404)
        #expect(try await client.send("v1/grants/\(granted)/objects/..%2F..%2Fkeys").status == 404)
        #expect(try await client.send("v1/grants/\(toThird)/objects/\(object.name.hex)").status == 404)
        #expect(try await client.send("v1/grants/\(toThird)/head").status == 404)
        #expect(try await client.send("v1/grants/\(Encoding.hex(randomBytes(16)))/head").status == 404)
        // The whole bundle, resumable with Range.
        let bundleStart = client.signedRequest("v1/grants/\(granted)/bundle", headers: [("Range", "bytes=0-17")])
        let bundlePart = try await NodeClient.execute(bundleStart)
        #expect(bundlePart.status == 206 && bundlePart.body == Array("custody-bundle/v1\n".utf8))
        // Inclusion proofs are public, like the tiles.
        let proof = try await NodeClient.execute(HTTPClientRequest(url: url + "/v1/log/inclusion?index=0"))
        #expect(
            proof.status == 200
                && String(decoding: proof.body, as: UTF8.self).hasPrefix("c2sp.org/tlog-proof@v1\nindex 0\n")
        )
        #expect(
            try await NodeClient.execute(HTTPClientRequest(url: url + "/v1/log/inclusion?index=99999")).status == 404
        )
        for bad in ["abc", "-1", ""] {
            let refused = try await NodeClient.execute(HTTPClientRequest(url: url + "/v1/log/inclusion?index=\(bad)"))
            #expect(refused.status == 400, "index=\(bad)")
        }
        let key = try SigningKey(seed: SecretBytes(randomCount: 32))
        let stranger = NodeClient(base: base, key: key)
        #expect(try await stranger.send("v1/grants").status == 401)
        #expect(try await stranger.send("v1/grants/\(granted)/objects/\(object.name.hex)").status == 401)
        #expect(try await NodeClient.execute(HTTPClientRequest(url: url + "/v1/grants")).status == 401)
        #expect(
            try await NodeClient.execute(
                HTTPClientRequest(url: url + "/v1/grants/\(granted)/objects/\(object.name.hex)")
            ).status
                == 401
        )
        #expect(try await NodeClient.execute(HTTPClientRequest(url: url + "/v1/identity")).body.count > 100)
        // Another body's grant looks like no grant at all.
        let notMine = CLI.run(["pull", "ohchr", "--grant", toThird], environment: env("iachr"))
        #expect(notMine.status == 66)
        // A copy of OHCHR's archive, with the same keys, that grows another history: pulling from it is a fork.
        try FileManager.default.copyItem(atPath: dir.path + "/ohchr", toPath: dir.path + "/fork")
        dir.write("real.txt", text: "the real history")
        #expect(CLI.run(["ingest", dir.path + "/real.txt"], environment: env("ohchr")).status == 0)
        #expect(CLI.run(["pull", "ohchr"], environment: env("iachr")).status == 0)
        for i in 0..<6 {
            dir.write("fake-\(i).txt", text: "another history \(i)")
            #expect(CLI.run(["ingest", dir.path + "/fake-\(i).txt"], environment: env("fork")).status == 0)
        }
        let (forkServer, forkURL) = try serve("fork")
        defer {
            kill(forkServer.pid, SIGTERM)
            _ = forkServer.wait()
        }
        #expect(
            CLI.run(["peer", "add", "fork", forkURL, "--identity", dir.path + "/ohchr.id"], environment: env("iachr"))
                .status == 0
        )
        let forked = CLI.run(["pull", "fork"], environment: env("iachr"))
        #expect(forked.status == 1 && forked.stderr.contains("FORK"), "\(forked.status): \(forked.stderr)")
        #expect(
            CLI.run(["peer", "add", "ohchr", url, "--identity", dir.path + "/ohchr.id"], environment: env("iachr"))
                .status == 0
        )

        // Revoked: 410 with the reason.
        #expect(CLI.run(["grant", "revoke", granted, "--reason", "withdrawn"], environment: env("ohchr")).status == 0)
        let revoked = CLI.run(["pull", "ohchr", "--grant", granted], environment: env("iachr"))
        #expect(revoked.status == 77 && revoked.stderr.contains("revoked"), "\(revoked.stderr)")
        let gone = try await client.send("v1/grants/\(granted)/objects/\(object.name.hex)")
        #expect(gone.status == 410 && String(decoding: gone.body, as: UTF8.self).contains("revoked"))
    }
}
