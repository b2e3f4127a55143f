import Foundation
import Logging
import NIOConcurrencyHelpers
import RelayTestSupport
import Testing

@testable import LambdaExtension
@testable import RelayCore

/// The promise of the `invoke` and `end` strategies: nothing accepted before the flush
/// waits frozen in the environment, whether it waited in memory or spilled to the spool.
@Suite struct InvocationFlushTests {
    static let logger = Logger(label: "flush-test", factory: { _ in SwiftLogNoOpLogHandler() })

    /// 1 sender, 2 KB of memory, a remote answering in 50 ms: most of 30 uploads of 900
    /// bytes go to the spool.
    static func configuration(remote: RecordingRemote, spool: String) -> RelayConfiguration {
        TestRelay.configuration(remote: remote) {
            $0.workers = 1
            $0.queueMaxBytes = 2048
            $0.spoolDirectory = spool
            $0.spoolMaxBytes = 16 << 20
        }
    }

    /// Runs the Lambda loop for INVOKE then SHUTDOWN and returns what had been delivered
    /// when it asked for its second event.
    static func deliveredAtNextEvent(_ relay: TestRelay, strategy: FlushStrategy) async throws -> Int {
        let runtimeDone = RuntimeDoneTracker()
        runtimeDone.markDone("r1")  // the handler has returned (for `end`)
        let delivered = NIOLockedValueBox<[Int]>([])
        // The loop's clock never moves: the invocation deadline cannot cut the flush short.
        let clock = TestClock()
        let now = clock.wallClockMilliseconds
        let events: [Result<ExtensionEvent, ExtensionError>] = [
            .success(.invoke(InvokeEvent(requestId: "r1", deadlineMs: now + 60_000, invokedFunctionArn: nil))),
            .success(.shutdown(ShutdownEvent(shutdownReason: "spindown", deadlineMs: now + 60_000))),
        ]
        let client = ObservingExtensionsClient(events: events) {
            delivered.withLockedValue { $0.append(relay.counters.snapshot.delivered) }
        }
        let lifecycle = LambdaLifecycle(
            client: client, strategy: strategy, pipeline: relay.pipeline, runtimeDone: runtimeDone, drainDeadline: DrainDeadline(),
            invocation: InvocationContext(), logger: logger, clock: clock)
        try await lifecycle.run()
        let seen = delivered.withLockedValue { $0 }
        try #require(seen.count == 2)
        return seen[1]
    }

    @Test(arguments: [FlushStrategy.invoke, .end])
    func everythingAcceptedBeforeTheInvokeIsDeliveredBeforeTheNextEvent(strategy: FlushStrategy) async throws {
        let spool = NSTemporaryDirectory() + "flush-spool-\(UUID().uuidString)"
        defer { try? FileManager.default.removeItem(atPath: spool) }
        // The remote holds its answers until all 30 are accepted (on a loaded machine 50 ms
        // each could drain the spool as fast as it fills), then answers in 50 ms each.
        let accepting = RecordingRemote.Gate()
        let respond: @Sendable (RecordingRemote.Request) -> RecordingRemote.Reply = { _ in
            accepting.isOpen ? .delayed(.milliseconds(50), .ok) : .held(accepting, .ok)
        }
        try await RecordingRemote.with(respond: respond) { remote in
            try await TestRelay.with(Self.configuration(remote: remote, spool: spool)) { relay in
                let body = String(repeating: "u", count: 900)
                for index in 0..<30 { #expect(await rawPost(port: relay.port, body: "\(index):\(body)") == 200) }
                #expect(relay.pipeline.snapshot.spoolItems > 0, "the scenario spills to the spool")
                accepting.open()
                let delivered = try await Self.deliveredAtNextEvent(relay, strategy: strategy)
                #expect(delivered == 30, "all 30 delivered before /event/next (\(strategy))")
                #expect(relay.pipeline.snapshot.spoolItems == 0)
            }
        }
    }

    @Test(arguments: [FlushStrategy.invoke, .end])
    func theSpoolLeftByAnEarlierRunIsCoveredToo(strategy: FlushStrategy) async throws {
        let spool = NSTemporaryDirectory() + "flush-spool-\(UUID().uuidString)"
        defer { try? FileManager.default.removeItem(atPath: spool) }
        // An earlier run: the remote is down, 20 uploads end up in the spool at shutdown.
        try await RecordingRemote.with(respond: { _ in .status(.serviceUnavailable) }) { remote in
            var configuration = Self.configuration(remote: remote, spool: spool)
            configuration.queueMaxBytes = 1
            configuration.queueMaxItems = 1
            configuration.drainTimeout = .milliseconds(100)
            try await TestRelay.with(configuration) { relay in
                for index in 0..<20 { #expect(await rawPost(port: relay.port, body: "earlier-\(index)") == 200) }
            }
        }
        let left = try FileManager.default.contentsOfDirectory(atPath: spool).filter { $0.hasSuffix(".rec") }.count
        try #require(left >= 10, "the earlier run left most of its uploads in the spool (\(left))")
        // The restart: nothing new arrives, yet the flush waits for the replayed spool.
        try await RecordingRemote.with(respond: { _ in .delayed(.milliseconds(50), .ok) }) { remote in
            try await TestRelay.with(Self.configuration(remote: remote, spool: spool)) { relay in
                #expect(relay.counters.snapshot.replayed == left)
                let delivered = try await Self.deliveredAtNextEvent(relay, strategy: strategy)
                #expect(delivered == left, "the replayed spool went out before /event/next (\(strategy))")
            }
        }
    }
}

/// Serves a script of events and calls `onNext` at each `/event/next`.
final class ObservingExtensionsClient: ExtensionsAPIClient {
    private let events: NIOLockedValueBox<[Result<ExtensionEvent, ExtensionError>]>
    private let onNext: @Sendable () -> Void

    init(events: [Result<ExtensionEvent, ExtensionError>], onNext: @escaping @Sendable () -> Void) {
        self.events = NIOLockedValueBox(events)
        self.onNext = onNext
    }

    func register(name: String, events: [String]) async throws(ExtensionError) -> Registration {
        Registration(functionName: "f", functionVersion: "$LATEST", handler: nil, accountId: nil)
    }

    func next() async throws(ExtensionError) -> ExtensionEvent {
        onNext()
        guard let event = events.withLockedValue({ $0.isEmpty ? nil : $0.removeFirst() }) else {
            throw ExtensionError(.unexpectedEvent, "script exhausted")
        }
        return try event.get()
    }

    func subscribeTelemetry(destinationURI: String, schemaVersion: String) async throws(ExtensionError) {}
    func reportInitError(_ error: ExtensionError) async {}
    func reportExitError(_ error: ExtensionError) async {}
}
