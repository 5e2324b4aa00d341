import AsyncHTTPClient
import CustodyTestSupport
import Foundation
import NIOCore
import NIOHTTP1
import Testing

/// The verify boundary end to end: exit codes and one-line errors of `verify` and `witness cosign` for an
/// identity swapped in, a forged cosignature, and a consistency proof damaged on its way.
@Suite(.serialized) struct VerifyBoundaryCLITests: CLIArchiveSuite {
    let dir = TempDirectory("verify-boundary-cli")
    static let passphrase = "verify boundary"

    private func archive(_ name: String, items: Int) {
        let created = initArchive(name, displayName: "Body \(name)")
        #expect(created.status == 0, "\(created.stderr)")
        guard items > 0 else { return }
        for i in 0..<items { dir.write("\(name)-up/\(i).txt", text: "\(name) \(i)") }
        #expect(CLI.run(["ingest", dir.path + "/\(name)-up"], environment: env(name)).status == 0)
    }

    /// Archive `a` with items, and `b` witnessing it (each knows the other).
    private func pair() {
        archive("a", items: 2)
        archive("b", items: 0)
        #expect(CLI.run(["id", "export", "-o", dir.path + "/a.id"], environment: env("a")).status == 0)
        #expect(CLI.run(["id", "export", "-o", dir.path + "/b.id"], environment: env("b")).status == 0)
        #expect(CLI.run(["witness", "add", dir.path + "/a.id"], environment: env("b")).status == 0)
        #expect(CLI.run(["witness", "add", dir.path + "/b.id"], environment: env("a")).status == 0)
    }

    @Test func verifyFailsOnASwappedIdentityAndAForgedCosignature() throws {
        pair()
        #expect(CLI.run(["verify"], environment: env("a")).status == 0)
        // b's own, valid identity file put in place of a's.
        try FileManager.default.removeItem(atPath: dir.path + "/a/identity.json")
        try FileManager.default.copyItem(atPath: dir.path + "/b/identity.json", toPath: dir.path + "/a/identity.json")
        let swapped = CLI.run(["verify", "--json"], environment: env("a"))
        #expect(swapped.status == 1)
        let problems = try #require(swapped.json?["problems"] as? [[String: Any]])
        #expect(problems.contains { $0["kind"] as? String == "identity-invalid" })
        try FileManager.default.removeItem(atPath: dir.path + "/a/identity.json")
        #expect(CLI.run(["id", "export", "-o", dir.path + "/a/identity.json"], environment: env("a")).status != 0)
        try FileManager.default.copyItem(atPath: dir.path + "/a.id", toPath: dir.path + "/a/identity.json")
        #expect(CLI.run(["verify"], environment: env("a")).status == 0)

        // A cosignature line by b, its signature altered, planted in a's served checkpoint.
        let first = CLI.run(
            ["witness", "cosign", "-"],
            environment: env("b"),
            input: Fixtures.read(dir.path + "/a/log/checkpoint")
        )
        #expect(first.status == 0, "\(first.stderr)")
        var line = first.stdout
        let last = line.index(line.endIndex, offsetBy: -3)
        line.replaceSubrange(last...last, with: line[last] == "A" ? "B" : "A")
        let served = String(decoding: Fixtures.read(dir.path + "/a/log/checkpoint"), as: UTF8.self)
        dir.write("a/log/checkpoint", text: served + line)
        let forged = CLI.run(["verify"], environment: env("a"))
        #expect(forged.status == 1)
        #expect(forged.stdout.contains("cosignature-invalid") || forged.stderr.contains("cosignature-invalid"))
    }

    /// Grows `a` after `b` cosigned its checkpoint; returns a's consistency request from that size, and the same
    /// request with one bit of its first proof hash flipped.
    private func requests() throws -> (genuine: String, damaged: String) {
        let first = CLI.run(
            ["witness", "cosign", "-"],
            environment: env("b"),
            input: Fixtures.read(dir.path + "/a/log/checkpoint")
        )
        #expect(first.status == 0, "\(first.stderr)")
        let note = String(decoding: Fixtures.read(dir.path + "/a/log/checkpoint"), as: UTF8.self)
        let size = try #require(Int(note.split(separator: "\n")[1]))
        dir.write("more/x.txt", text: "more")
        dir.write("more/y.txt", text: "and more")
        #expect(CLI.run(["ingest", dir.path + "/more"], environment: env("a")).status == 0)
        let request = CLI.run(["prove", "--consistency", "\(size)"], environment: env("a")).stdout
        var lines = request.split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
        #expect(lines.count > 3 && lines[1] != "")
        // One bit of the first proof hash, in its base64 text.
        var hash = try #require(Data(base64Encoded: lines[1]))
        hash[0] ^= 0x01
        lines[1] = hash.base64EncodedString()
        return (request, lines.joined(separator: "\n"))
    }

    @Test func aDamagedConsistencyProofIsExit65AndNothingIsFiled() throws {
        pair()
        let (request, text) = try requests()
        let damaged = dir.write("damaged.txt", text: text)
        let refused = CLI.run(["witness", "cosign", damaged], environment: env("b").jsonErrors)
        #expect(refused.status == 65 && refused.errorReason == "proof-invalid", "\(refused.stderr)")
        #expect(!refused.stderr.contains("FORK"))
        #expect(refused.stderr.split(separator: "\n").count == 1 && refused.stdout.isEmpty)
        #expect(!FileManager.default.fileExists(atPath: dir.path + "/b/witness/conflicts"))
        // The genuine request is cosigned afterwards: the witness's state did not move.
        let genuine = CLI.run(["witness", "cosign", dir.write("genuine.txt", text: request)], environment: env("b"))
        #expect(genuine.status == 0, "\(genuine.stderr)")
        #expect(CLI.run(["verify"], environment: env("b")).status == 0)
    }

    @Test func aDamagedProofSentToTheNodeIs422AndNothingIsFiled() async throws {
        pair()
        let (genuine, damaged) = try requests()
        guard let (server, url) = CLI.serve(environment: env("b")) else {
            Issue.record("the server did not start")
            return
        }
        defer {
            kill(server.pid, SIGTERM)
            _ = server.wait()
        }
        func post(_ body: String) async throws -> (Int, String) {
            var request = HTTPClientRequest(url: url + "/v1/witness/add-checkpoint")
            request.method = .POST
            request.body = .bytes(ByteBuffer(string: body))
            let response = try await HTTPClient.shared.execute(request, timeout: .seconds(30))
            let bytes = try await response.body.collect(upTo: 1 << 16)
            return (Int(response.status.code), String(buffer: bytes))
        }
        let (status, body) = try await post(damaged)
        #expect(status == 422 && body == #"{"error":"proof-invalid"}"# + "\n", "\(status) \(body)")
        #expect(!FileManager.default.fileExists(atPath: dir.path + "/b/witness/conflicts"))
        let (ok, line) = try await post(genuine)
        #expect(ok == 200 && line.hasPrefix("— "))
    }
}
