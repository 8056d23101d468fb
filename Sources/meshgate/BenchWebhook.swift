import ArgumentParser
import Foundation
import Logging
import MeshCore
import MeshGateway
import MeshLog
import MeshRouting
import MeshWebhook
import Synchronization

/// `meshgate bench webhook`: the webhook connector against a local keep-alive receiver (a child
/// process), compared in the same run with what `wrk` gets from that receiver: events/s through
/// the connector alone and through the whole route (log → engine → webhook), and the latency the
/// connector adds at a fixed rate, over the receiver's own round trip.
struct BenchWebhook: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "webhook", abstract: "Benchmark the webhook connector against wrk on the same receiver.")

    @Option(help: "Seconds per throughput scenario.") var seconds = 5.0
    @Option(help: "Connections (wrk -c) and the connector's concurrency.") var connections = 32
    @Option(help: "Events per second of the latency scenario.") var rate = 5000
    @Option(help: "Events through the whole route (log → engine → webhook).") var routeEvents = 100_000
    @Option(help: "libcurl threads of the connector (default: the gateway's webhook_threads default).") var curlThreads = GatewayConfig.defaultWebhookThreads
    @Option(help: "Scratch directory for the route scenario (deleted afterwards).") var dir = "./.bench-webhook"
    @Flag(help: "Shorter runs.") var quick = false
    @Option(help: "Also write the figures as JSON to this file.") var json: String?
    @Option(help: .hidden) var serveReceiver: Int?

    func run() async throws {
        if let port = serveReceiver {
            try BenchReceiver.serve(port: port)
            return
        }
        let seconds = quick ? 2.0 : self.seconds
        let receiver = try BenchReceiverProcess()
        defer { receiver.stop() }
        let url = "http://127.0.0.1:\(receiver.port)/hook"
        print("meshgate bench webhook — \(ProcessInfo.processInfo.activeProcessorCount) cores, receiver pid \(receiver.pid) at \(url), \(connections) connections, \(curlThreads) curl thread(s), \(seconds)s per scenario\n")

        let wrk = try runWrk(url: url, seconds: seconds)
        var quiet = Logger(label: "meshgate.bench")
        quiet.logLevel = .error
        let webhooks = WebhookConnectors(logger: quiet, threads: curlThreads)
        defer { Task { await webhooks.stop() } }
        let destination = try makeDestination(webhooks, url: url)

        let direct = await throughput(destination, seconds: seconds)
        let batched = await throughput(try makeDestination(webhooks, url: url, name: "bench-batch", extra: ["mode": "batch", "batch_size": "100", "batch_linger": "2ms"]),
                                       seconds: seconds, workers: 1000)
        let route = try await routeThroughput(webhooks: webhooks, url: url, logger: quiet)
        let baseline = try BenchReceiver.roundTrips(port: receiver.port, count: quick ? 2000 : 5000)
        let latency = await fixedRate(destination, rate: rate, seconds: quick ? 2 : seconds)
        print("\r\u{1B}[K")

        print("| scenario | events/s | vs wrk |")
        print("|---|---|---|")
        print("| wrk -t1 -c\(connections) POST (same receiver, ceiling) | \(fmt(wrk)) | 1.00 |")
        print("| connector: \(connections * 2) tasks calling deliver(), concurrency \(connections) | \(fmt(direct)) | \(String(format: "%.2f", direct / wrk)) |")
        print("| route: \(routeEvents) events log → engine → webhook | \(fmt(route)) | \(String(format: "%.2f", route / wrk)) |")
        print("| connector, mode: batch (≤ 100 events a request), 1000 tasks | \(fmt(batched)) | \(String(format: "%.2f", batched / wrk)) |")
        print("")
        print("latency at \(rate) events/s for \(quick ? 2 : Int(seconds))s (\(latency.count) events, \(latency.errors) errors), microseconds:")
        print("| | p50 | p90 | p99 | p99.9 | max |")
        print("|---|---|---|---|---|---|")
        print(row("connector deliver() → 2xx", latency.samples))
        print(row("receiver round trip alone (blocking client)", baseline))
        let added = zip(percentiles(latency.samples), percentiles(baseline)).map { max(0, $0 - $1) }
        print("| added by the connector (difference) | " + added.map { String($0) }.joined(separator: " | ") + " |")
        let p99 = Double(added[2]) / 1000
        if let json {
            let latencyPercentiles = percentiles(latency.samples)
            let figures: [String: Double] = [
                "wrk_per_s": wrk, "connector_per_s": direct, "route_per_s": route, "batch_per_s": batched,
                "latency_rate": Double(rate), "latency_p50_us": Double(latencyPercentiles[0]), "latency_p99_us": Double(latencyPercentiles[2]),
                "added_p50_us": Double(added[0]), "added_p99_us": Double(added[2]), "latency_errors": Double(latency.errors),
                "connections": Double(connections), "curl_threads": Double(curlThreads),
            ]
            try JSONSerialization.data(withJSONObject: figures.mapValues { $0.isFinite ? $0 : 0 }, options: [.sortedKeys])
                .write(to: URL(fileURLWithPath: json))
        }
        print("\nadded p99 \(String(format: "%.2f", p99)) ms (target ≤ 2 ms); connector \(String(format: "%.0f", direct / wrk * 100))% and route \(String(format: "%.0f", route / wrk * 100))% of wrk (target ≥ 50%)")
        await webhooks.stop()
    }

    // MARK: scenarios

    private func makeDestination(_ webhooks: WebhookConnectors, url: String, name: String = "bench", extra: [String: String] = [:]) throws -> any Destination {
        let at = SourceLocation(file: "bench", line: 1, column: 1)
        let options = ["url": url, "concurrency": String(connections)].merging(extra) { $1 }
        let connector = ConnectorSpec(name: name, kind: .webhook, url: url, options: options, redactedOptions: options, location: at)
        let spec = DestinationSpec(target: .connector(name: name, topic: try Template("{topic}", captures: 0, attributes: false)), location: at)
        let route = Route(name: "bench", source: .topics(try TopicPattern("bench/#")), filter: nil, destinations: [spec], location: at)
        guard let d = webhooks.destination(for: connector, route: route, spec: spec) else { throw ValidationError("no webhook runtime") }
        return d
    }

    static func sampleEvent(_ i: Int) -> Event {
        Event(topic: try! Topic("bench/orders"), id: "ev-\(i)", source: "meshgate://bench/http", type: "order.created",
              time: Timestamp.now(), datacontenttype: "application/json", partitionKey: "k\(i % 64)",
              data: Array(#"{"order":\#(i),"customer":"c-1842","total":129.5,"currency":"EUR","items":3}"#.utf8))
    }

    private func runWrk(url: String, seconds: Double) throws -> Double {
        let script = NSTemporaryDirectory() + "meshgate-bench-webhook-\(getpid()).lua"
        let e = Self.sampleEvent(0)
        let body = String(decoding: e.data, as: UTF8.self)
        try """
        wrk.method = "POST"
        wrk.body = '\(body)'
        wrk.headers["Content-Type"] = "application/json"
        wrk.headers["ce-specversion"] = "1.0"
        wrk.headers["ce-id"] = "\(e.id)"
        wrk.headers["ce-source"] = "\(e.source)"
        wrk.headers["ce-type"] = "\(e.type)"
        wrk.headers["ce-time"] = "\(e.time!.rfc3339)"
        wrk.headers["ce-partitionkey"] = "k0"
        wrk.headers["meshgate-topic"] = "bench/orders"
        """.write(toFile: script, atomically: true, encoding: .utf8)
        defer { try? FileManager.default.removeItem(atPath: script) }
        print("wrk -t1 -c\(connections) -d\(Int(seconds))s -s post.lua \(url)")
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        p.arguments = ["wrk", "-t1", "-c\(connections)", "-d\(Int(seconds))s", "-s", script, url]
        let out = Pipe()
        p.standardOutput = out
        p.standardError = out
        do { try p.run() } catch { throw ValidationError("cannot run wrk (apt-get install wrk): \(error)") }
        let text = String(decoding: out.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        p.waitUntilExit()
        guard let line = text.split(separator: "\n").first(where: { $0.hasPrefix("Requests/sec:") }),
              let value = Double(line.dropFirst("Requests/sec:".count).trimmingCharacters(in: .whitespaces)) else {
            throw ValidationError("wrk failed: \(text)")
        }
        return value
    }

    /// Closed loop: `2 × connections` tasks deliver back to back for `seconds`.
    private func throughput(_ destination: any Destination, seconds: Double, workers: Int? = nil) async -> Double {
        let count = WebhookBenchCounter()
        let workers = workers ?? connections * 2
        let clock = ContinuousClock()
        let start = clock.now
        let end = start + .milliseconds(Int64(seconds * 1000))
        await withTaskGroup(of: Void.self) { group in
            for w in 0..<workers {
                group.addTask {
                    var i = w << 32
                    while clock.now < end {
                        do { try await destination.deliver(Self.sampleEvent(i)) } catch { continue }
                        count.add()
                        i += 1
                    }
                }
            }
            group.addTask {
                while clock.now < end {
                    try? await Task.sleep(for: .milliseconds(500))
                    let elapsed = clock.now - start
                    Self.progress("connector", count.value, elapsed)
                }
            }
        }
        return Double(count.value) / Self.secs(clock.now - start)
    }

    /// The whole path: events appended to the log first, then a route delivers them.
    private func routeThroughput(webhooks: WebhookConnectors, url: String, logger: Logger) async throws -> Double {
        FileIO_removeTree(dir)
        defer { FileIO_removeTree(dir) }
        var options = LogOptions()
        options.defaultTopic = TopicConfig(partitions: 2, durability: .none)
        let log = try DurableLog(directory: dir, options: options, logger: logger)
        defer { log.close() }
        let topic = try log.createTopic(try Topic("bench/orders"), config: TopicConfig(partitions: 2, durability: .none))
        var batch: [[UInt8]] = []
        for i in 0..<routeEvents {
            batch.append(EventCodec.encode(Self.sampleEvent(i)))
            if batch.count == 1000 || i == routeEvents - 1 {
                for payload in batch { _ = try await topic.append(payload, key: nil) }
                batch.removeAll(keepingCapacity: true)
            }
        }
        let at = SourceLocation(file: "bench", line: 1, column: 1)
        let options2 = ["url": url, "concurrency": String(connections)]
        let connector = ConnectorSpec(name: "route-bench", kind: .webhook, url: url, options: options2, redactedOptions: options2, location: at)
        var policy = DeliveryPolicy()
        policy.ordering = .none
        policy.inFlight = connections
        policy.buffer = 1024
        policy.startAtEarliest = true
        let spec = DestinationSpec(target: .connector(name: "route-bench", topic: try Template("{topic}", captures: 0, attributes: false)), policy: policy, location: at)
        let route = Route(name: "bench", source: .topics(try TopicPattern("bench/#")), filter: nil, destinations: [spec], location: at)
        let engine = RouteEngine(log: log, provider: webhooks, logger: logger)
        let clock = ContinuousClock()
        let start = clock.now
        await engine.apply(RouteTable(routes: [route], connectors: ["route-bench": connector], files: []))
        while true {
            let delivered = engine.status.first?.counters.delivered ?? 0
            Self.progress("route", delivered, clock.now - start)
            if delivered >= routeEvents { break }
            try await Task.sleep(for: .milliseconds(20))
        }
        let rate = Double(routeEvents) / Self.secs(clock.now - start)
        await engine.stop()
        return rate
    }

    /// Open loop: one event every 1/rate s, each delivery timed from its call to its 2xx.
    private func fixedRate(_ destination: any Destination, rate: Int, seconds: Double) async -> (samples: [Int], count: Int, errors: Int) {
        let total = Int(Double(rate) * seconds)
        let samples = BenchSamples()
        let errors = WebhookBenchCounter()
        let done = WebhookBenchCounter()
        let interval = 1.0 / Double(rate)
        let started = Date()
        let d = UnsafeTransfer(destination)
        // A thread paces the calls; async sleeps are too coarse for a 200 µs period. It sleeps
        // until each call's due time (absolute, so lateness never accumulates) rather than spin:
        // a spinning pacer takes half a core that the connector and receiver share on a small machine.
        let issuer = Thread {
            var t0 = timespec()
            clock_gettime(CLOCK_MONOTONIC, &t0)
            let start = Int64(t0.tv_sec) * 1_000_000_000 + Int64(t0.tv_nsec)
            for i in 0..<total {
                let due = start + Int64(Double(i) * interval * 1e9)
                var at = timespec(tv_sec: Int(due / 1_000_000_000), tv_nsec: Int(due % 1_000_000_000))
                while clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &at, nil) == EINTR {}
                Task {
                    let begin = ContinuousClock.now
                    do {
                        try await d.value.deliver(Self.sampleEvent(i))
                        let us = Int((ContinuousClock.now - begin) / .microseconds(1))
                        samples.add(us)
                    } catch {
                        errors.add()
                    }
                    done.add()
                }
            }
        }
        issuer.start()
        while done.value < total {
            try? await Task.sleep(for: .milliseconds(250))
            Self.progress("latency", done.value, .milliseconds(Int64(Date().timeIntervalSince(started) * 1000)))
        }
        return (samples.all, total, errors.value)
    }

    private static func secs(_ d: Duration) -> Double {
        Double(d.components.seconds) + Double(d.components.attoseconds) / 1e18
    }

    private static func progress(_ label: String, _ count: Int, _ elapsed: Duration) {
        let s = max(Self.secs(elapsed), 0.001)
        FileHandle.standardError.write(Data("\r\u{1B}[K  \(label): \(count) events, \(fmt(Double(count) / s))/s".utf8))
    }

    private func percentiles(_ samples: [Int]) -> [Int] {
        let sorted = samples.sorted()
        guard !sorted.isEmpty else { return [0, 0, 0, 0, 0] }
        func at(_ q: Double) -> Int { sorted[min(sorted.count - 1, Int(Double(sorted.count) * q))] }
        return [at(0.5), at(0.9), at(0.99), at(0.999), sorted.last!]
    }

    private func row(_ name: String, _ samples: [Int]) -> String {
        "| \(name) | " + percentiles(samples).map { String($0) }.joined(separator: " | ") + " |"
    }
}

final class WebhookBenchCounter: Sendable {
    private let n = Atomic<Int>(0)
    func add() { n.add(1, ordering: .relaxed) }
    var value: Int { n.load(ordering: .relaxed) }
}

final class BenchSamples: Sendable {
    private let samples = Mutex<[Int]>([])
    func add(_ us: Int) { samples.withLock { $0.append(us) } }
    var all: [Int] { samples.withLock { $0 } }
}

struct UnsafeTransfer<T>: @unchecked Sendable {
    let value: T
    init(_ value: T) { self.value = value }
}

/// The receiver, run as a child process (`meshgate bench webhook --serve-receiver 0`) so that
/// wrk and the connector load it the same way.
final class BenchReceiverProcess {
    let process = Process()
    let port: Int
    var pid: Int32 { process.processIdentifier }

    init() throws {
        let exe = (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? CommandLine.arguments[0]
        process.executableURL = URL(fileURLWithPath: exe)
        process.arguments = ["bench", "webhook", "--serve-receiver", "0"]
        let out = Pipe()
        process.standardOutput = out
        try process.run()
        var text = ""
        while !text.contains("\n") {
            let chunk = out.fileHandleForReading.availableData
            if chunk.isEmpty { break }
            text += String(decoding: chunk, as: UTF8.self)
        }
        guard let p = Int(text.trimmingCharacters(in: .whitespacesAndNewlines)) else {
            process.terminate()
            throw ValidationError("the bench receiver did not start")
        }
        port = p
    }

    func stop() {
        if process.isRunning {
            kill(process.processIdentifier, SIGKILL)
            process.waitUntilExit()
        }
    }
}

/// A minimal HTTP/1.1 keep-alive server: reads each request (Content-Length bodies) and answers
/// `200` with an empty body. A thread per connection, blocking I/O.
enum BenchReceiver {
    static let response = Array("HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n".utf8)

    static func serve(port: Int) throws {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var one: Int32 = 1
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(MemoryLayout<Int32>.size))
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_addr.s_addr = inet_addr("127.0.0.1")
        addr.sin_port = in_port_t(UInt16(port).bigEndian)
        let ok = withUnsafePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }
        guard ok == 0, listen(fd, 1024) == 0 else { throw ValidationError("cannot listen on 127.0.0.1:\(port)") }
        var len = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafeMutablePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &len) } }
        FileHandle.standardOutput.write(Data("\(UInt16(bigEndian: addr.sin_port))\n".utf8))
        while true {
            let client = accept(fd, nil, nil)
            if client < 0 { continue }
            setsockopt(client, Int32(IPPROTO_TCP), TCP_NODELAY, &one, socklen_t(MemoryLayout<Int32>.size))
            let t = Thread { connection(client) }
            t.stackSize = 256 << 10
            t.start()
        }
    }

    static func connection(_ fd: Int32) {
        defer { close(fd) }
        var buffer = [UInt8](repeating: 0, count: 1 << 16)
        var used = 0
        var scan = 0
        var out: [UInt8] = []
        while true {
            let n = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress! + used, $0.count - used, 0) }
            if n <= 0 { return }
            used += n
            // Answer every complete request in the buffer.
            while let end = headEnd(buffer, from: scan, to: used) {
                let total = end + contentLength(buffer, upTo: end)
                if total > used { scan = max(0, end - 3); break }
                out.append(contentsOf: response)
                buffer.withUnsafeMutableBytes { b in
                    _ = memmove(b.baseAddress!, b.baseAddress! + total, used - total)
                }
                used -= total
                scan = 0
            }
            if used == buffer.count { buffer.append(contentsOf: [UInt8](repeating: 0, count: buffer.count)) }
            if !out.isEmpty {
                let sent = out.withUnsafeBytes { send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
                if sent != out.count { return }
                out.removeAll(keepingCapacity: true)
            }
        }
    }

    /// The index just past `\r\n\r\n`, or nil.
    static func headEnd(_ b: [UInt8], from: Int, to: Int) -> Int? {
        var i = from
        while i + 3 < to {
            if b[i] == 13 && b[i + 1] == 10 && b[i + 2] == 13 && b[i + 3] == 10 { return i + 4 }
            i += 1
        }
        return nil
    }

    static func contentLength(_ b: [UInt8], upTo end: Int) -> Int {
        let name = Array("content-length:".utf8)
        var i = 0
        while i + name.count < end {
            if (b[i] | 0x20) == name[0] && (i == 0 || b[i - 1] == 10) {
                var match = true
                for k in 1..<name.count where (b[i + k] | 0x20) != name[k] { match = false; break }
                if match {
                    var j = i + name.count
                    while j < end && b[j] == 32 { j += 1 }
                    var v = 0
                    while j < end && b[j] >= 48 && b[j] <= 57 { v = v * 10 + Int(b[j] - 48); j += 1 }
                    return v
                }
            }
            i += 1
        }
        return 0
    }

    /// The receiver's own round trip: a blocking client sending the connector's request shape
    /// one at a time on one keep-alive connection, in microseconds.
    static func roundTrips(port: Int, count: Int) throws -> [Int] {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(fd) }
        var one: Int32 = 1
        setsockopt(fd, Int32(IPPROTO_TCP), TCP_NODELAY, &one, socklen_t(MemoryLayout<Int32>.size))
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_addr.s_addr = inet_addr("127.0.0.1")
        addr.sin_port = in_port_t(UInt16(port).bigEndian)
        let ok = withUnsafePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }
        guard ok == 0 else { throw ValidationError("cannot connect to the bench receiver") }
        let e = BenchWebhook.sampleEvent(0)
        let request = Array(("POST /hook HTTP/1.1\r\nHost: 127.0.0.1:\(port)\r\nUser-Agent: meshgate-webhook/1\r\nAccept: */*\r\n"
            + "ce-specversion: 1.0\r\nce-id: \(e.id)\r\nce-source: \(e.source)\r\nce-type: \(e.type)\r\nce-time: \(e.time!.rfc3339)\r\n"
            + "ce-partitionkey: k0\r\nmeshgate-topic: bench/orders\r\nContent-Type: application/json\r\nContent-Length: \(e.data.count)\r\n\r\n").utf8) + e.data
        var samples: [Int] = []
        samples.reserveCapacity(count)
        var reply = [UInt8](repeating: 0, count: 4096)
        for _ in 0..<count {
            let begin = ContinuousClock.now
            _ = request.withUnsafeBytes { send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
            var got = 0
            while got < response.count {
                let n = reply.withUnsafeMutableBytes { recv(fd, $0.baseAddress! + got, $0.count - got, 0) }
                if n <= 0 { throw ValidationError("the bench receiver closed the connection") }
                got += n
            }
            samples.append(Int((ContinuousClock.now - begin) / .microseconds(1)))
        }
        return samples
    }
}
