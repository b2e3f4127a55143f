import FoundationEssentials

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
