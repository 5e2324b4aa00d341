import CustodyTestSupport
import Foundation
import Testing

/// Docs/examples/decrypt_item.py was written from Docs/FORMAT.md alone (PyNaCl, no Custody code).
/// It agreeing with custody on real archives is the proof that the format documents are complete.
@Suite struct IndependentDecryptorTests {
    let dir = TempDirectory("pynacl")
    var archive: String { dir.path + "/archive" }
    var env: [String: String] { ["CUSTODY_ARCHIVE": archive, "CUSTODY_PASSPHRASE": "independent check"] }
    var script: String { CLI.packageRoot + "/Docs/examples/decrypt_item.py" }

    @Test(.enabled(if: CLI.pythonHasNaCl, "needs python3 with PyNaCl (Scripts/test.sh installs it)"))
    func decryptorWrittenFromTheDocsAgreesWithCustody() throws {
        let python = "/usr/bin/env"
        #expect(CLI.run(["init", "--name", "Docs Check", "--kdf", "insecure-test"], environment: env).status == 0)
        let big = (0..<((1 << 20) + 100_000)).map { UInt8(truncatingIfNeeded: $0 &* 2_654_435_761 >> 11) }
        dir.write("up/big.bin", big)
        dir.write("up/small.txt", text: "شهادة — witness statement")
        dir.write("up/empty.bin", [])
        let ingest = CLI.run(
            ["ingest", dir.path + "/up", "--case", "DOCS-1", "--meta", "k=v", "--json"],
            environment: env
        )
        #expect(ingest.status == 0, "\(ingest.stderr)")
        let items = try #require(ingest.json?["items"] as? [[String: Any]])
        let bigID = try #require(
            items.first { ($0["path"] as? String)?.hasSuffix("big.bin") == true }?["id"] as? String
        )

        let all = CLI.run(executable: python, ["python3", script, archive], environment: env)
        #expect(all.status == 0, "\(all.stdout)\n\(all.stderr)")

        let out = dir.path + "/big.out"
        let one = CLI.run(executable: python, ["python3", script, archive, bigID, "-o", out], environment: env)
        #expect(one.status == 0, "\(one.stderr)")
        #expect(Fixtures.read(out) == big)

        // Damage that custody's verify sees, the independent checker sees too.
        let objects = Fixtures.allFiles(under: archive + "/objects").filter { !$0.contains("/objects/tmp/") }
        let victim = try #require(objects.max { Fixtures.read($0).count < Fixtures.read($1).count })
        var bytes = Fixtures.read(victim)
        bytes[100] ^= 0x01
        try Data(bytes).write(to: URL(fileURLWithPath: victim))
        #expect(CLI.run(["verify"], environment: env).status == 1)
        #expect(CLI.run(executable: python, ["python3", script, archive], environment: env).status == 1)
    }
}
