import CustodyCrypto

/// RFC 9162 (C2SP `merkle-tree`) Merkle tree hashing, proofs and proof verification.
///
/// Leaf hash `SHA-256(0x00 || entry)`, node hash `SHA-256(0x01 || left || right)`, left-balanced: a tree of
/// n > 1 leaves splits at k, the largest power of two smaller than n. The empty tree's root is SHA-256("").
/// Proof generation takes a `subtree(start, count)` function returning the hash of leaves
/// `start..<start+count`, so callers can serve it from stored subtree hashes instead of rehashing.
package enum Merkle {
    /// The hash length.
    package static let hashByteCount = 32

    /// The root of the empty tree: SHA-256 of no bytes.
    package static let emptyRoot = SHA256Hasher.hash([])

    /// `SHA-256(0x00 || entry)`.
    package static func leafHash(_ entry: [UInt8]) -> [UInt8] {
        var hasher = SHA256Hasher()
        hasher.update([0])
        hasher.update(entry)
        return hasher.finalize()
    }

    /// `SHA-256(0x01 || left || right)`.
    package static func nodeHash(_ left: [UInt8], _ right: [UInt8]) -> [UInt8] {
        var hasher = SHA256Hasher()
        hasher.update([1])
        hasher.update(left)
        hasher.update(right)
        return hasher.finalize()
    }

    /// The largest power of two strictly smaller than `n` (n ≥ 2).
    static func split(_ n: Int) -> Int {
        precondition(n >= 2, "only trees of two or more leaves split")
        return 1 << (Int.bitWidth - 1 - (n - 1).leadingZeroBitCount)
    }

    /// The root of leaves `start..<start+count`, computed from their leaf hashes.
    ///
    /// - Parameters:
    ///   - start: The first leaf.
    ///   - count: How many leaves.
    ///   - leaf: The leaf hash at an index.
    /// - Returns: The subtree hash (``emptyRoot`` when `count` is 0).
    package static func subtreeHash(
        start: Int,
        count: Int,
        leaf: (Int) throws -> [UInt8]
    ) rethrows -> [UInt8] {
        switch count {
        case 0: return emptyRoot
        case 1: return try leaf(start)
        default:
            let k = split(count)
            return nodeHash(
                try subtreeHash(start: start, count: k, leaf: leaf),
                try subtreeHash(start: start + k, count: count - k, leaf: leaf)
            )
        }
    }

    /// The inclusion proof of leaf `index` in the tree of the first `size` leaves (RFC 9162 §2.1.3.1).
    ///
    /// - Parameters:
    ///   - index: The leaf, `0 ≤ index < size`.
    ///   - size: The tree size.
    ///   - subtree: The hash of leaves `start..<start+count`.
    /// - Returns: The audit path, leaf to root.
    package static func inclusionProof(
        index: Int,
        size: Int,
        subtree: (Int, Int) throws -> [UInt8]
    ) rethrows -> [[UInt8]] {
        precondition(index >= 0 && index < size, "leaf index outside the tree")
        func path(_ m: Int, _ start: Int, _ n: Int) throws -> [[UInt8]] {
            guard n > 1 else { return [] }
            let k = split(n)
            if m < k { return try path(m, start, k) + [subtree(start + k, n - k)] }
            return try path(m - k, start + k, n - k) + [subtree(start, k)]
        }
        return try path(index, 0, size)
    }

    /// The consistency proof from the tree of `first` leaves to the tree of `second` (RFC 9162 §2.1.4.1).
    ///
    /// - Parameters:
    ///   - first: The earlier size, `0 ≤ first ≤ second`.
    ///   - second: The later size.
    ///   - subtree: The hash of leaves `start..<start+count`.
    /// - Returns: The proof; empty when `first` is 0 or equals `second`.
    package static func consistencyProof(
        first: Int,
        second: Int,
        subtree: (Int, Int) throws -> [UInt8]
    ) rethrows -> [[UInt8]] {
        precondition(first >= 0 && first <= second, "consistency needs first ≤ second")
        guard first > 0, first < second else { return [] }
        func subproof(_ m: Int, _ start: Int, _ n: Int, _ complete: Bool) throws -> [[UInt8]] {
            if m == n { return complete ? [] : [try subtree(start, n)] }
            let k = split(n)
            if m <= k { return try subproof(m, start, k, complete) + [subtree(start + k, n - k)] }
            return try subproof(m - k, start + k, n - k, false) + [subtree(start, k)]
        }
        return try subproof(first, 0, second, true)
    }

    /// The root an inclusion proof leads to (RFC 9162 §2.1.3.2), or `nil` when the proof has the wrong shape.
    ///
    /// - Parameters:
    ///   - proof: The audit path.
    ///   - leafHash: The leaf's hash.
    ///   - index: Its index.
    ///   - size: The tree size.
    /// - Returns: The root to compare with a signed checkpoint's.
    package static func root(
        fromInclusionProof proof: [[UInt8]],
        leafHash: [UInt8],
        index: Int,
        size: Int
    ) -> [UInt8]? {
        guard index >= 0, index < size else { return nil }
        var fn = index
        var sn = size - 1
        var r = leafHash
        for p in proof {
            guard sn > 0, p.count == hashByteCount else { return nil }
            if fn & 1 == 1 || fn == sn {
                r = nodeHash(p, r)
                if fn & 1 == 0 {
                    while fn & 1 == 0 && fn != 0 {
                        fn >>= 1
                        sn >>= 1
                    }
                }
            } else {
                r = nodeHash(r, p)
            }
            fn >>= 1
            sn >>= 1
        }
        return sn == 0 ? r : nil
    }

    /// What a consistency proof shows about two signed roots.
    package enum ConsistencyOutcome: Sendable, Equatable {
        /// The later tree extends the earlier one.
        case consistent
        /// The proof leads to the later root, but the first `first` leaves of that tree have another root than
        /// the earlier one: proof that the two trees are inconsistent (a fork), since every proof hash enters
        /// the later root and so cannot be forged without a SHA-256 collision.
        case inconsistent(firstRootOfSecond: [UInt8])
        /// The proof has the wrong shape or does not lead to the later root: it proves nothing either way.
        case invalid
    }

    /// Checks a consistency proof between two roots (RFC 9162 §2.1.4.2) and says what it shows.
    ///
    /// - Parameters:
    ///   - proof: The proof.
    ///   - first: The earlier size.
    ///   - second: The later size.
    ///   - firstRoot: The earlier root.
    ///   - secondRoot: The later root.
    /// - Returns: Whether the proof shows consistency, shows a fork, or shows nothing.
    package static func consistency(
        _ proof: [[UInt8]],
        first: Int,
        second: Int,
        firstRoot: [UInt8],
        secondRoot: [UInt8]
    ) -> ConsistencyOutcome {
        guard first >= 0, first <= second, proof.allSatisfy({ $0.count == hashByteCount }) else { return .invalid }
        if first == second {
            guard proof.isEmpty else { return .invalid }
            return constantTimeEqual(firstRoot, secondRoot) ? .consistent : .inconsistent(firstRootOfSecond: secondRoot)
        }
        if first == 0 { return proof.isEmpty ? .consistent : .invalid }
        var path = proof
        if first & (first - 1) == 0 { path.insert(firstRoot, at: 0) }  // a complete first tree is not in the proof
        guard !path.isEmpty else { return .invalid }
        var fn = first - 1
        var sn = second - 1
        while fn & 1 == 1 {
            fn >>= 1
            sn >>= 1
        }
        var fr = path[0]
        var sr = path[0]
        for c in path.dropFirst() {
            guard sn > 0 else { return .invalid }
            if fn & 1 == 1 || fn == sn {
                fr = nodeHash(c, fr)
                sr = nodeHash(c, sr)
                while fn & 1 == 0 && fn != 0 {
                    fn >>= 1
                    sn >>= 1
                }
            } else {
                sr = nodeHash(sr, c)
            }
            fn >>= 1
            sn >>= 1
        }
        // Every hash of the path enters `sr`; `fr` is built from a subset of them. So when `sr` is the signed later
        // root, `fr` is the true root of that tree's first `first` leaves.
        guard sn == 0, constantTimeEqual(sr, secondRoot) else { return .invalid }
        return constantTimeEqual(fr, firstRoot) ? .consistent : .inconsistent(firstRootOfSecond: fr)
    }

    /// Checks a consistency proof between two roots (RFC 9162 §2.1.4.2).
    ///
    /// - Returns: Whether the later tree extends the earlier one.
    package static func isConsistent(
        _ proof: [[UInt8]],
        first: Int,
        second: Int,
        firstRoot: [UInt8],
        secondRoot: [UInt8]
    ) -> Bool {
        consistency(proof, first: first, second: second, firstRoot: firstRoot, secondRoot: secondRoot) == .consistent
    }
}
