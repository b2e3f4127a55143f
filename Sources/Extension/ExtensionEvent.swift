import RelayJSON

/// What `/register` answered.
public struct Registration: Sendable, Equatable {
    public var functionName: String
    public var functionVersion: String
    public var handler: String?
    public var accountId: String?
}

// In extensions, so the structs keep their memberwise initializers.
extension Registration {
    public init(json: JSONValue) throws(JSONError) {
        functionName = try json.required("functionName", \.string)
        functionVersion = try json.required("functionVersion", \.string)
        handler = try json.optional("handler", \.string)
        accountId = try json.optional("accountId", \.string)
    }

    /// Decodes the `/register` answer; the error says which member was missing or wrong.
    public static func decode(_ bytes: [UInt8]) throws(JSONError) -> Registration {
        try Registration(json: JSONValue.parse(bytes))
    }
}

public struct InvokeEvent: Sendable, Equatable {
    public var requestId: String
    /// Unix milliseconds.
    public var deadlineMs: Int64
    public var invokedFunctionArn: String?
}

extension InvokeEvent {
    public init(json: JSONValue) throws(JSONError) {
        requestId = try json.required("requestId", \.string)
        deadlineMs = try json.required("deadlineMs", \.int64)
        invokedFunctionArn = try json.optional("invokedFunctionArn", \.string)
    }
}

public struct ShutdownEvent: Sendable, Equatable {
    /// spindown, timeout or failure (case varies between sources).
    public var shutdownReason: String
    public var deadlineMs: Int64
}

extension ShutdownEvent {
    public init(json: JSONValue) throws(JSONError) {
        shutdownReason = try json.required("shutdownReason", \.string)
        deadlineMs = try json.required("deadlineMs", \.int64)
    }
}

public enum ExtensionEvent: Sendable, Equatable {
    case invoke(InvokeEvent)
    case shutdown(ShutdownEvent)

    /// Decodes an `/event/next` body; an unknown type or a body without the fields
    /// is an `unexpectedEvent` error rather than a crash.
    public static func decode(_ bytes: [UInt8]) throws(ExtensionError) -> ExtensionEvent {
        let json: JSONValue
        let type: String
        do {
            json = try JSONValue.parse(bytes)
            type = try json.required("eventType", \.string)
        } catch {
            throw ExtensionError(.unexpectedEvent, "event without an eventType: \(String(decoding: bytes.prefix(200), as: UTF8.self))")
        }
        do {
            switch type.uppercased() {
            case "INVOKE": return .invoke(try InvokeEvent(json: json))
            case "SHUTDOWN": return .shutdown(try ShutdownEvent(json: json))
            default: throw ExtensionError(.unexpectedEvent, "unknown eventType '\(type)'")
            }
        } catch let error as ExtensionError {
            throw error
        } catch {
            throw ExtensionError(.unexpectedEvent, "\(type) event missing fields: \(error)")
        }
    }
}
