#if canImport(Glibc)
import Glibc
#endif
import Foundation
import MeshClient
import MeshNet
import MeshTestSupport
import Synchronization

/// A free loopback port, known before the site starts (sites restart on the same port, and route
/// files name their peers' ports before those peers start): `reservablePort`.
func freePort() -> Int { reservablePort() }

/// One `meshgate serve` child: a site with its own data and routes directories.
final class Site: @unchecked Sendable {
    let name: String
    let dir: String
    let tcpPort: Int
    private(set) var process: ChildProcess?
    /// More `meshgate serve` arguments (TLS files, limits).
    var extraArguments: [String] = []
    /// How test clients connect to this site: TLS when its TCP listener speaks it.
    var clientTLS: ClientTLS?

    init(_ name: String, root: String, tcpPort: Int = freePort()) throws {
        self.name = name
        dir = root + "/" + name
        self.tcpPort = tcpPort
        try FileManager.default.createDirectory(atPath: dir + "/routes", withIntermediateDirectories: true)
    }

    /// Forwards `pattern` to each peer (name, port) with the given remote topic template.
    func route(to peers: [(String, Int)], pattern: String = "orders/#", topic: String = "{topic}") throws {
        var yaml = "version: 1\nconnectors:\n"
        for (peer, port) in peers { yaml += "  \(peer): {type: meshgate, url: \"tcp://127.0.0.1:\(port)\"}\n" }
        yaml += "routes:\n  - name: bridge\n    from: \"\(pattern)\"\n    to:\n"
        for (peer, _) in peers {
            yaml += "      - connector: \(peer)\n        topic: \"\(topic)\"\n        retry: {backoff: 50ms, max_backoff: 500ms}\n        buffer: 4096\n        start: earliest\n"
        }
        try yaml.write(toFile: dir + "/routes/bridge.yaml", atomically: true, encoding: .utf8)
    }

    func start() async throws {
        let p = try ChildProcess(meshgateBinary, ["serve", "--node", name, "--data", dir + "/data", "--routes", dir + "/routes",
                                                  "--http", "127.0.0.1:0", "--tcp", "127.0.0.1:\(tcpPort)"] + extraArguments,
                               mergeStandardError: true)
        process = p
        guard await p.waitForOutput(containing: "listening tcp=", timeout: .seconds(30)) else {
            throw SiteFailure(description: "site \(name) did not start: \(p.text)")
        }
    }

    func kill9() async {
        guard let p = process else { return }
        p.signal(SIGKILL)
        _ = try? await p.wait()
        process = nil
    }

    func stop() async {
        guard let p = process else { return }
        p.signal(SIGTERM)
        _ = try? await p.wait()
        process = nil
    }

    func client() async throws -> MeshClient {
        var configuration = MeshClient.Configuration(name: "test")
        configuration.tls = clientTLS
        return try await MeshClient.connect(host: "127.0.0.1", port: tcpPort, configuration: configuration)
    }

    /// Publishes `count` events in batches: topic `topic`, keys `k0..k{keys-1}`, data = "key:seq".
    func publish(count: Int, topic: String = "orders/new", keys: Int = 16, batch: Int = 500, tag: String = "") async throws {
        let c = try await client()
        let t = try Topic(topic)
        var seq = 0
        while seq < count {
            let n = min(batch, count - seq)
            var events: [Event] = []
            for i in seq..<(seq + n) {
                let key = "k\(i % keys)"
                events.append(Event(topic: t, partitionKey: key, data: Array("\(tag)\(key):\(i)".utf8)))
            }
            _ = try await c.publish(batch: events)
            seq += n
        }
        closeWithoutWaiting(c)
    }

    /// Reads every event of `pattern` from the start until `expected` arrived and nothing more
    /// came for `quiet`; returns them in partition order per key.
    func collect(_ pattern: String, expected: Int, timeout: Duration = .seconds(120), quiet: Duration = .seconds(2)) async throws -> [Event] {
        let c = try await client()
        let sub = try await c.subscribe(try TopicPattern(pattern), from: .earliest, window: 4096)
        let collected = Mutex<[Event]>([])
        let reader = Task {
            for try await d in sub { collected.withLock { $0.append(d.event) } }
        }
        let clock = ContinuousClock()
        let deadline = clock.now + timeout
        var lastCount = -1
        var stableSince = clock.now
        while clock.now < deadline {
            try await Task.sleep(for: .milliseconds(200))
            let n = collected.withLock { $0.count }
            if n != lastCount { lastCount = n; stableSince = clock.now }
            if n >= expected && clock.now - stableSince >= quiet { break }
        }
        reader.cancel()
        closeWithoutWaiting(c)
        return collected.withLock { $0 }
    }
}

/// Two sites started on loopback, A forwarding `orders/#` to B; `receiverArguments` go to B's
/// `serve`. The caller stops both.
func startedPair(_ label: String, receiverArguments: [String] = []) async throws -> (a: Site, b: Site) {
    let root = try temporaryRoot(label)
    let b = try Site("site-b", root: root)
    b.extraArguments = receiverArguments
    let a = try Site("site-a", root: root)
    try a.route(to: [("site-b", b.tcpPort)])
    try b.route(to: [])
    try await b.start()
    try await a.start()
    return (a, b)
}

/// Checks that `events` hold each of `expected` ids once, and per key in publish order.
func verifyExactlyOnce(_ events: [Event], count: Int) -> (missing: Int, duplicates: Int, outOfOrder: Int) {
    var seen = Set<String>()
    var dup = 0
    var last: [String: Int] = [:]
    var disorder = 0
    for e in events {
        let text = String(decoding: e.data, as: UTF8.self)
        if !seen.insert(e.hops.first! + "/" + e.id).inserted { dup += 1; continue }
        let parts = text.split(separator: ":")
        guard parts.count == 2, let seq = Int(parts[1]) else { continue }
        let key = String(parts[0]) + "@" + e.hops.first!
        if let prev = last[key], prev > seq { disorder += 1 }
        last[key] = seq
    }
    return (max(0, count - seen.count), dup, disorder)
}

func temporaryRoot(_ label: String) throws -> String {
    let path = NSTemporaryDirectory() + "meshbridge-\(label)-\(UUID().uuidString.prefix(8))"
    try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    return path
}

struct SiteFailure: Error, CustomStringConvertible {
    let description: String
}

/// Closes a test client in the background: what a test checks never depends on the goodbye, and a
/// close that waits on a peer being killed must not hold the test up.
func closeWithoutWaiting(_ client: MeshClient) {
    Task { await client.close() }
}
