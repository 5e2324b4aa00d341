import CustodyArchive
import CustodyCrypto
import Dispatch
import Foundation

/// `custody bench ledger`: appends synthetic events to a fresh ledger in batches and measures appends per
/// second, proof latency at the final size, and a full audit, against a plain journal on the same entries.
package enum LedgerBenchmark {
    /// The measurements.
    package struct Result: Codable, Sendable {
        /// Entries appended.
        package var entries: Int
        /// Entries per append (one journal write + fdatasync, tiles, one signed checkpoint each).
        package var batch: Int
        /// Bytes per entry.
        package var entryBytes: Int
        /// Ledger appends per second (entries already signed).
        package var appendsPerSecond: Double
        /// Appends per second of the bare framed journal (no tiles, no checkpoint) on the first `baselineEntries`.
        package var journalOnlyAppendsPerSecond: Double
        /// Entries the baseline appended.
        package var baselineEntries: Int
        /// Ledger rate over bare-journal rate.
        package var ratioToJournalOnly: Double
        /// Event signing rate (JSON encoding + Ed25519), one core.
        package var signaturesPerSecond: Double
        /// The same with the acting member's second signature (an archive with members), one core.
        package var memberSignaturesPerSecond: Double
        /// Events signed and appended per second, archive signature only (`signedEntries` in batches).
        package var signedAppendsPerSecond: Double
        /// The same with the member's signature too: what every event of an archive with members costs.
        package var memberSignedAppendsPerSecond: Double
        /// Events the two signed-append runs appended each.
        package var signedEntries: Int
        /// Inclusion proof generation at the final size, including the checkpoint check and self-verification.
        package var inclusionProofMedianMs: Double
        /// 99th percentile of the same.
        package var inclusionProofP99Ms: Double
        /// Consistency proof generation from a random earlier size.
        package var consistencyProofMedianMs: Double
        /// The ledger part of `verify` over all entries.
        package var auditSeconds: Double
        /// Problems the audit found (must be 0).
        package var auditProblems: Int

        enum CodingKeys: String, CodingKey {
            case entries, batch
            case entryBytes = "entry_bytes"
            case appendsPerSecond = "appends_per_second"
            case journalOnlyAppendsPerSecond = "journal_only_appends_per_second"
            case baselineEntries = "baseline_entries"
            case ratioToJournalOnly = "ratio_to_journal_only"
            case signaturesPerSecond = "signatures_per_second"
            case memberSignaturesPerSecond = "member_signatures_per_second"
            case signedAppendsPerSecond = "signed_appends_per_second"
            case memberSignedAppendsPerSecond = "member_signed_appends_per_second"
            case signedEntries = "signed_entries"
            case inclusionProofMedianMs = "inclusion_proof_median_ms"
            case inclusionProofP99Ms = "inclusion_proof_p99_ms"
            case consistencyProofMedianMs = "consistency_proof_median_ms"
            case auditSeconds = "audit_seconds"
            case auditProblems = "audit_problems"
        }
    }

    /// A deterministic entry of about the size of a real `extract` or `tag` event.
    static func entry(_ i: Int) -> [UInt8] {
        let body =
            "{\"actor\":\"custody/bench000\",\"item\":\"\(String(repeating: "0", count: 32 - String(i, radix: 16).count) + String(i, radix: 16))\",\"time\":\"2026-11-29T00:00:00Z\",\"type\":\"extract\",\"v\":1}"
        return Array(body.utf8) + [0x0A] + Array(repeating: 0x41, count: 88)
    }

    static func seconds(since start: UInt64) -> Double {
        Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
    }

    /// Runs the benchmark in `directory` (created; must not hold a ledger yet).
    package static func run(
        entries count: Int,
        batch: Int,
        directory: String,
        progress: (String, Int, Int) -> Void
    ) async throws -> Result {
        let key = try SigningKey(seed: SecretBytes(randomCount: 32))
        let journal = try Journal(directory: directory + "/journal")
        let ledger = Ledger(root: directory, origin: "custody/bench000", logPublicKey: key.publicKey, journal: journal)
        try ledger.append([], logKey: key)
        var elapsed = 0.0
        var appended = 0
        while appended < count {
            let entries = (appended..<min(count, appended + batch)).map(entry)
            let start = DispatchTime.now().uptimeNanoseconds
            try ledger.append(entries, logKey: key)
            elapsed += seconds(since: start)
            appended += entries.count
            progress("append", appended, count)
        }

        // The bare journal on the same entries: frames, one write and one fdatasync a batch.
        let baselineCount = min(count, 200_000)
        let bare = try Journal(directory: directory + "/baseline")
        var bareElapsed = 0.0
        var position = JournalPosition.start
        while position.count < baselineCount {
            let entries = (position.count..<min(baselineCount, position.count + batch)).map(entry)
            let start = DispatchTime.now().uptimeNanoseconds
            let first = try bare.append(entries, hint: position)
            bareElapsed += seconds(since: start)
            position = JournalPosition(
                count: first.count + entries.count,
                offset: first.offset + Int64(entries.reduce(0) { $0 + $1.count + Journal.frameOverhead })
            )
            progress("baseline", position.count, baselineCount)
        }

        let signingCount = 20_000
        let signingStart = DispatchTime.now().uptimeNanoseconds
        for i in 0..<signingCount {
            _ = try Event(type: .extract, time: RFC3339.now(), actor: "custody/bench000", item: ItemID.random())
                .entryBytes(signedBy: key)
            if i % 1000 == 0 { progress("sign", i, signingCount) }
        }
        let signingRate = Double(signingCount) / seconds(since: signingStart)
        let member = try SigningKey(seed: SecretBytes(randomCount: 32))
        let memberID = MemberID(signingKey: member.publicKey, boxKey: member.publicKey)
        let memberStart = DispatchTime.now().uptimeNanoseconds
        for i in 0..<signingCount {
            var event = Event(type: .extract, time: RFC3339.now(), actor: "custody/bench000", item: ItemID.random())
            event.by = memberID
            _ = try event.entryBytes(signedBy: key, member: member)
            if i % 1000 == 0 { progress("sign as member", i, signingCount) }
        }
        let memberSigningRate = Double(signingCount) / seconds(since: memberStart)

        // What an event costs end to end, signed then appended, without and with the member's signature: the
        // two runs alternate batch by batch, so both see the same disk.
        let signedCount = min(count, 20_000)
        var signedElapsed = [0.0, 0.0]
        let ledgers = try ["signed", "member-signed"].map { name in
            let journal = try Journal(directory: directory + "/\(name)/journal")
            let ledger = Ledger(
                root: directory + "/\(name)",
                origin: "custody/bench000",
                logPublicKey: key.publicKey,
                journal: journal
            )
            try ledger.append([], logKey: key)
            return ledger
        }
        var signedDone = 0
        while signedDone < signedCount {
            let size = min(batch, signedCount - signedDone)
            for (run, ledger) in ledgers.enumerated() {
                let start = DispatchTime.now().uptimeNanoseconds
                let events = (0..<size).map { _ in
                    var event = Event(
                        type: .extract,
                        time: RFC3339.now(),
                        actor: "custody/bench000",
                        item: ItemID.random()
                    )
                    if run == 1 { event.by = memberID }
                    return event
                }
                // As the archive signs a batch: spread over the cores.
                let entries = try await Event.entries(of: events, signedBy: key, member: run == 1 ? member : nil)
                try ledger.append(entries, logKey: key)
                signedElapsed[run] += seconds(since: start)
            }
            signedDone += size
            progress("signed appends", signedDone, signedCount)
        }

        var generator = SystemRandomNumberGenerator()
        var inclusion: [Double] = []
        for i in 0..<1000 {
            let index = Int.random(in: 0..<count, using: &generator)
            let start = DispatchTime.now().uptimeNanoseconds
            _ = try ledger.inclusionProof(index: index, entry: entry(index))
            inclusion.append(seconds(since: start) * 1000)
            progress("prove", i + 1, 1000)
        }
        var consistency: [Double] = []
        for _ in 0..<200 {
            let start = DispatchTime.now().uptimeNanoseconds
            _ = try ledger.consistencyProof(from: Int.random(in: 0...count, using: &generator))
            consistency.append(seconds(since: start) * 1000)
        }
        inclusion.sort()
        consistency.sort()

        progress("audit", 0, 1)
        let auditStart = DispatchTime.now().uptimeNanoseconds
        let audit = try ledger.audit()
        let auditSeconds = seconds(since: auditStart)

        let rate = Double(count) / elapsed
        let bareRate = Double(baselineCount) / bareElapsed
        return Result(
            entries: count,
            batch: batch,
            entryBytes: entry(0).count,
            appendsPerSecond: rate,
            journalOnlyAppendsPerSecond: bareRate,
            baselineEntries: baselineCount,
            ratioToJournalOnly: rate / bareRate,
            signaturesPerSecond: signingRate,
            memberSignaturesPerSecond: memberSigningRate,
            signedAppendsPerSecond: Double(signedCount) / signedElapsed[0],
            memberSignedAppendsPerSecond: Double(signedCount) / signedElapsed[1],
            signedEntries: signedCount,
            inclusionProofMedianMs: inclusion[inclusion.count / 2],
            inclusionProofP99Ms: inclusion[inclusion.count * 99 / 100],
            consistencyProofMedianMs: consistency[consistency.count / 2],
            auditSeconds: auditSeconds,
            auditProblems: audit.problems.count
        )
    }
}
