import Logging
import NIOCore
import RelayTestSupport
import Synchronization
import Testing

@testable import RelayCore

/// Backoff, `Retry-After`, max attempts and max age, driven by a test clock: each test
/// runs in milliseconds of real time however long the waits it checks.
@Suite struct RetryOnTestClockTests {
    static let logger = Logger(label: "retry-test", factory: { _ in SwiftLogNoOpLogHandler() })

    struct Harness {
        let clock = TestClock()
        let uploader: ScriptedUploader
        let forwarder: UploadForwarder

        init(_ script: [ScriptedUploader.Answer], policy: RetryPolicy) {
            uploader = ScriptedUploader(script)
            let pipeline = DeliveryPipeline(configuration: .init(), clock: clock, logger: RetryOnTestClockTests.logger)
            forwarder = UploadForwarder(
                pipeline: pipeline, uploader: uploader,
                builder: UpstreamRequestBuilder(
                    remote: RemoteEndpoint(scheme: .http, host: "remote.invalid", port: 80), credentials: .none, tenantID: "",
                    extraHeaders: [], session: SessionIdentity(SessionID(1))),
                workers: 1, drainTimeout: .seconds(1), retryPolicy: policy, clock: clock, logger: RetryOnTestClockTests.logger)
        }

        func upload(age: Duration = .zero) -> Upload {
            Upload(method: .POST, target: "/ingest?name=app", headers: [:], body: ByteBuffer(string: "profile"), receivedAt: clock.now - age)
        }

        /// Delivers one upload, answering each wait on the clock by moving it on to the
        /// wait's end; returns the outcome and every wait the forwarder asked for.
        func deliver(_ upload: Upload) async throws -> (DeliveryPipeline.Outcome, [Duration]) {
            let finished = Watched(false)
            let task = Task {
                defer { finished.withLock { $0 = true } }
                return await forwarder.deliver(upload)
            }
            // Awaits the delivery's next wait on the clock, or its end, whichever comes.
            @Sendable func waitsOnTheClock() async throws -> Bool {
                try await firstOf(
                    {
                        try await clock.waitForSleepers()
                        return true
                    },
                    {
                        try await finished.wait(until: { $0 })
                        return false
                    })
            }
            while try await waitsOnTheClock() {
                if let wait = clock.nextDeadline { clock.advance(by: wait) }
            }
            return (await task.value, clock.sleeps)
        }
    }

    static let noJitter = RetryPolicy(initialBackoff: .milliseconds(500), maxBackoff: .seconds(4), maxAttempts: 10, jitter: 0)

    @Test func backoffDoublesFromTheInitialWaitUpToTheMaximum() async throws {
        let harness = Harness(Array(repeating: .status(503), count: 6) + [.status(200)], policy: Self.noJitter)
        let (result, waits) = try await harness.deliver(harness.upload())
        #expect(result == .delivered)
        #expect(waits == [.milliseconds(500), .seconds(1), .seconds(2), .seconds(4), .seconds(4), .seconds(4)])
        #expect(harness.uploader.requests.count == 7)
        #expect(harness.forwarder.pipeline.counters.snapshot.retries == 6)
    }

    @Test func retryAfterSecondsAndDatesWinOverTheBackoff() async throws {
        let harness = Harness([.status(429, retryAfter: "7"), .status(503, retryAfter: "Thu, 01 Jan 2027 00:00:12 GMT"), .status(200)], policy: Self.noJitter)
        // The test clock's wall time: 2027-01-01T00:00:00Z; the date is 12 s after it, and
        // 5 s after the first wait of 7 s.
        harness.clock.advance(by: .milliseconds(1_798_761_600_000 - harness.clock.wallClockMilliseconds))
        let (result, waits) = try await harness.deliver(harness.upload())
        #expect(result == .delivered)
        #expect(waits == [.seconds(7), .seconds(5)], "Retry-After wins, even over the 4 s maximum backoff")
    }

    @Test func maxAttemptsEndsWithMaxRetries() async throws {
        var policy = Self.noJitter
        policy.maxAttempts = 3
        let harness = Harness([.status(500)], policy: policy)
        let (result, waits) = try await harness.deliver(harness.upload())
        #expect(result == .dropped(.maxRetries))
        #expect(harness.uploader.requests.count == 3)
        #expect(waits == [.milliseconds(500), .seconds(1)])
    }

    @Test func anUploadThatWouldOutliveMaxAgeIsDroppedWithoutWaiting() async throws {
        var policy = Self.noJitter
        policy.maxAge = .seconds(3600)
        let harness = Harness([.status(503)], policy: policy)
        // 59 min 59.6 s old: the first 500 ms backoff would take it past the hour.
        let (result, waits) = try await harness.deliver(harness.upload(age: .seconds(3599) + .milliseconds(600)))
        #expect(result == .dropped(.tooOld))
        #expect(waits.isEmpty)
        #expect(harness.uploader.requests.count == 1)
    }

    @Test func deadPooledConnectionsAreRetriedAtOnceThenBackOff() async throws {
        let harness = Harness(
            [.failure(.connection("reset")), .failure(.connection("reset")), .failure(.connection("reset")), .status(200)],
            policy: Self.noJitter)
        let (result, waits) = try await harness.deliver(harness.upload())
        #expect(result == .delivered)
        // Two immediate reconnects (no wait at all), then the backoff of the first real try.
        #expect(waits == [.milliseconds(500)])
        #expect(harness.uploader.requests.count == 4)
    }

    /// Answers that used to look like "reconnect now" (a zero delay) to the forwarder, so
    /// that `PYROSCOPE_RETRY_MAX_ATTEMPTS` never ended them: each ends within the budget.
    @Test(arguments: [
        ScriptedUploader.Answer.status(503, retryAfter: "0"),
        .status(503, retryAfter: "Thu, 01 Jan 1970 00:00:01 GMT"),
        .status(429, retryAfter: "Sun, 06 Nov 1994 08:49:37 GMT"),
        .failure(.connection("connection reset by peer")),
    ])
    func answersAskingForNoWaitEndWithinMaxAttemptsRequests(_ answer: ScriptedUploader.Answer) async throws {
        var policy = Self.noJitter
        policy.maxAttempts = 4
        let harness = Harness([answer], policy: policy)
        let (result, waits) = try await harness.deliver(harness.upload())
        #expect(result == .dropped(.maxRetries))
        #expect(harness.uploader.requests.count == 4, "one upload, PYROSCOPE_RETRY_MAX_ATTEMPTS requests: \(waits)")
        #expect(harness.forwarder.pipeline.counters.snapshot.retries == 3)
    }

    @Test func finalRejectionIsNotRetried() async throws {
        let harness = Harness([.status(401)], policy: Self.noJitter)
        let (result, waits) = try await harness.deliver(harness.upload())
        #expect(result == .dropped(.rejected4xx))
        #expect(waits.isEmpty && harness.uploader.requests.count == 1)
    }
}
