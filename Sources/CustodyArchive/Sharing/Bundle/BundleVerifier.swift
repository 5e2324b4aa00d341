import CustodyCrypto
import CustodyStorage
import Foundation

/// Checks a bundle as a stream: no keys and no archive needed (Docs/SHARING.md section 4).
///
/// One pass reads the records in order (``BundleVerification``): each kind of record has its own check, objects
/// are hashed on worker threads (``ObjectAdmission``), and what can only be judged once every record is read —
/// the re-share chain, the grant's completeness and validity, the granter — is concluded at the end.
package enum BundleVerifier {
    /// The grant and the granter's events, read from the records before the first object — unchecked but for
    /// signatures — so an import can plan its work before the verifying pass. `nil` when they cannot be read.
    static func preview(
        path: String
    ) -> (grant: Grant, signed: [UInt8], origins: [ItemID: Event], annotations: Set<ObjectName>)? {
        guard let reader = try? BundleReader(path: path) else { return nil }
        var signingKey: [UInt8]?
        var grant: (Grant, [UInt8])?
        var origins: [ItemID: Event] = [:]
        var annotations = Set<ObjectName>()
        while let record = try? reader.next(), record.kind != .object, record.kind != .end {
            switch record.kind {
            case .identity:
                signingKey = (try? JSONDecoder().decode(Identity.self, from: Data(record.payload)))
                    .flatMap { Encoding.bytes(base64: $0.signingKey) }
            case .grant:
                grant = (try? Grant.parse(record.payload)).map { ($0, record.payload) }
            case .entry:
                guard let signingKey, let parsed = BundleFormat.EntryRecord.parse(record.payload),
                    let event = try? Event.parse(parsed.entry, publicKey: signingKey), let item = event.item
                else { continue }
                if event.type == .ingest || event.type == .import { origins[item] = origins[item] ?? event }
                if let ref = event.annotation, event.type == .tag || event.type == .note {
                    annotations.insert(ref.name)
                }
            case .ancestor, .checkpoint, .object, .end: continue
            }
        }
        guard let (parsed, signed) = grant else { return nil }
        return (parsed, signed, origins, annotations)
    }

    /// The text of the bundle's `C` record (the granter's checkpoint), unchecked: a pull compares it with the
    /// witnessed log before importing. `nil` when the records before it cannot be read.
    package static func checkpointNote(path: String) -> String? {
        guard let reader = try? BundleReader(path: path) else { return nil }
        while let record = try? reader.next() {
            switch record.kind {
            case .identity, .grant, .ancestor: continue
            case .checkpoint: return String(validating: record.payload, as: UTF8.self)
            case .entry, .object, .end: return nil
            }
        }
        return nil
    }

    /// Verifies the bundle at `path`.
    ///
    /// - Parameters:
    ///   - path: The bundle.
    ///   - expected: The identity the granter should have (`--granter`); `nil`: the bundle's own is not trusted.
    ///   - witnesses: Signing keys by origin, to check the checkpoint's cosignatures with (others are listed as
    ///     unchecked).
    ///   - expectedGrant: The grant id the caller asked for (a pull): another grant stops the check at once.
    ///   - time: The time to check validity at (Unix seconds).
    ///   - fetch: For a bundle head (a bundle without object records, as a node serves it): called once the head's
    ///     records are read, with the objects the grant releases; it delivers each object's bytes from elsewhere
    ///     (a peer, over the network), from any thread, and each delivered object is checked exactly like an
    ///     object record. Its errors are thrown.
    ///   - object: Called with each object that checks (name and bytes), for importing: concurrently, from
    ///     child tasks, in no particular order.
    /// - Returns: The report, and the contents when the integrity checks pass.
    /// - Throws: ``ArchiveError`` when the file cannot be opened or is not a bundle at all; what `fetch` throws.
    package static func verify(
        path: String,
        granter expected: Identity? = nil,
        witnesses: [String: [UInt8]] = [:],
        expectedGrant: String? = nil,
        at time: Int,
        fetch: ObjectFetcher? = nil,
        object: (@Sendable (ObjectName, [UInt8]) async throws -> Void)? = nil
    ) async throws -> (BundleReport, BundleContents?) {
        let reader = try BundleReader(path: path)
        let pass = BundleVerification(
            granter: expected,
            witnesses: witnesses,
            expectedGrant: expectedGrant,
            time: time,
            objects: ObjectAdmission(deliver: object)
        )
        let objects = pass.objects
        // Objects are checked (and delivered) by child tasks while the reader goes on, at most `width` at once.
        await withTaskGroup(of: Void.self) { group in
            var inFlight = 0
            await pass.read(reader) { name, bytes, released in
                if inFlight >= ObjectAdmission.width {
                    await group.next()
                    inFlight -= 1
                }
                group.addTask { await objects.admit(name, bytes, released: released) }
                inFlight += 1
            }
        }
        try await pass.fetchObjects(fetch)
        return pass.conclude()
    }
}
