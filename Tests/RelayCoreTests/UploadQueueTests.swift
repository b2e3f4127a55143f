import NIOCore
import Testing

@testable import RelayCore

@Suite struct UploadQueueTests {
    func upload(_ text: String) -> Upload {
        Upload(method: .POST, target: "/ingest", headers: [:], body: ByteBuffer(string: text))
    }

    @Test func boundsByCountAndBytes() {
        let byCount = UploadQueue(maxItems: 2, maxBytes: 1 << 20)
        #expect(byCount.offer(upload("a")) == .accepted)
        #expect(byCount.offer(upload("b")) == .accepted)
        #expect(byCount.offer(upload("c")) == .full)

        let byBytes = UploadQueue(maxItems: 100, maxBytes: 300)
        #expect(byBytes.offer(upload(String(repeating: "x", count: 200))) == .accepted)
        #expect(byBytes.offer(upload(String(repeating: "y", count: 200))) == .full)
        // A single upload over the byte bound is still taken when the queue is empty.
        let empty = UploadQueue(maxItems: 100, maxBytes: 10)
        #expect(empty.offer(upload(String(repeating: "z", count: 50))) == .accepted)
    }

    @Test func nextReturnsOldestFirstAndNilWhenClosedAndEmpty() async {
        let queue = UploadQueue(maxItems: 10, maxBytes: 1 << 20)
        _ = queue.offer(upload("1"))
        _ = queue.offer(upload("2"))
        queue.close()
        #expect(queue.offer(upload("3")) == .closed)
        let first = await queue.next()
        let second = await queue.next()
        #expect(first.map { String(buffer: $0.upload.body) } == "1")
        #expect(second.map { String(buffer: $0.upload.body) } == "2")
        #expect(await queue.next() == nil)
    }

    @Test func flushWaitsForEverythingAcceptedBeforeItButNotLaterArrivals() async throws {
        let queue = UploadQueue(maxItems: 10, maxBytes: 1 << 20)
        _ = queue.offer(upload("early-1"))
        _ = queue.offer(upload("early-2"))
        let first = try #require(await queue.next())  // in flight
        let flushed = Flag()
        let flush = Task {
            await queue.flush()
            await flushed.set()
        }
        while queue.waitingFlushes == 0 { await Task.yield() }
        _ = queue.offer(upload("late"))  // after the flush began: not waited for
        let second = try #require(await queue.next())
        queue.complete(second)
        await Task.yield()
        #expect(await !flushed.value, "first upload still in flight")
        queue.complete(first)
        await flush.value
        #expect(await flushed.value)
        #expect(queue.snapshot.queuedItems == 1 && queue.snapshot.inFlight == 0, "only the late upload is left")
    }

    @Test func flushReturnsAtOnceWhenNothingIsPendingAndOnCancellation() async {
        let queue = UploadQueue(maxItems: 10, maxBytes: 1 << 20)
        await queue.flush()
        _ = queue.offer(upload("stuck"))
        let task = Task { await queue.flush() }
        task.cancel()
        await task.value  // returns although the upload never completes
    }

    @Test func waitingSenderGetsTheNextOfferAndCancellationReleasesIt() async {
        let queue = UploadQueue(maxItems: 10, maxBytes: 1 << 20)
        let waiting = Task { await queue.next() }
        try? await Task.sleep(for: .milliseconds(20))
        _ = queue.offer(upload("direct"))
        #expect(await waiting.value.map { String(buffer: $0.upload.body) } == "direct")
        let cancelled = Task { await queue.next() }
        cancelled.cancel()
        #expect(await cancelled.value == nil)
    }

    @Test func removeAllReturnsQueuedItemsAndReleasesFlushes() async {
        let queue = UploadQueue(maxItems: 10, maxBytes: 1 << 20)
        _ = queue.offer(upload("a"))
        _ = queue.offer(upload("b"))
        let flush = Task { await queue.flush() }
        while queue.waitingFlushes == 0 { await Task.yield() }
        #expect(queue.removeAll().count == 2)
        await flush.value
        #expect(queue.snapshot.queuedItems == 0 && queue.snapshot.queuedBytes == 0)
    }
}

actor Flag {
    var value = false
    func set() { value = true }
}
