import CustodyCrypto
import CustodyStorage
import Foundation

/// What an administrator signs to approve a roster change (Docs/LEDGER.md section 18.1): lines, each ending in
/// `"\n"` — `custody/roster/v1`, the log origin, the roster version the change applies to (how many roster events
/// precede it), the event type, the subject's id, name, role, signing key and box key, and the threshold the
/// event sets (`-` when it sets none); for a `recovery-split`, whose subject is empty, the five subject lines
/// are `-` and an eleventh line is its recovery key.
package enum RosterStatement {
    /// The statement of `event` in the log of `origin`; `nil` when the event is no roster change or lacks a field.
    package static func bytes(of event: Event, origin: String) -> [UInt8]? {
        guard event.type.changesRoster, let version = event.roster else { return nil }
        var lines = ["custody/roster/v1", origin, String(version), event.type.rawValue]
        if event.type == .recoverySplit {
            guard event.subject == nil, let key = event.recoveryKey else { return nil }
            lines += ["-", "-", "-", "-", "-", event.threshold.map(String.init) ?? "-", key]
        } else {
            guard let subject = event.subject else { return nil }
            lines += [
                subject.id.hex, subject.name, subject.role.rawValue, subject.signingKey, subject.boxKey,
                event.threshold.map(String.init) ?? "-",
            ]
        }
        return Array(lines.map { $0 + "\n" }.joined().utf8)
    }

    /// An approval of `event` by `member`'s key.
    package static func approval(of event: Event, origin: String, by id: MemberID, key: SigningKey) -> Event.Approval? {
        bytes(of: event, origin: origin).map {
            Event.Approval(by: id, signature: Encoding.base64(key.signature(for: $0)))
        }
    }
}

/// The roster of an archive as its log builds it: who was a member, with which role, from which log entry to
/// which — rebuilt by anyone from the public log alone (Docs/LEDGER.md section 18).
///
/// The one place the rules of the roster live: ``apply(_:envelope:at:origin:)`` admits a roster event or says why
/// not, and ``check(_:envelope:at:)`` says whether any other event was signed by a member allowed to take it.
/// `verify`, the index and the commands all ask it.
package struct Roster: Codable, Sendable, Equatable {
    /// A member and when they were in the roster.
    package struct Entry: Codable, Sendable, Equatable {
        /// The member as last changed.
        package var member: Member
        /// The log index of the event that added them.
        package var added: Int
        /// The log index of the event that removed them, if any.
        package var removed: Int?
    }

    /// Every member there has been, current or removed.
    package private(set) var entries: [MemberID: Entry] = [:]
    /// How many roster events the log holds so far.
    package private(set) var version = 0
    /// How many administrators' approvals a roster change needs.
    package private(set) var threshold = 1
    /// The log index of the first roster event: events from there on must name their member.
    package private(set) var foundedAt: Int?
    /// The recovery key of the latest `recovery-split`, base64: a `recovery` event must be signed by it.
    package private(set) var recoveryKey: String?

    /// The largest roster (bounds what a hostile log can make the index hold).
    package static let maxMembers = 10_000
    /// The largest threshold.
    package static let maxThreshold = 16

    package init() {}

    /// Whether the log has a roster yet.
    package var isFounded: Bool { foundedAt != nil }

    /// The current member with `id`, if any.
    package func current(_ id: MemberID) -> Member? {
        guard let entry = entries[id], entry.removed == nil else { return nil }
        return entry.member
    }

    /// The current members, by name.
    package var currentMembers: [Member] {
        entries.values.filter { $0.removed == nil }.map(\.member).sorted { $0.name < $1.name }
    }

    /// The current member named `name`, if any.
    package func current(named name: String) -> Member? {
        currentMembers.first { $0.name == name }
    }

    /// The current administrators.
    var admins: [Member] { currentMembers.filter { $0.role == .admin } }

    /// How many approvals a roster change needs now: the threshold, or every current administrator while there
    /// are fewer than that (a roster founded with a threshold of 2 starts with one administrator, who adds the
    /// others).
    package var neededApprovals: Int { min(threshold, max(1, admins.count)) }

    /// Why an event breaks the roster's rules.
    package struct Problem: Error, Sendable, Equatable {
        /// Which rule.
        package var kind: VerifyProblem.Kind
        /// What is wrong, for a person.
        package var detail: String
        /// Whether more administrators' approvals would make it right.
        package var lacksApprovals = false
    }

    /// Checks an event that is not a roster change against the roster in force at its position.
    ///
    /// Before the roster is founded no event names a member; from then on each must name a current member,
    /// carry that member's signature, and be of a kind the member's role allows.
    ///
    /// - Returns: What is wrong, or `nil`.
    package func check(_ event: Event, envelope: SignedEnvelope, at index: Int) -> Problem? {
        guard let foundedAt, index > foundedAt else {
            return event.by.map {
                Problem(kind: .memberUnknown, detail: "names member \($0) before the archive had a roster")
            }
        }
        guard let id = event.by else {
            return Problem(kind: .memberSignatureMissing, detail: "a \(event.type) event names no member")
        }
        if event.type == .grant, event.roster == nil {
            return Problem(
                kind: .rosterChangeInvalid,
                detail: "a grant event by a member names no roster version (a grantee could not check who granted)"
            )
        }
        if let claimed = event.roster, claimed != version {
            return Problem(
                kind: .rosterChangeInvalid,
                detail: "a \(event.type) event claims roster version \(claimed); the roster is at \(version) there"
            )
        }
        return check(id, signed: envelope, for: Member.Action.of(event.type), kind: event.type)
    }

    private func check(
        _ id: MemberID,
        signed envelope: SignedEnvelope,
        for action: Member.Action?,
        kind: Event.Kind
    )
        -> Problem?
    {
        guard let entry = entries[id] else {
            return Problem(kind: .memberUnknown, detail: "a \(kind) event is signed by \(id), who is not a member")
        }
        guard entry.removed == nil else {
            return Problem(
                kind: .memberRemoved,
                detail:
                    "a \(kind) event is signed by \(entry.member.name) (\(id)), removed at entry \(entry.removed ?? 0)"
            )
        }
        guard let key = entry.member.signingKeyBytes,
            envelope.isCosigned(domain: Event.memberSignatureDomain, by: key)
        else {
            return Problem(
                kind: .memberSignatureInvalid,
                detail: "a \(kind) event names \(entry.member.name) (\(id)) but is not signed by their key"
            )
        }
        if let action, !entry.member.role.allows(action) {
            return Problem(
                kind: .roleNotAllowed,
                detail:
                    "a \(kind) event by \(entry.member.name) (\(id)), whose role \(entry.member.role) does not allow \(action)"
            )
        }
        return nil
    }

    /// Admits a roster event at log index `index`, or says why it breaks the rules (and leaves the roster as it
    /// was). With `countingApprovals` `false`, every rule is checked but the number of approvals (for a proposal
    /// that others will approve).
    package mutating func apply(
        _ event: Event,
        envelope: SignedEnvelope,
        at index: Int,
        origin: String,
        countingApprovals: Bool = true
    ) throws(Problem) {
        func refuse(_ why: String) -> Problem {
            Problem(kind: .rosterChangeInvalid, detail: "a \(event.type) event \(why)")
        }
        if event.type == .recoverySplit {
            return try applyRecoverySplit(
                event,
                envelope: envelope,
                origin: origin,
                countingApprovals: countingApprovals
            )
        }
        guard let by = event.by else {
            throw Problem(kind: .memberSignatureMissing, detail: "a \(event.type) event names no member")
        }
        guard let subject = event.subject else { throw refuse("lacks its subject") }
        if let why = subject.problem { throw refuse("names a member record that is not valid: \(why)") }
        guard event.roster == version else {
            throw refuse("is bound to roster version \(event.roster.map(String.init) ?? "none"), not \(version)")
        }
        guard let statement = RosterStatement.bytes(of: event, origin: origin) else { throw refuse("is incomplete") }
        let approvals = event.approvals ?? []
        guard approvals.count <= Self.maxThreshold * 4 else { throw refuse("carries too many approvals") }
        if !isFounded {
            // The founding event: an administrator adds themselves, under the archive's own signature.
            guard event.type == .memberAdd, subject.role == .admin, by == subject.id else {
                throw refuse("founds the roster but is not an administrator adding themselves")
            }
            guard let threshold = event.threshold, (1...Self.maxThreshold).contains(threshold) else {
                throw refuse("founds the roster without a threshold from 1 to \(Self.maxThreshold)")
            }
            guard let key = subject.signingKeyBytes,
                envelope.isCosigned(domain: Event.memberSignatureDomain, by: key),
                approvals.count == 1, isApproval(approvals[0], of: statement, by: subject)
            else { throw refuse("is not signed by the member it adds, with their approval and no other") }
            entries[subject.id] = Entry(member: subject, added: index)
            self.threshold = threshold
            foundedAt = index
            version += 1
            return
        }
        if event.type == .recovery {
            // Enrolled by whoever rebuilt the recovery seed: an administrator new to the roster adds themselves,
            // signed by the recovery key the latest split published instead of by administrators.
            guard let recoveryKey, let key = Encoding.bytes(base64: recoveryKey),
                let signature = event.recoverySignature.flatMap({ Encoding.bytes(base64: $0) }),
                SigningKey.isValidSignature(signature, for: statement, publicKey: key)
            else { throw refuse("is not signed by the recovery key of the latest recovery split") }
            guard subject.role == .admin, by == subject.id, approvals.isEmpty, event.threshold == nil,
                let own = subject.signingKeyBytes, envelope.isCosigned(domain: Event.memberSignatureDomain, by: own)
            else { throw refuse("is not an administrator adding themselves, signed by their own key") }
            guard entries[subject.id] == nil, current(named: subject.name) == nil else {
                throw refuse("adds a member id or name the roster already has")
            }
            guard entries.count < Self.maxMembers else { throw refuse("exceeds \(Self.maxMembers) members") }
            entries[subject.id] = Entry(member: subject, added: index)
            version += 1
            return
        }
        if let problem = check(by, signed: envelope, for: .manageMembers, kind: event.type) {
            throw Problem(kind: problem.kind, detail: problem.detail)
        }
        try checkApprovals(approvals, of: statement, by: by, counting: countingApprovals, refuse: refuse)
        guard event.threshold == nil else { throw refuse("changes the threshold, which only the founding event sets") }
        var next = self
        switch event.type {
        case .memberAdd:
            guard entries[subject.id] == nil else { throw refuse("adds \(subject.id), who was a member before") }
            guard current(named: subject.name) == nil else {
                throw refuse("adds a second current member named \(subject.name)")
            }
            guard entries.count < Self.maxMembers else { throw refuse("exceeds \(Self.maxMembers) members") }
            next.entries[subject.id] = Entry(member: subject, added: index)
        case .memberRole:
            guard let member = current(subject.id), member.name == subject.name,
                member.signingKey == subject.signingKey,
                member.boxKey == subject.boxKey, member.role != subject.role
            else { throw refuse("changes the role of \(subject.id), who is not a current member with another role") }
            next.entries[subject.id]?.member.role = subject.role
        case .memberRemove:
            guard current(subject.id) == subject else {
                throw refuse("removes \(subject.id), who is not a current member as named")
            }
            next.entries[subject.id]?.removed = index
        default:
            throw refuse("is of no roster kind")
        }
        let keep = min(threshold, admins.count)
        guard next.admins.count >= max(1, keep) else {
            throw refuse(
                "would leave \(next.admins.count) administrators; the roster keeps at least \(max(1, keep)) (its threshold is \(threshold))"
            )
        }
        next.version += 1
        self = next
    }

    /// Admits a `recovery-split`: approved like any roster change; from then on its key signs recoveries.
    private mutating func applyRecoverySplit(
        _ event: Event,
        envelope: SignedEnvelope,
        origin: String,
        countingApprovals: Bool
    ) throws(Problem) {
        func refuse(_ why: String) -> Problem {
            Problem(kind: .rosterChangeInvalid, detail: "a \(event.type) event \(why)")
        }
        guard isFounded else { throw refuse("comes before the roster was founded") }
        guard let by = event.by else {
            throw Problem(kind: .memberSignatureMissing, detail: "a \(event.type) event names no member")
        }
        guard event.subject == nil, event.threshold == nil,
            let key = event.recoveryKey, Encoding.bytes(base64: key)?.count == 32
        else { throw refuse("lacks its member or a 32-byte recovery key, or has fields it must not") }
        guard event.roster == version else {
            throw refuse("is bound to roster version \(event.roster.map(String.init) ?? "none"), not \(version)")
        }
        if let problem = check(by, signed: envelope, for: .manageMembers, kind: event.type) {
            throw Problem(kind: problem.kind, detail: problem.detail)
        }
        guard let statement = RosterStatement.bytes(of: event, origin: origin) else { throw refuse("is incomplete") }
        let approvals = event.approvals ?? []
        guard approvals.count <= Self.maxThreshold * 4 else { throw refuse("carries too many approvals") }
        try checkApprovals(approvals, of: statement, by: by, counting: countingApprovals, refuse: refuse)
        recoveryKey = key
        version += 1
    }

    /// Rule 2's approvals: valid signatures over `statement` by current administrators, none twice, `by` among
    /// them, and (when `counting`) as many as the roster needs now.
    private func checkApprovals(
        _ approvals: [Event.Approval],
        of statement: [UInt8],
        by: MemberID,
        counting: Bool,
        refuse: (String) -> Problem
    ) throws(Problem) {
        var approvers = Set<MemberID>()
        for approval in approvals {
            guard let admin = current(approval.by), admin.role == .admin, isApproval(approval, of: statement, by: admin)
            else { throw refuse("carries an approval by \(approval.by) that is not a valid administrator's") }
            guard approvers.insert(admin.id).inserted else {
                throw refuse("carries two approvals by \(approval.by)")
            }
        }
        guard approvers.contains(by) else { throw refuse("is not approved by the member who recorded it") }
        guard approvers.count >= neededApprovals || !counting else {
            var problem = refuse(
                "has \(approvers.count) administrators' approvals; the roster needs \(neededApprovals)"
            )
            problem.lacksApprovals = true
            throw problem
        }
    }

    func isApproval(_ approval: Event.Approval, of statement: [UInt8], by member: Member) -> Bool {
        guard approval.by == member.id, let key = member.signingKeyBytes,
            let signature = Encoding.bytes(base64: approval.signature)
        else { return false }
        return SigningKey.isValidSignature(signature, for: statement, publicKey: key)
    }

    /// Replays the roster events among `entries` (journal entries from `start` on) onto this roster, skipping those
    /// that break its rules (as `verify` reports them).
    package mutating func replay(_ entry: JournalEntry, publicKey: [UInt8], origin: String) {
        // Most entries are no roster change: a byte search skips them before any parsing or signature check.
        // Custody writes the type unescaped; an entry that spells it otherwise is skipped here, which can only
        // leave a forged change out of a command's view (verify parses every entry and reports it).
        guard Self.mayChangeRoster(entry.bytes),
            let (event, envelope) = try? Event.parseEnvelope(entry.bytes, publicKey: publicKey),
            event.type.changesRoster
        else { return }
        try? apply(event, envelope: envelope, at: entry.index, origin: origin)
    }

    private static let rosterTypeMarkers = [Array("\"type\":\"member-".utf8), Array("\"type\":\"recovery".utf8)]

    /// Whether `entry`'s bytes name a roster type as Custody writes it.
    static func mayChangeRoster(_ entry: [UInt8]) -> Bool {
        rosterTypeMarkers.contains { marker in
            guard entry.count >= marker.count else { return false }
            var i = 0
            let last = entry.count - marker.count
            while i <= last {
                if entry[i] == marker[0] {
                    var j = 1
                    while j < marker.count && entry[i + j] == marker[j] { j += 1 }
                    if j == marker.count { return true }
                }
                i += 1
            }
            return false
        }
    }
}

extension VerifyProblem.Kind {
    /// An event names a member the roster does not have (or names one before there is a roster).
    package static let memberUnknown = Self(rawValue: "member-unknown")
    /// An event is signed by a member removed from the roster before it.
    package static let memberRemoved = Self(rawValue: "member-removed")
    /// An event's member signature does not verify against the roster's key for that member.
    package static let memberSignatureInvalid = Self(rawValue: "member-signature-invalid")
    /// An event after the roster was founded names no member.
    package static let memberSignatureMissing = Self(rawValue: "member-signature-missing")
    /// An event is of a kind its member's role does not allow.
    package static let roleNotAllowed = Self(rawValue: "role-not-allowed")
    /// A roster event breaks the roster's rules (approvals, threshold, subject).
    package static let rosterChangeInvalid = Self(rawValue: "roster-change-invalid")
}
