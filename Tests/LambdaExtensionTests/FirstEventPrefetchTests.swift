import LambdaExtension
import Testing

/// The first `/event/next` goes out when the prefetch is made, before the lifecycle asks;
/// the lifecycle then gets its answer, errors included, and later calls go to the API.
@Suite struct FirstEventPrefetchTests {
    /// The scripted API, telling each `/event/next` as it is asked: the prefetch runs in a
    /// task of its own, and the test awaits the request instead of polling for it.
    final class AnnouncingClient: ExtensionsAPIClient {
        let script: InMemoryExtensionsClient
        let asked: AsyncStream<Void>
        private let announce: AsyncStream<Void>.Continuation

        init(_ events: [Result<ExtensionEvent, ExtensionError>]) {
            script = InMemoryExtensionsClient(events)
            (asked, announce) = AsyncStream.makeStream()
        }

        func next() async throws(ExtensionError) -> ExtensionEvent {
            announce.yield()
            return try await script.next()
        }
        func register(name: String, events: [String]) async throws(ExtensionError) -> Registration {
            try await script.register(name: name, events: events)
        }
        func subscribeTelemetry(destinationURI: String, schemaVersion: String) async throws(ExtensionError) {
            try await script.subscribeTelemetry(destinationURI: destinationURI, schemaVersion: schemaVersion)
        }
        func reportInitError(_ error: ExtensionError) async { await script.reportInitError(error) }
        func reportExitError(_ error: ExtensionError) async { await script.reportExitError(error) }
    }

    @Test(.timeLimit(.minutes(1))) func theFirstRequestGoesOutBeforeTheLifecycleAsksAndItsAnswerIsHandedOver() async throws {
        let client = AnnouncingClient([LambdaLifecycleTests.invoke("first"), LambdaLifecycleTests.shutdown()])
        let prefetch = FirstEventPrefetch(client)
        // Asked at once, nobody having called next(): without the prefetch this waits out the
        // time limit.
        var asked = client.asked.makeAsyncIterator()
        _ = await asked.next()
        guard case .invoke(let first) = try await prefetch.next() else { return #expect(Bool(false), "not the first event") }
        #expect(first.requestId == "first")
        #expect(client.script.calls.withLock { $0.nextCalls } == 1, "the answer was the prefetched one")
        guard case .shutdown = try await prefetch.next() else { return #expect(Bool(false), "not the second event") }
        #expect(client.script.calls.withLock { $0.nextCalls } == 2)
    }

    @Test func aFailedFirstRequestIsTheLifecyclesError() async throws {
        let client = InMemoryExtensionsClient([.failure(ExtensionError(.apiUnavailable, "refused"))])
        let prefetch = FirstEventPrefetch(client)
        await #expect(throws: ExtensionError.self) { try await prefetch.next() }
    }

    @Test(arguments: [
        (FlushStrategy.background, ExecutionModel.onDemand, true), (.invoke, .onDemand, true), (.end, .onDemand, false),
        (.background, .provisionedConcurrency, false), (.background, .snapStart, false), (.background, .managedInstances, true),
    ])
    func appliesWhereNothingMustPrecedeTheFirstRequest(strategy: FlushStrategy, model: ExecutionModel, applies: Bool) {
        #expect(FirstEventPrefetch.applies(strategy: strategy, model: model) == applies)
    }
}
