import Foundation

/// A certificate authority and a server certificate made at test time with the openssl CLI
/// (never committed): the CA's PEM, the server's certificate chain and key.
public struct TestPKI: Sendable {
    public let directory: String
    public var caFile: String { directory + "/ca.pem" }
    public var certificateFile: String { directory + "/server.pem" }
    public var keyFile: String { directory + "/server.key" }

    /// - Parameter names: the server certificate's subject alternative names, e.g.
    ///   `["IP:127.0.0.1", "DNS:pyroscope.test"]`.
    public static func make(names: [String] = ["IP:127.0.0.1", "DNS:localhost"]) async throws -> TestPKI {
        let directory = NSTemporaryDirectory() + "pki-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        let pki = TestPKI(directory: directory)
        let extensions = directory + "/server.ext"
        try
            "subjectAltName=\(names.joined(separator: ","))\nbasicConstraints=CA:FALSE\nkeyUsage=digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\n"
            .write(toFile: extensions, atomically: true, encoding: .utf8)
        let steps: [[String]] = [
            [
                "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-days", "2", "-subj", "/CN=Relay Test CA",
                "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign",
                "-keyout", directory + "/ca.key", "-out", pki.caFile,
            ],
            [
                "req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-subj", "/CN=relay-test-server",
                "-keyout", pki.keyFile, "-out", directory + "/server.csr",
            ],
            [
                "x509", "-req", "-in", directory + "/server.csr", "-CA", pki.caFile, "-CAkey", directory + "/ca.key", "-CAcreateserial",
                "-days", "2", "-extfile", extensions, "-out", pki.certificateFile,
            ],
        ]
        for arguments in steps {
            let run = try await runProgram("/usr/bin/openssl", arguments)
            guard run.status == 0 else { throw PeerError.failed("openssl \(arguments[0]): \(run.output)") }
        }
        return pki
    }

    public func remove() { try? FileManager.default.removeItem(atPath: directory) }
}

public enum PeerError: Error, CustomStringConvertible {
    case failed(String)
    public var description: String {
        switch self {
        case .failed(let why): why
        }
    }
}

/// How long a peer server may live: it runs under `timeout`, so one left behind by a test
/// process that crashed (no `defer` ran) still stops by itself.
public let peerLifetime = ["/usr/bin/timeout", "-s", "KILL", "600"]

/// Kills a peer started under `timeout` and its child.
public func killPeer(_ process: Process) {
    guard process.isRunning else { return }
    let pid = process.processIdentifier
    let children = Process()
    children.executableURL = URL(fileURLWithPath: "/usr/bin/pkill")
    children.arguments = ["-KILL", "-P", String(pid)]
    try? children.run()
    children.waitUntilExit()
    kill(pid, SIGKILL)
    process.waitUntilExit()
}

/// A port that was free a moment ago, for peers that cannot bind port 0 and say which
/// port they got (nginx, tinyproxy).
public func freeLoopbackPort() throws -> Int {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    defer { close(fd) }
    var address = sockaddr_in()
    address.sin_family = sa_family_t(AF_INET)
    address.sin_addr.s_addr = inet_addr("127.0.0.1")
    address.sin_port = 0
    var length = socklen_t(MemoryLayout<sockaddr_in>.size)
    let bound = withUnsafeMutablePointer(to: &address) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, length) == 0 && getsockname(fd, $0, &length) == 0 }
    }
    guard bound else { throw PeerError.failed("no free port") }
    return Int(UInt16(bigEndian: address.sin_port))
}

/// A command run in a private mount namespace (`unshare -m`, needs root) where some files
/// are replaced, e.g. `/etc/hosts` and `/etc/resolv.conf`, so a test decides what host
/// names resolve to without touching the machine.
public struct IsolatedCommand: Sendable {
    public var executable = "/usr/bin/unshare"
    public var arguments: [String]

    /// - Parameter replacing: target path → file (or directory) bind-mounted over it.
    public init(_ command: String, _ commandArguments: [String] = [], replacing: [(target: String, source: String)]) {
        let mounts = replacing.map { "mount --bind '\($0.source)' '\($0.target)'" }.joined(separator: " && ")
        arguments = ["-m", "/bin/sh", "-c", "\(mounts) && exec \"$@\"", "sh", command] + commandArguments
    }

    /// Files that make `names` resolve to 127.0.0.1 and every other name fail at once,
    /// without a DNS query leaving loopback (the resolver is 127.0.0.1, where nothing listens).
    public static func hostFiles(names: [String], in directory: String) throws -> [(target: String, source: String)] {
        let hosts = directory + "/hosts"
        let resolv = directory + "/resolv.conf"
        try (["127.0.0.1 localhost"] + names.map { "127.0.0.1 \($0)" }).joined(separator: "\n").appending("\n")
            .write(toFile: hosts, atomically: true, encoding: .utf8)
        try "nameserver 127.0.0.1\noptions timeout:1 attempts:1\n".write(toFile: resolv, atomically: true, encoding: .utf8)
        return [("/etc/hosts", hosts), ("/etc/resolv.conf", resolv)]
    }
}
