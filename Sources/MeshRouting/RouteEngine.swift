import Logging
import MeshCore
import MeshLog
import Synchronization

/// Runs a route table against the log: one `PairWorker` per (route, destination). Applying a new
/// table keeps the workers whose route selection and destination are unchanged (their cursors,
/// buffers and in-flight deliveries untouched), stops removed or changed ones, starts new ones.
/// Topics created later are picked up through the log's topic observer.
public final class RouteEngine: Sendable {
    public let log: DurableLog
    private let provider: (any DestinationProvider)?
    private let logger: Logger

    private struct State {
        var table = RouteTable.empty
        /// Keyed by consumer group, `route:<route>:<n>`.
        var workers: [String: PairWorker] = [:]
        var stopped = false
    }
    private let state = Mutex(State())
    /// Serialises `apply` and `stop`; the topic observer never waits on it.
    private let applying = AsyncLock()

    public init(log: DurableLog, provider: (any DestinationProvider)? = nil, logger: Logger = Logger(label: "meshgate.routing")) {
        self.log = log
        self.provider = provider
        self.logger = logger
        log.observeNewTopics { [weak self] topic in self?.topicCreated(topic) }
    }

    public struct ApplyResult: Sendable, Equatable {
        public var started: [String] = []
        public var stopped: [String] = []
        public var kept: [String] = []
    }

    public var table: RouteTable { state.withLock { $0.table } }

    /// Swaps in `table`. Unchanged pairs keep running without a pause.
    @discardableResult
    public func apply(_ table: RouteTable) async -> ApplyResult {
        await applying.run {
            var result = ApplyResult()
            var wanted: [String: (Route, Int)] = [:]
            for route in table.routes {
                guard case .topics = route.source else { continue }  // ingress runs in its connector
                for i in route.destinations.indices { wanted[route.group(destination: i)] = (route, i) }
            }
            let (old, isStopped, oldTable) = state.withLock { ($0.workers, $0.stopped, $0.table) }
            if isStopped { return result }
            var keep: [String: PairWorker] = [:]
            var retire: [PairWorker] = []
            for (group, worker) in old {
                if let (route, i) = wanted[group], route.selectionKey == worker.route.selectionKey,
                   route.destinations[i] == worker.spec,
                   Self.sameConnector(of: worker.spec, old: oldTable, new: table) {
                    keep[group] = worker
                    result.kept.append(group)
                } else {
                    retire.append(worker)
                    result.stopped.append(group)
                }
            }
            // Replaced pairs stop before their successors start: one reader per cursor at a time.
            for w in retire { await w.stop() }
            var fresh: [PairWorker] = []
            for (group, (route, i)) in wanted where keep[group] == nil {
                let (destination, reason) = makeDestination(route: route, index: i, table: table)
                let worker = PairWorker(route: route, index: i, destination: destination, waitingReason: reason, log: log, logger: logger)
                keep[group] = worker
                fresh.append(worker)
                result.started.append(group)
            }
            state.withLock {
                $0.table = table
                $0.workers = keep
            }
            for w in fresh { w.start() }
            result.started.sort(); result.stopped.sort(); result.kept.sort()
            return result
        }
    }

    /// Stops every pair (cursors stay committed where they were).
    public func stop() async {
        await applying.run {
            let workers = state.withLock { s -> [PairWorker] in
                s.stopped = true
                return Array(s.workers.values)
            }
            for w in workers { await w.stop() }
        }
    }

    /// A pair whose connector's url or options changed must restart: its destination runtime was
    /// built from the old settings.
    static func sameConnector(of spec: DestinationSpec, old: RouteTable, new: RouteTable) -> Bool {
        guard case .connector(let name, _) = spec.target else { return true }
        switch (old.connectors[name], new.connectors[name]) {
        case (nil, nil): return true
        case (let a?, let b?): return a.sameRuntime(as: b)
        default: return false
        }
    }

    private func makeDestination(route: Route, index: Int, table: RouteTable) -> ((any Destination)?, String?) {
        let spec = route.destinations[index]
        switch spec.target {
        case .topic:
            return (LogTopicDestination(log: log), nil)
        case .connector(let name, _):
            guard let connector = table.connectors[name] else { return (nil, "connector \(name) is not declared") }
            if let d = provider?.destination(for: connector, route: route, spec: spec) { return (d, nil) }
            return (nil, "no runtime for \(connector.kind.rawValue) connectors yet; events wait in the log")
        }
    }

    private func topicCreated(_ topic: TopicLog) {
        let targets = state.withLock { s -> [PairWorker] in
            s.table.trie.matchIndexes(topic.topic).flatMap { entry -> [PairWorker] in
                let route = s.table.routes[s.table.trie.entries[entry].value]
                return route.destinations.indices.compactMap { s.workers[route.group(destination: $0)] }
            }
        }
        for w in targets where w.route.source.pattern.matches(topic.topic) { w.addTopic(topic) }
    }

    /// One row per (route, destination), for `GET /v1/routes`, `GET /v1/connectors` and metrics.
    public var status: [DestinationStatus] {
        let workers = state.withLock { Array($0.workers.values) }
        return workers.map { w in
            DestinationStatus(route: w.route.name, index: w.index, group: w.group, destination: w.spec.label,
                              state: w.destination == nil ? .waiting : .running, waitingReason: w.waitingReason,
                              topics: w.topicCount, lag: w.lag, lagSeconds: w.lagSeconds, counters: w.counters.snapshot)
        }.sorted { ($0.route, $0.index) < ($1.route, $1.index) }
    }
}

public struct DestinationStatus: Sendable {
    public enum State: String, Sendable { case running, waiting }
    public let route: String
    public let index: Int
    public let group: String
    public let destination: String
    public let state: State
    public let waitingReason: String?
    public let topics: Int
    /// Records not yet delivered (committed) across the pair's partitions.
    public let lag: Int64
    /// Age of the oldest of them, seconds.
    public let lagSeconds: Double
    public let counters: DeliveryCounters.Snapshot

    /// Matched and neither delivered nor dead-lettered yet: being tried (or waiting to retry).
    public var inFlight: Int { max(0, counters.matched - counters.delivered - counters.deadLettered) }
}

/// A FIFO async mutex: holders may suspend while holding it.
final class AsyncLock: Sendable {
    private struct State {
        var locked = false
        var waiters: [CheckedContinuation<Void, Never>] = []
    }
    private let state = Mutex(State())

    func run<T: Sendable>(_ body: () async -> T) async -> T {
        await withCheckedContinuation { (c: CheckedContinuation<Void, Never>) in
            let acquired = state.withLock { s -> Bool in
                if !s.locked { s.locked = true; return true }
                s.waiters.append(c)
                return false
            }
            if acquired { c.resume() }
        }
        let result = await body()
        let next = state.withLock { s -> CheckedContinuation<Void, Never>? in
            if s.waiters.isEmpty { s.locked = false; return nil }
            return s.waiters.removeFirst()
        }
        next?.resume()
        return result
    }
}
