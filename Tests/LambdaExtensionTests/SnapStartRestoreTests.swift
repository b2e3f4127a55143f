import Foundation
import Logging
import NIOConcurrencyHelpers
import RelayTestSupport
import Testing

@testable import LambdaExtension
@testable import RelayCore

/// A restored copy of a SnapStart snapshot shares nothing with the others: not the queue
/// it held, not the session id, not the pooled connections.
@Suite struct SnapStartRestoreTests {
    static let logger = Logger(label: "snapstart-test", factory: { _ in SwiftLogNoOpLogHandler() })

    static func sessionID(of request: RecordingRemote.Request) -> String? {
        guard let range = request.uri.range(of: "__session_id__%3D") else { return nil }
        return String(request.uri[range.upperBound...].prefix(16))
    }

    @Test func restoreDropsWhatTheSnapshotHeldRenewsTheSessionAndReconnects() async throws {
        // Uploads marked "held" cannot be delivered before the snapshot: the remote holds each
        // attempt until the restore is over, then answers 503 (retried, were they current).
        // Nothing held is answered before, so no retry can be under way at the snapshot and
        // any held request the remote sees after it is one the relay wrongly sent again.
        let restoreOver = RecordingRemote.Gate()
        try await RecordingRemote.with(respond: { request in
            String(decoding: request.body, as: UTF8.self).hasPrefix("held") ? .held(restoreOver, .serviceUnavailable) : .status(.ok)
        }) { remote in
            let configuration = TestRelay.configuration(remote: remote) {
                $0.sessionID = nil  // random, as in Lambda
                $0.upstreamTimeout = .seconds(60)  // a held attempt waits for the gate, not a timeout
                $0.retryPolicy = RetryPolicy(initialBackoff: .milliseconds(200), maxBackoff: .milliseconds(400), maxAttempts: 1000)
            }
            try await TestRelay.with(configuration) { relay in
                // Init: one upload goes out (a pooled connection and the init session id), two cannot.
                #expect(await rawPost(port: relay.port, path: "/ingest?name=app", body: "init-ok") == 200)
                await remote.waitForRequests(1)
                for index in 0..<2 { #expect(await rawPost(port: relay.port, path: "/ingest?name=app", body: "held-\(index)") == 200) }
                // Each held upload is at the remote (its attempt held there) or queued in memory.
                func heldAtRemote() -> Int { remote.received.filter { String(decoding: $0.body, as: UTF8.self).hasPrefix("held") }.count }
                try await eventually("both held uploads at the remote or queued") { heldAtRemote() + relay.pipeline.snapshot.queuedItems >= 2 }
                let heldBeforeSnapshot = heldAtRemote()
                #expect(heldBeforeSnapshot >= 1)

                // The Lambda loop on a test clock: its init drain gives up when the test says.
                let clock = TestClock()
                let now = clock.wallClockMilliseconds
                let client = ObservingExtensionsClient(events: [
                    .success(.invoke(InvokeEvent(requestId: "r1", deadlineMs: now + 60_000, invokedFunctionArn: nil))),
                    .success(.shutdown(ShutdownEvent(shutdownReason: "spindown", deadlineMs: now + 60_000))),
                ]) {}
                let lifecycle = LambdaLifecycle(
                    client: client, strategy: .background, pipeline: relay.pipeline, runtimeDone: RuntimeDoneTracker(),
                    drainDeadline: DrainDeadline(), invocation: InvocationContext(), logger: Self.logger, clock: clock, model: .snapStart,
                    restored: { began in
                        await RelayApplication.restoredFromSnapshot(relay.relay, began: began, logger: Self.logger)
                        restoreOver.open()
                    }, initDrainTimeout: .milliseconds(300))
                let loop = Task { try await lifecycle.run() }
                try await clock.waitForSleepers()  // the init drain, bounded: the held uploads cannot finish
                #expect(clock.nextDeadline == .milliseconds(300))
                clock.advance(by: .milliseconds(300))
                try await loop.value

                // After the restore: a new upload, on a fresh connection, with a new session id.
                #expect(await rawPost(port: relay.port, path: "/ingest?name=app", body: "after") == 200)
                await relay.pipeline.flush()
                // Each held upload ends dropped as the snapshot's once its attempt is answered; a
                // wrong retry would keep it going (and reach the remote again) instead.
                try await eventually("the held uploads dropped") {
                    relay.counters.snapshot.dropped[.snapshot] == 2 && relay.pipeline.snapshot.incomplete == 0
                }

                let received = remote.received
                let initial = try #require(received.first { $0.body == Array("init-ok".utf8) })
                let after = try #require(received.first { $0.body == Array("after".utf8) })
                #expect(after.indexOnConnection == 1, "the first upload after the restore connects anew")
                let initialSession = try #require(Self.sessionID(of: initial))
                let afterSession = try #require(Self.sessionID(of: after))
                #expect(initialSession != afterSession, "a session id made at init is never used after the restore")
                #expect(heldAtRemote() == heldBeforeSnapshot, "nothing queued at the snapshot is sent after the restore")
                let counts = relay.counters.snapshot
                #expect(counts.dropped[.snapshot] == 2 && counts.delivered == 2, "\(counts)")
                #expect(relay.pipeline.snapshot.incomplete == 0)
            }
        }
    }

    @Test func provisionedConcurrencyDeliversWhatInitAcceptedBeforeTheFirstEvent() async throws {
        try await RecordingRemote.with(respond: { _ in .delayed(.milliseconds(100), .ok) }) { remote in
            let configuration = TestRelay.configuration(remote: remote) { $0.workers = 1 }
            try await TestRelay.with(configuration) { relay in
                for index in 0..<5 { #expect(await rawPost(port: relay.port, body: "init-\(index)") == 200) }
                let deliveredAtFirstNext = NIOLockedValueBox<Int?>(nil)
                // On a test clock that never moves: the init drain's bound never passes.
                let clock = TestClock()
                let client = ObservingExtensionsClient(events: [
                    .success(.shutdown(ShutdownEvent(shutdownReason: "spindown", deadlineMs: clock.wallClockMilliseconds + 60_000)))
                ]) {
                    deliveredAtFirstNext.withLockedValue { $0 = $0 ?? relay.counters.snapshot.delivered }
                }
                let lifecycle = LambdaLifecycle(
                    client: client, strategy: .background, pipeline: relay.pipeline, runtimeDone: RuntimeDoneTracker(),
                    drainDeadline: DrainDeadline(), invocation: InvocationContext(), logger: Self.logger, clock: clock,
                    model: .provisionedConcurrency)
                try await lifecycle.run()
                #expect(deliveredAtFirstNext.withLockedValue { $0 } == 5, "nothing from init waits frozen for the first invoke")
            }
        }
    }
}
