import Logging
import RelayCore
import Synchronization

/// Upstream credentials read from Secrets Manager or SSM: fetched at start within a budget,
/// retried in the background with backoff while they are missing (uploads wait for them),
/// and fetched again when the remote refuses them (the secret was rotated).
///
/// The hot path (`current`) is one lock, no hop: senders run on the event loops.
public final class UpstreamSecret: UpstreamCredentialSource, Service, CustomStringConvertible {
    struct State {
        var credentials: UpstreamCredentials?
        var fetching = false
        var fetchWaiters: [CheckedContinuation<UpstreamCredentials?, Never>] = []
        var waiters: [Int: CheckedContinuation<UpstreamCredentials?, Never>] = [:]
        var nextWaiter = 0
        var consecutiveFailures = 0
        var lastRejectionRefetch: ContinuousClock.Instant?
        var lastFailureLine: ContinuousClock.Instant?
        var failuresSinceLine = 0
        var warnedJSONWhole = false
    }

    public let plan: SecretCredentialPlan
    let fetcher: any SecretFetcher
    let clock: any RelayClock
    /// Waits between background fetches while the secret is missing.
    let backoff: RetryPolicy
    /// A refusal refetches at most this often: a wrong secret must not become a fetch per upload.
    let refetchInterval: Duration
    /// Told each value before it is used, so logs mask it.
    let learned: @Sendable ([String]) -> Void
    let logger: Logger
    private let state = Mutex(State())

    public init(
        plan: SecretCredentialPlan, fetcher: any SecretFetcher, clock: any RelayClock = SystemClock(),
        backoff: RetryPolicy = RetryPolicy(initialBackoff: .seconds(1), maxBackoff: .seconds(60)),
        refetchInterval: Duration = .seconds(60), learned: @escaping @Sendable ([String]) -> Void, logger: Logger
    ) {
        self.plan = plan
        self.fetcher = fetcher
        self.clock = clock
        self.backoff = backoff
        self.refetchInterval = refetchInterval
        self.learned = learned
        self.logger = logger
    }

    public var description: String { "UpstreamSecret(\(plan.variable))" }

    public var current: UpstreamCredentials? { state.withLock { $0.credentials } }

    /// The start-up fetch: returns when it is done or `budget` has passed, whichever is
    /// first (an unfinished fetch is cancelled; `run()` keeps trying).
    public func fetchAtStart(within budget: Duration) async {
        let started = ContinuousClock.now
        let fetched = await withTaskGroup(of: Bool?.self) { group in
            group.addTask { await self.fetch() != nil }
            group.addTask {
                try? await self.clock.sleep(for: budget)
                return nil
            }
            let first = await group.next() ?? nil
            group.cancelAll()
            return first
        }
        if fetched == true {
            logger.info(
                "Fetched the upstream credential",
                metadata: [
                    LogKey.setting: "\(plan.variable)", LogKey.secret: "\(plan.reference)",
                    LogKey.durationMs: .stringConvertible((ContinuousClock.now - started).wholeMilliseconds),
                ])
        } else if fetched == nil {
            logger.warning(
                "The upstream credential was not fetched within \(budget) at start: the relay runs, uploads wait for it (they are not dropped) and the fetch goes on in the background",
                metadata: [LogKey.setting: "\(plan.variable)", LogKey.secret: "\(plan.reference)"])
        }
    }

    /// Fetches again with backoff while the credential is missing, until graceful shutdown.
    public func run() async throws {
        try? await cancelWhenGracefulShutdown {
            var attempt = self.state.withLock { $0.consecutiveFailures }
            while self.current == nil, !Task.isCancelled {
                if attempt > 0 {
                    try await self.clock.sleep(for: self.backoff.backoff(attempt: attempt, random: Double.random(in: 0..<1)))
                }
                if await self.fetch() != nil {
                    self.logger.info(
                        "Fetched the upstream credential; held uploads are sent now",
                        metadata: [LogKey.setting: "\(self.plan.variable)", LogKey.failedAttempts: .stringConvertible(attempt)])
                    break
                }
                attempt += 1
            }
        }
        // Nothing more to do in the background; rotation refetches run in the senders.
        try? await gracefulShutdown()
    }

    public func waitForCredentials(atMost limit: Duration) async throws -> CredentialWait {
        if let credentials = current { return .available(credentials) }
        let clock = self.clock
        let outcome = try await withThrowingTaskGroup(of: CredentialWait?.self) { group in
            group.addTask { await self.nextCredentials().map { .available($0) } }
            group.addTask {
                try await clock.sleep(for: limit)
                return .timedOut
            }
            defer { group.cancelAll() }
            return try await group.next() ?? nil
        }
        guard let outcome else { throw CancellationError() }
        return outcome
    }

    public func replacement(for rejected: UpstreamCredentials) async -> UpstreamCredentials? {
        enum Step { case use(UpstreamCredentials), fetch, none }
        let now = ContinuousClock.now
        let step = state.withLock { state -> Step in
            if let credentials = state.credentials, credentials != rejected { return .use(credentials) }
            if state.fetching { return .fetch }
            if let last = state.lastRejectionRefetch, now - last < refetchInterval { return .none }
            state.lastRejectionRefetch = now
            return .fetch
        }
        switch step {
        case .use(let credentials): return credentials
        case .none: return nil
        case .fetch:
            logger.info("The remote refused the credential: fetching it again in case it was rotated", metadata: [LogKey.setting: "\(plan.variable)"])
            guard let fresh = await fetch(), fresh != rejected else { return nil }
            return fresh
        }
    }

    /// One fetch, shared by every caller that asks while it runs. Publishes and returns the
    /// credentials, or nil when it failed (the failure is logged).
    func fetch() async -> UpstreamCredentials? {
        let leads = state.withLock { state -> Bool in
            if state.fetching { return false }
            state.fetching = true
            return true
        }
        guard leads else {
            return await withCheckedContinuation { continuation in
                state.withLock { state in
                    if state.fetching {
                        state.fetchWaiters.append(continuation)
                    } else {
                        continuation.resume(returning: state.credentials)
                    }
                }
            }
        }
        var result: UpstreamCredentials?
        do {
            let value = try await fetcher.fetch(plan.reference)
            let credentials = plan.credentials(value)
            learned([value] + credentials.secrets)
            result = credentials
            if plan.reference.jsonKey == nil, SecretValueRule.looksLikeJSONObject(value), state.withLock({ !$0.warnedJSONWhole }) {
                state.withLock { $0.warnedJSONWhole = true }
                logger.warning(
                    "The secret's value is a JSON object and is used whole: end the ARN with #key to use one of its members",
                    metadata: [LogKey.setting: "\(plan.variable)", LogKey.secret: "\(plan.reference)"])
            }
        } catch {
            // A start-up fetch cut short by its budget says so itself.
            if !Task.isCancelled { logFailure(error) }
        }
        let (fetchWaiters, waiters) = state.withLock { state in
            state.fetching = false
            if let result {
                state.credentials = result
                state.consecutiveFailures = 0
            } else {
                state.consecutiveFailures += 1
            }
            defer {
                state.fetchWaiters = []
                if result != nil { state.waiters = [:] }
            }
            return (state.fetchWaiters, result != nil ? Array(state.waiters.values) : [])
        }
        for waiter in fetchWaiters { waiter.resume(returning: result ?? current) }
        for waiter in waiters { waiter.resume(returning: result) }
        return result
    }

    /// Returns when credentials are published; nil when the waiting task was cancelled.
    private func nextCredentials() async -> UpstreamCredentials? {
        let id = state.withLock { state -> Int in
            state.nextWaiter += 1
            return state.nextWaiter
        }
        return await state.park(cancelled: nil) { state, continuation in
            if let credentials = state.credentials { return credentials }
            state.waiters[id] = continuation
            return nil
        } unpark: { state in
            state.waiters.removeValue(forKey: id)
        }
    }

    /// The first failure at once, then at most one line a minute with the count since.
    private func logFailure(_ error: SecretFetchError) {
        let now = ContinuousClock.now
        let count: Int? = state.withLock { state in
            state.failuresSinceLine += 1
            if let last = state.lastFailureLine, now - last < .seconds(60) { return nil }
            state.lastFailureLine = now
            defer { state.failuresSinceLine = 0 }
            return state.failuresSinceLine
        }
        guard let count else { return }
        let held =
            current == nil ? "uploads wait for it (they are not dropped) and the fetch is retried with backoff" : "the credential fetched before stays in use"
        logger.warning(
            "Cannot fetch the upstream credential from \(plan.variable): \(error.message); \(held)",
            metadata: [
                LogKey.setting: "\(plan.variable)", LogKey.errorCode: "\(error.code)", LogKey.count: .stringConvertible(count),
            ].merging(error.underlying.map { [LogKey.error: "\($0)"] } ?? [:]) { $1 })
    }
}
