import Foundation
import RelayTestSupport
import Testing

@testable import RelayCore

/// What held when issue 18 was tried as an attacker would, kept holding: malformed
/// requests get 400, oversized heads a clear 431, the HTTP/2 preface GOAWAY, slow-header
/// clients do not starve normal ones, large bodies and clients that reset are fine.
@Suite struct IngressRegressionTests {
    static let malformed: [String] = [
        "GARBAGE\r\n\r\n",
        "\u{0}\u{1}\u{2}\u{3}\r\n\r\n",
        "/x HTTP/1.1\r\nHost: x\r\n\r\n",
        "post /x HTTP/1.1\r\nHost: x\r\n\r\n",
        "POST /x HTTP/9.9\r\nHost: x\r\n\r\n",
        "POST /x HTTP/1.1 extra\r\nHost: x\r\n\r\n",
        "POST /x\r\nHost: x\r\n\r\n",
        "POST /x HTTP/1.1\rHost: x\r\n\r\n",
        "POST /x\u{0} HTTP/1.1\r\nHost: x\r\n\r\n",
        "POST x HTTP/1.1\r\nHost: x\r\n\r\n",
        "POST * HTTP/1.1\r\nHost: x\r\n\r\n",
        "POST ftp://x/y HTTP/1.1\r\nHost: x\r\n\r\n",
        "POST h:443 HTTP/1.1\r\nHost: x\r\n\r\n",
        "POST /x HTTP/1.1\r\n\r\n",
        "POST /x HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",
        "POST /x HTTP/1.1\r\nBad Header Name: v\r\n\r\n",
        "POST /x HTTP/1.1\r\nHost : x\r\n\r\n",
        "POST /x HTTP/1.1\r\nHost: x\r\nNoColon\r\n\r\n",
        "POST /x HTTP/1.1\r\nHost: x\r\n: empty-name\r\n\r\n",
        "POST /x HTTP/1.1\r\nHost: x\r\nX-A: a\u{1}b\r\n\r\n",
        "POST /x HTTP/1.1\r\nHost: x\r\nX-A: a\u{7F}b\r\n\r\n",
        "POST /x HTTP/1.1\r\nContent-Length: nope\r\n\r\n",
        "POST /x HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n",
        "POST /x HTTP/1.1\r\nHost: x\r\nContent-Length: 1 2\r\n\r\n",
        "POST /x HTTP/1.1\r\nHost: x\r\nContent-Length: 0x5\r\n\r\n",
        "POST /x HTTP/1.1\r\nHost: x\r\nContent-Length: 99999999999999999999999\r\n\r\n",
        "POST /x HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello!",
        "POST /x HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        "POST /x HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\n\r\n",
        "POST /x HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nZZ\r\n",
        "POST /x HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n-1\r\n",
        "POST /x HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nffffffffffffffffffff\r\n",
        "POST /x HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhelloXX\r\n0\r\n\r\n",
        "CONNECT /x HTTP/1.1\r\nHost: x\r\n\r\n",
    ]

    @Test(arguments: malformed)
    func malformedRequestGets400AndTheRelayKeepsServing(request: String) async throws {
        try await RecordingRemote.with { remote in
            try await TestRelay.with(TestRelay.configuration(remote: remote)) { relay in
                let port = relay.port
                let (status, closed) = await offCooperativePool { () -> (Int?, Bool) in
                    let bad = try? RawConnection(port: port, timeoutSeconds: 5)
                    try? bad?.send(request)
                    return (bad?.readResponse()?.status, bad?.isClosedByPeer() ?? false)
                }
                // CONNECT is refused as a method (405); everything else is a bad request.
                #expect(status == (request.hasPrefix("CONNECT") ? 405 : 400), "\(request.debugDescription)")
                #expect(closed)
                #expect(await rawPost(port: port, body: "ok") == 200)
                await relay.pipeline.flush()
                #expect(remote.received.count == 1, "only the good upload went upstream")
            }
        }
    }

    @Test func oneMegabyteHeaderLineIsRefusedCleanly() async throws {
        try await RecordingRemote.with { remote in
            try await TestRelay.with(TestRelay.configuration(remote: remote)) { relay in
                let port = relay.port
                let status = await offCooperativePool { () -> Int? in
                    let huge = try? RawConnection(port: port, timeoutSeconds: 5)
                    try? huge?.send("POST /x HTTP/1.1\r\nHost: x\r\nX-Big: \(String(repeating: "b", count: 1 << 20))\r\n\r\n")
                    return huge?.readResponse()?.status
                }
                #expect(status == 431)
                #expect(await rawPost(port: port, body: "ok") == 200)
            }
        }
    }

    /// An HTTP/2 client with prior knowledge (gRPC) gets HTTP/2's own refusal, whole or in
    /// pieces, and is counted; a request that only starts like the preface is HTTP/1.1's 400.
    @Test func theHTTP2PrefaceGetsGoAwayHTTP11RequiredAndIsCounted() async throws {
        let preface = Array("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".utf8)
        let settings: [UInt8] = [0, 0, 0x12, 4, 0, 0, 0, 0, 0]
        try await RecordingRemote.with { remote in
            try await TestRelay.with(TestRelay.configuration(remote: remote)) { relay in
                let port = relay.port
                for pieces in [[preface + settings], [Array(preface[..<5]), Array(preface[5...]) + settings]] {
                    let (answer, closed) = await offCooperativePool { () -> ([UInt8], Bool) in
                        guard let connection = try? RawConnection(port: port, timeoutSeconds: 5) else { return ([], false) }
                        for piece in pieces {
                            try? connection.send(piece)
                            usleep(50_000)
                        }
                        return connection.readUntilClosed()
                    }
                    #expect(answer == HTTP2Refusal.answer, "\(pieces.count) piece(s)")
                    #expect(closed)
                    #expect(answer.count > 17 && answer[9 + 3] == 0x07 && answer[9 + 16] == 0x0D, "SETTINGS, then GOAWAY with HTTP_1_1_REQUIRED")
                }
                let almost = await offCooperativePool { () -> Int? in
                    let connection = try? RawConnection(port: port, timeoutSeconds: 5)
                    try? connection?.send("PRI * HTTP/1.1\r\nHost: x\r\n\r\n")
                    return connection?.readResponse()?.status
                }
                #expect(almost == 400)
                #expect(await rawPost(port: port, body: "ok") == 200)
                #expect(ClientConnectionLimitTests.metric(relay, #"pyroscope_relay_client_connections_closed_total{reason="http2_refused"}"#) == 2)
            }
        }
    }

    @Test func fiveHundredSlowHeaderClientsDoNotStarveNormalOnes() async throws {
        try await RecordingRemote.with { remote in
            try await TestRelay.with(TestRelay.configuration(remote: remote)) { relay in
                let port = relay.port
                let statuses = await offCooperativePool { () -> [Int?] in
                    let slow = (0..<500).compactMap { _ -> RawConnection? in
                        let connection = try? RawConnection(port: port, timeoutSeconds: 5)
                        try? connection?.send("POST /ingest HTTP/1.1\r\nHost: x\r\nX-Slow: ")
                        return connection
                    }
                    var statuses: [Int?] = []
                    for round in 0..<20 {
                        for connection in slow.prefix(50) { try? connection.send("a") }  // trickle
                        // Starved would mean never; 15 s leaves a loaded machine room.
                        let normal = try? RawConnection(port: port, timeoutSeconds: 15)
                        try? normal?.send("POST /ingest?name=app HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\n\r\n\(round % 10)")
                        statuses.append(normal?.readResponse()?.status)
                    }
                    return statuses
                }
                #expect(statuses == Array(repeating: 200, count: 20))
                #expect(await remote.waitForRequests(20).count == 20)
            }
        }
    }

    @Test func eightMegabyteBodiesAreRelayedWhole() async throws {
        try await RecordingRemote.with { remote in
            try await TestRelay.with(TestRelay.configuration(remote: remote)) { relay in
                let body = String(repeating: "p", count: 8 << 20)
                #expect(await rawPost(port: relay.port, body: body) == 200)
                let received = await remote.waitForRequests(1)
                #expect(received.first?.body.count == 8 << 20)
            }
        }
    }

    @Test func clientsThatResetBeforeReadingLoseNothingAcknowledgedAndHurtNothing() async throws {
        try await RecordingRemote.with { remote in
            try await TestRelay.with(TestRelay.configuration(remote: remote)) { relay in
                let port = relay.port
                await offCooperativePool {
                    for index in 0..<50 {
                        let connection = try? RawConnection(port: port)
                        try? connection?.send("POST /ingest?name=app HTTP/1.1\r\nHost: x\r\nContent-Length: 6\r\n\r\nreset\(index % 10)")
                        connection?.reset()
                    }
                }
                #expect(await rawPost(port: port, body: "after") == 200)
                // A reset connection's request may still be read on another event loop.
                try await eventually("every accepted upload delivered", timeout: .seconds(10), every: .milliseconds(100)) {
                    await relay.pipeline.flush()
                    return relay.counters.snapshot.delivered >= relay.counters.snapshot.accepted
                }
                let snapshot = relay.counters.snapshot
                #expect(snapshot.received == snapshot.accepted + snapshot.refused)
                #expect(snapshot.delivered == snapshot.accepted, "every upload read whole is delivered, answered or not")
                #expect(remote.received.contains { $0.body == Array("after".utf8) })
            }
        }
    }
}
