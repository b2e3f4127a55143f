import RelayCore
import RelayTestSupport
import Testing

/// Every request a real Pyroscope client was seen to send, replayed byte for byte through
/// the relay, must reach the remote as the Go extension would send it.
@Suite struct FixtureReplayTests {
    /// Headers the relay derives for its own connection instead of copying.
    static let rederived: Set<String> = ["host", "content-length"]

    @Test(arguments: ClientFixture.all)
    func fixtureArrivesUnchanged(name: String) async throws {
        let fixture = try ClientFixture.load(name)
        try await RecordingRemote.with { remote in
            try await TestRelay.with(TestRelay.configuration(remote: remote)) { relay in
                let connection = try RawConnection(port: relay.port)
                try connection.send(fixture.rawRequest)
                let answer = try #require(connection.readResponse())
                #expect(answer.status == 200)
                #expect(answer.body.isEmpty)

                let received = try #require(await remote.waitForRequests(1).first)
                #expect(received.method == fixture.method)
                #expect(received.body == fixture.body, "body bytes must pass untouched")
                if fixture.path == "/ingest" {
                    // Legacy ingest gains the session id in `name`; the rest of the query stays as sent.
                    let expectedQuery = fixture.rawPath.replacingFirst("name=probe.app", with: "name=probe.app%7B__session_id__%3Defcdab8967452301%7D")
                    #expect(received.uri == expectedQuery)
                } else {
                    #expect(received.uri == fixture.rawPath)
                }
                // Every client header arrives, in order, repeated ones included.
                let forwarded = received.headers.filter { !Self.rederived.contains($0.name.lowercased()) && $0.name.lowercased() != "x-forwarded-host" }
                let expected = fixture.headers.filter { !Self.rederived.contains($0.name.lowercased()) }
                #expect(forwarded.map { $0.name.lowercased() } == expected.map { $0.name.lowercased() })
                #expect(forwarded.map(\.value) == expected.map(\.value))
                #expect(received.values("host") == ["127.0.0.1:\(remote.port)"])
                #expect(received.values("x-forwarded-host") == ["127.0.0.1:4040"])
                #expect(received.values("content-length") == ["\(fixture.body.count)"])
            }
        }
    }

    @Test func twoAuthorizationLinesFromPyroscopeIOArriveBothWithoutConfiguredAuth() async throws {
        let fixture = try ClientFixture.load("pyroscope-io-1.4.0-push-all-auth")
        try await RecordingRemote.with { remote in
            try await TestRelay.with(TestRelay.configuration(remote: remote)) { relay in
                let connection = try RawConnection(port: relay.port)
                try connection.send(fixture.rawRequest)
                #expect(connection.readResponse()?.status == 200)
                let received = try #require(await remote.waitForRequests(1).first)
                #expect(received.values("authorization") == ["Basic dXNlcjEyMzpzM2NyZXQ=", "Bearer tok-abc"])
                #expect(received.values("x-scope-orgid") == ["tenant-42"])
                #expect(received.values("x-custom") == ["hello"])
            }
        }
    }

    @Test func configuredTokenReplacesBothClientAuthorizationLines() async throws {
        let fixture = try ClientFixture.load("pyroscope-io-1.4.0-push-all-auth")
        try await RecordingRemote.with { remote in
            let configuration = TestRelay.configuration(remote: remote) {
                $0.credentials = .bearer(token: "relay-token")
                $0.tenantID = "relay-tenant"
            }
            try await TestRelay.with(configuration) { relay in
                let connection = try RawConnection(port: relay.port)
                try connection.send(fixture.rawRequest)
                #expect(connection.readResponse()?.status == 200)
                let received = try #require(await remote.waitForRequests(1).first)
                #expect(received.values("authorization") == ["Bearer relay-token"])
                #expect(received.values("x-scope-orgid") == ["relay-tenant"])
                #expect(received.body == fixture.body)
            }
        }
    }
}

extension String {
    func replacingFirst(_ target: String, with replacement: String) -> String {
        guard let range = firstRange(of: target) else { return self }
        return String(self[..<range.lowerBound]) + replacement + String(self[range.upperBound...])
    }
}
