import CCurl
import CCurlShims
import Foundation
import MeshCore
import Synchronization

/// One HTTP POST, as the curl thread needs it. Built on the caller's task.
struct CurlRequest: Sendable {
    /// The url and settings: which idle easy handles the request may reuse.
    var target: TransferTarget
    /// Complete header lines, `Name: value`, as bytes.
    var headers: HeaderLines
    var body: [UInt8]
    var url: String { target.url }
    var options: TransferOptions { target.options }
}

/// Where a request goes and how: the url and the endpoint's transfer settings. An endpoint builds
/// it once; its hash is worked out then, so the curl thread, which keeps idle easy handles per
/// target, hashes no strings per request.
struct TransferTarget: Sendable, Hashable {
    let url: String
    let options: TransferOptions
    private let hash: Int

    init(url: String, options: TransferOptions) {
        self.url = url
        self.options = options
        var h = Hasher()
        h.combine(url)
        h.combine(options)
        hash = h.finalize()
    }

    static func == (a: TransferTarget, b: TransferTarget) -> Bool {
        a.hash == b.hash && a.url == b.url && a.options == b.options
    }

    func hash(into h: inout Hasher) { h.combine(hash) }
}

/// Per-endpoint transfer settings (from the connector's options).
struct TransferOptions: Sendable, Hashable {
    enum HTTPVersion: String, Sendable, Hashable {
        /// HTTP/2 when TLS negotiation (ALPN) offers it, HTTP/1.1 otherwise.
        case auto
        case http1 = "1.1"
        /// HTTP/2 without negotiation (cleartext h2c by prior knowledge).
        case http2PriorKnowledge = "2"
    }
    var connectTimeout: Duration = .seconds(5)
    var timeout: Duration = .seconds(30)
    var httpVersion: HTTPVersion = .auto
    var caFile: String?
    var certFile: String?
    var keyFile: String?
    var denyPrivate = false
}

/// How a transfer ended.
enum CurlOutcome: Sendable {
    case response(status: Int, retryAfter: String?, body: [UInt8])
    /// `code` is libcurl's CURLcode; `refused` is true when the SSRF guard refused every address.
    case failed(code: Int, message: String, refused: Bool)
    case cancelled
}

/// Where webhook transfers run: one or a few threads, each with its own libcurl multi handle
/// (connections and TLS sessions reused across connectors and routes), for when one core's worth
/// of libcurl is not enough. An endpoint's concurrency limit is split among the threads
/// (`makeLimit`), and each slot stays with its thread, so an endpoint never holds more
/// connections than its `concurrency` in all, whatever the number of threads. No Swift task or
/// NIO event loop ever blocks on the network.
final class CurlLoop: Sendable {
    /// The most response bytes kept (for the dead-letter event and the status page).
    static let snippetLimit = 512
    private let threads: [CurlThread]
    /// Where the next limit's share of slots starts, so endpoints with fewer slots than there are
    /// threads do not all land on the first thread.
    private let nextShare = Atomic<Int>(0)

    /// `name`: the threads' name, with `-0`, `-1`… after it when there are several; the kernel
    /// (`top -H`, /proc) keeps its first 15 bytes.
    init(name: String = "mg-webhook", threads: Int = 1) {
        let count = max(1, threads)
        self.threads = (0..<count).map { CurlThread(name: count > 1 ? "\(name)-\($0)" : name, index: $0) }
    }

    /// The libcurl threads.
    var threadCount: Int { threads.count }

    /// A concurrency limit of `concurrency` slots, split as evenly as possible among the threads.
    func makeLimit(_ concurrency: Int) -> TransferLimit {
        let n = threads.count
        let first = nextShare.add(1, ordering: .relaxed).newValue - 1
        var shares = [Int](repeating: concurrency / n, count: n)
        for k in 0..<(concurrency % n) { shares[(first + k) % n] += 1 }
        return TransferLimit(shares: shares, threads: threads)
    }

    /// Runs the request under `limit` and returns how it ended: at once when the limit has a free
    /// slot, otherwise once a transfer under the same limit ends, when the curl thread that ended it
    /// starts this one itself (the caller is resumed once, with the answer, not once for the slot
    /// and again for the answer). `slot`: the thread of a slot the caller took with
    /// `limit.acquire()`. Cancelling the task takes the request out of the queue or aborts the
    /// transfer.
    func perform(_ request: CurlRequest, limit: TransferLimit, slot: CurlThread? = nil) async -> CurlOutcome {
        let transfer = Transfer(request, limit: limit)
        // The C buffers go here, on the caller's thread, not on the curl thread (the bottleneck).
        defer { transfer.freeBuffers() }
        return await withTaskCancellationHandler {
            await withCheckedContinuation { (c: CheckedContinuation<CurlOutcome, Never>) in
                transfer.continuation = c
                enum Next { case start(CurlThread), queued, cancelled }
                let next = limit.state.withLock { s -> Next in
                    // The cancel handler sets the flag before it takes the lock: either it finds
                    // the transfer queued, or the transfer is never queued.
                    if transfer.cancelRequested.load(ordering: .relaxed) {
                        if let slot { return .start(slot) }  // the curl thread ends it and frees the slot
                        return .cancelled
                    }
                    guard let thread = slot ?? s.take(limit.threads) else {
                        s.enqueue(.transfer(transfer))
                        transfer.queued = true
                        return .queued
                    }
                    transfer.thread = thread
                    return .start(thread)
                }
                switch next {
                case .start(let thread): start(transfer, on: thread)
                case .queued: break
                case .cancelled: c.resume(returning: .cancelled)
                }
            }
        } onCancel: {
            transfer.cancelRequested.store(true, ordering: .relaxed)
            let (dequeued, thread) = limit.state.withLock { s -> (Bool, CurlThread?) in
                if transfer.queued {
                    s.remove(transfer)
                    transfer.queued = false
                    return (true, nil)
                }
                return (false, transfer.thread)
            }
            if dequeued { transfer.finish(.cancelled) } else { thread?.cancel(transfer) }
        }
    }

    /// Hands `transfer` (holding a slot of its limit) to `thread`. A stopped thread takes nothing:
    /// the transfer ends cancelled and its slot passes to the next in line, which ends the same way.
    private func start(_ transfer: Transfer, on thread: CurlThread) {
        var next: Transfer? = transfer
        while let t = next {
            if thread.submit(t) { return }
            next = t.limit.release(to: thread)
            t.finish(.cancelled)
        }
    }

    /// Aborts every transfer (their callers see `.cancelled`) and stops the threads.
    func shutdown() async {
        for t in threads { await t.shutdown() }
    }
}

/// A libcurl multi handle and the thread that drives it. Callers hand a transfer over under a
/// lock and wake the thread (an eventfd write) if it sleeps; the thread adds it to the multi
/// handle and drives curl through its socket interface over epoll (`mesh_curl_events_run`:
/// `curl_multi_socket_action` for each socket with activity and each expired timer, so a wake-up
/// touches only the transfers it concerns), and resumes the caller's continuation when curl
/// reports the transfer done. Everything curl-related is touched on that thread only.
final class CurlThread: Sendable {

    private struct Inbox {
        var submitted: [Transfer] = []
        var cancelled: [Transfer] = []
        var stopping = false
        /// The thread is in (or about to enter) its epoll wait: only then does a submission
        /// need a wakeup, which saves a syscall per request under load.
        var polling = false
    }
    private let inbox = Mutex(Inbox())
    /// The multi handle and its epoll loop: created in `init`, used on the loop thread only, but
    /// for `mesh_curl_events_wake` (an eventfd write), which any thread may call.
    private nonisolated(unsafe) let multi: UnsafeMutableRawPointer
    private nonisolated(unsafe) let events: OpaquePointer
    private let finished = Mutex<[CheckedContinuation<Void, Never>]?>([])
    /// Its place among the loop's threads: which share of each limit's slots is its own.
    let index: Int

    init(name: String, index: Int = 0, maxConnections: Int = 512) {
        self.index = index
        _ = Self.globalInit
        multi = curl_multi_init()
        _ = mesh_curl_multi_setopt_long(multi, CURLMOPT_PIPELINING, Int(CURLPIPE_MULTIPLEX))
        _ = mesh_curl_multi_setopt_long(multi, CURLMOPT_MAXCONNECTS, maxConnections)
        guard let events = mesh_curl_events_create(multi) else { fatalError("cannot create the webhook thread's epoll and eventfd descriptors") }
        self.events = events
        let m = UnsafeSendable(multi)
        startThread(named: name) { [self] in run(m.value) }
    }

    /// curl_global_init is not thread-safe: run it once, before any handle exists.
    private static let globalInit: Void = { _ = mesh_curl_global_init() }()

    /// Queues `transfer` for the loop thread, waking it if it sleeps. False when the thread stops.
    func submit(_ transfer: Transfer) -> Bool {
        let (accepted, wake) = inbox.withLock { box -> (Bool, Bool) in
            if box.stopping { return (false, false) }
            box.submitted.append(transfer)
            defer { box.polling = false }
            return (true, box.polling)
        }
        if wake { mesh_curl_events_wake(events) }
        return accepted
    }

    func cancel(_ transfer: Transfer) {
        inbox.withLock { $0.cancelled.append(transfer) }
        mesh_curl_events_wake(events)
    }

    func shutdown() async {
        await withCheckedContinuation { (c: CheckedContinuation<Void, Never>) in
            let done = finished.withLock { waiters -> Bool in
                guard waiters != nil else { return true }
                waiters!.append(c)
                return false
            }
            if done { c.resume(); return }
            inbox.withLock { $0.stopping = true }
            mesh_curl_events_wake(events)  // always: stopping is rare
        }
    }

    // MARK: the loop thread

    /// Idle easy handles are kept per target (url, settings): a handle reused for the same endpoint
    /// keeps every option but the per-request ones, so a request costs a handful of `setopt` calls.
    private typealias HandleKey = TransferTarget
    private static let maxIdlePerKey = 256

    private func run(_ multi: UnsafeMutableRawPointer) {
        var active: [UnsafeMutableRawPointer: Transfer] = [:]
        var idle: [HandleKey: [UnsafeMutableRawPointer]] = [:]
        /// Transfers that waited for a slot a transfer of this thread freed: this thread starts them.
        var ready: [Transfer] = []
        func recycle(_ easy: UnsafeMutableRawPointer, _ key: HandleKey) {
            if idle[key, default: []].count < Self.maxIdlePerKey { idle[key, default: []].append(easy) } else { curl_easy_cleanup(easy) }
        }
        /// Ends a transfer: its slot goes to the next in line first (so a caller that sees the
        /// answer sees the slot free), then the caller resumes.
        func end(_ t: Transfer, _ outcome: CurlOutcome) {
            if let next = t.limit.release(to: self) { ready.append(next) }
            t.finish(outcome)
        }
        var starting: [Transfer] = []
        while true {
            let (cancelled, stopping) = inbox.withLock { box in
                swap(&starting, &box.submitted)
                defer { box.cancelled.removeAll(keepingCapacity: true) }
                return (box.cancelled, box.stopping)
            }
            if !ready.isEmpty {
                starting.append(contentsOf: ready)
                ready.removeAll(keepingCapacity: true)
            }
            for t in starting {
                if t.cancelRequested.load(ordering: .relaxed) { end(t, .cancelled); continue }
                let key = t.request.target
                let reused = idle[key]?.popLast()
                let easy = reused ?? curl_easy_init()!
                if reused == nil, mesh_curl_events_attach(events, easy) != CURLE_OK {
                    curl_easy_cleanup(easy)
                    end(t, .failed(code: Int(CURLE_FAILED_INIT.rawValue), message: "cannot set up a transfer", refused: false))
                    continue
                }
                if let failure = t.configure(easy, fresh: reused == nil) {
                    curl_easy_cleanup(easy)
                    end(t, failure)
                    continue
                }
                t.easy = easy
                active[easy] = t
                curl_multi_add_handle(multi, easy)
            }
            starting.removeAll(keepingCapacity: true)
            for t in cancelled {
                guard let easy = t.easy, active.removeValue(forKey: easy) != nil else { continue }
                curl_multi_remove_handle(multi, easy)
                end(t, .cancelled)
                recycle(easy, t.request.target)
            }
            if stopping { break }
            // Sleep until socket activity, one of curl's timers, or a wakeup from a submission;
            // not at all when submissions arrived meanwhile or slots freed here wait to be used.
            let pending = inbox.withLock { box -> Bool in
                let pending = !box.submitted.isEmpty || !box.cancelled.isEmpty || box.stopping || !ready.isEmpty
                box.polling = !pending
                return pending
            }
            mesh_curl_events_run(events, pending ? 0 : 1000)
            inbox.withLock { $0.polling = false }
            var left: Int32 = 0
            while let message = curl_multi_info_read(multi, &left) {
                guard message.pointee.msg == CURLMSG_DONE, let easy = message.pointee.easy_handle else { continue }
                let code = mesh_curl_msg_result(message)
                curl_multi_remove_handle(multi, easy)
                if let t = active.removeValue(forKey: easy) {
                    end(t, t.outcome(code, easy))
                    recycle(easy, t.request.target)  // connections stay in the multi handle's cache
                } else {
                    curl_easy_cleanup(easy)
                }
            }
        }
        // Stopping: new submissions are refused from now on (`stopping` is set). End what is in
        // flight and what waits here; each freed slot passes to the next in line, which ends too.
        for (easy, t) in active {
            curl_multi_remove_handle(multi, easy)
            end(t, .cancelled)
            curl_easy_cleanup(easy)
        }
        let late = inbox.withLock { box in defer { box.submitted.removeAll() }; return box.submitted }
        ready.append(contentsOf: late)
        while let t = ready.popLast() { end(t, .cancelled) }
        for handles in idle.values { for easy in handles { curl_easy_cleanup(easy) } }
        curl_multi_cleanup(multi)
        mesh_curl_events_destroy(events)
        let waiters = finished.withLock { w in defer { w = nil }; return w ?? [] }
        for w in waiters { w.resume() }
    }
}

/// The concurrency limit of one endpoint (its `concurrency` option), kept with the transfers
/// rather than in front of them: a request that finds every slot taken is queued here, built, and
/// the curl thread whose transfer frees a slot starts it on the spot. The caller suspends once
/// and is resumed once, with the answer, and a busy endpoint costs no extra wake-up per request.
/// First come, first served. Callers that must build their request only once they hold a slot
/// (a signature's timestamp is the time of sending) wait with `acquire()` in the same queue.
///
/// Each slot belongs to one curl thread (`CurlLoop.makeLimit` splits them), and a freed slot
/// passes on within its thread: a thread never runs more of the endpoint's transfers at once
/// than its share, so its connection cache never holds more of the endpoint's connections.
final class TransferLimit: Sendable {
    fileprivate enum Entry {
        case transfer(Transfer)
        case waiter(UInt64, CheckedContinuation<CurlThread?, Never>)
    }
    struct State {
        /// Free slots per thread (by `CurlThread.index`).
        var free: [Int]
        fileprivate var queue: [Entry?] = []
        var head = 0
        var nextID: UInt64 = 0
        /// Requests and callers waiting for a slot.
        var waiting = 0

        /// Takes a free slot of the thread with the most free slots; nil when none is free.
        mutating func take(_ threads: [CurlThread]) -> CurlThread? {
            var best = 0
            for i in free.indices where free[i] > free[best] { best = i }
            guard free[best] > 0 else { return nil }
            free[best] -= 1
            return threads[best]
        }

        mutating func put(back thread: CurlThread) {
            free[thread.index] += 1
        }

        fileprivate mutating func enqueue(_ e: Entry) {
            queue.append(e)
            waiting += 1
        }

        fileprivate mutating func popFirst() -> Entry? {
            while head < queue.count {
                let e = queue[head]
                queue[head] = nil
                head += 1
                if let e { waiting -= 1; compact(); return e }
            }
            compact()
            return nil
        }

        /// Takes a queued transfer out (its caller was cancelled).
        fileprivate mutating func remove(_ transfer: Transfer) {
            guard let i = queue[head...].firstIndex(where: { if case .transfer(let t) = $0 { t === transfer } else { false } }) else { return }
            queue[i] = nil
            waiting -= 1
        }

        fileprivate mutating func removeWaiter(_ id: UInt64) -> CheckedContinuation<CurlThread?, Never>? {
            guard let i = queue[head...].firstIndex(where: { if case .waiter(let w, _) = $0 { w == id } else { false } }),
                  case .waiter(_, let c) = queue[i] else { return nil }
            queue[i] = nil
            waiting -= 1
            return c
        }

        private mutating func compact() {
            if head == queue.count { queue.removeAll(keepingCapacity: true); head = 0 } else if head > 1024 && head * 2 > queue.count {
                queue.removeFirst(head)
                head = 0
            }
        }
    }
    let state: Mutex<State>
    let limit: Int
    /// The loop's threads, by index.
    let threads: [CurlThread]

    /// `shares[i]` slots belong to `threads[i]`.
    fileprivate init(shares: [Int], threads: [CurlThread]) {
        precondition(shares.count == threads.count)
        limit = shares.reduce(0, +)
        self.threads = threads
        state = Mutex(State(free: shares))
    }

    /// Slots taken now (requests in flight or about to be).
    var inFlight: Int { limit - state.withLock { $0.free.reduce(0, +) } }
    /// Requests and callers waiting for a slot.
    var waiting: Int { state.withLock { $0.waiting } }
    /// Free slots per thread, by `CurlThread.index`.
    var freeSlots: [Int] { state.withLock { $0.free } }

    /// Takes a slot, waiting for one if needed, and returns its thread: pass it to
    /// `CurlLoop.perform(_:limit:slot:)`. Nil when the task was cancelled while waiting.
    func acquire() async -> CurlThread? {
        let (taken, id) = state.withLock { s -> (CurlThread?, UInt64) in
            if let thread = s.take(threads) { return (thread, 0) }
            s.nextID += 1
            return (nil, s.nextID)
        }
        if let taken { return taken }
        let cancelled = Atomic<Bool>(false)
        return await withTaskCancellationHandler {
            await withCheckedContinuation { (c: CheckedContinuation<CurlThread?, Never>) in
                let granted = state.withLock { s -> CurlThread?? in
                    if cancelled.load(ordering: .relaxed) { return .some(nil) }
                    if let thread = s.take(threads) { return .some(thread) }
                    s.enqueue(.waiter(id, c))
                    return nil
                }
                if let granted { c.resume(returning: granted) }
            }
        } onCancel: {
            cancelled.store(true, ordering: .relaxed)
            state.withLock { $0.removeWaiter(id) }?.resume(returning: nil)
        }
    }

    /// Passes on a slot of `thread`: to the first queued transfer, which is returned for `thread`
    /// to start (`thread` is recorded so a cancellation finds it), or to the first waiting caller,
    /// which resumes holding it; with no one waiting the slot is free again.
    func release(to thread: CurlThread) -> Transfer? {
        let next = state.withLock { s -> Entry? in
            guard let e = s.popFirst() else { s.put(back: thread); return nil }
            if case .transfer(let t) = e {
                t.queued = false
                t.thread = thread
            }
            return e
        }
        switch next {
        case .transfer(let t): return t
        case .waiter(_, let c): c.resume(returning: thread); return nil
        case nil: return nil
        }
    }
}

struct UnsafeSendable<T>: @unchecked Sendable {
    let value: T
    init(_ value: T) { self.value = value }
}

/// One transfer, queued under its limit or in flight. Once on a curl thread only that thread
/// touches it, but for the atomic cancel flag and `queued`/`thread` (under the limit's lock);
/// C buffers it owns live until `finish`.
final class Transfer: @unchecked Sendable {
    let request: CurlRequest
    let limit: TransferLimit
    /// Under `limit`'s lock: the transfer waits in the limit's queue; the thread that runs it.
    var queued = false
    var thread: CurlThread?
    var continuation: CheckedContinuation<CurlOutcome, Never>?
    let cancelRequested = Atomic<Bool>(false)
    var easy: UnsafeMutableRawPointer?
    private var headerList: UnsafeMutablePointer<curl_slist>?
    private var body: UnsafeMutableRawPointer?
    /// libcurl's error message and the SSRF guard's flag, in one allocation.
    private let scratch = UnsafeMutableRawPointer.allocate(byteCount: Int(CURL_ERROR_SIZE) + 8, alignment: 8)
    private var refused: UnsafeMutablePointer<Int32> { scratch.assumingMemoryBound(to: Int32.self) }
    private var errorBuffer: UnsafeMutablePointer<CChar> { (scratch + 8).assumingMemoryBound(to: CChar.self) }
    fileprivate var snippet: [UInt8] = []
    fileprivate var retryAfter: String?

    /// Builds curl's copies of the headers and body here, on the caller's thread, so the curl
    /// thread (the connector's bottleneck under load) only hands pointers to libcurl.
    init(_ request: CurlRequest, limit: TransferLimit) {
        self.request = request
        self.limit = limit
        scratch.initializeMemory(as: Int32.self, repeating: 0, count: 2)
        (scratch + 8).initializeMemory(as: CChar.self, repeating: 0, count: 1)  // an empty C string
        // The header list in one allocation rather than two per line (curl_slist_append): the
        // lines are already one buffer, NUL-terminated; the C side lays the nodes out before them.
        headerList = request.headers.bytes.withUnsafeBytes {
            mesh_curl_slist_block($0.baseAddress?.assumingMemoryBound(to: CChar.self), $0.count, request.headers.count)
        }
        let buffer = UnsafeMutableRawPointer.allocate(byteCount: max(1, request.body.count), alignment: 1)
        request.body.withUnsafeBytes { if let base = $0.baseAddress { buffer.copyMemory(from: base, byteCount: $0.count) } }
        body = buffer
    }

    deinit {
        freeBuffers()
        scratch.deallocate()
    }

    /// Frees the header list and body. Only once libcurl no longer reads them: after `finish`
    /// (the caller calls it when its continuation has resumed), or when never submitted.
    func freeBuffers() {
        free(headerList)  // one block (mesh_curl_slist_block)
        headerList = nil
        body?.deallocate()
        body = nil
    }

    /// Sets up `easy` for this request; a failure outcome if curl refused an option. A `fresh`
    /// handle gets every option; a reused one (same url and settings) only the per-request ones.
    func configure(_ easy: UnsafeMutableRawPointer, fresh: Bool) -> CurlOutcome? {
        let o = request.options
        var rc = CURLE_OK
        func set(_ r: CURLcode) { if rc == CURLE_OK { rc = r } }
        if fresh {
            set(mesh_curl_setopt_str(easy, CURLOPT_URL, request.url))
            set(mesh_curl_setopt_str(easy, CURLOPT_PROTOCOLS_STR, "http,https"))
            set(mesh_curl_setopt_long(easy, CURLOPT_NOSIGNAL, 1))
            set(mesh_curl_setopt_long(easy, CURLOPT_POST, 1))
            set(mesh_curl_setopt_write_callback(easy, transferWrite, nil))
            set(mesh_curl_setopt_header_callback(easy, transferHeader, nil))
            set(mesh_curl_setopt_long(easy, CURLOPT_CONNECTTIMEOUT_MS, Self.milliseconds(o.connectTimeout)))
            set(mesh_curl_setopt_long(easy, CURLOPT_TIMEOUT_MS, Self.milliseconds(o.timeout)))
            let version: Int = switch o.httpVersion {
            case .auto: Int(CURL_HTTP_VERSION_2TLS)
            case .http1: Int(CURL_HTTP_VERSION_1_1)
            case .http2PriorKnowledge: Int(CURL_HTTP_VERSION_2_PRIOR_KNOWLEDGE)
            }
            set(mesh_curl_setopt_long(easy, CURLOPT_HTTP_VERSION, version))
            // Wait for an HTTP/2 connection being set up rather than open another one beside it, where
            // HTTP/2 is possible: TLS (ALPN decides during the handshake) or prior knowledge. Never for
            // cleartext HTTP/1.1, where curl would learn only from a first response that the
            // connection cannot multiplex, so one hanging request would hold back every other request
            // to the same host (a failing webhook slowing a healthy one).
            let https = request.url.lowercased().hasPrefix("https:")
            if o.httpVersion == .http2PriorKnowledge || (o.httpVersion == .auto && https) {
                set(mesh_curl_setopt_long(easy, CURLOPT_PIPEWAIT, 1))
            }
            set(mesh_curl_setopt_long(easy, CURLOPT_TCP_KEEPALIVE, 1))
            set(mesh_curl_setopt_str(easy, CURLOPT_USERAGENT, "meshgate-webhook/1"))
            if let f = o.caFile { set(mesh_curl_setopt_str(easy, CURLOPT_CAINFO, f)) }
            if let f = o.certFile { set(mesh_curl_setopt_str(easy, CURLOPT_SSLCERT, f)) }
            if let f = o.keyFile { set(mesh_curl_setopt_str(easy, CURLOPT_SSLKEY, f)) }
        }
        // Per request: the buffers and callback data of this transfer.
        set(mesh_curl_setopt_ptr(easy, CURLOPT_ERRORBUFFER, errorBuffer))
        // curl reads the body and headers from these buffers while sending; they live until `finish`.
        set(mesh_curl_setopt_off(easy, CURLOPT_POSTFIELDSIZE_LARGE, curl_off_t(request.body.count)))
        set(mesh_curl_setopt_ptr(easy, CURLOPT_POSTFIELDS, body))
        set(mesh_curl_setopt_slist(easy, CURLOPT_HTTPHEADER, headerList))
        let me = Unmanaged.passUnretained(self).toOpaque()
        set(mesh_curl_setopt_ptr(easy, CURLOPT_WRITEDATA, me))
        set(mesh_curl_setopt_ptr(easy, CURLOPT_HEADERDATA, me))
        if o.denyPrivate {
            refused.pointee = 0
            set(mesh_curl_deny_private_addresses(easy, refused))
        }
        if rc != CURLE_OK {
            return .failed(code: Int(rc.rawValue), message: "cannot configure the request: \(String(cString: curl_easy_strerror(rc)))", refused: false)
        }
        return nil
    }

    static func milliseconds(_ d: Duration) -> Int {
        let (s, a) = d.components
        return max(1, Int(s) * 1000 + Int(a / 1_000_000_000_000_000))
    }

    func outcome(_ code: CURLcode, _ easy: UnsafeMutableRawPointer) -> CurlOutcome {
        if code == CURLE_OK {
            var status = 0
            _ = mesh_curl_getinfo_long(easy, CURLINFO_RESPONSE_CODE, &status)
            return .response(status: status, retryAfter: retryAfter, body: snippet)
        }
        let detail = String(cString: errorBuffer)
        let message = detail.isEmpty ? String(cString: curl_easy_strerror(code)) : detail
        return .failed(code: Int(code.rawValue), message: message, refused: refused.pointee != 0)
    }

    /// Resumes the caller. Called exactly once, on the loop thread, after the handle left the
    /// multi handle, which then no longer reads the header list and body: `deinit` frees them on
    /// whichever thread lets go last (usually the caller's).
    func finish(_ outcome: CurlOutcome) {
        easy = nil
        continuation?.resume(returning: outcome)
        continuation = nil
    }

    fileprivate func received(_ data: UnsafeRawBufferPointer) {
        let room = CurlLoop.snippetLimit - snippet.count
        if room > 0 { snippet.append(contentsOf: data.prefix(room)) }
    }

    fileprivate func header(_ line: UnsafeRawBufferPointer) {
        // Only two kinds of line matter; the first byte rules out the others cheaply.
        guard let first = line.first, first | 0x20 == UInt8(ascii: "h") || first | 0x20 == UInt8(ascii: "r") else { return }
        // A new status line (after a 1xx, or a redirect) starts a new set of headers.
        if line.starts(with: "HTTP/".utf8) { retryAfter = nil; snippet.removeAll(); return }
        let name = "retry-after:".utf8
        guard line.count > name.count,
              zip(line.prefix(name.count), name).allSatisfy({ ($0 | 0x20) == ($1 | 0x20) }) else { return }
        retryAfter = String(decoding: line.dropFirst(name.count), as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
    }
}

private let transferWrite: mesh_curl_data_callback = { data, size, count, user in
    let n = size * count
    if let data, let user, n > 0 {
        Unmanaged<Transfer>.fromOpaque(user).takeUnretainedValue().received(UnsafeRawBufferPointer(start: data, count: n))
    }
    return n
}

private let transferHeader: mesh_curl_data_callback = { data, size, count, user in
    let n = size * count
    if let data, let user, n > 0 {
        Unmanaged<Transfer>.fromOpaque(user).takeUnretainedValue().header(UnsafeRawBufferPointer(start: data, count: n))
    }
    return n
}

/// libcurl, opened once on first use (the binary does not link it): nil, or why it cannot be.
let curlUnavailable: String? = mesh_curl_load().map { String(cString: $0) }
