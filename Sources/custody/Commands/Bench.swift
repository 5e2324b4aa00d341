import ArgumentParser
import CustodyArchive
import CustodyBenchmarks
import CustodyCrypto
import CustodyStorage
import Foundation

extension CustodyCommand {
    struct Bench: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Benchmarks: the custody ledger at scale, and hashing (see also Scripts/bench-ingest.py).",
            discussion: """
                ledger: appends --entries synthetic events to a fresh ledger in a temporary folder, --batch per append \
                (each a journal write + fdatasync, tiles and a signed checkpoint), and reports appends/s (and the \
                bare journal's rate on the same entries), event signing rate, inclusion and consistency proof \
                latency at the final size, and the time of the ledger part of verify. Build with -c release.
                sha256: swift-crypto (BoringSSL) vs libsodium SHA-256 on the same buffer, as MB/s and their ratio.
                """
        )

        @Argument(help: "What to measure: ledger or sha256.") var what: String = "sha256"
        @Option(help: "sha256: MiB to hash.") var mebibytes = 512
        @Option(help: "ledger: events to append.") var entries = 1_000_000
        @Option(help: "ledger: events per append.") var batch = 1000
        @Option(help: "ledger: the folder to work in (default: a new temporary one, removed afterwards).")
        var directory: String?
        @Flag(help: "Print JSON.") var json = false

        func run() async throws {
            try await runReportingErrorsAsync {
                if what == "ledger" {
                    try await runLedger()
                    return
                }
                guard what == "sha256" else {
                    throw ArchiveError(.usage, "unknown benchmark \(what)", fix: "use ledger or sha256")
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

        private func runLedger() async throws {
            guard entries >= 1, entries <= 100_000_000, batch >= 1, batch <= 1_000_000 else {
                throw ArchiveError(
                    .usage,
                    "--entries or --batch out of range",
                    fix: "use 1 ≤ entries ≤ 10^8, 1 ≤ batch ≤ 10^6"
                )
            }
            let folder = directory ?? NSTemporaryDirectory() + "custody-bench-ledger-\(getpid())"
            guard !FileManager.default.fileExists(atPath: folder + "/journal") else {
                throw ArchiveError(.cannotCreate, "\(folder) already holds a ledger", fix: "give an empty --directory")
            }
            defer { if directory == nil { try? FileManager.default.removeItem(atPath: folder) } }
            let bar = ProgressBar(enabled: Terminal.stderrIsTTY && !json, label: "bench")
            let result = try await LedgerBenchmark.run(entries: entries, batch: batch, directory: folder) {
                stage,
                done,
                total in
                bar.update(done: done, total: total, unit: stage)
            }
            bar.finish()
            if json {
                try printJSON(result)
                return
            }
            print(
                String(
                    format: "ledger: %d entries of %d bytes, %d per append",
                    result.entries,
                    result.entryBytes,
                    result.batch
                )
            )
            print(
                String(
                    format: "  appends         %.0f/s (bare journal %.0f/s on %d entries: ratio %.2f)",
                    result.appendsPerSecond,
                    result.journalOnlyAppendsPerSecond,
                    result.baselineEntries,
                    result.ratioToJournalOnly
                )
            )
            print(
                String(
                    format: "  event signing   %.0f/s (one core); with the member's signature too %.0f/s",
                    result.signaturesPerSecond,
                    result.memberSignaturesPerSecond
                )
            )
            print(
                String(
                    format: "  signed appends  %.0f/s; with the member's signature %.0f/s (ratio %.2f, %d events each)",
                    result.signedAppendsPerSecond,
                    result.memberSignedAppendsPerSecond,
                    result.memberSignedAppendsPerSecond / result.signedAppendsPerSecond,
                    result.signedEntries
                )
            )
            print(
                String(
                    format: "  inclusion proof median %.2f ms, p99 %.2f ms; consistency proof median %.2f ms",
                    result.inclusionProofMedianMs,
                    result.inclusionProofP99Ms,
                    result.consistencyProofMedianMs
                )
            )
            print(String(format: "  full ledger audit %.1f s, %d problems", result.auditSeconds, result.auditProblems))
        }
    }
}
