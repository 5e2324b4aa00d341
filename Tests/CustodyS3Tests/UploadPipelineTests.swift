import CustodyStorage
import Synchronization
import Testing

@testable import CustodyS3

/// The S3 store's upload pipeline, without a store: bounded by count and bytes, one upload per name in
/// flight, and every staging told of its upload's failure.
struct UploadPipelineTests {
    /// Counts the uploads running at once.
    final class Gauge: Sendable {
        let state = Mutex((now: 0, most: 0, runs: 0))

        func run() async {
            state.withLock {
                $0.now += 1
                $0.runs += 1
                $0.most = max($0.most, $0.now)
            }
            // Let other uploads start before this one ends.
            for _ in 0..<20 { await Task.yield() }
            state.withLock { $0.now -= 1 }
        }
    }

    static func name(_ index: Int) -> ObjectName { ObjectName(of: Array("object \(index)".utf8)) }

    @Test func noMoreThanSixteenUploadsAreInFlight() async throws {
        let pipeline = UploadPipeline()
        let gauge = Gauge()
        for index in 0..<60 { await pipeline.start(Self.name(index), bytes: 1000) { await gauge.run() } }
        try await pipeline.finish((0..<60).map(Self.name))
        let state = gauge.state.withLock { $0 }
        #expect(state.runs == 60 && state.now == 0)
        #expect(state.most <= UploadPipeline.maxCount)
    }

    @Test func noMoreThan128MiBAreInFlightUnlessOneObjectIsLarger() async throws {
        let pipeline = UploadPipeline()
        let gauge = Gauge()
        for index in 0..<10 { await pipeline.start(Self.name(index), bytes: 50 << 20) { await gauge.run() } }
        // An object larger than the whole budget still goes, alone.
        await pipeline.start(Self.name(99), bytes: 200 << 20) { await gauge.run() }
        try await pipeline.finish((0..<10).map(Self.name) + [Self.name(99)])
        let state = gauge.state.withLock { $0 }
        #expect(state.runs == 11)
        #expect(state.most <= 2)
    }

    @Test func stagingsOfOneNameShareAnUploadAndAllHearItsFailure() async throws {
        struct Refused: Error {}
        let pipeline = UploadPipeline()
        let runs = Atomic<Int>(0)
        let name = Self.name(1)
        let work: @Sendable () async throws -> Void = {
            runs.wrappingAdd(1, ordering: .relaxed)
            for _ in 0..<20 { await Task.yield() }
            throw Refused()
        }
        await pipeline.start(name, bytes: 10, work)
        await pipeline.start(name, bytes: 10, work)
        await #expect(throws: Refused.self) { try await pipeline.finish([name]) }
        await #expect(throws: Refused.self) { try await pipeline.finish([name]) }
        let once = runs.load(ordering: .relaxed)
        #expect(once == 1)
        // Once every staging has finished, the name is free: a new staging uploads again.
        await pipeline.start(name, bytes: 10) { runs.wrappingAdd(1, ordering: .relaxed) }
        try await pipeline.finish([name])
        let twice = runs.load(ordering: .relaxed)
        #expect(twice == 2)
    }

    @Test func aReadWaitsForTheUploadOfItsObject() async throws {
        let pipeline = UploadPipeline()
        let done = Atomic<Bool>(false)
        let name = Self.name(7)
        await pipeline.start(name, bytes: 10) {
            for _ in 0..<50 { await Task.yield() }
            done.store(true, ordering: .relaxed)
        }
        await pipeline.wait(for: name)
        let finished = done.load(ordering: .relaxed)
        #expect(finished)
        try await pipeline.finish([name])
    }
}
