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

    /// Where the pipeline is in its life. Only `accepting` takes uploads; `held` (while a
    /// SnapStart snapshot may be taken) gives senders nothing, in either of the first two.
    enum Phase: Equatable {
        case accepting(held: Bool)
        /// Closed at graceful shutdown: uploads are refused (503), senders drain what is left.
        case draining(held: Bool)
        /// The drain deadline passed: what was left is dropped, or stays in the spool; spool
        /// writes finishing later are kept there.
        case abandoned
    }

    /// What an operation leaves to do once the lock is released, as one value: the
    /// pipeline performs it (`DeliveryPipeline.perform`) outside the lock.
    struct Action {
        /// The one sender handed new work (on every admission while senders wait: kept out of
        /// `senders`, so handing an upload over allocates nothing).
        var sender: (continuation: CheckedContinuation<Wake, Never>, wake: Wake)?
        /// Senders released all at once (a hold ends, the pipeline closes), and what with.
        var senders: [(continuation: CheckedContinuation<Wake, Never>, wake: Wake)] = []
        /// Flushes whose uploads have all ended.
        var flushes: [CheckedContinuation<Void, Never>] = []
        /// Deliveries that waited out a hold.
        var heldAttempts: [CheckedContinuation<Void, Never>] = []
        /// Callers of `quiesce` released: no attempt is on the wire any more.
        var quiesced: [CheckedContinuation<Void, Never>] = []
        /// The forwarder's wait for a burst: true, start the burst senders.
        var burstBegan: CheckedContinuation<Bool, Never>?
        /// Uploads taken out of memory without being sent: their journal entries end.
        var droppedFromMemory: [Queued] = []
        /// Spool records left at shutdown: kept for the next start, or dropped with it.
        var leftInSpool = 0
        /// Nothing waits in memory and nothing is in flight (memory can go back to the system).
        var idle = false
    }

    let limits: Limits
    let hasSpool: Bool
    var phase = Phase.accepting(held: false)
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
    /// False once the spool's folder ends with this process (Lambda's spin-down): what it
    /// holds at the end is then dropped, not kept for a next start that never comes.
    var spoolOutlivesShutdown = true
    /// Uploads up to this sequence were discarded (a SnapStart restore): a delivery of one
    /// taken before must not be sent.
    var staleThrough: UInt64?
    /// Deliveries waiting in `mayAttempt` for the hold to end, by waiter id.
    var heldAttempts: [UInt64: CheckedContinuation<Void, Never>] = [:]
    /// Attempts on the wire: let through by `mayAttempt`, not ended yet (`attemptEnded`). A
    /// freeze must not find one: its fate would be unknown at the thaw.
    var attemptsOnWire = 0
    /// Callers of `quiesce` waiting for the attempts on the wire to end, by waiter id.
    var quiesceWaiters: [UInt64: CheckedContinuation<Void, Never>] = [:]
    /// When recent uploads arrived, by sequence, while held (to find what came before a
    /// restore); bounded.
    var arrivals = CircularBuffer<(sequence: UInt64, at: ContinuousClock.Instant)>()
    var senders: [Sender] = []
    /// Senders beyond the steady ones, started for a burst (see `inBurst`) and ended with it.
    var burstSenders: [Sender] = []
    /// Flushes in progress: each wants every sender sending.
    var burstRequests = 0
    /// The forwarder's wait for a burst to begin (it then starts the burst senders).
    var burstWatcher: CheckedContinuation<Bool, Never>?
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

    var isClosed: Bool { if case .accepting = phase { false } else { true } }

    /// While a flush waits or the pipeline drains at shutdown, the burst senders send too:
    /// how fast a flush or a drain ends is then bounded by the remote, not by `workers`.
    var inBurst: Bool { isClosed || burstRequests > 0 }

    var isHeld: Bool {
        switch phase {
        case .accepting(let held), .draining(let held): held
        case .abandoned: false
        }
    }

    mutating func offer(bytes: Int, arrivedAt: ContinuousClock.Instant) -> Placement {
        if isClosed { return .refused(.queueFull) }
        let sequence = nextSequence
        // While the spool holds uploads, new ones join it behind them: oldest first.
        let behindSpool = spoolWriting + spoolAvailable > 0
        // One upload larger than the byte bound alone is still taken into an empty queue:
        // the size limit for single uploads is the body limit, not this.
        let items = memory.count + reservedItems
        let fits = items < limits.maxItems && (memoryBytes + reservedBytes + bytes <= limits.maxBytes || items == 0)
        if isHeld {
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

    /// Puts an upload into the memory it reserved, or hands it to a waiting sender.
    mutating func commit(_ queued: Queued, loop: ObjectIdentifier?) -> Action {
        reservedItems -= 1
        reservedBytes -= queued.bytes
        var action = Action()
        if !senders.isEmpty, !isHeld {
            // A sender on this loop takes it without waking another thread. (Another loop
            // first gave +18% acks/s on one closed-loop connection but +26% CPU and one
            // more context switch per upload; with one core it is all one loop.)
            let index = loop.flatMap { loop in senders.firstIndex { $0.loop == loop } } ?? 0
            inFlight += 1
            action.sender = (senders.remove(at: index).continuation, .memory(queued))
            return action
        }
        if inBurst, !burstSenders.isEmpty, !isHeld {
            inFlight += 1
            action.sender = (burstSenders.removeFirst().continuation, .memory(queued))
            return action
        }
        memory.append(queued)
        memoryBytes += queued.bytes
        return action
    }

    /// A spool write finished: on success the record waits for a sender (a waiting one is
    /// woken), or stays for the next start once the pipeline was abandoned; on failure the
    /// upload ends as refused.
    mutating func spoolWriteFinished(_ sequence: UInt64, stored: Bool) -> Action {
        spoolWriting -= 1
        var action = Action()
        if stored, phase == .abandoned {
            action.leftInSpool = 1
            action.flushes = end(sequence)
        } else if stored {
            spoolAvailable += 1
            if !senders.isEmpty {
                action.sender = (senders.removeFirst().continuation, .spool)
            } else if inBurst, !burstSenders.isEmpty {
                action.sender = (burstSenders.removeFirst().continuation, .spool)
            }
        } else {
            action.flushes = end(sequence)
        }
        releaseIdleSendersIfFinished(into: &action)
        return action
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

    /// `burst`: asked by a burst sender, which ends (`finished`) once the burst is over.
    mutating func take(burst: Bool = false) -> Take {
        if burst, !inBurst { return .finished }
        if isHeld { return isClosed && spoolWriting == 0 && memory.isEmpty && spoolAvailable == 0 ? .finished : .wait }
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
        return isClosed && spoolWriting == 0 ? .finished : .wait
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

    /// A taken upload ended (delivered, dropped, kept in the spool).
    mutating func finish(_ sequence: UInt64) -> Action {
        inFlight -= 1
        var action = Action(flushes: end(sequence))
        action.idle = memory.isEmpty && inFlight == 0
        releaseIdleSendersIfFinished(into: &action)
        return action
    }

    /// Refuses further uploads; senders drain what is left.
    mutating func close() -> Action {
        switch phase {
        case .accepting(let held): phase = .draining(held: held)
        case .draining, .abandoned: break
        }
        var action = Action()
        releaseIdleSendersIfFinished(into: &action)
        wakeBurstSenders(into: &action)
        return action
    }

    /// Before an attempt: let through (and counted on the wire) unless held; nil while held.
    /// A cancelled task (the drain deadline) is let through: the attempt machine ends it.
    mutating func admitAttempt(sequence: UInt64, cancelled: Bool) -> Bool? {
        if isHeld, !cancelled { return nil }
        let current = isCurrent(sequence)
        if current { attemptsOnWire += 1 }
        return current
    }

    /// An attempt `admitAttempt` let through ended (answered, failed, or never made).
    mutating func attemptEnded() -> Action {
        attemptsOnWire -= 1
        var action = Action()
        if attemptsOnWire == 0, !quiesceWaiters.isEmpty {
            action.quiesced = Array(quiesceWaiters.values)
            quiesceWaiters.removeAll()
        }
        return action
    }

    /// A flush begins: every burst sender looks for work until it ends.
    mutating func beginBurst() -> Action {
        burstRequests += 1
        var action = Action()
        wakeBurstSenders(into: &action)
        return action
    }

    /// A flush ended: when it was the last, the burst senders waiting end too.
    mutating func endBurst() -> Action {
        burstRequests -= 1
        var action = Action()
        if !inBurst {
            action.senders = burstSenders.map { ($0.continuation, .closed) }
            burstSenders.removeAll()
        }
        return action
    }

    /// Burst senders waiting look again (they wait again if there is nothing to take), and
    /// the forwarder starts them if they are not running.
    private mutating func wakeBurstSenders(into action: inout Action) {
        if let watcher = burstWatcher {
            burstWatcher = nil
            action.burstBegan = watcher
        }
        guard !isHeld else { return }
        action.senders += burstSenders.map { ($0.continuation, .spool) }
        burstSenders.removeAll()
    }

    /// At the drain deadline: memory is emptied (dropped), the spool's records are left, and
    /// every flush is released.
    mutating func abandon() -> Action {
        phase = .abandoned
        var action = Action(droppedFromMemory: Array(memory), leftInSpool: spoolAvailable)
        memory.removeAll()
        memoryBytes = 0
        spoolAvailable = 0
        incomplete -= action.droppedFromMemory.count + action.leftInSpool
        action.flushes = flushes.map(\.continuation)
        flushes.removeAll()
        return action
    }

    /// Senders get nothing until `resume`; arrivals are noted from now on.
    mutating func hold() {
        switch phase {
        case .accepting: phase = .accepting(held: true)
        case .draining: phase = .draining(held: true)
        case .abandoned: break
        }
    }

    /// Ends a hold: waiting senders look again, waiting deliveries go on.
    mutating func resume() -> Action {
        switch phase {
        case .accepting: phase = .accepting(held: false)
        case .draining: phase = .draining(held: false)
        case .abandoned: break
        }
        arrivals.removeAll()
        var action = Action(heldAttempts: Array(heldAttempts.values))
        action.senders = (senders + burstSenders).map { ($0.continuation, .spool) }
        senders.removeAll()
        burstSenders.removeAll()
        heldAttempts.removeAll()
        return action
    }

    /// Marks every upload up to `through` stale and takes those in memory out.
    mutating func discard(through: UInt64) -> Action {
        staleThrough = max(staleThrough ?? 0, through)
        var action = Action(droppedFromMemory: Array(memory.filter { $0.sequence <= through }))
        memory.removeAll { $0.sequence <= through }
        memoryBytes = memory.reduce(0) { $0 + $1.bytes }
        action.flushes = action.droppedFromMemory.flatMap { end($0.sequence) }
        return action
    }

    /// Spool records removed by a restore: they ended.
    mutating func discardedFromSpool(_ sequences: [UInt64]) -> Action {
        spoolAvailable = max(0, spoolAvailable - sequences.count)
        return Action(flushes: sequences.flatMap { end($0) })
    }

    /// Senders waiting now that can never get work: closed and nothing left.
    private mutating func releaseIdleSendersIfFinished(into action: inout Action) {
        guard isClosed, memory.isEmpty, spoolAvailable == 0, spoolWriting == 0 else { return }
        action.senders += (senders + burstSenders).map { ($0.continuation, .closed) }
        senders.removeAll()
        burstSenders.removeAll()
    }

    /// The forwarder waits for a burst: true at once in one, false once nothing is left to
    /// send ever (closed and empty); nil: wait (the continuation is kept).
    mutating func watchForBurst(_ continuation: CheckedContinuation<Bool, Never>) -> Bool? {
        if isClosed, memory.isEmpty, spoolAvailable == 0, spoolWriting == 0 { return false }
        if inBurst { return true }
        burstWatcher = continuation
        return nil
    }
}
