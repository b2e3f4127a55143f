/// A JSON value as RFC 8259 defines it.
///
/// The relay reads and writes only a handful of small bodies (Lambda's Extensions and
/// Telemetry APIs, AWS JSON 1.1, a secret, one setting); Foundation's coders cost the cold
/// start ~2.7 MB of zip and ~1 ms of CPU for that, so this module does it by hand.
public enum JSONValue: Sendable {
    case null
    case bool(Bool)
    case number(JSONNumber)
    case string(String)
    case array([JSONValue])
    /// Members in the order written; duplicate keys are kept (lookups take the first).
    case object([(key: String, value: JSONValue)])
}

/// A JSON number kept as its text, so an integer such as `deadlineMs` is never rounded
/// through a `Double`.
public struct JSONNumber: Sendable, Hashable, CustomStringConvertible {
    /// The number as written, valid by RFC 8259's `number` grammar.
    public let text: String

    /// `text` unchecked: the parser hands over only what it has scanned.
    init(uncheckedText text: String) { self.text = text }

    /// A number from its JSON text; nil when the text is not a JSON number.
    public init?(text: String) {
        var scanner = JSONScanner(bytes: Array(text.utf8), maxDepth: 0)
        guard (try? scanner.scanNumber()) != nil, scanner.index == scanner.bytes.count else { return nil }
        self.text = text
    }

    public init(_ value: Int64) { text = String(value) }

    public init(_ value: Int) { text = String(value) }

    /// Nil for infinities and NaN, which JSON cannot write.
    public init?(_ value: Double) {
        guard value.isFinite else { return nil }
        text = "\(value)"
    }

    public var description: String { text }

    var isInteger: Bool { !text.utf8.contains { $0 == UInt8(ascii: ".") || $0 == UInt8(ascii: "e") || $0 == UInt8(ascii: "E") } }

    /// The number as an `Int64` when it is one exactly: `1733512345678`, but also `1e3` or
    /// `5.0`, as Foundation's `JSONDecoder` reads them; nil for fractions and overflow.
    public var int64: Int64? {
        if isInteger { return Int64(text) }
        guard let double else { return nil }
        return Int64(exactly: double)
    }

    /// The nearest `Double`; nil when the number is beyond its range (`1e400`), which
    /// `JSONDecoder` also refuses.
    public var double: Double? {
        guard let value = Double(text), value.isFinite else { return nil }
        return value
    }
}

extension JSONNumber: ExpressibleByIntegerLiteral {
    public init(integerLiteral value: Int64) { self.init(value) }
}

extension JSONValue: Equatable {
    /// Structural equality: objects compare member by member in order; numbers by text.
    public static func == (lhs: JSONValue, rhs: JSONValue) -> Bool {
        switch (lhs, rhs) {
        case (.null, .null): return true
        case (.bool(let a), .bool(let b)): return a == b
        case (.number(let a), .number(let b)): return a == b
        case (.string(let a), .string(let b)): return a == b
        case (.array(let a), .array(let b)): return a == b
        case (.object(let a), .object(let b)): return a.count == b.count && zip(a, b).allSatisfy { $0.key == $1.key && $0.value == $1.value }
        default: return false
        }
    }
}

// Literals, so request bodies read as the JSON they become:
// `["events": ["INVOKE", "SHUTDOWN"]]`, `["buffering": ["maxItems": 1000]]`.
extension JSONValue: ExpressibleByStringLiteral, ExpressibleByIntegerLiteral, ExpressibleByBooleanLiteral, ExpressibleByArrayLiteral,
    ExpressibleByDictionaryLiteral
{
    public init(stringLiteral value: String) { self = .string(value) }
    public init(integerLiteral value: Int64) { self = .number(JSONNumber(value)) }
    public init(booleanLiteral value: Bool) { self = .bool(value) }
    public init(arrayLiteral elements: JSONValue...) { self = .array(elements) }
    /// Keeps the order written, so the bytes sent are predictable.
    public init(dictionaryLiteral elements: (String, JSONValue)...) { self = .object(elements.map { (key: $0.0, value: $0.1) }) }

    /// An integer member from a variable: `["timeoutMs": .int(timeout)]`.
    public static func int(_ value: some BinaryInteger) -> JSONValue { .number(JSONNumber(uncheckedText: String(value))) }
}

// Accessors: nil when the value is of another type.
extension JSONValue {
    public var isNull: Bool { if case .null = self { true } else { false } }

    public var bool: Bool? { if case .bool(let value) = self { value } else { nil } }

    public var string: String? { if case .string(let value) = self { value } else { nil } }

    public var number: JSONNumber? { if case .number(let value) = self { value } else { nil } }

    public var int64: Int64? { number?.int64 }

    public var double: Double? { number?.double }

    public var array: [JSONValue]? { if case .array(let value) = self { value } else { nil } }

    public var object: [(key: String, value: JSONValue)]? { if case .object(let value) = self { value } else { nil } }

    /// The object's members by key; of duplicate keys the first wins, as with `JSONDecoder`.
    public var dictionary: [String: JSONValue]? { object.map { Dictionary($0, uniquingKeysWith: { first, _ in first }) } }

    /// The member `key` of an object (the first, if the key repeats, as `JSONDecoder` reads
    /// it); nil when absent or when this is not an object.
    public subscript(key: String) -> JSONValue? {
        guard case .object(let members) = self else { return nil }
        return members.first { $0.key == key }?.value
    }

    /// The element at `index` of an array; nil when out of range or not an array.
    public subscript(index: Int) -> JSONValue? {
        guard case .array(let elements) = self, elements.indices.contains(index) else { return nil }
        return elements[index]
    }
}
