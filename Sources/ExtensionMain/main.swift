import CGlibc
import LambdaExtension
import Logging
import NIOCore
import NIOPosix
import RelayCore
import RelayLogging

#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#elseif canImport(Darwin)
    import Darwin
#endif

/// The only place the process environment is read. Split at the `=` byte, as bytes: finding
/// it as a Character (grapheme breaking over every variable) was 7.5% of the instructions
/// before `POST /register` with a large environment (callgrind).
func processEnvironment() -> [String: String] {
    var environment: [String: String] = [:]
    var count = 0
    while environ[count] != nil { count += 1 }
    // Sized once: growing it rehashed every variable seven times (0.2 M instructions).
    environment.reserveCapacity(count)
    var pointer = environ
    while let entry = pointer.pointee {
        let length = strlen(entry)
        entry.withMemoryRebound(to: UInt8.self, capacity: length) { bytes in
            let text = UnsafeBufferPointer(start: bytes, count: length)
            if let equals = text.firstIndex(of: UInt8(ascii: "=")) {
                environment[String(decoding: text[..<equals], as: UTF8.self)] = String(decoding: text[(equals + 1)...], as: UTF8.self)
            }
        }
        pointer += 1
    }
    return environment
}

// Before anything else: a SIGTERM or SIGINT from now on asks for a graceful shutdown (see
// ShutdownSignals), never the default action that kills the process.
ShutdownSignals.install()

// The layer's binary is statically linked: host names are looked up with glibc's own
// /etc/hosts and DNS resolvers, never with an NSS module of the runtime image's glibc.
_ = cglibc_use_builtin_host_lookup()

let settings = ExtensionSettings(environment: processEnvironment())
// Before anything uses SwiftNIO: as many threads as the function's CPU share can run.
if let threads = settings.threads {
    NIOSingletons.groupLoopCountSuggestion = threads
    NIOSingletons.blockingPoolThreadCountSuggestion = threads
}
let logConfiguration = settings.log
let invocation = InvocationContext()
LoggingSystem.bootstrap(
    { label, provider in
        LogrusLogHandler(label: label, configuration: logConfiguration, metadataProvider: provider)
    }, metadataProvider: invocation.metadataProvider)
var logger = Logger(label: "pyroscope-lambda-extension")
logger[metadataKey: LogKey.svc] = "pyroscope-lambda-ext-main"

// Settings problems go through the configured handler (the Go version printed them in
// default text before configuring logging).
for warning in settings.warnings { logger.warning("\(warning.description)") }
for note in settings.notes { logger.debug("\(note)") }
for error in settings.errors { logger.error("\(error.message)", metadata: [LogKey.errorCode: "\(error.code)"]) }

/// Lambda requires the executable's file name as the extension's name. From the kernel's
/// auxiliary vector: Swift's `CommandLine.arguments` comes from /proc/self/cmdline, which
/// is empty where /proc is not mounted.
func executableFileName() -> String {
    if let path = cglibc_executable_path(), let name = String(cString: path).split(separator: "/").last {
        return String(name)
    }
    return CommandLine.arguments.first.flatMap { $0.split(separator: "/").last.map(String.init) } ?? "pyroscope-lambda-extension"
}

/// Runs the relay and ends the process on the thread it finished on. Returning to the top-level
/// code would first hop to the main actor, whose queue (the main thread waits in
/// `dispatch_main`) starts a thread of its own only to call `exit`.
nonisolated func runThenExit(_ application: RelayApplication) async -> Never {
    exit(await application.run())
}

let executableName = executableFileName()
await runThenExit(RelayApplication(settings: settings, logger: logger, extensionName: executableName, invocation: invocation))
