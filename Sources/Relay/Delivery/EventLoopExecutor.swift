import NIOCore

/// Runs a task's jobs on one NIO event loop. The upstream senders prefer it: an upload
/// offered on that loop, its request, its connection and its answer then all run on one
/// thread, where the cooperative pool would cost a wake-up and a context switch at each
/// step. Only for code that never blocks.
final class EventLoopTaskExecutor: TaskExecutor {
    let eventLoop: any EventLoop

    init(_ eventLoop: any EventLoop) {
        self.eventLoop = eventLoop
    }

    func enqueue(_ job: consuming ExecutorJob) {
        let job = UnownedJob(job)
        eventLoop.execute {
            job.runSynchronously(on: self.asUnownedTaskExecutor())
        }
    }
}
