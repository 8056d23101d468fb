import ArgumentParser
import Dispatch
import Foundation
import MeshBench
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
    @Option(help: "Spread the events over this many topics, TOPIC/0 … TOPIC/N-1 (TCP throughput only).") var topics = 1
    @Option(help: "Also write the figures as JSON to this file.") var json: String?
    @Option(name: .customLong("subscribers"), help: "Subscribers in --latency mode, each on its own connection (fan-out).") var subscribers_ = 1

    func run() async throws {
        let rate = try parseRate()
        guard size >= 8 || !latency else { throw ValidationError("--latency needs --size of at least 8 (the send time)") }
        guard connections >= 1, depth >= 1, duration > 0, topics >= 1, subscribers_ >= 1 else {
            throw ValidationError("--connections, --depth, --duration, --topics and --subscribers must be positive")
        }
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
        if let json { try stats.summary(size: size).write(to: json) }
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
        let spread = topics > 1 ? try (0..<topics).map { try Topic("\(self.topic)/\($0)") } : [topic]
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
            // One recorder per connection: its callbacks run on that connection's event loop.
            let shards = clients.map { _ in stats.shard() }
            var n = 0
            for (i, client) in clients.enumerated() {
                for _ in 0..<depth {
                    Self.keepPublishing(client, topics: spread, next: n, size: size, stats: stats, shard: shards[i])
                    n += 1
                }
            }
            try await Task.sleep(for: .seconds(duration))
        }
        stats.finish()
        progress.cancel()
        await stats.drain(timeout: 10)
        for client in clients { await client.close() }
        return stats
    }

    /// Keeps one publish in flight; with several topics each slot walks through them in turn.
    private static func keepPublishing(_ client: MeshClient, topics: [Topic], next: Int, size: Int, stats: Stats, shard: LoadShard) {
        let sent = DispatchTime.now().uptimeNanoseconds
        stats.sent()
        let topic = topics[next % topics.count]
        client.publish(Event(topic: topic, source: "bench", type: "bench", data: [UInt8](repeating: 0x78, count: size))) { result in
            shard.record(result.isSuccess, since: sent)
            stats.answered()
            if result.isSuccess, !stats.isFinished {
                keepPublishing(client, topics: topics, next: next &+ 997, size: size, stats: stats, shard: shard)
            }
        }
    }

    // MARK: Publish → subscriber

    private func runLatency(rate: Double) async throws -> Stats {
        let clients = try await connect()
        let topic = try Topic(self.topic)
        let stats = Stats(seconds: duration)
        let expected = Int(rate * duration)
        // Each subscriber on its own connection; every one of them sees every event.
        var subscribers: [MeshClient] = []
        var readers: [Task<Void, any Error>] = []
        var subscriptions: [MeshSubscription] = []
        for i in 0..<subscribers_ {
            var subscriberConfiguration = MeshClient.Configuration(name: "meshgate-bench/subscriber-\(i)")
            subscriberConfiguration.tls = tls.settings(for: server)
            let subscriber = try await MeshClient.connect(host: server.host, port: server.port, configuration: subscriberConfiguration)
            let subscription = try await subscriber.subscribe(TopicPattern(self.topic), from: .latest, window: 4096)
            subscribers.append(subscriber)
            subscriptions.append(subscription)
            readers.append(Task {
                var received = 0
                for try await delivery in subscription {
                    let now = DispatchTime.now().uptimeNanoseconds
                    guard delivery.event.data.count >= 8 else { continue }
                    let sentAt = delivery.event.data.withUnsafeBytes { $0.loadUnaligned(as: UInt64.self) }.littleEndian
                    stats.recordLatency(now &- sentAt)
                    received += 1
                    if received >= expected { break }
                }
            })
        }
        // The topic is created by its first event, as the JetStream harness creates its stream
        // before it starts: one event without a send time (the readers skip it) is stored before
        // the clock starts, so creating the topic is not counted as latency.
        _ = try await clients[0].publish(Event(topic: topic, source: "bench", type: "bench.warmup"))
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
        while stats.latencyCount < expected * subscribers_, DispatchTime.now().uptimeNanoseconds < deadline {
            try await Task.sleep(for: .milliseconds(10))
        }
        for reader in readers { reader.cancel() }
        stats.finish()
        progress.cancel()
        for subscription in subscriptions { subscription.cancel() }
        for subscriber in subscribers { await subscriber.close() }
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

typealias Stats = LoadStats

extension Result {
    var isSuccess: Bool { if case .success = self { true } else { false } }
}
