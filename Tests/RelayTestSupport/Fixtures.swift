import FoundationEssentials

/// The captured client requests in `Tests/Fixtures/clients/`, copied from the team's shared
/// fixtures so a fresh clone has them (see shared/reference/pyroscope-clients.md).
public struct ClientFixture: Sendable {
    public var name: String
    public var method: String
    public var path: String
    /// Path plus query exactly as the client sent it.
    public var rawPath: String
    public var headers: [(name: String, value: String)]
    public var body: [UInt8]

    struct Sidecar: Decodable {
        var method: String
        var path: String
        var raw_path: String
        var headers: [[String]]
        var body_len: Int
    }

    /// The repository's root, found from this source file's location.
    public static var repositoryRoot: String {
        var path = #filePath
        for _ in 0..<3 { path = String(path[..<path.lastIndex(of: "/")!]) }
        return path
    }

    public static var directory: String { repositoryRoot + "/Tests/Fixtures/clients" }

    public static func load(_ name: String) throws -> ClientFixture {
        let sidecar = try JSONDecoder().decode(Sidecar.self, from: Data(try readFile(directory + "/" + name + ".json")))
        let body = try readFile(directory + "/" + name + ".bin")
        precondition(body.count == sidecar.body_len, "fixture \(name) body length mismatch")
        return ClientFixture(
            name: name, method: sidecar.method, path: sidecar.path, rawPath: sidecar.raw_path,
            headers: sidecar.headers.map { ($0[0], $0[1]) }, body: body)
    }

    public static let all = [
        "pyroscope-io-0.8.16-ingest-legacy",
        "pyroscope-io-1.4.0-push-periodic",
        "pyroscope-io-1.4.0-push-exit-flush",
        "pyroscope-io-1.4.0-push-all-auth",
    ]

    /// The request as raw HTTP/1.1 bytes, headers in their captured order.
    public var rawRequest: [UInt8] {
        var head = "\(method) \(rawPath) HTTP/1.1\r\n"
        for (name, value) in headers { head += "\(name): \(value)\r\n" }
        head += "\r\n"
        return Array(head.utf8) + body
    }
}

public func readFile(_ path: String) throws -> [UInt8] {
    guard let data = FileManager.default.contents(atPath: path) else {
        throw FixtureError.unreadable(path)
    }
    return Array(data)
}

public enum FixtureError: Error, CustomStringConvertible {
    case unreadable(String)
    public var description: String {
        switch self {
        case .unreadable(let path): "cannot read \(path)"
        }
    }
}
