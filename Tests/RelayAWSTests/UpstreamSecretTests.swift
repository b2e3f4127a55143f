import RelayCore
import RelayTestSupport
import Synchronization
import Testing

@testable import RelayAWS

/// A fetcher that answers from a script: each call takes the next entry (the last repeats).
final class ScriptedFetcher: SecretFetcher {
    enum Answer: Sendable {
        case value(String)
        case failure(SecretFetchError)
    }
    private let script: Mutex<[Answer]>
    private let calls = Watched(0)
    /// Held answers wait until the test opens the gate; watched, so a test awaits a held fetch.
    private let gate = Watched<CheckedContinuation<Void, Never>?>(nil)
    let holdAnswers: Bool

    init(_ script: [Answer], holdAnswers: Bool = false) {
        self.script = Mutex(script)
        self.holdAnswers = holdAnswers
    }

    var callCount: Int { calls.value }

    /// Returns once a fetch waits at the gate.
    func waitUntilHeld() async throws { try await gate.wait("a held fetch") { $0 != nil } }

    func fetch(_ reference: SecretReference) async throws(SecretFetchError) -> String {
        calls.withLock { $0 += 1 }
        if holdAnswers {
            // Cancellation ends a held answer, as it ends a real request.
            await withTaskCancellationHandler {
                await withCheckedContinuation { continuation in gate.withLock { $0 = continuation } }
            } onCancel: {
                open()
            }
            if Task.isCancelled { throw SecretFetchError(.transport, "cancelled") }
        }
        let answer = script.withLock { $0.count > 1 ? $0.removeFirst() : $0[0] }
        switch answer {
        case .value(let value): return value
        case .failure(let error): throw error
        }
    }

    func open() {
        gate.withLock {
            $0?.resume(); $0 = nil
        }
    }
}

@Suite struct UpstreamSecretTests {
    static let plan = SecretCredentialPlan(
        reference: try! SecretReference(parsing: "arn:aws:secretsmanager:us-east-1:1:secret:tok-AbCdEf", variable: "PYROSCOPE_AUTH_TOKEN_SECRET_ARN"),
        kind: .bearerToken, variable: "PYROSCOPE_AUTH_TOKEN_SECRET_ARN")
    static let denied = SecretFetchError(.service, "arn: AccessDeniedException: not allowed", awsErrorCode: "AccessDeniedException")

    final class Learned: Sendable {
        let values = Mutex<[String]>([])
        func add(_ new: [String]) { values.withLock { $0 += new } }
    }

    static func make(
        _ fetcher: ScriptedFetcher, clock: TestClock, plan: SecretCredentialPlan = plan, logs: LogRecording = LogRecording(), learned: Learned = Learned()
    )
        -> UpstreamSecret
    {
        UpstreamSecret(
            plan: plan, fetcher: fetcher, clock: clock, backoff: RetryPolicy(initialBackoff: .seconds(1), maxBackoff: .seconds(60), jitter: 0),
            learned: { learned.add($0) }, logger: logs.logger())
    }

    @Test func aFailedStartFetchIsRetriedWithBackoffAndReleasesWaitingUploads() async throws {
        let fetcher = ScriptedFetcher([.failure(Self.denied), .failure(Self.denied), .value("token-3")])
        let clock = TestClock()
        let logs = LogRecording()
        let secret = Self.make(fetcher, clock: clock, logs: logs)
        await secret.fetchAtStart(within: .seconds(3))
        #expect(secret.current == nil && fetcher.callCount == 1)
        let warning = try #require(logs.all.first { $0.level == .warning })
        #expect(warning.message.contains("AccessDeniedException") && warning.message.contains("uploads wait for it"))

        async let waited = secret.waitForCredentials(atMost: .seconds(3600))
        let service = Task { try await secret.run() }
        try await clock.waitForSleepers(2)  // the upload's limit and the first backoff
        clock.advance(by: .seconds(1))
        try await clock.waitForSleepers(2)
        #expect(fetcher.callCount == 2)
        clock.advance(by: .seconds(2))
        #expect(try await waited == .available(.bearer(token: "token-3")))
        #expect(fetcher.callCount == 3)
        #expect(clock.sleeps.contains(.seconds(1)) && clock.sleeps.contains(.seconds(2)), "\(clock.sleeps)")
        #expect(logs.all.contains { $0.message.contains("held uploads are sent now") })
        service.cancel()
        _ = await service.result
    }

    @Test func aStartFetchSlowerThanTheBudgetLetsTheRelayStart() async throws {
        let fetcher = ScriptedFetcher([.value("late")], holdAnswers: true)
        let clock = TestClock()
        let logs = LogRecording()
        let secret = Self.make(fetcher, clock: clock, logs: logs)
        async let start: Void = secret.fetchAtStart(within: .seconds(3))
        try await clock.waitForSleepers(1)
        clock.advance(by: .seconds(3))
        await start
        #expect(secret.current == nil)
        #expect(logs.all.contains { $0.level == .warning && $0.message.contains("not fetched within") })
        fetcher.open()
    }

    @Test func waitingEndsAtTheLimitOrOnCancellation() async throws {
        let clock = TestClock()
        let secret = Self.make(ScriptedFetcher([.failure(Self.denied)]), clock: clock)
        async let waited = secret.waitForCredentials(atMost: .seconds(10))
        try await clock.waitForSleepers(1)
        clock.advance(by: .seconds(10))
        #expect(try await waited == .timedOut)

        let cancelled = Task { try await secret.waitForCredentials(atMost: .seconds(10)) }
        try await clock.waitForSleepers(1)
        cancelled.cancel()
        await #expect(throws: CancellationError.self) { try await cancelled.value }
    }

    @Test func aRefusedCredentialIsFetchedAgainOnceAndRateLimited() async throws {
        let fetcher = ScriptedFetcher([.value("old"), .value("new"), .value("newer")])
        let secret = Self.make(fetcher, clock: TestClock())
        await secret.fetchAtStart(within: .seconds(3))
        #expect(secret.current == .bearer(token: "old"))
        #expect(await secret.replacement(for: .bearer(token: "old")) == .bearer(token: "new"))
        #expect(fetcher.callCount == 2)
        // Another upload refused with the old value: the new one, without fetching.
        #expect(await secret.replacement(for: .bearer(token: "old")) == .bearer(token: "new"))
        // The new one refused too, right away: no fetch per upload for a wrong secret.
        #expect(await secret.replacement(for: .bearer(token: "new")) == nil)
        #expect(fetcher.callCount == 2)
    }

    @Test func concurrentRefusalsShareOneFetch() async throws {
        let fetcher = ScriptedFetcher([.value("old"), .value("new")], holdAnswers: true)
        let logs = LogRecording()
        let secret = Self.make(fetcher, clock: TestClock(), logs: logs)
        async let start: Void = secret.fetchAtStart(within: .seconds(3))
        try await fetcher.waitUntilHeld()
        fetcher.open()
        await start
        let results = await withTaskGroup(of: UpstreamCredentials?.self) { group in
            for _ in 0..<5 { group.addTask { await secret.replacement(for: .bearer(token: "old")) } }
            // The refetch is held, and every caller has asked (each logs as it turns to the
            // fetch, then joins the one under way).
            try? await fetcher.waitUntilHeld()
            try? await logs.waitForLines(5) { $0.message.contains("fetching it again") }
            fetcher.open()
            return await group.reduce(into: []) { $0.append($1) }
        }
        #expect(results.allSatisfy { $0 == .bearer(token: "new") })
        #expect(fetcher.callCount == 2)
    }

    @Test func fetchedValuesAreMaskedBeforeUseAndBasicAuthCarriesTheUser() async throws {
        let learned = Learned()
        let plan = SecretCredentialPlan(
            reference: Self.plan.reference, kind: .basicPassword(user: "1234"), variable: "PYROSCOPE_BASIC_AUTH_PASSWORD_SECRET_ARN")
        let secret = Self.make(ScriptedFetcher([.value("pa55")]), clock: TestClock(), plan: plan, learned: learned)
        await secret.fetchAtStart(within: .seconds(3))
        #expect(secret.current == .basic(user: "1234", password: "pa55"))
        let masked = learned.values.withLock { $0 }
        #expect(masked.contains("pa55") && masked.contains("Basic MTIzNDpwYTU1"))
    }

    @Test func aWholeJSONSecretIsUsedButTheLogSuggestsAKey() async throws {
        let logs = LogRecording()
        let secret = Self.make(ScriptedFetcher([.value(#"{"token":"v-9f8e"}"#)]), clock: TestClock(), logs: logs)
        await secret.fetchAtStart(within: .seconds(3))
        #expect(secret.current == .bearer(token: #"{"token":"v-9f8e"}"#))
        #expect(logs.all.contains { $0.level == .warning && $0.message.contains("#key") })
        #expect(!logs.all.contains { $0.text.contains("v-9f8e") })
    }
}
