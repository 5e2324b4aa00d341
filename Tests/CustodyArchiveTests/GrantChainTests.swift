import CustodyStorage
import CustodyTestSupport
import Foundation
import Testing

@testable import CustodyArchive

#if canImport(Glibc)
import Glibc
#endif

/// Every walk up a re-share chain (bundle export, re-shares of a revoked grant, a re-share's revoked ancestor)
/// is ``Grant/walkAncestors(_:)``: it follows at most the 8 links a bundle's `P` records may hold, so a planted
/// cycle or an over-long chain of stored grants cannot make it run on.
@Suite struct GrantChainTests {
    /// A grant with only what the walk reads: its id and parent reference.
    static func grant(_ id: Int, parent: Int?) throws -> Grant {
        let party = #"{"name":"n","origin":"o","signing_key":"","box_key":"","fingerprint":""}"#
        let zeros = String(repeating: "0", count: 64)
        let parentJSON = parent.map { #","parent":{"id":"\#(Self.id($0))","hash":"\#(zeros)"}"# }
        let json = """
            {"v":1,"id":"\(Self.id(id))","created":"2026-01-01T00:00:00Z","expires":"2027-01-01T00:00:00Z",\
            "granter":\(party),"grantee":\(party),"permission":"content","reshare":true\(parentJSON ?? ""),\
            "kind":"grant","items":[],"terms_grantee":"","terms_granter":""}
            """
        return try JSONDecoder().decode(Grant.self, from: Data(json.utf8))
    }

    static func id(_ number: Int) -> String { String(format: "%032x", number) }

    /// A chain 0 → 1 → … → `length`, each grant naming the next as its parent; the last has none.
    static func chain(length: Int) async throws -> [String: Grant] {
        var grants: [String: Grant] = [:]
        for number in 0...length { grants[id(number)] = try grant(number, parent: number < length ? number + 1 : nil) }
        return grants
    }

    @Test func theBoundIsTheDocumentedPChainBound() throws {
        #expect(Grant.maxAncestors == BundleFormat.maxAncestors)
        let text = try String(contentsOfFile: CLI.packageRoot + "/Docs/SHARING.md", encoding: .utf8)
        let row = try #require(text.split(separator: "\n").first { $0.hasPrefix("| `P` |") })
        #expect(row.contains("at most \(Grant.maxAncestors), together at most 128 MiB"))
    }

    @Test func aShortChainIsWalkedToItsEnd() async throws {
        let grants = try await Self.chain(length: 3)
        var visited: [String] = []
        let beyond = try #require(grants[Self.id(0)]).walkAncestors { reference in
            visited.append(reference.id)
            return grants[reference.id]
        }
        #expect(visited == (1...3).map(Self.id))
        #expect(beyond == nil)
    }

    @Test func anOverLongChainStopsAtTheBound() async throws {
        let grants = try await Self.chain(length: 12)
        var visited: [String] = []
        let beyond = try #require(grants[Self.id(0)]).walkAncestors { reference in
            visited.append(reference.id)
            return grants[reference.id]
        }
        #expect(visited == (1...Grant.maxAncestors).map(Self.id))
        #expect(beyond?.id == Self.id(Grant.maxAncestors + 1))
    }

    @Test func aPlantedCycleStopsAtTheBound() throws {
        // Stored grants found by id alone (not by the hash their child names) can name each other.
        let grants = [Self.id(1): try Self.grant(1, parent: 2), Self.id(2): try Self.grant(2, parent: 1)]
        var visits = 0
        let beyond = try #require(grants[Self.id(1)]).walkAncestors { reference in
            visits += 1
            return grants[reference.id]
        }
        #expect(visits == Grant.maxAncestors)
        #expect(beyond != nil)
    }

    @Test func theWalkEndsWhereAVisitRefusesALink() async throws {
        let grants = try await Self.chain(length: 5)
        var visited: [String] = []
        let beyond = try #require(grants[Self.id(0)]).walkAncestors { reference in
            visited.append(reference.id)
            return reference.id == Self.id(2) ? nil : grants[reference.id]
        }
        #expect(visited == [Self.id(1), Self.id(2)])
        #expect(beyond == nil)
    }

    /// Re-shares one item down a chain of bodies: the grant with 8 ancestors (the most a bundle carries) exports,
    /// verifies and imports; the next re-share is not usable (its stored chain goes past the walk's bound), so its
    /// export is refused, not written as a bundle no verifier accepts.
    @Test func exportRefusesAChainLongerThanABundleCarries() async throws {
        let dir = TempDirectory("grant-chain")
        func make(_ number: Int) async throws -> Archive.Unlocked {
            try await Archive.create(
                at: dir.path + "/body\(number)",
                name: "body\(number)",
                passphrase: Fixtures.secret(),
                kdfPreset: "insecure-test",
                chunkSize: 4096
            )
        }
        var holder = try await make(0)
        var options = IngestOptions()
        options.fields.caseID = "COI"
        _ = try await holder.ingest([dir.write("in/a.txt", text: "statement")], options: options)
        let expires = Expiry.resolve("30d") ?? ""
        for depth in 0...Grant.maxAncestors + 1 {
            let next = try await make(depth + 1)
            var request = GrantRequest(grantee: try next.identity(), expires: expires, purpose: "onward \(depth)")
            request.caseID = "COI"
            request.reshare = true
            let (grant, _, _) = try await holder.createGrant(request)
            let path = dir.path + "/link\(depth).bundle"
            guard depth <= Grant.maxAncestors else {
                let refused = await #expect(throws: ArchiveError.self) {
                    try await holder.exportBundle(grant: grant.id, to: path)
                }
                #expect(refused?.reason == .ancestorNotHeld)
                #expect(POSIX.lstatPath(path) == nil)
                return
            }
            try await holder.exportBundle(grant: grant.id, to: path)
            let (report, _) = try await BundleVerifier.verify(
                path: path,
                granter: try holder.identity(),
                at: Int(time(nil))
            )
            #expect(report.ok, "a chain of \(depth) ancestors: \(report.problems)")
            _ = try await next.importBundle(path: path, trustGranter: true)
            holder = next
        }
        Issue.record("the chain never grew past the bound")
    }
}
