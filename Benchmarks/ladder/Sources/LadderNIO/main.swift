// SwiftNIO (Posix + HTTP1): a listener bound before /register, then the minimal client.
import LadderHTTP
import NIOCore
import NIOPosix

let group = MultiThreadedEventLoopGroup.singleton
let listener = try bindListener(group: group).wait()
let client = try ExtensionsClient.connect(group: group).wait()
let identifier = try client.register(name: "ladder").wait()
try client.nextUntilShutdown(identifier: identifier).wait()
try client.close().wait()
try listener.close().wait()
