import CustodyCrypto
import CustodyStorage
import Foundation

extension BundleVerification {
    /// For a bundle head, has `fetch` deliver the released objects and checks each like an object record.
    ///
    /// - Throws: What `fetch` or the delivery closure threw.
    func fetchObjects(_ fetch: ObjectFetcher?) async throws {
        if let fetch, last == .end, let grant, objects.deliveryError == nil {
            if !layoutsKnown {
                objects.expectChunkLists(BundleVerifier.chunkListLayouts(grant, origins: origins, tails: tails))
            }
            let objects = self.objects
            let releasedNow = released
            try await fetch(grant.releasedObjects) { name, bytes in
                await objects.admit(name, bytes, released: releasedNow)
            }
        }
        if let error = objects.deliveryError { throw error }
    }

    /// The report, once every record is read and every object checked, and the contents when they verify.
    func conclude() -> (BundleReport, BundleContents?) {
        report.objects += objects.checked
        report.problems += objects.sortedProblems
        guard let identity, let grant, let checkpoint, last == .end else {
            if report.problems.isEmpty { problem(.bundleDamaged, "the bundle is incomplete") }
            return (report, nil)
        }
        checkReshareChain(of: grant)
        checkCompleteness(of: grant, seen: objects.seenObjects)
        report.integrityOK = report.problems.isEmpty
        report.validNow = grant.isValid(at: time)
        if !report.validNow {
            problem(
                .grantNotValid,
                "the grant is valid from \(grant.created) until \(grant.expires), not at \(RFC3339.format(time))"
            )
        }
        if let expected { checkGranter(identity, expected: expected) }
        let contents = BundleContents(
            identity: identity,
            grant: grant,
            signedGrant: signedGrant,
            checkpoint: checkpoint,
            origins: origins,
            annotations: annotations,
            ancestors: ancestors.map(\.signed)
        )
        return (report, report.integrityOK ? contents : nil)
    }

    /// A re-share: the chain of grants back to the original holder (exactly the P records, checked as they came),
    /// each link never wider or longer, and never substituting: every object a child releases for an item is one
    /// its parent released for that item — only the re-sharer's own proved annotations (its tags, notes and
    /// import provenance, in its signed log) come in addition.
    private func checkReshareChain(of grant: Grant) {
        var child = grant
        for (depth, parent) in ancestors.enumerated() {
            let faults = reshareFaults(child, of: parent.grant, firstLink: depth == 0, permission: grant.permission)
            if !faults.isEmpty {
                problem(
                    .reshareInvalid,
                    "grant \(child.id) is not a valid re-share of \(parent.grant.id): " + faults.joined(separator: "; ")
                )
            }
            child = parent.grant
        }
    }

    /// What makes `child` not a valid re-share of `parent`: each fault as a phrase.
    private func reshareFaults(
        _ child: Grant,
        of parent: Grant,
        firstLink: Bool,
        permission: Grant.Permission
    ) -> [String] {
        var faults: [String] = []
        if !parent.reshare { faults.append("the parent does not allow re-sharing") }
        if parent.grantee.signingKey != child.granter.signingKey || parent.grantee.boxKey != child.granter.boxKey {
            faults.append("the parent was not granted to this granter")
        }
        if (RFC3339.parse(child.expires) ?? .max) > (RFC3339.parse(parent.expires) ?? 0) {
            faults.append("it outlasts the parent")
        }
        if parent.permission == .metadata && child.permission != .metadata {
            faults.append("it gives content the parent does not")
        }
        let parentItems = Dictionary(parent.items.map { ($0.id, Set($0.objects)) }) { first, _ in first }
        if !child.items.allSatisfy({ parentItems[$0.id] != nil }) {
            faults.append("it names items the parent does not")
        }
        for item in child.items {
            guard let allowed = parentItems[item.id] else { continue }
            // The granter's own additions are known only for the first link, from its proved events.
            let own = firstLink ? Set(tails[item.id] ?? []) : []
            let core = Set(origins[item.id].map { BundleVerifier.coreObjects(of: $0, permission: permission) } ?? [])
            let extra = Set(item.objects).subtracting(allowed).subtracting(own)
            if !extra.isEmpty || (!core.isEmpty && !core.isSubset(of: allowed)) {
                faults.append("it releases objects for item \(item.id) that the parent did not release")
                break
            }
        }
        return faults
    }

    /// Who granted (step 6): when the grant event names a member, the bundle must prove the granter's roster
    /// events before it — exactly as many as the version the event names, so none was left out — and the member
    /// must be current there, with a role that shares, and have signed the event.
    private func checkGrantingMember() {
        guard let identity, let (index, event, envelope) = grantEvent, event.by != nil else { return }
        var roster = Roster()
        for (position, rosterEvent, rosterEnvelope) in rosterEvents where position < index {
            do throws(Roster.Problem) {
                try roster.apply(rosterEvent, envelope: rosterEnvelope, at: position, origin: identity.origin)
            } catch {
                problem(
                    .grantMemberUnproven,
                    "the granter's roster event \(position) does not apply: \(error.detail)",
                    entry: position
                )
                return
            }
        }
        guard let claimed = event.roster, claimed == roster.version else {
            problem(
                .grantMemberUnproven,
                "the grant event names roster version \(event.roster.map(String.init) ?? "none"), but the bundle proves \(roster.version) roster events before it: the granting member cannot be checked",
                entry: index
            )
            return
        }
        if let refused = roster.check(event, envelope: envelope, at: index) {
            problem(refused.kind, "the grant: \(refused.detail)", entry: index)
            return
        }
        if let id = event.by, let member = roster.current(id) {
            report.grantedBy = BundleReport.GrantingMember(id: id.hex, name: member.name, role: member.role.rawValue)
        }
    }

    /// The grant's event is logged, every released object came, and every item is proved and laid out as
    /// documented (steps 6 and 8).
    private func checkCompleteness(of grant: Grant, seen: Set<ObjectName>) {
        if !grantLogged {
            problem(.grantUnlogged, "the bundle does not prove that the grant is in the granter's log")
        }
        checkGrantingMember()
        for name in Set(released.keys).subtracting(seen).sorted() {
            problem(.objectMissing, "an object the grant releases is not in the bundle", object: name.hex)
        }
        for item in grant.items {
            guard let origin = origins[item.id], origin.objects != nil else {
                problem(
                    .itemUnproven,
                    "no ingest event of the item is proved in the granter's log",
                    item: item.id.hex
                )
                continue
            }
            // The documented layout (SHARING.md section 2): the origin's objects in order, then every annotation
            // object its proved events name, in log order; chunks behind a chunk list are checked against the
            // list when it arrives.
            if let fault = BundleVerifier.layoutFault(
                item,
                origin: origin,
                tail: tails[item.id] ?? [],
                permission: grant.permission
            ) {
                problem(.scopeMismatch, fault, item: item.id.hex)
            }
            if grant.permission == .metadata, item.keys.content != nil {
                problem(.scopeMismatch, "a metadata-only grant carries a content key", item: item.id.hex)
            }
        }
    }

    /// The bundle's granter is the identity the caller named (`--granter`).
    private func checkGranter(_ identity: Identity, expected: Identity) {
        report.granterGiven = true
        report.granterTrusted =
            expected.signingKey == identity.signingKey && expected.boxKey == identity.boxKey
            && expected.logVerifierKey == identity.logVerifierKey
        if !report.granterTrusted {
            problem(
                .granterUntrusted,
                "the bundle's granter (\(identity.fingerprint)) is not the given identity (\(expected.fingerprint))"
            )
        }
    }
}
