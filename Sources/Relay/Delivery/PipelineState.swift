import NIOCore

/// The delivery pipeline's bookkeeping, a plain value only touched under its lock: what
/// waits in memory, what the spool holds, what is in flight, and which callers wait for
/// what. Continuations are returned to the caller to resume outside the lock.
///
/// Every upload gets a sequence number when it is offered; from acceptance until its end
/// (delivered, dropped with a reason, kept in the spool at shutdown) it is *incomplete*.
/// A flush waits until everything incomplete when it began has ended, wherever it waits:
/// memory, spool, a spool write, or in flight.
struct PipelineState {
    struct Limits {
        var maxItems: Int
        var maxBytes: Int
    }

    /// An upload waiting in memory.
    struct Queued {
        var sequence: UInt64
        var upload: Upload
        var bytes: Int
        /// Its journal entry, ended with the upload.
        var journal: UploadJournal.Entry?
    }

    enum Wake {
        case memory(Queued)
        /// The spool has a record for you (or may: re-check).
        case spool
        case closed
    }

    struct Sender {
        var id: UInt64
        /// The event loop the sender runs on (nil: not on one); offers on that loop go to it first.
        var loop: ObjectIdentifier?
        var continuation: CheckedContinuation<Wake, Never>
    }

    struct Flush {
        var id: UInt64
        /// Sequences below this were offered before the flush began.
        var target: UInt64
        /// How many of them have not ended yet.
        var remaining: Int
        var continuation: CheckedContinuation<Void, Never>
    }

    let limits: Limits
    let hasSpool: Bool
    var memory = CircularBuffer<Queued>()
    var memoryBytes = 0
    /// Memory promised to uploads being journaled, not yet in `memory`.
    var reservedItems = 0
    var reservedBytes = 0
    /// Spool writes under way: accepted (if they succeed) and older than anything offered after.
    var spoolWriting = 0
    /// Records on disk that no sender has taken yet.
    var spoolAvailable = 0
    var inFlight = 0
    var incomplete = 0
    var nextSequence: UInt64
    var closed = false
    /// Set at the drain deadline: spool writes finishing later are kept for the next start.
    var abandoned = false
    /// False once the spool's folder ends with this process (Lambda's spin-down): what it
    /// holds at the end is then dropped, not kept for a next start that never comes.
    var spoolOutlivesShutdown = true
    /// Uploads up to this sequence were discarded (a SnapStart restore): a delivery of one
    /// taken before must not be sent.
    var staleThrough: UInt64?
    /// While set, senders get nothing (a SnapStart snapshot may come at any moment).
    var held = false
    /// Deliveries waiting in `mayAttempt` for the hold to end, by waiter id.
    var heldAttempts: [UInt64: CheckedContinuation<Void, Never>] = [:]
    /// When recent uploads arrived, by sequence, while `held` (to find what came before a
    /// restore); bounded.
    var arrivals = CircularBuffer<(sequence: UInt64, at: ContinuousClock.Instant)>()
    var senders: [Sender] = []
    var flushes: [Flush] = []
    var nextWaiterID: UInt64 = 0

    init(limits: Limits, hasSpool: Bool, recoveredFromSpool: Int, nextSequence: UInt64) {
        self.limits = limits
        self.hasSpool = hasSpool
        self.spoolAvailable = recoveredFromSpool
        self.incomplete = recoveredFromSpool
        self.nextSequence = nextSequence
    }

    /// Where an offered upload goes.
    enum Placement {
        /// Memory is reserved for it: journal it, then `commit`.
        case memory(sequence: UInt64)
        case spool(sequence: UInt64)
        case refused(DropReason)
    }

    mutating func offer(bytes: Int, arrivedAt: ContinuousClock.Instant) -> Placement {
        if closed { return .refused(.queueFull) }
        let sequence = nextSequence
        // While the spool holds uploads, new ones join it behind them: oldest first.
        let behindSpool = spoolWriting + spoolAvailable > 0
        // One upload larger than the byte bound alone is still taken into an empty queue:
        // the size limit for single uploads is the body limit, not this.
        let items = memory.count + reservedItems
        let fits = items < limits.maxItems && (memoryBytes + reservedBytes + bytes <= limits.maxBytes || items == 0)
        if held {
            if arrivals.count >= 4096 { arrivals.removeFirst() }
            arrivals.append((sequence, arrivedAt))
        }
        if !behindSpool, fits {
            nextSequence += 1
            incomplete += 1
            reservedItems += 1
            reservedBytes += bytes
            return .memory(sequence: sequence)
        }
        guard hasSpool else { return .refused(.queueFull) }
        nextSequence += 1
        incomplete += 1
        spoolWriting += 1
        return .spool(sequence: sequence)
    }

    /// Puts an upload into the memory it reserved; returns a waiting sender to hand it to.
    mutating func commit(_ queued: Queued, loop: ObjectIdentifier?) -> CheckedContinuation<Wake, Never>? {
        reservedItems -= 1
        reservedBytes -= queued.bytes
        if !senders.isEmpty, !held {
            // A sender on this loop takes it without waking another thread. (Another loop
            // first gave +18% acks/s on one closed-loop connection but +26% CPU and one
            // more context switch per upload; with one core it is all one loop.)
            let index = loop.flatMap { loop in senders.firstIndex { $0.loop == loop } } ?? 0
            inFlight += 1
            return senders.remove(at: index).continuation
        }
        memory.append(queued)
        memoryBytes += queued.bytes
        return nil
    }

    /// A spool write finished: on success the record waits for a sender (the returned one,
    /// if any is waiting); on failure the upload ends as refused.
    mutating func spoolWriteFinished(_ sequence: UInt64, stored: Bool) -> (
        sender: CheckedContinuation<Wake, Never>?, finishedFlushes: [CheckedContinuation<Void, Never>]
    ) {
        spoolWriting -= 1
        if stored, abandoned {
            return (nil, end(sequence))
        }
        if stored {
            spoolAvailable += 1
            return (senders.isEmpty ? nil : senders.removeFirst().continuation, [])
        }
        return (nil, end(sequence))
    }

    /// What a sender should do next.
    enum Take {
        case memory(Queued)
        /// Read a record from the spool (one is reserved for this sender).
        case spool
        case wait
        /// Closed, and nothing left that a sender could take or that could still arrive.
        case finished
    }

    mutating func take() -> Take {
        if held { return closed && spoolWriting == 0 && memory.isEmpty && spoolAvailable == 0 ? .finished : .wait }
        if let queued = memory.popFirst() {
            memoryBytes -= queued.bytes
            inFlight += 1
            return .memory(queued)
        }
        if spoolAvailable > 0 {
            spoolAvailable -= 1
            inFlight += 1
            return .spool
        }
        return closed && spoolWriting == 0 ? .finished : .wait
    }

    /// A sender that reserved a spool read found nothing it could send now.
    mutating func spoolReadFailed(putBack: Bool) {
        inFlight -= 1
        if putBack { spoolAvailable += 1 }
    }

    /// False for an upload that `discardAccepted` dropped (a SnapStart restore).
    func isCurrent(_ sequence: UInt64) -> Bool { staleThrough.map { sequence > $0 } ?? true }

    /// An upload reached its end; returns the flushes that were waiting only for it.
    mutating func end(_ sequence: UInt64) -> [CheckedContinuation<Void, Never>] {
        incomplete -= 1
        guard !flushes.isEmpty else { return [] }
        var finished: [CheckedContinuation<Void, Never>] = []
        var index = 0
        while index < flushes.count {
            if sequence < flushes[index].target { flushes[index].remaining -= 1 }
            if flushes[index].remaining <= 0 {
                finished.append(flushes.remove(at: index).continuation)
            } else {
                index += 1
            }
        }
        return finished
    }

    /// Senders waiting now that can never get work: closed and nothing left.
    mutating func releaseIdleSendersIfFinished() -> [CheckedContinuation<Wake, Never>] {
        guard closed, memory.isEmpty, spoolAvailable == 0, spoolWriting == 0 else { return [] }
        defer { senders.removeAll() }
        return senders.map(\.continuation)
    }

    var isIdle: Bool { memory.isEmpty && inFlight == 0 }

}
