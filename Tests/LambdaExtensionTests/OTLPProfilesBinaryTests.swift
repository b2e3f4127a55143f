import Foundation
import RelayTestSupport
import Testing

/// OTLP profiles through the extension binary: OpenTelemetry's own Python profiler exporting
/// to the relay, and exports built with OpenTelemetry's own classes, decoded after relaying
/// by the same package: the Lambda labels become resource attributes, the client's own
/// attribute wins, and with labels off the bytes are the client's. A gRPC exporter gets a
/// clear refusal, in the log and /metrics.
@Suite(.serialized) struct OTLPProfilesBinaryTests {
    static let path = "/v1development/profiles"

    static func workload(port: Int, _ arguments: [String]) async throws -> (status: Int32, output: String) {
        try await runProgram(
            testPython,
            [ClientFixture.repositoryRoot + "/Tests/Peers/otel_profiled_workload.py", "--endpoint", "http://127.0.0.1:\(port)\(path)"] + arguments)
    }

    @Test(arguments: [false, true])
    func theOpenTelemetryProfilersExportsArriveWithTheLabels(gzip: Bool) async throws {
        try #require(FileManager.default.isExecutableFile(atPath: testPython), "needs the venv: run `make venv` or set PYROSCOPE_TEST_PYTHON")
        try await RecordingRemote.with { remote in
            let relay = try RelayProcess(environment: LambdaLabelsBinaryTests.environment(remote: remote))
            let port = try #require(await relay.listeningPort())
            let run = try await Self.workload(
                port: port, ["--resource-attributes", "service.name=otel.test.app,faas.name=client-name"] + (gzip ? ["--gzip"] : []))
            #expect(run.status == 0, "the profiler's exports all succeed: \(run.output)")
            let received = await remote.waitForRequests(1, timeout: .seconds(20))
            let otlp = try #require(await ObservabilityTests.metric(port: port, #"pyroscope_relay_requests_total{path_class="otlp",status="200"}"#))
            #expect(otlp >= Double(received.count), "counted by shape")
            relay.signal(SIGTERM)
            #expect(await relay.waitForExit() == 0)

            try #require(!received.isEmpty)
            let decoded = try await OTLPBodies.decode(received.map(\.body))
            for (upload, export) in zip(received, decoded) {
                #expect(upload.uri == Self.path)
                #expect(upload.value("content-type") == "application/x-protobuf")
                #expect((upload.value("content-encoding") == "gzip") == gzip)
                let resources = try #require(export.resources, "\(export.error ?? "")")
                try #require(!resources.isEmpty)
                for attributes in resources {
                    let byKey = Dictionary(attributes.map { ($0[0], $0) }) { first, _ in first }
                    #expect(byKey["service.name"]?[2] == "otel.test.app")
                    #expect(byKey["faas.name"]?[2] == "client-name", "the client's attribute wins")
                    #expect(attributes.filter { $0[0] == "faas.name" }.count == 1)
                    #expect(byKey["faas.version"] == ["faas.version", "string_value", "12"])
                    #expect(byKey["cloud.region"] == ["cloud.region", "string_value", "ap-southeast-2"])
                    #expect(byKey["faas.max_memory"] == ["faas.max_memory", "int_value", "536870912"])
                    #expect(byKey["cloud.platform"]?[2] == "aws_lambda")
                    #expect(byKey["host.arch"]?[2] == "amd64" || byKey["host.arch"]?[2] == "arm64")
                }
                #expect((export.rest?.count ?? 0) > 100, "samples and dictionary arrive")
            }
        }
    }

    struct Body: Decodable {
        var content_type: String
        var gzip: Bool
        var hex: String
        var bytes: [UInt8] {
            var out: [UInt8] = []
            var index = hex.startIndex
            while index < hex.endIndex {
                let next = hex.index(index, offsetBy: 2)
                out.append(UInt8(hex[index..<next], radix: 16)!)
                index = next
            }
            return out
        }
    }

    static func post(port: Int, _ body: Body) async -> Int? {
        let bytes = body.bytes
        return await offCooperativePool {
            guard let connection = try? RawConnection(port: port) else { return nil }
            var head = "POST \(path) HTTP/1.1\r\nHost: localhost\r\nContent-Type: \(body.content_type)\r\nContent-Length: \(bytes.count)\r\n"
            if body.gzip { head += "Content-Encoding: gzip\r\n" }
            guard (try? connection.send(Array((head + "\r\n").utf8) + bytes)) != nil else { return nil }
            return connection.readResponse()?.status
        }
    }

    /// Every encoding OpenTelemetry's classes write, through the relay with labels on and off.
    @Test(arguments: [true, false])
    func exportsBuiltWithOpenTelemetrysClassesArriveAsTheOriginalPlusTheLabels(labels: Bool) async throws {
        let made = try await runProgram(testPython, [ClientFixture.repositoryRoot + "/Tests/Peers/otlp_bodies.py"])
        try #require(made.status == 0, "\(made.output)")
        let bodies = try JSONDecoder().decode([Body].self, from: Data(made.output.utf8))
        try #require(bodies.count == 4)
        try await RecordingRemote.with { remote in
            let environment =
                labels
                ? LambdaLabelsBinaryTests.environment(remote: remote)
                : RelayBinaryTests.devEnvironment(remote: remote, ["PYROSCOPE_SPOOL_MAX_BYTES": "0", "AWS_LAMBDA_FUNCTION_NAME": "orders-api"])
            let relay = try RelayProcess(environment: environment)
            let port = try #require(await relay.listeningPort())
            for body in bodies {
                #expect(await Self.post(port: port, body) == 200)
            }
            let received = await remote.waitForRequests(bodies.count, timeout: .seconds(20))
            relay.signal(SIGTERM)
            #expect(await relay.waitForExit() == 0)
            try #require(received.count == bodies.count)

            let decoded = try await OTLPBodies.decode(bodies.map(\.bytes) + received.map(\.body))
            for (index, body) in bodies.enumerated() {
                // One connection each: they arrive in the order sent only by chance, so match by encoding.
                let arrived = try #require(
                    received.firstIndex {
                        $0.value("content-type") == body.content_type && ($0.value("content-encoding") == "gzip") == body.gzip
                    })
                let original = decoded[index]
                let relayed = decoded[bodies.count + arrived]
                #expect(relayed.rest == original.rest, "\(body.content_type) gzip \(body.gzip): all but the attributes untouched")
                if !labels {
                    #expect(received[arrived].body == body.bytes, "labels off: the client's bytes")
                    continue
                }
                let expected = try #require(original.resources).map { attributes in
                    attributes + [
                        ["faas.version", "string_value", "12"], ["cloud.provider", "string_value", "aws"],
                        ["cloud.platform", "string_value", "aws_lambda"], ["cloud.region", "string_value", "ap-southeast-2"],
                        ["host.arch", "string_value", relayedArchitecture], ["faas.max_memory", "int_value", "536870912"],
                    ]
                }
                #expect(relayed.resources == expected, "\(body.content_type) gzip \(body.gzip)")
            }
        }
    }

    var relayedArchitecture: String {
        #if arch(arm64)
            "arm64"
        #else
            "amd64"
        #endif
    }

    /// OpenTelemetry's exporters default to gRPC (HTTP/2): the relay answers GOAWAY
    /// HTTP_1_1_REQUIRED, warns once with the setting to use, and counts it.
    @Test func aGRPCExporterIsRefusedClearlyInTheLogAndMetrics() async throws {
        try await RecordingRemote.with { remote in
            let relay = try RelayProcess(environment: RelayBinaryTests.devEnvironment(remote: remote))
            let port = try #require(await relay.listeningPort())
            let run = try await runProgram(
                testPython,
                [
                    ClientFixture.repositoryRoot + "/Tests/Peers/otel_profiled_workload.py", "--endpoint", "http://127.0.0.1:\(port)",
                    "--protocol", "grpc", "--seconds", "1",
                ])
            #expect(run.status == 1, "the gRPC exports fail: \(run.output)")
            let refused = try #require(await ObservabilityTests.metric(port: port, #"pyroscope_relay_client_connections_closed_total{reason="http2_refused"}"#))
            #expect(refused >= 1)
            let warning = await relay.waitForLine(timeout: .seconds(10)) { $0.contains("Refused an HTTP/2 connection") }
            #expect(warning?.contains("OTEL_EXPORTER_OTLP_PROFILES_PROTOCOL=http/protobuf") == true)
            #expect(warning?.contains("level=warning") == true)
            #expect(remote.received.isEmpty)
            relay.signal(SIGTERM)
            #expect(await relay.waitForExit() == 0)
        }
    }
}
