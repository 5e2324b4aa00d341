import CustodyArchive
import CustodyCrypto
import CustodyStorage
import Foundation
import Hummingbird
import HummingbirdCore

/// Witnessing (PROTOCOL.md section 3): C2SP tlog-witness `add-checkpoint`, where a log this node witnesses
/// submits its checkpoint with a consistency proof, and signed `cosignatures`, where a witness delivers its
/// cosignatures of this node's checkpoints.
struct WitnessController: Sendable {
    let node: NodeServer

    /// Registers `witness/add-checkpoint` and, behind ``AuthenticationMiddleware``, `cosignatures` on `v1`.
    func addRoutes(to group: RouterGroup<NodeRequestContext>) {
        group.post("witness/add-checkpoint", use: addCheckpoint)
        group.group("cosignatures")
            .add(middleware: AuthenticationMiddleware(node: node))
            .post(use: attachCosignatures)
    }

    /// `POST /v1/witness/add-checkpoint`: cosigns a checkpoint of a log this node witnesses, after checking its
    /// consistency proof from the size cosigned before; 409 with that size when the proof starts elsewhere.
    @Sendable func addCheckpoint(_ request: Request, context: NodeRequestContext) async throws -> Response {
        let body = try await NodeServer.body(of: request)
        do {
            let line = try await node.archive { try $0.cosign(body).line }
            return NodeServer.response(.ok, Array(line.utf8), type: "text/x.tlog.cosignature")
        } catch let error as ArchiveError {
            switch error.code {
            case .notAuthorised:
                throw ServerRefusal(.unknownLog, detail: error.problem)
            case .badInput where error.reason == .proofInvalid:
                // C2SP tlog-witness: a proof that does not verify is 422 (not a fork: nothing was filed).
                throw ServerRefusal(.proofInvalid, detail: error.problem)
            case .badInput:
                // 409 with the witness's stored size, so the log can send a proof from it (C2SP tlog-witness).
                let origin = Self.checkpointOrigin(body)
                let size = try await node.archive { archive in origin.flatMap { archive.witnessedSize(origin: $0) } }
                let answer = NodeServer.response(.conflict, Array("\(size ?? 0)\n".utf8), type: "text/x.tlog.size")
                throw ServerRefusal(.badRequest, answer: answer, detail: error.problem)
            default:
                let fork = error.reason == .fork
                throw ServerRefusal(fork ? .proofFailed : .checkpointRefused, detail: error.problem)
            }
        }
    }

    /// `POST /v1/cosignatures` (signed): attaches a witness's cosignatures to this node's checkpoints.
    @Sendable func attachCosignatures(_ request: Request, context: NodeRequestContext) async throws -> Response {
        _ = try context.requireRequester()
        let body = try await NodeServer.body(of: request)
        do {
            let attached = try await node.archiveOperation {
                try await $0.attachCosignatures(body, alsoFrom: true).count
            }
            return NodeServer.response(.ok, Array("attached \(attached)\n".utf8))
        } catch let error as ArchiveError {
            throw ServerRefusal(.noSuchCheckpoint, detail: error.problem)
        }
    }

    /// The origin line of the checkpoint in a tlog-witness add-checkpoint body (after the `old` line, the proof
    /// lines and the blank line), when it is a valid origin.
    static func checkpointOrigin(_ body: [UInt8]) -> String? {
        let text = String(decoding: body.prefix(64 * 1024), as: UTF8.self)
        let note = text.hasPrefix("old ") ? text.range(of: "\n\n").map { text[$0.upperBound...] } : text[...]
        guard let origin = note?.prefix(while: { $0 != "\n" }), OutsideInput.isOrigin(String(origin)) else {
            return nil
        }
        return String(origin)
    }
}
