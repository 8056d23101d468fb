import ArgumentParser
import Foundation
import MeshClient

/// `meshgate tail PATTERN`: watch events live, one compact line each (time, topic@offset, type,
/// trace id, data cut to the terminal), or one structured JSON object per line with `--json`.
/// Unlike `subscribe`, it never joins a group or commits: it only watches.
struct TailCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "tail",
        abstract: "Watch the events of topics matching a pattern as they arrive.",
        discussion: "Reads over the TCP API from the end of each topic (or --from). Ctrl-C stops.")

    @Argument(help: "A topic pattern; + matches one level, # the rest. Default: every topic.") var pattern: String = "#"
    @Option(help: "earliest, latest, an offset, or an RFC 3339 time.") var from: String = "latest"
    @Option(help: "Exit after this many events.") var count: Int?
    @Flag(help: "Print each event as a structured-mode CloudEvent JSON object.") var json = false
    @Option(help: "The server, tcp://HOST:PORT.") var server: ServerAddress = .default
    @Option(help: "A bearer token or JWT for the server (default: $MESHGATE_TOKEN).") var token: String?

    func run() async throws {
        let pattern: TopicPattern
        do { pattern = try TopicPattern(self.pattern) } catch { throw ValidationError("invalid pattern: \(error.message)") }
        let start = try SubscribeCommand.parseStart(from)
        if let count, count < 1 { throw ValidationError("--count must be at least 1") }
        let client = try await server.connect(token: token, client: "meshgate-tail")
        let width = Self.terminalWidth()
        let color = isatty(1) != 0 && ProcessInfo.processInfo.environment["NO_COLOR"] == nil
        do {
            let subscription = try await client.subscribe(pattern, from: start)
            var seen = 0
            for try await delivery in subscription {
                let line = json ? Self.jsonLine(delivery.event, partition: delivery.partition, offset: delivery.offset)
                    : Self.line(delivery.event, partition: delivery.partition, offset: delivery.offset, width: width, color: color)
                print(line)
                fflush(nil)
                seen += 1
                if let count, seen >= count { break }
            }
            await client.close()
        } catch {
            await client.close()
            printError("tail failed: \(error)")
            throw ExitCode(1)
        }
    }

    static func line(_ e: Event, partition: UInt32, offset: UInt64, width: Int?, color: Bool) -> String {
        func paint(_ s: String, _ code: String) -> String { color ? "\u{1B}[\(code)m\(s)\u{1B}[0m" : s }
        let time = e.time.map { String($0.rfc3339.dropFirst(11).prefix(12)) } ?? "-"
        let place = "\(e.topic.name)#\(partition)@\(offset)"
        var head = "\(paint(time, "2")) \(paint(place, "36")) \(paint(e.type, "33"))"
        var plainLength = time.count + 1 + place.count + 1 + e.type.count
        if let trace = e.traceparent?.split(separator: "-"), trace.count >= 3 {
            head += " " + paint("trace=\(trace[1].prefix(8))", "35")
            plainLength += 15
        }
        var data = String(validating: e.data, as: UTF8.self).map { $0.replacingOccurrences(of: "\n", with: "\\n") }
            ?? "base64:" + Data(e.data).base64EncodedString()
        if let width, plainLength + 1 + data.count > width {
            data = String(data.prefix(max(8, width - plainLength - 2))) + "…"
        }
        return head + " " + data
    }

    static func jsonLine(_ e: Event, partition: UInt32, offset: UInt64) -> String {
        var o: [String: Any] = ["specversion": "1.0", "id": e.id, "source": e.source, "type": e.type,
                                "topic": e.topic.name, "partition": partition, "offset": offset]
        if let v = e.subject { o["subject"] = v }
        if let v = e.time { o["time"] = v.rfc3339 }
        if let v = e.datacontenttype { o["datacontenttype"] = v }
        if let v = e.partitionKey { o["partitionkey"] = v }
        if let v = e.traceparent { o["traceparent"] = v }
        if let v = e.tracestate { o["tracestate"] = v }
        if let s = String(validating: e.data, as: UTF8.self) { o["data"] = s } else { o["data_base64"] = Data(e.data).base64EncodedString() }
        let data = (try? JSONSerialization.data(withJSONObject: o, options: [.sortedKeys, .withoutEscapingSlashes])) ?? Data()
        return String(decoding: data, as: UTF8.self)
    }

    static func terminalWidth() -> Int? {
        guard isatty(1) != 0 else { return nil }
        var size = winsize()
        guard ioctl(1, UInt(TIOCGWINSZ), &size) == 0, size.ws_col > 20 else { return nil }
        return Int(size.ws_col)
    }
}
