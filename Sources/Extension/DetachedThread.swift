#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#elseif canImport(Darwin)
    import Darwin
#endif

/// Runs `body` on a new detached thread of its own (blocking work that must not hold a thread
/// of Swift's cooperative pool); the error number when none could be made. The thread has the
/// default stack (virtual: only the pages it touches are memory); a 256 KiB one could not be
/// made under qemu-aarch64.
func runOnThread(_ body: @escaping @Sendable () -> Void) -> Int32 {
    final class Box: Sendable {
        let body: @Sendable () -> Void
        init(_ body: @escaping @Sendable () -> Void) { self.body = body }
    }
    let box = Unmanaged.passRetained(Box(body)).toOpaque()
    var thread = pthread_t()
    let created = pthread_create(
        &thread, nil,
        { argument in
            let box = Unmanaged<Box>.fromOpaque(argument!).takeRetainedValue()
            box.body()
            return nil
        }, box)
    if created == 0 {
        pthread_detach(thread)
    } else {
        Unmanaged<Box>.fromOpaque(box).release()
    }
    return created
}

/// Threads for blocking calls that come one after another (Lambda's API: `/register`, then a
/// `/event/next` per event), kept parked between calls instead of made for each: a thread
/// made and ended costs a stack mapping, a malloc arena and, at its end, a TLB shootdown on
/// every CPU. At most `maxParked` wait; more calls at once get threads of their own.
final class ParkedThreads: @unchecked Sendable {
    // @unchecked: `jobs` and `parked` are read and written with `lock` held only.
    private let lock = UnsafeMutablePointer<pthread_mutex_t>.allocate(capacity: 1)
    private let wake = UnsafeMutablePointer<pthread_cond_t>.allocate(capacity: 1)
    /// Each job returns what delivers its result, called once its thread counts as parked.
    private typealias Job = @Sendable () -> @Sendable () -> Void
    private var jobs: [Job] = []
    private var parked = 0
    private let maxParked: Int

    init(maxParked: Int = 2) {
        self.maxParked = maxParked
        pthread_mutex_init(lock, nil)
        pthread_cond_init(wake, nil)
    }

    /// Runs `work` on a parked thread, or on a new one, then `deliver` with its result; the
    /// error number when no thread could be made. The thread counts as parked before
    /// `deliver` runs, so a call that `deliver` leads to (the next `/event/next`) finds it.
    func run<Result: Sendable>(_ work: @escaping @Sendable () -> Result, then deliver: @escaping @Sendable (Result) -> Void) -> Int32 {
        let job: Job = {
            let result = work()
            return { deliver(result) }
        }
        pthread_mutex_lock(lock)
        if parked > jobs.count {
            jobs.append(job)
            pthread_cond_signal(wake)
            pthread_mutex_unlock(lock)
            return 0
        }
        pthread_mutex_unlock(lock)
        return runOnThread { [self] in serve(first: job) }
    }

    private func serve(first: @escaping Job) {
        var job = first
        while true {
            let deliver = job()
            pthread_mutex_lock(lock)
            let parks = parked < maxParked
            if parks { parked += 1 }
            pthread_mutex_unlock(lock)
            deliver()
            guard parks else { return }
            pthread_mutex_lock(lock)
            while jobs.isEmpty { pthread_cond_wait(wake, lock) }
            job = jobs.removeFirst()
            parked -= 1
            pthread_mutex_unlock(lock)
        }
    }
}
