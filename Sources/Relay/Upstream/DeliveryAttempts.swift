/// One upload's attempts as a state machine: every rule of when an upload is sent again,
/// reconnected, resent with fresh credentials, waited on, or given up lives here, and
/// nowhere else. No I/O: `UploadForwarder.deliver` reports what happened (`Event`) with
/// the moment's facts (`Circumstances`) and carries out the `Action` it gets back.
///
/// Defaults follow Grafana Alloy's `pyroscope.write` (see `RetryPolicy`): transport
/// errors, timeouts, 408, 429 and 5xx are retried with backoff; other 4xx are final;
/// `Retry-After` wins; no upload is sent more than `maxAttempts` times, whatever the
/// remote answers (reconnects, zero `Retry-After`s and credential resends included).
struct DeliveryAttempts {
    /// How one attempt ended.
    enum AttemptResult: Sendable, Equatable {
        case status(code: UInt, retryAfter: Duration?)
        /// The connection failed before an answer (reset, refused, closed) and before the
        /// whole request was sent: the remote cannot have stored it.
        case connectionFailure
        /// The connection broke after the whole request was sent, before an answer: the
        /// remote may have stored it (what a freeze with an upload on the wire leaves).
        case answerLost
        /// No answer within the timeout.
        case timeout
        /// No connection could be made (DNS, refused, TLS verification, proxy): counted
        /// and backed off, as reconnecting at once would fail the same way.
        case unreachable
    }

    enum Event: Sendable, Equatable {
        /// Nothing sent yet.
        case start
        /// An attempt ended with an answer or a failure.
        case answered(AttemptResult)
        /// `refetchCredentials` was carried out: true when new credentials are in the request.
        case credentialsRefetched(Bool)
        /// The wait asked for is over.
        case waited
        /// `confirmCurrent` was carried out: false when the upload must not be sent any more
        /// (accepted before a SnapStart restore, so every restored copy would send it).
        case confirmed(isCurrent: Bool)
        /// The drain deadline cancelled an attempt, a wait or the wait for credentials.
        case cancelled
    }

    enum Action: Sendable, Equatable {
        /// Before each send: ask the pipeline whether the upload may still be sent (this may
        /// wait while a SnapStart snapshot may be taken), then report `confirmed`.
        case confirmCurrent
        /// Make attempt number `attempt` (1 for the first) now.
        case send(attempt: Int)
        /// Send again at once on a fresh connection, as attempt `attempt`: the pooled one was dead.
        case reconnect(attempt: Int)
        /// A 401/403: fetch the credentials again (once per upload), then report `credentialsRefetched`.
        case refetchCredentials
        /// Sleep this long (zero when the remote's `Retry-After` says so), then report `waited`.
        case wait(Duration)
        case finish(DeliveryPipeline.Outcome)
    }

    /// What the state machine cannot know by itself, read when an event is reported.
    struct Circumstances: Sendable, Equatable {
        /// Time since the upload was received.
        var age: Duration
        var shutdown = ShutdownWindow()
    }

    let policy: RetryPolicy
    /// Where it waited before: cut short at shutdown it stays in the spool for the next start.
    let isFromSpool: Bool
    /// Whether a 401/403 may be answered by fetching the credentials again.
    let canRefetchCredentials: Bool
    /// Whether an upload whose fate is unknown (a timeout, an answer lost after the request
    /// was sent) is sent again: true, it may be stored twice; false (where Lambda freezes
    /// the environment with uploads on the wire), it ends `unconfirmed`, never resent.
    let resendsUnknownFate: Bool
    /// Requests sent so far, reconnects and resends included.
    private(set) var attempts = 0
    /// Immediate reconnects spent (at most `policy.immediateReconnects`).
    private(set) var reconnects = 0
    private var credentialsRefetched = false
    /// The answer a credential refetch was asked for; decided on if the refetch brings nothing.
    private var awaitingRefetch: AttemptResult?
    /// The send waiting for `confirmed`: a reconnect, or not.
    private var pendingSend: PendingSend?
    private enum PendingSend { case send, reconnect }
    /// A value in [0, 1) for the jitter; drawn only for a backoff (it costs a getrandom syscall).
    private let drawJitter: () -> Double

    init(
        policy: RetryPolicy, isFromSpool: Bool = false, canRefetchCredentials: Bool = false, resendsUnknownFate: Bool = true,
        drawJitter: @escaping () -> Double = { Double.random(in: 0..<1) }
    ) {
        self.policy = policy
        self.isFromSpool = isFromSpool
        self.canRefetchCredentials = canRefetchCredentials
        self.resendsUnknownFate = resendsUnknownFate
        self.drawJitter = drawJitter
    }

    /// How an upload ends when the drain deadline cuts it short.
    var cutShort: DeliveryPipeline.Outcome { isFromSpool ? .keptInSpool : .dropped(.shutdownDeadline) }

    /// - Parameter now: read only when the decision needs it (before a send, after a failed
    ///   attempt): on the usual path, a first attempt answered 2xx, it is read once.
    mutating func next(after event: Event, _ now: @autoclosure () -> Circumstances) -> Action {
        switch event {
        case .start, .waited:
            return confirmCurrent(then: .send)
        case .confirmed(let isCurrent):
            guard let pending = pendingSend else { return .finish(cutShort) }
            pendingSend = nil
            guard isCurrent else { return .finish(.dropped(.snapshot)) }
            // Then, at shutdown: not started when its answer would come after the deadline.
            guard hasTime(now(), after: .zero) else { return .finish(cutShort) }
            attempts += 1
            return pending == .reconnect ? .reconnect(attempt: attempts) : .send(attempt: attempts)
        case .cancelled:
            return .finish(cutShort)
        case .credentialsRefetched(let fresh):
            guard let result = awaitingRefetch else { return .finish(cutShort) }
            awaitingRefetch = nil
            // The secret was rotated: send again at once with the new value (a request, counted).
            if fresh { return confirmCurrent(then: .send) }
            return decide(result, now())
        case .answered(let result):
            if case .status(let code, _) = result, code == 401 || code == 403, canRefetchCredentials, !credentialsRefetched {
                credentialsRefetched = true
                awaitingRefetch = result
                return .refetchCredentials
            }
            return decide(result, now())
        }
    }

    private mutating func decide(_ result: AttemptResult, _ circumstances: @autoclosure () -> Circumstances) -> Action {
        let retryAfter: Duration?
        switch result {
        case .status(let code, let after):
            if (200..<300).contains(code) { return .finish(.delivered) }
            if (400..<500).contains(code), code != 408, code != 429 { return .finish(.dropped(.rejected4xx)) }
            retryAfter = after
        case .timeout, .answerLost:
            if !resendsUnknownFate { return .finish(.unconfirmed) }
            retryAfter = nil
        case .connectionFailure, .unreachable:
            retryAfter = nil
        }
        if attempts >= policy.maxAttempts { return .finish(.dropped(.maxRetries)) }
        let now = circumstances()
        // A dead pooled connection (as a freeze leaves them) takes the request into its
        // socket and breaks: sent again at once on a fresh one.
        if result == .connectionFailure || result == .answerLost, reconnects < policy.immediateReconnects, now.age < policy.maxAge {
            reconnects += 1
            return confirmCurrent(then: .reconnect)
        }
        // The remote's Retry-After wins over our backoff (even a longer one), up to five
        // minutes: a remote asking for more is treated as down for that long. The backoff
        // grows with the tries that were not reconnects.
        let delay =
            retryAfter.map { min($0, max(policy.maxBackoff, RetryPolicy.retryAfterCeiling)) }
            ?? policy.backoff(attempt: attempts - reconnects, random: drawJitter())
        if now.age + delay >= policy.maxAge { return .finish(.dropped(.tooOld)) }
        guard hasTime(now, after: delay) else { return .finish(cutShort) }
        return .wait(delay)
    }

    private mutating func confirmCurrent(then send: PendingSend) -> Action {
        pendingSend = send
        return .confirmCurrent
    }

    private func hasTime(_ now: Circumstances, after delay: Duration) -> Bool {
        now.shutdown.allowsAttempt(after: delay)
    }
}

/// At shutdown an attempt that cannot end in time is not started: the remote would record
/// the upload while its answer came after Lambda's deadline, so the relay would count as
/// dropped what the remote has (seen with a remote taking 500 ms per answer: 24 recorded, 19
/// counted delivered). Attempts in flight keep running until the deadline.
struct ShutdownWindow: Sendable, Equatable {
    /// Over the slowest recent attempt: a machine busy draining answers a little later.
    static let slack = 1.5

    /// Until the drain deadline; nil while none is set (not shutting down).
    var timeLeft: Duration? = nil
    /// The slowest of the last attempts (see `RecentAttemptDurations`).
    var slowestRecentAttempt: Duration = .zero

    /// Whether an attempt started after `delay` would end before the deadline.
    func allowsAttempt(after delay: Duration = .zero) -> Bool {
        guard let timeLeft else { return true }
        return delay + slowestRecentAttempt * Self.slack <= timeLeft
    }
}
