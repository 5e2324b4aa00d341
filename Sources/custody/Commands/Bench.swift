import ArgumentParser
import CustodyArchive
import CustodyCrypto
import Foundation

extension CustodyCommand {
    struct Bench: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Micro-benchmarks that informed format choices (see also Scripts/bench-ingest.py).",
            discussion:
                "sha256: swift-crypto (BoringSSL) vs libsodium SHA-256 on the same buffer, as MB/s and their ratio."
        )

        @Argument(help: "What to measure: sha256.") var what: String = "sha256"
        @Option(help: "MiB to hash.") var mebibytes = 512

        func run() throws {
            try runReportingErrors {
                guard what == "sha256" else {
                    throw ArchiveError(.usage, "unknown benchmark \(what)", fix: "use sha256")
                }
                let buffer = randomBytes(1 << 20)
                func measure(_ body: () -> Void) -> Double {
                    let start = DispatchTime.now().uptimeNanoseconds
                    body()
                    let seconds = Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
                    return Double(mebibytes) * 1.048576 / seconds
                }
                let crypto = measure {
                    var h = SHA256Hasher()
                    for _ in 0..<mebibytes { h.update(buffer) }
                    _ = h.finalize()
                }
                let sodium = measure {
                    buffer.withUnsafeBytes { b in for _ in 0..<mebibytes { _ = SHA256Hasher.sodiumHash(b) } }
                }
                print(
                    String(
                        format: "sha256 swift-crypto %.0f MB/s, libsodium %.0f MB/s, ratio %.2f",
                        crypto,
                        sodium,
                        crypto / sodium
                    )
                )
            }
        }
    }
}
