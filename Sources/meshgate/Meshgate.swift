import ArgumentParser
import Logging

@main
struct Meshgate: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "meshgate",
        abstract: "A protocol-agnostic event-mesh routing gateway with a built-in durable log.",
        version: meshgateVersion,
        subcommands: [Serve.self, Routes.self, Bench.self, AppendLoad.self, RouteRun.self, WebhookRun.self]
    )
}

let meshgateVersion = "0.1.0"

/// The only place logging is bootstrapped.
func bootstrapLogging(level: Logger.Level = .info) {
    LoggingSystem.bootstrap { label in
        var handler = StreamLogHandler.standardError(label: label)
        handler.logLevel = level
        return handler
    }
}
