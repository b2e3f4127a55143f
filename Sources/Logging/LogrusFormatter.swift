import GoCompatibility

#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#elseif canImport(Darwin)
    import Darwin
#endif

/// Where a log call came from, as logrus' `entry.Caller` (only used with
/// `reportCaller`).
public struct LogCaller: Sendable, Equatable {
    /// Printed under the `func` key.
    public var function: String
    /// Printed under the `file` key, already `path:line`.
    public var file: String

    public init(function: String, file: String) {
        self.function = function
        self.file = file
    }

    public init(function: String, file: String, line: UInt) {
        self.init(function: function, file: "\(file):\(line)")
    }
}

/// One logrus entry: what a `logrus.Entry` holds when it reaches the formatter.
public struct LogEntry: Sendable {
    public var seconds: Int64
    public var nanoseconds: Int32
    public var level: LogrusLevel
    public var message: String
    /// `entry.Data`. Order does not matter (Go maps are unordered); if a key repeats,
    /// the later pair wins.
    public var fields: [(key: String, value: LogFieldValue)]
    /// `entry.err`, printed under the logrus_error key when non-empty.
    public var errorText: String
    public var caller: LogCaller?

    public init(
        seconds: Int64 = 0,
        nanoseconds: Int32 = 0,
        level: LogrusLevel,
        message: String,
        fields: [(key: String, value: LogFieldValue)] = [],
        errorText: String = "",
        caller: LogCaller? = nil
    ) {
        self.seconds = seconds
        self.nanoseconds = nanoseconds
        self.level = level
        self.message = message
        self.fields = fields
        self.errorText = errorText
        self.caller = caller
    }
}

/// logrus v1.9.3's `TextFormatter` (no TTY) and `JSONFormatter` (HTML escaping on, no
/// DataKey, no PrettyPrint), byte for byte, writing into a byte buffer.
///
/// Everything derived from the configuration (the tokenised layout, the resolved and
/// `fields.`-prefixed names, the JSON order of the reserved keys) is computed once
/// here and shared by reference, so handler copies cost one retain.
public struct LogrusFormatter: Sendable {
    let core: Core

    public init(configuration: LogConfiguration) {
        core = Core(configuration)
    }

    /// The formatted line, including its trailing `\n`.
    public func format(_ entry: LogEntry) -> String {
        var b: [UInt8] = []
        append(entry, to: &b)
        return String(decoding: b, as: UTF8.self)
    }

    /// Appends one formatted line (with its `\n`) to `b`.
    public func append(_ entry: LogEntry, to b: inout [UInt8]) {
        core.append(entry, to: &b)
    }

    /// What a key's value is taken from once reserved keys are merged in.
    enum Slot {
        case user(LogFieldValue)
        case time, message, level, error, function, file
    }

    enum Reserved: Equatable {
        case error, time, message, level, function, file
    }

    final class Core: Sendable {
        let format: LogFormat
        let layout: GoTimeLayout
        let disableTimestamp: Bool
        let timeZone: GoTimeZone
        let names: LogFieldNames
        let redactions: RedactionSet
        /// `fields.<resolved name>` for the clash rule.
        let movedTime, movedMessage, movedLevel, movedError, movedFunction, movedFile: String
        /// JSON: the distinct reserved names in byte order, each with the reserved
        /// keys written under it in logrus' insertion order (E, T, M, L, F, Fi); the
        /// last one present on a line wins, as the later map insert overwrites.
        let jsonReserved: [(name: String, candidates: [Reserved])]

        init(_ c: LogConfiguration) {
            format = c.format
            layout = GoTimeLayout(c.timestampLayout.isEmpty ? GoTimeLayout.rfc3339 : c.timestampLayout)
            disableTimestamp = c.disableTimestamp
            timeZone = c.timeZone
            names = c.fieldNames
            redactions = c.redactions
            movedTime = "fields." + c.fieldNames.time
            movedMessage = "fields." + c.fieldNames.message
            movedLevel = "fields." + c.fieldNames.level
            movedError = "fields." + c.fieldNames.logrusError
            movedFunction = "fields." + c.fieldNames.function
            movedFile = "fields." + c.fieldNames.file
            let inserts: [(String, Reserved)] = [
                (c.fieldNames.logrusError, .error), (c.fieldNames.time, .time), (c.fieldNames.message, .message),
                (c.fieldNames.level, .level), (c.fieldNames.function, .function), (c.fieldNames.file, .file),
            ]
            var grouped: [(name: String, candidates: [Reserved])] = []
            for (name, kind) in inserts {
                if let i = grouped.firstIndex(where: { keyEqual($0.name, name) }) {
                    grouped[i].candidates.append(kind)
                } else {
                    grouped.append((name, [kind]))
                }
            }
            jsonReserved = grouped.sorted { keyLess($0.name, $1.name) }
        }

        func append(_ entry: LogEntry, to b: inout [UInt8]) {
            var message = entry.message
            var errorText = entry.errorText
            let redactor = redactions.current
            var data = sortedFields(entry.fields, redactor: redactor)
            if !redactor.isEmpty {
                message = redactor.redact(message)
                errorText = redactor.redact(errorText)
            }

            // prefixFieldClashes: T, M, L, E are always moved (overwriting an existing
            // `fields.<name>`); F and Fi are copied, and only with caller info.
            moveClash(&data, names.time, to: movedTime)
            moveClash(&data, names.message, to: movedMessage)
            moveClash(&data, names.level, to: movedLevel)
            moveClash(&data, names.logrusError, to: movedError)
            if entry.caller != nil {
                if let i = index(of: names.function, in: data) { set(&data, movedFunction, data[i].slot) }
                if let i = index(of: names.file, in: data) { set(&data, movedFile, data[i].slot) }
            }

            switch format {
            case .json: appendJSON(data, entry, message, errorText, to: &b)
            case .text: appendText(data, entry, message, errorText, to: &b)
            }
        }

        @inline(__always)
        func appendTime(_ entry: LogEntry, to b: inout [UInt8]) {
            let zone = timeZone.offset(atUnixSeconds: entry.seconds)
            layout.append(
                to: &b, unixSeconds: entry.seconds, nanoseconds: entry.nanoseconds,
                zone: zone.seconds, zoneName: zone.abbreviation)
        }

        // MARK: JSON

        private func isPresent(_ kind: Reserved, _ entry: LogEntry, _ errorText: String) -> Bool {
            switch kind {
            case .error: !errorText.isEmpty
            case .time: !disableTimestamp
            case .message, .level: true
            case .function: !(entry.caller?.function.isEmpty ?? true)
            case .file: !(entry.caller?.file.isEmpty ?? true)
            }
        }

        private func appendJSON(
            _ data: [(key: String, slot: Slot)], _ entry: LogEntry, _ message: String, _ errorText: String,
            to b: inout [UInt8]
        ) {
            b.append(UInt8(ascii: "{"))
            var first = true
            var u = 0
            // Merge the sorted user keys with the sorted reserved keys; a reserved key
            // replaces a user key of the same name (the later map insert in Go).
            for reserved in jsonReserved {
                guard let kind = reserved.candidates.last(where: { isPresent($0, entry, errorText) }) else { continue }
                while u < data.count && keyLess(data[u].key, reserved.name) {
                    appendJSONPair(data[u].key, data[u].slot, entry, message, errorText, &first, to: &b)
                    u += 1
                }
                if u < data.count && keyEqual(data[u].key, reserved.name) { u += 1 }
                let slot: Slot =
                    switch kind {
                    case .error: .error
                    case .time: .time
                    case .message: .message
                    case .level: .level
                    case .function: .function
                    case .file: .file
                    }
                appendJSONPair(reserved.name, slot, entry, message, errorText, &first, to: &b)
            }
            while u < data.count {
                appendJSONPair(data[u].key, data[u].slot, entry, message, errorText, &first, to: &b)
                u += 1
            }
            b.append(UInt8(ascii: "}"))
            b.append(UInt8(ascii: "\n"))
        }

        @inline(__always)
        private func appendJSONPair(
            _ key: String, _ slot: Slot, _ entry: LogEntry, _ message: String, _ errorText: String,
            _ first: inout Bool, to b: inout [UInt8]
        ) {
            if !first { b.append(UInt8(ascii: ",")) }
            first = false
            appendJSONString(key, to: &b)
            b.append(UInt8(ascii: ":"))
            switch slot {
            case .user(let v): appendJSONValue(v, to: &b)
            case .time:
                // The layout is free text, so the timestamp may need escaping; it
                // almost never does, so format in place and redo only if needed.
                let start = b.count
                b.append(UInt8(ascii: "\""))
                appendTime(entry, to: &b)
                let needsEscape = b.withUnsafeBufferPointer { buf in
                    buf[(start + 1)...].contains { $0 < 0x20 || $0 == 0x22 || $0 == 0x5C || $0 == 0x3C || $0 == 0x3E || $0 == 0x26 || $0 >= 0x80 }
                }
                if needsEscape {
                    let raw = Array(b[(start + 1)...])
                    b.removeLast(b.count - start)
                    raw.withUnsafeBufferPointer { appendJSONString($0, to: &b) }
                } else {
                    b.append(UInt8(ascii: "\""))
                }
            case .message: appendJSONString(message, to: &b)
            case .level: appendJSONString(entry.level.name, to: &b)
            case .error: appendJSONString(errorText, to: &b)
            case .function: appendJSONString(entry.caller?.function ?? "", to: &b)
            case .file: appendJSONString(entry.caller?.file ?? "", to: &b)
            }
        }

        // MARK: Text

        private func appendText(
            _ data: [(key: String, slot: Slot)], _ entry: LogEntry, _ message: String, _ errorText: String,
            to b: inout [UInt8]
        ) {
            let lineStart = b.count
            if !disableTimestamp { appendTextPair(names.time, nil, entry, message, errorText, lineStart, to: &b) }
            appendTextPair(names.level, nil, entry, message, errorText, lineStart, to: &b)
            if !message.isEmpty { appendTextPair(names.message, nil, entry, message, errorText, lineStart, to: &b) }
            if !errorText.isEmpty { appendTextPair(names.logrusError, nil, entry, message, errorText, lineStart, to: &b) }
            if let caller = entry.caller {
                if !caller.function.isEmpty { appendTextPair(names.function, nil, entry, message, errorText, lineStart, to: &b) }
                if !caller.file.isEmpty { appendTextPair(names.file, nil, entry, message, errorText, lineStart, to: &b) }
            }
            for (key, slot) in data {
                if case .user(let v) = slot {
                    appendTextPair(key, v, entry, message, errorText, lineStart, to: &b)
                }
            }
            b.append(UInt8(ascii: "\n"))
        }

        /// logrus `appendKeyValue`: the key raw, then the value chosen by logrus'
        /// switch: a key equal to a resolved reserved name takes the entry's value
        /// (checked in the order time, level, msg, logrus_error, func, file), whatever
        /// produced the key.
        private func appendTextPair(
            _ key: String, _ user: LogFieldValue?, _ entry: LogEntry, _ message: String, _ errorText: String,
            _ lineStart: Int, to b: inout [UInt8]
        ) {
            if b.count > lineStart { b.append(UInt8(ascii: " ")) }
            b.append(contentsOf: key.utf8)
            b.append(UInt8(ascii: "="))
            let hasCaller = entry.caller != nil
            if keyEqual(key, names.time) {
                let start = b.count
                appendTime(entry, to: &b)
                let needsQuote = b.withUnsafeBufferPointer { textNeedsQuoting(UnsafeBufferPointer(rebasing: $0[start...])) }
                if needsQuote {
                    let raw = Array(b[start...])
                    b.removeLast(b.count - start)
                    raw.withUnsafeBufferPointer { appendGoQuoted($0, to: &b) }
                }
            } else if keyEqual(key, names.level) {
                appendTextValue(entry.level.name, to: &b)
            } else if keyEqual(key, names.message) {
                appendTextValue(message, to: &b)
            } else if keyEqual(key, names.logrusError) {
                appendTextValue(errorText, to: &b)
            } else if hasCaller && keyEqual(key, names.function) {
                appendTextValue(entry.caller?.function ?? "", to: &b)
            } else if hasCaller && keyEqual(key, names.file) {
                appendTextValue(entry.caller?.file ?? "", to: &b)
            } else {
                appendTextValue(user ?? .null, to: &b)
            }
        }

        // MARK: Field bookkeeping (sorted by UTF-8 bytes, like Go's sort.Strings
        // and encoding/json's map key order)

        private func sortedFields(_ fields: [(key: String, value: LogFieldValue)], redactor: Redactor) -> [(key: String, slot: Slot)] {
            var data: [(key: String, slot: Slot)] = []
            data.reserveCapacity(fields.count + 2)
            if redactor.isEmpty {
                for f in fields { data.append((f.key, .user(f.value))) }
            } else {
                for f in fields { data.append((redactor.redact(f.key), .user(redactor.redact(f.value)))) }
            }
            if data.count < 2 { return data }
            // Insertion sort: stable (so a repeated key keeps its last value) and the
            // fastest choice for the handful of fields a line carries.
            for i in 1..<data.count {
                guard keyLess(data[i].key, data[i - 1].key) else { continue }
                let item = data[i]
                var j = i
                while j > 0 && keyLess(item.key, data[j - 1].key) {
                    data[j] = data[j - 1]
                    j -= 1
                }
                data[j] = item
            }
            var i = 1
            while i < data.count {
                if keyEqual(data[i].key, data[i - 1].key) {
                    data.remove(at: i - 1)
                } else {
                    i += 1
                }
            }
            return data
        }

        @inline(__always)
        private func moveClash(_ data: inout [(key: String, slot: Slot)], _ name: String, to moved: String) {
            guard let i = index(of: name, in: data) else { return }
            let slot = data[i].slot
            data.remove(at: i)
            set(&data, moved, slot)
        }

        /// Linear: a line has a handful of keys, and `keyEqual` rejects most of them
        /// on length alone.
        @inline(__always)
        private func index(of key: String, in data: [(key: String, slot: Slot)]) -> Int? {
            data.firstIndex { keyEqual($0.key, key) }
        }

        /// Go's `data[key] = value` on the sorted array.
        private func set(_ data: inout [(key: String, slot: Slot)], _ key: String, _ slot: Slot) {
            var lo = 0
            var hi = data.count
            while lo < hi {
                let mid = (lo + hi) >> 1
                if keyLess(data[mid].key, key) { lo = mid + 1 } else { hi = mid }
            }
            if lo < data.count && keyEqual(data[lo].key, key) {
                data[lo].slot = slot
            } else {
                data.insert((key, slot), at: lo)
            }
        }
    }
}
