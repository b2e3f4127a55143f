import Testing

@testable import RelayCore

/// The arithmetic of `RetryPolicy`: backoff and `Retry-After`. What is decided with it, per
/// upload, is `DeliveryAttemptsTests`.
@Suite struct RetryPolicyTests {
    let policy = RetryPolicy()

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

    @Test func parsesRetryAfterSecondsAndDates() {
        #expect(RetryPolicy.parseRetryAfter("2", nowUnixSeconds: 0) == .seconds(2))
        #expect(RetryPolicy.parseRetryAfter(" 120 ", nowUnixSeconds: 0) == .seconds(120))
        #expect(RetryPolicy.parseRetryAfter("Sun, 06 Nov 1994 08:49:37 GMT", nowUnixSeconds: 784_111_777 - 30) == .seconds(30))
        #expect(RetryPolicy.parseRetryAfter("Sun, 06 Nov 1994 08:49:37 GMT", nowUnixSeconds: 784_111_777 + 30) == .zero)
        #expect(RetryPolicy.parseRetryAfter("soon", nowUnixSeconds: 0) == nil)
        #expect(RetryPolicy.parseRetryAfter("-5", nowUnixSeconds: 0) == nil)
    }

}
