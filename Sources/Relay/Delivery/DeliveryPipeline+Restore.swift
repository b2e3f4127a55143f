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
    /// hold to end (a retry whose backoff ends while the snapshot may be taken, or while the
    /// environment may freeze, must not be sent), then tells whether it may still be sent. A
    /// cancelled task (the drain deadline) stops waiting. True counts the attempt on the
    /// wire until `attemptEnded`.
    public func mayAttempt(_ delivery: Delivery) async -> Bool {
        while true {
            // The usual case, on every attempt: one lock, no continuation.
            let cancelled = Task.isCancelled
            if let current = state.withLock({ $0.admitAttempt(sequence: delivery.sequence, cancelled: cancelled) }) { return current }
            await park(cancelled: ()) { state, id, continuation in
                guard state.isHeld else { return () }
                state.heldAttempts[id] = continuation
                return nil
            } unpark: { state, id in
                state.heldAttempts.removeValue(forKey: id)
            }
        }
    }

    /// The attempt `mayAttempt` let through ended (answered, failed, or not made after all).
    public func attemptEnded() {
        perform(state.withLock { $0.attemptEnded() })
    }

    /// Holds the pipeline (no attempt starts, senders take nothing) and waits until no
    /// attempt is on the wire: before the extension asks for the next event, after which
    /// Lambda may freeze the environment, network included, at any moment. Returns at once
    /// when cancelled (callers bound it); `resume()` ends the hold.
    public func quiesce() async {
        state.withLock { $0.hold() }
        await park(cancelled: ()) { state, id, continuation in
            guard state.attemptsOnWire > 0 else { return () }
            state.quiesceWaiters[id] = continuation
            return nil
        } unpark: { state, id in
            state.quiesceWaiters.removeValue(forKey: id)
        }
    }

    /// `quiesce` when nothing is on the wire: holds, and true; false (not held) otherwise.
    public func holdIfQuiet() -> Bool {
        state.withLock { state in
            guard state.attemptsOnWire == 0 else { return false }
            state.hold()
            return true
        }
    }

    /// Attempts on the wire now.
    public var attemptsOnWire: Int { state.withLock { $0.attemptsOnWire } }

    /// Someone waits in `quiesce` for the attempts on the wire to end.
    var isQuiescing: Bool { state.withLock { !$0.quiesceWaiters.isEmpty } }

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
