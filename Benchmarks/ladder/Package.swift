// swift-tools-version:6.0
import PackageDescription

// The floor ladder (Benchmarks/ladder.py, make bench-ladder): probes that each do only what an
// extension does first (register, read the identifier, GET /event/next until SHUTDOWN), one
// layer of the extension's stack more each, so what each layer costs a cold start is measured
// on the machine of the day. A package of its own: the main package's build and CI never
// build it. Dependencies by the same URLs and lower bounds as ../../Package.swift.
let package = Package(
    name: "ladder",
    platforms: [.macOS(.v15)],
    dependencies: [
        .package(url: "https://github.com/apple/swift-nio.git", from: "2.81.0"),
        .package(url: "https://github.com/apple/swift-nio-ssl.git", from: "2.29.0"),
        .package(url: "https://github.com/apple/swift-log.git", from: "1.6.0"),
        .package(url: "https://github.com/apple/swift-metrics.git", from: "2.5.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus.git", from: "2.1.0"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle.git", from: "2.6.0"),
    ],
    targets: [
        // Swift over Glibc's sockets: the Swift runtime and nothing else.
        .executableTarget(name: "LadderGlibc", path: "Sources/LadderGlibc"),
        // The NIO client and listener the three NIO probes share.
        .target(
            name: "LadderHTTP",
            dependencies: [
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
            ],
            path: "Sources/LadderHTTP"
        ),
        // SwiftNIO (Posix + HTTP1): the client, and a listener bound before /register.
        .executableTarget(name: "LadderNIO", dependencies: ["LadderHTTP"], path: "Sources/LadderNIO"),
        // + NIOSSL: a client context with the system trust roots, made after /register.
        .executableTarget(
            name: "LadderNIOSSL",
            dependencies: ["LadderHTTP", .product(name: "NIOSSL", package: "swift-nio-ssl")],
            path: "Sources/LadderNIOSSL"
        ),
        // + swift-log, swift-metrics with a Prometheus registry, a ServiceGroup running the loop.
        .executableTarget(
            name: "LadderStack",
            dependencies: [
                "LadderHTTP",
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            path: "Sources/LadderStack"
        ),
    ],
    swiftLanguageModes: [.v6]
)
