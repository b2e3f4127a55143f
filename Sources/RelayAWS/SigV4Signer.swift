import GoCompatibility

/// A request as AWS Signature Version 4 sees it.
public struct SigV4Request: Sendable {
    public var method: String
    /// The path as sent on the wire (already percent-encoded where it needs to be).
    public var path: String
    /// The query without `?`, as sent on the wire; empty for none.
    public var query: String
    /// Every header to sign, `Host` included, in any order and case; repeated names allowed.
    public var headers: [(name: String, value: String)]
    public var body: [UInt8]

    public init(method: String, path: String, query: String = "", headers: [(name: String, value: String)], body: [UInt8] = []) {
        self.method = method
        self.path = path
        self.query = query
        self.headers = headers
        self.body = body
    }
}

/// AWS Signature Version 4 (header form), written here because an SDK would cost megabytes
/// for the two calls the relay makes; its two primitives are in `SHA256.swift`. Checked against botocore in the tests and, during
/// development, against the AWS test suite (aws-c-auth `tests/aws-signing-test-suite/v4`).
public struct SigV4Signer: Sendable {
    public var credentials: AWSCredentials
    public var region: String
    public var service: String
    /// Remove `.`/`..` segments and empty segments before encoding: every service but S3.
    public var normalizePath = true
    /// Add `X-Amz-Content-SHA256` and sign it: S3 only (and the suite's `sign_body` cases).
    public var addContentSHA256Header = false
    /// Sign `X-Amz-Security-Token` (the default); false adds it after signing, as a few
    /// services (and the suite's `post-sts-header-after`) expect.
    public var signSessionToken = true

    public init(credentials: AWSCredentials, region: String, service: String) {
        self.credentials = credentials
        self.region = region
        self.service = service
    }

    /// The headers to add to the request: `X-Amz-Date`, the session token when there is
    /// one, and `Authorization`.
    /// - Parameter unixSeconds: the signing time (the request is valid for 5 minutes around it).
    public func signingHeaders(for request: SigV4Request, unixSeconds: Int64) -> [(name: String, value: String)] {
        let stamp = AWSTimestamp(unixSeconds: unixSeconds)
        var added: [(name: String, value: String)] = [("X-Amz-Date", stamp.dateTime)]
        if addContentSHA256Header { added.append(("X-Amz-Content-SHA256", Self.hexSHA256(request.body))) }
        if signSessionToken, let token = credentials.sessionToken { added.append(("X-Amz-Security-Token", token)) }
        var signed = request
        signed.headers += added
        let canonical = canonicalRequest(signed)
        let scope = "\(stamp.date)/\(region)/\(service)/aws4_request"
        let toSign = "AWS4-HMAC-SHA256\n\(stamp.dateTime)\n\(scope)\n\(Self.hexSHA256(Array(canonical.request.utf8)))"
        let signature = Self.hex(HMACSHA256.authenticationCode(for: Array(toSign.utf8), key: signingKey(date: stamp.date)))
        added.append(
            (
                "Authorization",
                "AWS4-HMAC-SHA256 Credential=\(credentials.accessKeyID)/\(scope), SignedHeaders=\(canonical.signedHeaders), Signature=\(signature)"
            ))
        if !signSessionToken, let token = credentials.sessionToken { added.append(("X-Amz-Security-Token", token)) }
        return added
    }

    /// The canonical request and the signed-headers list (exposed for tests).
    func canonicalRequest(_ request: SigV4Request) -> (request: String, signedHeaders: String) {
        var byName: [String: [String]] = [:]
        for (name, value) in request.headers {
            byName[name.lowercased(), default: []].append(Self.canonicalHeaderValue(value))
        }
        let names = byName.keys.sorted { $0.utf8.lexicographicallyPrecedes($1.utf8) }
        let headerLines = names.map { "\($0):\(byName[$0]!.joined(separator: ","))\n" }.joined()
        let signedHeaders = names.joined(separator: ";")
        let path = normalizePath ? Self.removeDotSegments(request.path) : request.path
        let text = [
            request.method, Self.uriEncode(path.isEmpty ? "/" : path, keepSlash: true), Self.canonicalQuery(request.query),
            headerLines, signedHeaders, Self.hexSHA256(request.body),
        ].joined(separator: "\n")
        return (text, signedHeaders)
    }

    func signingKey(date: String) -> [UInt8] {
        func hmac(_ key: [UInt8], _ text: String) -> [UInt8] { HMACSHA256.authenticationCode(for: Array(text.utf8), key: key) }
        let secret = Array("AWS4\(credentials.secretAccessKey)".utf8)
        return hmac(hmac(hmac(hmac(secret, date), region), service), "aws4_request")
    }

    /// Trimmed, with every run of white space (line folds included) made one space.
    static func canonicalHeaderValue(_ value: String) -> String {
        value.split(whereSeparator: { $0 == " " || $0 == "\t" || $0 == "\n" || $0 == "\r" }).joined(separator: " ")
    }

    /// Query pairs decoded, re-encoded the RFC 3986 way and sorted by name, then value.
    static func canonicalQuery(_ query: String) -> String {
        guard !query.isEmpty else { return "" }
        let pairs = query.split(separator: "&", omittingEmptySubsequences: true).map { pair -> (String, String) in
            let parts = pair.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            let name = uriEncode(percentDecoded(parts[0]), keepSlash: false)
            let value = parts.count > 1 ? uriEncode(percentDecoded(parts[1]), keepSlash: false) : ""
            return (name, value)
        }
        return pairs.sorted { a, b in
            a.0 == b.0 ? a.1.utf8.lexicographicallyPrecedes(b.1.utf8) : a.0.utf8.lexicographicallyPrecedes(b.0.utf8)
        }.map { "\($0.0)=\($0.1)" }.joined(separator: "&")
    }

    /// botocore's `remove_dot_segments`: empty and `.` segments go, `..` removes the one
    /// before; the leading slash stays, a trailing one only if something is left.
    static func removeDotSegments(_ path: String) -> String {
        guard !path.isEmpty else { return "" }
        var output: [Substring] = []
        for segment in path.split(separator: "/", omittingEmptySubsequences: true) where segment != "." {
            if segment == ".." {
                if !output.isEmpty { output.removeLast() }
            } else {
                output.append(segment)
            }
        }
        let first = path.hasPrefix("/") ? "/" : ""
        let last = path.hasSuffix("/") && !output.isEmpty ? "/" : ""
        return first + output.joined(separator: "/") + last
    }

    /// Every byte but the unreserved set (`A-Z a-z 0-9 - . _ ~`, and `/` in paths) as `%XX`.
    static func uriEncode(_ text: String, keepSlash: Bool) -> String {
        var out: [UInt8] = []
        out.reserveCapacity(text.utf8.count)
        let hexDigits = Array("0123456789ABCDEF".utf8)
        for byte in text.utf8 {
            switch byte {
            case UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "0")...UInt8(ascii: "9"),
                UInt8(ascii: "-"), UInt8(ascii: "."), UInt8(ascii: "_"), UInt8(ascii: "~"):
                out.append(byte)
            case UInt8(ascii: "/") where keepSlash:
                out.append(byte)
            default:
                out += [UInt8(ascii: "%"), hexDigits[Int(byte >> 4)], hexDigits[Int(byte & 15)]]
            }
        }
        return String(decoding: out, as: UTF8.self)
    }

    /// `%XX` decoded; anything that is not a valid escape is kept as it is.
    static func percentDecoded(_ text: Substring) -> String {
        var out: [UInt8] = []
        let bytes = Array(text.utf8)
        var index = 0
        func hexValue(_ byte: UInt8) -> UInt8? {
            switch byte {
            case UInt8(ascii: "0")...UInt8(ascii: "9"): byte - UInt8(ascii: "0")
            case UInt8(ascii: "a")...UInt8(ascii: "f"): byte - UInt8(ascii: "a") + 10
            case UInt8(ascii: "A")...UInt8(ascii: "F"): byte - UInt8(ascii: "A") + 10
            default: nil
            }
        }
        while index < bytes.count {
            if bytes[index] == UInt8(ascii: "%"), index + 2 < bytes.count, let high = hexValue(bytes[index + 1]), let low = hexValue(bytes[index + 2]) {
                out.append(high << 4 | low)
                index += 3
            } else {
                out.append(bytes[index])
                index += 1
            }
        }
        return String(decoding: out, as: UTF8.self)
    }

    static func hexSHA256(_ bytes: [UInt8]) -> String { hex(SHA256.hash(bytes)) }

    static func hex(_ bytes: [UInt8]) -> String {
        let digits = Array("0123456789abcdef".utf8)
        var out: [UInt8] = []
        out.reserveCapacity(bytes.count * 2)
        for byte in bytes { out += [digits[Int(byte >> 4)], digits[Int(byte & 15)]] }
        return String(decoding: out, as: UTF8.self)
    }
}

/// `YYYYMMDD'T'HHMMSS'Z'` and `YYYYMMDD` in UTC, as SigV4 writes them.
struct AWSTimestamp {
    var dateTime: String
    var date: String

    init(unixSeconds: Int64) {
        let days = unixSeconds >= 0 ? unixSeconds / 86400 : (unixSeconds - 86399) / 86400
        let secondOfDay = unixSeconds - days * 86400
        let (year, month, day) = GoCalendar.date(daysSinceEpoch: days)
        func two<T: BinaryInteger>(_ value: T) -> String { value < 10 ? "0\(value)" : "\(value)" }
        date = "\(year)\(two(month))\(two(day))"
        dateTime = "\(date)T\(two(secondOfDay / 3600))\(two(secondOfDay % 3600 / 60))\(two(secondOfDay % 60))Z"
    }
}
