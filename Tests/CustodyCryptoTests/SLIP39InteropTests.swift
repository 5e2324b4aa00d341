import CustodyCrypto
import Foundation
import Testing

/// The reference implementation, trezor/python-shamir-mnemonic (PyPI `shamir-mnemonic`), as an independent checker.
///
/// Secrets and mnemonics go to Python on stdin as JSON, never in argv (which other users can read).
private enum ReferencePython {
    static let isAvailable: Bool = run("import shamir_mnemonic", input: Data())?.status == 0

    /// Runs `python3 -c script` with `input` on stdin; the exit status and stdout, or `nil` if it cannot start.
    static func run(_ script: String, input: Data) -> (status: Int32, output: Data)? {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = ["python3", "-c", script]
        let stdin = Pipe()
        let stdout = Pipe()
        process.standardInput = stdin
        process.standardOutput = stdout
        process.standardError = FileHandle.nullDevice
        do { try process.run() } catch { return nil }
        stdin.fileHandleForWriting.write(input)
        try? stdin.fileHandleForWriting.close()
        let output = stdout.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return (process.terminationStatus, output)
    }

    /// `shamir_mnemonic.combine_mnemonics`: the master secret in hex.
    static func combine(_ mnemonics: [String], passphrase: String) throws -> String {
        let script = """
            import json, sys, shamir_mnemonic
            request = json.load(sys.stdin)
            secret = shamir_mnemonic.combine_mnemonics(request["mnemonics"], request["passphrase"].encode("ascii"))
            print(secret.hex())
            """
        let input = try JSONSerialization.data(withJSONObject: ["mnemonics": mnemonics, "passphrase": passphrase])
        let result = try #require(run(script, input: input))
        #expect(result.status == 0)
        return String(decoding: result.output, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
    }

    /// `shamir_mnemonic.generate_mnemonics`: the mnemonics of each group.
    static func generate(secretHex: String, _ configuration: InteropConfiguration) throws -> [[String]] {
        let script = """
            import json, sys, shamir_mnemonic
            r = json.load(sys.stdin)
            groups = shamir_mnemonic.generate_mnemonics(
                r["group_threshold"], [tuple(g) for g in r["groups"]], bytes.fromhex(r["secret"]),
                r["passphrase"].encode("ascii"), extendable=r["extendable"], iteration_exponent=1)
            json.dump(groups, sys.stdout)
            """
        let request: [String: Any] = [
            "secret": secretHex,
            "group_threshold": configuration.groupThreshold,
            "groups": configuration.groups.map { [$0.memberThreshold, $0.memberCount] },
            "passphrase": configuration.passphrase,
            "extendable": configuration.extendable,
        ]
        let result = try #require(run(script, input: try JSONSerialization.data(withJSONObject: request)))
        #expect(result.status == 0)
        return try #require(try JSONSerialization.jsonObject(with: result.output) as? [[String]])
    }
}

/// One split configuration for the interop tests, with the threshold set it combines.
struct InteropConfiguration: Sendable, CustomTestStringConvertible {
    var groupThreshold: Int
    var groups: [SLIP39.Group]
    var passphrase: String
    var extendable = true

    var testDescription: String {
        let groupText = groups.map { "\($0.memberThreshold)-of-\($0.memberCount)" }.joined(separator: " + ")
        return "\(groupThreshold) of [\(groupText)]\(passphrase.isEmpty ? "" : ", passphrase")"
            + (extendable ? "" : ", not extendable")
    }

    /// The first `groupThreshold` groups, each with its first `memberThreshold` members.
    func thresholdSet(of mnemonics: [[String]]) -> [String] {
        zip(groups, mnemonics).prefix(groupThreshold).flatMap { group, members in members.prefix(group.memberThreshold)
        }
    }

    static let all: [Self] = [
        .init(groupThreshold: 1, groups: [.init(memberThreshold: 2, memberCount: 3)], passphrase: ""),
        .init(groupThreshold: 1, groups: [.init(memberThreshold: 2, memberCount: 3)], passphrase: "TREZOR ~ 2026"),
        .init(
            groupThreshold: 2,
            groups: [.init(memberThreshold: 2, memberCount: 3), .init(memberThreshold: 1, memberCount: 1)],
            passphrase: ""
        ),
        .init(
            groupThreshold: 2,
            groups: [.init(memberThreshold: 2, memberCount: 3), .init(memberThreshold: 1, memberCount: 1)],
            passphrase: "a witness passphrase"
        ),
        .init(
            groupThreshold: 2,
            groups: [.init(memberThreshold: 1, memberCount: 1), .init(memberThreshold: 3, memberCount: 5)],
            passphrase: "not extendable",
            extendable: false
        ),
    ]
}

@Suite(.enabled(if: ReferencePython.isAvailable, "needs python3 with shamir-mnemonic (Scripts/test.sh installs it)"))
struct SLIP39InteropTests {
    @Test("Swift's shares are combined by the reference implementation", arguments: InteropConfiguration.all)
    func swiftSplitPythonCombine(_ configuration: InteropConfiguration) throws {
        for byteCount in [16, 32] {
            let master = try SecretBytes(randomCount: byteCount)
            let mnemonics = try SLIP39.split(
                masterSecret: master,
                groupThreshold: configuration.groupThreshold,
                groups: configuration.groups,
                passphrase: Array(configuration.passphrase.utf8),
                extendable: configuration.extendable
            )
            let recovered = try ReferencePython.combine(
                configuration.thresholdSet(of: mnemonics),
                passphrase: configuration.passphrase
            )
            #expect(recovered == master.withUnsafeBytes { Encoding.hex($0) })
        }
    }

    @Test("The reference implementation's shares are combined by Swift", arguments: InteropConfiguration.all)
    func pythonSplitSwiftCombine(_ configuration: InteropConfiguration) throws {
        for byteCount in [16, 32] {
            let master = try SecretBytes(randomCount: byteCount)
            let mnemonics = try ReferencePython.generate(
                secretHex: master.withUnsafeBytes { Encoding.hex($0) },
                configuration
            )
            #expect(mnemonics.map(\.count) == configuration.groups.map(\.memberCount))
            let recovered = try SLIP39.combine(
                configuration.thresholdSet(of: mnemonics),
                passphrase: Array(configuration.passphrase.utf8)
            )
            #expect(recovered == master)
            let share = try SLIP39.Share(mnemonic: mnemonics[0][0])
            #expect(share.extendable == configuration.extendable)
            #expect(share.groupThreshold == configuration.groupThreshold)
        }
    }
}
