import ArgumentParser
import Foundation
import MeshClient

/// `meshgate subscribe PATTERN`: print one line per event as it arrives.
struct SubscribeCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "subscribe",
        abstract: "Print events of the topics matching a pattern, one line each: topic partition offset id data.")

    @Argument(help: "A topic pattern; + matches one level, # the rest.") var pattern: String
    @Option(help: "Consumer group: share partitions with its other members and resume from its commits.") var group: String?
    @Option(help: "earliest, latest, an offset, or an RFC 3339 time.") var from: String = "latest"
    @Option(help: "Exit after this many events.") var count: Int?
    @Option(help: "The server, tcp://HOST:PORT.") var server: ServerAddress = .default
    @Option(help: "A bearer token or JWT for the server (default: $MESHGATE_TOKEN).") var token: String?

    func run() async throws {
        let pattern: TopicPattern
        do { pattern = try TopicPattern(self.pattern) } catch { throw ValidationError("invalid pattern: \(error.message)") }
        let start = try Self.parseStart(from)
        if let count, count < 1 { throw ValidationError("--count must be at least 1") }
        let client = try await server.connect(token: token)
        do {
            let subscription = try await client.subscribe(pattern, group: group, from: start)
            var seen = 0
            for try await delivery in subscription {
                let event = delivery.event
                let data = String(validating: event.data, as: UTF8.self).map { $0.replacingOccurrences(of: "\n", with: "\\n") }
                    ?? "base64:" + Data(event.data).base64EncodedString()
                print("\(event.topic) \(delivery.partition) \(delivery.offset) \(event.id) \(data)")
                fflush(nil)
                seen += 1
                if let count, seen >= count { break }
            }
            await client.close()
        } catch {
            await client.close()
            printError("subscription failed: \(error)")
            throw ExitCode(1)
        }
    }

    static func parseStart(_ text: String) throws -> StartPosition {
        switch text {
        case "earliest": return .earliest
        case "latest": return .latest
        default:
            if let offset = UInt64(text) { return .offset(offset) }
            if let time = try? Timestamp(rfc3339: text) { return .time(microsecondsSinceEpoch: time.microsecondsSinceEpoch) }
            throw ValidationError("--from takes earliest, latest, an offset or an RFC 3339 time, not '\(text)'")
        }
    }
}
