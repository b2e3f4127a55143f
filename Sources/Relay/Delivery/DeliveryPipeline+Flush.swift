import NIOCore

/// Flushes (what the Lambda lifecycle waits for) and the end of the pipeline's life.
extension DeliveryPipeline {
    /// Waits until every upload accepted before this call has ended: delivered or dropped
    /// (or kept in the spool at shutdown), wherever it waited. Later arrivals are not
    /// waited for. Returns at once when cancelled (callers bound it with a deadline).
    public func flush() async {
        // While it waits, the burst senders send too.
        perform(state.withLock { $0.beginBurst() })
        defer { perform(state.withLock { $0.endBurst() }) }
        await park(cancelled: ()) { state, id, continuation in
            guard state.incomplete > 0 else { return () }
            state.flushes.append(.init(id: id, target: state.nextSequence, remaining: state.incomplete, continuation: continuation))
            return nil
        } unpark: { state, id in
            state.flushes.firstIndex { $0.id == id }.map { state.flushes.remove(at: $0).continuation }
        }
    }

    /// Refuses further uploads (503); senders drain memory and spool, then `next()` returns nil.
    public func close() {
        perform(state.withLock { $0.close() })
    }

    /// At the drain deadline, once the senders stopped: what is still in memory is dropped
    /// (`shutdown_deadline`), what is in the spool stays there for the next start (spool
    /// writes still under way too, when they finish), or is dropped too when the spool ends
    /// with this process. Returns both counts; flushes still waiting are released.
    public func abandon() -> (dropped: Int, keptInSpool: Int) {
        let (action, spoolOutlives) = state.withLock { ($0.abandon(), $0.spoolOutlivesShutdown) }
        // Dropped, and counted so: not replayed by the next start either.
        let dropped = action.droppedFromMemory.count
        if dropped > 0 { counters.recordDropped(.shutdownDeadline, count: dropped) }
        perform(action)
        return spoolOutlives ? (dropped, action.leftInSpool) : (dropped + action.leftInSpool, 0)
    }

    /// Lambda's SHUTDOWN of a spin-down: the execution environment, and its `/tmp` with it,
    /// ends with this process, so nothing left in the spool will ever be sent; it is counted
    /// as dropped at the deadline instead of kept. (A reset after a failed invocation keeps
    /// `/tmp` for the re-init, which replays the spool: there the records are kept.)
    public func spoolEndsWithThisProcess() {
        state.withLock { $0.spoolOutlivesShutdown = false }
    }

    public var spoolOutlivesShutdown: Bool { state.withLock { $0.spoolOutlivesShutdown } }

    /// Uploads whose records stay in the spool at shutdown: kept for the next start, or
    /// dropped when there is none. Their records stay either way: deleting them would
    /// spend the shutdown budget on files that are about to go.
    func recordLeftInSpool(_ count: Int) {
        guard count > 0 else { return }
        if spoolOutlivesShutdown {
            counters.recordKeptInSpool(count)
        } else {
            counters.recordDropped(.shutdownDeadline, count: count)
        }
    }

    func endJournal(_ uploads: [PipelineState.Queued]) {
        guard let journal else { return }
        for entry in uploads.compactMap(\.journal) { journal.finished(entry) }
    }

    public var isClosed: Bool { state.withLock { $0.isClosed } }

    /// After the drain: the spool folder is free for another relay (its records stay).
    public func releaseSpoolFolder() {
        spool?.releaseFolder()
    }

    public var snapshot: Snapshot {
        let spoolUsage = spool?.usage ?? (items: 0, bytes: 0)
        return state.withLock { state in
            Snapshot(
                queuedItems: state.memory.count, queuedBytes: state.memoryBytes, inFlight: state.inFlight,
                spoolItems: spoolUsage.items, spoolBytes: spoolUsage.bytes, incomplete: state.incomplete,
                waitingFlushes: state.flushes.count, oldestQueuedAt: state.memory.first?.upload.receivedAt)
        }
    }
}
