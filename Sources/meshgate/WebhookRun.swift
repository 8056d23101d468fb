import ArgumentParser
import Foundation
import Logging
import MeshConfig
import MeshCore
import MeshGateway
import MeshLog
import MeshRouting
import MeshWebhook

/// Runs the route engine with the webhook connectors on a data directory while appending events,
/// for crash tests: the test SIGKILLs it mid-delivery, restarts it, and checks that the receiver
/// got every event. Hidden: a testing tool.
struct WebhookRun: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "webhook-run", abstract: "Deliver to webhooks while appending (testing tool).", shouldDisplay: false)

    @Option var data: String
    @Option var routes: String
    @Option(help: "Topic to append to.") var topic = "src/a"
    @Option(help: "Events to append in this run.") var produce = 0
    @Flag(help: "Exit once every destination has caught up (lag 0) and production is done.") var exitWhenIdle = false

    func run() async throws {
        var options = LogOptions()
        options.defaultTopic = TopicConfig(partitions: 1, durability: .none)
        var quiet = Logger(label: "meshgate")
        quiet.logLevel = .error
        let log = try DurableLog(directory: data, options: options, logger: quiet)
        let webhooks = WebhookConnectors(logger: quiet, threads: GatewayConfig.defaultWebhookThreads)
        let manager = RouteManager(path: routes, engine: RouteEngine(log: log, provider: webhooks, logger: quiet), logger: quiet)
        guard await manager.reload().ok else { throw ExitCode(2) }
        FileHandle.standardOutput.write("ready\n".data(using: .utf8)!)
        let t = try log.createTopic(Topic(topic), config: TopicConfig(partitions: 2, durability: .none))
        let run = getpid()
        for i in 0..<produce {
            let e = Event(topic: t.topic, id: "w\(run)-\(i)", source: "webhook-run", type: "load", datacontenttype: "application/json",
                          partitionKey: "k\(i % 5)", data: Array("{\"i\":\(i)}".utf8))
            _ = try await t.append(EventCodec.encode(e), key: e.partitionKey)
        }
        while true {
            try await Task.sleep(for: .milliseconds(20))
            if exitWhenIdle && manager.status.destinations.allSatisfy({ $0.lag == 0 }) { break }
        }
        await manager.stop()
        await webhooks.stop()
        log.close()
        FileHandle.standardOutput.write("idle\n".data(using: .utf8)!)
    }
}
