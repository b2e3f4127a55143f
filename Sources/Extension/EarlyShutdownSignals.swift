import ServiceLifecycle
import Synchronization

#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#elseif canImport(Darwin)
    import Darwin
#endif

/// SIGTERM and SIGINT that come before the service lifecycle watches for them.
///
/// On Linux, libdispatch keeps the main thread in `sigsuspend` with every signal unblocked
/// from the start of an async `main`, and installs its handler only when the lifecycle makes
/// its signal sources. A SIGTERM in between took the default action and killed the relay with
/// what it had acknowledged (a test that sent SIGTERM right after an upload failed 1 run in 13
/// with exit status 15). `install()`, first in `main`, catches such a signal in a handler
/// that only records it; `EarlyShutdownSignalReplay`, a service (services start once the
/// lifecycle's signal sources exist), sends it again, and the relay shuts down gracefully.
public enum EarlyShutdownSignals {
    /// The last signal caught early; 0: none. A lock-free atomic: safe in a signal handler.
    static let pending = Atomic<Int32>(0)

    public static func install() {
        // Initialised here, not in the handler (a lazy global's first use is not signal-safe).
        _ = pending.load(ordering: .relaxed)
        for number in [SIGTERM, SIGINT] {
            _ = signal(number) { caught in EarlyShutdownSignals.pending.store(caught, ordering: .relaxed) }
        }
    }

    /// The signal caught early, once; 0 when none was.
    static func take() -> Int32 { pending.exchange(0, ordering: .relaxed) }
}

/// Sends a signal caught before the lifecycle watched for signals again, now that it does.
struct EarlyShutdownSignalReplay: Service {
    func run() async {
        let caught = EarlyShutdownSignals.take()
        if caught != 0 { kill(getpid(), caught) }
    }
}
