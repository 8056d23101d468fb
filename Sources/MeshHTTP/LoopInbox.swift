import MeshBroker
import NIOCore
import Synchronization

/// One event loop's traffic with the broker, both ways, shared by every HTTP connection on the loop.
///
/// Out: the publishes the loop's connections decode during one loop iteration are collected and
/// handed to the broker together, by a task the loop runs once the iteration's reads are done (NIO
/// runs tasks after the I/O of a tick). A loop serving many connections so costs the log one append
/// per partition per iteration instead of one per request; each request is still validated alone
/// and gets its own completion (`Broker.publish(_ requests:ingress:)`), so a bad one fails alone.
///
/// Back: the log acknowledges a whole group commit at once; instead of one `execute` (and
/// potentially one wake-up) per request, the first completion of a burst schedules a single task
/// that runs every completion queued by then.
final class LoopInbox: @unchecked Sendable {
    /// A batch holding this many events goes to the broker at once, without waiting for the
    /// iteration to end.
    static let batchEvents = 1024

    let loop: any EventLoop
    private let broker: Broker
    private let ingress: String
    private let queue = Mutex<(items: [@Sendable () -> Void], scheduled: Bool)>(([], false))
    // Touched on `loop` only, which is what makes the class safe to share (@unchecked).
    private var outgoing: [PublishRequest] = []
    private var outgoingEvents = 0
    private var submitScheduled = false

    init(loop: any EventLoop, broker: Broker, ingress: String = "http") {
        self.loop = loop
        self.broker = broker
        self.ingress = ingress
    }

    // MARK: Out

    /// Queues a publish for the end of this loop iteration. Called on `loop`.
    func publish(_ request: PublishRequest) {
        loop.assertInEventLoop()
        outgoing.append(request)
        outgoingEvents += request.events.count
        if outgoingEvents >= Self.batchEvents {
            submitPublishes()
        } else if !submitScheduled {
            submitScheduled = true
            loop.execute { self.submitPublishes() }
        }
    }

    private func submitPublishes() {
        submitScheduled = false
        guard !outgoing.isEmpty else { return }
        let requests = outgoing
        outgoing.removeAll(keepingCapacity: true)
        outgoingEvents = 0
        broker.publish(requests, ingress: ingress)
    }

    // MARK: Back

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
