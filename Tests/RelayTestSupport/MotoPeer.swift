import Foundation
import NIOConcurrencyHelpers

/// `Tests/Peers/moto_peer.py`: moto in server mode (signatures and IAM checked) plus a fake
/// Lambda container-credentials endpoint, driven by JSON commands over stdin.
public final class MotoPeer: Sendable {
    public struct Keys: Sendable {
        public var accessKeyID: String
        public var secretAccessKey: String
        public var sessionToken: String?
    }

    public let port: Int
    public let credentialsPort: Int
    /// Temporary credentials of an assumed role, as Lambda gives a function.
    public let session: Keys
    /// An IAM user's keys, served by the container-credentials endpoint.
    public let user: Keys
    public static let containerToken = "container-auth-5b7e"
    let process: Process
    let input: FileHandle
    let output: Int32
    private let lock = NIOLock()

    public var endpoint: String { "http://127.0.0.1:\(port)" }
    public var containerCredentialsURI: String { "http://127.0.0.1:\(credentialsPort)/2021-04-23/credentials" }

    public static func start() async throws -> MotoPeer {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: testPython)
        process.arguments = [ClientFixture.repositoryRoot + "/Tests/Peers/moto_peer.py", "--container-token", containerToken]
        let stdin = Pipe()
        let stdout = Pipe()
        process.standardInput = stdin
        process.standardOutput = stdout
        process.standardError = FileHandle.nullDevice
        try process.run()
        let fd = stdout.fileHandleForReading.fileDescriptor
        guard let line = await offCooperativePool({ MotoPeer.readLine(fd) }),
            let ready = try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any],
            let port = ready["port"] as? Int, let credentialsPort = ready["credentials_port"] as? Int,
            let session = ready["session"] as? [String: String], let user = ready["user"] as? [String: String]
        else {
            kill(process.processIdentifier, SIGKILL)
            throw PeerError.failed("moto did not start (is moto in the test venv? run `make venv`)")
        }
        return MotoPeer(
            process: process, input: stdin.fileHandleForWriting, output: fd, port: port, credentialsPort: credentialsPort,
            session: Keys(accessKeyID: session["key"]!, secretAccessKey: session["secret"]!, sessionToken: session["token"]),
            user: Keys(accessKeyID: user["key"]!, secretAccessKey: user["secret"]!))
    }

    private init(process: Process, input: FileHandle, output: Int32, port: Int, credentialsPort: Int, session: Keys, user: Keys) {
        self.process = process
        self.input = input
        self.output = output
        self.port = port
        self.credentialsPort = credentialsPort
        self.session = session
        self.user = user
    }

    static func readLine(_ fd: Int32) -> String? {
        var bytes: [UInt8] = []
        var byte: UInt8 = 0
        while read(fd, &byte, 1) == 1 {
            if byte == 10 { return String(decoding: bytes, as: UTF8.self) }
            bytes.append(byte)
        }
        return nil
    }

    /// Sends one command and returns moto's answer.
    @discardableResult
    public func command(_ command: [String: String]) async throws -> [String: Any] {
        let payload = try JSONSerialization.data(withJSONObject: command) + Data([10])
        let output = self.output
        let lock = self.lock
        let input = self.input
        let line = await offCooperativePool {
            lock.withLock {
                input.write(payload)
                return MotoPeer.readLine(output)
            }
        }
        guard let line, let answer = try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any] else {
            throw PeerError.failed("moto gave no answer to \(command)")
        }
        if let error = answer["error"] { throw PeerError.failed("moto: \(error)") }
        return answer
    }

    public func createSecret(name: String, value: String) async throws -> String {
        try await command(["op": "create_secret", "name": name, "value": value])["arn"] as! String
    }

    public func putSecretValue(arn: String, value: String) async throws {
        try await command(["op": "put_secret_value", "arn": arn, "value": value])
    }

    /// A SecureString parameter; returns its ARN.
    public func putParameter(name: String, value: String) async throws -> String {
        try await command(["op": "put_parameter", "name": name, "value": value])["arn"] as! String
    }

    /// The Authorization header of each request the container-credentials endpoint got.
    public func credentialRequests() async throws -> [String] {
        (try await command(["op": "credential_requests"])["authorizations"] as? [String]) ?? []
    }

    public func stop() {
        try? input.close()  // the peer exits when its stdin closes
        // SIGKILL after 5 s, should it not: a watchdog thread waits on a semaphore the exit
        // signals (no dispatch source: see RelayProcess on libdispatch's event loop).
        let pid = process.processIdentifier
        let exited = DispatchSemaphore(value: 0)
        Thread { if exited.wait(timeout: .now() + 5) == .timedOut { kill(pid, SIGKILL) } }.start()
        process.waitUntilExit()
        exited.signal()
    }

    /// Runs `body` with a started peer and stops it afterwards.
    public static func with<T>(_ body: (MotoPeer) async throws -> T) async throws -> T {
        let peer = try await start()
        defer { peer.stop() }
        return try await body(peer)
    }
}
