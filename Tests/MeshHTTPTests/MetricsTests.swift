import Foundation
import MeshClient
import MeshCore
import MeshGateway
import MeshHTTP
import MeshTestSupport
import Testing

/// Samples of a Prometheus text exposition, by name and labels.
struct Scrape {
    struct Sample { let name: String; let labels: [String: String]; let value: Double }
    let text: String
    let samples: [Sample]
    /// Family names from `# TYPE` lines, with their types.
    let types: [String: String]

    init(_ text: String) {
        self.text = text
        var samples: [Sample] = []
        var types: [String: String] = [:]
        for line in text.split(separator: "\n") {
            if line.hasPrefix("# TYPE ") {
                let parts = line.split(separator: " ")
                if parts.count == 4 { types[String(parts[2])] = String(parts[3]) }
                continue
            }
            if line.hasPrefix("#") { continue }
            guard let space = line.lastIndex(of: " "), let value = Double(line[line.index(after: space)...]) else { continue }
            let key = line[..<space]
            var labels: [String: String] = [:]
            var name = String(key)
            if let brace = key.firstIndex(of: "{") {
                name = String(key[..<brace])
                let body = key[key.index(after: brace)..<key.index(before: key.endIndex)]
                // Label values here never hold `",`; a simple split is enough for tests.
                for pair in body.components(separatedBy: "\",") {
                    let kv = pair.split(separator: "=", maxSplits: 1)
                    if kv.count == 2 { labels[String(kv[0])] = String(kv[1]).trimmingCharacters(in: CharacterSet(charactersIn: "\"")) }
                }
            }
            samples.append(Sample(name: name, labels: labels, value: value))
        }
        self.samples = samples
        self.types = types
    }

    /// The value of the sample named `name` whose labels include `labels`; nil when none.
    func value(_ name: String, _ labels: [String: String] = [:]) -> Double? {
        samples.first { s in s.name == name && labels.allSatisfy { k, v in s.labels[k] == v } }?.value
    }
}

extension TestGateway {
    func scrape() async throws -> Scrape {
        let r = try await get("/metrics")
        #expect(r.status == 200, "\(r.text)")
        #expect(r.header("content-type")?.hasPrefix("text/plain; version=0.0.4") == true)
        return Scrape(r.text)
    }

    /// Scrapes until `condition` holds (or fails the test after `timeout`).
    func scrape(until condition: (Scrape) -> Bool, timeout: Duration = .seconds(20),
                sourceLocation: SourceLocation = #_sourceLocation) async throws -> Scrape {
        let deadline = ContinuousClock.now + timeout
        while true {
            let s = try await scrape()
            if condition(s) { return s }
            if ContinuousClock.now > deadline {
                Issue.record("metrics never reached the expected values:\n\(s.text)", sourceLocation: sourceLocation)
                return s
            }
            try await Task.sleep(for: .milliseconds(50))
        }
    }

    /// The TCP listener's port, once it is bound (the test gateway only waits for HTTP).
    func tcpPort() async throws -> Int {
        let deadline = ContinuousClock.now + .seconds(30)
        while ContinuousClock.now < deadline {
            if let port = gateway.status.listeners.first(where: { $0.name == "tcp" })?.port { return port }
            try await Task.sleep(for: .milliseconds(5))
        }
        throw AdminClient.Failure(description: "the TCP listener did not bind in 30 s")
    }
}

/// Routes where every `orders/...` event is copied to `audit/...`, and a second destination whose
/// topic template renders an empty level for the topic `orders` itself ({1} is empty): that event
/// cannot be delivered and goes to `dlq/broken`.
let auditAndBrokenRoutes = """
    version: 1
    routes:
      - name: audit
        from: "orders/#"
        to:
          - topic: "audit/{topic}"
      - name: broken
        from: "orders/#"
        to:
          - topic: "bad/{1}"
            dead_letter: "dlq/broken"
    """

func writeRoutes(_ yaml: String, into config: inout GatewayConfig) {
    try! FileManager.default.createDirectory(atPath: config.routesDirectory, withIntermediateDirectories: true)
    try! yaml.write(toFile: config.routesDirectory + "/routes.yaml", atomically: true, encoding: .utf8)
}

@Suite struct MetricsTests {
    @Test func countersMoveAsEventsFlowFailAndDeadLetter() async throws {
        let gw = try await TestGateway { writeRoutes(auditAndBrokenRoutes, into: &$0) }
        _ = try await gw.scrape { $0.value("meshgate_routes_loaded") == 1 }

        for i in 0..<5 { #expect(try await gw.post("/v1/publish/orders/eu", "order \(i)").status == 200) }
        #expect(try await gw.post("/v1/publish/orders", "no region").status == 200)
        let client = try await MeshClient.connect(port: try await gw.tcpPort(), name: "metrics")
        for i in 0..<3 { _ = try await client.publish(Event(topic: try Topic("orders/us"), data: Array("tcp \(i)".utf8))) }
        await client.close()
        #expect(try await gw.post("/v1/publish/bad+topic", "x").status == 400)

        let audit = ["route": "audit", "destination": "topic audit/{topic}"]
        let broken = ["route": "broken", "destination": "topic bad/{1}"]
        let s = try await gw.scrape { s in
            s.value("meshgate_route_delivered_total", audit) == 9 && s.value("meshgate_route_dead_lettered_total", broken) == 1
                && s.value("meshgate_route_delivered_total", broken) == 8
        }
        #expect(s.value("meshgate_publish_events_total", ["api": "http"]) == 6)
        #expect(s.value("meshgate_publish_events_total", ["api": "tcp"]) == 3)
        #expect(s.value("meshgate_publish_bytes_total", ["api": "http"]) == Double(5 * 7 + 9))
        #expect(s.value("meshgate_publish_seconds_count", ["api": "tcp"]) == 3)
        #expect(s.value("meshgate_route_matched_total", broken) == 9)
        #expect(s.value("meshgate_route_retries_total", broken) == 1)
        #expect(s.value("meshgate_route_retries_total", audit) == 0)
        #expect(s.value("meshgate_route_in_flight", broken) == 0)
        #expect(s.value("meshgate_route_lag_events", audit) == 0)
        // Publishes, routed copies and the dead letter all reached the log, each after an fsync.
        #expect((s.value("meshgate_log_written_records_total") ?? 0) >= 9 + 9 + 8 + 1)
        #expect((s.value("meshgate_log_fsync_seconds_count") ?? 0) >= 1)
        #expect(s.value("meshgate_topic_end_offset", ["topic": "orders/eu"]) == 5)
        #expect(s.value("meshgate_topic_end_offset", ["topic": "dlq/broken"]) == 1)
        #expect((s.value("meshgate_topic_bytes", ["topic": "orders/eu"]) ?? 0) > 0)
        #expect(s.value("meshgate_topic_segments", ["topic": "orders/eu"]) == 1)
        #expect(s.value("meshgate_ready") == 1)
        #expect((s.value("process_resident_memory_bytes") ?? 0) > Double(1 << 20))
        #expect((s.value("process_open_fds") ?? 0) > 3)
        try await gw.stop()
    }

    @Test func lagIsReportedWhileADestinationIsBehind() async throws {
        // A webhook whose receiver is not there: deliveries fail and retry, the events stay in the
        // log and show as lag, and the connector's state says it is failing.
        let gw = try await TestGateway {
            writeRoutes("""
                version: 1
                connectors:
                  hook: {type: webhook, url: "http://127.0.0.1:9/hook", timeout: 1s}
                routes:
                  - name: to-hook
                    from: "jobs/#"
                    to: [{connector: hook, retry: {backoff: 50ms, max_backoff: 200ms}}]
                """, into: &$0)
        }
        _ = try await gw.scrape { $0.value("meshgate_routes_loaded") == 1 }
        for i in 0..<3 { #expect(try await gw.post("/v1/publish/jobs/x", "job \(i)").status == 200) }
        let s = try await gw.scrape {
            ($0.value("meshgate_route_lag_events", ["route": "to-hook"]) ?? 0) >= 3
                && $0.value("meshgate_connector_state", ["connector": "hook", "type": "webhook", "state": "failing"]) == 1
        }
        #expect(s.value("meshgate_route_waiting", ["route": "to-hook"]) == 0)
        #expect((s.value("meshgate_route_delivered_total", ["route": "to-hook"]) ?? 0) == 0)
        try await gw.stop()
    }

    @Test func everyFamilyIsCataloguedWithHelpAndConventionalNames() async throws {
        let gw = try await TestGateway { writeRoutes(auditAndBrokenRoutes, into: &$0) }
        #expect(try await gw.post("/v1/publish/orders/eu", "x").status == 200)
        let s = try await gw.scrape { $0.value("meshgate_route_delivered_total", ["route": "audit"]) == 1 }
        let catalogue = Dictionary(uniqueKeysWithValues: MetricsCatalogue.all.map { ($0.name, $0) })
        #expect(s.types.count >= 30)
        for (name, type) in s.types {
            let entry = try #require(catalogue[name], "\(name) is not in MetricsCatalogue")
            #expect(entry.kind.rawValue == type, "\(name)")
            #expect(s.text.contains("# HELP \(name) "), "\(name) has no help")
            #expect((type == "counter") == name.hasSuffix("_total"), "\(name): counters and only counters end in _total")
        }
        try await gw.stop()
    }

    @Test(.enabled(if: FileManager.default.isExecutableFile(atPath: "/usr/bin/promtool"), "promtool (Debian prometheus) is not installed"))
    func promtoolAcceptsTheExpositionOfALoadedServer() async throws {
        let gw = try await TestGateway { writeRoutes(auditAndBrokenRoutes, into: &$0) }
        for i in 0..<20 { #expect(try await gw.post("/v1/publish/orders/\(i % 3 == 0 ? "eu" : "us")", "o\(i)").status == 200) }
        #expect(try await gw.post("/v1/publish/orders", "dead").status == 200)
        let s = try await gw.scrape { $0.value("meshgate_route_dead_lettered_total", ["route": "broken"]) == 1 }
        let (status, output) = try await ChildProcess.run("/usr/bin/promtool", ["check", "metrics"], stdin: Array(s.text.utf8))
        #expect(status == 0, "promtool check metrics:\n\(output)")
        try await gw.stop()
    }

    @Test func metricsOffAnswers404() async throws {
        let gw = try await TestGateway { $0.metrics = false }
        let r = try await gw.get("/metrics")
        try expectProblem(r, 404, "route.not_found", detail: "metrics are off")
        #expect(try await gw.post("/v1/publish/a", "x").status == 200)
        try await gw.stop()
    }
}

@Suite struct MonitoringExamplesTests {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

    /// The dashboard and the alerts only query metrics the gateway exports.
    @Test func dashboardAndAlertsUseCataloguedMetrics() throws {
        let known = Set(MetricsCatalogue.all.map(\.name))
        for file in ["examples/monitoring/grafana-dashboard.json", "examples/monitoring/meshgate-alerts.yml"] {
            let text = try String(contentsOf: Self.root.appendingPathComponent(file), encoding: .utf8)
            let names = try Regex(#"\b(meshgate|process)_[a-z_]+"#)
            var used = Set<String>()
            for match in text.matches(of: names) {
                var name = String(text[match.range])
                for suffix in ["_bucket", "_count", "_sum"] where name.hasSuffix(suffix) && !known.contains(name) {
                    name = String(name.dropLast(suffix.count))
                }
                used.insert(name)
            }
            #expect(used.count >= 5, "\(file)")
            for name in used.sorted() where name != "meshgate_overview" {
                #expect(known.contains(name), "\(file) uses \(name), which /metrics does not export")
            }
        }
        let dashboard = try JSONSerialization.jsonObject(with: Data(contentsOf: Self.root.appendingPathComponent("examples/monitoring/grafana-dashboard.json")))
        #expect(((dashboard as? [String: Any])?["panels"] as? [Any])?.count ?? 0 > 10)
    }
}
