import Foundation
import NIOConcurrencyHelpers
import RelayTestSupport
import Testing

/// Each Lambda execution model end to end: the extension binary in the local Lambda
/// (`--mode ...`) with the real awslambdaric runtime and pyroscope-io.
@Suite(.serialized) struct LocalLambdaExecutionModelTests {
    typealias Run = LocalLambdaTests.Run

    static func registrations(_ run: Run) -> [(events: [String], status: Int)] {
        (run.report["registrations"] as? [[String: Any]] ?? []).map { ($0["events"] as? [String] ?? [], $0["status"] as? Int ?? 0) }
    }

    static func uploads(_ run: Run, tag: String) -> [RecordingRemote.Request] {
        run.remote.filter { $0.uri.contains("tag=\(tag)") }
    }

    @Test func managedInstancesRegisterForShutdownOnlyAndDeliverEveryWorkersUploads() async throws {
        try await RecordingRemote.with { remote in
            let run = try await LocalLambdaTests.run(
                remote: remote, invocations: 12, event: #"{"work_ms": 50, "sleep_ms": 200, "uploads": 2, "tag": "lmi"}"#,
                // A longer shutdown than Lambda's 2 s: on a loaded test machine the drain is slow.
                shutdownMs: 6000, env: ["PROFILE_UPLOAD_SECONDS": "1", "PYROSCOPE_FLUSH_STRATEGY": "end"],
                options: ["--mode", "lambda-managed-instances", "--workers", "3"])
            #expect(Self.registrations(run).map(\.events) == [["SHUTDOWN"]], "no INVOKE registration is even tried")
            #expect(Self.registrations(run).map(\.status) == [200])
            let workers = Set(run.invocations.compactMap { $0["worker_pid"] as? Int })
            #expect(workers.count >= 3, "invocations ran on several worker processes: \(workers)")
            #expect(Self.uploads(run, tag: "lmi").count == 24, "every handler upload delivered by SHUTDOWN")
            #expect(run.remote.filter { $0.uri.hasPrefix("/push.v1.PusherService/Push") }.count >= 3, "each worker's profiler uploads too")
            let stats = try #require(run.stopped)
            #expect(stats["dropped"] as? Int == 0, "\(stats)")
            #expect(run.logs.contains { ($0["msg"] as? String)?.contains("PYROSCOPE_FLUSH_STRATEGY") == true && $0["level"] as? String == "warning" })
        }
    }

    @Test func anInvokeRefusalRegistersForShutdownOnlyInsteadOfFailingInit() async throws {
        try await RecordingRemote.with { remote in
            let run = try await LocalLambdaTests.run(
                remote: remote, invocations: 2, event: #"{"work_ms": 50, "uploads": 2, "tag": "refused"}"#,
                options: ["--refuse-invoke-registration"])
            let attempts = Self.registrations(run)
            #expect(attempts.map(\.events) == [["INVOKE", "SHUTDOWN"], ["SHUTDOWN"]])
            #expect(attempts.map(\.status) == [403, 200])
            #expect(run.report["init_failed"] is NSNull || run.report["init_failed"] == nil)
            #expect(Self.uploads(run, tag: "refused").count == 4)
        }
    }

    @Test func aRefusedTelemetrySubscriptionIsAWarningNotAFailure() async throws {
        try await RecordingRemote.with { remote in
            let run = try await LocalLambdaTests.run(
                remote: remote, invocations: 2, event: #"{"work_ms": 50, "uploads": 2, "tag": "notelemetry"}"#,
                env: ["PYROSCOPE_FLUSH_STRATEGY": "end"], options: ["--refuse-telemetry"])
            let subscriptions = run.report["telemetry_subscriptions"] as? [[String: Any]] ?? []
            #expect(subscriptions.map { $0["status"] as? Int } == [400])
            #expect(run.logs.contains { ($0["msg"] as? String)?.contains("Telemetry API unavailable") == true })
            #expect(Self.uploads(run, tag: "notelemetry").count == 4)
        }
    }

    /// Refused outright (403), or "accepted" with 202 `Telemetry.NotSupported` as the runtime
    /// interface emulator answers: no platform.initRuntimeDone will come, so the first
    /// `/event/next` must not wait the 5 s bound for it.
    @Test(arguments: [403, 202])
    func provisionedConcurrencyWithoutTelemetryReachesItsFirstNextWithoutTheMilestoneWait(_ refusal: Int) async throws {
        try await RecordingRemote.with { remote in
            let run = try await LocalLambdaTests.run(
                remote: remote, invocations: 1, event: #"{"work_ms": 50, "uploads": 1, "tag": "pc-refused"}"#,
                env: ["INIT_UPLOADS": "init:2", "PROFILE_UPLOAD_SECONDS": "120"],
                options: ["--mode", "provisioned-concurrency", "--pc-idle-seconds", "1", "--runtime-start", "registered", "--refuse-telemetry", "\(refusal)"])
            let subscriptions = run.report["telemetry_subscriptions"] as? [[String: Any]] ?? []
            #expect(subscriptions.map { $0["status"] as? Int } == [refusal])
            let registeredAt = try #require((run.extensionReport["register"] as? [String: Any])?["time"] as? Double)
            let firstNext = try #require((run.extensionReport["next_calls"] as? [Double])?.first)
            // Half the milestone bound: a test of the wait not happening, not a speed target.
            #expect(firstNext - registeredAt < 2.5, "first /event/next \(firstNext - registeredAt) s after registering")
            #expect(run.logs.contains { ($0["msg"] as? String)?.hasPrefix("Telemetry API unavailable: init drains") == true })
            #expect(!run.logs.contains { ($0["msg"] as? String)?.hasPrefix("Function init not reported in time") == true })
            #expect(Self.uploads(run, tag: "init").count == 2 && Self.uploads(run, tag: "pc-refused").count == 1)
            #expect(run.stopped?["dropped"] as? Int == 0)
        }
    }

    static func sessionID(of request: RecordingRemote.Request) -> String? {
        guard let range = request.uri.range(of: "__session_id__%3D") else { return nil }
        return String(request.uri[range.upperBound...].prefix(16))
    }

    @Test func snapStartRestoreDropsWhatTheSnapshotHeldAndStartsAfresh() async throws {
        // Init makes three uploads; the remote refuses two of them (503) until the snapshot.
        try await RecordingRemote.with(respond: { request in
            String(decoding: request.body, as: UTF8.self).hasPrefix("init-held") ? .status(.serviceUnavailable) : .status(.ok)
        }) { remote in
            let run = try await LocalLambdaTests.run(
                remote: remote, invocations: 2, event: #"{"work_ms": 50, "uploads": 1, "tag": "after"}"#,
                env: ["INIT_UPLOADS": "init-ok:1,init-held:2", "PYROSCOPE_RETRY_INITIAL_BACKOFF": "200ms", "PROFILE_UPLOAD_SECONDS": "120"],
                options: ["--mode", "snap-start", "--snapshot-seconds", "2", "--runtime-start", "registered"])
            let received = run.remote
            let initial = try #require(received.firstIndex { $0.uri.contains("tag=init-ok") })
            let firstAfter = try #require(received.firstIndex { $0.uri.contains("tag=after") })
            #expect(initial < firstAfter)
            #expect(received[firstAfter].indexOnConnection == 1, "the first upload after the restore connects anew")
            let before = try #require(Self.sessionID(of: received[initial]))
            let after = try #require(Self.sessionID(of: received[firstAfter]))
            #expect(before != after, "the session id made at init is not the restored copy's")
            let heldAfterRestore = received[firstAfter...].filter { $0.uri.contains("tag=init-held") }
            #expect(heldAfterRestore.isEmpty, "nothing held at the snapshot is sent after the restore")
            let stats = try #require(run.stopped)
            #expect(stats["dropped_snapshot"] as? Int == 2)
            #expect(run.logs.contains { ($0["msg"] as? String)?.hasPrefix("Restored from a SnapStart snapshot") == true })
        }
    }

    @Test func provisionedConcurrencyDeliversInitUploadsBeforeTheFirstInvoke() async throws {
        try await RecordingRemote.with(respond: { _ in .delayed(.milliseconds(100), .ok) }) { remote in
            let run = try await LocalLambdaTests.run(
                remote: remote, invocations: 1, event: #"{"work_ms": 50, "uploads": 1, "tag": "first"}"#,
                env: ["INIT_UPLOADS": "init:3", "PYROSCOPE_NUM_WORKERS": "1", "PROFILE_UPLOAD_SECONDS": "120"],
                options: ["--mode", "provisioned-concurrency", "--pc-idle-seconds", "2", "--runtime-start", "registered"])
            let initUploads = Self.uploads(run, tag: "init")
            let first = try #require(Self.uploads(run, tag: "first").first)
            #expect(initUploads.count == 3)
            // Frozen uploads would arrive at the thaw, with the first invocation's.
            #expect(initUploads.allSatisfy { first.arrivedAt - $0.arrivedAt > .milliseconds(1500) }, "init uploads did not wait frozen")
        }
    }
}
