import Foundation
import NIOConcurrencyHelpers
import RelayTestSupport
import Testing

@testable import RelayCore

/// The memory queue overflowing into the disk spool, and back.
@Suite struct SpoolDeliveryTests {
    static func temporaryDirectory() -> String {
        NSTemporaryDirectory() + "spool-test-\(UUID().uuidString)"
    }

    @Test func remoteDownLongerThanMemoryHoldsLosesNothing() async throws {
        let directory = Self.temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let down = NIOLockedValueBox(true)
        try await RecordingRemote.with(respond: { _ in down.withLockedValue { $0 } ? .status(.serviceUnavailable) : .status(.ok) }) { remote in
            let configuration = TestRelay.configuration(remote: remote) {
                $0.workers = 2
                $0.queueMaxItems = 4
                $0.spoolDirectory = directory
                $0.spoolMaxBytes = 16 << 20
                $0.retryPolicy = RetryPolicy(initialBackoff: .milliseconds(50), maxBackoff: .milliseconds(200), maxAttempts: 1000)
            }
            try await TestRelay.with(configuration) { relay in
                for index in 0..<40 { #expect(await DeliveryTests.post(relay, "upload-\(index)") == 200) }
                let spooled = relay.pipeline.snapshot.spoolItems
                #expect(spooled > 0, "the overflow went to disk")
                down.withLockedValue { $0 = false }
                // Everything reaches the remote once it is back.
                try await eventually("all 40 delivered", timeout: .seconds(60)) { relay.counters.snapshot.delivered >= 40 }
                let delivered = remote.received.filter { $0.value("x-relay-test") == nil }
                    .compactMap { request -> String? in request.body.isEmpty ? nil : String(decoding: request.body, as: UTF8.self) }
                let okBodies = Set(delivered)
                #expect(okBodies == Set((0..<40).map { "upload-\($0)" }))
                let stats = relay.counters.snapshot
                #expect(stats.delivered == 40 && stats.droppedTotal == 0 && stats.received == 40)
                #expect(relay.pipeline.snapshot.spoolItems == 0)
            }
        }
    }

    @Test func floodBeyondMemoryAndSpoolGets503sAndCountsAddUp() async throws {
        let directory = Self.temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let down = NIOLockedValueBox(true)
        try await RecordingRemote.with(respond: { _ in down.withLockedValue { $0 } ? .status(.badGateway) : .status(.ok) }) { remote in
            let configuration = TestRelay.configuration(remote: remote) {
                $0.workers = 1
                $0.queueMaxItems = 3
                $0.spoolDirectory = directory
                $0.spoolMaxBytes = 8 * 1024  // a handful of 1 KB uploads
                $0.retryPolicy = RetryPolicy(initialBackoff: .milliseconds(20), maxBackoff: .milliseconds(50), maxAttempts: 1000)
            }
            try await TestRelay.with(configuration) { relay in
                let body = String(repeating: "p", count: 1000)
                var statuses: [Int: Int] = [:]
                for index in 0..<40 { statuses[await DeliveryTests.post(relay, "\(index):\(body)") ?? 0, default: 0] += 1 }
                #expect(statuses[503, default: 0] > 0, "memory and spool full: honest 503s")
                #expect(statuses[200, default: 0] + statuses[503, default: 0] == 40)
                down.withLockedValue { $0 = false }
                let accepted = statuses[200, default: 0]
                try await eventually("every accepted upload delivered", timeout: .seconds(60)) { relay.counters.snapshot.delivered >= accepted }
                let stats = relay.counters.snapshot
                #expect(stats.received == 40)
                #expect(stats.received == stats.delivered + stats.droppedTotal, "received = delivered + dropped by reason")
                #expect(stats.dropped == [.queueFull: statuses[503, default: 0]])
                #expect(Set(remote.received.filter { $0.indexOnConnection > 0 && !$0.body.isEmpty }.map(\.body)).count == stats.delivered)
            }
        }
    }
}
