import Synchronization

/// Sends the first `GET /event/next` as soon as the extension has registered, while the
/// relay is still being built, and hands its answer to the lifecycle's first `next()`.
///
/// Lambda's init phase ends when every extension waits in `/event/next`: the relay's
/// pipeline, metrics registry, server bootstrap and services took 2.6 ms between
/// registering and that request (`make bench-cost`), all of it on the function's init.
/// Nothing needs them before the first event is handled, and uploads that arrive meanwhile
/// wait in the listening socket's backlog. Only where nothing must precede the first
/// `/event/next` (no Telemetry subscription: not the `end` strategy, not provisioned
/// concurrency or SnapStart, which drain init's uploads first).
public final class FirstEventPrefetch: ExtensionsAPIClient {
    private let client: any ExtensionsAPIClient
    private let first: Mutex<Task<Result<ExtensionEvent, ExtensionError>, Never>?>

    /// Starts the first request now.
    public init(_ client: any ExtensionsAPIClient) {
        self.client = client
        first = Mutex(
            Task { () async -> Result<ExtensionEvent, ExtensionError> in
                do throws(ExtensionError) { return .success(try await client.next()) } catch { return .failure(error) }
            })
    }

    public static func applies(strategy: FlushStrategy, model: ExecutionModel) -> Bool {
        strategy != .end && !model.drainsBeforeFirstEvent
    }

    public func next() async throws(ExtensionError) -> ExtensionEvent {
        let prefetched = first.withLock { task in
            defer { task = nil }
            return task
        }
        if let prefetched { return try await prefetched.value.get() }
        return try await client.next()
    }

    public func register(name: String, events: [String]) async throws(ExtensionError) -> Registration {
        try await client.register(name: name, events: events)
    }

    public func subscribeTelemetry(destinationURI: String, schemaVersion: String) async throws(ExtensionError) {
        try await client.subscribeTelemetry(destinationURI: destinationURI, schemaVersion: schemaVersion)
    }

    public func reportInitError(_ error: ExtensionError) async { await client.reportInitError(error) }
    public func reportExitError(_ error: ExtensionError) async { await client.reportExitError(error) }
}
