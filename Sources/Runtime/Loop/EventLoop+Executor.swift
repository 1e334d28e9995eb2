/// Each loop is a Swift task executor: `Task(executorPreference: loop)` keeps a task's code on
/// the loop thread across awaits, so async code started on a loop never hops to the global
/// concurrency pool. An actor that wants to live on a loop names `loop.serialExecutor`.
///
/// Why two executors and not one object conforming to both: a job the loop runs as a serial
/// executor makes the loop the task's current *isolation*, so every call into a nonisolated
/// async function (which must run "on the generic executor") is a switch the runtime can only
/// make by enqueueing the task again — about thirty re-enqueues per S3 GET. A job run on the
/// task executor alone leaves the isolation generic, and those calls continue inline.
extension EventLoop: TaskExecutor {
    public func enqueue(_ job: consuming ExecutorJob) {
        let job = UnownedJob(job)
        if inLoop {
            localJobsAppend(.task(job))
        } else {
            enqueueRemote(.task(job))
        }
    }

    public func asUnownedTaskExecutor() -> UnownedTaskExecutor {
        UnownedTaskExecutor(ordinary: self)
    }
}

/// The serial executor of one loop, for actors pinned to that loop thread
/// (`nonisolated var unownedExecutor: UnownedSerialExecutor { loop.serialExecutor.asUnownedSerialExecutor() }`).
public final class LoopSerialExecutor: SerialExecutor, @unchecked Sendable {
    /// Set once by the loop's initializer, before the loop is published to any other thread.
    unowned(unsafe) var loop: EventLoop?

    init() {}

    public func enqueue(_ job: consuming ExecutorJob) {
        let job = UnownedJob(job)
        let loop = self.loop!
        if loop.inLoop {
            loop.localJobsAppend(.isolated(job))
        } else {
            loop.enqueueRemote(.isolated(job))
        }
    }

    public func asUnownedSerialExecutor() -> UnownedSerialExecutor {
        UnownedSerialExecutor(ordinary: self)
    }

    public func checkIsolated() {
        precondition(loop!.inLoop, "expected to run on event loop \(loop!.index)")
    }

    public func isSameExclusiveExecutionContext(other: LoopSerialExecutor) -> Bool {
        other === self
    }
}
