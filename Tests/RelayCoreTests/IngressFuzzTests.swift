import Foundation
import NIOConcurrencyHelpers
import RelayTestSupport
import Testing

@testable import RelayCore

/// A property test of the real ingress (issue 18): random and mutated requests, sent in
/// random pieces, ended in random ways (half-close, reset, left open), against a relay in
/// this process. Nothing a client sends may end the process; every answer is one the relay
/// documents; `/healthz` keeps answering; nothing reaches the remote outside the base
/// path; and the upload counters add up. `FUZZ_SECONDS` (default 4) bounds the run
/// (`make fuzz`: 300), `FUZZ_SEED` replays one.
@Suite(.serialized) struct IngressFuzzTests {
    static let allowedStatuses: Set<Int> = [100, 200, 400, 405, 408, 413, 414, 431, 503]

    @Test func randomAndMutatedRequestsNeverHurtTheRelay() async throws {
        let environment = ProcessInfo.processInfo.environment
        let seconds = Double(environment["FUZZ_SECONDS"] ?? "") ?? 4
        let seed = UInt64(environment["FUZZ_SEED"] ?? "") ?? UInt64.random(in: 1...UInt64.max)
        try await RecordingRemote.with { remote in
            let configuration = TestRelay.configuration(remote: remote, basePath: "/base") {
                $0.maxBodyBytes = 64 << 10
                $0.ingress.headerTimeout = .milliseconds(200)
                $0.ingress.bodyStallTimeout = .milliseconds(200)
                $0.ingress.idleTimeout = .milliseconds(300)
            }
            try await TestRelay.with(configuration) { relay in
                let port = relay.port
                let report = await offCooperativePool { Self.run(port: port, seconds: seconds, seed: seed) }
                #expect(report.failures.isEmpty, "seed \(seed): \(report.failures.prefix(5))")
                // A loaded machine runs few cases in the default 4 s; `make fuzz` runs thousands.
                #expect(report.cases > 5, "seed \(seed): only \(report.cases) cases in \(seconds) s")
                // The last requests may still be read on another event loop (a reset one).
                try await eventually("every upload ended", timeout: .seconds(10), every: .milliseconds(100)) {
                    await relay.pipeline.flush()
                    let counts = relay.counters.snapshot
                    return counts.delivered + counts.droppedTotal >= counts.received
                }
                let snapshot = relay.counters.snapshot
                #expect(snapshot.received == snapshot.accepted + snapshot.refused, "seed \(seed)")
                #expect(snapshot.delivered + snapshot.droppedTotal == snapshot.received, "seed \(seed): \(snapshot)")
                let outside = remote.received.filter { !($0.uri == "/base" || $0.uri.hasPrefix("/base/") || $0.uri.hasPrefix("/base?")) }
                #expect(outside.isEmpty, "seed \(seed): relayed outside the base path: \(outside.prefix(3).map(\.uri))")
                #expect(!remote.received.contains { $0.method == "CONNECT" }, "seed \(seed)")
                print("IngressFuzz: \(report.cases) cases in \(seconds) s, seed \(seed), statuses \(report.statuses.sorted { $0.key < $1.key })")
            }
        }
    }

    struct Report: Sendable {
        var cases = 0
        var statuses: [Int: Int] = [:]
        var failures: [String] = []
    }

    static func run(port: Int, seconds: Double, seed: UInt64) -> Report {
        var random = SplitMix64(seed: seed)
        var report = Report()
        let deadline = Date().addingTimeInterval(seconds)
        while Date() < deadline {
            let request = FuzzInput.request(using: &random)
            let ending = random.next() % 10
            guard let connection = try? RawConnection(port: port, timeoutSeconds: 2) else {
                report.failures.append("case \(report.cases): cannot connect")
                break
            }
            connection.setReceiveTimeout(milliseconds: 1500)
            var offset = 0
            while offset < request.count {
                let piece = min(request.count - offset, 1 + Int(random.next() % UInt64(max(1, request.count / 3 + 1))))
                if (try? connection.send(Array(request[offset..<(offset + piece)]))) == nil { break }
                offset += piece
            }
            if ending < 2 {
                connection.reset()  // a client that gives up without reading
            } else {
                if ending < 8 { connection.closeSendingSide() }
                let (bytes, _) = connection.readUntilClosed()
                for status in Self.statuses(in: bytes) {
                    report.statuses[status, default: 0] += 1
                    if !allowedStatuses.contains(status) {
                        report.failures.append("status \(status) for \(String(decoding: request.prefix(120), as: UTF8.self).debugDescription)")
                    }
                }
            }
            report.cases += 1
            if report.cases % 25 == 0 || !report.failures.isEmpty {
                // Generous: a loaded machine answers late; a hurt relay does not answer at all.
                let healthy = (0..<2).contains { _ in rawHealthz(port: port, timeoutSeconds: 10) == 200 }
                if !healthy {
                    report.failures.append("/healthz unanswered after case \(report.cases)")
                    break
                }
                if !report.failures.isEmpty { break }
            }
        }
        return report
    }

    /// Status codes of the responses in `bytes` (our bodies never contain "HTTP/1.").
    static func statuses(in bytes: [UInt8]) -> [Int] {
        let text = String(decoding: bytes, as: UTF8.self)
        var statuses: [Int] = []
        var rest = Substring(text)
        while let range = rest.range(of: "HTTP/1.") {
            let after = rest[range.upperBound...]
            if after.count >= 5, let code = Int(after.dropFirst(2).prefix(3)) { statuses.append(code) }
            rest = after
        }
        return statuses
    }
}

/// Requests to start from and ways to break them.
enum FuzzInput {
    static let seeds: [String] = [
        "POST /ingest?name=app HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello",
        "POST /push.v1.PusherService/Push HTTP/1.1\r\nHost: x\r\nContent-Type: application/proto\r\nContent-Length: 3\r\n\r\nabc",
        "POST /ingest HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n3\r\nabc\r\n0\r\n\r\n",
        "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n",
        "GET /metrics HTTP/1.0\r\n\r\n",
        "POST /ingest HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 3\r\n\r\nabc",
        "POST http://evil.example/x?y=1 HTTP/1.1\r\nHost: evil.example\r\nContent-Length: 1\r\n\r\nx",
        "POST /a/../../../etc/passwd HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\n\r\nx",
        "POST /%2e%2e/%2e%2e/x HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\n\r\nx",
        "CONNECT evil.example:443 HTTP/1.1\r\nHost: evil.example:443\r\n\r\n",
        "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",
        "POST /ingest HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\nokPOST /ingest HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\nok",
        "POST /ingest HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: 1\r\n\r\nx",
        "OPTIONS * HTTP/1.1\r\nHost: x\r\n\r\n",
        "POST /ingest HTTP/1.1\r\nHost: x\r\nContent-Length: 70000\r\n\r\nabc",
        "POST /ingest HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n20000\r\nabc",
    ]

    static let interesting: [[UInt8]] = [
        "\r\n", "\r", "\n", "\0", ":", " ", "\t", "\r\n\r\n", "Host: y\r\n", "Content-Length: 99999999\r\n",
        "Transfer-Encoding: chunked\r\n", "http://", "?", "%", "..", "/", "\u{7F}", "\u{1}", "ffffffffffffffff\r\n",
    ].map { Array($0.utf8) }

    static func request(using random: inout SplitMix64) -> [UInt8] {
        var bytes = Array(seeds[Int(random.next() % UInt64(seeds.count))].utf8)
        let mutations = Int(random.next() % 4)
        for _ in 0..<mutations {
            let position = bytes.isEmpty ? 0 : Int(random.next() % UInt64(bytes.count + 1))
            switch random.next() % 8 {
            case 0 where !bytes.isEmpty: bytes[min(position, bytes.count - 1)] ^= UInt8(1 << (random.next() % 8))
            case 1: bytes.insert(contentsOf: interesting[Int(random.next() % UInt64(interesting.count))], at: position)
            case 2 where !bytes.isEmpty:
                let end = min(bytes.count, position + Int(random.next() % 16))
                bytes.removeSubrange(position..<end)
            case 3: bytes = Array(bytes.prefix(position))
            case 4:
                let end = min(bytes.count, position + Int(random.next() % 32))
                bytes.insert(contentsOf: bytes[position..<end], at: position)
            case 5:
                let other = Array(seeds[Int(random.next() % UInt64(seeds.count))].utf8)
                bytes = Array(bytes.prefix(position)) + other.suffix(Int(random.next() % UInt64(other.count + 1)))
            case 6:
                let length = [100, 4096, 9000, 40_000, 70_000][Int(random.next() % 5)]
                bytes.insert(contentsOf: [UInt8](repeating: UInt8(ascii: "a") + UInt8(random.next() % 26), count: length), at: position)
            default: bytes.insert(UInt8(truncatingIfNeeded: random.next()), at: position)
            }
        }
        return bytes
    }
}
