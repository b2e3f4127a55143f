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
    /// marker only: parsing the whole bundle (Debian's: 140 certificates) cost 10 ms of init
    /// for every cold start; a damaged certificate is explained at the first TLS failure.
    /// - Returns: nil when usable, else why not.
    public static func problem(withBundle path: String) -> String? {
        switch SpoolFiles.readWhole(path) {
        case .failure(let failure): return "it cannot be read (\(String(cString: strerror(failure.errno))))"
        case .success(let bytes):
            return bytes.firstOccurrence(of: Array("-----BEGIN CERTIFICATE-----".utf8)) == nil ? "it holds no PEM certificate" : nil
        }
    }
}
