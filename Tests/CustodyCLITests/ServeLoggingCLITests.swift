import AsyncHTTPClient
import CustodyArchive
import CustodyCrypto
import CustodyNode
import CustodyTestSupport
import Foundation
import NIOHTTP1
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// What `custody serve` writes to its log, and that stopping a node logs no error.
@Suite(.serialized) struct ServeLoggingCLITests: CLIArchiveSuite {
    let dir = TempDirectory("serve-log")
    static let passphrase = "log test"

    /// A line of the log that Hummingbird or the service group wrote at error level, or that says "error".
    static func errorLines(_ stderr: String) -> [Substring] {
        stderr.split(separator: "\n").filter { $0.lowercased().contains("error") }
    }

    @Test func serveLogsEachRequestAndEachRefusalWithoutItsSecrets() async throws {
        for name in ["node", "peer"] {
            #expect(initArchive(name, displayName: name).status == 0)
        }
        #expect(CLI.run(["id", "export", "-o", dir.path + "/peer.id"], environment: env("peer")).status == 0)
        // The node witnesses the peer, so the peer's key may make signed requests.
        #expect(CLI.run(["witness", "add", dir.path + "/peer.id"], environment: env("node")).status == 0)
        let key = try Archive.open(at: dir.path + "/peer").unlock(passphrase: Fixtures.secret("log test")).keys.signing
        guard let (server, url) = CLI.serve(environment: env("node"), arguments: ["--log-level", "debug"]) else {
            Issue.record("serve did not start")
            return
        }
        let client = NodeClient(base: try #require(URL(string: url)), key: key)
        let signed = client.signedRequest("v1/grants", query: "secret=hunter2")
        let first = try await NodeClient.execute(signed)
        let replayed = try await NodeClient.execute(signed)
        #expect(first.status == 200 && replayed.status == 401)
        kill(server.pid, SIGTERM)
        let stopped = server.wait()
        #expect(stopped.status == 0, "\(stopped.stderr)")
        let lines = stopped.stderr.split(separator: "\n")
        let requests = lines.filter { $0.contains(" info ") && $0.hasSuffix("] request") }
        let refusals = lines.filter { $0.contains(" notice ") && $0.hasSuffix("] refused") }
        #expect(requests.count == 1 && requests.first?.contains("http.status=200") == true, "\(stopped.stderr)")
        #expect(requests.first?.contains("custody.requester=\(Encoding.base64(key.publicKey).prefix(12))") == true)
        let refusal = try #require(refusals.first, "\(stopped.stderr)")
        #expect(refusals.count == 1)
        #expect(refusal.contains("custody.reason=unauthenticated") && refusal.contains("custody.detail=replayed"))
        #expect(refusal.contains("http.path=/v1/grants ") && refusal.contains("http.status=401"))
        // Never the signature, its nonce, or the query.
        let signature = try #require(signed.headers.first(name: "Signature"))
        let input = try #require(signed.headers.first(name: "Signature-Input"))
        let nonce = try #require(input.split(separator: "nonce=\"").last?.prefix { $0 != "\"" })
        #expect(!stopped.stderr.contains(signature.dropFirst(6).prefix(40)) && !stopped.stderr.contains(nonce))
        #expect(!stopped.stderr.contains("hunter2"))
        #expect(Self.errorLines(stopped.stderr).isEmpty, "\(stopped.stderr)")
    }

    @Test func serveStoppedBySIGTERMOrSIGINTLogsNoError() throws {
        #expect(initArchive("node", displayName: "node").status == 0)
        for signal in [SIGTERM, SIGINT] {
            guard let (server, _) = CLI.serve(environment: env("node")) else {
                Issue.record("serve did not start")
                return
            }
            kill(server.pid, signal)
            let stopped = server.wait()
            #expect(stopped.status == 0, "\(stopped.stderr)")
            #expect(Self.errorLines(stopped.stderr).isEmpty, "\(stopped.stderr)")
        }
    }

    @Test func anUnknownLogLevelIsAUsageError() {
        let result = CLI.run(["serve", "--log-level", "verbose"], environment: env("none"))
        // ArgumentParser's own usage error (not a custody error line): it names the option.
        #expect(result.status == 64 && result.stderr.contains("--log-level"), "\(result.stderr)")
        #expect(result.stdout.isEmpty)
    }

    @Test func demoStopsItsServerWithoutAnError() {
        let result = CLI.run(["demo"], environment: ["TMPDIR": dir.path])
        #expect(result.status == 0, "\(result.stderr)")
        #expect(!result.stderr.contains("HummingbirdCore"), "\(result.stderr)")
        #expect(Self.errorLines(result.stderr).isEmpty, "\(result.stderr)")
    }
}
