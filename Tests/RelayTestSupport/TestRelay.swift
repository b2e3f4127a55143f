import Logging
import NIOCore
import RelayCore

/// An in-process relay (ingress + forwarder + real async-http-client, or the given
/// uploader) on 127.0.0.1 port 0, for tests: the relay the executable builds, run in a
/// service group. `with` always shuts it down, draining gracefully.
public struct TestRelay: Sendable {
    public let port: Int
    public let relay: Relay

    public var pipeline: DeliveryPipeline { relay.pipeline }
    public var counters: RelayCounters { relay.counters }

    public static func configuration(remote: RecordingRemote, basePath: String = "", _ change: (inout RelayConfiguration) -> Void = { _ in })
        -> RelayConfiguration
    {
        var configuration = RelayConfiguration(
            remote: RemoteEndpoint(scheme: .http, host: "127.0.0.1", port: remote.port, basePath: basePath),
            upstreamTimeout: .seconds(10),
            listenAddresses: [ListenAddress(host: "127.0.0.1", port: 0)],
            sessionID: SessionID(0x0123_4567_89ab_cdef))
        change(&configuration)
        return configuration
    }

    public static func with<T: Sendable>(
        _ configuration: RelayConfiguration,
        uploader: (any Uploader)? = nil,
        clock: any RelayClock = SystemClock(),
        logger: Logger = Logger(label: "test-relay", factory: { _ in SwiftLogNoOpLogHandler() }),
        _ body: (TestRelay) async throws -> T
    ) async throws -> T {
        try await Relay.with(configuration, uploader: uploader, clock: clock, logger: logger) { relay in
            let addresses = try await relay.ingress.bind()
            let serviceGroup = ServiceGroup(configuration: .init(services: relay.services, logger: logger))
            return try await withThrowingTaskGroup(of: Void.self) { tasks in
                tasks.addTask { try await serviceGroup.run() }
                let result: Result<T, any Error>
                do { result = .success(try await body(TestRelay(port: addresses[0].port!, relay: relay))) } catch { result = .failure(error) }
                await serviceGroup.triggerGracefulShutdown()
                try await tasks.waitForAll()
                return try result.get()
            }
        }
    }
}
