import NIOSSL

/// Which certificate authorities the relay trusts for HTTPS, as Go and OpenSSL decide it:
/// the system bundle (NIOSSL finds Debian's and Amazon Linux's), `SSL_CERT_FILE` instead of
/// it, and `PYROSCOPE_CA_FILE` in addition (a private CA for a self-hosted server).
public struct TrustConfiguration: Sendable, Equatable {
    /// PEM bundle added to the roots (`PYROSCOPE_CA_FILE`).
    public var additionalCAFile: String?
    /// PEM bundle used instead of the system roots (`SSL_CERT_FILE`).
    public var replacementCAFile: String?

    public init(additionalCAFile: String? = nil, replacementCAFile: String? = nil) {
        self.additionalCAFile = additionalCAFile
        self.replacementCAFile = replacementCAFile
    }

    public static let system = TrustConfiguration()

    /// nil: async-http-client's default (system roots).
    public var tlsConfiguration: TLSConfiguration? {
        guard additionalCAFile != nil || replacementCAFile != nil else { return nil }
        var tls = TLSConfiguration.makeClientConfiguration()
        if let replacementCAFile { tls.trustRoots = .file(replacementCAFile) }
        if let additionalCAFile { tls.additionalTrustRoots = [.file(additionalCAFile)] }
        return tls
    }

    /// Checks that a bundle holds at least one PEM certificate, so a wrong path is one
    /// warning at start rather than a TLS failure on every connection.
    /// - Returns: nil when usable, else why not.
    public static func problem(withBundle path: String) -> String? {
        do {
            let certificates = try NIOSSLCertificate.fromPEMFile(path)
            return certificates.isEmpty ? "it holds no PEM certificate" : nil
        } catch {
            return "it cannot be read as a PEM certificate bundle (\(error))"
        }
    }
}
