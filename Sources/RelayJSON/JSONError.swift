/// Why a body is not the JSON expected: a syntax error at a byte offset, or a value of the
/// wrong shape (a missing key, a string where a number belongs).
public struct JSONError: Error, Sendable, Equatable, CustomStringConvertible {
    public enum Code: Sendable, Equatable {
        /// The input ended inside a value (or was empty).
        case unexpectedEnd
        /// A byte that cannot start or continue the value at this point.
        case unexpectedByte
        /// A number outside RFC 8259's grammar (`01`, `1.`, `.5`, `+1`, `1e`).
        case invalidNumber
        /// A backslash escape JSON does not define, or a `\u` without four hex digits.
        case invalidEscape
        /// Invalid UTF-8, or a `\u` surrogate without its pair.
        case invalidUnicode
        /// A control character (U+0000 to U+001F) written raw inside a string.
        case controlCharacter
        /// Arrays and objects nested deeper than the parser's limit.
        case tooDeep
        /// Something other than white space after the value.
        case trailingData
        /// A required member is absent (or null).
        case missingKey
        /// A value is of another type than expected.
        case typeMismatch
    }

    public var code: Code
    /// Where in the input a syntax error was found; nil for shape errors.
    public var offset: Int?
    public var message: String

    public init(_ code: Code, _ message: String, offset: Int? = nil) {
        self.code = code
        self.message = message
        self.offset = offset
    }

    public var description: String {
        guard let offset else { return "invalid JSON: \(message)" }
        return "invalid JSON at byte \(offset): \(message)"
    }
}

// Reading members with JSONDecoder's rules, so a type's `init(json:)` is a few lines:
// a required member must be present and of its type, an optional one may be absent or
// null but not of another type.
extension JSONValue {
    /// The member `key` read through `accessor` (`\.string`, `\.int64`, ...).
    public func required<T>(_ key: String, _ accessor: KeyPath<JSONValue, T?>) throws(JSONError) -> T {
        guard let value = try optional(key, accessor) else { throw JSONError(.missingKey, "no value for the key '\(key)'") }
        return value
    }

    /// The member `key` read through `accessor`; nil when absent or null.
    public func optional<T>(_ key: String, _ accessor: KeyPath<JSONValue, T?>) throws(JSONError) -> T? {
        guard case .object = self else { throw JSONError(.typeMismatch, "expected an object with the key '\(key)', found \(typeName)") }
        guard let member = self[key], !member.isNull else { return nil }
        guard let value = member[keyPath: accessor] else {
            throw JSONError(.typeMismatch, "the value of '\(key)' is \(member.typeName), not of the type expected")
        }
        return value
    }

    /// The JSON type's name, for messages.
    public var typeName: String {
        switch self {
        case .null: "null"
        case .bool: "a boolean"
        case .number: "a number"
        case .string: "a string"
        case .array: "an array"
        case .object: "an object"
        }
    }
}
