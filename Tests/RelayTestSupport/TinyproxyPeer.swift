import Foundation

/// Debian's tinyproxy as a real HTTP proxy on 127.0.0.1, with basic auth, in its own mount
/// namespace so the host names it resolves are the test's. Its log names each `CONNECT`.
public final class TinyproxyPeer: Sendable {
    public let port: Int
    let directory: String
    let process: Process

    public static var binary: String { ProcessInfo.processInfo.environment["TINYPROXY"] ?? "/usr/bin/tinyproxy" }

    /// - Parameters:
    ///   - resolving: host names that resolve to 127.0.0.1 for the proxy.
    public static func start(credentials: (user: String, password: String), resolving names: [String]) async throws -> TinyproxyPeer {
        let directory = NSTemporaryDirectory() + "tinyproxy-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        let hostFiles = try IsolatedCommand.hostFiles(names: names, in: directory)
        for _ in 0..<5 {
            let port = try freeLoopbackPort()
            // No ConnectPort line: CONNECT to any port is allowed (the test servers use high ports).
            let configuration = """
                User root
                Group root
                Port \(port)
                Listen 127.0.0.1
                Timeout 30
                LogFile "\(directory)/tinyproxy.log"
                LogLevel Connect
                MaxClients 20
                Allow 127.0.0.1
                BasicAuth \(credentials.user) \(credentials.password)
                DisableViaHeader Yes
                """
            try configuration.write(toFile: directory + "/tinyproxy.conf", atomically: true, encoding: .utf8)
            let command = IsolatedCommand(
                peerLifetime[0], Array(peerLifetime.dropFirst()) + [binary, "-d", "-c", directory + "/tinyproxy.conf"], replacing: hostFiles)
            let process = Process()
            process.executableURL = URL(fileURLWithPath: command.executable)
            process.arguments = command.arguments
            process.standardOutput = FileHandle.nullDevice
            process.standardError = FileHandle.nullDevice
            try process.run()
            // Ready when it accepts connections; a lost race for the port ends the process.
            let settled: Void? = try? await eventually("tinyproxy accepting", timeout: .seconds(10)) {
                !process.isRunning || (try? RawConnection(port: port, timeoutSeconds: 1)) != nil
            }
            if settled != nil, process.isRunning { return TinyproxyPeer(port: port, directory: directory, process: process) }
            killPeer(process)
        }
        throw PeerError.failed("tinyproxy did not start: \(String(describing: try? String(contentsOfFile: directory + "/tinyproxy.log", encoding: .utf8)))")
    }

    private init(port: Int, directory: String, process: Process) {
        self.port = port
        self.directory = directory
        self.process = process
    }

    public var log: String { (try? String(contentsOfFile: directory + "/tinyproxy.log", encoding: .utf8)) ?? "" }

    /// `host:port` of each tunnel the proxy opened.
    public var tunnels: [String] {
        log.split(separator: "\n").compactMap { line in
            guard let range = line.range(of: "Established connection to host \"") else { return nil }
            let rest = line[range.upperBound...]
            return String(rest.prefix { $0 != "\"" })
        }
    }

    /// SIGKILL: a child spawned from a test thread inherits that thread's signal mask, in
    /// which SIGTERM may be blocked; nothing of the peer's needs a clean exit.
    public func stop() {
        killPeer(process)
        try? FileManager.default.removeItem(atPath: directory)
    }

    deinit { killPeer(process) }
}
