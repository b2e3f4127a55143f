import Foundation
import RelayTestSupport
import Testing

@testable import RelayProfiler

/// A C entry point with a known symbol, for the symbolizer.
@_cdecl("relay_profiler_tests_marker")
public func relayProfilerTestsMarker() {}

/// Decodes a (gzipped) pprof profile with Google's protobuf runtime (Tests/Peers/decode_pprof.py),
/// an encoder independent of ours. Fails the test when it is not valid pprof.
struct DecodedProfile: Decodable {
    struct Sample: Decodable {
        var functions: [String]
        var value: [Int64]
    }
    var sample_type: [[String]]
    var period_type: [String]
    var period: Int64
    var time_nanos: Int64
    var duration_nanos: Int64
    var samples: [Sample]

    static func decode(_ bytes: [UInt8]) async throws -> DecodedProfile {
        let script = ClientFixture.repositoryRoot + "/Tests/Peers/decode_pprof.py"
        let (status, output) = try await runProgram(testPython, [script, "-"], input: bytes)
        try #require(status == 0, "not a valid pprof profile: \(output)")
        return try JSONDecoder().decode(DecodedProfile.self, from: Data(output.utf8))
    }
}

@Suite struct PprofEncodingTests {
    @Test func googlesProtobufReadsBackEverySampleNameAndValue() async throws {
        let profile = PprofProfile(
            samples: [
                .init(functions: ["leaf()", "middle()", "main"], count: 3),
                .init(functions: ["other()", "main"], count: 1),
                .init(functions: ["ünïcode · name", "main"], count: 2),
            ],
            periodNanos: 10_000_000, startUnixNanos: 1_795_555_570_000_000_000, durationNanos: 10_000_000_000,
            executablePath: "/opt/extensions/pyroscope-lambda-extension")
        let body = try #require(gzip(profile.encoded()))
        #expect(body.starts(with: [0x1F, 0x8B]), "gzip magic")
        let decoded = try await DecodedProfile.decode(body)
        #expect(decoded.sample_type == [["cpu", "nanoseconds"]])
        #expect(decoded.period_type == ["cpu", "nanoseconds"])
        #expect(decoded.period == 10_000_000)
        #expect(decoded.time_nanos == 1_795_555_570_000_000_000)
        #expect(decoded.duration_nanos == 10_000_000_000)
        #expect(decoded.samples.count == 3)
        #expect(decoded.samples[0].functions == ["leaf()", "middle()", "main"])
        #expect(decoded.samples[0].value == [30_000_000])
        #expect(decoded.samples.contains { $0.functions == ["ünïcode · name", "main"] && $0.value == [20_000_000] })
        #expect(decoded.samples.contains { $0.functions == ["other()", "main"] && $0.value == [10_000_000] })
    }

    @Test func varintsMatchTheProtobufWireFormat() {
        var writer = ProtoWriter()
        writer.varint(1)
        writer.varint(300)
        writer.varint(UInt64.max)
        #expect(writer.bytes == [0x01, 0xAC, 0x02, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0x01])
    }
}

@Suite struct SymbolizerTests {
    @Test func namesACFunctionOfThisProcessFromItsSymbolTable() {
        let address = unsafeBitCast(relayProfilerTestsMarker as @convention(c) () -> Void, to: UInt.self)
        let symbolizer = Symbolizer()
        #expect(symbolizer.functionName(at: address) == "relay_profiler_tests_marker")
        // Inside the function, not only at its first byte.
        #expect(symbolizer.functionName(at: address + 1) == "relay_profiler_tests_marker")
    }

    @Test func namesALibraryFunction() {
        let address = unsafeBitCast(getpid as @convention(c) () -> pid_t, to: UInt.self)
        #expect(Symbolizer().functionName(at: address).contains("getpid"))
    }

    @Test func demanglesSwiftAndCxxNames() {
        #expect(Symbolizer.demangle("$sSi") == "Swift.Int")
        #expect(Symbolizer.demangle("$s4main3fooyyF") == "main.foo() -> ()")
        #expect(Symbolizer.demangle("_ZN4core5Alloc4growEm") == "core::Alloc::grow(unsigned long)")
        #expect(Symbolizer.demangle("write") == "write")
    }
}

/// The profiler in real processes: the extension binary, and a probe with a known busy function.
@Suite(.serialized) struct SelfProfilingProcessTests {
    static func environment(remote: RecordingRemote, selfProfiling: Bool) -> [String: String] {
        [
            "PYROSCOPE_DEV_MODE": "true", "PYROSCOPE_REMOTE_ADDRESS": remote.address, "PYROSCOPE_LISTEN_ADDRESS": "127.0.0.1:0",
            "PYROSCOPE_SELF_PROFILING": selfProfiling ? "true" : "false", "PYROSCOPE_SPOOL_MAX_BYTES": "0",
            "PYROSCOPE_AUTH_TOKEN": "self-profile-token", "AWS_LAMBDA_FUNCTION_NAME": "orders-api", "TZ": "UTC",
        ]
    }

    /// SIGPROF's bit in /proc's signal masks, and the process's POSIX timers.
    static func sigprofCaught(pid: Int32) throws -> Bool {
        let status = try String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8)
        let line = try #require(status.split(separator: "\n").first { $0.hasPrefix("SigCgt:") })
        let mask = try #require(UInt64(line.split(separator: "\t").last!.trimmingCharacters(in: .whitespaces), radix: 16))
        return mask & (1 << (UInt64(SIGPROF) - 1)) != 0
    }

    static func sigprofTimers(pid: Int32) throws -> Int {
        let timers = try String(contentsOfFile: "/proc/\(pid)/timers", encoding: .utf8)
        return timers.split(separator: "\n").filter { $0.hasPrefix("signal: \(SIGPROF)/") }.count
    }

    static func threadCount(pid: Int32) throws -> Int {
        try FileManager.default.contentsOfDirectory(atPath: "/proc/\(pid)/task").count
    }

    @Test func theHeaviestStackOfTheUploadedProfileIsTheKnownBusyFunction() async throws {
        let probe = RelayProcess.siblingBinary("ProfilerProbe")
        try #require(FileManager.default.isExecutableFile(atPath: probe), "build the ProfilerProbe target (make test does)")
        try await RecordingRemote.with { remote in
            let process = try RelayProcess(
                environment: Self.environment(remote: remote, selfProfiling: true), executable: probe, arguments: ["1.5"])
            #expect(await process.waitForExit(timeout: .seconds(40)) == 0, "\(process.output.suffix(20))")
            let uploads = remote.received.filter { $0.uri.hasPrefix("/ingest") }
            try #require(!uploads.isEmpty, "no profile upload arrived")
            // The spin may straddle the end of a profile window (its start waits for the
            // thread's timer, up to 10 s on a loaded machine): its samples are summed over
            // every window uploaded, and the window holding most of them is checked.
            let spin = "ProfilerProbe.spinInKnownFunctionForProfilerTest(seconds: Swift.Double)"
            var spinNanoseconds: [(Int64, DecodedProfile)] = []
            for upload in uploads {
                let profile = try await DecodedProfile.decode(upload.body)
                let spun = profile.samples.filter { $0.functions.first?.hasPrefix(spin) == true }.reduce(Int64(0)) { $0 + $1.value[0] }
                spinNanoseconds.append((spun, profile))
            }
            let profile = try #require(spinNanoseconds.max { $0.0 < $1.0 }?.1)
            let heaviest = try #require(profile.samples.first)
            #expect(heaviest.functions.first?.hasPrefix(spin) == true, "heaviest stack: \(heaviest.functions.prefix(5))")
            // The busy thread ran 1.5 s of CPU at 100 Hz: most of it is sampled.
            let total = spinNanoseconds.reduce(Int64(0)) { $0 + $1.0 }
            #expect(total >= 500_000_000, "sampled \(total) ns of the spin over \(uploads.count) upload(s)")
        }
    }

    @Test func theExtensionSendsItsProfileToTheRemoteWithTheUsersCredentials() async throws {
        try await RecordingRemote.with { remote in
            let relay = try RelayProcess(environment: Self.environment(remote: remote, selfProfiling: true))
            let port = try #require(await relay.listeningPort())
            #expect(await relay.waitForLine({ $0.contains("msg=Self-profiling") }) != nil)
            let pid = relay.process.processIdentifier
            #expect(try Self.sigprofCaught(pid: pid))
            #expect(try Self.sigprofTimers(pid: pid) >= 1, "a CPU timer per thread")
            // Some relay work to sample.
            for _ in 0..<400 { #expect(await rawPost(port: port, path: "/ingest?name=app&from=1&until=2", body: "x") == 200) }
            relay.signal(SIGTERM)
            #expect(await relay.waitForExit() == 0)

            let ingest = try #require(remote.received.first { $0.uri.contains("pyroscope.lambda.extension") }, "no self-profile arrived")
            let query = Dictionary(
                uniqueKeysWithValues: ingest.uri.split(separator: "?")[1].split(separator: "&").map {
                    let pair = $0.split(separator: "=", maxSplits: 1)
                    return (String(pair[0]), String(pair[1]).removingPercentEncoding ?? "")
                })
            #expect(ingest.uri.hasPrefix("/ingest?"))
            #expect(query["name"]?.hasPrefix("pyroscope.lambda.extension{") == true)
            #expect(query["name"]?.contains("function_name=orders-api") == true)
            #expect(query["format"] == "pprof")
            #expect(query["sampleRate"] == "100")
            #expect(query["spyName"] == "swiftspy")
            let from = try #require(query["from"].flatMap { Int($0) })
            let until = try #require(query["until"].flatMap { Int($0) })
            let now = Int(Date().timeIntervalSince1970)
            #expect(from < until && until <= now + 1 && from > now - 120, "from \(from) until \(until) now \(now)")
            #expect(ingest.value("authorization") == "Bearer self-profile-token")
            #expect(ingest.value("content-encoding") == "gzip")
            let profile = try await DecodedProfile.decode(ingest.body)
            #expect(profile.sample_type == [["cpu", "nanoseconds"]])
            #expect(profile.period == 10_000_000)
            #expect(!profile.samples.isEmpty)
            // Symbolized and demangled: the relay's own Swift functions appear by name.
            #expect(profile.samples.contains { $0.functions.contains { $0.hasPrefix("RelayCore.") || $0.hasPrefix("NIOPosix.") } })
            // Through the delivery pipeline: counted like any upload.
            #expect(relay.output.contains { $0.contains("relay stats") && $0.contains("phase=shutdown") && !$0.contains("delivered=0 ") })
        }
    }

    @Test func offMeansNoSignalHandlerNoTimerAndNoExtraThread() async throws {
        try await RecordingRemote.with { remote in
            var threads: [Bool: Int] = [:]
            for selfProfiling in [false, true] {
                let relay = try RelayProcess(environment: Self.environment(remote: remote, selfProfiling: selfProfiling))
                let port = try #require(await relay.listeningPort())
                if selfProfiling { #expect(await relay.waitForLine({ $0.contains("msg=Self-profiling") }) != nil) }
                for _ in 0..<20 { #expect(await rawPost(port: port, path: "/ingest?name=app", body: "x") == 200) }
                let pid = relay.process.processIdentifier
                #expect(try Self.sigprofCaught(pid: pid) == selfProfiling)
                #expect(try (Self.sigprofTimers(pid: pid) > 0) == selfProfiling)
                threads[selfProfiling] = try Self.threadCount(pid: pid)
                relay.signal(SIGTERM)
                #expect(await relay.waitForExit() == 0)
            }
            // The profiler runs no thread of its own, on or off.
            #expect(try #require(threads[false]) <= #require(threads[true]))
        }
    }
}
