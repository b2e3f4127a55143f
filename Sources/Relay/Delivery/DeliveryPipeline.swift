import Logging
import NIOCore
import NIOHTTP1
import NIOPosix
import Synchronization

/// The one owner of accepted uploads: the memory queue, the disk spool and their
/// accounting. Ingress and the self-profiler `admit`, the forwarder's senders take with
/// `next` and report with `complete`, the Lambda lifecycle `flush`es, and the metrics and
/// stats read `snapshot` and `counters`.
///
/// A `Mutex`-guarded class rather than an actor: `admit` runs on the NIO event loop for
/// every request, and answering the client must not wait for an actor hop. Waiters
/// (senders in `next()`, callers of `flush()`) are continuations resumed outside the lock.
/// Spool file I/O runs on the thread pool, never under the lock or on an event loop.
public final class DeliveryPipeline: Sendable {
    public struct Configuration: Sendable {
        public var maxItems: Int
        public var maxBytes: Int
        /// Where uploads go when memory is full; nil: no spool (full means 503).
        public var spoolDirectory: String?
        public var spoolMaxBytes: Int
        /// False when the remote address is unusable: uploads are refused as `misconfigured`.
        public var acceptsUploads: Bool

        public init(maxItems: Int = 1024, maxBytes: Int = 8 << 20, spoolDirectory: String? = nil, spoolMaxBytes: Int = 64 << 20, acceptsUploads: Bool = true) {
            self.maxItems = max(1, maxItems)
            self.maxBytes = max(1, maxBytes)
            self.spoolDirectory = spoolDirectory
            self.spoolMaxBytes = spoolMaxBytes
            self.acceptsUploads = acceptsUploads
        }
    }

    public enum Admission: Sendable, Equatable {
        case queued
        case spooled
        case refused(DropReason)

        public var isAccepted: Bool { if case .refused = self { false } else { true } }
    }

    /// `admit`'s answer: at once, or once the spool write finished (on the caller's loop).
    public enum PendingAdmission {
        case decided(Admission)
        case writing(EventLoopFuture<Admission>)
    }

    /// An upload a sender took; hand it back with `complete`.
    public struct Delivery: Sendable {
        public let upload: Upload
        let sequence: UInt64
        let journal: UploadJournal.Entry?
        /// Memory it held in the queue; 0 when it came from the spool.
        let memoryBytes: Int
        public let isFromSpool: Bool
    }

    public enum Outcome: Sendable, Equatable {
        case delivered
        /// Sent whole, its answer lost (a freeze, a reset) and not sent again: the remote
        /// most likely stored it. Counted as delivered, and as unconfirmed.
        case unconfirmed
        case dropped(DropReason)
        /// Cut short at shutdown while it came from the spool: its record stays for the next start.
        case keptInSpool
    }

    public struct Snapshot: Sendable, Equatable {
        public var queuedItems = 0
        public var queuedBytes = 0
        public var inFlight = 0
        public var spoolItems = 0
        public var spoolBytes = 0
        /// Accepted uploads that have not ended yet, wherever they are.
        public var incomplete = 0
        /// Callers waiting in `flush()` (an invocation flush in progress).
        public var waitingFlushes = 0
        /// When the oldest upload waiting in memory arrived; nil when none.
        public var oldestQueuedAt: ContinuousClock.Instant? = nil
    }

    public let configuration: Configuration
    public let counters: RelayCounters
    let spool: Spool?
    /// Protects what waits in memory against the process being killed; with the spool.
    let journal: UploadJournal?
    let clock: any RelayClock
    private let injectedThreadPool: NIOThreadPool?
    /// Where the spool's file I/O runs. SwiftNIO's shared pool starts its thread when first
    /// named, so it is named at first use: a life that never spools creates no thread for it.
    var threadPool: NIOThreadPool { injectedThreadPool ?? .singleton }
    let logger: Logger
    let state: Mutex<PipelineState>
    private let memoryRelease = MemoryRelease()

    /// Opens the spool (replaying what an earlier run left in it). A spool that cannot be
    /// opened is logged and left out: uploads beyond memory are then refused with 503.
    public init(
        configuration: Configuration, counters: RelayCounters = RelayCounters(), clock: any RelayClock = SystemClock(),
        threadPool: NIOThreadPool? = nil, logger: Logger
    ) {
        self.configuration = configuration
        self.counters = counters
        self.clock = clock
        self.injectedThreadPool = threadPool
        self.logger = logger
        var spool: Spool?
        var journal: UploadJournal?
        if let directory = configuration.spoolDirectory {
            do {
                spool = try Spool(directory: directory, maxBytes: configuration.spoolMaxBytes, logger: logger)
            } catch {
                logger.warning(
                    "Spool unavailable: uploads beyond the memory queue will be refused with 503, and those in memory would not survive the process being killed. Set PYROSCOPE_SPOOL_DIR to a folder this user can write (in Lambda, under /tmp)",
                    metadata: [LogKey.spoolDir: "\(directory)", LogKey.error: "\(error)"])
            }
        }
        if let spool {
            do {
                journal = try UploadJournal(directory: spool.files.directory, logger: logger)
            } catch {
                logger.warning(
                    "Journal unavailable: uploads waiting in memory would not survive the process being killed. Set PYROSCOPE_SPOOL_DIR to a folder this user can write (in Lambda, under /tmp)",
                    metadata: [LogKey.spoolDir: "\(spool.files.directory)", LogKey.error: "\(error)"])
            }
        }
        self.spool = spool
        self.journal = journal
        let recovered = spool?.recovered.count ?? 0
        if recovered > 0 {
            counters.recordReplayed(recovered)
            logger.info("Replaying uploads left in the spool by an earlier run", metadata: [LogKey.count: .stringConvertible(recovered)])
        }
        state = Mutex(
            PipelineState(
                limits: .init(maxItems: configuration.maxItems, maxBytes: configuration.maxBytes), hasSpool: spool != nil,
                recoveredFromSpool: recovered, nextSequence: (spool?.highestRecoveredSequence ?? 0) + 1))
    }

    // MARK: Admission

    /// Takes an upload: into memory (decided at once, on the calling thread), into the
    /// spool (decided when the write finished), or refused with a reason. Counts it.
    public func admit(_ upload: Upload, on eventLoop: any EventLoop) -> PendingAdmission {
        switch place(upload) {
        case .decided(let admission): return .decided(admission)
        case .spool(let sequence):
            let write = threadPool.runIfActive(eventLoop: eventLoop) { [self] in try writeToSpool(upload, sequence: sequence) }
            return .writing(write.map { true }.recover { _ in false }.map { [self] in finishSpoolWrite(sequence, stored: $0) })
        }
    }

    /// `admit` for callers off the event loops (the self-profiler).
    public func admit(_ upload: Upload) async -> Admission {
        switch place(upload) {
        case .decided(let admission): return admission
        case .spool(let sequence):
            let stored = (try? await threadPool.runIfActive { [self] in try writeToSpool(upload, sequence: sequence) }) != nil
            return finishSpoolWrite(sequence, stored: stored)
        }
    }

    private enum Placed {
        case decided(Admission)
        case spool(UInt64)
    }

    private func place(_ upload: Upload) -> Placed {
        counters.recordReceived(bytes: upload.body.readableBytes)
        guard configuration.acceptsUploads else {
            counters.recordDropped(.misconfigured)
            return .decided(.refused(.misconfigured))
        }
        let bytes = upload.queuedBytes
        switch state.withLock({ $0.offer(bytes: bytes, arrivedAt: upload.receivedAt) }) {
        case .memory(let sequence):
            // Journaled before it is acknowledged: a kill after the 200 cannot lose it.
            let entry = journal?.record(upload, sequence: sequence, receivedAtUnixMs: wallClockArrival(of: upload))
            let queued = PipelineState.Queued(sequence: sequence, upload: upload, bytes: bytes, journal: entry)
            let loop = MultiThreadedEventLoopGroup.currentEventLoop.map { ObjectIdentifier($0) }
            let action = state.withLock { $0.commit(queued, loop: loop) }
            counters.recordAccepted()
            perform(action)
            return .decided(.queued)
        case .spool(let sequence):
            return .spool(sequence)
        case .refused(let reason):
            counters.recordDropped(reason)
            return .decided(.refused(reason))
        }
    }

    private func writeToSpool(_ upload: Upload, sequence: UInt64) throws {
        guard let spool else { throw SpoolError(code: .io, message: "no spool") }
        let record = SpoolRecord(
            method: upload.method.rawValue, target: upload.target, headers: upload.headers.map { ($0.name, $0.value) },
            body: Array(upload.body.readableBytesView), receivedAtUnixMs: wallClockArrival(of: upload))
        do {
            try spool.append(record, sequence: sequence)
        } catch {
            if error.code != .full { logger.error("Could not write an upload to the spool", metadata: [LogKey.error: "\(error)"]) }
            throw error
        }
    }

    /// When the upload arrived, on the wall clock (what survives a restart).
    private func wallClockArrival(of upload: Upload) -> Int64 {
        clock.wallClockMilliseconds - (clock.now - upload.receivedAt).wholeMilliseconds
    }

    private func finishSpoolWrite(_ sequence: UInt64, stored: Bool) -> Admission {
        let action = state.withLock { $0.spoolWriteFinished(sequence, stored: stored) }
        if stored { counters.recordAccepted() } else { counters.recordDropped(.queueFull) }
        perform(action)
        return stored ? .spooled : .refused(.queueFull)
    }

    // MARK: Senders

    /// Waits until a burst begins (a flush, or the drain at shutdown): true, start the burst
    /// senders; false when nothing will ever be sent again, or when cancelled.
    public func burstBegins() async -> Bool {
        await park(cancelled: false) { state, _, continuation in
            state.watchForBurst(continuation)
        } unpark: { state, _ in
            defer { state.burstWatcher = nil }
            return state.burstWatcher
        }
    }

    /// The next upload to send, oldest first (memory, then the spool); nil once closed
    /// and nothing is left, or when the calling task is cancelled. `burst`: for a sender
    /// that sends only while a flush waits or the pipeline drains (`PipelineState.inBurst`):
    /// nil once the burst is over.
    public func next(burst: Bool = false) async -> Delivery? {
        while !Task.isCancelled {
            switch state.withLock({ $0.take(burst: burst) }) {
            case .memory(let queued):
                return Delivery(queued)
            case .spool:
                if let delivery = await readFromSpool() { return delivery }
            case .finished:
                return nil
            case .wait:
                switch await waitForWork(burst: burst) {
                case .memory(let queued): return Delivery(queued)
                case .spool: continue
                case .closed: return nil
                }
            }
        }
        return nil
    }

    private func waitForWork(burst: Bool) async -> PipelineState.Wake {
        let loop = MultiThreadedEventLoopGroup.currentEventLoop.map { ObjectIdentifier($0) }
        return await park(cancelled: .closed) { state, id, continuation in
            // Work may have arrived since `take`: let the caller look again.
            if (!burst || state.inBurst) && !state.isHeld && (!state.memory.isEmpty || state.spoolAvailable > 0) { return .spool }
            if state.isClosed && state.spoolWriting == 0 && state.memory.isEmpty && state.spoolAvailable == 0 { return .closed }
            if burst && !state.inBurst { return .closed }
            if burst {
                state.burstSenders.append(.init(id: id, loop: loop, continuation: continuation))
            } else {
                state.senders.append(.init(id: id, loop: loop, continuation: continuation))
            }
            return nil
        } unpark: { state, id in
            if let index = state.senders.firstIndex(where: { $0.id == id }) { return state.senders.remove(at: index).continuation }
            return state.burstSenders.firstIndex { $0.id == id }.map { state.burstSenders.remove(at: $0).continuation }
        }
    }

    /// Reads the oldest spooled record (a read was reserved by `take`).
    private func readFromSpool() async -> Delivery? {
        guard let spool else { return nil }
        let result = (try? await threadPool.runIfActive { spool.checkOutOldest() }) ?? .unreadable
        switch result {
        case .record(let sequence, let record):
            var headers = HTTPHeaders()
            for (name, value) in record.headers { headers.add(name: name, value: value) }
            let age = Duration.milliseconds(max(0, clock.wallClockMilliseconds - record.receivedAtUnixMs))
            let upload = Upload(
                method: HTTPMethod(rawValue: record.method), target: record.target, headers: headers,
                body: ByteBuffer(bytes: record.body), receivedAt: clock.now - age)
            return Delivery(upload: upload, sequence: sequence, journal: nil, memoryBytes: 0, isFromSpool: true)
        case .corrupt(let sequence), .vanished(let sequence):
            finish(sequence, outcome: .dropped(.corrupt), memoryBytes: 0)
            return nil
        case .unreadable:
            state.withLock { $0.spoolReadFailed(putBack: true) }
            // Out of file descriptors, say: give the system a moment before trying again.
            try? await clock.sleep(for: .milliseconds(100))
            return nil
        case .empty:
            // The count said a record was there and the spool has none (discarded meanwhile).
            state.withLock { $0.spoolReadFailed(putBack: false) }
            return nil
        }
    }

    /// Reports how a taken upload ended; counts it, and deletes its spool record unless
    /// it is kept for the next start.
    public func complete(_ delivery: Delivery, _ outcome: Outcome) async {
        if delivery.isFromSpool, outcome != .keptInSpool, let spool {
            _ = try? await threadPool.runIfActive { spool.remove(delivery.sequence) }
        }
        if let entry = delivery.journal { journal?.finished(entry) }
        finish(delivery.sequence, outcome: outcome, memoryBytes: delivery.memoryBytes, bodyBytes: delivery.upload.body.readableBytes)
    }

    func finish(_ sequence: UInt64, outcome: Outcome, memoryBytes: Int, bodyBytes: Int = 0) {
        let action = state.withLock { $0.finish(sequence) }
        switch outcome {
        case .delivered: counters.recordDelivered(bytes: bodyBytes)
        case .unconfirmed:
            counters.recordDelivered(bytes: bodyBytes)
            counters.recordUnconfirmed()
        case .dropped(let reason): counters.recordDropped(reason)
        case .keptInSpool: recordLeftInSpool(1)
        }
        perform(action)
        memoryRelease.sent(bytes: memoryBytes, queueIdle: action.idle)
    }

    /// Carries out what a state operation decided under the lock: ends the journal entries
    /// of uploads taken out of memory, records what stays in the spool, and resumes waiters.
    /// (Drops are counted by the caller, which knows their reason.)
    func perform(_ action: PipelineState.Action) {
        endJournal(action.droppedFromMemory)
        recordLeftInSpool(action.leftInSpool)
        if let (sender, wake) = action.sender { sender.resume(returning: wake) }
        for (sender, wake) in action.senders { sender.resume(returning: wake) }
        for flush in action.flushes { flush.resume() }
        for attempt in action.heldAttempts { attempt.resume() }
        for waiter in action.quiesced { waiter.resume() }
        action.burstBegan?.resume(returning: true)
    }
}

extension DeliveryPipeline.Delivery {
    init(_ queued: PipelineState.Queued) {
        self.init(upload: queued.upload, sequence: queued.sequence, journal: queued.journal, memoryBytes: queued.bytes, isFromSpool: false)
    }
}
