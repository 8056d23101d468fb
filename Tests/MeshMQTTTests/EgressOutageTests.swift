import MeshTestSupport
import Foundation
import Testing

/// Egress while the broker is down for 10 s: events keep arriving in the log, deliveries fail
/// retryably and wait there, and once the broker is back every event is delivered, in order per key.
@Suite(.serialized) struct EgressOutageTests {
    @Test func everyEventIsDeliveredAfterTheBrokerReturnsInOrderPerKey() async throws {
        try #require(FileManager.default.isExecutableFile(atPath: meshgateBinary), "meshgate is not built at \(meshgateBinary)")
        let dir = Scratch()
        let broker = try Mosquitto(dir: dir.path + "/broker")
        try broker.start()
        let total = 3000
        // A persistent QoS 1 subscriber (its session survives the broker's clean restart).
        let subscriber = try Child(systemPython, [testClient, "subscribe", "--port", "\(broker.port)", "--topic", "dst/#",
                                                  "--count", "\(total)", "--client-id", "egress-sub", "--timeout", "60"])
        try #require(subscriber.waitFor { $0 == "#subscribed" } != nil)
        try dir.write("routes/r.yaml", """
            version: 1
            connectors:
              edge: {type: mqtt, url: "mqtt://127.0.0.1:\(broker.port)", client_id: gw-egress, qos: 1, reconnect_backoff: 200ms, reconnect_max_backoff: 1s}
            routes:
              - name: out
                from: "out/#"
                to:
                  - connector: edge
                    topic: "dst/{1}"
                    retry: {backoff: 50ms, max_backoff: 500ms}
            """)
        // 3000 events over ~15 s, keys k0..k4; the broker is away for 10 s in the middle.
        let gateway = try startMeshgate(data: dir.path + "/data", routes: dir.path + "/routes",
                                        extra: ["--produce", "\(total)", "--produce-topic", "out/a", "--produce-rate", "200", "--fsync", "none"])
        try #require(gateway.waitFor { $0.contains("state=connected") } != nil, "\(gateway.output)")
        try await Task.sleep(for: .seconds(3))
        broker.stop()
        try #require(gateway.waitFor { $0.contains("state=connecting") } != nil, "the connector did not notice the outage")
        try await Task.sleep(for: .seconds(10))
        try broker.start()
        try #require(gateway.waitFor(20) { $0.contains("state=connected") && $0.contains("attempts=0") } != nil)
        subscriber.wait()
        try await Task.sleep(for: .milliseconds(200))
        gateway.terminate()

        let received = subscriber.output.filter { !$0.hasPrefix("#") }
        var firstSeen: [String] = []
        var seen: Set<String> = []
        for p in received where seen.insert(p).inserted { firstSeen.append(p) }
        let expected = Set((0..<total).map { "k\($0 % 5):\($0)" })
        let missing = expected.subtracting(seen)
        #expect(missing.isEmpty, "\(missing.count) events never reached the subscriber, e.g. \(missing.sorted().prefix(5)); gateway: \(gateway.output.suffix(4)); broker log: \((try? String(contentsOfFile: dir.path + "/broker/mosquitto.log", encoding: .utf8)) ?? "-")")
        // Per key, first deliveries are in log order (a retried publish may repeat, never reorder).
        var lastPerKey: [String: Int] = [:]
        var outOfOrder = 0
        for p in firstSeen {
            let parts = p.split(separator: ":")
            guard parts.count == 2, let i = Int(parts[1]) else { continue }
            let key = String(parts[0])
            if let last = lastPerKey[key], last > i { outOfOrder += 1 }
            lastPerKey[key] = i
        }
        #expect(outOfOrder == 0, "\(outOfOrder) events arrived before an earlier event of the same key")
        print("egress outage: \(seen.count) of \(total) delivered, \(received.count - seen.count) duplicate(s)")
        // The outage was real: attempts failed while the broker was away.
        #expect(gateway.output.contains { $0.contains("state=connecting") && $0.contains("cannot connect") })
    }
}
