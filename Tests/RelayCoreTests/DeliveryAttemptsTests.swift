import Testing

@testable import RelayCore

/// Every retry rule, as tables of events and the actions they lead to: no I/O, no clock.
@Suite struct DeliveryAttemptsTests {
    typealias Action = DeliveryAttempts.Action
    static let policy = RetryPolicy()
    static let young = DeliveryAttempts.Circumstances(age: .seconds(1))

    /// The next action, with `confirmCurrent` answered "still current" as the pipeline would
    /// outside a SnapStart restore.
    static func next(_ attempts: inout DeliveryAttempts, after event: DeliveryAttempts.Event, _ now: DeliveryAttempts.Circumstances) -> Action {
        let action = attempts.next(after: event, now)
        return action == .confirmCurrent ? attempts.next(after: .confirmed(isCurrent: true), now) : action
    }

    /// A machine that has sent `attempt` requests (at least one more than `reconnects`), the
    /// first `reconnects` beyond the first being immediate reconnects and the rest retries
    /// after a 500, and waits for the last one's answer. The jitter draw is 0.5: no jitter.
    static func machine(
        policy: RetryPolicy = policy, attempt: Int = 1, reconnects: Int = 2, canRefetchCredentials: Bool = false, isFromSpool: Bool = false
    ) -> DeliveryAttempts {
        var attempts = DeliveryAttempts(policy: policy, isFromSpool: isFromSpool, canRefetchCredentials: canRefetchCredentials, drawJitter: { 0.5 })
        let now = DeliveryAttempts.Circumstances(age: .zero)
        var action = next(&attempts, after: .start, now)
        while attempts.attempts < max(attempt, reconnects + 1) {
            if attempts.reconnects < reconnects {
                action = next(&attempts, after: .answered(.connectionFailure), now)
            } else {
                guard case .wait = attempts.next(after: .answered(.status(code: 500, retryAfter: nil)), now) else { break }
                action = next(&attempts, after: .waited, now)
            }
        }
        precondition(action == .send(attempt: attempts.attempts) || action == .reconnect(attempt: attempts.attempts))
        return attempts
    }

    func decide(_ result: DeliveryAttempts.AttemptResult, attempt: Int = 1, reconnects: Int = 2, age: Duration = .seconds(1)) -> Action {
        var attempts = Self.machine(attempt: attempt, reconnects: reconnects)
        return Self.next(&attempts, after: .answered(result), .init(age: age))
    }

    @Test func classifiesAnswers() {
        #expect(decide(.status(code: 200, retryAfter: nil)) == .finish(.delivered))
        #expect(decide(.status(code: 204, retryAfter: nil)) == .finish(.delivered))
        for code: UInt in [400, 401, 403, 404, 413, 422] {
            #expect(decide(.status(code: code, retryAfter: nil)) == .finish(.dropped(.rejected4xx)), "\(code) is final")
        }
        for code: UInt in [408, 429, 500, 502, 503, 504] {
            #expect(decide(.status(code: code, retryAfter: nil)) == .wait(.milliseconds(500)), "\(code) is retried")
        }
        #expect(decide(.timeout) == .wait(.milliseconds(500)))
        #expect(decide(.connectionFailure) == .wait(.milliseconds(500)))
        // DNS, refused, TLS verification: no immediate reconnect, counted and backed off.
        #expect(decide(.unreachable, reconnects: 0) == .wait(.milliseconds(500)))
        #expect(decide(.unreachable, attempt: 10) == .finish(.dropped(.maxRetries)))
    }

    /// Where Lambda freezes the environment, an upload of unknown fate (the whole request
    /// sent, then a timeout or a broken connection) ends unconfirmed instead of being stored
    /// twice; one the remote cannot have stored is still retried. Elsewhere both are retried.
    @Test func anUploadOfUnknownFateIsNeverResentWhereLambdaFreezes() {
        func decide(_ result: DeliveryAttempts.AttemptResult, resends: Bool) -> Action {
            var attempts = DeliveryAttempts(policy: Self.policy, resendsUnknownFate: resends, drawJitter: { 0.5 })
            _ = Self.next(&attempts, after: .start, Self.young)
            return Self.next(&attempts, after: .answered(result), Self.young)
        }
        #expect(decide(.timeout, resends: false) == .finish(.unconfirmed))
        #expect(decide(.answerLost, resends: false) == .finish(.unconfirmed))
        #expect(decide(.connectionFailure, resends: false) == .reconnect(attempt: 2), "not sent whole: sent again")
        #expect(decide(.status(code: 503, retryAfter: nil), resends: false) == .wait(.milliseconds(500)))
        #expect(decide(.timeout, resends: true) == .wait(.milliseconds(500)))
        #expect(decide(.answerLost, resends: true) == .reconnect(attempt: 2), "as a dead pooled connection")
    }

    @Test func retryAfterIsHonouredWithinTheCeiling() {
        #expect(decide(.status(code: 429, retryAfter: .seconds(2))) == .wait(.seconds(2)))
        #expect(decide(.status(code: 503, retryAfter: .seconds(3600))) == .wait(.seconds(300)))
        var quick = Self.machine(policy: RetryPolicy(maxBackoff: .milliseconds(400)), reconnects: 0)
        #expect(
            quick.next(after: .answered(.status(code: 429, retryAfter: .seconds(2))), .init(age: .zero)) == .wait(.seconds(2)),
            "Retry-After beats a shorter backoff ceiling")
    }

    @Test func givesUpAfterMaxAttemptsOrWhenTooOld() {
        #expect(decide(.status(code: 500, retryAfter: nil), attempt: 10) == .finish(.dropped(.maxRetries)))
        #expect(decide(.timeout, attempt: 9) != .finish(.dropped(.maxRetries)))
        #expect(decide(.status(code: 500, retryAfter: nil), age: .milliseconds(3_599_600)) == .finish(.dropped(.tooOld)))
        #expect(decide(.status(code: 500, retryAfter: nil), age: .milliseconds(3_599_400)) == .wait(.milliseconds(500)))
        #expect(decide(.status(code: 200, retryAfter: nil), age: .seconds(7200)) == .finish(.delivered), "a late success still counts")
    }

    @Test func deadPooledConnectionsAreRetriedAtOnceWithinTheBudget() {
        #expect(decide(.connectionFailure, reconnects: 0) == .reconnect(attempt: 2))
        #expect(decide(.connectionFailure, attempt: 2, reconnects: 1) == .reconnect(attempt: 3))
        #expect(decide(.connectionFailure, attempt: 3, reconnects: 2) == .wait(.milliseconds(500)), "backoff of the first real try")
        #expect(decide(.timeout, reconnects: 0) == .wait(.milliseconds(500)), "a slow remote is not a dead connection")
        #expect(decide(.connectionFailure, reconnects: 0, age: .seconds(3600)) != .reconnect(attempt: 2), "too old for a reconnect")
    }

    @Test func reconnectsAndZeroRetryAftersAreRequestsCountedAgainstMaxAttempts() {
        // A reconnect is its own action, never a zero wait; a remote asking for no wait
        // gets one, but each such answer is a try.
        #expect(decide(.status(code: 503, retryAfter: .zero)) == .wait(.zero))
        #expect(decide(.status(code: 503, retryAfter: .zero), attempt: 10) == .finish(.dropped(.maxRetries)))
        #expect(decide(.connectionFailure, attempt: 10, reconnects: 0) == .finish(.dropped(.maxRetries)), "no reconnect past the budget")
        var once = DeliveryAttempts(policy: RetryPolicy(maxAttempts: 1, jitter: 0))
        #expect(Self.next(&once, after: .start, .init(age: .zero)) == .send(attempt: 1))
        #expect(once.next(after: .answered(.connectionFailure), .init(age: .zero)) == .finish(.dropped(.maxRetries)))
        // Every send is counted: ten reconnect-or-retry answers in a row end at the tenth.
        var attempts = DeliveryAttempts(policy: Self.policy, drawJitter: { 0.5 })
        var actions: [Action] = [Self.next(&attempts, after: .start, Self.young)]
        while case .send = actions.last ?? .refetchCredentials {
            actions.append(attempts.next(after: .answered(.status(code: 503, retryAfter: .zero)), Self.young))
            if actions.last == .wait(.zero) { actions.append(Self.next(&attempts, after: .waited, Self.young)) }
        }
        #expect(attempts.attempts == 10)
        #expect(actions.last == .finish(.dropped(.maxRetries)))
    }

    @Test func aRejectedCredentialIsFetchedAgainOnceAndTheResendCounts() {
        var attempts = Self.machine(reconnects: 0, canRefetchCredentials: true)
        #expect(attempts.next(after: .answered(.status(code: 401, retryAfter: nil)), Self.young) == .refetchCredentials)
        #expect(Self.next(&attempts, after: .credentialsRefetched(true), Self.young) == .send(attempt: 2))
        #expect(attempts.next(after: .answered(.status(code: 403, retryAfter: nil)), Self.young) == .finish(.dropped(.rejected4xx)), "once per upload")

        var unchanged = Self.machine(reconnects: 0, canRefetchCredentials: true)
        #expect(unchanged.next(after: .answered(.status(code: 403, retryAfter: nil)), Self.young) == .refetchCredentials)
        #expect(unchanged.next(after: .credentialsRefetched(false), Self.young) == .finish(.dropped(.rejected4xx)), "nothing new: the 403 is final")

        var settings = Self.machine(reconnects: 0, canRefetchCredentials: false)
        #expect(settings.next(after: .answered(.status(code: 401, retryAfter: nil)), Self.young) == .finish(.dropped(.rejected4xx)))
    }

    @Test func atShutdownNoAttemptStartsThatCannotEndBeforeTheDeadline() {
        let slow = ShutdownWindow(timeLeft: .milliseconds(900), slowestRecentAttempt: .milliseconds(601))
        let ample = ShutdownWindow(timeLeft: .milliseconds(900), slowestRecentAttempt: .milliseconds(600))
        #expect(!slow.allowsAttempt(), "601 ms with the 1.5 slack ends after 900 ms")
        #expect(ample.allowsAttempt(), "600 ms with the 1.5 slack ends at 900 ms")
        #expect(!ample.allowsAttempt(after: .milliseconds(1)))
        #expect(ShutdownWindow().allowsAttempt(after: .seconds(3600)), "no deadline: always time")

        var fresh = DeliveryAttempts(policy: Self.policy)
        #expect(Self.next(&fresh, after: .start, .init(age: .zero, shutdown: slow)) == .finish(.dropped(.shutdownDeadline)))
        #expect(fresh.attempts == 0, "nothing was sent")
        var spooled = DeliveryAttempts(policy: Self.policy, isFromSpool: true)
        #expect(Self.next(&spooled, after: .start, .init(age: .zero, shutdown: slow)) == .finish(.keptInSpool), "the spool keeps it for the next start")

        // A backoff that would end past the deadline is not waited for.
        var retrying = Self.machine(reconnects: 0)
        let late = ShutdownWindow(timeLeft: .milliseconds(400), slowestRecentAttempt: .zero)
        #expect(retrying.next(after: .answered(.status(code: 503, retryAfter: nil)), .init(age: .zero, shutdown: late)) == .finish(.dropped(.shutdownDeadline)))
        var reconnecting = Self.machine(reconnects: 0)
        #expect(
            Self.next(&reconnecting, after: .answered(.connectionFailure), .init(age: .zero, shutdown: late)) == .reconnect(attempt: 2),
            "a reconnect needs no wait")
        #expect(
            Self.next(&reconnecting, after: .answered(.connectionFailure), .init(age: .zero, shutdown: slow)) == .finish(.dropped(.shutdownDeadline)))
    }

    @Test func everySendIsConfirmedCurrentFirstAndAStaleUploadIsDroppedAsSnapshotEvenAtShutdown() {
        var attempts = DeliveryAttempts(policy: Self.policy)
        #expect(attempts.next(after: .start, Self.young) == .confirmCurrent)
        #expect(attempts.next(after: .confirmed(isCurrent: true), Self.young) == .send(attempt: 1))
        #expect(attempts.next(after: .answered(.connectionFailure), Self.young) == .confirmCurrent)
        #expect(attempts.next(after: .confirmed(isCurrent: true), Self.young) == .reconnect(attempt: 2))
        #expect(attempts.next(after: .answered(.status(code: 503, retryAfter: .zero)), Self.young) == .wait(.zero))
        #expect(attempts.next(after: .waited, Self.young) == .confirmCurrent)
        #expect(attempts.next(after: .confirmed(isCurrent: false), Self.young) == .finish(.dropped(.snapshot)))
        #expect(attempts.attempts == 2, "nothing sent once it was stale")

        // Currency is asked before the time is judged: a stale upload from the spool is
        // dropped (its record deleted), never kept to be replayed by the next start.
        var stale = DeliveryAttempts(policy: Self.policy, isFromSpool: true)
        let closing = DeliveryAttempts.Circumstances(age: .zero, shutdown: ShutdownWindow(timeLeft: .zero, slowestRecentAttempt: .seconds(1)))
        #expect(stale.next(after: .start, closing) == .confirmCurrent)
        #expect(stale.next(after: .confirmed(isCurrent: false), closing) == .finish(.dropped(.snapshot)))
    }

    @Test func aCancelledUploadEnds() {
        var cancelled = Self.machine(reconnects: 0)
        #expect(cancelled.next(after: .cancelled, Self.young) == .finish(.dropped(.shutdownDeadline)))
        var cancelledFromSpool = Self.machine(reconnects: 0, isFromSpool: true)
        #expect(cancelledFromSpool.next(after: .cancelled, Self.young) == .finish(.keptInSpool))
    }
}
