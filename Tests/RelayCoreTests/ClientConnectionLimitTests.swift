import Foundation
import NIOCore
import NIOEmbedded
import RelayTestSupport
import Testing

@testable import RelayCore

/// Client connections cannot hold the relay (issue 18, item 3): each part of a request
/// has a deadline, and the connections are capped below the file-descriptor limit with
/// the longest-idle one making room.
@Suite struct ClientConnectionLimitTests {
    static func shortTimeouts(_ configuration: inout RelayConfiguration) {
        configuration.ingress.headerTimeout = .milliseconds(300)
        configuration.ingress.bodyStallTimeout = .milliseconds(300)
        configuration.ingress.idleTimeout = .milliseconds(600)
    }

    static func metric(_ relay: TestRelay, _ prefix: String) -> Double {
        let text = String(decoding: relay.counters.metrics.exposition(), as: UTF8.self)
        return text.split(separator: "\n").filter { $0.hasPrefix(prefix) }.compactMap { Double($0.split(separator: " ").last ?? "") }
            .reduce(0, +)
    }

    @Test func partialHeadAndStalledBodyGet408AndIdleConnectionsAreClosed() async throws {
        try await RecordingRemote.with { remote in
            try await TestRelay.with(TestRelay.configuration(remote: remote, Self.shortTimeouts)) { relay in
                let port = relay.port
                let (head, body, idle, silent, keptAlive) = await offCooperativePool {
                    // A head that never ends.
                    let head = try? RawConnection(port: port, timeoutSeconds: 5)
                    try? head?.send("POST /ingest HTTP/1.1\r\nHost: x\r\n")
                    // A body that stops halfway.
                    let body = try? RawConnection(port: port, timeoutSeconds: 5)
                    try? body?.send("POST /ingest HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\n12345")
                    // A connection that never sends anything.
                    let silent = try? RawConnection(port: port, timeoutSeconds: 5)
                    // One upload, then nothing on the keep-alive connection.
                    let idle = try? RawConnection(port: port, timeoutSeconds: 5)
                    try? idle?.send("POST /ingest HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\nok")
                    let keptAlive = idle?.readResponse()?.status
                    return (head?.readResponse(), body?.readResponse(), idle?.isClosedByPeer(), silent?.isClosedByPeer(), keptAlive)
                }
                #expect(head?.status == 408 && head.map { String(decoding: $0.body, as: UTF8.self) }?.contains("request head") == true)
                #expect(body?.status == 408)
                #expect(keptAlive == 200 && idle == true && silent == true)
                #expect(Self.metric(relay, "pyroscope_relay_client_connections_closed_total{reason=\"header_timeout\"}") == 1)
                #expect(Self.metric(relay, "pyroscope_relay_client_connections_closed_total{reason=\"body_timeout\"}") == 1)
                #expect(Self.metric(relay, "pyroscope_relay_client_connections_closed_total{reason=\"idle_timeout\"}") == 2)
                #expect(Self.metric(relay, "pyroscope_relay_requests_total{path_class=\"ingest\",status=\"408\"}") == 1)
                #expect(relay.counters.snapshot.received == 1)
            }
        }
    }

    @Test func slowUploadThatKeepsSendingIsNotCutOff() async throws {
        try await RecordingRemote.with { remote in
            let configuration = TestRelay.configuration(remote: remote) {
                Self.shortTimeouts(&$0)
                $0.ingress.bodyStallTimeout = .seconds(1)
            }
            try await TestRelay.with(configuration) { relay in
                let port = relay.port
                let body = "abcdefghijklmnopqrst"
                let status = await offCooperativePool { () -> Int? in
                    guard let connection = try? RawConnection(port: port) else { return nil }
                    try? connection.send("POST /ingest HTTP/1.1\r\nHost: x\r\nContent-Length: \(body.count)\r\n\r\n")
                    // A byte every 100 ms: 2 s in all, twice the stall timeout, never stalled.
                    // The client's pace is what is tested, against the relay's real-time timer.
                    for byte in body {
                        Thread.sleep(forTimeInterval: 0.1)
                        try? connection.send(String(byte))
                    }
                    return connection.readResponse()?.status
                }
                #expect(status == 200)
                #expect(await remote.waitForRequests(1).first?.body == Array(body.utf8))
            }
        }
    }

    @Test func idleConnectionsMakeRoomAtTheCapAndBusyOnesGet503() async throws {
        try await RecordingRemote.with { remote in
            let configuration = TestRelay.configuration(remote: remote) {
                $0.ingress.maxConnections = 8
                $0.ingress.slowHeadGrace = .seconds(30)
            }
            try await TestRelay.with(configuration) { relay in
                let port = relay.port
                let limiter = relay.relay.ingress.limiter
                let opened = await offCooperativePool { () -> Handover<(health: [Int?], idle: [RawConnection], busy: [RawConnection])> in
                    // Far more idle connections than the cap: each newcomer replaces the oldest.
                    let idle = (0..<40).compactMap { _ in try? RawConnection(port: port, timeoutSeconds: 5) }
                    var health: [Int?] = []
                    for _ in 0..<3 {
                        health.append(rawHealthz(port: port))
                    }
                    // Eight connections in the middle of a request head: nothing to replace.
                    let busy = (0..<8).compactMap { _ -> RawConnection? in
                        let connection = try? RawConnection(port: port, timeoutSeconds: 5)
                        try? connection?.send("POST /ingest HTTP/1.1\r\nHost: x\r\n")
                        return connection
                    }
                    return Handover((health, idle, busy))
                }
                // Until the relay has read them: however loaded the machine, all eight are busy.
                try await eventually("eight heads arriving", timeout: .seconds(20)) { limiter.count(in: .head) >= 8 }
                let results = await offCooperativePool { () -> (health: [Int?], busy: Int?, retryAfter: Bool, afterBusy: Int?) in
                    let (health, idle, busy) = opened.value
                    _ = idle
                    let refused = try? RawConnection(port: port, timeoutSeconds: 5)
                    let answer = refused?.readResponse()
                    // Busy ones finish: room again.
                    for connection in busy { try? connection.send("Content-Length: 1\r\n\r\nx") }
                    for connection in busy { _ = connection.readResponse() }
                    return (health, answer?.status, answer?.headers.contains { $0.0 == "retry-after" } ?? false, rawHealthz(port: port))
                }
                #expect(results.health == [200, 200, 200])
                #expect(results.busy == 503 && results.retryAfter)
                #expect(results.afterBusy == 200)
                #expect(Self.metric(relay, "pyroscope_relay_client_connections_closed_total{reason=\"replaced\"}") >= 32)
                #expect(Self.metric(relay, "pyroscope_relay_client_connections_closed_total{reason=\"over_limit\"}") == 1)
                #expect(relay.relay.ingress.openConnections <= 8)
            }
        }
    }

    @Test func slowHeadsMakeRoomAfterTheGrace() async throws {
        try await RecordingRemote.with { remote in
            let configuration = TestRelay.configuration(remote: remote) {
                $0.ingress.maxConnections = 4
                $0.ingress.slowHeadGrace = .milliseconds(100)
            }
            try await TestRelay.with(configuration) { relay in
                let port = relay.port
                let limiter = relay.relay.ingress.limiter
                let slow = await offCooperativePool { () -> Handover<[RawConnection]> in
                    Handover(
                        (0..<4).compactMap { _ -> RawConnection? in
                            let connection = try? RawConnection(port: port, timeoutSeconds: 5)
                            try? connection?.send("POST /ingest HTTP/1.1\r\nHost: x\r\nX-Slow: ")
                            return connection
                        })
                }
                try await eventually("four heads arriving") { limiter.count(in: .head) >= 4 }
                // The grace runs on the real clock the limiter reads (NIODeadline.now), from
                // when the heads began: no test clock reaches it.
                try await Task.sleep(for: .milliseconds(150))
                let status = await offCooperativePool { () -> Int? in
                    let upload = try? RawConnection(port: port, timeoutSeconds: 5)
                    try? upload?.send("POST /ingest HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\nok")
                    _ = slow
                    return upload?.readResponse()?.status
                }
                #expect(status == 200)
            }
        }
    }

    @Test(
        arguments: [
            // (connections open, phases, expected victim index or nil)
            (["idle", "idle"], 0), (["busy", "idle", "idle"], 1), (["busy", "busy"], nil), (["head", "busy"], 0),
            (["busy", "head-new", "idle"], 2),
        ] as [([String], Int?)])
    func limiterPicksTheLongestIdleThenTheSlowestHead(phases: [String], victim: Int?) {
        let limiter = ConnectionLimiter(limit: phases.count, slowHeadGrace: .seconds(1))
        let loop = EmbeddedEventLoop()
        let channels = phases.map { _ in EmbeddedChannel(loop: loop) }
        let start = NIODeadline.uptimeNanoseconds(1_000_000_000_000)
        for (index, channel) in channels.enumerated() {
            let at = start + .seconds(Int64(index))
            #expect({ if case .admitted = limiter.open(channel, now: at) { return true } else { return false } }())
            switch phases[index] {
            case "busy": limiter.update(channel, to: .busy, now: at)
            case "head": limiter.update(channel, to: .head, now: at)
            case "head-new": limiter.update(channel, to: .head, now: start + .seconds(100))
            default: break
            }
        }
        let newcomer = EmbeddedChannel(loop: loop)
        switch limiter.open(newcomer, now: start + .seconds(100) + .milliseconds(500)) {
        case .admittedReplacing(let replaced): #expect(victim.map { channels[$0] === replaced } == true)
        case .refused: #expect(victim == nil)
        case .admitted: Issue.record("admitted over the limit")
        }
    }

    @Test func connectionCapStaysBelowTheDescriptorLimit() {
        #expect(IngressLimits.connectionCap(fileDescriptorLimit: 1024, upstreamConnections: 5) == 512)
        #expect(IngressLimits.connectionCap(fileDescriptorLimit: 256, upstreamConnections: 5) == 187)
        #expect(IngressLimits.connectionCap(fileDescriptorLimit: 100, upstreamConnections: 256) == 8)
        #expect(IngressLimits.connectionCap(fileDescriptorLimit: 1 << 20, upstreamConnections: 5) == 512)
    }
}

/// Hands values that are not `Sendable` (raw connections) from one blocking thread to the
/// next; only one uses them at a time.
struct Handover<Value>: @unchecked Sendable {
    let value: Value
    init(_ value: Value) { self.value = value }
}
