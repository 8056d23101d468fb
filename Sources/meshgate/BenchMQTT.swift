import ArgumentParser
import Foundation
import Logging
import MeshBroker
import MeshConfig
import MeshCore
import MeshLog
import MeshMQTT
import MeshRouting

/// `meshgate bench mqtt`: the MQTT connector against mosquitto's own clients on one local broker,
/// in the same run. Ingress: one QoS 1 flood from `mosquitto_pub -l`, received at the same time by
/// meshgate (into the log, durable before each PUBACK) and by `mosquitto_sub`. Egress: meshgate
/// publishing events from the log (each acknowledged by the broker) vs `mosquitto_pub -l` alone.
struct BenchMQTT: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "mqtt", abstract: "Benchmark the MQTT connector against mosquitto_pub/mosquitto_sub.")

    @Option(help: "Messages per scenario.") var messages = 100_000
    @Option(help: "Payload bytes.") var size = 100
    @Option(help: "MQTT protocol of the connector: 5 or 3.1.1.") var `protocol` = "5"
    @Option(help: "Durability of the log topics: always (fsync before the PUBACK), interval or none.") var fsync = "always"
    @Option(help: "Egress deliveries in flight (the route's in_flight, used when a batch is delivered one event at a time).") var inFlight = 256
    @Option(help: "Egress read batch (the route's buffer).") var buffer = 4096
    @Option(help: "The connector's publish_inflight (egress window); default: the connector's default.") var publishInflight: Int?
    @Option(help: "Scratch directory (deleted afterwards).") var dir = "./.bench-mqtt"
    @Option(help: "Also write the figures as JSON to this file.") var json: String?

    func run() async throws {
        try? FileManager.default.removeItem(atPath: dir)
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let port = try BenchMosquitto.freePort()
        let broker = try BenchMosquitto(dir: dir + "/broker", port: port)
        defer { broker.stop() }
        print("meshgate bench mqtt — \(messages) messages of \(size) B, QoS 1, MQTT \(self.protocol), log fsync \(fsync), mosquitto on 127.0.0.1:\(port)\n")

        var options = LogOptions()
        options.retentionCheckMicros = nil
        switch fsync {
        case "none": options.defaultTopic = TopicConfig(partitions: 1, durability: .none)
        case "interval": options.defaultTopic = TopicConfig(partitions: 1, durability: .interval(milliseconds: 100))
        default: options.defaultTopic = TopicConfig(partitions: 1, durability: .always)
        }
        var quiet = Logger(label: "meshgate")
        quiet.logLevel = .error
        let log = try DurableLog(directory: dir + "/data", options: options, logger: quiet)
        let meshBroker = Broker(log: log, logger: quiet)
        let mqtt = MQTTConnectors(broker: meshBroker, logger: quiet)
        let engine = RouteEngine(log: log, provider: mqtt, logger: quiet)
        let lines = (0..<messages).map { i -> String in
            let head = "m-\(i)-"
            return head + String(repeating: "x", count: max(0, size - head.utf8.count))
        }.joined(separator: "\n") + "\n"
        let input = dir + "/flood.txt"
        try lines.write(toFile: input, atomically: false, encoding: .utf8)

        // Ingress: meshgate and mosquitto_sub subscribed to the same flood.
        let connector = "connectors:\n  edge: {type: mqtt, url: \"mqtt://127.0.0.1:\(port)\", client_id: bench-gw, protocol: \"\(self.protocol)\"\(publishInflight.map { ", publish_inflight: \($0)" } ?? "")}\n"
        let ingress = try RouteLoader.load(sources: [("bench.yaml", "version: 1\n\(connector)routes:\n  - {name: in, from: {connector: edge, topic: \"bench/#\"}, to: [{topic: \"in/{1}\"}]}\n")])
        await mqtt.apply(ingress)
        await engine.apply(ingress)
        try await waitUntil(10) { mqtt.status.first?.connection.subscriptions.isEmpty == false }
        let v = self.protocol == "5" ? "5" : "311"
        let sub = try LineCounter("/usr/bin/mosquitto_sub", ["-p", "\(port)", "-q", "1", "-t", "bench/#", "-i", "bench-sub", "-V", v])
        try await Task.sleep(for: .milliseconds(500))
        // mosquitto_pub -l exits at the end of its input before its queued messages are sent (it
        // delivered about a third of a 100,000-line file here), so its input stays open until the end.
        let start = Date()
        let flood = try Flood(port: port, topic: "bench/flood", file: input, version: v)
        var meshLast = (count: 0, at: start)
        let deadline = Date().addingTimeInterval(120)
        while Date() < deadline {
            let stored = mqtt.status.first?.connection.stored ?? 0
            if stored > meshLast.count { meshLast = (stored, Date()) }
            if stored >= messages && sub.count >= messages { break }
            progress("\r  ingress: meshgate stored \(stored), mosquitto_sub received \(sub.count) of \(messages)")
            try await Task.sleep(for: .milliseconds(2))
        }
        progress("\r\u{1B}[K")
        flood.stop()
        sub.stop()
        let meshRate = Double(meshLast.count) / meshLast.at.timeIntervalSince(start)
        let subRate = Double(sub.count) / (sub.lastAt ?? Date()).timeIntervalSince(start)
        let subCount = sub.count

        // Egress: the log → the broker, each publish acknowledged, vs mosquitto_pub alone; both
        // counted by one mosquitto_sub as they arrive.
        let src = try log.createTopic(Topic("egress/src"))
        for chunk in stride(from: 0, to: messages, by: 1000) {
            let batch = (chunk..<min(messages, chunk + 1000)).map { i in
                EventCodec.encode(Event(topic: src.topic, id: "e\(i)", source: "bench", type: "bench", data: Array("m-\(i)-\(String(repeating: "x", count: max(0, size - 8)))".utf8.prefix(size))))
            }
            _ = try await src.partitions[0].append(batch: batch)
        }
        func timeToReceive(_ counter: LineCounter, from base: Int, _ started: Date) async throws -> (Int, Double) {
            var last = (count: 0, at: started)
            while Date().timeIntervalSince(started) < 120 {
                let n = counter.count - base
                if n > last.count { last = (n, Date()) }
                if n >= messages { break }
                if Date().timeIntervalSince(last.at) > 10 { break }
                progress("\r  egress: received \(n) of \(messages)")
                try await Task.sleep(for: .milliseconds(2))
            }
            progress("\r\u{1B}[K")
            return (last.count, Double(last.count) / last.at.timeIntervalSince(started))
        }
        let out = try LineCounter("/usr/bin/mosquitto_sub", ["-p", "\(port)", "-q", "1", "-t", "egress/#", "-i", "bench-out", "-V", v])
        try await Task.sleep(for: .milliseconds(500))
        let pubStart = Date()
        let pubFlood = try Flood(port: port, topic: "egress/pub", file: input, version: v)
        let (pubAloneCount, pubAloneRate) = try await timeToReceive(out, from: 0, pubStart)
        pubFlood.stop()
        let base = out.count
        let egress = try RouteLoader.load(sources: [("bench.yaml", "version: 1\n\(connector)routes:\n  - {name: out, from: \"egress/src\", to: [{connector: edge, topic: \"egress/out\", ordering: none, in_flight: \(inFlight), buffer: \(buffer), start: earliest}]}\n")])
        await mqtt.apply(egress)
        let egressStart = Date()
        await engine.apply(egress)
        let (egressCount, egressRate) = try await timeToReceive(out, from: base, egressStart)
        out.stop()
        await engine.stop()
        await mqtt.stop()
        log.close()

        print("| scenario | meshgate | mosquitto client, same broker | ratio |")
        print("|---|---|---|---|")
        print("| ingress, QoS 1 flood → log (durable before PUBACK) vs mosquitto_sub on the same flood | \(fmt(meshRate)) msg/s (\(meshLast.count) stored) | \(fmt(subRate)) msg/s (\(subCount) received) | \(String(format: "%.2f", meshRate / subRate)) |")
        print("| egress, log → broker (each PUBACKed) vs mosquitto_pub -l, as received by mosquitto_sub | \(fmt(egressRate)) msg/s (\(egressCount) received) | \(fmt(pubAloneRate)) msg/s (\(pubAloneCount) received) | \(String(format: "%.2f", egressRate / pubAloneRate)) |")
        if let json {
            let figures: [String: Double] = [
                "messages": Double(messages), "size": Double(size),
                "ingress_meshgate_per_s": meshRate, "ingress_meshgate_stored": Double(meshLast.count),
                "ingress_mosquitto_sub_per_s": subRate, "ingress_mosquitto_sub_received": Double(subCount),
                "egress_meshgate_per_s": egressRate, "egress_meshgate_received": Double(egressCount),
                "egress_mosquitto_pub_per_s": pubAloneRate, "egress_mosquitto_pub_received": Double(pubAloneCount),
            ]
            try JSONSerialization.data(withJSONObject: figures.mapValues { $0.isFinite ? $0 : 0 }, options: [.sortedKeys])
                .write(to: URL(fileURLWithPath: json))
        }
    }

    private func progress(_ text: String) {
        FileHandle.standardOutput.write(text.data(using: .utf8)!)
    }

    private func fmt(_ v: Double) -> String {
        v.isFinite ? String(format: "%.0f", v) : "–"
    }

    private func waitUntil(_ seconds: Double, _ condition: () -> Bool) async throws {
        let deadline = Date().addingTimeInterval(seconds)
        while !condition() {
            if Date() > deadline { throw ValidationError("the MQTT connector did not connect to the benchmark broker") }
            try await Task.sleep(for: .milliseconds(10))
        }
    }
}

/// `mosquitto_pub -l` fed from a file through a pipe that stays open until `stop()`.
final class Flood {
    private let process = Process()
    private let input = Pipe()

    init(port: Int, topic: String, file: String, version: String) throws {
        process.executableURL = URL(fileURLWithPath: "/usr/bin/mosquitto_pub")
        process.arguments = ["-p", "\(port)", "-q", "1", "-t", topic, "-l", "-V", version]
        process.standardInput = input
        process.standardOutput = FileHandle.nullDevice
        try process.run()
        let data = try Data(contentsOf: URL(fileURLWithPath: file))
        let writer = input.fileHandleForWriting
        Thread { writer.write(data) }.start()
    }

    func stop() {
        try? input.fileHandleForWriting.close()
        if process.isRunning { kill(process.processIdentifier, SIGKILL) }
        process.waitUntilExit()
    }
}

/// Counts the lines a child prints, noting when the last one came.
final class LineCounter: @unchecked Sendable {
    // @unchecked: `count`/`last` are written by the reader thread and read racily for progress only;
    // the final read happens after the child is stopped and the reader has ended.
    private let process = Process()
    private(set) var count = 0
    private(set) var lastAt: Date?
    private let done = DispatchSemaphore(value: 0)

    init(_ exe: String, _ args: [String]) throws {
        process.executableURL = URL(fileURLWithPath: exe)
        process.arguments = args
        let out = Pipe()
        process.standardOutput = out
        try process.run()
        let handle = out.fileHandleForReading
        Thread { [self] in
            while true {
                let chunk = handle.availableData
                if chunk.isEmpty { break }
                // Counted over the raw bytes: this thread shares the CPU with what is measured.
                let n = chunk.withUnsafeBytes { raw in raw.reduce(into: 0) { n, b in if b == 10 { n += 1 } } }
                count += n
                lastAt = Date()
            }
            done.signal()
        }.start()
    }

    func stop() {
        if process.isRunning { kill(process.processIdentifier, SIGKILL) }
        process.waitUntilExit()
        done.wait()
    }
}

/// The broker the benchmark runs against: persistence off, no per-client queue limit (mosquitto's
/// default of 1000 would drop most of a QoS 1 flood for any subscriber, meshgate or mosquitto_sub).
final class BenchMosquitto {
    let process = Process()

    init(dir: String, port: Int) throws {
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        let conf = dir + "/mosquitto.conf"
        try "listener \(port) 127.0.0.1\nallow_anonymous true\nuser root\nmax_queued_messages 0\nmax_inflight_messages 0\n"
            .write(toFile: conf, atomically: true, encoding: .utf8)
        process.executableURL = URL(fileURLWithPath: "/usr/sbin/mosquitto")
        process.arguments = ["-c", conf]
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        try process.run()
        Thread.sleep(forTimeInterval: 0.3)
    }

    /// SIGKILL: nothing to save, and a child of a thread that blocks SIGTERM would ignore a terminate.
    func stop() {
        if process.isRunning { kill(process.processIdentifier, SIGKILL) }
        process.waitUntilExit()
    }

    static func freePort() throws -> Int {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(fd) }
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_addr.s_addr = inet_addr("127.0.0.1")
        var len = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, len) } }
        _ = withUnsafeMutablePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &len) } }
        return Int(UInt16(bigEndian: addr.sin_port))
    }
}
