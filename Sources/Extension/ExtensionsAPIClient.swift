import RelayCore
import RelayJSON
import Synchronization

/// The Lambda Extensions API (and the Telemetry API subscription), the network boundary
/// of the lifecycle; tests use an in-memory implementation.
public protocol ExtensionsAPIClient: Sendable {
    func register(name: String, events: [String]) async throws(ExtensionError) -> Registration
    /// The long poll: returns when Lambda has an event. Never times out by itself.
    func next() async throws(ExtensionError) -> ExtensionEvent
    func subscribeTelemetry(destinationURI: String, schemaVersion: String) async throws(ExtensionError)
    func reportInitError(_ error: ExtensionError) async
    func reportExitError(_ error: ExtensionError) async
}

/// The real client over HTTP (`LambdaAPITransport`: plain sockets, a thread per call), with
/// no deadline on its requests (`/event/next` may wait for hours between invocations).
public final class HTTPExtensionsAPIClient: ExtensionsAPIClient {
    let transport: LambdaAPITransport
    let runtimeAPI: String
    static let basePath = "/2020-01-01/extension"
    static let telemetryPath = "/2022-07-01/telemetry"
    private let identifier = ExtensionIdentifier()

    /// - Parameter runtimeAPI: `AWS_LAMBDA_RUNTIME_API`, `host:port`.
    public init(runtimeAPI: String) {
        self.runtimeAPI = runtimeAPI
        transport = LambdaAPITransport(address: runtimeAPI, maxBodyBytes: Self.maxAnswerBytes)
    }

    public func shutdown() async { transport.shutdown() }

    /// An event is a few hundred bytes; nothing the API sends comes near this.
    static let maxAnswerBytes = 4 << 20

    private func call(_ method: String, _ path: String, headers: [(String, String)], body: [UInt8]?, code: ExtensionError.Code)
        async throws(ExtensionError) -> (status: Int, response: LambdaAPITransport.Response)
    {
        var headers = headers
        if let id = identifier.value { headers.append(("Lambda-Extension-Identifier", id)) }
        if body != nil { headers.append(("Content-Type", "application/json")) }
        do {
            let response = try await transport.request(method, path, headers: headers, body: body)
            return (response.status, response)
        } catch {
            throw ExtensionError(code, "\(method) http://\(runtimeAPI)\(path) failed: \(error)")
        }
    }

    public func register(name: String, events: [String]) async throws(ExtensionError) -> Registration {
        let body = (["events": .array(events.map(JSONValue.string))] as JSONValue).serialized()
        let (status, response) = try await call(
            "POST", Self.basePath + "/register",
            headers: [("Lambda-Extension-Name", name), ("Lambda-Extension-Accept-Feature", "accountId")],
            body: body, code: .registrationFailed)
        let bytes = response.body
        guard status == 200, let id = response.header("Lambda-Extension-Identifier") else {
            let refusedEventType = (try? JSONValue.parse(bytes))?["errorType"]?.string == ExtensionError.Code.invalidEventType.functionErrorType
            let code: ExtensionError.Code = refusedEventType ? .invalidEventType : .registrationFailed
            throw ExtensionError(code, "register answered \(status): \(String(decoding: bytes.prefix(300), as: UTF8.self))")
        }
        identifier.set(id)
        do {
            return try Registration.decode(bytes)
        } catch {
            throw ExtensionError(.registrationFailed, "register answer not understood: \(error)")
        }
    }

    public func next() async throws(ExtensionError) -> ExtensionEvent {
        let (status, response) = try await call("GET", Self.basePath + "/event/next", headers: [], body: nil, code: .apiUnavailable)
        let bytes = response.body
        guard status == 200 else {
            throw ExtensionError(.unexpectedEvent, "event/next answered \(status): \(String(decoding: bytes.prefix(300), as: UTF8.self))")
        }
        return try ExtensionEvent.decode(bytes)
    }

    public func subscribeTelemetry(destinationURI: String, schemaVersion: String) async throws(ExtensionError) {
        // Buffering at the documented minimums: events arrive as soon as Lambda allows.
        let subscription: JSONValue = [
            "schemaVersion": .string(schemaVersion), "types": ["platform"],
            "buffering": ["maxItems": 1000, "maxBytes": .int(262_144), "timeoutMs": 25],
            "destination": ["protocol": "HTTP", "URI": .string(destinationURI)],
        ]
        let body = subscription.serialized()
        let (status, response) = try await call("PUT", Self.telemetryPath, headers: [], body: body, code: .telemetrySubscriptionFailed)
        guard status == 200 else {
            throw ExtensionError(
                .telemetrySubscriptionFailed,
                "telemetry subscription answered \(status): \(String(decoding: response.body.prefix(300), as: UTF8.self))")
        }
    }

    public func reportInitError(_ error: ExtensionError) async { await report("/init/error", error) }
    public func reportExitError(_ error: ExtensionError) async { await report("/exit/error", error) }

    private func report(_ path: String, _ error: ExtensionError) async {
        let report: JSONValue = ["errorMessage": .string(error.message), "errorType": .string(error.code.functionErrorType), "stackTrace": []]
        let body = report.serialized()
        _ = try? await call(
            "POST", Self.basePath + path, headers: [("Lambda-Extension-Function-Error-Type", error.code.functionErrorType)], body: body,
            code: error.code)
    }
}

/// The identifier `/register` hands out, sent on every later call.
private final class ExtensionIdentifier: Sendable {
    private let mutex = Mutex<String?>(nil)
    var value: String? { mutex.withLock { $0 } }
    func set(_ id: String) { mutex.withLock { $0 = id } }
}
