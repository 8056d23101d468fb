import MeshBroker
import NIOCore
import NIOHTTP1
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
/// potentially one wake-up) per request, the first result of a burst schedules a single task that
/// answers every request whose result is queued by then. A result comes back as a value (the
/// connection and the broker's result), not as a closure made per request.
final class LoopInbox: @unchecked Sendable {
    /// A batch holding this many events goes to the broker at once, without waiting for the
    /// iteration to end.
    static let batchEvents = 1024

    let loop: any EventLoop
    private let broker: Broker
    private let ingress: String
    private let queue = Mutex<(items: [Answer], scheduled: Bool)>(([], false))
    // Touched on `loop` only, which is what makes the class safe to share (@unchecked).
    private var outgoing: [PublishRequest] = []
    private var outgoingEvents = 0
    private var submitScheduled = false
    /// The drained array, kept for its capacity.
    private var spare: [Answer] = []
    /// Heads of keep-alive `200` JSON answers by body length, as they go on the wire
    /// (`okJSONAnswer`), at most `maxHeads`.
    private var heads: [Int: [UInt8]] = [:]
    static let maxHeads = 64

    /// What comes back for one request: the connection to answer and the broker's result.
    struct Answer: Sendable {
        let to: NIOLoopBound<(HTTPConnectionHandler, ChannelHandlerContext)>
        /// The request was a batch: its receipts are answered as a JSON array.
        let batch: Bool
        let result: Result<[PublishReceipt], BrokerError>
    }

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

    /// A keep-alive `200` answer with a JSON `body`, head and body in one buffer as they go on the
    /// wire: the bytes NIO's `HTTPResponseEncoder` writes for such a head. The head is made once per
    /// body length on this loop (the receipts of one topic differ in length by a few bytes at most).
    /// On `loop`.
    func okJSONAnswer(_ body: [UInt8], allocator: ByteBufferAllocator) -> ByteBuffer {
        let head: [UInt8]
        if let known = heads[body.count] {
            head = known
        } else {
            head = Array("HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: \(body.count)\r\n\r\n".utf8)
            if heads.count >= Self.maxHeads { heads.removeAll(keepingCapacity: true) }
            heads[body.count] = head
        }
        var buffer = allocator.buffer(capacity: head.count + body.count)
        buffer.writeBytes(head)
        buffer.writeBytes(body)
        return buffer
    }

    /// Hands one request's result back to the loop; from any thread, once per published request.
    func complete(_ answer: Answer) {
        let schedule = queue.withLock { q -> Bool in
            q.items.append(answer)
            if q.scheduled { return false }
            q.scheduled = true
            return true
        }
        if schedule { loop.execute { self.drain() } }
    }

    private func drain() {
        var items: [Answer] = []
        swap(&items, &spare)
        queue.withLock { q in
            swap(&items, &q.items)
            q.scheduled = false
        }
        for a in items {
            let (handler, context) = a.to.value
            handler.answer(a.result, batch: a.batch, context: context)
        }
        items.removeAll(keepingCapacity: true)
        spare = items
    }
}
