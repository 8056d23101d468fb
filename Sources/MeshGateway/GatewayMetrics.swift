import CoreMetrics
import Foundation
import MeshAuth
import MeshConfig
import MeshHTTP
import MeshLog
import MeshRouting
import Prometheus

/// The gateway's metrics: a Prometheus registry the libraries record into through swift-metrics
/// (publish and log instruments, via `factory`), and the families read at scrape time from the
/// log, the routing engine and the process. The executable bootstraps `MetricsSystem` with
/// `factory` once; the gateway also hands `factory` to its parts directly, so several gateways in
/// one process (the tests) each keep their own numbers.
public final class GatewayMetrics: Sendable {
    public let enabled: Bool
    public let registry = PrometheusCollectorRegistry()
    /// The swift-metrics backend: this registry, or no-op when metrics are off.
    public let factory: any MetricsFactory

    public init(enabled: Bool = true) {
        self.enabled = enabled
        factory = enabled ? CataloguedMetricsFactory(registry: registry) : NOOPMetricsHandler.instance
    }

    /// The text exposition: recorded instruments, then the families read now. One fresh registry
    /// per scrape for the derived ones, so a removed route or topic leaves no stale series.
    func render(log: DurableLog, status: NodeStatus, routing: RoutingControl, access: AccessControl) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(16 << 10)
        registry.emit(into: &out)
        let now = ScrapeRegistry()
        now.gauge("meshgate_build_info", [("version", status.version), ("node", status.node)], 1)
        now.gauge("meshgate_uptime_seconds", [], status.uptimeSeconds)
        now.gauge("meshgate_ready", [], status.notReadyReason == nil ? 1 : 0)
        Self.collectTopics(log, into: now)
        Self.collectRouting(routing, into: now)
        Self.collectAuth(access.metrics, into: now)
        Self.collectProcess(into: now)
        now.registry.emit(into: &out)
        return out
    }

    /// Refusals of authentication, ACL and rate: every label value appears (as 0 before the
    /// first), so alerts need no `absent()`.
    static func collectAuth(_ m: AuthMetrics, into r: ScrapeRegistry) {
        let failures = m.failures
        for reason in AuthFailure.Reason.allCases {
            r.counter("meshgate_auth_failures_total", [("reason", reason.rawValue)], failures[reason] ?? 0)
        }
        let denials = m.denials
        for operation in AccessDenied.Operation.allCases {
            r.counter("meshgate_acl_denials_total", [("operation", operation.rawValue)], denials[operation] ?? 0)
        }
        r.counter("meshgate_rate_limited_total", [], m.rateLimitedCount)
    }

    static func collectTopics(_ log: DurableLog, into r: ScrapeRegistry) {
        struct Row { var name: String; var partitions = 0; var segments = 0; var bytes: Int64 = 0; var end: Int64 = 0; var retained: Int64 = 0 }
        var rows: [Row] = []
        for t in log.topics {
            var row = Row(name: t.topic.name, partitions: t.partitions.count)
            for p in t.partitions {
                let (segments, bytes) = p.storage
                let (start, end) = (p.startOffset, p.endOffset)
                row.segments += segments
                row.bytes += bytes
                row.end += end
                row.retained += max(0, end - start)
            }
            rows.append(row)
        }
        r.gauge("meshgate_topics", [], Double(rows.count))
        r.gauge("meshgate_log_open_files", [], Double(log.openFiles))
        if rows.count > MetricsCatalogue.maxTopicSeries {
            rows.sort { $0.bytes > $1.bytes }
            var other = Row(name: "_other")
            for row in rows[(MetricsCatalogue.maxTopicSeries - 1)...] {
                other.partitions += row.partitions; other.segments += row.segments; other.bytes += row.bytes
                other.end += row.end; other.retained += row.retained
            }
            rows = Array(rows[..<(MetricsCatalogue.maxTopicSeries - 1)]) + [other]
        }
        for row in rows {
            let l = [("topic", row.name)]
            r.gauge("meshgate_topic_partitions", l, Double(row.partitions))
            r.gauge("meshgate_topic_segments", l, Double(row.segments))
            r.gauge("meshgate_topic_bytes", l, Double(row.bytes))
            r.gauge("meshgate_topic_end_offset", l, Double(row.end))
            r.gauge("meshgate_topic_retained_events", l, Double(row.retained))
        }
    }

    static func collectRouting(_ routing: RoutingControl, into r: ScrapeRegistry) {
        guard let s = routing.manager?.status else {
            r.gauge("meshgate_routes_loaded", [], 0)
            return
        }
        r.gauge("meshgate_routes_loaded", [], s.loaded ? 1 : 0)
        r.gauge("meshgate_routes_generation", [], Double(s.generation))
        r.counter("meshgate_routes_reloads_total", [], s.reloads)
        r.counter("meshgate_routes_reload_failures_total", [], s.failedReloads)
        for d in s.destinations {
            let l = [("route", d.route), ("destination", d.destination)]
            let c = d.counters
            r.counter("meshgate_route_read_total", l, c.read)
            r.counter("meshgate_route_matched_total", l, c.matched)
            r.counter("meshgate_route_delivered_total", l, c.delivered)
            r.counter("meshgate_route_retries_total", l, c.failedAttempts)
            r.counter("meshgate_route_dead_lettered_total", l, c.deadLettered)
            r.counter("meshgate_route_filter_errors_total", l, c.filterErrors)
            r.gauge("meshgate_route_in_flight", l, Double(d.inFlight))
            r.gauge("meshgate_route_lag_events", l, Double(d.lag))
            r.gauge("meshgate_route_lag_seconds", l, d.lagSeconds)
            r.gauge("meshgate_route_waiting", l, d.state == .waiting ? 1 : 0)
        }
        // Connector state: what the connector runtimes report ("name", "state"), else whether
        // anything runs them at all.
        var runtimeState: [String: String] = [:]
        for entry in routing.registry.runtimeStatus {
            if let name = entry["name"] as? String, let state = entry["state"] as? String { runtimeState[name] = state }
        }
        for c in s.connectors {
            let state = runtimeState[c.name] ?? "no_runtime"
            r.gauge("meshgate_connector_state", [("connector", c.name), ("type", c.type), ("state", state)], 1)
        }
    }

    static func collectProcess(into r: ScrapeRegistry) {
        let p = ProcessSample.now()
        if let rss = p.residentBytes { r.gauge("process_resident_memory_bytes", [], Double(rss)) }
        if let vm = p.virtualBytes { r.gauge("process_virtual_memory_bytes", [], Double(vm)) }
        if let fds = p.openFiles { r.gauge("process_open_fds", [], Double(fds)) }
        if let max = p.maxFiles { r.gauge("process_max_fds", [], Double(max)) }
        if let cpu = p.cpuSeconds { r.counter("process_cpu_seconds_total", [], cpu) }
        if let start = p.startTime { r.gauge("process_start_time_seconds", [], start) }
    }
}

/// A throwaway registry for one scrape: help texts from the catalogue.
final class ScrapeRegistry {
    let registry = PrometheusCollectorRegistry()

    private func descriptor(_ name: String) -> MetricNameDescriptor {
        MetricNameDescriptor(metricName: name, unitName: "", helpText: MetricsCatalogue.byName[name]?.help ?? name)
    }

    func gauge(_ name: String, _ labels: [(String, String)], _ value: Double) {
        registry.makeGauge(descriptor: descriptor(name), labels: labels).set(value)
    }

    func counter(_ name: String, _ labels: [(String, String)], _ value: Int) {
        registry.makeCounter(descriptor: descriptor(name), labels: labels).increment(by: Int64(value))
    }

    func counter(_ name: String, _ labels: [(String, String)], _ value: Double) {
        registry.makeCounter(descriptor: descriptor(name), labels: labels).increment(by: value)
    }
}

/// swift-metrics onto a Prometheus registry, with help texts and buckets from the catalogue
/// (swift-metrics has no help text, and a family without one fails `promtool check metrics`).
struct CataloguedMetricsFactory: MetricsFactory {
    let registry: PrometheusCollectorRegistry

    private func descriptor(_ label: String) -> MetricNameDescriptor {
        MetricNameDescriptor(metricName: label, unitName: "", helpText: MetricsCatalogue.byName[label]?.help ?? label)
    }

    func makeCounter(label: String, dimensions: [(String, String)]) -> any CounterHandler {
        registry.makeCounter(descriptor: descriptor(label), labels: dimensions)
    }

    func makeFloatingPointCounter(label: String, dimensions: [(String, String)]) -> any FloatingPointCounterHandler {
        registry.makeCounter(descriptor: descriptor(label), labels: dimensions)
    }

    func makeRecorder(label: String, dimensions: [(String, String)], aggregate: Bool) -> any RecorderHandler {
        guard aggregate else { return registry.makeGauge(descriptor: descriptor(label), labels: dimensions) }
        return registry.makeValueHistogram(descriptor: descriptor(label), labels: dimensions,
                                           buckets: [0.001, 0.01, 0.1, 1, 10, 100, 1000, 10_000, 100_000])
    }

    func makeMeter(label: String, dimensions: [(String, String)]) -> any MeterHandler {
        registry.makeGauge(descriptor: descriptor(label), labels: dimensions)
    }

    func makeTimer(label: String, dimensions: [(String, String)]) -> any TimerHandler {
        registry.makeDurationHistogram(descriptor: descriptor(label), labels: dimensions, buckets: MetricsCatalogue.latencyBuckets)
    }

    func destroyCounter(_ handler: any CounterHandler) {
        if let c = handler as? Prometheus.Counter { registry.unregisterCounter(c) }
    }

    func destroyFloatingPointCounter(_ handler: any FloatingPointCounterHandler) {
        if let c = handler as? Prometheus.Counter { registry.unregisterCounter(c) }
    }

    func destroyRecorder(_ handler: any RecorderHandler) {
        if let g = handler as? Prometheus.Gauge { registry.unregisterGauge(g) }
        if let h = handler as? ValueHistogram { registry.unregisterValueHistogram(h) }
    }

    func destroyMeter(_ handler: any MeterHandler) {
        if let g = handler as? Prometheus.Gauge { registry.unregisterGauge(g) }
    }

    func destroyTimer(_ handler: any TimerHandler) {
        if let h = handler as? DurationHistogram { registry.unregisterDurationHistogram(h) }
    }
}

/// Memory, descriptors and CPU of this process, from /proc (Linux); nil fields elsewhere.
struct ProcessSample {
    var residentBytes: Int?
    var virtualBytes: Int?
    var openFiles: Int?
    var maxFiles: Int?
    var cpuSeconds: Double?
    var startTime: Double?

    static func now() -> ProcessSample {
        var s = ProcessSample()
        if let status = try? String(contentsOfFile: "/proc/self/status", encoding: .utf8) {
            for line in status.split(separator: "\n") {
                if line.hasPrefix("VmRSS:") { s.residentBytes = kib(line) }
                if line.hasPrefix("VmSize:") { s.virtualBytes = kib(line) }
            }
        }
        if let fds = try? FileManager.default.contentsOfDirectory(atPath: "/proc/self/fd") {
            s.openFiles = max(0, fds.count - 1)  // less the descriptor that lists the directory
        }
        var limit = rlimit()
        if getrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit) == 0 { s.maxFiles = Int(limit.rlim_cur) }
        if let stat = try? String(contentsOfFile: "/proc/self/stat", encoding: .utf8),
           let close = stat.lastIndex(of: ")") {
            // Fields after the command name: state is field 3, utime 14, stime 15, starttime 22.
            let fields = stat[stat.index(after: close)...].split(separator: " ")
            let ticks = Double(sysconf(Int32(_SC_CLK_TCK)))
            if fields.count > 19, let utime = Double(fields[11]), let stime = Double(fields[12]), let started = Double(fields[19]), ticks > 0 {
                s.cpuSeconds = (utime + stime) / ticks
                if let boot = bootTime() { s.startTime = boot + started / ticks }
            }
        }
        return s
    }

    private static func kib(_ line: Substring) -> Int? {
        line.split(separator: " ", omittingEmptySubsequences: true).dropFirst().first.flatMap { Int($0) }.map { $0 * 1024 }
    }

    private static func bootTime() -> Double? {
        guard let stat = try? String(contentsOfFile: "/proc/stat", encoding: .utf8) else { return nil }
        for line in stat.split(separator: "\n") where line.hasPrefix("btime ") {
            return Double(line.dropFirst(6).trimmingCharacters(in: .whitespaces))
        }
        return nil
    }
}
