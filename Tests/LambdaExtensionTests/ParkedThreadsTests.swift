import RelayTestSupport
import Synchronization
import Testing

@testable import LambdaExtension

#if canImport(Glibc)
    import Glibc
#endif

/// The threads Lambda's API calls block on: one call after another reuses one thread, calls
/// at once each get one, and no more than the bound stay parked.
@Suite struct ParkedThreadsTests {
    /// The kernel's id of the calling thread, from /proc/thread-self ("PID/task/TID").
    static func currentThreadID() -> Int32 {
        var buffer = [CChar](repeating: 0, count: 64)
        let length = readlink("/proc/thread-self", &buffer, buffer.count - 1)
        guard length > 0 else { return -1 }
        let text = String(decoding: buffer[..<length].map { UInt8(bitPattern: $0) }, as: UTF8.self)
        return Int32(text.split(separator: "/").last ?? "") ?? -1
    }

    /// Runs `work` on `threads` and returns the kernel's id of the thread it ran on.
    static func threadID(on threads: ParkedThreads, _ work: @escaping @Sendable () -> Void = {}) async -> Int32 {
        await withCheckedContinuation { (continuation: CheckedContinuation<Int32, Never>) in
            let failed = threads.run(
                { () -> Int32 in
                    work()
                    return currentThreadID()
                }, then: { continuation.resume(returning: $0) })
            #expect(failed == 0)
        }
    }

    @Test func callsOneAfterAnotherRunOnOneThread() async {
        let threads = ParkedThreads(maxParked: 1)
        let first = await Self.threadID(on: threads)
        // The thread counts as parked before the result is delivered: the next call finds it.
        for _ in 0..<5 {
            #expect(await Self.threadID(on: threads) == first)
        }
    }

    @Test func callsAtOnceEachGetAThreadAndOnlyTheBoundStaysParked() async throws {
        let threads = ParkedThreads(maxParked: 1)
        // Three calls held until all three run (bounded: calls made to share a thread would
        // wait for each other, and must fail here, not hang): they cannot share a thread.
        final class Running: Sendable {
            let count = Atomic<Int>(0)
            let allRan = Atomic<Int>(0)
        }
        let running = Running()
        let ids = await withTaskGroup(of: Int32.self, returning: Set<Int32>.self) { group in
            for _ in 0..<3 {
                group.addTask {
                    await Self.threadID(on: threads) {
                        running.count.add(1, ordering: .relaxed)
                        let deadline = ContinuousClock.now + .seconds(10)
                        // A blocking thread of the pool under test: it can only poll.
                        while running.count.load(ordering: .relaxed) < 3, ContinuousClock.now < deadline { usleep(1000) }
                        if running.count.load(ordering: .relaxed) >= 3 { running.allRan.add(1, ordering: .relaxed) }
                    }
                }
            }
            return await group.reduce(into: []) { $0.insert($1) }
        }
        #expect(running.allRan.load(ordering: .relaxed) == 3, "the three calls ran at once")
        #expect(ids.count == 3)
        // One of them stayed parked and takes the next call; the other two ended.
        let next = await Self.threadID(on: threads)
        #expect(ids.contains(next))
        // The two end once they have delivered: awaited, as their exit follows the delivery.
        try await eventually("two of the three threads ended, one parked") {
            ids.filter { access("/proc/self/task/\($0)", F_OK) == 0 }.count == 1
        }
    }
}
