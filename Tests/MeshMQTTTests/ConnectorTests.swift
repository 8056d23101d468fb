import MeshTestSupport
import Foundation
import Logging
import MeshBroker
import MeshConfig
import MeshCore
import MeshLog
@testable import MeshMQTT
import MeshRouting
import Testing

/// The log, broker, route engine and MQTT connectors in this process, on a scratch directory.
final class Gateway: @unchecked Sendable {
    // @unchecked: set up in init, then only read.
    let log: DurableLog
    let mqtt: MQTTConnectors
    let manager: RouteManager

    init(dir: Scratch, routes yaml: String) async throws {
        try dir.write("routes/r.yaml", yaml)
        var o = LogOptions()
        o.retentionCheckMicros = nil
        log = try DurableLog(directory: dir.path + "/data", options: o, logger: quietLogger)
        let broker = Broker(log: log, logger: quietLogger)
        mqtt = MQTTConnectors(broker: broker, logger: quietLogger)
        manager = RouteManager(path: dir.path + "/routes", engine: RouteEngine(log: log, provider: mqtt, logger: quietLogger), logger: quietLogger)
        let mqtt = self.mqtt
        manager.onApply { await mqtt.apply($0) }
        let result = await manager.reload()
        try #require(result.ok, "\(result.errors.map(\.message))")
    }

    func status(_ name: String) -> MQTTConnectorStatus? { mqtt.status.first { $0.name == name } }

    func waitConnected(_ name: String, seconds: Double = 10) async -> Bool {
        await eventually(seconds) { status(name)?.connection.state == .connected && !(status(name)?.connection.subscriptions.isEmpty ?? true) || (status(name)?.connection.state == .connected && status(name)?.ingressRoutes.isEmpty == true) }
    }

    func stop() async {
        await mqtt.stop()
        await manager.stop()
        log.close()
    }
}

/// A started mosquitto and a gateway whose connector `edge` is its client: what most connector tests
/// begin with. Hold it for the whole test: the broker stops, and the scratch directory goes, with it.
struct EdgeSetup {
    let dir = Scratch()
    let broker: Mosquitto
    let gw: Gateway

    /// `routes`: the entries of the route file's `routes:` list, indented by two spaces.
    init(clientID: String, routes: String) async throws {
        broker = try Mosquitto(dir: dir.path + "/broker")
        try broker.start()
        gw = try await Gateway(dir: dir, routes: """
            version: 1
            connectors:
              edge: {type: mqtt, url: "mqtt://127.0.0.1:\(broker.port)", client_id: \(clientID)}
            routes:

            """ + routes)
        #expect(await gw.waitConnected("edge"))
    }
}

@Suite(.serialized) struct ConnectorTests {
    /// MQTT 5 user properties, content type and correlation data become CloudEvents attributes on
    /// ingress, and the same attributes become those properties on egress.
    @Test func mqtt5PropertiesRoundTripThroughExtensions() async throws {
        let setup = try await EdgeSetup(clientID: "gw-props", routes: """
              - name: in
                from: {connector: edge, topic: "sensors/+/temp"}
                to: [{topic: "in/{1}"}]
              - name: back
                from: "in/+"
                to: [{connector: edge, topic: "back/{1}", set: {region: "{region}-echo"}}]
            """)
        let (broker, gw) = (setup.broker, setup.gw)
        // A persistent session subscribed before anything is published (`-E` returns once the SUBACK
        // arrived), so the echo is queued for it whenever the reader below connects.
        let session = ["-p", "\(broker.port)", "-V", "5", "-q", "1", "-c", "-i", "props-reader", "-t", "back/#"]
        let (subscribed, subscribeOutput) = try run("/usr/bin/mosquitto_sub", session + ["-E"])
        #expect(subscribed == 0, "\(subscribeOutput)")
        let (rc, out) = try run("/usr/bin/mosquitto_pub", ["-p", "\(broker.port)", "-V", "5", "-q", "1", "-t", "sensors/s1/temp", "-m", "{\"c\":21.5}",
                                                          "-D", "publish", "user-property", "region", "eu",
                                                          "-D", "publish", "user-property", "Device-Model", "TX-9",
                                                          "-D", "publish", "user-property", "type", "sensor.reading",
                                                          "-D", "publish", "user-property", "bad key!", "x",
                                                          "-D", "publish", "content-type", "application/json",
                                                          "-D", "publish", "correlation-data", "req-42",
                                                          "-D", "publish", "response-topic", "replies/s1"])
        #expect(rc == 0, "\(out)")
        #expect(await eventually { ((try? events(gw.log, matching: "in/#")) ?? []).count == 1 })
        let e = try #require(try events(gw.log, matching: "in/#").first)
        #expect(e.topic.name == "in/s1")
        #expect(String(decoding: e.data, as: UTF8.self) == "{\"c\":21.5}")
        #expect(e.datacontenttype == "application/json")
        #expect(e.type == "sensor.reading")
        #expect(e.extensions["region"] == "eu")
        #expect(e.extensions["devicemodel"] == "TX-9")
        #expect(e.extensions["badkey"] == "x")
        #expect(e.extensions["correlationdata"] == Data("req-42".utf8).base64EncodedString())
        #expect(e.extensions["responsetopic"] == "replies/s1")
        #expect(e.partitionKey == "sensors/s1/temp")
        #expect(e.source == "meshgate://meshgate/mqtt/edge")

        let sub = try Child("/usr/bin/mosquitto_sub", session + ["-F", "%j", "-C", "1", "-W", "20"])
        // Its output is read by a thread of its own: wait for the line, not for the exit.
        let json = try #require(sub.waitFor(20) { !$0.isEmpty }, "nothing came back")
        sub.wait()
        let obj = try #require(try JSONSerialization.jsonObject(with: Data(json.utf8)) as? [String: Any])
        #expect(obj["topic"] as? String == "back/s1")
        #expect(obj["payload"] as? String == "{\"c\":21.5}")
        let props = try #require(obj["properties"] as? [String: Any])
        #expect(props["content-type"] as? String == "application/json")
        #expect(props["correlation-data"] as? String == "req-42")
        #expect(props["response-topic"] as? String == "replies/s1")
        let user = try #require(props["user-properties"] as? [String: Any])
        #expect(user["region"] as? String == "eu-echo")
        #expect(user["devicemodel"] as? String == "TX-9")
        #expect(user["type"] as? String == "sensor.reading")
        #expect(user["id"] as? String == e.id)
        #expect(user["specversion"] as? String == "1.0")
        #expect(gw.status("edge")?.droppedProperties == 0)
        await setup.gw.stop()  // `setup` (the broker, the scratch directory) lives to here
    }

    /// Egress batches do not end waiting for the kernel's delayed-ACK timer. mosquitto leaves Nagle
    /// on by default (`set_tcp_nodelay false`), so it holds the PUBACK of a batch's last publish until
    /// its previous packet is acknowledged; the connector acknowledges what it reads at once
    /// (TCP_QUICKACK). Without that, each batch ended with a stall of about 40 ms: the 50 batches of
    /// 10 below took 2.2 s; with it about 0.1 s. The bound is generous
    /// against a loaded machine and still well under what 50 stalls cost.
    @Test func egressBatchesDoNotWaitForTheBrokersDelayedAcknowledgement() async throws {
        let setup = try await EdgeSetup(clientID: "gw-quickack", routes: """
              - name: out
                from: "quick/src"
                to: [{connector: edge, topic: "quick/out", buffer: 10}]
            """)
        let gw = setup.gw
        #expect(threadNames().contains("mg-mqtt-edge"), "the connector's loop thread is named for the kernel (top -H)")
        let topic = try gw.log.createTopic(Topic("quick/src"), config: TopicConfig(partitions: 1, durability: .none))
        let batch = (0..<500).map { i in EventCodec.encode(Event(topic: topic.topic, id: "q\(i)", source: "test", type: "t", data: Array("\(i)".utf8))) }
        let started = ContinuousClock.now
        _ = try await topic.partitions[0].append(batch: batch)
        func delivered() -> Int { gw.manager.engine.status.first { $0.route == "out" }?.counters.delivered ?? 0 }
        #expect(await eventually(20) { delivered() == 500 })
        let took = ContinuousClock.now - started
        #expect(took < .milliseconds(1500), "50 batches of 10 took \(took)")
        await setup.gw.stop()  // `setup` (the broker, the scratch directory) lives to here
    }

    /// A broker that wants a password: a wrong one gives a clear error and a slowing retry, never a
    /// crash or a hot loop; the right one connects.
    @Test func wrongCredentialsGiveAClearErrorNotACrashLoop() async throws {
        let dir = Scratch()
        let passwords = dir.path + "/passwd"
        try run("/usr/bin/mosquitto_passwd", ["-b", "-c", passwords, "gateway", "s3cret"])
        let port = freePort()
        let broker = try Mosquitto(dir: dir.path + "/broker", port: port,
                                   listener: "listener \(port) 127.0.0.1\nallow_anonymous false\npassword_file \(passwords)")
        try broker.start()
        let gw = try await Gateway(dir: dir, routes: """
            version: 1
            connectors:
              edge: {type: mqtt, url: "mqtt://127.0.0.1:\(port)", username: gateway, password: wrong, reconnect_backoff: 200ms, reconnect_max_backoff: 2s}
            routes:
              - {name: in, from: {connector: edge, topic: "a/#"}, to: [{topic: "a/{1}"}]}
            """)
        #expect(await eventually { gw.status("edge")?.connection.state == .refused })
        let s = try #require(gw.status("edge"))
        let error = s.connection.lastError ?? ""
        #expect(error.contains("refused") && error.lowercased().contains("not authori"), "\(error)")
        #expect(error.contains("username/password"), "\(error)")
        #expect(!error.contains("wrong"), "the password leaked into the status: \(error)")
        // Backoff: in 4 s at most a handful of attempts (200 ms doubling to 2 s, jittered).
        try await Task.sleep(for: .seconds(4))
        let attempts = gw.status("edge")?.connection.failedAttempts ?? 0
        #expect(attempts >= 2 && attempts <= 8, "\(attempts) attempts in ~4 s")
        await gw.stop()

        let good = Scratch()
        let ok = try await Gateway(dir: good, routes: """
            version: 1
            connectors:
              edge: {type: mqtt, url: "mqtt://gateway:s3cret@127.0.0.1:\(port)"}
            routes:
              - {name: in, from: {connector: edge, topic: "a/#"}, to: [{topic: "a/{1}"}]}
            """)
        #expect(await ok.waitConnected("edge"))
        #expect(ok.status("edge")?.url == "mqtt://gateway:***@127.0.0.1:\(port)")
        await ok.stop()
    }

    /// mqtts:// with a CA, a server certificate and a client certificate made here with openssl; a
    /// client without a certificate is refused with a TLS error in its status.
    @Test func tlsWithClientCertificates() async throws {
        let dir = Scratch()
        let pki = dir.path + "/pki"
        try FileManager.default.createDirectory(atPath: pki, withIntermediateDirectories: true)
        func openssl(_ args: String) throws {
            let (rc, out) = try run("/usr/bin/openssl", args.split(separator: " ").map(String.init))
            try #require(rc == 0, "openssl \(args): \(out)")
        }
        try openssl("req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=meshgate-test-ca -keyout \(pki)/ca.key -out \(pki)/ca.crt")
        try openssl("req -newkey rsa:2048 -nodes -subj /CN=localhost -keyout \(pki)/server.key -out \(pki)/server.csr")
        try "subjectAltName=DNS:localhost,IP:127.0.0.1\n".write(toFile: pki + "/san.ext", atomically: true, encoding: .utf8)
        try openssl("x509 -req -in \(pki)/server.csr -CA \(pki)/ca.crt -CAkey \(pki)/ca.key -CAcreateserial -days 2 -extfile \(pki)/san.ext -out \(pki)/server.crt")
        try openssl("req -newkey rsa:2048 -nodes -subj /CN=gateway -keyout \(pki)/client.key -out \(pki)/client.csr")
        try openssl("x509 -req -in \(pki)/client.csr -CA \(pki)/ca.crt -CAkey \(pki)/ca.key -CAcreateserial -days 2 -out \(pki)/client.crt")
        let port = freePort()
        let broker = try Mosquitto(dir: dir.path + "/broker", port: port, listener: """
            listener \(port) 127.0.0.1
            allow_anonymous true
            cafile \(pki)/ca.crt
            certfile \(pki)/server.crt
            keyfile \(pki)/server.key
            require_certificate true
            """)
        try broker.start()
        let gw = try await Gateway(dir: dir, routes: """
            version: 1
            connectors:
              edge: {type: mqtt, url: "mqtts://localhost:\(port)", ca_file: "\(pki)/ca.crt", cert_file: "\(pki)/client.crt", key_file: "\(pki)/client.key"}
              nocert: {type: mqtt, url: "mqtts://localhost:\(port)", ca_file: "\(pki)/ca.crt", reconnect_backoff: 200ms}
            routes:
              - {name: in, from: {connector: edge, topic: "secure/#"}, to: [{topic: "secure/{1}"}]}
              - {name: in2, from: {connector: nocert, topic: "other/#"}, to: [{topic: "other/{1}"}]}
            """)
        #expect(await gw.waitConnected("edge"), "\(String(describing: gw.status("edge")?.connection))")
        let (rc, out) = try run("/usr/bin/mosquitto_pub", ["-h", "localhost", "-p", "\(port)", "--cafile", "\(pki)/ca.crt", "--cert", "\(pki)/client.crt",
                                                          "--key", "\(pki)/client.key", "-q", "1", "-t", "secure/door", "-m", "open"])
        #expect(rc == 0, "\(out)")
        #expect(await eventually { ((try? events(gw.log, matching: "secure/#")) ?? []).map { String(decoding: $0.data, as: UTF8.self) } == ["open"] })
        #expect(await eventually { gw.status("nocert")?.connection.lastError != nil })
        let nocert = gw.status("nocert")?.connection
        #expect(nocert?.state != .connected)
        print("without a client certificate: \(nocert?.lastError ?? "-")")
        await gw.stop()
    }

    /// A persistent session hands over what waited for it (queued messages, and those in flight
    /// when the last connection ended) right after CONNACK. The connector's ingress must know its
    /// routes before its client starts: before, the client started first, and a backlog that
    /// arrived before `apply` reached the routes was acknowledged as unrouted and lost (20 messages,
    /// mosquitto's in-flight window, in a kill -9 test under load). Every CPU is kept busy while
    /// the gateway starts, which widens the gap between starting the client and the routes. In
    /// one process that gap stays microseconds wide, so this test rarely sees the old order fail;
    /// the process-level kill -9 test (IngressDurabilityTests, `unrouted=0`) is the one that did.
    @Test func aSessionsBacklogIsStoredWhenTheConnectorStarts() async throws {
        let dir = Scratch()
        let broker = try Mosquitto(dir: dir.path + "/broker")
        try broker.start()
        let routes = """
            version: 1
            connectors:
              edge: {type: mqtt, url: "mqtt://127.0.0.1:\(broker.port)", client_id: gw-backlog}
            routes:
              - name: in
                from: {connector: edge, topic: "backlog/#"}
                to: [{topic: "backlog"}]
            """
        func storedCount(_ gw: Gateway) -> Int { ((try? events(gw.log, "backlog")) ?? []).count }
        var sent = 0
        for round in 0..<6 {
            let busy = BusyCPUs()
            let gw: Gateway
            do { gw = try await Gateway(dir: dir, routes: routes) } catch {
                busy.stop()  // not left spinning under the tests that follow
                throw error
            }
            let connected = await gw.waitConnected("edge")
            busy.stop()
            #expect(connected, "round \(round): \(String(describing: gw.status("edge")?.connection))")
            let expected = sent
            let stored = await eventually(20) { storedCount(gw) >= expected }
            #expect(stored, "round \(round): \(storedCount(gw)) of \(expected) stored")
            #expect(gw.status("edge")?.unrouted == 0, "round \(round): messages acknowledged as unrouted")
            await gw.stop()
            // The backlog for the next start: QoS 1, queued in the session while the gateway is away.
            let lines = (0..<200).map { "m-\(sent + $0)" }.joined(separator: "\n") + "\n"
            let (rc, out) = try run("/usr/bin/mosquitto_pub", ["-p", "\(broker.port)", "-q", "1", "-t", "backlog/r\(round)", "-l"], input: lines)
            #expect(rc == 0, "\(out)")
            sent += 200
        }
        let gw = try await Gateway(dir: dir, routes: routes)
        #expect(await eventually(20) { storedCount(gw) >= sent })
        let payloads = try events(gw.log, "backlog").map { String(decoding: $0.data, as: UTF8.self) }
        #expect(Set(payloads) == Set((0..<sent).map { "m-\($0)" }), "every queued message stored")
        await gw.stop()
    }

    @Test func settingsParseURLsAndOptions() throws {
        func spec(_ url: String, _ options: [String: String] = [:]) -> ConnectorSpec {
            ConnectorSpec(name: "edge", kind: .mqtt, url: url, options: options, redactedOptions: [:], location: SourceLocation(file: "r.yaml", line: 1, column: 1))
        }
        let a = try MQTTSettings(spec("mqtt://127.0.0.1:1884"))
        #expect(a.host == "127.0.0.1" && a.port == 1884 && !a.tls && a.clientID == "meshgate-edge" && a.protocolVersion == .v5 && a.qos == 1)
        #expect(a.maxInflight == 1000 && a.publishInflight == MQTTSettings.defaultPublishInflight)
        #expect(throws: MQTTError.self) { try MQTTSettings(spec("mqtt://h", ["publish_inflight": "0"])) }
        let b = try MQTTSettings(spec("mqtts://u%40x:p%3Aw@broker.example"))
        #expect(b.host == "broker.example" && b.port == 8883 && b.tls && b.username == "u@x" && b.password == "p:w")
        let c = try MQTTSettings(spec("mqtt://[::1]:1883", ["protocol": "3.1.1", "qos": "2", "keepalive": "1m", "session_expiry": "1h", "max_inflight": "50", "publish_inflight": "20"]))
        #expect(c.host == "::1" && c.protocolVersion == .v311 && c.qos == 2 && c.subscribeQoS == 1 && c.keepAliveSeconds == 60 && c.sessionExpirySeconds == 3600 && c.maxInflight == 50 && c.publishInflight == 20)
        #expect(throws: MQTTError.self) { try MQTTSettings(spec("mqtt://h", ["cert_file": "c.pem"])) }
        #expect(throws: MQTTError.self) { try MQTTSettings(spec("mqtt://h:99999")) }
        #expect(MQTTConnectors.redact("mqtt://u:secret@h:1") == "mqtt://u:***@h:1")
    }

    @Test func eventMappingFollowsTheCloudEventsMQTTBinding() throws {
        let m = MQTTMessage(topic: "s/1", payload: Array("x".utf8), userProperties: [.init("id", "abc"), .init("time", "2024-05-01T10:00:00Z"),
                                                                                     .init("Trace-ID", "t1"), .init("partitionkey", "dev-1"), .init("!!", "?")],
                            contentType: "text/plain", correlationData: [0, 255])
        let (e, dropped) = MQTTEventMapping.event(from: m, topic: try Topic("s/1"))
        #expect(e.id == "abc" && e.time?.rfc3339.hasPrefix("2024-05-01T10:00:00") == true && e.extensions["traceid"] == "t1")
        #expect(e.partitionKey == "dev-1" && e.datacontenttype == "text/plain" && dropped == ["!!"])
        let back = MQTTEventMapping.message(from: e, topic: "out", qos: 1, retain: true, properties: true)
        #expect(back.correlationData == [0, 255] && back.contentType == "text/plain" && back.retain)
        #expect(back.userProperties.contains(.init("traceid", "t1")) && back.userProperties.contains(.init("id", "abc")))
        let v3 = MQTTEventMapping.message(from: e, topic: "out", qos: 0, retain: false, properties: false)
        #expect(v3.userProperties.isEmpty && v3.payload == Array("x".utf8))
    }
}
