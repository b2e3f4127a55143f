import Testing

@testable import RelayCore

@Suite struct RetryPolicyTests {
    let policy = RetryPolicy()

    func decide(_ result: RetryPolicy.AttemptResult, attempt: Int = 1, reconnects: Int = 2, age: Duration = .seconds(1)) -> RetryPolicy.Decision {
        policy.decide(result, attempt: attempt, reconnectsUsed: reconnects, age: age, random: 0.5)
    }

    @Test func classifiesAnswers() {
        #expect(decide(.status(code: 200, retryAfter: nil)) == .delivered)
        #expect(decide(.status(code: 204, retryAfter: nil)) == .delivered)
        for code: UInt in [400, 401, 403, 404, 413, 422] {
            #expect(decide(.status(code: code, retryAfter: nil)) == .drop(.rejected4xx), "\(code) is final")
        }
        for code: UInt in [408, 429, 500, 502, 503, 504] {
            #expect(decide(.status(code: code, retryAfter: nil)) == .retry(after: .milliseconds(500)), "\(code) is retried")
        }
        #expect(decide(.timeout) == .retry(after: .milliseconds(500)))
        #expect(decide(.connectionFailure) == .retry(after: .milliseconds(500)))
        // DNS, refused, TLS verification: no immediate reconnect, counted and backed off.
        #expect(decide(.unreachable, reconnects: 0) == .retry(after: .milliseconds(500)))
        #expect(decide(.unreachable, attempt: 10) == .drop(.maxRetries))
    }

    @Test func backoffDoublesUpToTheCeilingWithBoundedJitter() {
        let noJitter = RetryPolicy(jitter: 0)
        let delays = (1...12).map { noJitter.backoff(attempt: $0, random: 0.5) }
        #expect(delays.prefix(5) == [.milliseconds(500), .seconds(1), .seconds(2), .seconds(4), .seconds(8)])
        #expect(delays.last == .seconds(300))
        for random in [0.0, 0.25, 0.5, 0.999] {
            let delay = policy.backoff(attempt: 3, random: random)
            #expect(delay >= .milliseconds(1600) && delay <= .milliseconds(2400))
        }
        #expect(policy.backoff(attempt: 1000, random: 1) == .seconds(300))
    }

    @Test func retryAfterIsHonouredWithinTheCeiling() {
        #expect(decide(.status(code: 429, retryAfter: .seconds(2))) == .retry(after: .seconds(2)))
        #expect(decide(.status(code: 503, retryAfter: .seconds(3600))) == .retry(after: .seconds(300)))
        let quick = RetryPolicy(maxBackoff: .milliseconds(400))
        #expect(
            quick.decide(.status(code: 429, retryAfter: .seconds(2)), attempt: 1, reconnectsUsed: 0, age: .zero, random: 0.5) == .retry(after: .seconds(2)),
            "Retry-After beats a shorter backoff ceiling")
        #expect(RetryPolicy.parseRetryAfter("2", nowUnixSeconds: 0) == .seconds(2))
        #expect(RetryPolicy.parseRetryAfter(" 120 ", nowUnixSeconds: 0) == .seconds(120))
        #expect(RetryPolicy.parseRetryAfter("Sun, 06 Nov 1994 08:49:37 GMT", nowUnixSeconds: 784_111_777 - 30) == .seconds(30))
        #expect(RetryPolicy.parseRetryAfter("Sun, 06 Nov 1994 08:49:37 GMT", nowUnixSeconds: 784_111_777 + 30) == .zero)
        #expect(RetryPolicy.parseRetryAfter("soon", nowUnixSeconds: 0) == nil)
        #expect(RetryPolicy.parseRetryAfter("-5", nowUnixSeconds: 0) == nil)
    }

    @Test func givesUpAfterMaxAttemptsOrWhenTooOld() {
        #expect(decide(.status(code: 500, retryAfter: nil), attempt: 10) == .drop(.maxRetries))
        #expect(decide(.timeout, attempt: 9) != .drop(.maxRetries))
        #expect(decide(.status(code: 500, retryAfter: nil), age: .milliseconds(3_599_600)) == .drop(.tooOld))
        #expect(decide(.status(code: 500, retryAfter: nil), age: .milliseconds(3_599_400)) == .retry(after: .milliseconds(500)))
        #expect(decide(.status(code: 200, retryAfter: nil), age: .seconds(7200)) == .delivered, "a late success still counts")
    }

    @Test func deadPooledConnectionsAreRetriedAtOnceWithinTheBudget() {
        #expect(decide(.connectionFailure, reconnects: 0) == .reconnect)
        #expect(decide(.connectionFailure, attempt: 2, reconnects: 1) == .reconnect)
        #expect(decide(.connectionFailure, attempt: 3, reconnects: 2) == .retry(after: .milliseconds(500)), "backoff of the first real try")
        #expect(decide(.timeout, reconnects: 0) == .retry(after: .milliseconds(500)), "a slow remote is not a dead connection")
    }

    @Test func reconnectsAndZeroRetryAftersAreRequestsCountedAgainstMaxAttempts() {
        // A reconnect is its own decision, never a zero delay; a remote asking for no wait
        // gets one, but each such answer is a try.
        #expect(decide(.status(code: 503, retryAfter: .zero)) == .retry(after: .zero))
        #expect(decide(.status(code: 503, retryAfter: .zero), attempt: 10) == .drop(.maxRetries))
        #expect(decide(.connectionFailure, attempt: 10, reconnects: 0) == .drop(.maxRetries), "no reconnect past the budget")
        let once = RetryPolicy(maxAttempts: 1, jitter: 0)
        #expect(once.decide(.connectionFailure, attempt: 1, reconnectsUsed: 0, age: .zero, random: 0) == .drop(.maxRetries))
    }
}
