import Foundation

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// A blocking TCP client for sending exact bytes (repeated headers, malformed requests,
/// chunked bodies) and reading the raw answer. Receive timeouts keep tests bounded.
public final class RawConnection {
    private var fd: Int32

    public init(port: Int, host: String = "127.0.0.1", timeoutSeconds: Int = 10) throws {
        fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw RawError.socket(errno) }
        var timeout = timeval(tv_sec: timeoutSeconds, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = in_port_t(UInt16(port).bigEndian)
        inet_pton(AF_INET, host, &address.sin_addr)
        let result = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard result == 0 else {
            let error = errno
            close(fd)
            fd = -1
            throw RawError.connect(error)
        }
    }

    deinit { if fd >= 0 { close(fd) } }

    public enum RawError: Error { case socket(Int32), connect(Int32), send(Int32) }

    public func send(_ bytes: [UInt8]) throws {
        var offset = 0
        while offset < bytes.count {
            let written = bytes[offset...].withUnsafeBytes { Glibc.send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
            guard written > 0 else { throw RawError.send(errno) }
            offset += written
        }
    }

    public func send(_ text: String) throws { try send(Array(text.utf8)) }

    /// Reads one HTTP response (head plus Content-Length body). Nil on close/timeout.
    public func readResponse() -> (status: Int, headers: [(String, String)], body: [UInt8])? {
        var data: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 4096)
        func headEnd() -> Int? {
            guard data.count >= 4 else { return nil }
            for index in 0...(data.count - 4) where data[index] == 13 && data[index + 1] == 10 && data[index + 2] == 13 && data[index + 3] == 10 {
                return index
            }
            return nil
        }
        while true {
            if let end = headEnd() {
                let head = String(decoding: data[..<end], as: UTF8.self)
                var lines = head.split(separator: "\r\n", omittingEmptySubsequences: false).map(String.init)
                let statusLine = lines.removeFirst().split(separator: " ")
                guard statusLine.count >= 2, let status = Int(statusLine[1]) else { return nil }
                let headers = lines.compactMap { line -> (String, String)? in
                    guard let colon = line.firstIndex(of: ":") else { return nil }
                    return (String(line[..<colon]).lowercased(), String(line[line.index(after: colon)...]).trimmingCharacters(in: " "))
                }
                if status == 100 {  // interim: drop it and read the final answer
                    data.removeFirst(end + 4)
                    continue
                }
                let length = Int(headers.first { $0.0 == "content-length" }?.1 ?? "0") ?? 0
                while data.count < end + 4 + length {
                    let count = recv(fd, &buffer, buffer.count, 0)
                    guard count > 0 else { return nil }
                    data.append(contentsOf: buffer[..<count])
                }
                let body = Array(data[(end + 4)..<(end + 4 + length)])
                data.removeFirst(end + 4 + length)
                return (status, headers, body)
            }
            let count = recv(fd, &buffer, buffer.count, 0)
            guard count > 0 else { return nil }
            data.append(contentsOf: buffer[..<count])
        }
    }

    /// Bounds each read to `milliseconds` instead of the whole seconds given at connect.
    public func setReceiveTimeout(milliseconds: Int) {
        var timeout = timeval(tv_sec: milliseconds / 1000, tv_usec: (milliseconds % 1000) * 1000)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
    }

    /// Everything the peer sends until it closes, a read times out, or `maxBytes`.
    public func readUntilClosed(maxBytes: Int = 1 << 20) -> (bytes: [UInt8], closed: Bool) {
        var data: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 4096)
        while data.count < maxBytes {
            let count = recv(fd, &buffer, buffer.count, 0)
            if count == 0 { return (data, true) }
            if count < 0 { return (data, errno == ECONNRESET) }
            data.append(contentsOf: buffer[..<count])
        }
        return (data, false)
    }

    /// `shutdown(SHUT_WR)`: the request is all sent; the answer can still be read.
    public func closeSendingSide() { shutdown(fd, Int32(SHUT_WR)) }

    /// Closes with a reset (SO_LINGER 0) instead of a FIN: a client that gives up.
    public func reset() {
        var linger = Glibc.linger(l_onoff: 1, l_linger: 0)
        setsockopt(fd, SOL_SOCKET, SO_LINGER, &linger, socklen_t(MemoryLayout<Glibc.linger>.size))
        close(fd)
        fd = -1
    }

    /// True when the peer closed the connection (read returns 0) within the timeout.
    public func isClosedByPeer() -> Bool {
        var byte: UInt8 = 0
        let count = recv(fd, &byte, 1, 0)
        // A reset counts: a server that closes with unread request bytes sends one.
        return count == 0 || (count < 0 && errno == ECONNRESET)
    }
}

extension String {
    func trimmingCharacters(in set: Character) -> String {
        var text = Substring(self)
        while text.first == set { text = text.dropFirst() }
        while text.last == set { text = text.dropLast() }
        return String(text)
    }
}

/// Runs blocking socket work on a thread of its own: async tests must not block Swift's
/// cooperative pool (two threads on a 2-core machine), which the relay's own tasks need.
public func offCooperativePool<T: Sendable>(_ body: @escaping @Sendable () -> T) async -> T {
    await withCheckedContinuation { continuation in
        Thread { continuation.resume(returning: body()) }.start()
    }
}

/// `GET /healthz` on a fresh connection, blocking (call it off the cooperative pool): the
/// status, or nil when no answer came within `timeoutSeconds`.
public func rawHealthz(port: Int, timeoutSeconds: Int = 5) -> Int? {
    let probe = try? RawConnection(port: port, timeoutSeconds: timeoutSeconds)
    try? probe?.send("GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
    return probe?.readResponse()?.status
}

/// POSTs `body` on a fresh connection; the status, or nil when the exchange failed.
public func rawPost(port: Int, path: String = "/ingest?name=app", body: String) async -> Int? {
    await offCooperativePool {
        guard let connection = try? RawConnection(port: port),
            (try? connection.send("POST \(path) HTTP/1.1\r\nHost: localhost:4040\r\nContent-Length: \(body.utf8.count)\r\n\r\n\(body)")) != nil
        else { return nil }
        return connection.readResponse()?.status
    }
}
