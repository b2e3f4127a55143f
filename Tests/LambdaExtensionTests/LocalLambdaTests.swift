import Foundation
import RelayTestSupport
import Testing

/// The extension binary inside the local Lambda (tools/local-lambda/local_lambda.py): real
/// Extensions, Runtime and Telemetry APIs, the real `awslambdaric` runtime running a
/// function profiled by pyroscope-io, processes frozen between invocations.
@Suite(.serialized) struct LocalLambdaTests {
    struct Run {
        var report: [String: Any]
        var remote: [RecordingRemote.Request]

        var extensionReport: [String: Any] { (report["extensions"] as? [[String: Any]])?.first ?? [:] }
        var invocations: [[String: Any]] { report["invocations"] as? [[String: Any]] ?? [] }
        var outputLines: [String] { (extensionReport["output"] as? [[Any]] ?? []).compactMap { $0.last as? String } }

        /// The extension's JSON log lines.
        var logs: [[String: Any]] {
            outputLines.compactMap { try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any] }
        }
        /// The final `relay stats` line, written at shutdown.
        var stopped: [String: Any]? { logs.first { $0["msg"] as? String == "relay stats" && $0["phase"] as? String == "shutdown" } }
        /// Bodies of the uploads the handler made (the function's pyroscope-io agent also
        /// uploads on its own 10 s schedule; those are not counted here).
        var handlerUploads: [String] {
            remote.filter { $0.uri.hasPrefix("/ingest?name=lambda.test") }.map { String(decoding: $0.body, as: UTF8.self) }
        }
        func postRuntimeMs(_ index: Int) -> Double {
            ((invocations[index]["extensions_post_runtime_ms"] as? [String: Any])?["pyroscope-lambda-extension"] as? Double) ?? -1
        }
    }

    static var python: String { testPython }

    /// The extension runs as Lambda's unprivileged user whenever these tests run as root
    /// (they are unprivileged already otherwise).
    static var runAsLambdaUser: [String] { geteuid() == 0 ? ["--run-as", LambdaUser.sandbox.description] : [] }

    /// - Parameter options: more emulator flags (`--mode ...`); `expectHealthy`: the run
    ///   must end healthy (the emulator exits 1 when the function or an extension failed).
    static func run(
        remote: RecordingRemote, invocations: Int, freezeSeconds: Double = 1, event: String = #"{"work_ms": 100}"#,
        shutdownMs: Int = 2000, env: [String: String] = [:], options: [String] = [], expectHealthy: Bool = true
    ) async throws -> Run {
        // The relay's port is one that was free a moment ago; another test may take it first.
        for _ in 0..<2 {
            let run = try await runOnce(
                remote: remote, invocations: invocations, freezeSeconds: freezeSeconds, event: event, shutdownMs: shutdownMs, env: env,
                options: options, expectHealthy: false)
            let initFailure = (run.report["init_failed"] as? [String: Any])?["error_type"] as? String
            if initFailure != "Extension.PortInUse" {
                if expectHealthy { #expect(run.report["ok"] as? Bool == true, "the run ended healthy: \(run.report["failures"] ?? "")") }
                return run
            }
        }
        return try await runOnce(
            remote: remote, invocations: invocations, freezeSeconds: freezeSeconds, event: event, shutdownMs: shutdownMs, env: env,
            options: options, expectHealthy: expectHealthy)
    }

    private static func runOnce(
        remote: RecordingRemote, invocations: Int, freezeSeconds: Double, event: String, shutdownMs: Int, env: [String: String],
        options: [String], expectHealthy: Bool
    ) async throws -> Run {
        let reportPath = NSTemporaryDirectory() + "local-lambda-\(UUID().uuidString).json"
        // Each environment's /tmp is its own in Lambda: so is each run's spool here.
        let spool = NSTemporaryDirectory() + "local-lambda-spool-\(UUID().uuidString)"
        defer {
            try? FileManager.default.removeItem(atPath: reportPath)
            try? FileManager.default.removeItem(atPath: spool)
        }
        // A free loopback port for the relay instead of 4040, told to both processes.
        let relayPort = try await RecordingRemote.with { $0.port }
        var environment = [
            "PYROSCOPE_REMOTE_ADDRESS": remote.address, "PYROSCOPE_LOG_FORMAT": "json", "PYROSCOPE_LOG_LEVEL": "debug",
            "PYROSCOPE_LISTEN_ADDRESS": "localhost:\(relayPort)", "PYROSCOPE_SERVER_ADDRESS": "http://localhost:\(relayPort)",
            "PYROSCOPE_SPOOL_DIR": spool,
        ]
        environment.merge(env) { $1 }
        let process = Process()
        process.executableURL = URL(fileURLWithPath: python)
        process.arguments =
            [
                ClientFixture.repositoryRoot + "/tools/local-lambda/local_lambda.py",
                "--extension", RelayProcess.binaryPath,
                "--function-dir", ClientFixture.repositoryRoot + "/tools/local-lambda/lambda_function",
                "--python", python, "--invocations", "\(invocations)", "--freeze-seconds", "\(freezeSeconds)",
                "--event", event, "--shutdown-ms", "\(shutdownMs)", "--report", reportPath, "--quiet",
            ] + Self.runAsLambdaUser + options + ["--env"] + environment.map { "\($0.key)=\($0.value)" }
        process.standardOutput = FileHandle.nullDevice
        try process.run()
        if await !waitForExit(of: process, timeout: .seconds(180)) { process.terminate() }
        if expectHealthy { #expect(process.terminationStatus == 0, "the run ended healthy") }
        let data = try Data(contentsOf: URL(fileURLWithPath: reportPath))
        let report = try #require(try JSONSerialization.jsonObject(with: data) as? [String: Any])
        return Run(report: report, remote: remote.received)
    }

    @Test func registersCorrectlyAndFunctionInitWaitsForOurFirstNext() async throws {
        try await RecordingRemote.with { remote in
            let run = try await Self.run(remote: remote, invocations: 1)
            let register = try #require(run.extensionReport["register"] as? [String: Any])
            let headers = (register["headers"] as? [String: String] ?? [:]).reduce(into: [:]) { $0[$1.key.lowercased()] = $1.value }
            #expect(headers["lambda-extension-name"] == "pyroscope-lambda-extension")
            #expect(headers["lambda-extension-accept-feature"] == "accountId")
            #expect((register["body"] as? [String: Any])?["events"] as? [String] == ["INVOKE", "SHUTDOWN"])

            let registeredAt = try #require(register["time"] as? Double)
            let firstNext = try #require((run.extensionReport["next_calls"] as? [Double])?.first)
            let functionInit = try #require((run.report["function"] as? [String: Any])?["init_started"] as? Double)
            #expect(firstNext >= registeredAt && functionInit >= firstNext, "function init starts only after our /next")
            // Between registering and /next the extension does no network waiting of its own:
            // a generous bound, not a speed target.
            #expect(firstNext - registeredAt < 2)
            #expect(run.extensionReport["exit_code"] as? Int == 0)
            #expect(run.extensionReport["killed_at_deadline"] as? Bool == false)
            #expect(run.report["init_failed"] is NSNull)
            if geteuid() == 0 {
                #expect(run.extensionReport["uid"] as? Int == 993 && run.extensionReport["gid"] as? Int == 990, "ran as Lambda's user")
            }
        }
    }

    @Test func endStrategyDeliversUploadsMadeDuringTheInvocationBeforeTheFreeze() async throws {
        // A remote that takes 1 s per answer: only an extension that waits for the
        // delivery before its /next holds the invocation open that long (the uploads go out
        // during the 50 ms handler, so most of that second falls after the runtime is done).
        try await RecordingRemote.with(respond: { _ in .delayed(.seconds(1), .ok) }) { remote in
            let run = try await Self.run(
                remote: remote, invocations: 2, event: #"{"work_ms": 50, "uploads": 2}"#,
                env: ["PYROSCOPE_FLUSH_STRATEGY": "end"])
            #expect((run.extensionReport["telemetry_subscription"] as? [String: Any])?["status"] as? Int == 200)
            for index in 0..<2 {
                #expect(run.postRuntimeMs(index) >= 700, "invocation \(index) completed only after its uploads were delivered")
            }
            let stopped = try #require(run.stopped)
            #expect(stopped["dropped"] as? Int == 0)
            #expect(run.handlerUploads.count == 4)
        }
    }

    @Test func backgroundStrategyNeverHoldsTheInvocation() async throws {
        try await RecordingRemote.with(respond: { _ in .delayed(.seconds(1), .ok) }) { remote in
            let run = try await Self.run(
                remote: remote, invocations: 2, event: #"{"work_ms": 50, "uploads": 2}"#,
                env: ["PYROSCOPE_FLUSH_STRATEGY": "background"])
            for index in 0..<2 { #expect(run.postRuntimeMs(index) < 500) }
            let stopped = try #require(run.stopped)
            let received = stopped["received"] as? Int ?? 0
            #expect(received >= 4)
            #expect((stopped["delivered"] as? Int ?? 0) + (stopped["dropped"] as? Int ?? 0) == received, "each upload has one outcome")
        }
    }

    @Test func invokeStrategyFlushesEarlierUploadsWhenTheNextInvokeArrives() async throws {
        try await RecordingRemote.with { remote in
            let run = try await Self.run(
                remote: remote, invocations: 2, event: #"{"work_ms": 50, "uploads": 2}"#,
                env: ["PYROSCOPE_FLUSH_ON_INVOKE": "true"])
            #expect(run.logs.contains { $0["msg"] as? String == "Lambda lifecycle" && $0["flush_strategy"] as? String == "invoke" })
            #expect(run.logs.filter { $0["msg"] as? String == "Invocation flush" && $0["strategy"] as? String == "invoke" }.count == 2)
            #expect(run.stopped?["dropped"] as? Int == 0)
            #expect(run.handlerUploads.count == 4)
        }
    }

    @Test func uploadsSurviveFreezesThatKillPooledConnections() async throws {
        // The remote drops idle connections after 1 s; each freeze lasts 4 s, so every
        // thaw finds the relay's pooled connection dead.
        try await RecordingRemote.with(closeIdleAfter: .seconds(1)) { remote in
            let run = try await Self.run(remote: remote, invocations: 3, freezeSeconds: 4, event: #"{"work_ms": 50, "uploads": 2}"#)
            let stopped = try #require(run.stopped)
            #expect(stopped["dropped"] as? Int == 0 && stopped["delivered"] as? Int == stopped["received"] as? Int)
            let bodies = run.handlerUploads
            #expect(Set(bodies).count == 6 && bodies.count == 6, "each upload delivered exactly once")
        }
    }

    @Test func shutdownWith500QueuedUploadsAndASlowRemoteEndsBeforeTheDeadlineAccountingForAll() async throws {
        try await RecordingRemote.with(respond: { _ in .delayed(.milliseconds(300), .ok) }) { remote in
            let run = try await Self.run(
                remote: remote, invocations: 1, event: #"{"work_ms": 10, "uploads": 500}"#,
                shutdownMs: 2000)
            #expect(run.extensionReport["killed_at_deadline"] as? Bool == false, "exited before Lambda's deadline")
            #expect(run.extensionReport["exit_code"] as? Int == 0)
            let stopped = try #require(run.stopped)
            let delivered = stopped["delivered"] as? Int ?? -1
            let dropped = stopped["dropped"] as? Int ?? -1
            let received = stopped["received"] as? Int ?? 0
            #expect(received >= 500)
            #expect(delivered + dropped == received, "every upload delivered or counted as dropped")
            #expect(delivered > 0 && stopped["dropped_shutdown_deadline"] as? Int == dropped)
            #expect(run.logs.contains { $0["msg"] as? String == "Dropped queued uploads at shutdown: drain deadline passed" })
        }
    }

    /// The issue's case: a SHUTDOWN with the queue full and a remote taking 500 ms per answer.
    /// What the last stats line calls delivered is what the remote recorded (no request is
    /// left in flight at the deadline), and every accepted upload ends exactly once.
    @Test func shutdownWithASlowRemoteAndAFullQueueCountsWhatTheRemoteRecorded() async throws {
        try await RecordingRemote.with(respond: { _ in .delayed(.milliseconds(500), .ok) }) { remote in
            let run = try await Self.run(
                remote: remote, invocations: 1, event: #"{"work_ms": 10, "uploads": 36, "tag": "queued"}"#, shutdownMs: 2000,
                env: ["PYROSCOPE_FLUSH_STRATEGY": "background", "PROFILE_UPLOAD_SECONDS": "120", "PYROSCOPE_QUEUE_MAX_BYTES": "4096"])
            #expect(run.extensionReport["killed_at_deadline"] as? Bool == false, "exited before Lambda's deadline")
            let stopped = try #require(run.stopped)
            let accepted = stopped["accepted"] as? Int ?? -1
            let delivered = stopped["delivered"] as? Int ?? -1
            let dropped = stopped["dropped"] as? Int ?? -1
            let recorded = Set(run.remote.map { String(decoding: $0.body, as: UTF8.self) })
            #expect(accepted >= 36)
            #expect(delivered + dropped == accepted, "every accepted upload ends once: \(stopped)")
            #expect(delivered == recorded.count, "delivered is what the remote recorded: \(stopped), remote \(run.remote.count) requests")
            #expect(dropped > 0 && stopped["dropped_shutdown_deadline"] as? Int == dropped)
        }
    }

    @Test func selfProfilesGoThroughTheRelayAndAreAccountedLikeAnyUpload() async throws {
        try await RecordingRemote.with { remote in
            let run = try await Self.run(
                remote: remote, invocations: 2, event: #"{"work_ms": 50, "uploads": 100}"#,
                env: ["PYROSCOPE_SELF_PROFILING": "true", "PYROSCOPE_FLUSH_STRATEGY": "end"])
            let profiles = run.remote.filter { $0.uri.hasPrefix("/ingest?name=pyroscope.lambda.extension") }
            #expect(!profiles.isEmpty, "the last window at SHUTDOWN at least")
            #expect(profiles.allSatisfy { $0.uri.contains("function_name%3D") && $0.uri.contains("spyName=swiftspy") })
            let stopped = try #require(run.stopped)
            #expect(stopped["dropped"] as? Int == 0)
            // Counted like client uploads: received covers the handler's and the profiler's.
            #expect((stopped["received"] as? Int ?? 0) >= run.handlerUploads.count + profiles.count)
            #expect(stopped["delivered"] as? Int == stopped["received"] as? Int)
        }
    }
}
