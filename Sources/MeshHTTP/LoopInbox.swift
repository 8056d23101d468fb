import NIOCore
import Synchronization

/// Hands work from the log's threads to one event loop in bursts. The log acknowledges a whole
/// group commit at once; instead of one `execute` (and potentially one wake-up) per request, the
/// first completion of a burst schedules a single task that runs every completion queued by then.
final class LoopInbox: Sendable {
    let loop: any EventLoop
    private let queue = Mutex<(items: [@Sendable () -> Void], scheduled: Bool)>(([], false))

    init(loop: any EventLoop) { self.loop = loop }

    func submit(_ work: @escaping @Sendable () -> Void) {
        let schedule = queue.withLock { q -> Bool in
            q.items.append(work)
            if q.scheduled { return false }
            q.scheduled = true
            return true
        }
        if schedule { loop.execute { self.drain() } }
    }

    private func drain() {
        let items = queue.withLock { q -> [@Sendable () -> Void] in
            defer {
                q.items.removeAll(keepingCapacity: true)
                q.scheduled = false
            }
            return q.items
        }
        for work in items { work() }
    }
}
