import Logging
import NIOCore
import Synchronization

#if canImport(Glibc)
    import Glibc
#else
    import Darwin
#endif

/// The relay's listening sockets, made with plain socket/bind/listen calls.
///
/// Lambda starts the function's runtime once every extension has registered, so the relay
/// must listen before it registers; but everything else can wait until after. Made this way
/// the sockets cost microseconds; SwiftNIO's server bootstrap, which then adopts them
/// (`IngressServer.bind(adopting:)`), cost about 1.1 million instructions of start-up
/// (callgrind), now spent after registration. Connections that arrive in between wait in
/// the kernel's backlog.
public final class ListeningSockets: Sendable {
    /// What `listen(2)` queues before the relay accepts.
    static let backlog: CInt = 256

    struct Socket: Sendable {
        var address: ListenAddress
        var descriptor: CInt
        var local: SocketAddress
    }

    private let sockets: Mutex<[Socket]>

    private init(_ sockets: [Socket]) { self.sockets = Mutex(sockets) }

    /// The addresses bound (with the port the kernel chose for port 0).
    public var localAddresses: [SocketAddress] { sockets.withLock { $0.map(\.local) } }

    /// Binds every address and listens. A loopback pair (127.0.0.1 and ::1) tolerates the
    /// IPv6 half failing, for hosts without IPv6 (logged at debug); any other failure closes
    /// what was bound and is thrown with what to change.
    public static func open(_ addresses: [ListenAddress], logger: Logger) throws(RelayError) -> ListeningSockets {
        // `::` beside `0.0.0.0` (PYROSCOPE_LISTEN_ADDRESS=:port) takes IPv6 only, so both bind
        // one port; otherwise IPv6 sockets are dual-stack, as SwiftNIO makes them.
        let v6Only = addresses.contains { $0.host == "0.0.0.0" }
        var bound: [Socket] = []
        for address in addresses {
            // With port 0 the first bind picks a port and the loopback twin takes the same.
            let port = address.port == 0 ? (bound.first?.local.port ?? 0) : address.port
            let listen = ListenAddress(host: address.host, port: port)
            do {
                bound.append(try openSocket(listen, v6Only: v6Only))
            } catch {
                let optionalTwin = address.host == "::1" && addresses.contains { $0.host == "127.0.0.1" } && !bound.isEmpty
                if optionalTwin {
                    logger.debug("IPv6 loopback unavailable, listening on 127.0.0.1 only", metadata: [LogKey.error: "\(error)"])
                    continue
                }
                for socket in bound { close(socket.descriptor) }
                if case .some(EACCES) = (error as? IOError)?.errnoCode {
                    // Lambda runs extensions as an unprivileged user: no port below 1024.
                    throw RelayError(
                        .bindFailed,
                        "cannot listen on \(listen): this user may not bind it (ports below 1024 need privileges Lambda does not give). Set PYROSCOPE_LISTEN_ADDRESS to a port from 1024 up",
                        underlying: error)
                }
                throw RelayError(
                    .bindFailed, "cannot listen on \(listen): is another process using the port? Set PYROSCOPE_LISTEN_ADDRESS to a free one",
                    underlying: error)
            }
        }
        return ListeningSockets(bound)
    }

    private static func openSocket(_ requested: ListenAddress, v6Only: Bool) throws -> Socket {
        // An address given as numbers (the default loopback pair) needs no getaddrinfo, which
        // asks the kernel for the host's interfaces over netlink and tries nscd's socket.
        let address =
            try (try? SocketAddress(ipAddress: requested.host, port: requested.port))
            ?? SocketAddress.makeAddressResolvingHost(requested.host, port: requested.port)
        let descriptor = socket(address.protocol.rawValue, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard descriptor >= 0 else { throw IOError(errnoCode: errno, reason: "socket") }
        do {
            var on: CInt = 1
            guard setsockopt(descriptor, SOL_SOCKET, SO_REUSEADDR, &on, socklen_t(MemoryLayout<CInt>.size)) == 0 else {
                throw IOError(errnoCode: errno, reason: "setsockopt(SO_REUSEADDR)")
            }
            if address.protocol == .inet6 {
                var only: CInt = v6Only ? 1 : 0
                // A host without IPv4 refuses the option: the socket is IPv6-only anyway.
                if setsockopt(descriptor, Int32(IPPROTO_IPV6), IPV6_V6ONLY, &only, socklen_t(MemoryLayout<CInt>.size)) != 0, errno != EAFNOSUPPORT {
                    throw IOError(errnoCode: errno, reason: "setsockopt(IPV6_V6ONLY)")
                }
            }
            try address.withSockAddr { pointer, length in
                guard bind(descriptor, pointer, socklen_t(length)) == 0 else { throw IOError(errnoCode: errno, reason: "bind") }
            }
            guard listen(descriptor, backlog) == 0 else { throw IOError(errnoCode: errno, reason: "listen") }
            var storage = sockaddr_storage()
            var length = socklen_t(MemoryLayout<sockaddr_storage>.size)
            let named = withUnsafeMutablePointer(to: &storage) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(descriptor, $0, &length) }
            }
            guard named == 0 else { throw IOError(errnoCode: errno, reason: "getsockname") }
            // The port the kernel chose (for port 0), in network byte order at the same
            // offset in sockaddr_in and sockaddr_in6.
            let chosen = withUnsafeBytes(of: &storage) { UInt16(bigEndian: $0.load(fromByteOffset: 2, as: UInt16.self)) }
            var local = address
            local.port = Int(chosen)
            return Socket(address: requested, descriptor: descriptor, local: local)
        } catch {
            close(descriptor)
            throw error
        }
    }

    /// Hands the sockets over (to SwiftNIO): each is taken once.
    func take() -> [Socket] {
        sockets.withLock { sockets in
            defer { sockets = [] }
            return sockets
        }
    }

    /// Closes sockets never handed over.
    public func closeUnadopted() {
        for socket in take() { close(socket.descriptor) }
    }

    deinit { closeUnadopted() }
}
