import Foundation
import RelayTestSupport
import Testing

/// PYROSCOPE_LAMBDA_LABELS in the extension binary, with Lambda's variables: the real
/// pyroscope-io client's pushes and the extension's own self-profiles carry the labels.
@Suite(.serialized) struct LambdaLabelsBinaryTests {
    static func environment(remote: RecordingRemote, _ extra: [String: String] = [:]) -> [String: String] {
        RelayBinaryTests.devEnvironment(
            remote: remote,
            [
                "PYROSCOPE_LAMBDA_LABELS": "true", "AWS_LAMBDA_FUNCTION_NAME": "orders-api", "AWS_LAMBDA_FUNCTION_VERSION": "12",
                "AWS_REGION": "ap-southeast-2", "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "512", "PYROSCOPE_SPOOL_MAX_BYTES": "0",
            ].merging(extra) { $1 })
    }

    @Test func pyroscopeIOPushesArriveWithTheLabelsAndTheClientsOwnValueKept() async throws {
        try #require(FileManager.default.isExecutableFile(atPath: testPython), "needs the venv: run `make venv` or set PYROSCOPE_TEST_PYTHON")
        try await RecordingRemote.with { remote in
            let relay = try RelayProcess(environment: Self.environment(remote: remote))
            let port = try #require(await relay.listeningPort())
            #expect(relay.output.contains { $0.contains("Relaying uploads") && $0.contains("faas_version=12") })
            let workload = Process()
            workload.executableURL = URL(fileURLWithPath: testPython)
            workload.arguments = [
                ClientFixture.repositoryRoot + "/Tests/Peers/profiled_workload.py", "--server", "http://127.0.0.1:\(port)",
                "--app-name", "labels.test.app", "--seconds", "2", "--tag", "faas_name=client-name",
            ]
            try workload.run()
            await offCooperativePool { workload.waitUntilExit() }
            #expect(workload.terminationStatus == 0)
            let received = await remote.waitForRequests(1, timeout: .seconds(20))
            relay.signal(SIGTERM)
            #expect(await relay.waitForExit() == 0)

            let upload = try #require(received.first)
            #expect(upload.uri == "/push.v1.PusherService/Push")
            #expect(upload.value("content-encoding") == "gzip")
            let decoded = try await PushBodies.decode([upload.body])
            let series = try #require(decoded[0].series, "\(decoded[0].error ?? "")")
            try #require(!series.isEmpty)
            for one in series {
                let labels = Dictionary(one.labels.map { ($0[0], $0[1]) }) { first, _ in first }
                #expect(labels["service_name"] == "labels.test.app")
                #expect(labels["faas_name"] == "client-name", "the client's label wins")
                #expect(one.labels.filter { $0[0] == "faas_name" }.count == 1)
                #expect(labels["faas_version"] == "12")
                #expect(labels["cloud_region"] == "ap-southeast-2")
                #expect(labels["faas_max_memory"] == "536870912")
                #expect(labels["cloud_platform"] == "aws_lambda")
                #expect(labels["host_arch"] == "amd64" || labels["host_arch"] == "arm64")
                #expect(!one.samples.isEmpty && one.samples.allSatisfy { !$0.raw_profile.isEmpty })
            }
        }
    }

    @Test func selfProfilesCarryTheLabelsToo() async throws {
        try await RecordingRemote.with { remote in
            let relay = try RelayProcess(environment: Self.environment(remote: remote, ["PYROSCOPE_SELF_PROFILING": "true"]))
            let port = try #require(await relay.listeningPort())
            #expect(await relay.waitForLine({ $0.contains("msg=Self-profiling") }) != nil)
            // Some relay work to sample.
            for _ in 0..<400 { #expect(await rawPost(port: port, path: "/ingest?name=app&from=1&until=2", body: "x") == 200) }
            relay.signal(SIGTERM)
            #expect(await relay.waitForExit() == 0)
            let profile = try #require(remote.received.first { $0.uri.contains("pyroscope.lambda.extension") }, "no self-profile arrived")
            let name = try #require(profile.uri.split(separator: "&").first { $0.hasPrefix("/ingest?name=") }?.dropFirst(13).removingPercentEncoding)
            #expect(name.hasPrefix("pyroscope.lambda.extension{"))
            for label in ["function_name=orders-api", "faas_name=orders-api", "faas_version=12", "cloud_region=ap-southeast-2"] {
                #expect(name.contains(label), "\(name)")
            }
            // The relayed uploads got them as well.
            let relayed = try #require(remote.received.first { $0.uri.hasPrefix("/ingest?name=app") })
            #expect(relayed.uri.contains("faas_name%3Dorders-api"))
        }
    }
}
