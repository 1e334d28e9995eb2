/// Each loop is a Swift executor: an actor can name it as its executor, and
/// `Task(executorPreference: loop)` keeps a task's code on the loop thread across awaits, so
/// async code started on a loop never hops to the global concurrency pool.
extension EventLoop: SerialExecutor, TaskExecutor {
    public func enqueue(_ job: consuming ExecutorJob) {
        let job = UnownedJob(job)
        if inLoop {
            localJobsAppend(.task(job))
        } else {
            enqueueRemote(.task(job))
        }
    }

    public func asUnownedSerialExecutor() -> UnownedSerialExecutor {
        UnownedSerialExecutor(ordinary: self)
    }

    public func asUnownedTaskExecutor() -> UnownedTaskExecutor {
        UnownedTaskExecutor(ordinary: self)
    }

    public func checkIsolated() {
        precondition(inLoop, "expected to run on event loop \(index)")
    }

    public func isSameExclusiveExecutionContext(other: EventLoop) -> Bool {
        other === self
    }
}
