import CustodyArchive
import CustodyCrypto
import CustodyTestSupport
import Foundation
import Testing

/// `verify --sample P%` (a rotating slice that covers every object over 100/P runs) and `verify --quick` (one
/// listing of the store), on the filesystem store; S3Tests runs them on S3.
@Suite struct VerifySampleTests {
    let dir = TempDirectory("sample")
    var env: [String: String] { ["CUSTODY_ARCHIVE": dir.path + "/a", "CUSTODY_PASSPHRASE": "sample test"] }

    @Test func samplesRotateOverEveryObjectAndFindDamageInTheirSlice() throws {
        #expect(CLI.run(["init", "--name", "A", "--kdf", "insecure-test"], environment: env).status == 0)
        for i in 0..<12 { dir.write("in/f\(i).txt", text: "file \(i) " + String(repeating: "x", count: i * 100)) }
        #expect(CLI.run(["ingest", dir.path + "/in"], environment: env).status == 0)
        let total = try #require(CLI.run(["verify", "--json"], environment: env).json?["objects_checked"] as? Int)
        // Four runs of 25% cover the name space exactly once, each run starting where the last ended.
        var covered = 0
        var starts: [Int] = []
        for _ in 0..<4 {
            let run = CLI.run(["verify", "--sample", "25%", "--json"], environment: env)
            #expect(run.status == 0, "\(run.stderr)")
            let sample = try #require(run.json?["sample"] as? [String: Any])
            covered += sample["objects"] as? Int ?? 0
            starts.append(sample["start"] as? Int ?? -1)
            #expect(sample["total_objects"] as? Int == total)
        }
        #expect(covered == total)
        #expect(starts == [0, 16384, 32768, 49152])
        // A damaged object is found by the run whose slice holds it, and by no other.
        let objects = dir.path + "/a/objects"
        let shard = try #require(
            try FileManager.default.contentsOfDirectory(atPath: objects).sorted().first { $0.count == 2 }
        )
        let victim = try #require(try FileManager.default.contentsOfDirectory(atPath: objects + "/" + shard).first)
        let path = objects + "/" + shard + "/" + victim
        var bytes = Fixtures.read(path)
        bytes[0] ^= 0xFF
        try Data(bytes).write(to: URL(fileURLWithPath: path))
        let position = Int(victim.prefix(4), radix: 16)!
        var found = 0
        for _ in 0..<4 {
            let run = CLI.run(["verify", "--sample", "25%", "--json"], environment: env)
            let sample = try #require(run.json?["sample"] as? [String: Any])
            let start = sample["start"] as? Int ?? 0
            let inSlice = (position - start + 65536) % 65536 < 16384
            #expect((run.status != 0) == inSlice)
            #expect(run.stdout.contains(victim) == inSlice)
            if inSlice { found += 1 }
        }
        #expect(found == 1)
        // --quick sees sizes only: the flipped byte keeps the size, so it passes; a truncated object does not.
        #expect(CLI.run(["verify", "--quick"], environment: env).status == 0)
        try Data(bytes.dropLast()).write(to: URL(fileURLWithPath: path))
        let quick = CLI.run(["verify", "--quick", "--json"], environment: env)
        #expect(quick.status == 1 && quick.stdout.contains("size-mismatch"), "\(quick.stdout)")
        for bad in ["0", "-5%", "101%", "ten"] {
            #expect(CLI.run(["verify", "--sample", bad], environment: env).status == 64, "\(bad)")
        }
        #expect(CLI.run(["verify", "--sample", "10%", "--deep"], environment: env).status == 64)
    }
}
