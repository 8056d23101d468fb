import ArgumentParser
import Foundation
import Logging
import MeshBroker
import MeshConfig
import MeshCore
import MeshLog
import MeshMQTT
import MeshRouting

/// Runs the log, the broker, the route engine and the MQTT connectors on a data directory until
/// SIGTERM/SIGINT, for process-level tests (kill -9 during ingress, broker outages) and the
/// edge-devices example. Prints `ready`, then one line per connector status change:
/// `connector <name> state=<state> stored=N unrouted=N published=N attempts=N error=<last error>`. Hidden: a testing tool.
struct MQTTRun: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "mqtt-run", abstract: "Route with MQTT connectors (testing tool).", shouldDisplay: false)

    @Option var data: String
    @Option var routes: String
    @Option var node = "meshgate"
    @Option(help: "Durability of topics created by ingress: always, interval or none.") var fsync = "always"
    @Option(help: "Log level on stderr.") var logLevel = "warning"
    @Option(help: "Events to publish into the log while running (payload k<i mod 5>:<i>, partition key k<i mod 5>).") var produce = 0
    @Option(help: "Topic for --produce.") var produceTopic = "out/a"
    @Option(help: "Events per second for --produce.") var produceRate = 1000.0

    func run() async throws {
        bootstrapLogging(level: Logger.Level(rawValue: logLevel) ?? .warning)
        let logger = Logger(label: "meshgate")
        var options = LogOptions()
        switch fsync {
        case "none": options.defaultTopic = TopicConfig(partitions: 1, durability: .none)
        case "interval": options.defaultTopic = TopicConfig(partitions: 1, durability: .interval(milliseconds: 100))
        default: options.defaultTopic = TopicConfig(partitions: 1, durability: .always)
        }
        let log = try DurableLog(directory: data, options: options, logger: Logger(label: "meshgate.log"))
        var brokerOptions = BrokerOptions()
        brokerOptions.node = node
        let broker = Broker(log: log, options: brokerOptions, logger: Logger(label: "meshgate.broker"))
        let mqtt = MQTTConnectors(broker: broker, logger: Logger(label: "meshgate.mqtt"))
        let engine = RouteEngine(log: log, provider: mqtt, logger: Logger(label: "meshgate.routing"))
        let manager = RouteManager(path: routes, engine: engine, logger: Logger(label: "meshgate.routes"))
        manager.onApply { table in await mqtt.apply(table) }
        guard await manager.reload().ok else { throw ExitCode(2) }
        say("ready")
        let reporter = Task {
            var last: [String: String] = [:]
            while !Task.isCancelled {
                for s in mqtt.status {
                    let c = s.connection
                    let line = "connector \(s.name) state=\(c.state.rawValue) stored=\(c.stored) unrouted=\(s.unrouted) published=\(c.published) attempts=\(c.failedAttempts) error=\(c.lastError ?? "-")"
                    if last[s.name] != line {
                        last[s.name] = line
                        say(line)
                    }
                }
                try? await Task.sleep(for: .milliseconds(50))
            }
        }
        let producer = Task {
            let started = ContinuousClock.now
            let topic = try Topic(produceTopic)
            for i in 0..<produce {
                let key = "k\(i % 5)"
                let event = Event(topic: topic, id: "p-\(i)", source: "mqtt-run", type: "load", partitionKey: key, data: Array("\(key):\(i)".utf8))
                while true {
                    do { _ = try await broker.publish([event], ingress: "mqtt-run"); break } catch {
                        try await Task.sleep(for: .milliseconds(50))
                    }
                }
                let due = started + .seconds(Double(i + 1) / produceRate)
                if due > .now { try await Task.sleep(until: due) }
            }
            if produce > 0 { say("produced \(produce)") }
        }
        await waitForTermination()
        producer.cancel()
        reporter.cancel()
        logger.info("stopping")
        await mqtt.stop()
        await manager.stop()
        log.close()
        say("stopped")
    }

    private func say(_ line: String) {
        FileHandle.standardOutput.write((line + "\n").data(using: .utf8)!)
    }
}
