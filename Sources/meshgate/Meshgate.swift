import ArgumentParser
import Foundation
import CoreMetrics
import Logging
import MeshGateway

@main
struct Meshgate: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "meshgate",
        abstract: "A protocol-agnostic event-mesh routing gateway with a built-in durable log.",
        version: meshgateVersion,
        subcommands: [Serve.self, PublishCommand.self, SubscribeCommand.self, TailCommand.self, Topics.self, Status.self, Routes.self, AuthCommand.self, Bench.self,
                      AppendLoad.self, RouteRun.self, BareHTTP.self, MQTTRun.self, WebhookRun.self]
    )

    /// SPEC §7's exit codes: 0 ok, 1 runtime failure, 2 usage or configuration error (the message
    /// names the problem). ArgumentParser's own usage code is 64, so usage errors are mapped here.
    static func main() async {
        do {
            var command = try parseAsRoot()
            if var asyncCommand = command as? AsyncParsableCommand {
                try await asyncCommand.run()
            } else {
                try command.run()
            }
        } catch let failure as UsageFailure {
            FileHandle.standardError.write(Data("meshgate: \(failure.message)\n".utf8))
            Foundation.exit(2)
        } catch {
            let code = exitCode(for: error)
            if code == .validationFailure {
                FileHandle.standardError.write(Data((fullMessage(for: error) + "\n").utf8))
                Foundation.exit(2)
            }
            exit(withError: error)
        }
    }
}

let meshgateVersion = Gateway.version

/// A usage or configuration error: exit code 2 with `message`.
struct UsageFailure: Error {
    let message: String
}

/// The only place logging is bootstrapped.
func bootstrapLogging(level: Logger.Level = .info, format: MeshLogHandler.Format = .text) {
    LoggingSystem.bootstrap { label in
        MeshLogHandler(label: label, format: format, logLevel: level)
    }
}

/// The only place metrics are bootstrapped: libraries outside the gateway that record through
/// `MetricsSystem` land in the same registry `/metrics` serves.
func bootstrapMetrics(_ metrics: GatewayMetrics) {
    MetricsSystem.bootstrap(metrics.factory)
}
