import GoCompatibility

#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#elseif canImport(Darwin)
    import Darwin
#endif

/// Which certificate authorities the relay trusts for HTTPS, as Go and OpenSSL decide it:
/// the system bundle (NIOSSL finds Debian's and Amazon Linux's), `SSL_CERT_FILE` instead of
/// it, and `PYROSCOPE_CA_FILE` in addition (a private CA for a self-hosted server).
public struct TrustConfiguration: Sendable, Hashable {
    /// PEM bundle added to the roots (`PYROSCOPE_CA_FILE`).
    public var additionalCAFile: String?
    /// PEM bundle used instead of the system roots (`SSL_CERT_FILE`).
    public var replacementCAFile: String?

    public init(additionalCAFile: String? = nil, replacementCAFile: String? = nil) {
        self.additionalCAFile = additionalCAFile
        self.replacementCAFile = replacementCAFile
    }

    public static let system = TrustConfiguration()

    /// Checks that a bundle can be read and holds a PEM certificate, so a wrong path is one
    /// warning at start rather than a TLS failure on every connection. It looks for the PEM
    /// marker only, and reads only until it is found (at the first lines of a bundle): parsing
    /// the whole bundle (Debian's: 140 certificates) cost 10 ms of init for every cold start,
    /// and reading all of its 220 KB was 2 % of a whole life's CPU (perf). A damaged
    /// certificate is explained at the first TLS failure.
    /// - Returns: nil when usable, else why not.
    public static func problem(withBundle path: String) -> String? {
        let handle = open(path, O_RDONLY | O_CLOEXEC)
        guard handle >= 0 else { return "it cannot be read (\(String(cString: strerror(errno))))" }
        defer { close(handle) }
        let marker = Array("-----BEGIN CERTIFICATE-----".utf8)
        var window: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 16 << 10)
        while true {
            let count = chunk.withUnsafeMutableBytes { read(handle, $0.baseAddress, $0.count) }
            if count < 0 {
                if errno == EINTR { continue }
                return "it cannot be read (\(String(cString: strerror(errno))))"
            }
            if count == 0 { return "it holds no PEM certificate" }
            // What the last chunk ended with may hold the marker's first bytes.
            window = Array(window.suffix(marker.count - 1)) + chunk[..<count]
            if window.firstOccurrence(of: marker) != nil { return nil }
        }
    }
}
