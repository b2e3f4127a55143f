import AsyncHTTPClient
import Logging
import NIOCore
import NIOPosix
import RelayCore
import ServiceLifecycle

/// An in-process relay (ingress + forwarder + real async-http-client) on 127.0.0.1
/// port 0, for tests. `with` always shuts it down, draining the queue gracefully.
public struct TestRelay: Sendable {
    public let port: Int
    public let queue: UploadQueue
    public let counters: RelayCounters
    public let spool: UploadSpool?
    public let serviceGroup: ServiceGroup

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
        logger: Logger = Logger(label: "test-relay", factory: { _ in SwiftLogNoOpLogHandler() }),
        _ body: (TestRelay) async throws -> T
    ) async throws -> T {
        let group = MultiThreadedEventLoopGroup.singleton
        let counters = RelayCounters()
        let queue = UploadQueue(maxItems: configuration.queueMaxItems, maxBytes: configuration.queueMaxBytes)
        let spool = try configuration.spoolDirectory.map {
            try UploadSpool(directory: $0, maxBytes: configuration.spoolMaxBytes, logger: logger)
        }
        let ingress = IngressServer(
            group: group, addresses: configuration.listenAddresses, queue: queue, counters: counters,
            routes: [.healthz, .metrics(counters: counters, queue: queue, spool: spool)], spool: spool,
            maxBodyBytes: configuration.maxBodyBytes, isRemoteUsable: configuration.remote != nil, logger: logger)
        let addresses = try await ingress.bind()
        let client = HTTPClient(
            eventLoopGroup: group,
            configuration: HTTPClientUploader.clientConfiguration(
                timeout: configuration.upstreamTimeout, workers: configuration.workers))
        let forwarder = UploadForwarder(
            queue: queue, uploader: uploader ?? HTTPClientUploader(client: client, timeout: configuration.upstreamTimeout),
            builder: configuration.remote.map { UpstreamRequestBuilder(configuration: configuration, remote: $0) },
            counters: counters, workers: configuration.workers, drainTimeout: configuration.drainTimeout,
            retryPolicy: configuration.retryPolicy, spool: spool, senderLoops: group, logger: logger)
        let serviceGroup = ServiceGroup(
            configuration: .init(
                services: [.init(service: forwarder), .init(service: ingress)], logger: logger))
        let relay = TestRelay(port: addresses[0].port!, queue: queue, counters: counters, spool: spool, serviceGroup: serviceGroup)
        return try await withThrowingTaskGroup(of: Void.self) { tasks in
            tasks.addTask { try await serviceGroup.run() }
            let result: Result<T, any Error>
            do { result = .success(try await body(relay)) } catch { result = .failure(error) }
            await serviceGroup.triggerGracefulShutdown()
            // The client is shut down on every path: one dropped unshut crashes the test process.
            do { try await tasks.waitForAll() } catch {
                try? await client.shutdown()
                throw error
            }
            try await client.shutdown()
            return try result.get()
        }
    }
}
