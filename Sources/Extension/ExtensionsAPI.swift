import AsyncHTTPClient
import FoundationEssentials
import NIOCore
import NIOHTTP1
import Synchronization

/// An error in the Lambda lifecycle, with the `Extension.*` type Lambda records for it.
public struct ExtensionError: Error, CustomStringConvertible, Sendable, Equatable {
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        /// The `Category.Reason` sent as `Lambda-Extension-Function-Error-Type`.
        public let functionErrorType: String
        public var description: String { functionErrorType }

        public static let registrationFailed = Code(functionErrorType: "Extension.RegistrationFailed")
        public static let portInUse = Code(functionErrorType: "Extension.PortInUse")
        public static let telemetrySubscriptionFailed = Code(functionErrorType: "Extension.TelemetrySubscriptionFailed")
        public static let unexpectedEvent = Code(functionErrorType: "Extension.UnexpectedEvent")
        public static let apiUnavailable = Code(functionErrorType: "Extension.APIUnavailable")
    }

    public var code: Code
    public var message: String

    public init(_ code: Code, _ message: String) {
        self.code = code
        self.message = message
    }

    public var description: String { "\(code): \(message)" }
}

/// What `/register` answered.
public struct Registration: Sendable, Equatable, Decodable {
    public var functionName: String
    public var functionVersion: String
    public var handler: String?
    public var accountId: String?
}

public struct InvokeEvent: Sendable, Equatable, Decodable {
    public var requestId: String
    /// Unix milliseconds.
    public var deadlineMs: Int64
    public var invokedFunctionArn: String?
}

public struct ShutdownEvent: Sendable, Equatable, Decodable {
    /// spindown, timeout or failure (case varies between sources).
    public var shutdownReason: String
    public var deadlineMs: Int64
}

public enum ExtensionEvent: Sendable, Equatable {
    case invoke(InvokeEvent)
    case shutdown(ShutdownEvent)

    /// Decodes an `/event/next` body; an unknown type or a body without the fields
    /// is an `unexpectedEvent` error rather than a crash.
    public static func decode(_ bytes: [UInt8]) throws(ExtensionError) -> ExtensionEvent {
        struct Envelope: Decodable { var eventType: String }
        let data = Data(bytes)
        let decoder = JSONDecoder()
        let type: String
        do { type = try decoder.decode(Envelope.self, from: data).eventType } catch {
            throw ExtensionError(.unexpectedEvent, "event without an eventType: \(String(decoding: bytes.prefix(200), as: UTF8.self))")
        }
        do {
            switch type.uppercased() {
            case "INVOKE": return .invoke(try decoder.decode(InvokeEvent.self, from: data))
            case "SHUTDOWN": return .shutdown(try decoder.decode(ShutdownEvent.self, from: data))
            default: throw ExtensionError(.unexpectedEvent, "unknown eventType '\(type)'")
            }
        } catch let error as ExtensionError {
            throw error
        } catch {
            throw ExtensionError(.unexpectedEvent, "\(type) event missing fields: \(error)")
        }
    }
}

/// The Lambda Extensions API (and the Telemetry API subscription), the network boundary
/// of the lifecycle; tests use an in-memory implementation.
public protocol ExtensionsAPIClient: Sendable {
    func register(name: String, events: [String]) async throws(ExtensionError) -> Registration
    /// The long poll: returns when Lambda has an event. Never times out by itself.
    func next() async throws(ExtensionError) -> ExtensionEvent
    func subscribeTelemetry(destinationURI: String) async throws(ExtensionError)
    func reportInitError(_ error: ExtensionError) async
    func reportExitError(_ error: ExtensionError) async
}

/// The real client over HTTP, on its own async-http-client without a read timeout
/// (`/event/next` may wait for hours between invocations).
public final class HTTPExtensionsAPIClient: ExtensionsAPIClient {
    let client: HTTPClient
    let baseURL: String
    let telemetryURL: String
    private let identifier = ExtensionIdentifier()

    public init(runtimeAPI: String, eventLoopGroup: any EventLoopGroup) {
        var configuration = HTTPClient.Configuration()
        configuration.timeout = .init(connect: .seconds(2), read: nil)
        configuration.redirectConfiguration = .disallow
        client = HTTPClient(eventLoopGroup: eventLoopGroup, configuration: configuration)
        baseURL = "http://\(runtimeAPI)/2020-01-01/extension"
        telemetryURL = "http://\(runtimeAPI)/2022-07-01/telemetry"
    }

    public func shutdown() async { try? await client.shutdown() }

    private func call(_ method: HTTPMethod, _ url: String, headers: [(String, String)], body: [UInt8]?, code: ExtensionError.Code)
        async throws(ExtensionError) -> (HTTPResponseStatus, HTTPHeaders, [UInt8])
    {
        var request = HTTPClientRequest(url: url)
        request.method = method
        for (name, value) in headers { request.headers.add(name: name, value: value) }
        if let id = identifier.value { request.headers.add(name: "Lambda-Extension-Identifier", value: id) }
        if let body {
            request.headers.add(name: "Content-Type", value: "application/json")
            request.body = .bytes(ByteBuffer(bytes: body))
        }
        do {
            let response = try await client.execute(request, deadline: .distantFuture)
            var collected = try await response.body.collect(upTo: 4 << 20)
            return (response.status, response.headers, collected.readBytes(length: collected.readableBytes) ?? [])
        } catch {
            throw ExtensionError(code, "\(method) \(url) failed: \(error)")
        }
    }

    public func register(name: String, events: [String]) async throws(ExtensionError) -> Registration {
        let body = Array(#"{"events":[\#(events.map { "\"\($0)\"" }.joined(separator: ","))]}"#.utf8)
        let (status, headers, bytes) = try await call(
            .POST, baseURL + "/register",
            headers: [("Lambda-Extension-Name", name), ("Lambda-Extension-Accept-Feature", "accountId")],
            body: body, code: .registrationFailed)
        guard status == .ok, let id = headers.first(name: "Lambda-Extension-Identifier") else {
            throw ExtensionError(.registrationFailed, "register answered \(status.code): \(String(decoding: bytes.prefix(300), as: UTF8.self))")
        }
        identifier.set(id)
        do {
            return try JSONDecoder().decode(Registration.self, from: Data(bytes))
        } catch {
            throw ExtensionError(.registrationFailed, "register answer not understood: \(error)")
        }
    }

    public func next() async throws(ExtensionError) -> ExtensionEvent {
        let (status, _, bytes) = try await call(.GET, baseURL + "/event/next", headers: [], body: nil, code: .apiUnavailable)
        guard status == .ok else {
            throw ExtensionError(.unexpectedEvent, "event/next answered \(status.code): \(String(decoding: bytes.prefix(300), as: UTF8.self))")
        }
        return try ExtensionEvent.decode(bytes)
    }

    public func subscribeTelemetry(destinationURI: String) async throws(ExtensionError) {
        // Buffering at the documented minimums: events arrive as soon as Lambda allows.
        let body =
            #"{"schemaVersion":"2022-12-13","types":["platform"],"buffering":{"maxItems":1000,"maxBytes":262144,"timeoutMs":25},"destination":{"protocol":"HTTP","URI":"\#(destinationURI)"}}"#
        let (status, _, bytes) = try await call(.PUT, telemetryURL, headers: [], body: Array(body.utf8), code: .telemetrySubscriptionFailed)
        guard status == .ok else {
            throw ExtensionError(
                .telemetrySubscriptionFailed, "telemetry subscription answered \(status.code): \(String(decoding: bytes.prefix(300), as: UTF8.self))")
        }
    }

    public func reportInitError(_ error: ExtensionError) async { await report("/init/error", error) }
    public func reportExitError(_ error: ExtensionError) async { await report("/exit/error", error) }

    private func report(_ path: String, _ error: ExtensionError) async {
        let message = error.message.replacingJSONSpecials()
        let body = #"{"errorMessage":"\#(message)","errorType":"\#(error.code.functionErrorType)","stackTrace":[]}"#
        _ = try? await call(
            .POST, baseURL + path, headers: [("Lambda-Extension-Function-Error-Type", error.code.functionErrorType)],
            body: Array(body.utf8), code: error.code)
    }
}

/// The identifier `/register` hands out, sent on every later call.
private final class ExtensionIdentifier: Sendable {
    private let mutex = Mutex<String?>(nil)
    var value: String? { mutex.withLock { $0 } }
    func set(_ id: String) { mutex.withLock { $0 = id } }
}

extension String {
    /// Escapes for embedding in a JSON string literal.
    func replacingJSONSpecials() -> String {
        var out = ""
        for scalar in unicodeScalars {
            switch scalar {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            case _ where scalar.value < 0x20:
                let hex = String(scalar.value, radix: 16)
                out += "\\u" + String(repeating: "0", count: 4 - hex.count) + hex
            default: out.unicodeScalars.append(scalar)
            }
        }
        return out
    }
}
