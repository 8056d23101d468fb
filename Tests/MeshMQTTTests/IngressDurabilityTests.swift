import MeshTestSupport
import Foundation
import MeshCore
import MeshLog
import Testing

/// 10,000 QoS 1 messages from an independent client (paho-mqtt) reach the log across a clean
/// restart of mosquitto and a kill -9 of meshgate, both in the middle of the flow: none is lost.
@Suite(.serialized) struct IngressDurabilityTests {
    static let count = 10_000

    @Test(arguments: ["5", "3.1.1"])
    func noAcknowledgedMessageIsLostAcrossRestartsAndKill9(_ protocolVersion: String) async throws {
        try #require(FileManager.default.isExecutableFile(atPath: meshgateBinary), "meshgate is not built at \(meshgateBinary)")
        let dir = Scratch()
        let broker = try Mosquitto(dir: dir.path + "/broker")
        try broker.start()
        try dir.write("routes/r.yaml", """
            version: 1
            connectors:
              edge: {type: mqtt, url: "mqtt://127.0.0.1:\(broker.port)", client_id: gw-ingress, protocol: "\(protocolVersion)", keepalive: 5s, reconnect_backoff: 100ms, reconnect_max_backoff: 500ms}
            routes:
              - name: devices-in
                from: {connector: edge, topic: "dev/#"}
                to: [{topic: "devices/{1}"}]
            """)
        let data = dir.path + "/data"
        var gateway = try startMeshgate(data: data, routes: dir.path + "/routes")
        try #require(gateway.waitFor { $0.contains("state=connected") } != nil, "meshgate did not connect: \(gateway.output)")

        let publisher = try Child(systemPython, [testClient, "publish", "--port", "\(broker.port)", "--count", "\(Self.count)",
                                                 "--rate", "2500", "--client-id", "pub-\(protocolVersion)", "--timeout", "90"])
        // A clean broker restart while messages flow.
        /// The highest value of `name=N` in the gateway's status lines; nil before the first.
        func counter(_ name: String, _ c: Child) -> Int? {
            c.output.compactMap { l in l.split(separator: " ").first { $0.hasPrefix(name + "=") }.flatMap { Int($0.dropFirst(name.count + 1)) } }.max()
        }
        func stored(_ c: Child) -> Int { counter("stored", c) ?? 0 }
        try #require(gateway.waitFor(30) { _ in stored(gateway) >= 1500 } != nil || stored(gateway) >= 1500, "no progress: \(gateway.output.suffix(3))")
        broker.stop()
        try await Task.sleep(for: .milliseconds(500))
        try broker.start()
        // kill -9 of the gateway while it receives.
        let before = stored(gateway)
        _ = gateway.waitFor(30) { _ in stored(gateway) >= before + 2000 }
        gateway.kill9()
        let killed = gateway
        try await Task.sleep(for: .milliseconds(300))
        gateway = try startMeshgate(data: data, routes: dir.path + "/routes")
        try #require(gateway.waitFor { $0.contains("state=connected") } != nil)

        publisher.wait()
        #expect(publisher.output.contains("acked \(Self.count)"), "the publisher did not get every PUBACK: \(publisher.output)")
        // Quiet for 2 s: the broker has nothing more for us.
        var last = -1
        while true {
            try await Task.sleep(for: .seconds(2))
            let now = gateway.output.count
            if now == last { break }
            last = now
        }
        gateway.terminate()
        #expect(gateway.output.last == "stopped")
        // Every message here has its route: one counted unrouted was acknowledged and not stored.
        for (run, child) in [("before the kill", killed), ("after the restart", gateway)] {
            #expect(counter("unrouted", child) == 0, "messages acknowledged as unrouted \(run): \(child.output.suffix(3))")
        }

        let log = try openLog(data)
        defer { log.close() }
        let events = try MeshTestSupport.events(log, matching: "devices/#")
        let payloads = events.map { String(decoding: $0.data, as: UTF8.self) }
        let expected = Set((0..<Self.count).map { "m-\($0)" })
        let missing = expected.subtracting(payloads)
        #expect(missing.isEmpty, "\(missing.count) acknowledged messages are missing, e.g. \(missing.sorted().prefix(5))")
        #expect(Set(payloads).isSubset(of: expected), "unexpected payloads")
        // Each event is the message as sent: topic from the template, data byte for byte.
        for e in events.prefix(200) {
            let i = Int(String(decoding: e.data, as: UTF8.self).dropFirst(2))!
            #expect(e.topic.name == "devices/\(i % 10)")
            #expect(e.source == "meshgate://meshgate/mqtt/edge")
        }
        // At least once: redeliveries after the kill and the restart may repeat a window of messages.
        let duplicates = payloads.count - Set(payloads).count
        print("ingress \(protocolVersion): \(Set(payloads).count) distinct of \(Self.count) sent, \(duplicates) redelivered duplicate(s)")
        #expect(duplicates <= 3 * 4096)
    }
}
