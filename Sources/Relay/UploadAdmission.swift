/// Takes uploads the relay makes itself (the self-profiler's) into the same memory
/// queue and spool as client uploads, with the same accounting: received, then
/// accepted or dropped as `queue_full`, then delivered or dropped by the forwarder.
public struct UploadAdmission: Sendable {
    let queue: UploadQueue
    let spool: UploadSpool?
    let counters: RelayCounters

    public init(queue: UploadQueue, spool: UploadSpool?, counters: RelayCounters) {
        self.queue = queue
        self.spool = spool
        self.counters = counters
    }

    /// True once the upload is queued or spooled; false (counted as `queue_full`) when
    /// memory and spool are both full or the queue is closed.
    public func admit(_ upload: Upload) async -> Bool {
        counters.recordReceived()
        counters.metrics.receivedBytes.increment(by: Int64(upload.body.readableBytes))
        // Behind what the spool already holds, as for client uploads: oldest first.
        let joinSpool = spool.map { !$0.isEmpty } ?? false
        if !joinSpool, queue.offer(upload) == .accepted {
            counters.recordAccepted()
            return true
        }
        if !queue.isClosed, let spool, await spool.store(upload) {
            counters.recordAccepted()
            queue.nudge()
            return true
        }
        counters.recordDropped(.queueFull)
        return false
    }
}
