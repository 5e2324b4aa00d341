/// Padmé padding (Nikitin et al., PETS 2019): rounds a length up so that at most O(log log L) bits of it show.
package enum Padme {
    /// The padded length for `length` (at least `minimum`).
    ///
    /// For L ≥ 2: E = ⌊log2 L⌋, S = ⌊log2 E⌋ + 1, and the low E − S bits of L are rounded up to zero.
    /// The overhead is at most 12 %, and about 3 % for files of a megabyte or more.
    package static func paddedLength(_ length: Int, minimum: Int = 0) -> Int {
        let l = max(length, minimum)
        guard l >= 2 else { return l }
        let e = Int.bitWidth - 1 - l.leadingZeroBitCount  // ⌊log2 L⌋
        let s = Int.bitWidth - 1 - e.leadingZeroBitCount + 1  // ⌊log2 E⌋ + 1
        let lastBits = e - s
        guard lastBits > 0 else { return l }
        let mask = (1 << lastBits) - 1
        return (l + mask) & ~mask
    }
}

/// The 8-byte big-endian encoding of `value`, used wherever a format writes a 64-bit number
/// (sizes in commitments, chunk lists and padding keys; cosignature timestamps; bundle record lengths).
func bigEndianBytes(_ value: UInt64) -> [UInt8] {
    (0..<8).map { UInt8(truncatingIfNeeded: value >> (56 - 8 * $0)) }
}

/// The 4-byte big-endian encoding of `value` (journal frame and sealed-part lengths).
func bigEndianBytes(_ value: UInt32) -> [UInt8] {
    (0..<4).map { UInt8(truncatingIfNeeded: value >> (24 - 8 * $0)) }
}

/// The big-endian number in `bytes` (at most 8 of them), the inverse of ``bigEndianBytes(_:)-(UInt64)``.
func bigEndianValue(_ bytes: some Collection<UInt8>) -> UInt64 {
    precondition(bytes.count <= 8, "more than 8 bytes for a 64-bit number")
    return bytes.reduce(0) { $0 << 8 | UInt64($1) }
}
