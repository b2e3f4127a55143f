import Foundation

/// nginx from Debian as a real TLS server in front of a `RecordingRemote`: HTTPS with basic
/// auth, HTTP/1.1 or HTTP/2, its access log telling the protocol and the user of each request.
public final class NginxPeer: Sendable {
    public let port: Int
    let directory: String
    let process: Process

    public static var binary: String { ProcessInfo.processInfo.environment["NGINX"] ?? "/usr/sbin/nginx" }

    /// - Parameters:
    ///   - basicAuth: user and password nginx requires.
    public static func start(pki: TestPKI, forwardingTo upstreamPort: Int, http2: Bool, basicAuth: (user: String, password: String)) async throws
        -> NginxPeer
    {
        let directory = NSTemporaryDirectory() + "nginx-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        try "\(basicAuth.user):{PLAIN}\(basicAuth.password)\n".write(toFile: directory + "/htpasswd", atomically: true, encoding: .utf8)
        for attempt in 0..<5 {
            let port = try freeLoopbackPort()
            let configuration = """
                daemon off;
                master_process off;
                pid \(directory)/nginx.pid;
                error_log \(directory)/error.log warn;
                events { worker_connections 64; }
                http {
                    log_format relay '$server_protocol $remote_user "$request" $status';
                    access_log \(directory)/access.log relay;
                    client_body_temp_path \(directory)/body;
                    proxy_temp_path \(directory)/proxy;
                    fastcgi_temp_path \(directory)/fastcgi;
                    uwsgi_temp_path \(directory)/uwsgi;
                    scgi_temp_path \(directory)/scgi;
                    server {
                        listen 127.0.0.1:\(port) ssl\(http2 ? " http2" : "");
                        ssl_certificate \(pki.certificateFile);
                        ssl_certificate_key \(pki.keyFile);
                        auth_basic "pyroscope";
                        auth_basic_user_file \(directory)/htpasswd;
                        client_max_body_size 16m;
                        location / {
                            proxy_pass http://127.0.0.1:\(upstreamPort);
                            proxy_http_version 1.1;
                        }
                    }
                }
                """
            try configuration.write(toFile: directory + "/nginx.conf", atomically: true, encoding: .utf8)
            let process = Process()
            process.executableURL = URL(fileURLWithPath: peerLifetime[0])
            process.arguments = Array(peerLifetime.dropFirst()) + [binary, "-p", directory, "-c", directory + "/nginx.conf", "-e", directory + "/error.log"]
            process.standardOutput = FileHandle.nullDevice
            process.standardError = FileHandle.nullDevice
            try process.run()
            // Ready when it accepts connections; a lost race for the port ends the process.
            let settled: Void? = try? await eventually("nginx accepting", timeout: .seconds(10)) {
                !process.isRunning || (try? RawConnection(port: port, timeoutSeconds: 1)) != nil
            }
            if settled != nil, process.isRunning { return NginxPeer(port: port, directory: directory, process: process) }
            killPeer(process)
            if attempt == 4 {
                let log = (try? String(contentsOfFile: directory + "/error.log", encoding: .utf8)) ?? ""
                throw PeerError.failed("nginx did not start: \(log)")
            }
        }
        throw PeerError.failed("nginx did not start")
    }

    private init(port: Int, directory: String, process: Process) {
        self.port = port
        self.directory = directory
        self.process = process
    }

    /// Access log lines: `PROTOCOL USER "REQUEST" STATUS`.
    public var accessLog: [String] {
        ((try? String(contentsOfFile: directory + "/access.log", encoding: .utf8)) ?? "").split(separator: "\n").map(String.init)
    }

    /// SIGKILL: a child spawned from a test thread inherits that thread's signal mask, in
    /// which SIGTERM may be blocked; nothing of the peer's needs a clean exit.
    public func stop() {
        killPeer(process)
        try? FileManager.default.removeItem(atPath: directory)
    }

    deinit { killPeer(process) }
}
