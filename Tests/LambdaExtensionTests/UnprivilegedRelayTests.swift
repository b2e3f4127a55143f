import Foundation
import RelayTestSupport
import Testing

/// The relay binary as Lambda runs it: an unprivileged user (uid 993, gid 990, no groups, no
/// capabilities) for whom only `/tmp` is writable. As root a socket option that needs
/// privileges succeeded silently (SO_DEBUG, set by mistake for TCP_NODELAY) while, as this
/// user, every connection was closed unanswered.
@Suite(.serialized, .enabled(if: LambdaUser.unavailableReason == nil, "\(LambdaUser.unavailableReason ?? "")"))
struct UnprivilegedRelayTests {
    static let user = LambdaUser.sandbox

    static func start(remote: RecordingRemote, _ extra: [String: String] = [:]) throws -> RelayProcess {
        try RelayProcess(environment: RelayBinaryTests.devEnvironment(remote: remote, extra), user: user)
    }

    /// The real and effective ids of a running process, from `/proc`.
    static func ids(of pid: Int32) throws -> (uid: String, gid: String, groups: String) {
        let status = try String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8).split(separator: "\n")
        func field(_ name: String) -> String {
            status.first { $0.hasPrefix(name + ":") }.map { $0.dropFirst(name.count + 1).trimmingCharacters(in: .whitespaces) } ?? ""
        }
        return (field("Uid"), field("Gid"), field("Groups"))
    }

    @Test func answersHealthzAndRelaysPushFromPyroscopeIOAndARealIngestUpload() async throws {
        try await RecordingRemote.with { remote in
            let relay = try Self.start(remote: remote)
            let port = try #require(await relay.listeningPort())
            if geteuid() == 0 {
                let ids = try Self.ids(of: relay.process.processIdentifier)
                #expect(ids.uid.split(separator: "\t").allSatisfy { $0 == "993" } && ids.gid.split(separator: "\t").allSatisfy { $0 == "990" })
                #expect(ids.groups.isEmpty, "no supplementary groups: \(ids.groups)")
            }
            #expect(await offCooperativePool { rawHealthz(port: port) } == 200)

            // Push: the real pyroscope-io client, profiling a busy Python process.
            let workload = Process()
            workload.executableURL = URL(fileURLWithPath: testPython)
            workload.arguments = [
                ClientFixture.repositoryRoot + "/Tests/Peers/profiled_workload.py", "--server", "http://127.0.0.1:\(port)", "--app-name",
                "unprivileged.app", "--seconds", "2",
            ]
            try workload.run()
            // Ingest: what pyroscope-io 0.8 sent, byte for byte.
            let fixture = try ClientFixture.load("pyroscope-io-0.8.16-ingest-legacy")
            let request = fixture.rawRequest
            let answer = await offCooperativePool { () -> Int? in
                guard let connection = try? RawConnection(port: port), (try? connection.send(request)) != nil else { return nil }
                return connection.readResponse()?.status
            }
            #expect(answer == 200)
            _ = await waitForExit(of: workload, timeout: .seconds(60))
            #expect(workload.terminationStatus == 0)
            let received = await remote.waitForRequests(2, timeout: .seconds(20))
            relay.signal(SIGTERM)
            #expect(await relay.waitForExit() == 0)
            let push = received.filter { $0.uri == "/push.v1.PusherService/Push" }
            #expect(!push.isEmpty && push.allSatisfy { $0.body.starts(with: [0x1f, 0x8b]) }, "pyroscope-io's gzipped push arrived")
            #expect(received.contains { $0.uri.hasPrefix("/ingest?") && $0.body == fixture.body }, "the ingest body arrived untouched")
            #expect(!relay.output.contains { $0.contains("level=warning") || $0.contains("level=error") }, "\(relay.output)")
        }
    }

    /// The spool and journal in `/tmp`, as the user: what was acknowledged survives `kill -9`.
    @Test func theJournalInTmpKeepsEveryAcknowledgedUploadAcrossKill9() async throws {
        let directory = "/tmp/unprivileged-spool-\(UUID().uuidString)"
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let bodies = (0..<50).map { "unprivileged-\($0)" }
        try await RecordingRemote.with(respond: { _ in .status(.serviceUnavailable) }) { down in
            let relay = try Self.start(
                remote: down, ["PYROSCOPE_SPOOL_DIR": directory, "PYROSCOPE_NUM_WORKERS": "1", "PYROSCOPE_RETRY_INITIAL_BACKOFF": "1m"])
            let port = try #require(await relay.listeningPort())
            var acknowledged = 0
            for body in bodies where await RelayBinaryTests.post(port: port, body: body) == 200 { acknowledged += 1 }
            #expect(acknowledged == bodies.count)
            #expect(!relay.output.contains { $0.contains("unavailable") }, "spool and journal work as this user: \(relay.output)")
            relay.signal(SIGKILL)
            _ = await relay.waitForExit()
        }
        try await RecordingRemote.with { remote in
            let relay = try Self.start(remote: remote, ["PYROSCOPE_SPOOL_DIR": directory])
            _ = try #require(await relay.listeningPort())
            let received = await remote.waitForRequests(bodies.count, timeout: .seconds(60))
            relay.signal(SIGTERM)
            #expect(await relay.waitForExit() == 0)
            #expect(Set(received.map { String(decoding: $0.body, as: UTF8.self) }) == Set(bodies))
        }
    }

    @Test func selfProfilesArriveFromTheUnprivilegedRelay() async throws {
        try await RecordingRemote.with { remote in
            let relay = try Self.start(remote: remote, ["PYROSCOPE_SELF_PROFILING": "true"])
            let port = try #require(await relay.listeningPort())
            var acknowledged = 0
            for _ in 0..<200 where await rawPost(port: port, path: "/ingest?name=app&from=1&until=2", body: "x") == 200 { acknowledged += 1 }
            #expect(acknowledged == 200)
            relay.signal(SIGTERM)
            #expect(await relay.waitForExit() == 0)
            let profile = try #require(remote.received.first { $0.uri.contains("pyroscope.lambda.extension") }, "no self-profile arrived")
            #expect(!profile.body.isEmpty)
        }
    }

    /// What this user may not do fails with a message naming the setting to change.
    @Test func aPrivilegedPortIsAClearErrorAndAnUnwritableSpoolAClearWarning() async throws {
        try await RecordingRemote.with { remote in
            let refused = try Self.start(remote: remote, ["PYROSCOPE_LISTEN_ADDRESS": "127.0.0.1:81"])
            #expect(await refused.waitForExit() == 1)
            #expect(refused.output.contains { $0.contains("ports below 1024") && $0.contains("PYROSCOPE_LISTEN_ADDRESS") }, "\(refused.output)")

            let relay = try Self.start(remote: remote, ["PYROSCOPE_SPOOL_DIR": "/opt/pyroscope-spool-\(UUID().uuidString)"])
            let port = try #require(await relay.listeningPort())
            #expect(relay.output.contains { $0.contains("Spool unavailable") && $0.contains("Set PYROSCOPE_SPOOL_DIR") })
            #expect(await RelayBinaryTests.post(port: port, body: "still-relayed") == 200)
            _ = await remote.waitForRequests(1)
            relay.signal(SIGTERM)
            #expect(await relay.waitForExit() == 0)
            #expect(remote.received.map { String(decoding: $0.body, as: UTF8.self) } == ["still-relayed"])
        }
    }
}

/// Every socket option the sources set, at the level it belongs to: `socketOption` is
/// SOL_SOCKET, where TCP_NODELAY's number 1 means SO_DEBUG (refused without privileges).
@Suite struct SocketOptionLevelTests {
    @Test func eachOptionIsSetAtItsOwnLevel() throws {
        let root = ClientFixture.repositoryRoot
        let files = try #require(FileManager.default.enumerator(atPath: root + "/Sources")).compactMap { $0 as? String }.filter { $0.hasSuffix(".swift") }
        var found = 0
        for file in files {
            let text = try String(contentsOfFile: root + "/Sources/" + file, encoding: .utf8)
            for (level, prefix) in [("socketOption", "so_"), ("tcpOption", "tcp_")] {
                for match in text.matches(of: try Regex("\\.\(level)\\(\\.([a-z_]+)\\)")) {
                    found += 1
                    let name = String(text[match.range]).split(separator: ".").last.map(String.init) ?? ""
                    #expect(name.hasPrefix(prefix), "\(file): .\(level)(.\(name)) sets an option of another level")
                }
            }
        }
        #expect(found >= 3, "the ingress, telemetry listener and test remote set options")
    }
}
