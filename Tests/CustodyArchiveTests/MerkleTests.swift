import CustodyCrypto
import CustodyTestSupport
import Foundation
import Testing

@testable import CustodyArchive

/// RFC 9162 Merkle trees against the shared known-answer vectors (Vectors/merkle.json, copied from
/// shared/vectors), plus properties over random sizes and every index.
@Suite struct MerkleTests {
    struct Vectors: Decodable {
        struct Root: Decodable {
            var size: Int
            var root: String
        }
        struct Inclusion: Decodable {
            var index: Int
            var size: Int
            var proof: [String]
        }
        struct Consistency: Decodable {
            var first: Int
            var second: Int
            var proof: [String]
        }
        var leaf_data: [String]
        var roots: [Root]
        var inclusion: [Inclusion]
        var consistency: [Consistency]
    }

    let vectors: Vectors
    let leaves: [[UInt8]]

    init() throws {
        let path = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent(
            "Vectors/merkle.json"
        )
        vectors = try JSONDecoder().decode(Vectors.self, from: Data(contentsOf: path))
        leaves = vectors.leaf_data.map { Merkle.leafHash(Array($0.utf8)) }
    }

    private func subtree(_ start: Int, _ count: Int) -> [UInt8] {
        Merkle.subtreeHash(start: start, count: count) { leaves[$0] }
    }

    private func hex(_ proof: [[UInt8]]) -> [String] { proof.map { Encoding.hex($0) } }

    @Test func rootsMatchTheVectors() {
        #expect(vectors.roots.count == 18)
        for root in vectors.roots {
            #expect(Encoding.hex(subtree(0, root.size)) == root.root, "size \(root.size)")
        }
    }

    @Test func inclusionProofsMatchAndVerify() throws {
        #expect(vectors.inclusion.count == 153)
        for vector in vectors.inclusion {
            let proof = Merkle.inclusionProof(index: vector.index, size: vector.size) { subtree($0, $1) }
            #expect(hex(proof) == vector.proof, "index \(vector.index) size \(vector.size)")
            let root = Merkle.root(
                fromInclusionProof: proof,
                leafHash: leaves[vector.index],
                index: vector.index,
                size: vector.size
            )
            #expect(root == subtree(0, vector.size))
        }
    }

    @Test func consistencyProofsMatchAndVerify() throws {
        #expect(vectors.consistency.count == 153)
        for vector in vectors.consistency {
            let proof = Merkle.consistencyProof(first: vector.first, second: vector.second) { subtree($0, $1) }
            #expect(hex(proof) == vector.proof, "\(vector.first) → \(vector.second)")
            #expect(
                Merkle.isConsistent(
                    proof,
                    first: vector.first,
                    second: vector.second,
                    firstRoot: subtree(0, vector.first),
                    secondRoot: subtree(0, vector.second)
                ),
                "\(vector.first) → \(vector.second)"
            )
        }
    }

    @Test func emptyTreeAndCTVectors() {
        #expect(Encoding.hex(Merkle.emptyRoot) == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
        // RFC 6962 test data (shared/vectors/signed-note.json, rfc6962_ct_vectors).
        let data = ["", "00", "10", "2021", "3031", "40414243", "5051525354555657", "606162636465666768696a6b6c6d6e6f"]
        let ct = data.map { Merkle.leafHash(Encoding.bytes(hex: $0) ?? []) }
        let root = { (n: Int) in Encoding.hex(Merkle.subtreeHash(start: 0, count: n) { ct[$0] }) }
        #expect(root(1) == "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d")
        #expect(root(2) == "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125")
        #expect(root(3) == "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77")
        #expect(root(8) == "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328")
    }

    @Test("Every index of random trees proves, and every tampering fails", arguments: [1, 2, 3, 7, 31, 64, 100, 257])
    func propertiesOverRandomTrees(size: Int) {
        let hashes = (0..<size).map { _ in Merkle.leafHash(randomBytes(12)) }
        let sub = { (start: Int, count: Int) in Merkle.subtreeHash(start: start, count: count) { hashes[$0] } }
        let root = sub(0, size)
        for index in 0..<size {
            let proof = Merkle.inclusionProof(index: index, size: size, subtree: sub)
            #expect(Merkle.root(fromInclusionProof: proof, leafHash: hashes[index], index: index, size: size) == root)
            // The wrong leaf, the wrong index, a flipped proof byte, or a truncated proof never reach the root.
            let other = hashes[(index + 1) % size]
            if size > 1 {
                #expect(Merkle.root(fromInclusionProof: proof, leafHash: other, index: index, size: size) != root)
                let wrongIndex = (index + 1) % size
                #expect(
                    Merkle.root(fromInclusionProof: proof, leafHash: hashes[index], index: wrongIndex, size: size)
                        != root
                )
            }
            if var first = proof.first {
                first[0] ^= 1
                var tampered = proof
                tampered[0] = first
                #expect(
                    Merkle.root(fromInclusionProof: tampered, leafHash: hashes[index], index: index, size: size) != root
                )
                #expect(
                    Merkle.root(
                        fromInclusionProof: Array(proof.dropLast()),
                        leafHash: hashes[index],
                        index: index,
                        size: size
                    )
                        != root
                )
            }
        }
        for first in stride(from: 1, through: size, by: max(1, size / 9)) {
            let proof = Merkle.consistencyProof(first: first, second: size, subtree: sub)
            let firstRoot = sub(0, first)
            #expect(Merkle.isConsistent(proof, first: first, second: size, firstRoot: firstRoot, secondRoot: root))
            if first < size {
                // A rewritten history (a different earlier root) is not consistent with the same later tree.
                var forged = firstRoot
                forged[5] ^= 0x80
                #expect(!Merkle.isConsistent(proof, first: first, second: size, firstRoot: forged, secondRoot: root))
                var forgedLater = root
                forgedLater[0] ^= 1
                #expect(
                    !Merkle.isConsistent(
                        proof,
                        first: first,
                        second: size,
                        firstRoot: firstRoot,
                        secondRoot: forgedLater
                    )
                )
            }
        }
    }
}
