#if canImport(Glibc)
import Glibc
#endif
import Foundation
import Logging
import MeshBroker
import MeshCore
import MeshLog
import MeshTCP
import MeshWire
import Synchronization

/// The receiving side of bridges: what this site does with events another site forwards.
///
/// 1. **Loop check**: an event whose hop list already names this site has been here; it is
///    acknowledged as `loop` and not stored.
/// 2. **Dedupe** by (origin site = first hop, event id) against a bounded window; a hit is
///    acknowledged as `duplicate` and not stored.
/// 3. Everything else gets this site appended to its hops and is stored through the broker (ingress
///    `bridge`); the ids enter the window once the append is durable, before the ack is sent.
///
/// The log itself is the durable dedupe record: an event counts as seen exactly when it is in the
/// log. The checkpoint file only saves re-reading the log at start: it holds the window and, per
/// partition, a position below which every stored bridged event is in that window; recovery loads
/// it and scans the log from those positions to the end. So a crash between an append and its
/// window insert loses nothing (the scan finds the event), and no id is ever recorded before its
/// event is durable. See docs/bridging.md.
public final class BridgeIngressService: BridgeIngress {
    public struct Options: Sendable {
        public var limits = DedupeLimits()
        /// How often the checkpoint is rewritten when something changed.
        public var checkpointInterval: Duration = .seconds(5)
        /// The topic each received event is stored under; nil keeps the topic it arrived with.
        public var topic: BridgeTopicTemplate?
        public init() {}
    }

    public let site: String
    let broker: Broker
    let options: Options
    /// The receiving topic template, nil when it keeps the topic (`{topic}`).
    private let mapping: BridgeTopicTemplate?
    let logger: Logger
    let path: String

    private struct State {
        var window: DedupeWindow
        /// Ids being stored right now, by any connection, per origin.
        var inFlight: [String: DedupeIDSet] = [:]
        /// Batches in flight, by ticket; a checkpoint waits for the ones older than its positions.
        var tickets: Set<UInt64> = []
        var nextTicket: UInt64 = 0
        var dirty = false
    }
    struct Key: Hashable, Sendable {
        let origin: String
        let id: DedupeID
    }
    private let state: Mutex<State>
    private let checkpointing = Mutex(false)
    let received = Atomic<Int>(0)
    let storedCount = Atomic<Int>(0)
    let duplicates = Atomic<Int>(0)
    let loops = Atomic<Int>(0)
    let contended = Atomic<Int>(0)

    /// Loads the checkpoint and scans the log past it; call before the TCP listener accepts.
    public init(site: String, broker: Broker, dataDirectory: String, options: Options = Options(),
                logger: Logger = Logger(label: "meshgate.bridge")) {
        self.site = site
        self.broker = broker
        self.options = options
        mapping = options.topic.flatMap { $0.isIdentity ? nil : $0 }
        self.logger = logger
        let dir = dataDirectory + "/bridge"
        try? FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        path = dir + "/dedupe.ckpt"
        let started = ContinuousClock.now
        var positions: [DedupeCheckpoint.Position: Int64] = [:]
        var window = DedupeWindow(limits: options.limits.window)
        if let data = FileManager.default.contents(atPath: path) {
            if let loaded = DedupeCheckpoint.decode([UInt8](data), limits: options.limits.window) {
                positions = loaded.positions
                window = loaded.window
            } else {
                logger.warning("bridge dedupe checkpoint \(path) is unreadable; rebuilding the window from the log")
            }
        }
        let scanned = Self.scan(log: broker.log, from: positions, site: site, into: &window, limits: options.limits)
        state = Mutex(State(window: window, dirty: scanned > 0))
        logger.info("bridge dedupe window loaded", metadata: [
            "ids": "\(window.count)", "scanned": "\(scanned)", "ms": "\((ContinuousClock.now - started).components.seconds * 1000 + (ContinuousClock.now - started).components.attoseconds / 1_000_000_000_000_000)",
        ])
    }

    /// Adds the bridged events stored at or after `positions` (from the start of partitions the
    /// checkpoint does not know, at most `limits.window.perOrigin` records back) to the window.
    static func scan(log: DurableLog, from positions: [DedupeCheckpoint.Position: Int64], site: String,
                     into window: inout DedupeWindow, limits: DedupeLimits) -> Int {
        var scanned = 0
        let now = Int64(Date().timeIntervalSince1970 * 1_000_000)
        for t in log.topics {
            for p in t.partitions {
                let end = p.endOffset
                var next = positions[.init(topic: t.topic.name, partition: p.index)]
                    ?? max(p.startOffset, end - Int64(limits.window.perOrigin))
                next = min(max(next, p.startOffset), end)
                while next < end {
                    guard let records = try? p.read(from: next, maxRecords: 4096, maxBytes: 8 << 20), !records.isEmpty else { break }
                    for r in records {
                        scanned += 1
                        guard let e = try? EventCodec.decode(r.payload), let origin = e.hops.first, origin != site else { continue }
                        window.insert(origin: origin, id: e.id, at: now)
                    }
                    next = records.last!.offset + 1
                }
            }
        }
        return scanned
    }

    // MARK: Ingress

    public func publish(_ events: [Event], from peer: String,
                        completion: @escaping @Sendable (Result<[MeshWire.PublishReceipt], WireError>) -> Void) {
        // The receiving topics first: a batch with an event the template cannot place is refused
        // whole before any of its ids goes in flight (the sender then delivers it one by one, and
        // dead-letters that event alone).
        var topics: [Topic]?
        if let template = mapping {
            do throws(TopicError) {
                topics = try events.map { e throws(TopicError) in try template.render(topic: e.topic, peer: peer, origin: e.hops.first ?? peer) }
            } catch {
                return completion(.failure(WireError(.invalidTopic, "bridge topic template \"\(template.description)\": \(error.message)")))
            }
        }
        let admitted = admit(events.count, from: peer) { i in
            (events[i].hops.contains(site), events[i].hops.first, events[i].id)
        }
        guard let admitted = answered(admitted, completion) else { return }
        let toStore = admitted.indices.map { i in
            var e = events[i]
            if e.hops.isEmpty { e.hops = [peer] }
            e.hops.append(site)
            if let topics { e.topic = topics[i] }
            return e
        }
        broker.publish(toStore, ingress: "bridge") { [self] result in finish(admitted, result, completion) }
    }

    /// Pass-through: each event that is new here is stored as the bytes it arrived in with this
    /// site appended to its hop list — the bytes the decoding path (`publish(_:from:completion:)`)
    /// would store, without decoding and re-encoding it. A batch with an event that filling would
    /// change (no hops, no time, …) or a receiving topic template takes the decoding path.
    public func publish(encoded envelopes: [EventEnvelope], from peer: String,
                        completion: @escaping @Sendable (Result<[MeshWire.PublishReceipt], WireError>) -> Void) {
        guard mapping == nil, envelopes.allSatisfy(\.isFilled) else {
            var events: [Event] = []
            events.reserveCapacity(envelopes.count)
            for envelope in envelopes {
                do { events.append(try EventCodec.decode(envelope.bytes)) } catch {
                    return completion(.failure(WireError(.invalidEvent, error.message)))
                }
            }
            return publish(events, from: peer, completion: completion)
        }
        // Through a buffer pointer, which lends each envelope: subscripting the array copies it
        // (a retain of each of its strings and arrays).
        let (admission, toStore) = envelopes.withUnsafeBufferPointer { envelopes -> (Admission?, [EncodedPublish]) in
            let admitted = admit(envelopes.count, from: peer) { i in
                (envelopes[i].names(hop: site), envelopes[i].origin, envelopes[i].id)
            }
            guard let admitted, !admitted.indices.isEmpty else { return (admitted, []) }
            return (admitted, admitted.indices.map { EncodedPublish(envelope: envelopes[$0], bytes: envelopes[$0].appendingHop(site)) })
        }
        guard let admitted = answered(admission, completion) else { return }
        broker.publish([PublishRequest(events: [], encoded: toStore) { [self] result in finish(admitted, result, completion) }],
                       ingress: "bridge")
    }

    /// What one batch stores: the receipts of what it does not (duplicates and loops), the
    /// indices of the events to store and their dedupe keys, and its in-flight ticket.
    struct Admission: Sendable {
        var receipts: [MeshWire.PublishReceipt?]
        var indices: [Int]
        var keys: [Key]
        var ticket: UInt64
    }

    /// Loop check and dedupe of a batch of `count` events, described by `event(i)`: whether its
    /// hops name this site, its first hop and its id. Nil when another bridge connection is
    /// storing one of them right now.
    private func admit(_ count: Int, from peer: String, _ event: (Int) -> (loop: Bool, origin: String?, id: String)) -> Admission? {
        received.add(count, ordering: .relaxed)
        var receipts = [MeshWire.PublishReceipt?](repeating: nil, count: count)
        var indices: [Int] = []
        var keys: [Key] = []
        // Outside the lock: each event's dedupe key, nil for one that has been here (a loop).
        let described = (0..<count).map { i -> Key? in
            let (loop, first, id) = event(i)
            // An event without hops came straight from the peer's own publishers.
            return loop ? nil : Key(origin: first ?? peer, id: DedupeID(id))
        }
        let ticket = state.withLock { s -> UInt64? in
            /// The keys this batch admitted so far, made only when an id turns out to be in flight
            /// already: a repeat within the batch, or an event another connection is storing.
            var admittedHere: Set<Key>?
            var start = 0
            while start < count {
                guard let origin = described[start]?.origin else {
                    receipts[start] = .loop
                    start += 1
                    continue
                }
                // A run of one origin (a bridge batch is usually all one) looks the origin up once,
                // and its window slots are loaded together before the checks read them one by one.
                var end = start + 1
                while end < count, described[end] == nil || described[end]!.origin == origin { end += 1 }
                let seen = s.window.ids(of: origin)
                if let seen {
                    for key in described[start..<end] { if let key { seen.prefetch(key.id) } }
                }
                if s.inFlight[origin] == nil { s.inFlight[origin] = DedupeIDSet() }
                let flying = s.inFlight.index(forKey: origin)!
                for i in start..<end {
                    guard let key = described[i] else {
                        receipts[i] = .loop
                        continue
                    }
                    if seen?.contains(key.id) == true {
                        receipts[i] = .duplicate
                        continue
                    }
                    if !s.inFlight.values[flying].insert(key.id) {
                        if admittedHere == nil { admittedHere = Set(keys) }
                        if admittedHere!.contains(key) {
                            receipts[i] = .duplicate
                            continue
                        }
                        // Another bridge is storing this event right now: let the sender retry
                        // shortly, when it will be a duplicate (or, if that store failed, stored
                        // by this retry).
                        for k in keys { s.inFlight[k.origin]?.remove(k.id) }
                        return nil
                    }
                    admittedHere?.insert(key)
                    keys.append(key)
                    indices.append(i)
                }
                start = end
            }
            s.nextTicket += 1
            s.tickets.insert(s.nextTicket)
            return s.nextTicket
        }
        guard let ticket else { return nil }
        return Admission(receipts: receipts, indices: indices, keys: keys, ticket: ticket)
    }

    /// Answers a batch with nothing to store (or contended) and returns nil; else the admission.
    private func answered(_ admitted: Admission?, _ completion: @Sendable (Result<[MeshWire.PublishReceipt], WireError>) -> Void) -> Admission? {
        guard let admitted else {
            contended.add(1, ordering: .relaxed)
            completion(.failure(WireError(.overloaded, "some of these events are being stored from another bridge; retry", retryAfterMilliseconds: 20)))
            return nil
        }
        let notStored = admitted.receipts.reduce(into: (0, 0)) { acc, r in
            if r == .duplicate { acc.0 += 1 } else if r == .loop { acc.1 += 1 }
        }
        duplicates.add(notStored.0, ordering: .relaxed)
        loops.add(notStored.1, ordering: .relaxed)
        guard !admitted.indices.isEmpty else {
            state.withLock { _ = $0.tickets.remove(admitted.ticket) }
            completion(.success(admitted.receipts.map { $0! }))
            return nil
        }
        return admitted
    }

    /// After the store: the ids enter the window (once durable), the ticket is returned, and the
    /// batch is answered.
    private func finish(_ admitted: Admission, _ result: Result<[MeshBroker.PublishReceipt], BrokerError>,
                        _ completion: @Sendable (Result<[MeshWire.PublishReceipt], WireError>) -> Void) {
        var receipts = admitted.receipts
        let batchKeys = admitted.keys
        let now = Int64(Date().timeIntervalSince1970 * 1_000_000)
        let durable = if case .success = result { true } else { false }
        state.withLock { s in
            // Runs of one origin (a bridge batch is usually all one) are handled together.
            var start = batchKeys.startIndex
            while start < batchKeys.endIndex {
                let origin = batchKeys[start].origin
                var end = start + 1
                while end < batchKeys.endIndex && batchKeys[end].origin == origin { end += 1 }
                let ids = batchKeys[start..<end].lazy.map(\.id)
                if let flying = s.inFlight.index(forKey: origin) {
                    for id in ids { s.inFlight.values[flying].remove(id) }
                }
                if durable { s.window.insert(origin: origin, ids: ids, at: now) }
                start = end
            }
            if durable { s.dirty = true }
            s.tickets.remove(admitted.ticket)
        }
        switch result {
        case .success(let stored):
            storedCount.add(stored.count, ordering: .relaxed)
            for (k, r) in zip(admitted.indices, stored) {
                receipts[k] = MeshWire.PublishReceipt(partition: UInt32(r.partition), offset: UInt64(r.offset))
            }
            completion(.success(receipts.map { $0! }))
        case .failure(let error):
            completion(.failure(WireError(broker: error)))
        }
    }

    // MARK: Checkpoints

    /// Writes the checkpoint if the window changed. Positions are read first; the window is copied
    /// only after every batch that was in flight then has finished, so each bridged event below a
    /// position is in the copy.
    public func checkpoint(force: Bool = false) async {
        guard checkpointing.withLock({ busy in busy ? false : { busy = true; return true }() }) else { return }
        defer { checkpointing.withLock { $0 = false } }
        let dirty = state.withLock { s -> Bool in
            defer { s.dirty = false }
            return s.dirty
        }
        guard dirty || force else { return }
        // Positions before tickets: a batch stored below a position took its ticket before the
        // position was read, so it is among `pending` and waited for.
        var positions: [DedupeCheckpoint.Position: Int64] = [:]
        for t in broker.log.topics {
            for p in t.partitions { positions[.init(topic: t.topic.name, partition: p.index)] = p.endOffset }
        }
        let pending = state.withLock { $0.tickets }
        while state.withLock({ !$0.tickets.isDisjoint(with: pending) }) {
            if (try? await Task.sleep(for: .milliseconds(5))) == nil { break }
        }
        let window = state.withLock { $0.window }
        let bytes = DedupeCheckpoint.encode(positions: positions, window: window)
        do {
            try Self.writeAtomically(bytes, to: path)
        } catch {
            state.withLock { $0.dirty = true }
            logger.error("cannot write the bridge dedupe checkpoint \(path): \(error)")
        }
    }

    /// Checkpoints every `checkpointInterval` until cancelled, then once more.
    public func run() async {
        while (try? await Task.sleep(for: options.checkpointInterval)) != nil {
            await checkpoint()
        }
        await checkpoint()
    }

    struct WriteError: Error, CustomStringConvertible {
        let description: String
    }

    static func writeAtomically(_ bytes: [UInt8], to path: String) throws {
        let temp = path + ".tmp"
        let fd = open(temp, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
        guard fd >= 0 else { throw WriteError(description: "open \(temp): errno \(errno)") }
        var written = 0
        let ok = bytes.withUnsafeBytes { raw -> Bool in
            while written < raw.count {
                let n = write(fd, raw.baseAddress! + written, raw.count - written)
                if n < 0 { if errno == EINTR { continue }; return false }
                written += n
            }
            return fsync(fd) == 0
        }
        close(fd)
        guard ok else { throw WriteError(description: "write \(temp): errno \(errno)") }
        guard rename(temp, path) == 0 else { throw WriteError(description: "rename \(temp): errno \(errno)") }
        let dir = open((path as NSString).deletingLastPathComponent, O_RDONLY)
        if dir >= 0 { fsync(dir); close(dir) }
    }

    /// For `GET /v1/connectors`.
    public func status() -> [String: any Sendable] {
        let ids = state.withLock { $0.window.count }
        return ["type": "meshgate-ingress", "site": site, "received": received.load(ordering: .relaxed),
                "stored": storedCount.load(ordering: .relaxed), "duplicates": duplicates.load(ordering: .relaxed),
                "loops": loops.load(ordering: .relaxed), "contended": contended.load(ordering: .relaxed),
                "dedupe_ids": ids, "topic": options.topic?.description ?? "{topic}"]
    }
}

/// Bounds of the dedupe window (docs/bridging.md).
public struct DedupeLimits: Sendable {
    var window = DedupeWindow.Limits()
    public init(perOrigin: Int = 500_000, maxAge: Duration = .seconds(24 * 3600)) {
        window.perOrigin = perOrigin
        window.maxAgeMicros = maxAge.components.seconds * 1_000_000
    }
}
