import NIOCore

/// SnapStart: every environment is a restored copy of one snapshot, so what the pipeline
/// holds at the snapshot would be sent once per copy. While the snapshot may be taken the
/// pipeline holds its deliveries; at the restore it drops what arrived before it and lets
/// the rest go.
extension DeliveryPipeline {
    /// Senders get nothing until `resume()`; arrivals are noted, to tell later which came
    /// before the restore.
    public func hold() {
        state.withLock { $0.hold() }
    }

    /// Lets senders take uploads again.
    public func resume() {
        perform(state.withLock { $0.resume() })
    }

    /// False for a delivery of an upload that `discardAccepted` dropped: it must not be sent.
    public func isCurrent(_ delivery: Delivery) -> Bool {
        state.withLock { $0.isCurrent(delivery.sequence) }
    }

    /// Asked before each attempt of a delivery: while the pipeline is held, waits for the
    /// hold to end (a retry whose backoff ends while the snapshot may be taken must not be
    /// sent from every restored copy), then tells whether it may still be sent. A cancelled
    /// task (the drain deadline) stops waiting.
    public func mayAttempt(_ delivery: Delivery) async -> Bool {
        // The usual case, on every attempt: one lock, no continuation.
        if let current = state.withLock({ $0.isHeld ? nil : $0.isCurrent(delivery.sequence) }) { return current }
        await park(cancelled: ()) { state, id, continuation in
            guard state.isHeld else { return () }
            state.heldAttempts[id] = continuation
            return nil
        } unpark: { state, id in
            state.heldAttempts.removeValue(forKey: id)
        }
        return isCurrent(delivery)
    }

    /// Drops every upload that arrived before `instant` (all of them when nil): in memory,
    /// in the spool, and in flight (see `isCurrent`). Returns how many it dropped here.
    public func discardAccepted(arrivedBefore instant: ContinuousClock.Instant? = nil, reason: DropReason) async -> Int {
        let (memoryAction, through) = state.withLock { state -> (PipelineState.Action, UInt64) in
            var through = state.nextSequence - 1
            if let instant {
                // Arrivals are noted in sequence order while held; the last one before the instant.
                through = state.arrivals.last { $0.at < instant }?.sequence ?? (state.arrivals.first.map { $0.sequence - 1 } ?? through)
            }
            return (state.discard(through: through), through)
        }
        var spooled: [UInt64] = []
        if let spool { spooled = (try? await threadPool.runIfActive { spool.removeAvailable(through: through) }) ?? [] }
        let spoolAction = state.withLock { $0.discardedFromSpool(spooled) }
        let count = memoryAction.droppedFromMemory.count + spooled.count
        if count > 0 { counters.recordDropped(reason, count: count) }
        perform(memoryAction)
        perform(spoolAction)
        return count
    }
}
