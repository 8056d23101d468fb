import ArgumentParser
import CNats
import Dispatch
import Foundation
import MeshBench

/// `meshgate-bench nats`: JetStream publish throughput (asynchronous publishes, at most `--depth`
/// unacknowledged per producer, as libnats' own `MaxPending` window) or publish → subscriber latency
/// through a push consumer, at a fixed offered rate.
struct NATSLoad: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "nats", abstract: "Load a NATS JetStream server through libnats.")

    @Option(help: "The server, nats://HOST:PORT.") var url = "nats://127.0.0.1:4222"
    @Option(help: "Subject (the stream is created over it if missing).") var subject = "bench"
    @Option(help: "Stream name.") var stream = "BENCH"
    @Flag(help: "Measure publish → subscriber latency at --rate instead of throughput.") var latency = false
    @Option(help: "Offered rate in events/s for --latency.") var rate = 20_000.0
    @Option(help: "Subscribers in --latency mode, each a push consumer on its own connection (fan-out).") var subscribers = 1
    @OptionGroup var load: LoadOptions

    func run() throws {
        let setup = try Connection(url: url, maxPending: 1)
        try setup.ensureStream(name: stream, subject: subject)
        setup.close()
        let stats = LoadStats(seconds: load.duration)
        if latency {
            try runLatency(stats)
            try load.finish(stats, mode: "publish → subscriber latency")
        } else {
            try runThroughput(stats)
            try load.finish(stats, mode: "publish → ack latency")
        }
        if stats.failed > 0 { throw ExitCode(1) }
    }

    private func runThroughput(_ stats: LoadStats) throws {
        let connections = try (0..<load.producers).map { _ in try Connection(url: url, maxPending: load.depth, stats: stats) }
        let (subject, size, duration) = (self.subject, load.size, load.duration)
        let options = load
        let deadline = DispatchTime.now().uptimeNanoseconds + UInt64(duration * 1e9)
        let shared = UnsafeSendable(connections)
        onThreads(connections.count) { i in
            let connection = shared.value[i]
            var data = [UInt8](repeating: 0x78, count: size)
            while DispatchTime.now().uptimeNanoseconds < deadline {
                _ = options.stamped(&data)
                // Blocks while `depth` publishes are unacknowledged (libnats' MaxPending).
                let status = js_PublishAsync(connection.js, subject, data, Int32(size), nil)
                if status != NATS_OK { connection.shard?.record(false, since: 0) }
            }
        }
        stats.finish()
        for connection in connections { connection.complete(seconds: 10) }
        for connection in connections { connection.close() }
    }

    private func runLatency(_ stats: LoadStats) throws {
        let expected = Int(rate * load.duration)
        let received = Counter()
        let subscriberConnections = try (0..<max(1, subscribers)).map { _ in try Connection(url: url, maxPending: 1) }
        for subscriber in subscriberConnections { try subscriber.subscribe(subject: subject, stats: stats, received: received) }
        let publishers = try (0..<load.producers).map { _ in try Connection(url: url, maxPending: 1_000_000, stats: stats, countsLatency: false) }
        var data = [UInt8](repeating: 0x78, count: load.size)
        let interval = 1e9 / rate
        let start = DispatchTime.now().uptimeNanoseconds
        var sent = 0
        while sent < expected {
            let now = DispatchTime.now().uptimeNanoseconds
            let due = min(expected, Int(Double(now - start) / interval) + 1)
            while sent < due {
                _ = load.stamped(&data)
                if js_PublishAsync(publishers[sent % publishers.count].js, subject, data, Int32(load.size), nil) != NATS_OK {
                    stats.acknowledged(false)
                }
                sent += 1
            }
            usleep(100)
        }
        let deadline = DispatchTime.now().uptimeNanoseconds + 10_000_000_000
        while received.value < expected * subscriberConnections.count, DispatchTime.now().uptimeNanoseconds < deadline { usleep(10_000) }
        stats.finish()
        for p in publishers { p.complete(seconds: 10) }
        for subscriber in subscriberConnections { subscriber.close() }
        for p in publishers { p.close() }
    }
}

final class Counter: @unchecked Sendable {
    private let lock = NSLock()
    private var n = 0
    func add() { lock.lock(); n += 1; lock.unlock() }
    var value: Int { lock.lock(); defer { lock.unlock() }; return n }
}

struct UnsafeSendable<T>: @unchecked Sendable {
    let value: T
    init(_ value: T) { self.value = value }
}

/// One libnats connection with its JetStream context.
final class Connection: @unchecked Sendable {
    let nc: OpaquePointer
    let js: OpaquePointer
    private var sub: OpaquePointer?
    private var context: Unmanaged<AckContext>?

    /// This connection's recorder: its acknowledgements (or deliveries) arrive on one libnats thread.
    var shard: LoadShard? { context?.takeUnretainedValue().shard }

    final class AckContext {
        let shard: LoadShard?
        let countsLatency: Bool
        let received: Counter?
        init(stats: LoadStats?, countsLatency: Bool, received: Counter? = nil) {
            self.shard = stats?.shard()
            self.countsLatency = countsLatency
            self.received = received
        }
    }

    init(url: String, maxPending: Int, stats: LoadStats? = nil, countsLatency: Bool = true) throws {
        var opts: OpaquePointer?
        try check(natsOptions_Create(&opts), "natsOptions_Create")
        defer { natsOptions_Destroy(opts) }
        try check(natsOptions_SetURL(opts, url), "natsOptions_SetURL")
        // Acknowledgements and deliveries on libnats' shared delivery pool rather than a thread per
        // subscription: fewer threads competing for the 2 cores with the server.
        try check(natsOptions_UseGlobalMessageDelivery(opts, true), "natsOptions_UseGlobalMessageDelivery")
        var nc: OpaquePointer?
        try check(natsConnection_Connect(&nc, opts), "connect to \(url)")
        self.nc = nc!
        var jsOpts = jsOptions()
        jsOptions_Init(&jsOpts)
        jsOpts.PublishAsync.MaxPending = Int64(maxPending)
        jsOpts.PublishAsync.StallWait = 30_000
        if let stats {
            let context = Unmanaged.passRetained(AckContext(stats: stats, countsLatency: countsLatency))
            self.context = context
            jsOpts.PublishAsync.AckHandlerClosure = context.toOpaque()
            jsOpts.PublishAsync.AckHandler = { _, msg, pubAck, _, closure in
                let context = Unmanaged<AckContext>.fromOpaque(closure!).takeUnretainedValue()
                let ok = pubAck != nil
                if context.countsLatency {
                    let sentAt = stampOf(UnsafeRawPointer(natsMsg_GetData(msg)), length: Int(natsMsg_GetDataLength(msg))) ?? 0
                    context.shard?.record(ok, since: sentAt)
                } else {
                    context.shard?.acknowledged(ok)
                }
                natsMsg_Destroy(msg)
            }
        }
        var js: OpaquePointer?
        try check(natsConnection_JetStream(&js, nc, &jsOpts), "JetStream context")
        self.js = js!
    }

    func ensureStream(name: String, subject: String) throws {
        var config = jsStreamConfig()
        jsStreamConfig_Init(&config)
        var info: UnsafeMutablePointer<jsStreamInfo>?
        var code = jsErrCode(0)
        let status: natsStatus = name.withCString { cName in
            subject.withCString { cSubject in
                var subjects: [UnsafePointer<CChar>?] = [cSubject]
                return subjects.withUnsafeMutableBufferPointer { list in
                    config.Name = cName
                    config.Subjects = list.baseAddress
                    config.SubjectsLen = 1
                    config.Storage = js_FileStorage
                    return js_AddStream(&info, js, &config, nil, &code)
                }
            }
        }
        if let info { jsStreamInfo_Destroy(info) }
        // 10058: a stream of that name exists already (a second run against the same server).
        if status != NATS_OK, code.rawValue != 10058 { throw LoadFailure(description: "js_AddStream: \(describe(status)) (JetStream code \(code.rawValue))") }
    }

    /// A push consumer from new messages on, without acknowledgements: each delivery records its latency.
    func subscribe(subject: String, stats: LoadStats, received: Counter) throws {
        let context = Unmanaged.passRetained(AckContext(stats: stats, countsLatency: true, received: received))
        self.context = context
        var subOpts = jsSubOptions()
        jsSubOptions_Init(&subOpts)
        subOpts.Config.AckPolicy = js_AckNone
        subOpts.Config.DeliverPolicy = js_DeliverNew
        var sub: OpaquePointer?
        var code = jsErrCode(0)
        let status = js_Subscribe(&sub, js, subject, { _, _, msg, closure in
            let now = DispatchTime.now().uptimeNanoseconds
            let context = Unmanaged<AckContext>.fromOpaque(closure!).takeUnretainedValue()
            if let sentAt = stampOf(UnsafeRawPointer(natsMsg_GetData(msg)), length: Int(natsMsg_GetDataLength(msg))) {
                context.shard?.recordLatency(now &- sentAt)
                context.received?.add()
            }
            natsMsg_Destroy(msg)
        }, context.toOpaque(), nil, &subOpts, &code)
        try check(status, "js_Subscribe (JetStream code \(code.rawValue))")
        self.sub = sub
    }

    /// Waits for the outstanding asynchronous publishes to be acknowledged.
    func complete(seconds: Int) {
        var pubOpts = jsPubOptions()
        jsPubOptions_Init(&pubOpts)
        pubOpts.MaxWait = Int64(seconds * 1000)
        _ = js_PublishAsyncComplete(js, &pubOpts)
    }

    func close() {
        if let sub {
            natsSubscription_Unsubscribe(sub)
            natsSubscription_Destroy(sub)
        }
        jsCtx_Destroy(js)
        natsConnection_Close(nc)
        natsConnection_Destroy(nc)
        context?.release()
    }
}

private func describe(_ status: natsStatus) -> String { String(cString: natsStatus_GetText(status)) }

private func check(_ status: natsStatus, _ what: String) throws {
    if status != NATS_OK { throw LoadFailure(description: "\(what): \(describe(status))") }
}
