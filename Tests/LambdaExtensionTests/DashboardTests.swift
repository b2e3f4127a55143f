import Foundation
import RelayTestSupport
import Testing

/// The dashboards and queries in dashboards/ work against what the relay really emits.
@Suite(.serialized) struct DashboardTests {
    static func dashboardFile(_ name: String) throws -> Data {
        Data(try readFile(ClientFixture.repositoryRoot + "/dashboards/" + name))
    }

    /// Every PromQL expression in the Grafana dashboard, with its variables filled in.
    static func grafanaQueries() throws -> [String] {
        let dashboard = try #require(try JSONSerialization.jsonObject(with: dashboardFile("grafana-relay.json")) as? [String: Any])
        let panels = try #require(dashboard["panels"] as? [[String: Any]])
        return panels.flatMap { ($0["targets"] as? [[String: Any]] ?? []).compactMap { $0["expr"] as? String } }
            .map {
                $0.replacingOccurrences(of: "$instance", with: ".*").replacingOccurrences(of: "$job", with: ".*")
                    .replacingOccurrences(of: "$__rate_interval", with: "1m")
            }
    }

    static func httpGet(port: Int, _ target: String) async -> (status: Int, body: [UInt8])? {
        await offCooperativePool {
            guard let connection = try? RawConnection(port: port),
                (try? connection.send("GET \(target) HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")) != nil,
                let answer = connection.readResponse()
            else { return nil }
            return (answer.status, answer.body)
        }
    }

    @Test func everyGrafanaQueryReturnsDataFromARealPrometheusScrapingTheRelay() async throws {
        let prometheusPath = ProcessInfo.processInfo.environment["PROMETHEUS"] ?? "/usr/bin/prometheus"
        #expect(FileManager.default.isExecutableFile(atPath: prometheusPath), "needs Prometheus: `make test` unpacks Debian's package into .build-tools/")
        let queries = try Self.grafanaQueries()
        #expect(queries.count >= 10)
        try await RecordingRemote.with(respond: { $0.uri.contains("fail") ? .status(.internalServerError) : .status(.ok) }) { remote in
            let relay = try RelayProcess(
                environment: RelayBinaryTests.devEnvironment(
                    remote: remote,
                    [
                        "PYROSCOPE_RETRY_MAX_ATTEMPTS": "2",
                        "PYROSCOPE_RETRY_INITIAL_BACKOFF": "10ms",
                    ]))
            let relayPort = try #require(await relay.listeningPort())
            let prometheusPort = try await RecordingRemote.with { $0.port }  // a free port
            let directory = NSTemporaryDirectory() + "prometheus-\(UUID().uuidString)"
            try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
            defer { try? FileManager.default.removeItem(atPath: directory) }
            try """
            global: { scrape_interval: 1s, evaluation_interval: 1s }
            scrape_configs:
              - job_name: pyroscope-relay
                static_configs: [{ targets: ["127.0.0.1:\(relayPort)"] }]
            """.write(toFile: directory + "/prometheus.yml", atomically: true, encoding: .utf8)
            let prometheus = Process()
            prometheus.executableURL = URL(fileURLWithPath: prometheusPath)
            prometheus.arguments = [
                "--config.file=\(directory)/prometheus.yml", "--storage.tsdb.path=\(directory)/data",
                "--web.listen-address=127.0.0.1:\(prometheusPort)", "--log.level=error",
            ]
            prometheus.standardOutput = FileHandle.nullDevice
            prometheus.standardError = FileHandle.nullDevice
            try prometheus.run()
            defer {
                prometheus.terminate()
                relay.signal(SIGTERM)
            }
            // Load from a real client shape for several scrapes: successes and failures, a
            // round a second (Prometheus scrapes on its own schedule) until every query has data.
            var empty: [String] = queries
            var round = 0
            try await eventually("data for every query", timeout: .seconds(60), every: .seconds(1)) {
                round += 1
                for index in 0..<5 { _ = await rawPost(port: relayPort, path: "/ingest?name=app&n=\(round)-\(index)", body: "x") }
                _ = await rawPost(port: relayPort, path: "/push.v1.PusherService/Push?fail", body: "y")
                var stillEmpty: [String] = []
                for query in empty {
                    let encoded = query.addingPercentEncoding(withAllowedCharacters: .alphanumerics) ?? query
                    guard let answer = await Self.httpGet(port: prometheusPort, "/api/v1/query?query=\(encoded)"), answer.status == 200,
                        let object = try? JSONSerialization.jsonObject(with: Data(answer.body)) as? [String: Any],
                        let data = object["data"] as? [String: Any], let result = data["result"] as? [[String: Any]],
                        result.contains(where: { (($0["value"] as? [Any])?.last as? String).map { $0 != "NaN" } ?? false })
                    else {
                        stillEmpty.append(query)
                        continue
                    }
                }
                empty = stillEmpty
                return empty.isEmpty
            }
            #expect(empty.isEmpty, "queries without data: \(empty)")
        }
    }

    /// The field names a Logs Insights query uses (keywords, functions, aliases, literals removed).
    static func fieldNames(in query: String) -> Set<String> {
        var text = query
        for pattern in [#""[^"]*""#, #"/[^/]*/"#, #"\bas\s+[A-Za-z_][A-Za-z0-9_]*"#, #"@[a-z]+"#] {
            text = text.replacingOccurrences(of: pattern, with: " ", options: .regularExpression)
        }
        let keywords: Set<String> = [
            "fields", "filter", "stats", "sort", "limit", "by", "bin", "count", "avg", "max", "min", "sum", "pct", "desc", "asc",
            "and", "or", "not", "like", "ispresent", "as", "m", "h", "s",
        ]
        let identifiers = text.split { !($0.isLetter || $0.isNumber || $0 == "_") }.map(String.init)
        return Set(identifiers.filter { !keywords.contains($0) && !($0.first?.isNumber ?? true) })
    }

    @Test func fieldExtractionSkipsKeywordsLiteralsAndAliases() {
        #expect(
            Self.fieldNames(in: #"fields @timestamp, level | filter msg = "relay stats" and flushes > 0 | stats max(flush_p99_ms) as p99_ms by bin(5m)"#)
                == ["level", "msg", "flushes", "flush_p99_ms"])
    }

    @Test func everyFieldTheLogsInsightsQueriesNameIsInTheExtensionsJSONLogs() async throws {
        let directory = ClientFixture.repositoryRoot + "/dashboards/logs-insights"
        let files = try FileManager.default.contentsOfDirectory(atPath: directory).filter { $0.hasSuffix(".json") }
        #expect(files.count >= 5)
        var named: [String: Set<String>] = [:]
        for file in files {
            let definition = try #require(
                try JSONSerialization.jsonObject(with: Data(try readFile(directory + "/" + file))) as? [String: Any])
            named[file] = Self.fieldNames(in: try #require(definition["queryString"] as? String))
            #expect(named[file]?.isEmpty == false, "\(file) names fields")
        }
        // A Lambda run that produces every kind of line: rejected uploads (errors with a
        // reason), invocation flushes, periodic and final stats, SHUTDOWN.
        try await RecordingRemote.with(respond: { $0.uri.contains("tag=") ? .status(.forbidden) : .status(.ok) }) { remote in
            let run = try await LocalLambdaTests.run(
                remote: remote, invocations: 2, event: #"{"work_ms": 50, "uploads": 2}"#,
                env: ["PYROSCOPE_FLUSH_STRATEGY": "end", "PYROSCOPE_STATS_INTERVAL": "100ms"])
            let present = Set(run.logs.flatMap(\.keys))
            for (file, fields) in named.sorted(by: { $0.key < $1.key }) {
                #expect(fields.isSubset(of: present), "\(file) names fields the logs lack: \(fields.subtracting(present).sorted())")
            }
        }
    }
}
