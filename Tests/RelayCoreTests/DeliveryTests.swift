import NIOConcurrencyHelpers
import RelayTestSupport
import Testing

@testable import RelayCore

/// The relay against a remote that fails in the ways real ones do.
@Suite struct DeliveryTests {
    /// Fast backoff so failure scenarios finish in a second or two.
    static let quickRetries = RetryPolicy(initialBackoff: .milliseconds(50), maxBackoff: .milliseconds(400), maxAttempts: 10, jitter: 0.1)

    /// The status the relay answered; nil when the exchange failed.
    static func post(_ relay: TestRelay, _ body: String, path: String = "/ingest?name=app") async -> Int? {
        await rawPost(port: relay.port, path: path, body: body)
    }

    @Test func remoteFailingFor1500msThenRecoveringLosesNothing() async throws {
        let started = ContinuousClock.now
        try await RecordingRemote.with(respond: { _ in ContinuousClock.now - started < .milliseconds(1500) ? .status(.internalServerError) : .status(.ok) }) {
            remote in
            let configuration = TestRelay.configuration(remote: remote) { $0.retryPolicy = Self.quickRetries }
            try await TestRelay.with(configuration) { relay in
                for index in 0..<10 { #expect(await Self.post(relay, "upload-\(index)") == 200) }
                await relay.pipeline.flush()
                let received = remote.received
                let delivered = received.filter { $0.arrivedAt - started >= .milliseconds(1500) }.map { String(decoding: $0.body, as: UTF8.self) }
                #expect(delivered.sorted() == (0..<10).map { "upload-\($0)" }.sorted(), "each delivered once after recovery")
                let stats = relay.counters.snapshot
                #expect(stats.delivered == 10 && stats.droppedTotal == 0)
                #expect(stats.retries == received.count - 10, "every extra send is a counted retry")
            }
        }
    }

    @Test func retryAfterIsWaitedFor() async throws {
        let attempts = NIOLockedValueBox(0)
        try await RecordingRemote.with(respond: { _ in
            attempts.withLockedValue {
                $0 += 1; return $0
            } == 1 ? .withHeaders(.tooManyRequests, [("Retry-After", "2")]) : .status(.ok)
        }) { remote in
            let configuration = TestRelay.configuration(remote: remote) { $0.retryPolicy = Self.quickRetries }
            // The relay waits on a test clock: 2 s of its time, milliseconds of ours.
            let clock = TestClock()
            try await TestRelay.with(configuration, clock: clock) { relay in
                #expect(await Self.post(relay, "rate-limited") == 200)
                try await clock.waitForSleepers()
                #expect(clock.nextDeadline == .seconds(2), "Retry-After said 2 s")
                clock.advance(by: .milliseconds(1999))
                // Awaits the resend (bounded): it must not come before the 2 s passed.
                #expect(await remote.waitForRequests(2, timeout: .milliseconds(50)).count == 1, "not sent again before the 2 s passed")
                clock.advance(by: .milliseconds(1))
                await relay.pipeline.flush()
                #expect(remote.received.count == 2)
                #expect(relay.counters.snapshot.delivered == 1 && relay.counters.snapshot.retries == 1)
            }
        }
    }

    @Test func deadPooledConnectionDoesNotCostAnUploadOrABackoff() async throws {
        // Every connection dies after its first request, without telling the client:
        // what Lambda's freeze does to pooled connections.
        try await RecordingRemote.with(respond: { $0.indexOnConnection > 1 ? .reset : .status(.ok) }) { remote in
            let configuration = TestRelay.configuration(remote: remote) {
                $0.workers = 1
                $0.retryPolicy = RetryPolicy(initialBackoff: .seconds(30), immediateReconnects: 2)
            }
            // On a test clock: any backoff would be a 30 s sleep that never ends by itself.
            let clock = TestClock()
            try await TestRelay.with(configuration, clock: clock) { relay in
                for index in 0..<5 {
                    #expect(await Self.post(relay, "upload-\(index)") == 200)
                    await relay.pipeline.flush()
                }
                #expect(clock.sleeps.allSatisfy { $0 == .zero }, "no backoff was needed: \(clock.sleeps)")
                let stats = relay.counters.snapshot
                #expect(stats.delivered == 5 && stats.droppedTotal == 0)
                let delivered = remote.received.filter { $0.indexOnConnection == 1 }.map { String(decoding: $0.body, as: UTF8.self) }
                #expect(delivered.sorted() == (0..<5).map { "upload-\($0)" })
            }
        }
    }

    @Test func finalRejectionIsDroppedOnceAndLogged() async throws {
        try await RecordingRemote.with(respond: { _ in .status(.unauthorized, body: "bad token") }) { remote in
            let configuration = TestRelay.configuration(remote: remote) { $0.retryPolicy = Self.quickRetries }
            try await TestRelay.with(configuration) { relay in
                #expect(await Self.post(relay, "x") == 200)
                await relay.pipeline.flush()
                #expect(remote.received.count == 1, "a 401 is not retried")
                #expect(relay.counters.snapshot.dropped == [.rejected4xx: 1])
            }
        }
    }

    @Test func remoteThatHangsTimesOutAndIsRetriedUntilGivingUp() async throws {
        try await RecordingRemote.with(respond: { _ in .delayed(.seconds(5), .ok) }) { remote in
            let configuration = TestRelay.configuration(remote: remote) {
                $0.upstreamTimeout = .milliseconds(200)
                $0.retryPolicy = RetryPolicy(initialBackoff: .milliseconds(20), maxBackoff: .milliseconds(50), maxAttempts: 3)
            }
            try await TestRelay.with(configuration) { relay in
                #expect(await Self.post(relay, "slow") == 200)
                await relay.pipeline.flush()
                // Three attempts, each timing out (on a loaded machine the remote may not have
                // read any of them whole before the relay gave up on it): the counts say so.
                #expect(remote.received.count <= 3)
                #expect(relay.counters.snapshot.dropped == [.maxRetries: 1])
                #expect(relay.counters.snapshot.retries == 2)
            }
        }
    }

    @Test func refusedConnectionsAreRetriedThenCounted() async throws {
        // A port nothing listens on: start a remote, note its port, stop it.
        let port = try await RecordingRemote.with { $0.port }
        let placeholder = try await RecordingRemote.start()
        var configuration = TestRelay.configuration(remote: placeholder) {
            $0.remote = RemoteEndpoint(scheme: .http, host: "127.0.0.1", port: port)
            // async-http-client keeps re-dialling a refused connection until the request's
            // deadline, so each try costs the upstream timeout.
            $0.upstreamTimeout = .milliseconds(300)
            $0.retryPolicy = RetryPolicy(initialBackoff: .milliseconds(10), maxBackoff: .milliseconds(20), maxAttempts: 3, immediateReconnects: 1)
        }
        configuration.drainTimeout = .seconds(5)
        try await placeholder.stop()
        try await TestRelay.with(configuration) { relay in
            #expect(await Self.post(relay, "nowhere") == 200)
            await relay.pipeline.flush()
            let stats = relay.counters.snapshot
            #expect(stats.dropped == [.maxRetries: 1])
            #expect(stats.retries >= 2)
        }
    }

    @Test func countsAddUpUnderAFlood() async throws {
        try await RecordingRemote.with(respond: { _ in .delayed(.milliseconds(200), .ok) }) { remote in
            let configuration = TestRelay.configuration(remote: remote) {
                $0.workers = 2
                $0.queueMaxItems = 5
            }
            try await TestRelay.with(configuration) { relay in
                var statuses: [Int: Int] = [:]
                for index in 0..<40 { statuses[await Self.post(relay, "flood-\(index)") ?? 0, default: 0] += 1 }
                await relay.pipeline.flush()
                let stats = relay.counters.snapshot
                #expect(statuses[200, default: 0] + statuses[503, default: 0] == 40)
                #expect(stats.received == 40)
                #expect(stats.received == stats.delivered + stats.droppedTotal, "every upload has exactly one outcome")
                #expect(stats.dropped[.queueFull] == statuses[503])
                #expect(remote.received.count == stats.delivered)
            }
        }
    }
}
