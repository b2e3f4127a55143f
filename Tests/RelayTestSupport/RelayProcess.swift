import Foundation
import NIOConcurrencyHelpers

/// The built `pyroscope-lambda-extension` binary, run as a child process for tests.
/// Collects its stderr lines and finds the port it bound from its "Relay listening" line.
public final class RelayProcess: Sendable {
    public let process: Process
    /// A spool folder of its own when the test named none (removed at the end): relays
    /// sharing the default folder would replay each other's journals.
    private let ownSpool: String?
    /// The lines read so far, and whether the output ended (the process is gone).
    private let lines = Watched(Output())
    private let partial = NIOLockedValueBox<[UInt8]>([])

    /// `RELAY_BINARY` (set by `make test`) or the debug build in this checkout.
    public static var binaryPath: String {
        ProcessInfo.processInfo.environment["RELAY_BINARY"] ?? ClientFixture.repositoryRoot + "/.build/debug/pyroscope-lambda-extension"
    }

    /// A binary built next to the relay's, e.g. a test peer's executable target.
    public static func siblingBinary(_ name: String) -> String {
        String(binaryPath[..<(binaryPath.lastIndex(of: "/") ?? binaryPath.startIndex)]) + "/" + name
    }

    /// - Parameter user: run as this unprivileged user, as Lambda runs extensions (nil: as
    ///   the test runs). Needs root to switch to; see `LambdaUser`.
    public init(
        environment: [String: String], executable: String = RelayProcess.binaryPath, arguments: [String] = [], user: LambdaUser? = nil
    ) throws {
        process = Process()
        if let user {
            let (launcher, prefix) = try user.launcher()
            process.executableURL = URL(fileURLWithPath: launcher)
            process.arguments = prefix + [executable] + arguments
        } else {
            process.executableURL = URL(fileURLWithPath: executable)
            process.arguments = arguments
        }
        var env = ["PATH": "/usr/bin:/bin"]
        env.merge(environment) { $1 }
        if env["PYROSCOPE_SPOOL_DIR"] == nil {
            let folder = NSTemporaryDirectory() + "relay-process-spool-\(UUID().uuidString)"
            env["PYROSCOPE_SPOOL_DIR"] = folder
            ownSpool = folder
        } else {
            ownSpool = nil
        }
        process.environment = env
        let pipe = Pipe()
        process.standardError = pipe
        process.standardOutput = pipe
        try process.run()
        // A thread of its own reads the output with blocking read(2) until the child closes
        // it. Not `readabilityHandler`: with many child processes at once (the whole suite)
        // libdispatch's event loop crashed the test process (swift-corelibs-foundation
        // issue 3276; seen here as `_dispatch_event_loop_drain`, signal 11).
        let lines = self.lines
        let partial = self.partial
        let reader = Thread {
            let descriptor = pipe.fileHandleForReading.fileDescriptor
            var chunk = [UInt8](repeating: 0, count: 16 << 10)
            while true {
                let count = chunk.withUnsafeMutableBytes { read(descriptor, $0.baseAddress, $0.count) }
                if count < 0, errno == EINTR { continue }
                guard count > 0 else { break }
                partial.withLockedValue { buffer in
                    buffer.append(contentsOf: chunk[..<count])
                    while let newline = buffer.firstIndex(of: 10) {
                        let line = String(decoding: buffer[..<newline], as: UTF8.self)
                        buffer.removeFirst(newline + 1)
                        lines.withLock { $0.lines.append(line) }
                    }
                }
            }
            lines.withLock { $0.ended = true }
            // The pipe (captured above) lives until here: its descriptor is not closed under
            // the read.
            withExtendedLifetime(pipe) {}
        }
        reader.start()
    }

    private struct Output: Sendable {
        var lines: [String] = []
        var ended = false
    }

    public var output: [String] { lines.value.lines }

    /// Awaits a line matching `predicate` (bounded), returning it; nil when the output ends
    /// or `timeout` passes without one.
    public func waitForLine(timeout: Duration = .seconds(20), _ predicate: @escaping @Sendable (String) -> Bool) async -> String? {
        await waitForLines(1, timeout: timeout, predicate).first
    }

    /// Awaits `count` lines matching `predicate` (bounded), returning those there are then:
    /// for checking that no further line comes, it returns as soon as one does.
    @discardableResult
    public func waitForLines(_ count: Int, timeout: Duration = .seconds(20), _ predicate: @escaping @Sendable (String) -> Bool) async -> [String] {
        _ = await lines.becomes(within: timeout) { $0.ended || $0.lines.lazy.filter(predicate).count >= count }
        return output.filter(predicate)
    }

    /// The first port in the "Relay listening" line.
    public func listeningPort() async -> Int? {
        guard let line = await waitForLine({ $0.contains("Relay listening") }),
            let range = line.firstRange(of: "127.0.0.1:")
        else { return nil }
        return Int(line[range.upperBound...].prefix { $0.isNumber })
    }

    public func signal(_ signal: Int32) { kill(process.processIdentifier, signal) }

    /// The names of the process's threads now (/proc/PID/task/*/comm).
    public var threadNames: [String] {
        let tasks = "/proc/\(process.processIdentifier)/task"
        return ((try? FileManager.default.contentsOfDirectory(atPath: tasks)) ?? []).compactMap { task in
            (try? String(contentsOfFile: "\(tasks)/\(task)/comm", encoding: .utf8))?.trimmingCharacters(in: .whitespacesAndNewlines)
        }
    }

    /// Waits for exit (bounded; SIGKILL past the bound) and returns the exit status.
    public func waitForExit(timeout: Duration = .seconds(30)) async -> Int32 {
        if await !RelayTestSupport.waitForExit(of: process, timeout: timeout) {
            kill(process.processIdentifier, SIGKILL)
            process.waitUntilExit()
        }
        // The last lines: read once the output ends (bounded, for a child that kept it open).
        _ = await lines.becomes(within: .seconds(2)) { $0.ended }
        return process.terminationStatus
    }

    deinit {
        if process.isRunning { kill(process.processIdentifier, SIGKILL) }
        if let ownSpool { try? FileManager.default.removeItem(atPath: ownSpool) }
    }
}

/// Waits until `process` has exited: true, or false once `timeout` passed first. Every
/// wait for a child process's exit goes through here (`Process` announces its exit only to
/// a handler set before it runs).
public func waitForExit(of process: Process, timeout: Duration) async -> Bool {
    (try? await eventually("exit of \(process.executableURL?.lastPathComponent ?? "a process")", timeout: timeout) { !process.isRunning }) != nil
}

/// Runs a program with `input` on stdin; returns exit status and combined output.
public func runProgram(_ path: String, _ arguments: [String], input: [UInt8] = []) async throws -> (status: Int32, output: String) {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: path)
    process.arguments = arguments
    let stdin = Pipe()
    let output = Pipe()
    process.standardInput = stdin
    process.standardOutput = output
    process.standardError = output
    try process.run()
    // Writing blocks until the child reads (a pipe holds 64 KB) and waiting blocks until it
    // exits: both off Swift's cooperative pool (two threads here), which the relays the
    // tests run in-process need. The input is written from a thread of its own while the
    // output is read, so neither side waits on a full pipe.
    let writer = stdin.fileHandleForWriting
    let data = Data(input)
    Thread.detachNewThread {
        writer.write(data)
        try? writer.close()
    }
    let text = await offCooperativePool { () -> String in
        let text = String(decoding: output.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        return text
    }
    return (process.terminationStatus, text)
}

/// The Python with the test peers installed (`make test` sets it; .venv otherwise).
public var testPython: String {
    ProcessInfo.processInfo.environment["PYROSCOPE_TEST_PYTHON"] ?? ClientFixture.repositoryRoot + "/.venv/bin/python"
}
