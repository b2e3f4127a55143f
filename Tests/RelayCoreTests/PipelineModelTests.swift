import Foundation
import Logging
import NIOCore
import RelayTestSupport
import Synchronization
import Testing

@testable import RelayCore

/// The pipeline's accounting under random interleavings of admit, next, complete, flush,
/// spool damage, close and abandon, checked against a model: every accepted upload ends
/// exactly once (delivered, dropped with a reason, or kept in the spool at shutdown), every
/// flush returns only after what it covered ended, and the counters add up.
@Suite struct PipelineModelTests {
    /// What the test knows, shared with the flush tasks.
    final class Model: Sendable {
        struct State {
            var waiting: Set<Int> = []
            var inFlight: [Int: DeliveryPipeline.Delivery] = [:]
            var ended: [Int: DeliveryPipeline.Outcome] = [:]
            var endedTwice: [Int] = []
            /// Spooled uploads whose record the test damaged: the pipeline ends them itself.
            var damaged: Set<Int> = []
            /// Set just before `abandon()`, which releases the flushes still waiting by design.
            var abandoned = false
            var violations: [String] = []
        }
        let state = Mutex(State())

        func end(_ id: Int, _ outcome: DeliveryPipeline.Outcome) {
            state.withLock { state in
                if state.ended[id] != nil { state.endedTwice.append(id) }
                state.ended[id] = outcome
            }
        }
    }

    static func id(of upload: Upload) -> Int {
        Int(String(buffer: upload.body).split(separator: ":")[0])!
    }

    @Test(arguments: 0..<24)
    func everyAcceptedUploadEndsExactlyOnceAndTheCountersAddUp(seed: UInt64) async throws {
        var random = SplitMix64(seed: seed)
        let useSpool = seed % 4 != 0
        let directory = NSTemporaryDirectory() + "pipeline-model-\(seed)-\(UUID().uuidString)"
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let pipeline = DeliveryPipeline(
            configuration: .init(
                maxItems: 4, maxBytes: 700, spoolDirectory: useSpool ? directory : nil, spoolMaxBytes: 4096 * Int(3 + random.next() % 6)),
            logger: Logger(label: "model", factory: { _ in SwiftLogNoOpLogHandler() }))
        let model = Model()
        var admitted = 0
        var accepted = 0
        var refused = 0
        var flushes: [Task<Void, Never>] = []
        let outcomes: [DeliveryPipeline.Outcome] = [.delivered, .delivered, .dropped(.rejected4xx), .dropped(.maxRetries), .dropped(.tooOld)]

        for _ in 0..<300 {
            switch random.next() % 11 {
            case 0...3:
                let id = admitted
                admitted += 1
                let body = "\(id):" + String(repeating: "p", count: Int(10 + random.next() % 300))
                let admission = await pipeline.admit(Upload(method: .POST, target: "/ingest", headers: [:], body: ByteBuffer(string: body)))
                if admission.isAccepted {
                    accepted += 1
                    model.state.withLock { _ = $0.waiting.insert(id) }
                } else {
                    refused += 1
                    #expect(admission == .refused(.queueFull))
                }
            case 4...5:
                // Only when something takeable waits: `next()` would wait for an arrival otherwise.
                guard model.state.withLock({ !$0.waiting.subtracting($0.damaged).isEmpty }) else { continue }
                let delivery = try #require(await pipeline.next())
                let id = Self.id(of: delivery.upload)
                model.state.withLock { state in
                    if state.waiting.remove(id) == nil || state.damaged.contains(id) { state.violations.append("next() handed out \(id) twice or damaged") }
                    state.inFlight[id] = delivery
                }
            case 6...7:
                guard let (id, delivery) = model.state.withLock({ $0.inFlight.first }) else { continue }
                model.state.withLock { _ = $0.inFlight.removeValue(forKey: id) }
                let outcome = outcomes[Int(random.next() % UInt64(outcomes.count))]
                // Recorded before the pipeline hears of it: a flush it releases then sees it ended.
                model.end(id, outcome)
                await pipeline.complete(delivery, outcome)
            case 8...9:
                let covered = model.state.withLock { $0.waiting.union($0.inFlight.keys).subtracting($0.damaged) }
                flushes.append(
                    Task {
                        await pipeline.flush()
                        model.state.withLock { state in
                            guard !state.abandoned else { return }
                            // Records damaged meanwhile end inside the pipeline, unseen by the model.
                            let open = covered.filter { state.ended[$0] == nil && !state.damaged.contains($0) }
                            if !open.isEmpty { state.violations.append("flush returned before \(open.sorted()) ended") }
                        }
                    })
            default:
                // Damage a random spooled record that no sender has taken yet.
                guard useSpool,
                    let file = try? FileManager.default.contentsOfDirectory(atPath: directory).filter({ $0.hasSuffix(".rec") }).randomElement(using: &random),
                    let bytes = FileManager.default.contents(atPath: directory + "/" + file),
                    case .success(let record) = SpoolRecordCodec.decode([UInt8](bytes))
                else { continue }
                let id = Int(String(decoding: record.body, as: UTF8.self).split(separator: ":")[0])!
                guard model.state.withLock({ $0.waiting.contains(id) }) else { continue }
                try Data("damaged".utf8).write(to: URL(fileURLWithPath: directory + "/" + file))
                model.state.withLock { _ = $0.damaged.insert(id) }
            }
        }

        // Shutdown: close, then either drain everything or stop part-way and abandon.
        pipeline.close()
        let abandonEarly = seed % 3 == 0
        var taken = 0
        while !abandonEarly || taken < 3, let delivery = await pipeline.next() {
            taken += 1
            let id = Self.id(of: delivery.upload)
            model.state.withLock { _ = $0.waiting.remove(id) }
            model.end(id, .delivered)
            await pipeline.complete(delivery, .delivered)
        }
        for (id, delivery) in model.state.withLock({ $0.inFlight }) {
            model.end(id, .delivered)
            await pipeline.complete(delivery, .delivered)
        }
        model.state.withLock { $0.abandoned = true }
        let (droppedAtDeadline, kept) = pipeline.abandon()
        for flush in flushes { await flush.value }

        let state = model.state.withLock { $0 }
        let counters = pipeline.counters.snapshot
        #expect(state.violations.isEmpty, "seed \(seed): \(state.violations)")
        #expect(state.endedTwice.isEmpty, "seed \(seed): ended twice: \(state.endedTwice)")
        let leftWaiting = state.waiting.count
        // Never handed out: damaged records the pipeline skipped (corrupt), and at an early
        // abandon what was still in memory (dropped) or in the spool (kept).
        #expect(
            leftWaiting == droppedAtDeadline + kept + counters.dropped[.corrupt, default: 0],
            "seed \(seed): everything still waiting ended at the deadline or as corrupt")
        #expect(counters.received == admitted)
        #expect(counters.accepted == accepted)
        #expect(counters.refused == refused)
        let delivered = state.ended.values.filter { $0 == .delivered }.count
        #expect(counters.delivered == delivered)
        for reason in [DropReason.rejected4xx, .maxRetries, .tooOld] {
            #expect(counters.dropped[reason, default: 0] == state.ended.values.filter { $0 == .dropped(reason) }.count)
        }
        #expect(counters.dropped[.corrupt, default: 0] <= state.damaged.count)
        #expect(counters.keptInSpool == kept && counters.dropped[.shutdownDeadline, default: 0] == droppedAtDeadline)
        // Every accepted upload has exactly one end: delivered, dropped (not refused), or kept.
        #expect(
            counters.accepted == counters.delivered + counters.droppedTotal - counters.refused + counters.keptInSpool,
            "seed \(seed): \(counters)")
        #expect(pipeline.snapshot.incomplete == 0)
        #expect(pipeline.snapshot.inFlight == 0)
        if !abandonEarly {
            #expect(droppedAtDeadline == 0 && kept == 0)
            #expect(counters.dropped[.corrupt, default: 0] == state.damaged.count, "a full drain reads every damaged record")
        }
    }
}
