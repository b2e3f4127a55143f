// + NIOSSL: after /register, a client TLS context with the system trust roots, as the relay
// makes it (lazily, after registration: nothing needs it before the first HTTPS upload).
import LadderHTTP
import NIOCore
import NIOPosix
import NIOSSL

let group = MultiThreadedEventLoopGroup.singleton
let listener = try bindListener(group: group).wait()
let client = try ExtensionsClient.connect(group: group).wait()
let identifier = try client.register(name: "ladder").wait()
var tls = TLSConfiguration.makeClientConfiguration()
tls.trustRoots = .default
let context = try NIOSSLContext(configuration: tls)
try client.nextUntilShutdown(identifier: identifier).wait()
withExtendedLifetime(context) {}
try client.close().wait()
try listener.close().wait()
