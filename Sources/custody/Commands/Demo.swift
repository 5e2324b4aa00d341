import ArgumentParser
import CustodyArchive
import CustodyCrypto
import CustodyNode
import CustodyStorage
import Foundation
import Logging

extension CustodyCommand {
    struct Demo: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "A narrated run of the whole local flow in a temporary folder.",
            discussion: """
                Creates an archive, ingests generated sample evidence, lists, searches, extracts, verifies, then flips \
                one byte of a stored object and shows verify catching it. Then tags and annotates an item, checks an \
                inclusion proof against the signed checkpoint, has a second body witness the log, and shows a forged \
                history refused by the witness and a rewritten journal caught by verify. Finally a second body \
                receives a scoped grant as a bundle, an auditor verifies it with no keys, and the body imports it and \
                extracts an item; then the two exchange online over loopback (serve, peer add, pull) and cosign each \
                other's checkpoints. Last, a team: an investigator and field staff join, each signs what they do, field \
                staff cannot read, the investigator leaves, and a recovery split restores an administrator. Exits 0 \
                when every step behaved as expected.
                """
        )

        @Option(help: "Work in this folder instead of a new temporary one (must not exist).") var directory: String?
        @Flag(help: "Keep the demo folder afterwards.") var keep = false

        func run() async throws {
            try await runReportingErrorsAsync { try await runDemo() }
        }

        private func step(_ text: String) { printBlock("\n== \(text)") }

        private func runDemo() async throws {
            let base = directory ?? NSTemporaryDirectory() + "custody-demo-" + Encoding.hex(randomBytes(4))
            guard !FileManager.default.fileExists(atPath: base) else {
                throw ArchiveError(.cannotCreate, "\(base) already exists", fix: "give a new --directory")
            }
            try FileManager.default.createDirectory(atPath: base, withIntermediateDirectories: true)
            defer {
                if keep {
                    printBlock("\n(demo folder kept at \(base))")
                } else {
                    try? FileManager.default.removeItem(atPath: base)
                }
            }
            let archivePath = base + "/archive"
            let upload = base + "/field-upload"

            step("1. custody init --name \"Commission of Inquiry X (demo)\"")
            let passphrase = try SecretBytes(copying: Array("demo passphrase — never use for evidence".utf8))
            let archive = try await Archive.create(
                at: archivePath,
                name: "Commission of Inquiry X (demo)",
                passphrase: passphrase
            )
            let identity = try archive.identity()
            printBlock("archive at \(archivePath)\norigin \(identity.origin)\nfingerprint \(identity.fingerprint)")

            step("2. generate sample evidence in \(upload)")
            try FileManager.default.createDirectory(atPath: upload + "/statements", withIntermediateDirectories: true)
            let samples: [(String, [UInt8])] = [
                (
                    "statements/W-17.txt",
                    Array("Witness W-17: the detainees were moved at night; filmed from the roof.\n".utf8)
                ),
                ("statements/W-18-ar.txt", Array("شهادة: نقل المحتجزين ليلا من حلب\n".utf8)),
                ("statements/W-19-ru.txt", Array("Показания: задержанных перевезли ночью.\n".utf8)),
                (
                    "statements/W-20-es.txt",
                    Array("Declaración: detención en la estación de policía de Canción.\n".utf8)
                ),
                ("photo-0001.png", [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A] + randomBytes(40_000)),
                ("roof-video.mp4", [0, 0, 0, 0x18] + Array("ftypmp42".utf8) + randomBytes(3 << 20)),
                ("roof-video-copy.mp4", []),
            ]
            for (name, bytes) in samples where !bytes.isEmpty {
                _ = FileManager.default.createFile(atPath: "\(upload)/\(name)", contents: Data(bytes))
            }
            try FileManager.default.copyItem(
                atPath: upload + "/roof-video.mp4",
                toPath: upload + "/roof-video-copy.mp4"
            )
            print("6 files: statements in Arabic, Russian, Spanish and English, a photo, a 3 MiB video and its copy")

            step("3. custody ingest field-upload/ --case COI-2026-04 --tag detention --tag video --location Aleppo …")
            var options = IngestOptions()
            options.fields.caseID = "COI-2026-04"
            options.fields.tags = ["detention", "video"]
            options.fields.source = "witness W-17"
            options.fields.collectedAt = "2026-03-02T10:00:00Z"
            options.fields.location = "Aleppo"
            options.fields.consent = "share-with-mechanisms"
            options.fields.note = "filmed from the roof"
            options.fields.meta = ["device": "Pixel7"]
            var report = try await archive.ingest(
                [
                    upload + "/roof-video.mp4", upload + "/roof-video-copy.mp4", upload + "/photo-0001.png",
                    upload + "/statements/W-17.txt",
                ],
                options: options
            )
            print("… and the statements, each with a note in its own language:")
            let statements: [(String, String, String)] = [
                ("W-18-ar.txt", "حلب", "شهادة عن نقل المحتجزين ليلا"),
                ("W-19-ru.txt", "Алеппо", "Показания: задержанных перевезли ночью"),
                ("W-20-es.txt", "Alepo", "Declaración sobre la estación de policía de Canción"),
            ]
            for (file, location, note) in statements {
                var statement = IngestOptions()
                statement.fields.caseID = "COI-2026-04"
                statement.fields.tags = ["detention", "statement"]
                statement.fields.location = location
                statement.fields.note = note
                await report.items += try archive.ingest([upload + "/statements/" + file], options: statement).items
            }
            for item in report.items {
                let dup = item.duplicateOf.map { "  (duplicate of \($0.prefix(8)))" } ?? ""
                let shown = item.path.hasPrefix(base) ? String(item.path.dropFirst(base.count + 1)) : item.path
                print("\(item.id.hex.prefix(12))…  \(formatBytes(item.size))  \(shown)\(dup)")
            }

            step("4. custody ls --case COI-2026-04 --tag video")
            var filter = ItemFilter()
            filter.caseID = "COI-2026-04"
            filter.tags = ["video"]
            let listed = try await archive.index().list(filter)
            for item in listed { print("\(item.id.prefix(12))…  \(item.metadata.mediaType)  \(item.metadata.name)") }

            step("5. custody search — English, Arabic (also with vowel marks), Russian, Spanish without its accent")
            for query in ["roof AND aleppo", "حلب", "المُحتجَزين", "задержанных", "cancion AND estacion"] {
                let hits = try await archive.index().search(query)
                print("\"\(query)\" → \(hits.map(\.metadata.name).joined(separator: ", "))")
            }

            step("6. custody show <video>")
            guard let video = listed.first(where: { $0.metadata.name == "roof-video.mp4" }) else {
                throw ArchiveError(.damaged, "demo: the video was not listed", fix: "report this bug")
            }
            for event in try await archive.index().events(of: video.id) {
                print("event #\(event.seq) \(event.type) at \(event.time)")
            }
            print("sha256 \(video.metadata.sha256)")

            step("7. custody extract <video> -o extracted.mp4 (SHA-256 re-verified before the file appears)")
            let extracted = try await archive.extract(video.id, to: base + "/extracted.mp4", force: false)
            print(
                "extracted \(formatBytes(extracted.size)), SHA-256 \(extracted.sha256 == video.metadata.sha256 ? "matches" : "DIFFERS")"
            )

            step("8. custody verify (no keys needed)")
            let clean = try await archive.verify(mode: .standard)
            print("\(clean.objectsChecked) objects checked: \(clean.ok ? "OK" : "DAMAGED")")
            guard clean.ok else {
                throw ArchiveError(.damaged, "demo: a fresh archive failed verify", fix: "report this bug")
            }

            step("9. flip one byte in a stored object of the photo, then verify again")
            guard let photo = try await archive.index().search("photo").first,
                let target = try await archive.objectNames(of: photo.id).last
            else { throw ArchiveError(.damaged, "demo: photo not found", fix: "report this bug") }
            let objectPath = "\(archivePath)/objects/\(target.hex.prefix(2))/\(target.hex)"
            var bytes = try [UInt8](Data(contentsOf: URL(fileURLWithPath: objectPath)))
            bytes[bytes.count / 2] ^= 0x01
            try Data(bytes).write(to: URL(fileURLWithPath: objectPath))
            print("flipped byte \(bytes.count / 2) of \(target.hex.prefix(16))…")
            let damaged = try await archive.verify(mode: .standard)
            for problem in damaged.problems {
                print(
                    "verify: \(problem.kind) object \(problem.object?.prefix(16) ?? "-")… item \(problem.item ?? "-") — \(problem.detail)"
                )
            }
            guard !damaged.ok, damaged.problems.contains(where: { $0.item == photo.id }) else {
                throw ArchiveError(.damaged, "demo: verify missed the flipped byte", fix: "report this bug")
            }
            print("verify exits 1 and names the damaged object and the item: the flip was caught.")
            bytes[bytes.count / 2] ^= 0x01
            try Data(bytes).write(to: URL(fileURLWithPath: objectPath))
            print("(byte flipped back)")

            try await runLedgerDemo(archive: archive, video: video, base: base, passphrase: passphrase)
            let iachr = try await runSharingDemo(archive: archive, base: base, passphrase: passphrase)
            try await runNodeDemo(archive: archive, iachr: iachr, passphrase: passphrase)
            try await runTeamDemo(archive: archive, base: base, passphrase: passphrase)
            printBlock("\nDemo complete.")
        }

        /// Steps 15–18: a second body receives a scoped grant as a bundle, an auditor verifies it, the body imports it.
        private func runSharingDemo(
            archive: Archive.Unlocked,
            base: String,
            passphrase: SecretBytes
        ) async throws -> Archive.Unlocked {
            step("15. a second body: custody id export at the Inter-American Commission")
            let iachr = try await Archive.create(
                at: base + "/iachr",
                name: "Inter-American Commission (demo)",
                passphrase: passphrase
            )
            let iachrIdentity = try iachr.identity()
            print("identity \(iachrIdentity.name), fingerprint \(iachrIdentity.fingerprint)")

            step("16. custody grant create --to iachr.identity.json --case COI-2026-04 --tag statement --expires 90d …")
            var request = GrantRequest(
                grantee: iachrIdentity,
                expires: Expiry.resolve("90d") ?? "",
                purpose: "Petition P-1234/26"
            )
            request.caseID = "COI-2026-04"
            request.tags = ["statement"]
            let (grant, _, scope) = try await archive.createGrant(request)
            print("grant \(grant.id): \(scope.items.count) statement(s) in scope, the videos and photo are not")
            for (item, why) in scope.items { print("  \(item.id.prefix(12))…  \(item.metadata.name)  — \(why)") }
            let bundlePath = base + "/p1234.custody-bundle"
            let export = try await archive.exportBundle(grant: grant.id, to: bundlePath)
            print(
                "custody bundle export → \(formatBytes(export.bytes)), \(export.objects) objects, \(export.entries) proved log entries"
            )

            step(
                "17. an auditor with no keys: custody bundle verify p1234.custody-bundle --granter ohchr.identity.json"
            )
            let (report, _) = try await BundleVerifier.verify(
                path: bundlePath,
                granter: try archive.identity(),
                at: Int(Date().timeIntervalSince1970)
            )
            print(
                "integrity \(report.integrityOK ? "OK" : "FAILED"), valid now \(report.validNow), granter matches \(report.granterTrusted)"
            )
            var tampered = try [UInt8](Data(contentsOf: URL(fileURLWithPath: bundlePath)))
            tampered[tampered.count - 200] ^= 0x01
            let tamperedPath = base + "/tampered.custody-bundle"
            try Data(tampered).write(to: URL(fileURLWithPath: tamperedPath))
            let (bad, _) = try await BundleVerifier.verify(path: tamperedPath, at: Int(Date().timeIntervalSince1970))
            print("one flipped byte: \(bad.problems.first.map { "\($0.kind): \($0.detail)" } ?? "NOT CAUGHT")")
            guard report.ok, !bad.ok else {
                throw ArchiveError(.damaged, "demo: bundle verification misbehaved", fix: "report this bug")
            }

            step("18. the Inter-American Commission imports it (--trust-granter) and extracts a statement")
            let imported = try await iachr.importBundle(path: bundlePath, trustGranter: true)
            print(
                "\(imported.imported.count) item(s) imported from \(imported.granter); every SHA-256 re-checked first"
            )
            guard let first = imported.imported.first else {
                throw ArchiveError(.damaged, "demo: nothing imported", fix: "report this bug")
            }
            let out = try await iachr.extract(first, to: base + "/iachr-statement.txt", force: false)
            print("extracted \(out.path.split(separator: "/").last ?? "") (\(out.size) bytes), SHA-256 verified")
            if let provenance = try await iachr.index().provenance(of: first) {
                print(
                    "provenance: from \(provenance.granter) under grant \(provenance.grant.prefix(12))…, purpose \"\(provenance.purpose)\""
                )
            }
            let outside = try await archive.index().search("roof").first?.id ?? ""
            let leaked = (try? await iachr.resolveItem(outside)) != nil
            print("the video (out of scope) is not in the second archive: \(leaked ? "LEAKED" : "correct")")
            guard !leaked else {
                throw ArchiveError(.damaged, "demo: an out-of-scope item leaked", fix: "report this bug")
            }
            return iachr
        }

        /// Steps 19–20: the same exchange online over loopback, with mutual witnessing.
        private func runNodeDemo(
            archive: Archive.Unlocked,
            iachr: Archive.Unlocked,
            passphrase: SecretBytes
        ) async throws {
            step("19. custody serve --listen 127.0.0.1:0 at the Commission; custody peer add at the IACHR")
            let photo = try await archive.index().search("photo").first
            var request = GrantRequest(
                grantee: try iachr.identity(),
                expires: Expiry.resolve("30d") ?? "",
                purpose: "Petition P-1234/26, photo"
            )
            request.items = [photo?.id].compactMap { $0 }
            let (grant, _, _) = try await archive.createGrant(request)
            _ = try archive.trust(try iachr.identity(), role: .witness)
            // The server works on its own handle of the archive, as a separate `custody serve` would.
            let serving = try Archive.open(at: archive.root).unlock(passphrase: passphrase)
            let server = try NodeServer(archive: serving)
            let (addresses, announce) = AsyncStream.makeStream(of: String.self)
            // Refusals would be worth seeing in the narration; request lines are not.
            var logger = Logger(label: "custody.serve") { StreamLogHandler.standardError(label: $0) }
            logger.logLevel = .notice
            let stop = NodeServer.Stop()
            let running = Task {
                try await server.run(host: "127.0.0.1", port: 0, logger: logger, stop: stop) { announce.yield($0) }
            }
            defer { stop.request() }
            var iterator = addresses.makeAsyncIterator()
            guard let address = await iterator.next() else {
                throw ArchiveError(.temporary, "demo: the server did not start", fix: "report this bug")
            }
            print("listening on \(address)")
            _ = try iachr.addPeer(alias: "ohchr", url: "http://\(address)", identity: try archive.identity())

            step("20. custody pull ohchr --grant \(grant.id.prefix(12))… (signed requests, then mutual cosigning)")
            let pulled = try await Puller.pull(archive: iachr, peer: "ohchr", grant: grant.id)
            print(
                "\(pulled.first?.result.imported.count ?? 0) item(s) imported online (\(pulled.first?.fetched ?? 0) objects fetched in parallel), every SHA-256 re-checked"
            )
            let witnessing = try await Puller.witness(archive: iachr, peer: "ohchr")
            print("IACHR cosigned the Commission's checkpoint of size \(witnessing.cosignedPeerSize ?? 0)")
            print("the Commission cosigned IACHR's checkpoint of size \(witnessing.peerCosignedSize ?? 0)")
            guard witnessing.cosignedPeerSize != nil, witnessing.peerCosignedSize != nil,
                pulled.first?.result.imported.count == 1
            else { throw ArchiveError(.damaged, "demo: the online exchange misbehaved", fix: "report this bug") }
            stop.request()
            try await running.value
        }

        /// Steps 10–14: annotations, a proof checked as an outsider would, a witness, and a forged history caught.
        private func runLedgerDemo(
            archive: Archive.Unlocked,
            video: IndexedItem,
            base: String,
            passphrase: SecretBytes
        ) async throws {
            step("10. custody tag <video> --add verified --remove video; custody note <video> \"…\"")
            let tags = try await archive.tag(video.id, add: ["verified"], remove: ["video"])
            try await archive.note(video.id, text: "Hash matched the copy held by witness W-17's lawyer")
            print("tags now: \(tags.joined(separator: ", ")); the public log names only sealed objects")
            for event in try await archive.index().events(of: video.id) {
                let said =
                    event.annotation.map { a in
                        a.text.map { ": " + $0 }
                            ?? "  "
                            + ((a.add ?? []).map { "+" + $0 } + (a.remove ?? []).map { "-" + $0 }).joined(
                                separator: " "
                            )
                    } ?? ""
                print("event #\(event.seq) \(event.type)\(said)")
            }

            step("11. custody prove <video>, checked the way an outside auditor would")
            let proof = try await archive.proveItem(video.id)
            printBlock(proof.text, terminator: "")
            let identity = try archive.identity()
            guard let logKey = VerifierKey(identity.logVerifierKey),
                SignedNote.isSigned(proof.checkpoint.note, name: logKey.name, publicKey: logKey.publicKey),
                Merkle.root(
                    fromInclusionProof: proof.proof,
                    leafHash: proof.leafHash,
                    index: proof.index,
                    size: proof.checkpoint.size
                ) == proof.checkpoint.root
            else { throw ArchiveError(.damaged, "demo: the proof did not check", fix: "report this bug") }
            print(
                "checked with the identity file's log key: the ingest event is entry \(proof.index) of the signed log"
            )
            print("(Docs/examples/verify_proof.py does the same with PyNaCl and no Custody code)")

            step("12. a second body witnesses the log: custody witness add / witness cosign / witness attach")
            let witness = try await Archive.create(
                at: base + "/witness-body",
                name: "Regional Commission (demo witness)",
                passphrase: passphrase
            )
            _ = try witness.trust(identity, role: .witness)
            _ = try archive.trust(try witness.identity(), role: .witness)
            let cosignature = try witness.cosign(Array(proof.checkpoint.note.utf8))
            printBlock("witness cosigns size \(cosignature.size): \(cosignature.line)", terminator: "")
            _ = try await archive.attachCosignatures(Array(cosignature.line.utf8))
            guard let cosigned = try await archive.cosignedCheckpoint() else {
                throw ArchiveError(.damaged, "demo: the cosignature was not attached", fix: "report this bug")
            }
            printBlock("custody checkpoint --cosigned:\n" + cosigned.note, terminator: "")

            step("13. a forged history, signed with the archive's own key, shown to the witness")
            let forgedPath = base + "/forged-copy"
            try FileManager.default.copyItem(atPath: archive.root, toPath: forgedPath)
            try await archive.note(video.id, text: "Reviewed by the legal unit")
            let forged = try Archive.open(at: forgedPath).unlock(passphrase: passphrase)
            try await forged.note(video.id, text: "Transferred to an unknown party")  // the rewritten history
            let real = try archive.ledger.consistencyProof(from: cosignature.size)
            let fake = try forged.ledger.consistencyProof(from: cosignature.size)
            _ = try witness.cosign(Array(real.witnessRequest.utf8))
            print("the real log grew to \(real.checkpoint.size) entries: the witness cosigned it")
            do {
                _ = try witness.cosign(Array(fake.witnessRequest.utf8))
                throw ArchiveError(.damaged, "demo: the witness cosigned a fork", fix: "report this bug")
            } catch let error as ArchiveError where error.reason == .fork {
                printBlock("custody witness cosign (the forged copy's request) → exit 1:\n  \(error.problem)")
            }

            step("14. the journal rewritten on disk (two entries swapped), then custody verify")
            let journalPath = archive.root + "/journal/entries"
            let original = try Data(contentsOf: URL(fileURLWithPath: journalPath))
            var entries: [[UInt8]] = []
            try archive.forEachLogEntry { entries.append($0.bytes) }
            entries.swapAt(entries.count - 2, entries.count - 3)
            try Data(entries.flatMap(Journal.frame)).write(to: URL(fileURLWithPath: journalPath))
            let rewritten = try await archive.verify(mode: .quick)
            for problem in rewritten.problems {
                print("verify: \(problem.kind)\(problem.entry.map { " entry \($0)" } ?? "") — \(problem.detail)")
            }
            guard rewritten.problems.contains(where: { $0.kind == .ledgerMismatch && $0.entry == entries.count - 3 })
            else { throw ArchiveError(.damaged, "demo: verify missed the rewritten journal", fix: "report this bug") }
            try original.write(to: URL(fileURLWithPath: journalPath))
            print(
                "verify names the first moved entry; with the original journal back: \(try await archive.verify(mode: .quick).ok ? "OK" : "DAMAGED")"
            )
        }

        /// Steps 21–25: a team — members with their own keys and roles, a removal, a key rotation, and an M-of-N
        /// recovery.
        private func runTeamDemo(archive first: Archive.Unlocked, base: String, passphrase: SecretBytes) async throws {
            var archive = first
            @Sendable func secret(_ text: String) throws -> SecretBytes { try SecretBytes(copying: Array(text.utf8)) }
            func acting(_ name: String, _ passphrase: String) throws -> Archive {
                try Archive.open(at: archive.root, passphrase: { _ in try secret(passphrase) }, member: name)
            }
            step(
                "21. custody member add \"Investigator K\" --role investigator; member add \"Field team F\" --role field-staff"
            )
            let (investigator, _) = try await archive.addMember(
                "Investigator K",
                role: .investigator,
                passphrase: try secret("K's own passphrase"),
                kdfPreset: "interactive"
            )
            let (field, _) = try await archive.addMember(
                "Field team F",
                role: .fieldStaff,
                passphrase: try secret("F's own passphrase"),
                kdfPreset: "interactive"
            )
            for member in try archive.roster().currentMembers {
                print(
                    "\(member.id)  \(member.role.rawValue.padding(toLength: 15, withPad: " ", startingAt: 0))  \(member.name)"
                )
            }

            step("22. field staff ingest a file they can never read back; the investigator extracts it, with a purpose")
            let upload = base + "/field-F"
            try FileManager.default.createDirectory(atPath: upload, withIntermediateDirectories: true)
            _ = FileManager.default.createFile(
                atPath: upload + "/W-21.txt",
                contents: Data("Witness W-21: statement taken in the field.\n".utf8)
            )
            let fieldArchive = try acting(field.name, "F's own passphrase").deposit()
            let deposited = try await fieldArchive.ingest([upload + "/W-21.txt"], options: IngestOptions())
            guard let item = deposited.items.first else {
                throw ArchiveError(.damaged, "demo: field staff ingested nothing", fix: "report this bug")
            }
            do {
                _ = try acting(field.name, "F's own passphrase").unlock()
                throw ArchiveError(.damaged, "demo: field staff unlocked the archive", fix: "report this bug")
            } catch let error as ArchiveError where error.reason == .roleNotAllowed {
                print("custody ls --member \"Field team F\" → exit 77: \(error.problem)")
            }
            let kArchive = try acting(investigator.name, "K's own passphrase").unlock()
            let extracted = try await kArchive.extract(
                item.id.hex,
                to: base + "/W-21.extracted.txt",
                force: false,
                purpose: "translation for the legal unit"
            )
            print("extracted \(extracted.item.hex.prefix(12))… (SHA-256 verified) — the log names who did each:")
            let roster = try archive.roster()
            var last: [Archive.LogEntry] = []
            try archive.forEachLogEntry { entry in last = Array((last + [entry]).suffix(2)) }
            for entry in last {
                let by = entry.event.by.flatMap { roster.entries[$0]?.member }.map { "\($0.name) (\($0.role))" } ?? "-"
                print("  #\(entry.index)  \(entry.event.type)  by \(by)")
            }

            step("23. custody member remove \"Investigator K\" --reason \"left the commission\"")
            let copy = try Data(contentsOf: URL(fileURLWithPath: "\(archive.root)/members/\(investigator.id).json"))
            try await archive.removeMember(investigator.name, reason: "left the commission")
            // K kept a copy of their key file: it still opens their share, but no command accepts them.
            try copy.write(to: URL(fileURLWithPath: "\(archive.root)/members/\(investigator.id).json"))
            do {
                _ = try await acting(investigator.name, "K's own passphrase").unlock().tag(
                    item.id.hex,
                    add: ["x"],
                    remove: []
                )
                throw ArchiveError(.damaged, "demo: a removed member acted", fix: "report this bug")
            } catch let error as ArchiveError where error.reason == .memberRemoved {
                print("K, with a kept copy of their key file → exit 77: \(error.problem)")
            }
            try FileManager.default.removeItem(atPath: "\(archive.root)/members/\(investigator.id).json")
            print("(what K could read before stays readable to K: THREAT-MODEL.md section 7)")

            step("24. custody keys rotate --reason \"K left\": new content secrets, every item re-wrapped")
            let admin = archive.member?.member.name
            let rotation = try await Archive.open(at: archive.root, passphrase: { _ in passphrase }, member: admin)
                .rotateKeys(reason: "Investigator K left the commission", resume: false)
            print(
                "fingerprint \(rotation.previousFingerprint) → \(rotation.fingerprint); \(rotation.rewrapped) item(s) re-wrapped, \(rotation.members) key file(s) re-sealed"
            )
            print("what is ingested from now on does not open with the secrets K could have copied")
            archive = try Archive.open(at: archive.root, passphrase: { _ in passphrase }, member: admin).unlock()

            step("25. custody recovery split --threshold 2 --shares 3, then recovery restore from two shares")
            let split = try await archive.splitRecovery(
                groupThreshold: 1,
                groups: [SLIP39.Group(memberThreshold: 2, memberCount: 3)]
            )
            print(
                "share 1 of 3 (33 words): \(split.groups[0][0].split(separator: " ").prefix(4).joined(separator: " ")) …"
            )
            let recovered = try await Archive.open(at: archive.root).restoreRecovery(
                shares: [split.groups[0][0], split.groups[0][2]],
                name: "Recovered administrator",
                passphrase: try secret("a new administrator's passphrase"),
                kdfPreset: "interactive"
            )
            print("restored from shares 1 and 3: \(recovered.name) (\(recovered.id)) is an administrator")
            let report = try await archive.verify(mode: .quick)
            guard report.ok else {
                throw ArchiveError(.damaged, "demo: the team's log does not verify", fix: "report this bug")
            }
            print("custody verify: every event is signed by a member whose role allowed it — OK")
        }
    }
}
