import Foundation
import Logging
import NIOCore
import RelayTestSupport
import Testing

@testable import RelayCore

/// The pipeline's memory side: bounds, order, flushes, hand-offs, shutdown.
@Suite struct DeliveryPipelineTests {
    static let logger = Logger(label: "pipeline-test", factory: { _ in SwiftLogNoOpLogHandler() })

    static func pipeline(maxItems: Int = 10, maxBytes: Int = 1 << 20, spoolDirectory: String? = nil, spoolMaxBytes: Int = 1 << 20)
        -> DeliveryPipeline
    {
        DeliveryPipeline(
            configuration: .init(maxItems: maxItems, maxBytes: maxBytes, spoolDirectory: spoolDirectory, spoolMaxBytes: spoolMaxBytes),
            logger: logger)
    }

    static func upload(_ text: String) -> Upload {
        Upload(method: .POST, target: "/ingest", headers: [:], body: ByteBuffer(string: text))
    }

    @Test func boundsByCountAndBytes() async {
        let byCount = Self.pipeline(maxItems: 2)
        #expect(await byCount.admit(Self.upload("a")) == .queued)
        #expect(await byCount.admit(Self.upload("b")) == .queued)
        #expect(await byCount.admit(Self.upload("c")) == .refused(.queueFull))

        let byBytes = Self.pipeline(maxItems: 100, maxBytes: 300)
        #expect(await byBytes.admit(Self.upload(String(repeating: "x", count: 200))) == .queued)
        #expect(await byBytes.admit(Self.upload(String(repeating: "y", count: 200))) == .refused(.queueFull))
        // A single upload over the byte bound is still taken when the queue is empty.
        let empty = Self.pipeline(maxItems: 100, maxBytes: 10)
        #expect(await empty.admit(Self.upload(String(repeating: "z", count: 50))) == .queued)
        let counts = byCount.counters.snapshot
        #expect(counts.received == 3 && counts.accepted == 2 && counts.dropped == [.queueFull: 1])
    }

    @Test func nextReturnsOldestFirstAndNilWhenClosedAndEmpty() async {
        let pipeline = Self.pipeline()
        _ = await pipeline.admit(Self.upload("1"))
        _ = await pipeline.admit(Self.upload("2"))
        pipeline.close()
        #expect(await pipeline.admit(Self.upload("3")) == .refused(.queueFull))
        let first = await pipeline.next()
        let second = await pipeline.next()
        #expect(first.map { String(buffer: $0.upload.body) } == "1")
        #expect(second.map { String(buffer: $0.upload.body) } == "2")
        #expect(await pipeline.next() == nil)
    }

    @Test func flushWaitsForEverythingAcceptedBeforeItButNotLaterArrivals() async throws {
        let pipeline = Self.pipeline()
        _ = await pipeline.admit(Self.upload("early-1"))
        _ = await pipeline.admit(Self.upload("early-2"))
        let first = try #require(await pipeline.next())  // in flight
        let flushed = Flag()
        let flush = Task {
            await pipeline.flush()
            await flushed.set()
        }
        while pipeline.snapshot.waitingFlushes == 0 { await Task.yield() }
        _ = await pipeline.admit(Self.upload("late"))  // after the flush began: not waited for
        let second = try #require(await pipeline.next())
        await pipeline.complete(second, .delivered)
        await Task.yield()
        #expect(await !flushed.value, "first upload still in flight")
        await pipeline.complete(first, .dropped(.rejected4xx))
        await flush.value
        #expect(await flushed.value)
        let snapshot = pipeline.snapshot
        #expect(snapshot.queuedItems == 1 && snapshot.inFlight == 0 && snapshot.incomplete == 1, "only the late upload is left")
    }

    @Test func flushReturnsAtOnceWhenNothingIsPendingAndOnCancellation() async {
        let pipeline = Self.pipeline()
        await pipeline.flush()
        _ = await pipeline.admit(Self.upload("stuck"))
        let task = Task { await pipeline.flush() }
        task.cancel()
        await task.value  // returns although the upload never completes
    }

    @Test func waitingSenderGetsTheNextUploadAndCancellationReleasesIt() async throws {
        let pipeline = Self.pipeline()
        let waiting = Task { await pipeline.next() }
        while pipeline.state.withLock({ $0.senders.isEmpty }) { await Task.yield() }  // the sender waits
        _ = await pipeline.admit(Self.upload("direct"))
        #expect(await waiting.value.map { String(buffer: $0.upload.body) } == "direct")
        let cancelled = Task { await pipeline.next() }
        cancelled.cancel()
        #expect(await cancelled.value == nil)
    }

    @Test func abandonDropsWhatIsQueuedAndReleasesFlushes() async {
        let pipeline = Self.pipeline()
        _ = await pipeline.admit(Self.upload("a"))
        _ = await pipeline.admit(Self.upload("b"))
        let flush = Task { await pipeline.flush() }
        while pipeline.snapshot.waitingFlushes == 0 { await Task.yield() }
        pipeline.close()
        #expect(pipeline.abandon() == (dropped: 2, keptInSpool: 0))
        await flush.value
        let snapshot = pipeline.snapshot
        #expect(snapshot.queuedItems == 0 && snapshot.queuedBytes == 0 && snapshot.incomplete == 0)
        #expect(pipeline.counters.snapshot.dropped == [.shutdownDeadline: 2])
    }

    @Test func discardingWhatWasAcceptedEmptiesMemoryAndSpoolAndMakesTakenDeliveriesStale() async throws {
        let directory = FileManager.default.temporaryDirectory.path + "/discard-\(UUID().uuidString)"
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let pipeline = Self.pipeline(maxItems: 2, spoolDirectory: directory, spoolMaxBytes: 1 << 20)
        for index in 0..<5 { #expect(await pipeline.admit(Self.upload("\(index)")).isAccepted) }
        #expect(pipeline.snapshot.spoolItems == 3)
        let taken = try #require(await pipeline.next())
        #expect(pipeline.isCurrent(taken))
        let flush = Task { await pipeline.flush() }
        while pipeline.snapshot.waitingFlushes == 0 { await Task.yield() }

        #expect(await pipeline.discardAccepted(reason: .snapshot) == 4, "1 in memory, 3 in the spool")
        #expect(!pipeline.isCurrent(taken), "taken before: must not be sent")
        await pipeline.complete(taken, .dropped(.snapshot))
        await flush.value
        #expect(pipeline.snapshot.spoolItems == 0 && pipeline.snapshot.incomplete == 0)
        #expect((try FileManager.default.contentsOfDirectory(atPath: directory)).filter { $0.hasSuffix(".rec") }.isEmpty)
        #expect(pipeline.counters.snapshot.dropped == [.snapshot: 5])
        // Later uploads are current.
        #expect(await pipeline.admit(Self.upload("new")) == .queued)
        #expect(pipeline.isCurrent(try #require(await pipeline.next())))
    }

    @Test func anAttemptWaitsOutTheHoldAndIsRefusedIfTheRestoreDiscardedItsUpload() async throws {
        let pipeline = Self.pipeline(maxItems: 4)
        #expect(await pipeline.admit(Self.upload("retrying")) == .queued)
        let taken = try #require(await pipeline.next())  // in its backoff when the hold begins
        pipeline.hold()
        let attempt = Task { await pipeline.mayAttempt(taken) }
        while pipeline.state.withLock({ $0.heldAttempts.isEmpty }) { await Task.yield() }
        #expect(await pipeline.discardAccepted(reason: .snapshot) == 0, "nothing left in memory")
        pipeline.resume()
        #expect(await attempt.value == false, "the restore made it stale: it is never sent")

        #expect(await pipeline.admit(Self.upload("after")) == .queued)
        let current = try #require(await pipeline.next())
        pipeline.hold()
        let cancelled = Task { await pipeline.mayAttempt(current) }
        while pipeline.state.withLock({ $0.heldAttempts.isEmpty }) { await Task.yield() }
        cancelled.cancel()  // the drain deadline
        #expect(await cancelled.value == true, "a cancelled wait ends; the upload is still current")
        pipeline.resume()
        #expect(await pipeline.mayAttempt(current), "not held: no wait")
    }

    @Test func misconfiguredRemoteRefusesEverythingWithItsReason() async {
        let pipeline = DeliveryPipeline(configuration: .init(acceptsUploads: false), logger: Self.logger)
        #expect(await pipeline.admit(Self.upload("x")) == .refused(.misconfigured))
        #expect(pipeline.counters.snapshot.dropped == [.misconfigured: 1])
        #expect(pipeline.counters.snapshot.refused == 1)
    }
}

actor Flag {
    var value = false
    func set() { value = true }
}

extension DeliveryPipeline.Delivery: Equatable {
    public static func == (lhs: Self, rhs: Self) -> Bool { lhs.sequence == rhs.sequence }
}
