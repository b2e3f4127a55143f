// The ladder's first Swift step: what sockets.c does, in Swift over Glibc's sockets, so the
// difference to the C floor is the Swift runtime (static stdlib) alone.
import Glibc

func fail(_ message: String) -> Never {
    var line = Array("ladder: \(message)\n".utf8)
    _ = line.withUnsafeMutableBytes { write(2, $0.baseAddress, $0.count) }
    exit(1)
}

/// One request on `fd`; returns the response's header lines (lowercased names) and body.
func exchange(_ fd: Int32, _ request: String) -> (headers: [String: String], body: String) {
    var bytes = Array(request.utf8)
    var sent = 0
    while sent < bytes.count {
        let n = bytes.withUnsafeMutableBytes { write(fd, $0.baseAddress! + sent, $0.count - sent) }
        if n <= 0 { fail("write failed") }
        sent += n
    }
    var received: [UInt8] = []
    var chunk = [UInt8](repeating: 0, count: 4096)
    while true {
        let n = chunk.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
        if n <= 0 { fail("the API closed the connection") }
        received.append(contentsOf: chunk[0..<n])
        guard let end = headerEnd(received) else { continue }
        var headers: [String: String] = [:]
        for line in String(decoding: received[0..<end], as: UTF8.self).split(separator: "\r\n").dropFirst() {
            guard let colon = line.firstIndex(of: ":") else { continue }
            headers[line[..<colon].lowercased()] = String(line[line.index(after: colon)...].drop(while: { $0 == " " }))
        }
        let length = Int(headers["content-length"] ?? "0") ?? 0
        if received.count >= end + 4 + length {
            bytes = Array(received[(end + 4)..<(end + 4 + length)])
            return (headers, String(decoding: bytes, as: UTF8.self))
        }
    }
}

func headerEnd(_ bytes: [UInt8]) -> Int? {
    guard bytes.count >= 4 else { return nil }
    for i in 0...(bytes.count - 4) where bytes[i] == 13 && bytes[i + 1] == 10 && bytes[i + 2] == 13 && bytes[i + 3] == 10 {
        return i
    }
    return nil
}

guard let apiPointer = getenv("AWS_LAMBDA_RUNTIME_API") else { fail("AWS_LAMBDA_RUNTIME_API is not set") }
let api = String(cString: apiPointer)
guard let colon = api.lastIndex(of: ":"), let port = UInt16(api[api.index(after: colon)...]) else { fail("bad AWS_LAMBDA_RUNTIME_API \(api)") }
var address = sockaddr_in()
address.sin_family = sa_family_t(AF_INET)
address.sin_port = port.bigEndian
guard inet_pton(AF_INET, String(api[..<colon]), &address.sin_addr) == 1 else { fail("not an IPv4 address: \(api)") }
let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
var one: Int32 = 1
setsockopt(fd, Int32(IPPROTO_TCP), TCP_NODELAY, &one, socklen_t(MemoryLayout<Int32>.size))
let connected = withUnsafePointer(to: &address) {
    $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
}
if connected != 0 { fail("connect failed") }

let body = #"{"events":["SHUTDOWN"]}"#
let registered = exchange(
    fd,
    "POST /2020-01-01/extension/register HTTP/1.1\r\nHost: \(api)\r\nLambda-Extension-Name: ladder\r\n"
        + "Content-Type: application/json\r\nContent-Length: \(body.utf8.count)\r\n\r\n\(body)"
)
guard let identifier = registered.headers["lambda-extension-identifier"] else { fail("no Lambda-Extension-Identifier") }
while true {
    let event = exchange(fd, "GET /2020-01-01/extension/event/next HTTP/1.1\r\nHost: \(api)\r\nLambda-Extension-Identifier: \(identifier)\r\n\r\n")
    if event.body.contains(#""SHUTDOWN""#) { exit(0) }
}
