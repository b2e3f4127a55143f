import Foundation
import Logging
import NIOConcurrencyHelpers
import RelayTestSupport
import Testing

@testable import LambdaExtension
@testable import RelayCore

/// Lambda freezes the environment, network included, as soon as the runtime and every
/// extension wait for the next event: an upload on the wire then has an unknown fate at the
/// thaw. With `invoke` and `end` (`holdsWhileParked`) the extension asks for the next event
/// only once no attempt is on the wire, and sends nothing while it waits.
@Suite struct FreezeSafetyTests {
    static let logger = Logger(label: "freeze-test", factory: { _ in SwiftLogNoOpLogHandler() })

    /// Serves a script of events; before each, runs `beforeEvent` with the call's index.
    final class ScriptedClient: ExtensionsAPIClient {
        private let events: NIOLockedValueBox<[ExtensionEvent]>
        private let calls = NIOLockedValueBox(0)
        private let beforeEvent: @Sendable (Int) async -> Void

        init(events: [ExtensionEvent], beforeEvent: @escaping @Sendable (Int) async -> Void) {
            self.events = NIOLockedValueBox(events)
            self.beforeEvent = beforeEvent
        }

        var nextCalls: Int { calls.withLockedValue { $0 } }

        func register(name: String, events: [String]) async throws(ExtensionError) -> Registration {
            Registration(functionName: "f", functionVersion: "$LATEST", handler: nil, accountId: nil)
        }

        func next() async throws(ExtensionError) -> ExtensionEvent {
            let call = calls.withLockedValue {
                $0 += 1
                return $0
            }
            await beforeEvent(call)
            guard let event = events.withLockedValue({ $0.isEmpty ? nil : $0.removeFirst() }) else {
                throw ExtensionError(.unexpectedEvent, "script exhausted")
            }
            return event
        }

        func subscribeTelemetry(destinationURI: String, schemaVersion: String) async throws(ExtensionError) {}
        func reportInitError(_ error: ExtensionError) async {}
        func reportExitError(_ error: ExtensionError) async {}
    }

    static func lifecycle(_ client: ScriptedClient, strategy: FlushStrategy, relay: TestRelay) -> LambdaLifecycle {
        let runtimeDone = RuntimeDoneTracker()
        runtimeDone.markDone("r1")
        return LambdaLifecycle(
            client: client, strategy: strategy, pipeline: relay.pipeline, runtimeDone: runtimeDone, drainDeadline: DrainDeadline(),
            invocation: InvocationContext(), logger: logger, clock: TestClock(), initDrainTimeout: .seconds(60))
    }

    static func events(_ clock: TestClock = TestClock()) -> [ExtensionEvent] {
        let now = clock.wallClockMilliseconds
        return [
            .invoke(InvokeEvent(requestId: "r1", deadlineMs: now + 60_000, invokedFunctionArn: nil)),
            .shutdown(ShutdownEvent(shutdownReason: "spindown", deadlineMs: now + 60_000)),
        ]
    }

    @Test(arguments: [FlushStrategy.invoke, .end])
    func anUploadOnTheWireIsAnsweredBeforeTheNextEvent(strategy: FlushStrategy) async throws {
        let gate = RecordingRemote.Gate()
        try await RecordingRemote.with(respond: { _ in .held(gate, .ok) }) { remote in
            try await TestRelay.with(TestRelay.configuration(remote: remote)) { relay in
                #expect(await rawPost(port: relay.port, body: "in flight") == 200)
                try await eventually("the upload is on the wire") { relay.pipeline.attemptsOnWire == 1 }
                let onWireAtNext = NIOLockedValueBox<[Int]>([])
                let client = ScriptedClient(events: Self.events()) { _ in
                    onWireAtNext.withLockedValue { $0.append(relay.pipeline.attemptsOnWire) }
                }
                async let run: Void = Self.lifecycle(client, strategy: strategy, relay: relay).run()
                // The lifecycle waits for the answer, or (wrongly) asks for its event at once.
                try await eventually("the lifecycle waits or asks") { relay.pipeline.isQuiescing || client.nextCalls > 0 }
                gate.open()
                try await run
                #expect(onWireAtNext.withLockedValue { $0 }.first == 0, "answered before the first /event/next")
                #expect(relay.counters.snapshot.delivered == 1)
            }
        }
    }

    @Test(arguments: [FlushStrategy.invoke, .end])
    func anUploadArrivingWhileTheExtensionWaitsGoesOutAtTheNextEvent(strategy: FlushStrategy) async throws {
        try await RecordingRemote.with { remote in
            try await TestRelay.with(TestRelay.configuration(remote: remote)) { relay in
                let heldWhileParked = NIOLockedValueBox<[Int]>([])
                let client = ScriptedClient(events: Self.events()) { call in
                    guard call == 2 else { return }  // parked after the invocation: the environment may freeze
                    #expect(await rawPost(port: relay.port, body: "during the freeze") == 200)
                    // Held, it waits in memory; not held, a waiting sender takes it as it is admitted.
                    heldWhileParked.withLockedValue { $0.append(relay.pipeline.snapshot.queuedItems) }
                    #expect(remote.received.isEmpty)
                }
                try await Self.lifecycle(client, strategy: strategy, relay: relay).run()
                #expect(heldWhileParked.withLockedValue { $0 } == [1], "not sent while the extension waited")
                // SHUTDOWN resumed it: the drain sends it.
                await relay.pipeline.flush()
                #expect(remote.received.count == 1)
            }
        }
    }

    @Test func backgroundSendsWhileParkedAsTheGoExtensionDoes() async throws {
        try await RecordingRemote.with { remote in
            try await TestRelay.with(TestRelay.configuration(remote: remote)) { relay in
                let sentWhileParked = NIOLockedValueBox<[Bool]>([])
                let client = ScriptedClient(events: Self.events()) { call in
                    guard call == 2 else { return }
                    #expect(await rawPost(port: relay.port, body: "during the invocation") == 200)
                    let sent = (try? await eventually("sent while parked", timeout: .seconds(10)) { remote.received.count == 1 }) != nil
                    sentWhileParked.withLockedValue { $0.append(sent) }
                }
                try await Self.lifecycle(client, strategy: .background, relay: relay).run()
                #expect(sentWhileParked.withLockedValue { $0 } == [true])
            }
        }
    }
}
