// swift-tools-version:6.0
import PackageDescription

// Each module lives in a folder of its own name, except the four folders the design names
// (Sources/Relay, Sources/Metrics, Sources/Logging, Sources/Extension), which keep their
// names and map onto modules with `path:` because the folder names cannot be module names:
// `Logging` is swift-log's module, which the relay imports, and `Metrics` swift-metrics' (not
// used: it would read as that); a module `Relay` would be shadowed by its own `Relay` type
// (`Relay.X` finds the type, not the module); and `Extension` says less than `LambdaExtension`. Targets outside
// Sources/ (test support and peers under Tests/, benchmarks under Benchmarks/) give their
// folder with `path:` too, named after the module all the same.
let package = Package(
    name: "pyroscope-lambda-extension",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "pyroscope-lambda-extension", targets: ["ExtensionMain"])
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-nio.git", from: "2.81.0"),
        .package(url: "https://github.com/apple/swift-collections.git", from: "1.1.0"),
        .package(url: "https://github.com/apple/swift-log.git", from: "1.6.0"),
        // TLS for the relay's own HTTP/1.1 client (Sources/Relay/HTTP).
        .package(url: "https://github.com/apple/swift-nio-ssl.git", from: "2.29.0"),
    ],
    targets: [
        // zlib: gzip for the self-profiler, CRC-32 for spool records.
        .systemLibrary(name: "CZlib"),
        // What behaves as the Go extension did: its parsing of settings, strings.TrimSpace,
        // time layouts and TZ rules.
        .target(name: "GoCompatibility"),
        // JSON (RFC 8259) and base64 for the few bodies the relay reads and writes, instead of
        // Foundation's coders and their ~2.7 MB and ~1 ms at cold start.
        .target(name: "RelayJSON"),
        // glibc calls Swift's Glibc module does not import (getauxval, malloc_trim, NSS),
        // called directly: dlsym finds nothing in the layer's statically linked binary.
        .target(name: "CGlibc"),
        .target(
            name: "RelayLogging",
            dependencies: ["GoCompatibility", .product(name: "Logging", package: "swift-log")],
            path: "Sources/Logging"
        ),
        // The relay's own Prometheus text registry (CONTRIBUTING "Dependencies, and why").
        .target(name: "RelayMetrics", path: "Sources/Metrics"),
        .target(
            name: "RelayCore",
            dependencies: [
                "RelayMetrics",
                "RelayJSON",
                "GoCompatibility",
                "CGlibc",
                "CZlib",
                .product(name: "HeapModule", package: "swift-collections"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "NIOTLS", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
            ],
            path: "Sources/Relay"
        ),
        // Secrets from AWS Secrets Manager and SSM: a small SigV4 signer, AWS JSON 1.1 calls,
        // credentials from the environment or Lambda's container endpoint.
        .target(
            name: "RelayAWS",
            dependencies: [
                "GoCompatibility",
                "RelayCore",
                "RelayJSON",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        // The self-profiler: the signal handler and timers in C (async-signal-safe code
        // only), symbols, pprof and uploads in Swift.
        .target(
            name: "CSelfProfiler",
            linkerSettings: [.linkedLibrary("z")]
        ),
        .target(
            name: "RelayProfiler",
            dependencies: [
                "CSelfProfiler",
                "RelayCore",
                "RelayMetrics",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        .target(
            name: "LambdaExtension",
            dependencies: [
                "GoCompatibility",
                "RelayCore",
                "RelayAWS",
                "RelayJSON",
                "RelayProfiler",
                "RelayLogging",
                "RelayMetrics",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
            ],
            path: "Sources/Extension"
        ),
        .executableTarget(
            name: "ExtensionMain",
            dependencies: [
                "CGlibc",
                "LambdaExtension",
                "RelayCore",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
            ]
        ),
        // Test peer for the self-profiler tests: the relay plus a known busy function.
        .executableTarget(
            name: "ProfilerProbe",
            dependencies: ["LambdaExtension", "RelayLogging", .product(name: "Logging", package: "swift-log")],
            path: "Tests/ProfilerProbe"
        ),
        // Benchmarks, run by `make bench` (release builds).
        .executableTarget(
            name: "LogBench",
            dependencies: ["GoCompatibility", "RelayLogging", .product(name: "Logging", package: "swift-log")],
            path: "Benchmarks/LogBench"
        ),
        .executableTarget(
            name: "PipelineBench",
            dependencies: [
                "RelayCore", .product(name: "Logging", package: "swift-log"), .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
            ],
            path: "Benchmarks/PipelineBench"
        ),
        // Shared fakes for the tests: a recording remote on 127.0.0.1 port 0,
        // raw-socket helpers, fixture loading. Not shipped.
        .target(
            name: "RelayTestSupport",
            dependencies: [
                "RelayCore",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
            ],
            path: "Tests/RelayTestSupport"
        ),
        .testTarget(
            name: "RelayCoreTests",
            dependencies: [
                "CGlibc", "RelayCore", "RelayTestSupport",
                .product(name: "Logging", package: "swift-log"),
                // EmbeddedChannel: the ingress handlers tested without sockets.
                .product(name: "NIOEmbedded", package: "swift-nio"),
            ]
        ),
        .testTarget(
            name: "LambdaExtensionTests",
            dependencies: ["GoCompatibility", "LambdaExtension", "RelayCore", "RelayJSON", "RelayLogging", "RelayTestSupport"]
        ),
        .testTarget(
            name: "RelayProfilerTests",
            dependencies: ["RelayProfiler", "RelayTestSupport"]
        ),
        .testTarget(
            name: "RelayAWSTests",
            dependencies: ["RelayAWS", "RelayCore", "RelayJSON", "RelayTestSupport", .product(name: "Logging", package: "swift-log")]
        ),
        .testTarget(name: "RelayJSONTests", dependencies: ["RelayJSON", "RelayTestSupport"]),
        .testTarget(
            name: "RelayLoggingTests",
            dependencies: ["GoCompatibility", "RelayLogging", .product(name: "Logging", package: "swift-log")]
        ),
    ],
    swiftLanguageModes: [.v6]
)
