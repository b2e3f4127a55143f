import NIOSSL
import Synchronization

/// One TLS client context per trust setting for the process, made at its first use.
///
/// Making a context with the system roots parses the whole bundle (Debian's: about 140
/// certificates, about 5 ms of CPU: `shared/reference/cost-floor.md`). Nothing needs it
/// before the first HTTPS connection, which comes after registration, so it is not made at
/// start; the upstream, AWS and any later client share it.
final class TLSContextCache: Sendable {
    static let shared = TLSContextCache()

    private let contexts = Mutex<[TrustConfiguration: NIOSSLContext]>([:])

    /// Throws NIOSSL's error for a bundle that cannot be loaded (the cause is `tls`).
    func context(for trust: TrustConfiguration) throws -> NIOSSLContext {
        if let made = contexts.withLock({ $0[trust] }) { return made }
        // Made outside the lock: two first connections may both make one; one is kept.
        var configuration = TLSConfiguration.makeClientConfiguration()
        if let file = trust.replacementCAFile { configuration.trustRoots = .file(file) }
        if let file = trust.additionalCAFile { configuration.additionalTrustRoots = [.file(file)] }
        configuration.applicationProtocols = ["http/1.1"]
        let context = try NIOSSLContext(configuration: configuration)
        return contexts.withLock { contexts in
            if let made = contexts[trust] { return made }
            contexts[trust] = context
            return context
        }
    }
}
