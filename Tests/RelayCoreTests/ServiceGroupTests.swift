import Logging
import Synchronization
import Testing

@testable import RelayCore

/// The relay's service group: the rules the relay relies on, each a test.
@Suite struct ServiceGroupTests {
    final class Journal: Sendable {
        private let lines = Mutex<[String]>([])
        func add(_ line: String) { lines.withLock { $0.append(line) } }
        var all: [String] { lines.withLock { $0 } }
    }

    /// Waits for graceful shutdown, then records that it was told and that it finished.
    struct Drains: Service {
        var name: String
        var journal: Journal
        func run() async throws {
            journal.add("start \(name)")
            do {
                try await gracefulShutdown()
                journal.add("told \(name)")
            } catch {
                journal.add("cancelled \(name)")
                throw error
            }
            await Task.yield()
            journal.add("done \(name)")
        }
    }

    /// Returns (or throws) once every service has started.
    struct Ends: Service {
        var journal: Journal
        var starts: Int
        var error: (any Error)? = nil
        func run() async throws {
            while journal.all.filter({ $0.hasPrefix("start") }).count < starts { await Task.yield() }
            if let error { throw error }
        }
    }

    struct Boom: Error, Equatable {}

    static let logger = Logger(label: "service-group-tests", factory: { _ in SwiftLogNoOpLogHandler() })

    static func group(_ services: [ServiceGroup.ServiceConfiguration]) -> ServiceGroup {
        ServiceGroup(configuration: .init(services: services, logger: logger))
    }

    @Test func gracefulShutdownTellsTheLastFirstAndWaitsForEachBeforeTheNext() async throws {
        let journal = Journal()
        let group = Self.group(["a", "b", "c"].map { .init(service: Drains(name: $0, journal: journal), serviceName: $0) })
        await group.triggerGracefulShutdown()  // before run: the services start, then stop
        try await group.run()
        #expect(Array(journal.all.dropFirst(3)) == ["told c", "done c", "told b", "done b", "told a", "done a"])
        #expect(Set(journal.all.prefix(3)) == ["start a", "start b", "start c"])
    }

    @Test func aServiceThatEndsTheGroupGracefullyHasTheOthersDrained() async throws {
        let journal = Journal()
        let group = Self.group([
            .init(service: Drains(name: "ingress", journal: journal), serviceName: "ingress"),
            .init(service: Ends(journal: journal, starts: 2), successTerminationBehavior: .gracefullyShutdownGroup, serviceName: "lifecycle"),
            .init(service: Drains(name: "stats", journal: journal), serviceName: "stats"),
        ])
        try await group.run()
        #expect(journal.all.filter { !$0.hasPrefix("start") } == ["told stats", "done stats", "told ingress", "done ingress"])
    }

    @Test func aServiceThatReturnsUnexpectedlyCancelsTheGroup() async throws {
        let journal = Journal()
        let group = Self.group([
            .init(service: Drains(name: "ingress", journal: journal), serviceName: "ingress"),
            .init(service: Ends(journal: journal, starts: 1), serviceName: "stray"),
        ])
        await #expect(throws: ServiceGroup.ServiceFinishedUnexpectedly.self) { try await group.run() }
        #expect(journal.all == ["start ingress", "cancelled ingress"])
    }

    @Test func aServiceThatThrowsCancelsTheOthersAndItsErrorIsRethrown() async throws {
        let journal = Journal()
        let group = Self.group([
            .init(service: Drains(name: "ingress", journal: journal), serviceName: "ingress"),
            .init(service: Ends(journal: journal, starts: 1, error: Boom()), serviceName: "failing"),
        ])
        await #expect(throws: Boom.self) { try await group.run() }
        #expect(journal.all == ["start ingress", "cancelled ingress"])
    }

    @Test func aServiceWhoseEndIsIgnoredLeavesTheOthersRunning() async throws {
        let journal = Journal()
        let group = Self.group([
            .init(service: Drains(name: "ingress", journal: journal), serviceName: "ingress"),
            .init(service: Ends(journal: journal, starts: 1), successTerminationBehavior: .ignore, serviceName: "one-off"),
            .init(service: Ends(journal: journal, starts: 1), successTerminationBehavior: .gracefullyShutdownGroup, serviceName: "lifecycle"),
        ])
        try await group.run()
        #expect(journal.all == ["start ingress", "told ingress", "done ingress"])
    }

    @Test func cancelWhenGracefulShutdownReturnsTheValueOrEndsAtTheShutdown() async throws {
        #expect(try await cancelWhenGracefulShutdown { 42 } == 42)
        let journal = Journal()
        struct Sleeper: Service {
            var journal: Journal
            func run() async throws {
                journal.add("start")
                do {
                    try await cancelWhenGracefulShutdown { try await Task.sleep(for: .seconds(600)) }
                } catch is CancellationError {
                    journal.add("woken")
                }
            }
        }
        let group = Self.group([.init(service: Sleeper(journal: journal), successTerminationBehavior: .ignore, serviceName: "sleeper")])
        await group.triggerGracefulShutdown()
        try await group.run()
        #expect(journal.all == ["start", "woken"])
    }
}
