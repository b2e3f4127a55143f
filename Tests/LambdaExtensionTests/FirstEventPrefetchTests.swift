import LambdaExtension
import Testing

/// The first `/event/next` goes out when the prefetch is made, before the lifecycle asks;
/// the lifecycle then gets its answer, errors included, and later calls go to the API.
@Suite struct FirstEventPrefetchTests {
    /// Waits until the fake has been asked `count` times (the prefetch runs in a task of
    /// its own, which nothing here can await).
    static func waitForNextCalls(_ client: InMemoryExtensionsClient, _ count: Int) async -> Bool {
        for _ in 0..<2_000 {
            if client.calls.withLockedValue({ $0.nextCalls }) >= count { return true }
            try? await Task.sleep(for: .milliseconds(1))
        }
        return false
    }

    @Test func theFirstRequestGoesOutBeforeTheLifecycleAsksAndItsAnswerIsHandedOver() async throws {
        let client = InMemoryExtensionsClient([LambdaLifecycleTests.invoke("first"), LambdaLifecycleTests.shutdown()])
        let prefetch = FirstEventPrefetch(client)
        #expect(await Self.waitForNextCalls(client, 1), "asked at once, nobody having called next()")
        guard case .invoke(let first) = try await prefetch.next() else { return #expect(Bool(false), "not the first event") }
        #expect(first.requestId == "first")
        #expect(client.calls.withLockedValue { $0.nextCalls } == 1, "the answer was the prefetched one")
        guard case .shutdown = try await prefetch.next() else { return #expect(Bool(false), "not the second event") }
        #expect(client.calls.withLockedValue { $0.nextCalls } == 2)
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
