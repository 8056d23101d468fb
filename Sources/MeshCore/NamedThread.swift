import CMeshSupport
import Foundation

/// Runs `body` on a thread of its own, named for Foundation and for the kernel (`top -H`,
/// `perf --sort comm`, /proc/PID/task/TID/comm, which keep the first 15 bytes): Foundation's
/// `Thread.name` does not reach the kernel on Linux.
public func startThread(named name: String, _ body: @escaping @Sendable () -> Void) {
    let thread = Thread {
        mesh_name_thread(name)
        body()
    }
    thread.name = name
    thread.start()
}
