import ArgumentParser
import Dispatch
import Foundation
import Histogram
import MeshClient
import NIOCore
import NIOHTTP1
import NIOPosix
import Synchronization

/// `meshgate bench publish`: publish load over TCP (or HTTP) against a running server, with a live
/// progress line and an HDR latency summary. `--latency` measures publish → subscriber latency at a
/// fixed offered rate instead.
struct BenchPublish: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "publish", abstract: "Publish load against a running server.")

    @Option(help: "The TCP server, tcp://HOST:PORT or tls://HOST:PORT.") var server: ServerAddress = .default
    @OptionGroup(title: "TLS") var tls: TLSOptions
    @Option(help: "Use HTTP instead: the server's base URL, e.g. http://127.0.0.1:8080.") var http: String?
    @Option(help: "Topic to publish to.") var topic = "bench"
    @Option(help: "Connections.") var connections = 4
    @Option(help: "Publishes kept in flight per connection (TCP; HTTP sends one at a time).") var depth = 256
    @Option(help: "Event data size in bytes.") var size = 100
    @Option(help: "Seconds to run.") var duration = 5.0
    @Option(help: "Offered rate in events/s over all connections, e.g. 20000 or 20000/s; flat out when left out.") var rate: String?
    @Flag(help: "Measure publish → subscriber latency at the offered rate (default 20000/s).") var latency = false
    @Flag(help: "Send every publish as its own PUBLISH frame (no client-side merging into batches).") var noMerge = false

    func run() async throws {
        let rate = try parseRate()
        guard size >= 8 || !latency else { throw ValidationError("--latency needs --size of at least 8 (the send time)") }
        guard connections >= 1, depth >= 1, duration > 0 else { throw ValidationError("--connections, --depth and --duration must be positive") }
        let stats: Stats
        if let http {
            guard !latency else { throw ValidationError("--latency is measured over TCP") }
            stats = try await runHTTP(http, rate: rate)
        } else if latency {
            stats = try await runLatency(rate: rate ?? 20_000)
        } else {
            stats = try await runTCP(rate: rate)
        }
        stats.report(mode: latency ? "publish → subscriber latency" : "publish → ack latency", size: size)
        if stats.failed > 0 { throw ExitCode(1) }
    }

    private func parseRate() throws -> Double? {
        guard var text = rate else { return nil }
        if text.hasSuffix("/s") { text.removeLast(2) }
        guard let value = Double(text), value > 0 else { throw ValidationError("--rate takes events per second, e.g. 20000/s") }
        return value
    }

    private func payload(_ n: Int) -> [UInt8] {
        var data = [UInt8](repeating: UInt8(ascii: "x"), count: size)
        var stamp = DispatchTime.now().uptimeNanoseconds.littleEndian
        if size >= 8 { withUnsafeBytes(of: &stamp) { for i in 0..<8 { data[i] = $0[i] } } }
        return data
    }

    private func connect() async throws -> [MeshClient] {
        var clients: [MeshClient] = []
        for i in 0..<connections {
            var configuration = MeshClient.Configuration(name: "meshgate-bench/\(i)")
            configuration.mergePublishes = !noMerge
            configuration.reconnect = false
            configuration.tls = tls.settings(for: server)
            clients.append(try await MeshClient.connect(host: server.host, port: server.port, configuration: configuration))
        }
        return clients
    }

    // MARK: TCP publish → ack

    private func runTCP(rate: Double?) async throws -> Stats {
        let clients = try await connect()
        let stats = Stats(seconds: duration)
        let topic = try Topic(self.topic)
        let progress = stats.startProgress()
        let start = DispatchTime.now().uptimeNanoseconds
        if let rate {
            // Open loop: sends follow the clock; latency counts from the intended send time, so a
            // stalled server cannot hide its stall (no coordinated omission).
            let interval = 1e9 / rate
            var sent = 0
            let end = start + UInt64(duration * 1e9)
            while true {
                let now = DispatchTime.now().uptimeNanoseconds
                if now >= end { break }
                let due = Int(Double(now - start) / interval)
                while sent < due {
                    let intended = start + UInt64(Double(sent) * interval)
                    let client = clients[sent % clients.count]
                    client.publish(Event(topic: topic, source: "bench", type: "bench", data: payload(sent))) { result in
                        stats.record(result.isSuccess, since: intended)
                    }
                    sent += 1
                }
                try await Task.sleep(for: .microseconds(200))
            }
        } else {
            for client in clients {
                for _ in 0..<depth { Self.keepPublishing(client, topic: topic, size: size, stats: stats) }
            }
            try await Task.sleep(for: .seconds(duration))
        }
        stats.finish()
        progress.cancel()
        await stats.drain(timeout: 10)
        for client in clients { await client.close() }
        return stats
    }

    private static func keepPublishing(_ client: MeshClient, topic: Topic, size: Int, stats: Stats) {
        let sent = DispatchTime.now().uptimeNanoseconds
        stats.sent()
        client.publish(Event(topic: topic, source: "bench", type: "bench", data: [UInt8](repeating: 0x78, count: size))) { result in
            stats.record(result.isSuccess, since: sent)
            if result.isSuccess, !stats.isFinished {
                keepPublishing(client, topic: topic, size: size, stats: stats)
            }
        }
    }

    // MARK: Publish → subscriber

    private func runLatency(rate: Double) async throws -> Stats {
        let clients = try await connect()
        let topic = try Topic(self.topic)
        var subscriberConfiguration = MeshClient.Configuration(name: "meshgate-bench/subscriber")
        subscriberConfiguration.tls = tls.settings(for: server)
        let subscriber = try await MeshClient.connect(host: server.host, port: server.port, configuration: subscriberConfiguration)
        let subscription = try await subscriber.subscribe(TopicPattern(self.topic), from: .latest, window: 4096)
        let stats = Stats(seconds: duration)
        let expected = Int(rate * duration)
        let reader = Task {
            var received = 0
            for try await delivery in subscription {
                let now = DispatchTime.now().uptimeNanoseconds
                guard delivery.event.data.count >= 8 else { continue }
                let sentAt = delivery.event.data.withUnsafeBytes { $0.loadUnaligned(as: UInt64.self) }.littleEndian
                stats.recordLatency(now &- sentAt)
                received += 1
                if received >= expected { break }
            }
        }
        let progress = stats.startProgress()
        let interval = 1e9 / rate
        let start = DispatchTime.now().uptimeNanoseconds
        var sent = 0
        while sent < expected {
            let now = DispatchTime.now().uptimeNanoseconds
            let due = min(expected, Int(Double(now - start) / interval) + 1)
            while sent < due {
                clients[sent % clients.count].publish(Event(topic: topic, source: "bench", type: "bench", data: payload(sent))) { result in
                    stats.acknowledged(result.isSuccess)
                }
                sent += 1
            }
            try await Task.sleep(for: .microseconds(100))
        }
        // Wait for the stragglers, but not forever.
        let deadline = DispatchTime.now().uptimeNanoseconds + 10_000_000_000
        while stats.latencyCount < expected, DispatchTime.now().uptimeNanoseconds < deadline {
            try await Task.sleep(for: .milliseconds(10))
        }
        reader.cancel()
        stats.finish()
        progress.cancel()
        subscription.cancel()
        await subscriber.close()
        for client in clients { await client.close() }
        return stats
    }

    // MARK: HTTP

    private func runHTTP(_ base: String, rate: Double?) async throws -> Stats {
        guard let url = URL(string: base), let host = url.host else { throw ValidationError("--http takes http://HOST:PORT") }
        let port = url.port ?? 80
        let path = "/v1/publish/\(topic)"
        let stats = Stats(seconds: duration)
        let body = ByteBuffer(bytes: [UInt8](repeating: 0x78, count: size))
        var channels: [any Channel] = []
        for _ in 0..<connections {
            let channel = try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
                .channelOption(.socketOption(.tcp_nodelay), value: 1)
                .channelInitializer { channel in
                    channel.eventLoop.makeCompletedFuture {
                        try channel.pipeline.syncOperations.addHTTPClientHandlers()
                        try channel.pipeline.syncOperations.addHandler(
                            HTTPLoadHandler(host: host, path: path, body: body, stats: stats))
                    }
                }
                .connect(host: host, port: port).get()
            channels.append(channel)
        }
        let progress = stats.startProgress()
        for channel in channels { channel.pipeline.fireUserInboundEventTriggered(HTTPLoadHandler.Start()) }
        try await Task.sleep(for: .seconds(duration))
        stats.finish()
        progress.cancel()
        await stats.drain(timeout: 5)
        for channel in channels { try? await channel.close() }
        _ = rate  // HTTP runs closed-loop: one request at a time per connection
        return stats
    }
}

/// Keeps one POST in flight on a keep-alive HTTP/1.1 connection.
final class HTTPLoadHandler: ChannelInboundHandler {
    typealias InboundIn = HTTPClientResponsePart
    typealias OutboundOut = HTTPClientRequestPart
    struct Start {}

    let host: String
    let path: String
    let body: ByteBuffer
    let stats: Stats
    var sentAt: UInt64 = 0
    var status: HTTPResponseStatus = .ok

    init(host: String, path: String, body: ByteBuffer, stats: Stats) {
        self.host = host
        self.path = path
        self.body = body
        self.stats = stats
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if event is Start { send(context) } else { context.fireUserInboundEventTriggered(event) }
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head(let head):
            status = head.status
        case .body:
            break
        case .end:
            stats.record(status == .ok, since: sentAt)
            if !stats.isFinished { send(context) }
        }
    }

    private func send(_ context: ChannelHandlerContext) {
        var headers = HTTPHeaders()
        headers.add(name: "Host", value: host)
        headers.add(name: "Content-Length", value: "\(body.readableBytes)")
        headers.add(name: "Content-Type", value: "application/octet-stream")
        sentAt = DispatchTime.now().uptimeNanoseconds
        stats.sent()
        context.write(wrapOutboundOut(.head(HTTPRequestHead(version: .http1_1, method: .POST, uri: path, headers: headers))), promise: nil)
        context.write(wrapOutboundOut(.body(.byteBuffer(body))), promise: nil)
        context.writeAndFlush(wrapOutboundOut(.end(nil)), promise: nil)
    }
}

/// Counters and the latency histogram, shared by every connection's event loop.
final class Stats: Sendable {
    private struct State {
        var histogram = Histogram<UInt64>(highestTrackableValue: 60_000_000_000, numberOfSignificantValueDigits: .three)
        var ok = 0
        var failed = 0
        var inFlight = 0
        var latencies = 0
        var finishedAt: UInt64?
    }

    private let state = Mutex(State())
    let seconds: Double
    let startedAt = DispatchTime.now().uptimeNanoseconds

    init(seconds: Double) { self.seconds = seconds }

    var isFinished: Bool { state.withLock { $0.finishedAt != nil } }
    var latencyCount: Int { state.withLock { $0.latencies } }
    var failed: Int { state.withLock { $0.failed } }

    func sent() { state.withLock { $0.inFlight += 1 } }

    /// A publish answered; latency from `since` (nanoseconds, uptime clock) to now.
    func record(_ ok: Bool, since: UInt64) {
        let now = DispatchTime.now().uptimeNanoseconds
        state.withLock { s in
            s.inFlight -= 1
            guard s.finishedAt == nil else { return }
            if ok {
                s.ok += 1
                _ = s.histogram.record(now &- since)
            } else {
                s.failed += 1
            }
        }
    }

    /// Publish answered in latency mode (the latency is measured at the subscriber).
    func acknowledged(_ ok: Bool) {
        state.withLock { s in if ok { s.ok += 1 } else { s.failed += 1 } }
    }

    func recordLatency(_ nanoseconds: UInt64) {
        state.withLock { s in
            s.latencies += 1
            _ = s.histogram.record(nanoseconds)
        }
    }

    func finish() {
        state.withLock { s in if s.finishedAt == nil { s.finishedAt = DispatchTime.now().uptimeNanoseconds } }
    }

    /// Waits for what is still in flight to be answered (not counted).
    func drain(timeout: Double) async {
        let deadline = DispatchTime.now().uptimeNanoseconds + UInt64(timeout * 1e9)
        while state.withLock({ $0.inFlight > 0 }), DispatchTime.now().uptimeNanoseconds < deadline {
            try? await Task.sleep(for: .milliseconds(5))
        }
    }

    func startProgress() -> Task<Void, Never> {
        Task {
            var last = 0
            while !Task.isCancelled {
                try? await Task.sleep(for: .seconds(1))
                let (ok, failed, p99) = state.withLock { ($0.ok, $0.failed, $0.histogram.valueAtPercentile(99)) }
                let elapsed = Double(DispatchTime.now().uptimeNanoseconds - startedAt) / 1e9
                FileHandle.standardError.write(Data(String(
                    format: "\r\u{1B}[K%5.1fs  %@ ok  %@/s now  %d failed  p99 %@", elapsed, fmtCount(ok), fmtCount(ok - last), failed,
                    fmtNanos(p99)).utf8))
                last = ok
            }
        }
    }

    func report(mode: String, size: Int) {
        let s = state.withLock { $0 }
        let elapsed = Double((s.finishedAt ?? DispatchTime.now().uptimeNanoseconds) - startedAt) / 1e9
        FileHandle.standardError.write(Data("\r\u{1B}[K".utf8))
        print("events acknowledged: \(s.ok) in \(String(format: "%.2f", elapsed)) s = \(fmtCount(Int(Double(s.ok) / elapsed)))/s"
            + " (\(String(format: "%.1f", Double(s.ok * size) / elapsed / 1e6)) MB/s of data), failed: \(s.failed)")
        let h = s.histogram
        print("\(mode) (\(h.totalCount) samples): p50 \(fmtNanos(h.valueAtPercentile(50)))  p90 \(fmtNanos(h.valueAtPercentile(90)))"
            + "  p99 \(fmtNanos(h.valueAtPercentile(99)))  p99.9 \(fmtNanos(h.valueAtPercentile(99.9)))  max \(fmtNanos(h.max))")
    }
}

private func fmtCount(_ n: Int) -> String {
    let digits = String(n)
    var out = ""
    for (i, c) in digits.reversed().enumerated() {
        if i > 0, i % 3 == 0, c != "-" { out.append(",") }
        out.append(c)
    }
    return String(out.reversed())
}

private func fmtNanos(_ ns: UInt64) -> String {
    if ns < 1_000 { return "\(ns) ns" }
    if ns < 1_000_000 { return String(format: "%.0f µs", Double(ns) / 1e3) }
    if ns < 1_000_000_000 { return String(format: "%.2f ms", Double(ns) / 1e6) }
    return String(format: "%.2f s", Double(ns) / 1e9)
}

extension Result {
    var isSuccess: Bool { if case .success = self { true } else { false } }
}
