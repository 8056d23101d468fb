import CMeshSupport
import Foundation

/// Runs `body` on a thread of its own, named for Foundation and for the kernel (`top -H`,
/// `perf --sort comm`, /proc/PID/task/TID/comm, which keep the first 15 bytes): Foundation's
/// `Thread.name` does not reach the kernel on Linux.
///
/// Returns once the thread carries its name, so whoever looks right after (a status page, `top -H`,
/// a test) never sees the anonymous thread it was for a moment.
public func startThread(named name: String, _ body: @escaping @Sendable () -> Void) {
    let named = DispatchSemaphore(value: 0)
    let thread = Thread {
        mesh_name_thread(name)
        named.signal()
        body()
    }
    thread.name = name
    thread.start()
    named.wait()
}
