import NIOConcurrencyHelpers
import RelayTestSupport
import Testing

@testable import RelayCore

/// A flush or the shutdown drain sends what is queued `drainConcurrency` at a time, so it
/// takes about one round trip to the remote, not one per `workers` uploads; in between,
/// `workers` senders. The remote holds every answer until it has seen the uploads a test
/// expects at once: with fewer concurrent senders it never would (bounded waits fail).
@Suite struct DrainConcurrencyTests {
    static func configuration(remote: RecordingRemote) -> RelayConfiguration {
        TestRelay.configuration(remote: remote) {
            $0.workers = 5
            $0.drainConcurrency = 32
            // Held answers never time out into retries, however slow the machine is.
            $0.upstreamTimeout = .seconds(120)
        }
    }

    /// Posts `count` uploads while the remote holds its answers; returns once the steady
    /// senders have theirs in flight and the rest wait in memory.
    static func queue(_ count: Int, relay: TestRelay, remote: RecordingRemote) async throws {
        for index in 0..<count { #expect(await rawPost(port: relay.port, body: "upload \(index)") == 200) }
        try await eventually("the steady senders' uploads reach the remote (\(remote.received.count), \(relay.pipeline.snapshot))") {
            remote.received.count == 5
        }
        #expect(relay.pipeline.snapshot.queuedItems == count - 5, "between flushes: PYROSCOPE_NUM_WORKERS in flight, the rest queued")
    }

    @Test func aFlushOfTwentyQueuedUploadsHasThemAllInFlightAtOnce() async throws {
        let gate = RecordingRemote.Gate()
        try await RecordingRemote.with(respond: { _ in gate.isOpen ? .delayed(.milliseconds(200), .ok) : .held(gate, .ok) }) { remote in
            try await TestRelay.with(Self.configuration(remote: remote)) { relay in
                try await Self.queue(20, relay: relay, remote: remote)
                async let flushed: Void = relay.pipeline.flush()
                try await eventually("all 20 in flight during the flush", timeout: .seconds(10)) { remote.received.count == 20 }
                gate.open()
                await flushed
                #expect(relay.counters.snapshot.delivered == 20)
                #expect(relay.pipeline.snapshot.incomplete == 0)
            }
        }
    }

    @Test func theShutdownDrainSendsDrainConcurrencyAtOnce() async throws {
        let gate = RecordingRemote.Gate()
        try await RecordingRemote.with(respond: { _ in gate.isOpen ? .delayed(.milliseconds(500), .ok) : .held(gate, .ok) }) { remote in
            try await TestRelay.with(Self.configuration(remote: remote)) { relay in
                // The issue's case: 45 queued at SHUTDOWN, a remote answering in 500 ms.
                try await Self.queue(45, relay: relay, remote: remote)
                // What graceful shutdown does first: refuse new uploads, drain the rest.
                relay.pipeline.close()
                try await eventually("32 in flight in the drain", timeout: .seconds(10)) { remote.received.count == 32 }
                gate.open()
                await relay.pipeline.flush()
                #expect(relay.counters.snapshot.delivered == 45)
            }
        }
    }
}

/// A remote that reads an upload whole and then breaks the connection (what a freeze with a
/// load balancer in front of the remote leaves at the thaw): the relay does not send it again
/// where Lambda freezes (`resendsUnknownFate` off: stored once, counted unconfirmed), and
/// elsewhere sends it again and says the remote may now hold it twice.
@Suite struct UnknownFateTests {
    @Test(arguments: [false, true])
    func anUploadWhoseAnswerIsLostIsResentOnlyWhereNothingFreezes(resends: Bool) async throws {
        let first = NIOLockedValueBox(true)
        let respond: @Sendable (RecordingRemote.Request) -> RecordingRemote.Reply = { _ in
            first.withLockedValue { isFirst in
                defer { isFirst = false }
                return isFirst ? .reset : .status(.ok)
            }
        }
        try await RecordingRemote.with(respond: respond) { remote in
            let configuration = TestRelay.configuration(remote: remote) { $0.resendsUnknownFate = resends }
            try await TestRelay.with(configuration) { relay in
                #expect(await rawPost(port: relay.port, body: "answer lost") == 200)
                await relay.pipeline.flush()
                let counters = relay.counters.snapshot
                #expect(counters.delivered == 1)
                #expect(remote.received.count == (resends ? 2 : 1), "stored \(resends ? "twice" : "once")")
                #expect(counters.unconfirmed == (resends ? 0 : 1))
                #expect(counters.resentUnknown == (resends ? 1 : 0))
            }
        }
    }
}
