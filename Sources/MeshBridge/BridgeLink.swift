import Foundation
import MeshClient
import MeshNet
import MeshRouting
import MeshWire
import Synchronization

/// One outbound connection to a remote site, shared by every route destination that names the same
/// connector. It connects lazily, reconnects with backoff (MeshClient's, plus a retry on each
/// delivery while the first connection has not come up), and sends batches pipelined: a batch is
/// cut into PUBLISH_BATCH frames that are all in flight at once on the one connection, so the
/// remote appends them in order.
public final class BridgeLink: Sendable {
    public let connector: String
    public let host: String
    public let port: Int
    /// This site's name, sent in HELLO and appended to the hop list of what it forwards.
    public let site: String
    let token: String?
    /// TLS for `tls://` connectors: CA pinning, client certificate, server name.
    let tls: ClientTLS?
    /// Events per PUBLISH_BATCH frame, and bytes.
    let frameEvents: Int
    let frameBytes: Int

    private struct State {
        var client: MeshClient?
        var connecting = false
        var closed = false
        var lastError: String?
        var lastErrorAt: Date?
        /// Remote site name, from WELCOME.
        var remote: String?
    }
    private let state = Mutex(State())
    let sent = Atomic<Int>(0)
    let stored = Atomic<Int>(0)
    let duplicates = Atomic<Int>(0)
    let loops = Atomic<Int>(0)
    let failures = Atomic<Int>(0)
    /// Append time (µs) of the newest event the remote acknowledged, for the lag in seconds.
    let lastAckedTime = Atomic<Int64>(0)

    public init(connector: String, host: String, port: Int, site: String, token: String?, tls: ClientTLS? = nil,
                frameEvents: Int = 512, frameBytes: Int = 512 << 10) {
        self.connector = connector
        self.host = host
        self.port = port
        self.site = site
        self.token = token
        self.tls = tls
        self.frameEvents = frameEvents
        self.frameBytes = frameBytes
    }

    public var isConnected: Bool { state.withLock { $0.client?.isConnected ?? false } }
    public var lastError: String? { state.withLock { $0.lastError } }
    public var remoteSite: String? { state.withLock { $0.remote } }

    func noteError(_ message: String) {
        failures.add(1, ordering: .relaxed)
        state.withLock {
            $0.lastError = message
            $0.lastErrorAt = Date()
        }
    }

    /// The connected client, connecting first when there is none. Throws a retryable delivery
    /// error while the remote cannot be reached; the route's retry policy paces the attempts.
    func client() async throws(DeliveryError) -> MeshClient {
        enum Step { case use(MeshClient), connect, busy, closed }
        let step = state.withLock { s -> Step in
            if s.closed { return .closed }
            if let c = s.client { return .use(c) }
            if s.connecting { return .busy }
            s.connecting = true
            return .connect
        }
        switch step {
        case .use(let c): return c
        case .closed: throw DeliveryError("bridge \(connector) is closed", retryable: true)
        case .busy: throw DeliveryError("connecting to \(host):\(port)", retryable: true)
        case .connect: break
        }
        var configuration = MeshClient.Configuration(name: site, token: token)
        configuration.bridge = true
        configuration.tls = tls
        configuration.maxBackoff = .seconds(1)
        configuration.connectTimeout = .seconds(3)
        configuration.mergePublishes = false
        do {
            let c = try await MeshClient.connect(host: host, port: port, configuration: configuration)
            let keep = state.withLock { s -> Bool in
                s.connecting = false
                guard !s.closed else { return false }
                s.client = c
                s.remote = c.welcome?.serverName
                return true
            }
            if !keep { await c.close() }
            return c
        } catch {
            state.withLock { $0.connecting = false }
            let message = "cannot connect to \(host):\(port): \(error)"
            noteError(message)
            throw DeliveryError(message, retryable: true)
        }
    }

    /// Sends `events` (already carrying this site in their hop lists) and returns once the remote
    /// acknowledged every one: stored, or recognised as a duplicate or a loop.
    func send(_ events: [Event]) async throws(DeliveryError) {
        let client = try await client()
        let frames = Self.frames(of: events, size: EventCodec.encodedSize, maxEvents: frameEvents, maxBytes: frameBytes)
        sent.add(events.count, ordering: .relaxed)
        let results = await Self.collect(frames.count) { done in
            client.publish(batches: frames) { i, result in
                done(i, result.map { $0.map { PublishReceipt(partition: $0.partition, offset: $0.offset) } })
            }
        }
        try account(results)
        if let t = events.last?.time { lastAckedTime.store(t.microsecondsSinceEpoch, ordering: .relaxed) }
    }

    /// `send(_:)` for events in their encoding (hop lists ending with this site already), as the
    /// log stores them: the bytes go on the wire as they are. `lastTime` is the newest one's time.
    func send(encoded events: [[UInt8]], lastTime: Int64?) async throws(DeliveryError) {
        let client = try await client()
        let frames = Self.frames(of: events, size: { $0.count }, maxEvents: frameEvents, maxBytes: frameBytes)
        sent.add(events.count, ordering: .relaxed)
        let results = await Self.collect(frames.count) { done in
            client.publish(encodedBatches: frames, completion: done)
        }
        try account(results)
        if let lastTime { lastAckedTime.store(lastTime, ordering: .relaxed) }
    }

    /// The events cut into PUBLISH_BATCH frames of at most `maxEvents` events and `maxBytes` bytes.
    static func frames<T>(of events: [T], size: (T) -> Int, maxEvents: Int, maxBytes: Int) -> [[T]] {
        var frames: [[T]] = []
        var current: [T] = []
        var bytes = 0
        for e in events {
            let n = size(e)
            if !current.isEmpty && (current.count >= maxEvents || bytes + n > maxBytes) {
                frames.append(current)
                current = []
                bytes = 0
            }
            current.append(e)
            bytes += n
        }
        if !current.isEmpty { frames.append(current) }
        return frames
    }

    /// Hands `publish` a callback for each frame's result and waits for all `count` of them.
    ///
    /// Every frame in flight at once, handed in order to one connection: the remote appends them
    /// in that order, which keeps per-key order. One connection for all of them: were the client
    /// to reconnect halfway, later frames on the new connection would be stored before the
    /// earlier ones lost with the old, which the retry then appends after them.
    static func collect(_ count: Int, _ publish: (@escaping @Sendable (Int, Result<[PublishReceipt], WireError>) -> Void) -> Void) async
        -> [Result<[PublishReceipt], WireError>] {
        let collected = Mutex<(left: Int, results: [Result<[PublishReceipt], WireError>?])>((count, Array(repeating: nil, count: count)))
        return await withCheckedContinuation { cont in
            publish { i, result in
                let done = collected.withLock { c -> [Result<[PublishReceipt], WireError>]? in
                    c.results[i] = result
                    c.left -= 1
                    return c.left == 0 ? c.results.map { $0! } : nil
                }
                if let done { cont.resume(returning: done) }
            }
        }
    }

    /// Counts what the remote answered; throws the first failure.
    private func account(_ results: [Result<[PublishReceipt], WireError>]) throws(DeliveryError) {
        var counts = (stored: 0, duplicates: 0, loops: 0)
        defer {
            stored.add(counts.stored, ordering: .relaxed)
            duplicates.add(counts.duplicates, ordering: .relaxed)
            loops.add(counts.loops, ordering: .relaxed)
        }
        for r in results {
            switch r {
            case .success(let receipts):
                for receipt in receipts {
                    if receipt.partition == PublishReceipt.duplicate.partition {
                        if receipt.offset == PublishReceipt.loop.offset {
                            counts.loops += 1
                        } else {
                            counts.duplicates += 1
                        }
                    } else {
                        counts.stored += 1
                    }
                }
            case .failure(let error):
                let message = "\(host):\(port): \(error.message)"
                noteError(message)
                // Refusals that will not change on a retry (an invalid or too large event, an ACL)
                // are not retryable: the route's policy dead-letters them one by one.
                let retryable = error.isRetryable || !Self.permanent.contains(error.code)
                throw DeliveryError(message, retryAfter: error.retryAfterMilliseconds > 0 ? .milliseconds(error.retryAfterMilliseconds) : nil,
                                    retryable: retryable)
            }
        }
    }

    static let permanent: Set<WireErrorCode> = [.invalidEvent, .eventTooLarge, .forbidden, .invalidTopic]

    public func close() async {
        let c = state.withLock { s -> MeshClient? in
            s.closed = true
            defer { s.client = nil }
            return s.client
        }
        await c?.close()
    }
}
