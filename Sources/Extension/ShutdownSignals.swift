import Synchronization

#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#elseif canImport(Darwin)
    import Darwin
#endif

/// SIGTERM and SIGINT, from the first line of `main` to the exit: each asks the relay to shut
/// down gracefully (dev mode's Ctrl-C, a SIGTERM from a supervisor or a test).
///
/// `install()` puts in a handler that only records the signal and writes a byte to a pipe
/// (both async-signal-safe). The first `onSignal` hands over a signal that came earlier and
/// starts a thread that waits on the pipe and hands each later one over at once: made then,
/// after `/register`, the thread is not among what Lambda's init waits for. Two things
/// decided it:
/// - On Linux, libdispatch keeps the main thread of an async `main` in `sigsuspend` with
///   every signal unblocked, so a signal must have a handler from the start or it kills the
///   relay with what it acknowledged (a test that sent SIGTERM right after an upload failed 1
///   run in 13 before there was one).
/// - The service lifecycle's own signal watching (`UnixSignalsSequence`, dispatch signal
///   sources) cost 0.3 M instructions and a dispatch thread in every cold start's init
///   (callgrind); this is a pipe and a thread that sleeps in `read`.
public enum ShutdownSignals {
    /// The last signal caught and not yet handed over; 0: none. Lock-free: safe in a handler.
    static let caught = Atomic<Int32>(0)
    /// The pipe's write end, for the handler; -1 before `install()`.
    static let wakeUp = Atomic<Int32>(-1)
    /// The pipe's read end until the first `onSignal` takes it for its thread; -1 after.
    private static let readEnd = Atomic<Int32>(-1)
    private static let receiver = Mutex<(@Sendable (Int32) -> Void)?>(nil)

    /// First in `main`: from here on SIGTERM and SIGINT are recorded, never the default action.
    public static func install() {
        var ends: [Int32] = [-1, -1]
        guard pipe(&ends) == 0 else {
            // No pipe (no descriptors left): the signals are still recorded, and handed over
            // when `onSignal` is called.
            installHandlers()
            return
        }
        for end in ends { _ = fcntl(end, F_SETFD, FD_CLOEXEC) }
        wakeUp.store(ends[1], ordering: .relaxed)
        readEnd.store(ends[0], ordering: .relaxed)
        installHandlers()
    }

    /// Calls `action` with each signal from now on, and with one caught before, if any.
    public static func onSignal(_ action: @escaping @Sendable (Int32) -> Void) {
        receiver.withLock { $0 = action }
        handOver()
        let descriptor = readEnd.exchange(-1, ordering: .relaxed)
        guard descriptor >= 0 else { return }
        // Bytes written before now are read at once; their signal was handed over above (the
        // hand-over finds nothing left). Without a thread, a later signal is handed over at
        // the next `onSignal`.
        _ = runOnThread {
            var byte: UInt8 = 0
            while true {
                let count = read(descriptor, &byte, 1)
                if count < 0, errno == EINTR { continue }
                if count <= 0 { return }
                ShutdownSignals.handOver()
            }
        }
    }

    private static func installHandlers() {
        _ = caught.load(ordering: .relaxed)  // made here: a lazy global's first use is not signal-safe
        _ = wakeUp.load(ordering: .relaxed)
        for number in [SIGTERM, SIGINT] {
            _ = signal(number) { number in
                ShutdownSignals.caught.store(number, ordering: .relaxed)
                var byte: UInt8 = 1
                let descriptor = ShutdownSignals.wakeUp.load(ordering: .relaxed)
                if descriptor >= 0 { _ = write(descriptor, &byte, 1) }
            }
        }
    }

    private static func handOver() {
        guard let action = receiver.withLock({ $0 }) else { return }
        let number = caught.exchange(0, ordering: .relaxed)
        if number != 0 { action(number) }
    }
}
