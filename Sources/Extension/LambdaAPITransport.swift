import GoCompatibility
import Synchronization

#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#elseif canImport(Darwin)
    import Darwin
#endif

/// HTTP/1.1 to Lambda's own API (`AWS_LAMBDA_RUNTIME_API`, on the loopback), over plain
/// sockets, each call on a thread that blocks in it (parked between calls: ParkedThreads).
///
/// Why not the relay's SwiftNIO client: `POST /register` is the first thing the extension
/// does and Lambda starts the function's runtime only once it is answered, so whatever comes
/// before it delays every cold start. Through SwiftNIO it first started the event loops and
/// set up a client channel (first uses of its generic types: 1.5 M instructions, callgrind);
/// here the event loops start after registration, while the runtime initializes. The calls
/// are few (a register, a `/event/next` per event, an error report), small, and on the
/// loopback; `/event/next` waits for hours on its thread, which sleeps in `read`.
final class LambdaAPITransport: Sendable {
    struct Response: Sendable {
        var status: Int
        var headers: [(name: String, value: String)]
        var body: [UInt8]

        func header(_ name: String) -> String? {
            headers.first { $0.name.lowercased() == name.lowercased() }?.value
        }
    }

    struct Failure: Error, CustomStringConvertible {
        var description: String
    }

    let host: String
    let port: Int32
    let maxBodyBytes: Int
    /// Kept-alive connections, two at most (a `/event/next` and one other call).
    private let idle = Mutex<[Int32]>([])
    /// The calls' threads, shared by every transport of the process: `/register`'s thread
    /// makes the first `/event/next`, and each `/event/next`'s the next one.
    private static let threads = ParkedThreads()

    /// - Parameter address: `host:port`, as in `AWS_LAMBDA_RUNTIME_API`.
    init(address: String, maxBodyBytes: Int) {
        let colon = address.lastIndex(of: ":")
        host = colon.map { String(address[..<$0]) } ?? address
        port = colon.flatMap { Int32(address[address.index(after: $0)...]) } ?? 80
        self.maxBodyBytes = maxBodyBytes
    }

    /// Closes the kept-alive connections.
    func shutdown() {
        for descriptor in idle.withLock({ idle in
            defer { idle.removeAll() }; return idle
        }) { close(descriptor) }
    }

    /// One exchange. Cancelling the task closes its connection, which ends the wait.
    func request(_ method: String, _ path: String, headers: [(String, String)], body: [UInt8]?) async throws -> Response {
        var head = "\(method) \(path) HTTP/1.1\r\nHost: \(host):\(port)\r\n"
        for (name, value) in headers { head += "\(name): \(value)\r\n" }
        if body != nil || method == "POST" || method == "PUT" { head += "Content-Length: \(body?.count ?? 0)\r\n" }
        let request = Array((head + "\r\n").utf8) + (body ?? [])
        let call = Call()
        return try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Response, any Error>) in
                let failed = Self.threads.run({ Result { try self.exchange(request, call: call) } }, then: { continuation.resume(with: $0) })
                if failed != 0 { continuation.resume(throwing: Failure(description: "no thread for the call: \(String(cString: strerror(failed)))")) }
            }
        } onCancel: {
            call.cancel()
        }
    }

    /// On a pooled connection first; one that turns out closed (the API's end went away while
    /// the environment was frozen) is replaced by a new one once.
    private func exchange(_ request: [UInt8], call: Call) throws -> Response {
        if let pooled = idle.withLock({ $0.popLast() }) {
            switch attempt(request, on: pooled, call: call) {
            case .answered(let response, let reusable): return finish(response, pooled, reusable)
            case .failed(let error, let sentAnything) where sentAnything: throw error
            case .failed: break  // closed before any answer: a new connection
            }
        }
        let descriptor = try openConnection()
        switch attempt(request, on: descriptor, call: call) {
        case .answered(let response, let reusable): return finish(response, descriptor, reusable)
        case .failed(let error, _): throw error
        }
    }

    private func finish(_ response: Response, _ descriptor: Int32, _ reusable: Bool) -> Response {
        let kept =
            reusable
            && idle.withLock { idle -> Bool in
                guard idle.count < 2 else { return false }
                idle.append(descriptor)
                return true
            }
        if !kept { close(descriptor) }
        return response
    }

    private enum Attempt {
        case answered(Response, reusable: Bool)
        /// `sentAnything`: the answer had begun, so the call must not be made again.
        case failed(any Error, sentAnything: Bool)
    }

    private func attempt(_ request: [UInt8], on descriptor: Int32, call: Call) -> Attempt {
        guard call.begin(descriptor) else {
            close(descriptor)
            return .failed(CancellationError(), sentAnything: true)
        }
        defer { call.end() }
        var written = 0
        while written < request.count {
            let count = request[written...].withUnsafeBytes { send(descriptor, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
            if count < 0, errno == EINTR { continue }
            guard count > 0 else {
                close(descriptor)
                return .failed(Failure(description: "sending failed: \(String(cString: strerror(errno)))"), sentAnything: false)
            }
            written += count
        }
        var reader = ResponseReader(descriptor: descriptor, maxBodyBytes: maxBodyBytes)
        do {
            let response = try reader.read()
            return .answered(response, reusable: reader.reusable)
        } catch {
            close(descriptor)
            if call.isCancelled { return .failed(CancellationError(), sentAnything: true) }
            return .failed(error, sentAnything: reader.receivedAnything)
        }
    }

    private func openConnection() throws -> Int32 {
        var hints = addrinfo()
        hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
        var found: UnsafeMutablePointer<addrinfo>?
        guard getaddrinfo(host, String(port), &hints, &found) == 0, let first = found else {
            throw Failure(description: "cannot resolve \(host)")
        }
        defer { freeaddrinfo(found) }
        var reason = "no address"
        var entry: UnsafeMutablePointer<addrinfo>? = first
        while let address = entry {
            entry = address.pointee.ai_next
            let descriptor = socket(address.pointee.ai_family, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
            guard descriptor >= 0 else { continue }
            // A bound on the connect (the API's end is local: this is for a broken setup).
            var timeout = timeval(tv_sec: 2, tv_usec: 0)
            setsockopt(descriptor, SOL_SOCKET, SO_SNDTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
            var one: Int32 = 1
            setsockopt(descriptor, Int32(IPPROTO_TCP), TCP_NODELAY, &one, socklen_t(MemoryLayout<Int32>.size))
            if connect(descriptor, address.pointee.ai_addr, address.pointee.ai_addrlen) == 0 {
                var none = timeval()
                setsockopt(descriptor, SOL_SOCKET, SO_SNDTIMEO, &none, socklen_t(MemoryLayout<timeval>.size))
                return descriptor
            }
            reason = String(cString: strerror(errno))
            close(descriptor)
        }
        throw Failure(description: "cannot connect to \(host):\(port): \(reason)")
    }
}

/// The connection a call is using, so that cancelling the call can end its blocking read.
private final class Call: Sendable {
    private let state = Mutex<(descriptor: Int32?, cancelled: Bool)>((nil, false))

    var isCancelled: Bool { state.withLock { $0.cancelled } }

    func begin(_ descriptor: Int32) -> Bool {
        state.withLock { state in
            guard !state.cancelled else { return false }
            state.descriptor = descriptor
            return true
        }
    }

    func end() { state.withLock { $0.descriptor = nil } }

    func cancel() {
        state.withLock { state in
            state.cancelled = true
            if let descriptor = state.descriptor { _ = shutdown(descriptor, Int32(SHUT_RDWR)) }
        }
    }
}

/// Reads one HTTP/1.1 answer: the head, then a body framed by Content-Length, by chunks, or
/// by the close.
private struct ResponseReader {
    let descriptor: Int32
    let maxBodyBytes: Int
    private var buffer: [UInt8] = []
    private var position = 0
    private(set) var receivedAnything = false
    private(set) var reusable = false

    init(descriptor: Int32, maxBodyBytes: Int) {
        self.descriptor = descriptor
        self.maxBodyBytes = maxBodyBytes
    }

    typealias Failure = LambdaAPITransport.Failure

    mutating func read() throws -> LambdaAPITransport.Response {
        var headEnd: Int?
        while headEnd == nil {
            guard try fill() else { throw Failure(description: "the connection closed before an answer") }
            headEnd = buffer.firstOccurrence(of: [13, 10, 13, 10])?.lowerBound
            if headEnd == nil, buffer.count > 64 << 10 { throw Failure(description: "an answer head over 64 KiB") }
        }
        // Split and trimmed as bytes, made Strings last: Character-wise trimming (grapheme
        // breaking) cost the register call 1 M instructions; splitting a String on a String is
        // _StringProcessing's, which the layer does not link (layer/check_binary.py).
        var lines = buffer[..<headEnd!].split(separator: 10)[...]
        position = headEnd! + 4
        let statusBytes = lines.popFirst().map(Self.trimmed) ?? []
        let statusLine = String(decoding: statusBytes, as: UTF8.self)
        let fields = statusLine.split(separator: " ", maxSplits: 2)
        guard fields.count >= 2, fields[0].hasPrefix("HTTP/1."), let status = Int(fields[1]) else {
            throw Failure(description: "not an HTTP/1.1 answer: \(statusLine.prefix(100))")
        }
        var headers: [(name: String, value: String)] = []
        for line in lines {
            guard let colon = line.firstIndex(of: UInt8(ascii: ":")) else { continue }
            headers.append(
                (String(decoding: line[..<colon], as: UTF8.self), String(decoding: Self.trimmed(line[(colon + 1)...]), as: UTF8.self)))
        }
        var response = LambdaAPITransport.Response(status: status, headers: headers, body: [])
        func header(_ name: String) -> String? { response.header(name) }
        let closes = header("connection")?.lowercased() == "close" || fields[0] == "HTTP/1.0"
        let body: [UInt8]
        if header("transfer-encoding")?.lowercased().hasSuffix("chunked") == true {
            body = try readChunked()
            reusable = !closes
        } else if let text = header("content-length") {
            guard let length = Int(text), length >= 0 else { throw Failure(description: "a Content-Length of '\(text)'") }
            guard length <= maxBodyBytes else { throw Failure(description: "an answer of \(length) bytes, over \(maxBodyBytes)") }
            while buffer.count - position < length {
                guard try fill() else { throw Failure(description: "the connection closed inside the answer's body") }
            }
            body = Array(buffer[position..<(position + length)])
            reusable = !closes
        } else if status == 204 || status == 304 || status < 200 {
            body = []
            reusable = !closes
        } else {
            while try fill() {
                if buffer.count - position > maxBodyBytes { throw Failure(description: "an answer over \(maxBodyBytes) bytes") }
            }
            body = Array(buffer[position...])
        }
        response.body = body
        return response
    }

    private mutating func readChunked() throws -> [UInt8] {
        var body: [UInt8] = []
        while true {
            let line = try readLine()
            let sizeText = Self.trimmed(line.prefix { $0 != UInt8(ascii: ";") })
            guard let size = Int(String(decoding: sizeText, as: UTF8.self), radix: 16), size >= 0 else {
                throw Failure(description: "a malformed chunk size")
            }
            if size == 0 {
                while try !readLine().isEmpty {}  // trailers, then the empty line
                return body
            }
            guard body.count + size <= maxBodyBytes else { throw Failure(description: "an answer over \(maxBodyBytes) bytes") }
            while buffer.count - position < size + 2 {
                guard try fill() else { throw Failure(description: "the connection closed inside a chunk") }
            }
            body += buffer[position..<(position + size)]
            position += size + 2
        }
    }

    private mutating func readLine() throws -> ArraySlice<UInt8> {
        while true {
            if let end = buffer[position...].firstOccurrence(of: [13, 10])?.lowerBound {
                defer { position = end + 2 }
                return buffer[position..<end]
            }
            guard try fill() else { throw Failure(description: "the connection closed inside the chunked body") }
        }
    }

    /// Reads more bytes; false at the end of the stream.
    private mutating func fill() throws -> Bool {
        var chunk = [UInt8](repeating: 0, count: 16 << 10)
        while true {
            let count = chunk.withUnsafeMutableBytes { recv(descriptor, $0.baseAddress, $0.count, 0) }
            if count < 0, errno == EINTR { continue }
            if count < 0 { throw Failure(description: "reading failed: \(String(cString: strerror(errno)))") }
            if count == 0 { return false }
            receivedAnything = true
            buffer += chunk[..<count]
            return true
        }
    }

    /// Without surrounding spaces, tabs and the line's CR.
    private static func trimmed(_ bytes: ArraySlice<UInt8>) -> ArraySlice<UInt8> {
        func isSpace(_ byte: UInt8) -> Bool { byte == 32 || byte == 9 || byte == 13 }
        guard let first = bytes.firstIndex(where: { !isSpace($0) }), let last = bytes.lastIndex(where: { !isSpace($0) }) else { return [] }
        return bytes[first...last]
    }
}
