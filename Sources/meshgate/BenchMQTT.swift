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
    @Option(help: "Egress deliveries in flight.") var inFlight = 256
    @Option(help: "Scratch directory (deleted afterwards).") var dir = "./.bench-mqtt"

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
        let connector = "connectors:\n  edge: {type: mqtt, url: \"mqtt://127.0.0.1:\(port)\", client_id: bench-gw, protocol: \"\(self.protocol)\"}\n"
        let ingress = try RouteLoader.load(sources: [("bench.yaml", "version: 1\n\(connector)routes:\n  - {name: in, from: {connector: edge, topic: \"bench/#\"}, to: [{topic: \"in/{1}\"}]}\n")])
        await mqtt.apply(ingress)
        await engine.apply(ingress)
        try await waitUntil(10) { mqtt.status.first?.connection.subscriptions.isEmpty == false }
        let sub = try LineCounter("/usr/bin/mosquitto_sub", ["-p", "\(port)", "-q", "1", "-t", "bench/#", "-i", "bench-sub", "-V", self.protocol == "5" ? "5" : "311"])
        try await Task.sleep(for: .milliseconds(500))
        let start = Date()
        let pub = try runTimed("/usr/bin/mosquitto_pub", ["-p", "\(port)", "-q", "1", "-t", "bench/flood", "-l", "-i", "bench-pub"], stdin: input)
        var meshDone: Date?
        let deadline = Date().addingTimeInterval(120)
        while Date() < deadline {
            let stored = mqtt.status.first?.connection.stored ?? 0
            if meshDone == nil && stored >= messages { meshDone = Date() }
            if meshDone != nil && sub.count >= messages { break }
            progress("\r  ingress: meshgate stored \(stored), mosquitto_sub received \(sub.count) of \(messages)")
            try await Task.sleep(for: .milliseconds(5))
        }
        progress("\r\u{1B}[K")
        let subDone = sub.lastAt
        sub.stop()
        let meshStored = mqtt.status.first?.connection.stored ?? 0
        let meshRate = Double(meshStored) / ((meshDone ?? Date()).timeIntervalSince(start))
        let subRate = Double(sub.count) / ((subDone ?? Date()).timeIntervalSince(start))
        let pubRate = Double(messages) / pub

        // Egress: the log → the broker, each publish acknowledged, vs mosquitto_pub alone.
        let src = try log.createTopic(Topic("egress/src"))
        for chunk in stride(from: 0, to: messages, by: 1000) {
            let batch = (chunk..<min(messages, chunk + 1000)).map { i in
                EventCodec.encode(Event(topic: src.topic, id: "e\(i)", source: "bench", type: "bench", data: Array("m-\(i)-\(String(repeating: "x", count: max(0, size - 8)))".utf8.prefix(size))))
            }
            _ = try await src.partitions[0].append(batch: batch)
        }
        let pubAlone = try runTimed("/usr/bin/mosquitto_pub", ["-p", "\(port)", "-q", "1", "-t", "egress/pub", "-l", "-i", "bench-pub2", "-V", self.protocol == "5" ? "5" : "311"], stdin: input)
        let before = mqtt.status.first?.connection.published ?? 0
        let egress = try RouteLoader.load(sources: [("bench.yaml", "version: 1\n\(connector)routes:\n  - {name: out, from: \"egress/src\", to: [{connector: edge, topic: \"egress/out\", ordering: none, in_flight: \(inFlight), buffer: 4096, start: earliest}]}\n")])
        await mqtt.apply(egress)
        let egressStart = Date()
        await engine.apply(egress)
        var egressDone: Date?
        while Date().timeIntervalSince(egressStart) < 120 {
            let published = (mqtt.status.first?.connection.published ?? 0) - before
            if published >= messages { egressDone = Date(); break }
            progress("\r  egress: meshgate published \(published) of \(messages)")
            try await Task.sleep(for: .milliseconds(5))
        }
        progress("\r\u{1B}[K")
        let egressPublished = (mqtt.status.first?.connection.published ?? 0) - before
        let egressRate = Double(egressPublished) / ((egressDone ?? Date()).timeIntervalSince(egressStart))
        let pubAloneRate = Double(messages) / pubAlone
        await engine.stop()
        await mqtt.stop()
        log.close()

        print("| scenario | meshgate | mosquitto client, same broker | ratio |")
        print("|---|---|---|---|")
        print("| ingress, QoS 1 flood → log (durable before PUBACK) vs mosquitto_sub on the same flood | \(fmt(meshRate)) msg/s (\(meshStored) stored) | \(fmt(subRate)) msg/s (\(sub.count) received) | \(String(format: "%.2f", meshRate / subRate)) |")
        print("| egress, log → broker, each PUBACKed, vs mosquitto_pub -l | \(fmt(egressRate)) msg/s (\(egressPublished) published) | \(fmt(pubAloneRate)) msg/s | \(String(format: "%.2f", egressRate / pubAloneRate)) |")
        print("\n(the flood's publisher, mosquitto_pub -l, sent at \(fmt(pubRate)) msg/s)")
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

    /// Runs a program with a file as stdin; returns the seconds it took.
    private func runTimed(_ exe: String, _ args: [String], stdin: String) throws -> Double {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: exe)
        p.arguments = args
        p.standardInput = FileHandle(forReadingAtPath: stdin)
        p.standardOutput = FileHandle.nullDevice
        let started = Date()
        try p.run()
        p.waitUntilExit()
        return Date().timeIntervalSince(started)
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
                var n = 0
                for b in chunk where b == 10 { n += 1 }
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
