import Logging
import NIOCore
import ServiceLifecycle

/// The upstream side: `workers` concurrent senders take uploads from the queue and relay
/// them. On graceful shutdown it stops taking new uploads, sends what is queued within
/// the drain timeout, and accounts for whatever the deadline leaves behind.
public struct UploadForwarder: Service, CustomStringConvertible {
    let queue: UploadQueue
    let uploader: any Uploader
    /// nil when the remote address is unusable; ingress refuses uploads then, so
    /// nothing should reach the senders, but any that does is accounted for.
    let builder: UpstreamRequestBuilder?
    let counters: RelayCounters
    let workers: Int
    let drainTimeout: Duration
    let drainDeadline: DrainDeadline
    let logger: Logger

    public init(
        queue: UploadQueue, uploader: any Uploader, builder: UpstreamRequestBuilder?, counters: RelayCounters,
        workers: Int, drainTimeout: Duration, drainDeadline: DrainDeadline = DrainDeadline(), logger: Logger
    ) {
        self.queue = queue
        self.uploader = uploader
        self.builder = builder
        self.counters = counters
        self.workers = max(1, workers)
        self.drainTimeout = drainTimeout
        self.drainDeadline = drainDeadline
        self.logger = logger
    }

    /// ServiceLifecycle logs services by description: keep configuration (and its
    /// credentials) out of it.
    public var description: String { "UploadForwarder(workers: \(workers))" }

    public func run() async {
        await withTaskGroup(of: Void.self) { group in
            group.addTask {
                await withTaskGroup(of: Void.self) { senders in
                    for _ in 0..<workers {
                        senders.addTask {
                            while let ticket = await queue.next() {
                                await deliver(ticket)
                                queue.complete(ticket)
                            }
                        }
                    }
                }
            }
            group.addTask {
                // Returns at graceful shutdown (throws only if cancelled first).
                guard (try? await gracefulShutdown()) != nil else { return }
                let deadline = drainDeadline.value ?? .now + drainTimeout
                let pending = queue.snapshot
                logger.debug(
                    "Draining upload queue",
                    metadata: [
                        "queued": .stringConvertible(pending.queuedItems), "in_flight": .stringConvertible(pending.inFlight),
                        "deadline_ms": .stringConvertible((deadline - .now).wholeMilliseconds),
                    ])
                queue.close()
                try? await Task.sleep(until: deadline)
            }
            // Whichever ends first: the senders drained everything, or the deadline passed.
            await group.next()
            group.cancelAll()
        }
        let abandoned = queue.removeAll()
        if !abandoned.isEmpty {
            counters.recordDropped(.shutdownDeadline, count: abandoned.count)
            logger.error(
                "Dropped queued uploads at shutdown: drain deadline passed",
                metadata: [
                    "reason": "\(DropReason.shutdownDeadline.rawValue)", "count": .stringConvertible(abandoned.count),
                ])
        }
    }

    func deliver(_ ticket: UploadQueue.Ticket) async {
        let upload = ticket.upload
        var logger = logger
        logger[metadataKey: "path"] = "\(upload.path)"
        guard let builder else {
            drop(.misconfigured, logger: logger, "Dropped upload: the remote address is unusable")
            return
        }
        let request = builder.build(upload)
        let started = ContinuousClock.now
        do {
            let response = try await uploader.send(request)
            let elapsed = ContinuousClock.now - started
            let code = response.status.code
            if (200..<300).contains(code) {
                counters.recordDelivered(bytes: upload.body.readableBytes)
                logger.trace(
                    "Relayed upload",
                    metadata: [
                        "status": .stringConvertible(code), "bytes": .stringConvertible(upload.body.readableBytes),
                        "duration_ms": .stringConvertible(elapsed.wholeMilliseconds),
                    ])
            } else if (400..<500).contains(code), code != 408, code != 429 {
                drop(
                    .rejected4xx, logger: logger, "Failed to relay request: remote rejected the upload",
                    metadata: [
                        "status": .stringConvertible(code), "body": "\(response.bodyExcerpt)",
                    ])
            } else {
                drop(
                    .upstreamError, logger: logger, "Failed to relay request: remote answered an error",
                    metadata: [
                        "status": .stringConvertible(code), "body": "\(response.bodyExcerpt)",
                    ])
            }
        } catch {
            if Task.isCancelled {
                drop(.shutdownDeadline, logger: logger, "Dropped upload in flight: drain deadline passed")
            } else {
                drop(.upstreamError, logger: logger, "Failed to relay request: \(error)")
            }
        }
    }

    private func drop(_ reason: DropReason, logger: Logger, _ message: Logger.Message, metadata: Logger.Metadata = [:]) {
        counters.recordDropped(reason)
        var metadata = metadata
        metadata["reason"] = "\(reason.rawValue)"
        logger.error(message, metadata: metadata)
    }
}

extension Duration {
    public var wholeMilliseconds: Int64 {
        let (seconds, attoseconds) = components
        return seconds * 1000 + attoseconds / 1_000_000_000_000_000
    }
}
