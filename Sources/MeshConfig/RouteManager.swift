import Foundation
import Logging
import MeshCore
import MeshRouting
import Synchronization

/// Owns the running route table: loads the routes directory, validates it, swaps it into the
/// engine atomically, and reports what happened. Reloads come from the file watcher, SIGHUP (the
/// serve command calls `reload()`) and the admin API (`POST /v1/routes/reload`). A bad file never
/// replaces a good table: the running routes stay and `status.lastError` says why.
public final class RouteManager: Sendable {
    public let path: String
    public let engine: RouteEngine
    private let environment: [String: String]
    private let logger: Logger
    private let state = Mutex(State())
    private let reloading = AsyncSerial()

    private struct State {
        var generation = 0
        var loaded = false
        var table = RouteTable.empty
        var lastErrors: [ConfigError] = []
        var lastReload: Date?
        var lastSuccess: Date?
        var watcher: Task<Void, Never>?
        var reloads = 0
        var failedReloads = 0
        var observers: [@Sendable (RouteTable) async -> Void] = []
    }

    public init(path: String, engine: RouteEngine, environment: [String: String] = ProcessInfo.processInfo.environment,
                logger: Logger = Logger(label: "meshgate.routes")) {
        self.path = path
        self.engine = engine
        self.environment = environment
        self.logger = logger
    }

    /// Loads, validates and applies the routes. Safe to call concurrently: reloads run one at a time.
    @discardableResult
    public func reload() async -> ReloadResult {
        await reloading.run { [self] in
            let now = Date()
            let table: RouteTable
            do throws(ConfigErrors) {
                table = try RouteLoader.load(path: path, environment: environment)
            } catch {
                let generation = state.withLock { s -> Int in
                    s.lastErrors = error.errors
                    s.lastReload = now
                    s.reloads += 1
                    s.failedReloads += 1
                    return s.generation
                }
                logger.error("route reload failed; keeping generation \(generation)", metadata: ["errors": "\(error.errors.count)"])
                for e in error.errors { logger.error("\(e.message)") }
                return ReloadResult(ok: false, generation: generation, errors: error.errors, changes: nil)
            }
            // Connector runtimes (ingress subscriptions) follow the table before its routes run.
            for observer in state.withLock({ $0.observers }) { await observer(table) }
            let changes = await engine.apply(table)
            let generation = state.withLock { s -> Int in
                s.generation += 1
                s.loaded = true
                s.table = table
                s.lastErrors = []
                s.lastReload = now
                s.lastSuccess = now
                s.reloads += 1
                return s.generation
            }
            logger.info("routes loaded", metadata: [
                "generation": "\(generation)", "routes": "\(table.routes.count)", "files": "\(table.files.count)",
                "started": "\(changes.started.count)", "stopped": "\(changes.stopped.count)", "kept": "\(changes.kept.count)",
            ])
            return ReloadResult(ok: true, generation: generation, errors: [], changes: changes)
        }
    }

    /// Calls `observer` with every table that is about to be applied (not with rejected ones), in
    /// reload order — how connector modules learn their ingress routes and connector changes.
    public func onApply(_ observer: @escaping @Sendable (RouteTable) async -> Void) {
        state.withLock { $0.observers.append(observer) }
    }

    /// Polls the route files' names, sizes and modification times every `interval` and reloads
    /// when they change (files added, removed or edited).
    public func watch(every interval: Duration = .seconds(1)) {
        let task = Task { [self] in
            var last = fingerprint()
            while !Task.isCancelled {
                do { try await Task.sleep(for: interval) } catch { return }
                let now = fingerprint()
                if now != last {
                    last = now
                    logger.info("route files changed; reloading")
                    await reload()
                }
            }
        }
        state.withLock { s in
            s.watcher?.cancel()
            s.watcher = task
        }
    }

    /// Stops watching and stops every delivery (cursors stay where they were committed).
    public func stop() async {
        let watcher = state.withLock { s -> Task<Void, Never>? in
            defer { s.watcher = nil }
            return s.watcher
        }
        watcher?.cancel()
        await engine.stop()
    }

    private func fingerprint() -> [String] {
        let files = (try? RouteLoader.routeFiles(at: path)) ?? []
        return files.map { f in
            let attrs = try? FileManager.default.attributesOfItem(atPath: f)
            let mtime = (attrs?[.modificationDate] as? Date)?.timeIntervalSince1970 ?? 0
            let size = (attrs?[.size] as? NSNumber)?.intValue ?? -1
            return "\(f)|\(mtime)|\(size)"
        }
    }

    /// What `GET /v1/routes` shows. Secrets are redacted.
    public var status: RouteStatus {
        let s = state.withLock { $0 }
        let routes = s.table.routes.map { r in
            RouteStatus.RouteSummary(
                name: r.name, from: r.source.description, where: r.filter?.text,
                destinations: r.destinations.enumerated().map { i, d in
                    RouteStatus.DestinationSummary(index: i, destination: d.label, deadLetter: d.deadLetter?.name, group: r.group(destination: i))
                },
                location: r.location.description)
        }
        let connectors = s.table.connectors.values.sorted { $0.name < $1.name }.map {
            RouteStatus.ConnectorSummary(name: $0.name, type: $0.kind.rawValue, options: $0.redactedOptions, location: $0.location.description)
        }
        return RouteStatus(generation: s.generation, loaded: s.loaded, files: s.table.files, routes: routes, connectors: connectors,
                           lastError: s.lastErrors.isEmpty ? nil : s.lastErrors.map(\.message).joined(separator: "\n"),
                           lastErrors: s.lastErrors, lastReload: s.lastReload, lastSuccess: s.lastSuccess,
                           reloads: s.reloads, failedReloads: s.failedReloads, destinations: engine.status)
    }
}

public struct ReloadResult: Sendable {
    public let ok: Bool
    /// The generation now running (unchanged when the reload failed).
    public let generation: Int
    public let errors: [ConfigError]
    /// Which (route, destination) pairs were started, stopped and kept; nil when the reload failed.
    public let changes: RouteEngine.ApplyResult?
}

public struct RouteStatus: Sendable {
    public struct DestinationSummary: Sendable {
        public let index: Int
        public let destination: String
        public let deadLetter: String?
        /// The consumer group holding this destination's cursor.
        public let group: String
    }
    public struct RouteSummary: Sendable {
        public let name: String
        public let from: String
        public let `where`: String?
        public let destinations: [DestinationSummary]
        public let location: String
    }
    public struct ConnectorSummary: Sendable {
        public let name: String
        public let type: String
        /// Options as written, secrets shown as `***`, `${ENV}` references unexpanded.
        public let options: [String: String]
        public let location: String
    }
    public let generation: Int
    /// False until a table has loaded successfully (for `/readyz`).
    public let loaded: Bool
    public let files: [String]
    public let routes: [RouteSummary]
    public let connectors: [ConnectorSummary]
    public let lastError: String?
    public let lastErrors: [ConfigError]
    public let lastReload: Date?
    public let lastSuccess: Date?
    public let reloads: Int
    public let failedReloads: Int
    /// Per (route, destination): state, lag and counters.
    public let destinations: [DestinationStatus]
}

/// Runs async bodies one at a time, in order.
final class AsyncSerial: Sendable {
    private let tail = Mutex<Task<Void, Never>?>(nil)

    func run<T: Sendable>(_ body: @escaping @Sendable () async -> T) async -> T {
        let task = tail.withLock { t -> Task<T, Never> in
            let previous = t
            let next = Task<T, Never> {
                await previous?.value
                return await body()
            }
            t = Task { _ = await next.value }
            return next
        }
        return await task.value
    }
}
