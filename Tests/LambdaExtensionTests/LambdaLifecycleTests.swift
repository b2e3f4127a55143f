import Logging
import NIOConcurrencyHelpers
import NIOCore
import RelayTestSupport
import Testing

@testable import LambdaExtension
@testable import RelayCore

/// An Extensions API that serves scripted events and records what the loop did.
final class InMemoryExtensionsClient: ExtensionsAPIClient {
    struct Calls {
        var registered: [(name: String, events: [String])] = []
        var nextCalls = 0
        var exitErrors: [ExtensionError] = []
        var initErrors: [ExtensionError] = []
        var subscriptions: [String] = []
        /// What the queue looked like each time `/event/next` was called.
        var queueAtNext: [DeliveryPipeline.Snapshot] = []
    }

    private let events: NIOLockedValueBox<[Result<ExtensionEvent, ExtensionError>]>
    /// Watched: a test awaits the loop's next call instead of sleeping.
    let calls = Watched(Calls())
    let queue: DeliveryPipeline?

    init(_ events: [Result<ExtensionEvent, ExtensionError>], queue: DeliveryPipeline? = nil) {
        self.events = NIOLockedValueBox(events)
        self.queue = queue
    }

    func register(name: String, events: [String]) async throws(ExtensionError) -> Registration {
        calls.withLock { $0.registered.append((name, events)) }
        return Registration(functionName: "f", functionVersion: "$LATEST", handler: "app.handler", accountId: nil)
    }

    func next() async throws(ExtensionError) -> ExtensionEvent {
        let snapshot = queue?.snapshot
        calls.withLock {
            $0.nextCalls += 1
            if let snapshot { $0.queueAtNext.append(snapshot) }
        }
        let event = events.withLockedValue { $0.isEmpty ? nil : $0.removeFirst() }
        guard let event else { throw ExtensionError(.unexpectedEvent, "script exhausted") }
        return try event.get()
    }

    func subscribeTelemetry(destinationURI: String, schemaVersion: String) async throws(ExtensionError) {
        calls.withLock { $0.subscriptions.append(destinationURI) }
    }
    func reportInitError(_ error: ExtensionError) async { calls.withLock { $0.initErrors.append(error) } }
    func reportExitError(_ error: ExtensionError) async { calls.withLock { $0.exitErrors.append(error) } }
}

@Suite struct LambdaLifecycleTests {
    static let now: Int64 = 1_800_000_000_000
    let logger = Logger(label: "test", factory: { _ in SwiftLogNoOpLogHandler() })

    let clock = TestClock(wallClockMilliseconds: Self.now)

    func lifecycle(
        _ client: InMemoryExtensionsClient, strategy: FlushStrategy, queue: DeliveryPipeline,
        runtimeDone: RuntimeDoneTracker = RuntimeDoneTracker(), deadline: DrainDeadline = DrainDeadline(),
        invocation: InvocationContext = InvocationContext(), beforeFlush: (@Sendable () async -> Void)? = nil
    ) -> LambdaLifecycle {
        LambdaLifecycle(
            client: client, strategy: strategy, pipeline: queue, runtimeDone: runtimeDone, drainDeadline: deadline,
            invocation: invocation, logger: logger, beforeFlush: beforeFlush, clock: clock)
    }

    /// A memory-only pipeline on the test clock.
    func makeQueue() -> DeliveryPipeline {
        DeliveryPipeline(configuration: .init(maxItems: 10, maxBytes: 1 << 20), clock: clock, logger: logger)
    }

    static func invoke(_ id: String, inMs: Int64 = 3000) -> Result<ExtensionEvent, ExtensionError> {
        .success(.invoke(InvokeEvent(requestId: id, deadlineMs: now + inMs, invokedFunctionArn: nil)))
    }
    static func shutdown(inMs: Int64 = 1700) -> Result<ExtensionEvent, ExtensionError> {
        .success(.shutdown(ShutdownEvent(shutdownReason: "SPINDOWN", deadlineMs: now + inMs)))
    }

    func upload() -> Upload { Upload(method: .POST, target: "/ingest", headers: [:], body: ByteBuffer(string: "x")) }

    @Test func loopEndsOnShutdownAndSetsTheDrainDeadlineFromDeadlineMs() async throws {
        let queue = makeQueue()
        let client = InMemoryExtensionsClient([Self.invoke("r1"), Self.invoke("r2"), Self.shutdown(inMs: 1700)])
        let deadline = DrainDeadline()
        let invocation = InvocationContext()
        try await lifecycle(client, strategy: .background, queue: queue, deadline: deadline, invocation: invocation).run()
        #expect(client.calls.withLock { $0.nextCalls } == 3)
        let drainBy = try #require(deadline.value)
        // 1700 ms from "now" less the 200 ms safety margin, on the relay's clock.
        #expect(drainBy == clock.now + .milliseconds(1500))
        #expect(invocation.requestID == nil)
    }

    /// A sender that takes 100 ms of the test clock per upload.
    func slowSender(_ queue: DeliveryPipeline, onSent: @escaping @Sendable () -> Void = {}) -> Task<Void, Never> {
        Task { [clock] in
            while let delivery = await queue.next() {
                try? await clock.sleep(for: .milliseconds(100))
                onSent()
                await queue.complete(delivery, .delivered)
            }
        }
    }

    /// Moves the clock on by each sender's 100 ms once the sender and the flush's deadline
    /// both wait on it, `uploads` times.
    func sendOnTheClock(_ uploads: Int, client: InMemoryExtensionsClient) async throws {
        for _ in 0..<uploads {
            try await clock.waitForSleepers(2)  // the sender and the flush's bound
            #expect(client.calls.value.nextCalls == 1, "no second /next while an upload is in flight")
            clock.advance(by: .milliseconds(100))
        }
    }

    @Test func invokeStrategyWaitsForQueuedUploadsBeforeTheNextEvent() async throws {
        let queue = makeQueue()
        _ = await queue.admit(upload())
        _ = await queue.admit(upload())
        let sender = slowSender(queue)
        let client = InMemoryExtensionsClient([Self.invoke("r1"), Self.shutdown()], queue: queue)
        let loop = Task { try await lifecycle(client, strategy: .invoke, queue: queue).run() }
        try await sendOnTheClock(2, client: client)
        try await loop.value
        let seen = client.calls.value.queueAtNext
        #expect(seen.count == 2)
        #expect(seen[1].queuedItems == 0 && seen[1].inFlight == 0, "the second /next comes only after the flush")
        queue.close()
        await sender.value
    }

    @Test func uploadsMadeBeforeTheFlushGoOutWithIt() async throws {
        // The self-profiler queues its window in `beforeFlush`; the flush must cover it.
        let queue = makeQueue()
        let sent = NIOLockedValueBox(0)
        let sender = slowSender(queue) { sent.withLockedValue { $0 += 1 } }
        let client = InMemoryExtensionsClient([Self.invoke("r1"), Self.shutdown()], queue: queue)
        let upload = upload()
        let loop = Task { try await lifecycle(client, strategy: .invoke, queue: queue, beforeFlush: { _ = await queue.admit(upload) }).run() }
        try await sendOnTheClock(1, client: client)
        try await loop.value
        let seen = client.calls.value.queueAtNext
        #expect(seen.count == 2)
        #expect(seen[1].queuedItems == 0 && seen[1].inFlight == 0, "the second /next comes only after the flush")
        #expect(sent.withLockedValue { $0 } == 1, "the upload made in beforeFlush was sent by the flush")
        queue.close()
        await sender.value
    }

    @Test func backgroundStrategyDoesNotWait() async throws {
        let queue = makeQueue()
        _ = await queue.admit(upload())  // nobody sends it
        let client = InMemoryExtensionsClient([Self.invoke("r1"), Self.shutdown()], queue: queue)
        try await lifecycle(client, strategy: .background, queue: queue).run()
        #expect(client.calls.withLock { $0.queueAtNext }.last?.queuedItems == 1)
    }

    @Test func endStrategyWaitsForRuntimeDoneOfThatRequestThenFlushes() async throws {
        let queue = makeQueue()
        let runtimeDone = RuntimeDoneTracker()
        let client = InMemoryExtensionsClient([Self.invoke("req-a"), Self.shutdown()], queue: queue)
        let flushing = Watched(false)
        let loop = Task {
            try await lifecycle(client, strategy: .end, queue: queue, runtimeDone: runtimeDone, beforeFlush: { flushing.withLock { $0 = true } })
                .run()
        }
        // The invocation began: the loop waits on the clock for its deadline, and for runtimeDone.
        try await clock.waitForSleepers()
        // The handler uploads during the invocation, then the runtime finishes.
        _ = await queue.admit(upload())
        runtimeDone.markDone("other-request")
        #expect(await !flushing.becomes(within: .milliseconds(50)) { $0 }, "waits for runtimeDone of req-a")
        #expect(client.calls.value.nextCalls == 1, "waits for runtimeDone of req-a")
        runtimeDone.markDone("req-a")
        try await flushing.wait("the flush after runtimeDone") { $0 }
        #expect(await !client.calls.becomes(within: .milliseconds(50)) { $0.nextCalls > 1 }, "then waits for the upload to be sent")
        let delivery = try #require(await queue.next())
        await queue.complete(delivery, .delivered)
        try await loop.value
        let last = try #require(client.calls.withLock { $0.queueAtNext }.last)
        #expect(last.queuedItems == 0 && last.queuedBytes == 0 && last.inFlight == 0 && last.incomplete == 0)
    }

    @Test func flushIsBoundedByTheInvocationDeadline() async throws {
        let queue = makeQueue()
        _ = await queue.admit(upload())  // never sent
        let client = InMemoryExtensionsClient([Self.invoke("r1", inMs: 400), Self.shutdown()], queue: queue)
        let loop = Task { try await lifecycle(client, strategy: .end, queue: queue).run() }  // no runtimeDone either
        // Without the bound the flush would never end (nothing sends the upload): it waits
        // on the clock for the invocation deadline less the margin, and no longer.
        try await clock.waitForSleepers()
        #expect(clock.nextDeadline == .milliseconds(200), "400 ms deadline less the 200 ms margin")
        #expect(client.calls.withLock { $0.nextCalls } == 1)
        clock.advance(by: .milliseconds(199))
        // Nothing woke: the bound still sleeps, so the loop cannot have moved on.
        #expect(clock.sleeperCount == 1, "still flushing before the deadline")
        #expect(client.calls.value.nextCalls == 1, "still flushing before the deadline")
        clock.advance(by: .milliseconds(1))
        try await loop.value
        #expect(client.calls.withLock { $0.nextCalls } == 2, "gave up at deadline - margin")
    }

    @Test func apiFailureIsReportedThroughExitErrorNotACrash() async {
        let queue = makeQueue()
        let failure = ExtensionError(.unexpectedEvent, "unknown eventType 'RESTART'")
        let client = InMemoryExtensionsClient([Self.invoke("r1"), .failure(failure)])
        await #expect(throws: ExtensionError.self) {
            try await lifecycle(client, strategy: .background, queue: queue).run()
        }
        #expect(client.calls.withLock { $0.exitErrors } == [failure])
    }

    @Test func requestIDOfTheCurrentInvocationIsProvidedToLogs() async throws {
        let queue = makeQueue()
        let invocation = InvocationContext()
        let client = InMemoryExtensionsClient([Self.invoke("req-42")], queue: queue)
        _ = try? await lifecycle(client, strategy: .background, queue: queue, invocation: invocation).run()
        #expect(invocation.requestID == "req-42")
        #expect(invocation.metadataProvider.get()["request_id"] == "req-42")
    }
}

@Suite struct ExtensionEventDecodingTests {
    @Test func decodesInvokeAndShutdown() throws {
        let invoke = try ExtensionEvent.decode(
            Array(
                #"{"eventType":"INVOKE","deadlineMs":1700000000123,"requestId":"abc","invokedFunctionArn":"arn:aws:lambda:us-east-1:1:function:f","tracing":{"type":"X-Amzn-Trace-Id","value":"Root=1"}}"#
                    .utf8))
        #expect(invoke == .invoke(InvokeEvent(requestId: "abc", deadlineMs: 1_700_000_000_123, invokedFunctionArn: "arn:aws:lambda:us-east-1:1:function:f")))
        let shutdown = try ExtensionEvent.decode(Array(#"{"eventType":"SHUTDOWN","shutdownReason":"spindown","deadlineMs":42}"#.utf8))
        #expect(shutdown == .shutdown(ShutdownEvent(shutdownReason: "spindown", deadlineMs: 42)))
    }

    @Test(arguments: ["", "not json", #"{"eventType":"RESTART"}"#, #"{"eventType":"INVOKE"}"#, #"{"deadlineMs":1}"#, "[]"])
    func unexpectedAnswersAreErrorsNotCrashes(body: String) {
        #expect(throws: ExtensionError.self) { try ExtensionEvent.decode(Array(body.utf8)) }
    }

    @Test func telemetryBatchesYieldRuntimeDoneRequestIDs() {
        let batch =
            #"[{"time":"2026-11-24T00:00:00.000Z","type":"platform.start","record":{"requestId":"a"}},{"time":"2026-11-24T00:00:01.000Z","type":"platform.runtimeDone","record":{"requestId":"a","status":"success"}},{"type":"platform.runtimeDone","record":{"requestId":"b","status":"timeout"}}]"#
        #expect(TelemetryListener.runtimeDoneRequestIDs(in: Array(batch.utf8)) == ["a", "b"])
        #expect(TelemetryListener.runtimeDoneRequestIDs(in: Array("garbage".utf8)).isEmpty)
    }

    @Test func flushStrategySetting() {
        #expect(ExtensionSettings(environment: [:]).flushStrategy == .background)
        #expect(ExtensionSettings(environment: ["PYROSCOPE_FLUSH_ON_INVOKE": "true"]).flushStrategy == .invoke)
        #expect(ExtensionSettings(environment: ["PYROSCOPE_FLUSH_STRATEGY": "END"]).flushStrategy == .end)
        let both = ExtensionSettings(environment: ["PYROSCOPE_FLUSH_ON_INVOKE": "true", "PYROSCOPE_FLUSH_STRATEGY": "end"])
        #expect(both.flushStrategy == .end && both.warnings.map(\.variable) == ["PYROSCOPE_FLUSH_ON_INVOKE"])
        let bad = ExtensionSettings(environment: ["PYROSCOPE_FLUSH_STRATEGY": "sometimes"])
        #expect(bad.flushStrategy == .background && bad.warnings.first?.fallback == "background")
    }

    /// Where Lambda freezes the environment an upload of unknown fate is never sent again;
    /// outside Lambda and on Lambda Managed Instances (never frozen) it is.
    @Test func uploadsOfUnknownFateAreResentOnlyWhereNothingFreezes() {
        #expect(!ExtensionSettings(environment: [:]).relay.resendsUnknownFate)
        #expect(!ExtensionSettings(environment: ["AWS_LAMBDA_INITIALIZATION_TYPE": "snap-start"]).relay.resendsUnknownFate)
        #expect(ExtensionSettings(environment: ["PYROSCOPE_DEV_MODE": "true"]).relay.resendsUnknownFate)
        #expect(ExtensionSettings(environment: ["AWS_LAMBDA_INITIALIZATION_TYPE": "lambda-managed-instances"]).relay.resendsUnknownFate)
    }
}
