import Foundation

extension NodeServer {
    /// What a `Range` header asks of a representation.
    enum ByteRange: Equatable {
        case whole
        case unsatisfiable
        case part(ClosedRange<Int>)
    }

    /// One `Range: bytes=…` of RFC 9110 (`a-b`, `a-`, `-n`); a missing, multiple or malformed range means the
    /// whole representation (RFC 9110 lets a server ignore Range), a range starting past the end is unsatisfiable.
    static func byteRange(_ header: String?, size: Int) -> ByteRange {
        guard let header, header.hasPrefix("bytes="), !header.contains(",") else { return .whole }
        let spec = header.dropFirst(6).trimmingCharacters(in: .whitespaces)
        let parts = spec.split(separator: "-", maxSplits: 1, omittingEmptySubsequences: false)
        // ASCII digits only (`Int` alone would also take a sign: `bytes=+5-`), at most 18 so nothing overflows.
        guard parts.count == 2,
            parts.allSatisfy({ $0.utf8.count <= 18 && $0.utf8.allSatisfy { (0x30...0x39).contains($0) } })
        else { return .whole }
        if parts[0].isEmpty {
            guard let suffix = Int(parts[1]), suffix > 0 else { return .whole }
            return size == 0 ? .unsatisfiable : .part(max(0, size - suffix)...(size - 1))
        }
        guard let start = Int(parts[0]), start >= 0 else { return .whole }
        let end = parts[1].isEmpty ? size - 1 : Int(parts[1]).map { min($0, size - 1) }
        guard let end else { return .whole }
        guard start < size else { return .unsatisfiable }
        guard end >= start else { return .whole }
        return .part(start...end)
    }
}
