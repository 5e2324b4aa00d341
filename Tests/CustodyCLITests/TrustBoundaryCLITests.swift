import CustodyArchive
import CustodyCrypto
import CustodyNode
import CustodyTestSupport
import Foundation
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// The trust boundary online (issue 11), written as the attacks: a malicious peer on loopback (a proxy in front of
/// real nodes, Scripts/test-peer-proxy.py) that shows its grant endpoints another log than its witness endpoints,
/// lists ids that are paths, or answers one grant's head for another. Each pull must refuse before importing.
@Suite(.serialized) struct TrustBoundaryCLITests: CLIArchiveSuite {
    let dir = TempDirectory("trust-boundary-cli")

    static let passphrase = "boundary test"

    struct Failure: Error, CustomStringConvertible {
        var description: String
    }

    /// Starts `custody serve` for `name`; the child and its base URL. A node answers only requests signed for its
    /// own public URLs (PROTOCOL.md section 2.1): `behind` are the ports of proxies in front of it, which the
    /// peer's operator gives as more `--public-url`s, as a real deployment behind a proxy would.
    private func serve(_ name: String, behind proxies: [Int] = []) throws -> (CLI.Child, String) {
        guard !proxies.isEmpty else {
            guard let started = CLI.serve(environment: env(name)) else {
                throw Failure(description: "serve did not start")
            }
            return started
        }
        let port = freePort()
        let urls = ([port] + proxies).flatMap { ["--public-url", "http://127.0.0.1:\($0)"] }
        let child = CLI.start(["serve", "--listen", "127.0.0.1:\(port)"] + urls, environment: env(name))
        for _ in 0..<200 {
            if child.outputSoFar.contains("listening on ") { return (child, "http://127.0.0.1:\(port)") }
            usleep(50_000)
        }
        stop(child)
        throw Failure(description: "serve did not start")
    }

    /// A loopback port that was free a moment ago (bound to port 0, then released).
    private func freePort() -> Int {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(fd) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { pointer in
                bind(fd, pointer, length) == 0 ? getsockname(fd, pointer, &length) : -1
            }
        }
        return Int(UInt16(bigEndian: address.sin_port))
    }

    /// Starts the malicious proxy with `arguments` on `port`; the child and its base URL.
    private func proxy(_ arguments: [String], port: Int = 0) throws -> (CLI.Child, String) {
        let script = CLI.packageRoot + "/Scripts/test-peer-proxy.py"
        let child = CLI.start(executable: "/usr/bin/env", ["python3", script, "--port", "\(port)"] + arguments)
        for _ in 0..<200 {
            if let range = child.outputSoFar.range(of: "listening on ") {
                let address = child.outputSoFar[range.upperBound...].prefix { !$0.isWhitespace }
                return (child, "http://" + address)
            }
            usleep(50_000)
        }
        stop(child)
        throw Failure(description: "the proxy did not start")
    }

    private func stop(_ child: CLI.Child) {
        kill(child.pid, SIGTERM)
        _ = child.wait()
    }

    private func hostPort(_ url: String) -> String { String(url.dropFirst("http://".count)) }

    /// OHCHR with two grants to IACHR (cases C1 and C2); both identity files exported.
    private func bodies() throws -> (c1: String, c2: String) {
        for name in ["ohchr", "iachr"] {
            let made = initArchive(name)
            #expect(made.status == 0, "\(made.stderr)")
            #expect(CLI.run(["id", "export", "-o", dir.path + "/\(name).id"], environment: env(name)).status == 0)
        }
        func grant(_ caseID: String) throws -> String {
            dir.write("\(caseID)/a.txt", text: "statement of \(caseID)")
            #expect(
                CLI.run(["ingest", dir.path + "/\(caseID)", "--case", caseID], environment: env("ohchr")).status == 0
            )
            let made = CLI.run(
                [
                    "grant", "create", "--to", dir.path + "/iachr.id", "--case", caseID, "--expires", "1d",
                    "--purpose", "p", "--json",
                ],
                environment: env("ohchr")
            )
            guard let id = made.json?["id"] as? String else { throw Failure(description: made.stderr) }
            return id
        }
        return (try grant("C1"), try grant("C2"))
    }

    private func itemCount(_ name: String) -> Int {
        (CLI.run(["ls", "--json"], environment: env(name)).json?["items"] as? [Any])?.count ?? -1
    }

    @Test func aPeerShowingItsGrantsAnotherLogIsRefusedBeforeAnythingIsImported() throws {
        _ = try bodies()
        // A copy of OHCHR with the same keys grows another history, and grants IACHR an item only it has.
        try FileManager.default.copyItem(atPath: dir.path + "/ohchr", toPath: dir.path + "/fork")
        dir.write("F/forged.txt", text: "an item that exists only in a forked log")
        // Two items, so the head's size (9) is no power of two: a proof from a complete tree leaves its root out
        // and can never show a fork (LEDGER.md section 12).
        dir.write("F/forged-too.txt", text: "and another")
        #expect(CLI.run(["ingest", dir.path + "/F", "--case", "F"], environment: env("fork")).status == 0)
        let made = CLI.run(
            [
                "grant", "create", "--to", dir.path + "/iachr.id", "--case", "F", "--expires", "1d", "--purpose", "p",
                "--json",
            ],
            environment: env("fork")
        )
        let forkedGrant = try #require(made.json?["id"] as? String, "\(made.stderr)")
        // The real log, the one the witness endpoints show, grows longer.
        for i in 0..<6 {
            dir.write("real/\(i).txt", text: "real history \(i)")
        }
        #expect(CLI.run(["ingest", dir.path + "/real", "--case", "R"], environment: env("ohchr")).status == 0)

        let splitPort = freePort()
        let (real, realURL) = try serve("ohchr", behind: [splitPort])
        defer { stop(real) }
        let (fork, forkURL) = try serve("fork", behind: [splitPort])
        defer { stop(fork) }
        let (split, splitURL) = try proxy(
            ["--default", hostPort(realURL), "--route", "/v1/grants=" + hostPort(forkURL)],
            port: splitPort
        )
        defer { stop(split) }
        #expect(
            CLI.run(
                ["peer", "add", "split", splitURL, "--identity", dir.path + "/ohchr.id"],
                environment: env("iachr")
            )
            .status == 0
        )
        // The head's checkpoint is older than the witnessed log, and the peer's own proof from it to its log shows
        // it is no prefix of it: a fork, filed with that proof.
        let older = CLI.run(["pull", "split", "--grant", forkedGrant], environment: env("iachr").jsonErrors)
        #expect(older.status == 1 && older.errorReason == "fork", "\(older.status): \(older.stderr)")
        #expect(itemCount("iachr") == 0)
        let conflicts = dir.path + "/iachr/witness/conflicts"
        #expect(((try? FileManager.default.contentsOfDirectory(atPath: conflicts)) ?? []).count == 1)

        // The forked log outgrows the real one: its head is beyond the log the witnesses are shown.
        for i in 0..<12 {
            dir.write("fork-more/\(i).txt", text: "forked history \(i)")
        }
        #expect(CLI.run(["ingest", dir.path + "/fork-more", "--case", "G"], environment: env("fork")).status == 0)
        let newer = CLI.run(["pull", "split", "--grant", forkedGrant], environment: env("iachr").jsonErrors)
        #expect(newer.status == 65 && newer.errorReason == "split-view", "\(newer.status): \(newer.stderr)")
        #expect(itemCount("iachr") == 0)
        #expect(CLI.run(["verify"], environment: env("iachr")).status == 0)

        // The honest node still pulls: the witnessed log is the real one.
        #expect(
            CLI.run(["peer", "add", "split", realURL, "--identity", dir.path + "/ohchr.id"], environment: env("iachr"))
                .status == 0
        )
        let honest = CLI.run(["pull", "split"], environment: env("iachr"))
        #expect(honest.status == 0, "\(honest.stderr)")
        #expect(itemCount("iachr") == 2)
    }

    @Test func aPeersListingAndHeadsAreCheckedBeforeUse() async throws {
        let (c1, c2) = try bodies()
        let (listerPort, swapperPort) = (freePort(), freePort())
        let (real, realURL) = try serve("ohchr", behind: [listerPort, swapperPort])
        defer { stop(real) }

        // A listing whose ids are paths: refused whole; nothing is written anywhere.
        let victim = dir.path + "/outside-victim"
        let traversal = "../../../../../../" + String(victim.dropFirst())
        let listing = dir.write(
            "listing.json",
            text:
                #"{"grants":[{"id":"\#(traversal)","items":1,"created":"2026-01-01T00:00:00Z","expires":"2036-01-01T00:00:00Z","permission":"content","reshare":false}]}"#
        )
        let (lister, listerURL) = try proxy(
            ["--default", hostPort(realURL), "--canned", "/v1/grants=200:" + listing],
            port: listerPort
        )
        defer { stop(lister) }
        #expect(
            CLI.run(
                ["peer", "add", "lister", listerURL, "--identity", dir.path + "/ohchr.id"],
                environment: env("iachr")
            )
            .status == 0
        )
        let listed = CLI.run(["pull", "lister"], environment: env("iachr").jsonErrors)
        #expect(listed.status == 65 && listed.errorReason == "peer-malformed", "\(listed.stderr)")
        #expect(!FileManager.default.fileExists(atPath: victim + ".head"))
        #expect(!FileManager.default.fileExists(atPath: victim))

        // One grant's head answered for another: the import compares the head's grant with the listed id.
        let iachr = try Archive.open(at: dir.path + "/iachr").unlock(
            passphrase: try SecretBytes(copying: Array("boundary test".utf8))
        )
        let client = NodeClient(base: try #require(URL(string: realURL)), key: try iachr.keys.signing)
        let head = try await client.send("v1/grants/\(c2)/head")
        #expect(head.status == 200)
        let other = dir.write("c2.head", Array(head.body))
        let (swapper, swapperURL) = try proxy(
            [
                "--default", hostPort(realURL), "--canned", "/v1/grants/\(c1)/head=200:" + other,
            ],
            port: swapperPort
        )
        defer { stop(swapper) }
        #expect(
            CLI.run(
                ["peer", "add", "lister", swapperURL, "--identity", dir.path + "/ohchr.id"],
                environment: env("iachr")
            )
            .status == 0
        )
        let swapped = CLI.run(["pull", "lister", "--grant", c1], environment: env("iachr").jsonErrors)
        #expect(swapped.status == 65 && swapped.errorReason == "grant-unexpected", "\(swapped.stderr)")
        #expect(itemCount("iachr") == 0)

        // Offline, an auditor who names the wrong granter gets a failure, not a pass with a remark.
        let bundle = dir.path + "/c1.bundle"
        #expect(CLI.run(["bundle", "export", c1, "-o", bundle], environment: env("ohchr")).status == 0)
        let wrong = CLI.run(["bundle", "verify", bundle, "--granter", dir.path + "/iachr.id", "--json"])
        #expect(wrong.status == 1 && wrong.json?["ok"] as? Bool == false, "\(wrong.stdout)")
        #expect(CLI.run(["bundle", "verify", bundle, "--granter", dir.path + "/ohchr.id"]).status == 0)
    }
}
