import NIOCore
import NIOHTTP1
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

/// The real client over HTTP, on its own `HTTP1Client`, with no deadline on its requests
/// (`/event/next` may wait for hours between invocations).
public final class HTTPExtensionsAPIClient: ExtensionsAPIClient {
    let client: HTTP1Client
    let baseURL: String
    let telemetryURL: String
    private let identifier = ExtensionIdentifier()

    public init(runtimeAPI: String, eventLoopGroup: any EventLoopGroup) {
        // A call on a connection that died while the environment was frozen is made once
        // more on a fresh one: the API's calls may be repeated.
        client = HTTP1Client(
            eventLoopGroup: eventLoopGroup, configuration: .init(connectTimeout: .seconds(2), maxIdleConnectionsPerOrigin: 2, retriesDeadPooledConnection: true)
        )
        baseURL = "http://\(runtimeAPI)/2020-01-01/extension"
        telemetryURL = "http://\(runtimeAPI)/2022-07-01/telemetry"
    }

    public func shutdown() async { await client.shutdown() }

    /// An event is a few hundred bytes; nothing the API sends comes near this.
    static let maxAnswerBytes = 4 << 20

    private func call(_ method: HTTPMethod, _ url: String, headers: [(String, String)], body: [UInt8]?, code: ExtensionError.Code)
        async throws(ExtensionError) -> (HTTPResponseStatus, HTTPHeaders, [UInt8])
    {
        var request = HTTP1Request(method: method, url: url)
        for (name, value) in headers { request.headers.add(name: name, value: value) }
        if let id = identifier.value { request.headers.add(name: "Lambda-Extension-Identifier", value: id) }
        if let body {
            request.headers.add(name: "Content-Type", value: "application/json")
            request.body = ByteBuffer(bytes: body)
        }
        do {
            let response = try await client.executeWhole(request, deadline: nil, maxBodyBytes: Self.maxAnswerBytes)
            return (response.status, response.headers, Array(buffer: response.body))
        } catch {
            throw ExtensionError(code, "\(method) \(url) failed: \(error)")
        }
    }

    public func register(name: String, events: [String]) async throws(ExtensionError) -> Registration {
        let body = (["events": .array(events.map(JSONValue.string))] as JSONValue).serialized()
        let (status, headers, bytes) = try await call(
            .POST, baseURL + "/register",
            headers: [("Lambda-Extension-Name", name), ("Lambda-Extension-Accept-Feature", "accountId")],
            body: body, code: .registrationFailed)
        guard status == .ok, let id = headers.first(name: "Lambda-Extension-Identifier") else {
            let refusedEventType = (try? JSONValue.parse(bytes))?["errorType"]?.string == ExtensionError.Code.invalidEventType.functionErrorType
            let code: ExtensionError.Code = refusedEventType ? .invalidEventType : .registrationFailed
            throw ExtensionError(code, "register answered \(status.code): \(String(decoding: bytes.prefix(300), as: UTF8.self))")
        }
        identifier.set(id)
        do {
            return try Registration.decode(bytes)
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

    public func subscribeTelemetry(destinationURI: String, schemaVersion: String) async throws(ExtensionError) {
        // Buffering at the documented minimums: events arrive as soon as Lambda allows.
        let subscription: JSONValue = [
            "schemaVersion": .string(schemaVersion), "types": ["platform"],
            "buffering": ["maxItems": 1000, "maxBytes": .int(262_144), "timeoutMs": 25],
            "destination": ["protocol": "HTTP", "URI": .string(destinationURI)],
        ]
        let body = subscription.serialized()
        let (status, _, bytes) = try await call(.PUT, telemetryURL, headers: [], body: body, code: .telemetrySubscriptionFailed)
        guard status == .ok else {
            throw ExtensionError(
                .telemetrySubscriptionFailed, "telemetry subscription answered \(status.code): \(String(decoding: bytes.prefix(300), as: UTF8.self))")
        }
    }

    public func reportInitError(_ error: ExtensionError) async { await report("/init/error", error) }
    public func reportExitError(_ error: ExtensionError) async { await report("/exit/error", error) }

    private func report(_ path: String, _ error: ExtensionError) async {
        let report: JSONValue = ["errorMessage": .string(error.message), "errorType": .string(error.code.functionErrorType), "stackTrace": []]
        let body = report.serialized()
        _ = try? await call(
            .POST, baseURL + path, headers: [("Lambda-Extension-Function-Error-Type", error.code.functionErrorType)], body: body, code: error.code)
    }
}

/// The identifier `/register` hands out, sent on every later call.
private final class ExtensionIdentifier: Sendable {
    private let mutex = Mutex<String?>(nil)
    var value: String? { mutex.withLock { $0 } }
    func set(_ id: String) { mutex.withLock { $0 = id } }
}
