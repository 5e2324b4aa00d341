import Testing

@testable import CustodyNode

/// The server's reading of `Range: bytes=…` (RFC 9110 section 14.1.2), which resumable pulls depend on.
struct ByteRangeTests {
    @Test func singleRangesAreServedAndEverythingElseMeansTheWhole() {
        let size = 100
        #expect(NodeServer.byteRange(nil, size: size) == .whole)
        #expect(NodeServer.byteRange("bytes=10-19", size: size) == .part(10...19))
        #expect(NodeServer.byteRange("bytes=90-", size: size) == .part(90...99))
        #expect(NodeServer.byteRange("bytes=90-500", size: size) == .part(90...99))
        #expect(NodeServer.byteRange("bytes=-5", size: size) == .part(95...99))
        #expect(NodeServer.byteRange("bytes=-500", size: size) == .part(0...99))
        #expect(NodeServer.byteRange("bytes=100-", size: size) == .unsatisfiable)
        #expect(NodeServer.byteRange("bytes=0-", size: 0) == .unsatisfiable)
        // Malformed, reversed, multiple or other units: ignored, as RFC 9110 allows.
        for header in [
            "bytes=", "bytes=-", "bytes=20-10", "bytes=a-b", "bytes=0-1,5-6", "items=0-1", "bytes=-0",
            "bytes=99999999999999999999-", "bytes=١-٢",
        ] {
            #expect(NodeServer.byteRange(header, size: size) == .whole, "\(header)")
        }
    }
}
