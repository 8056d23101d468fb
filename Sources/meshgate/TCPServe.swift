import ArgumentParser
import Foundation
import Logging
import MeshBroker
import MeshLog
import MeshTCP

/// `meshgate tcp-serve`: the log, the broker and the TCP listener only, for benchmarks and tests
/// of the TCP path. Prints the bound port on standard output. `meshgate serve` runs everything.
struct TCPServe: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "tcp-serve", abstract: "Serve the TCP API alone over the built-in log.", shouldDisplay: false)

    @Option(help: "Data directory.") var data = "./data"
    @Option(help: "Listen address.") var host = "127.0.0.1"
    @Option(help: "Listen port (0 picks a free one).") var port = 7070
    @Option(help: "Default durability of new topics: always, none, or interval:MS.") var fsync = "always"
    @Option(name: .customLong("max-inflight"), help: "Unanswered publishes allowed per connection.") var maxInFlight = 128
    @Option(help: "Node name.") var node = "meshgate"

    func run() async throws {
        bootstrapLogging(level: .warning)
        guard let durability = Durability(parsing: fsync) else { throw ValidationError("--fsync: always, none or interval:MS") }
        var options = LogOptions()
        options.defaultTopic.durability = durability
        let log = try DurableLog(directory: data, options: options)
        var brokerOptions = BrokerOptions()
        brokerOptions.node = node
        let broker = Broker(log: log, options: brokerOptions)
        var configuration = TCPServer.Configuration()
        configuration.connection.maxInFlightPublishes = maxInFlight
        let server = TCPServer(broker: broker, configuration: configuration)
        let bound = try await server.start(host: host, port: port)
        print(bound)
        fflush(nil)
        await waitForTermination()
        await server.shutdown()
        log.close()
    }
}
