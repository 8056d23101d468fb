import Foundation
import Synchronization
import Logging
import MeshBroker
import MeshGateway
import MeshHTTP
import MeshLog
import NIOCore
import NIOHTTP1
import NIOPosix
import Testing

/// A fresh scratch directory, removed when the value is released.
final class ScratchDirectory: Sendable {
    let path: String

    init(_ name: String = #function) {
        let safe = name.filter { $0.isLetter || $0.isNumber }
        path = NSTemporaryDirectory() + "meshgate-http-\(safe)-\(UUID().uuidString.prefix(8))"
        try! FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    }

    deinit { try? FileManager.default.removeItem(atPath: path) }
}

let quietLogger: Logger = {
    var l = Logger(label: "test")
    l.logLevel = .critical
    return l
}()

final class LockedText: @unchecked Sendable {
    private let lock = NSLock()
    private var text: String?
    func set(_ t: String) { lock.withLock { text = t } }
    var value: String? { lock.withLock { text } }
}

/// An in-process gateway on a free loopback port.
final class TestGateway: Sendable {
    let dir: ScratchDirectory
    let gateway: Gateway
    let port: Int
    let client: AdminClient
    private let task: Task<Void, any Error>

    init(_ name: String = #function, configure: (inout GatewayConfig) -> Void = { _ in }) async throws {
        dir = ScratchDirectory(name)
        var config = GatewayConfig()
        config.node = "test"
        config.http = HostPort(host: "127.0.0.1", port: 0)
        config.tcp = HostPort(host: "127.0.0.1", port: 0)
        config.dataDirectory = dir.path
        // Routing stays off unless a test creates this directory (before starting) or points elsewhere.
        config.routesDirectory = dir.path + "/routes"
        configure(&config)
        let gateway = try Gateway(config: config, logger: quietLogger)
        self.gateway = gateway
        let ended = LockedText()
        task = Task {
            do { try await gateway.run(signals: []) } catch {
                ended.set("run failed: \(error)")
                throw error
            }
            ended.set("run returned")
        }
        let started = ContinuousClock.now
        var port: Int?
        while port == nil {
            port = gateway.status.listeners.first { $0.name == "http" }?.port
            if port == nil {
                if let why = ended.value { throw AdminClient.Failure(description: "the gateway stopped before listening: \(why)") }
                // Generous: the whole suite runs in parallel with the log's crash tests on 2 cores.
                if ContinuousClock.now - started > .seconds(60) { throw AdminClient.Failure(description: "the gateway did not start in 60 s") }
                try await Task.sleep(for: .milliseconds(5))
            }
        }
        self.port = port!
        client = AdminClient(host: "127.0.0.1", port: port!)
    }

    var broker: Broker { gateway.broker }

    func stop() async throws {
        await gateway.shutdown()
        try await task.value
    }

    func get(_ path: String, headers: [(String, String)] = []) async throws -> AdminClient.Response {
        try await client.request(.GET, path, headers: headers)
    }

    func post(_ path: String, _ body: [UInt8], headers: [(String, String)] = []) async throws -> AdminClient.Response {
        try await client.request(.POST, path, headers: headers, body: body)
    }

    func post(_ path: String, _ body: String, headers: [(String, String)] = []) async throws -> AdminClient.Response {
        try await post(path, Array(body.utf8), headers: headers)
    }

    /// Fetches a whole partition from `offset` as parsed JSON events.
    func fetch(_ topic: String, partition: Int = 0, offset: Int = 0, max: Int = 1000) async throws -> [[String: Any]] {
        let r = try await get("/v1/fetch/\(topic)?partition=\(partition)&offset=\(offset)&max=\(max)")
        #expect(r.status == 200, "\(r.text)")
        return try #require((try JSONSerialization.jsonObject(with: Data(r.body)) as? [String: Any])?["events"] as? [[String: Any]])
    }
}

func json(_ r: AdminClient.Response) throws -> [String: Any] {
    try #require(try JSONSerialization.jsonObject(with: Data(r.body)) as? [String: Any], "not a JSON object: \(r.text)")
}

/// Checks a problem+json answer: status, type URI code, and that the detail mentions `detail`.
func expectProblem(_ r: AdminClient.Response, _ status: Int, _ code: String, detail: String? = nil,
                   sourceLocation: SourceLocation = #_sourceLocation) throws {
    #expect(r.status == status, "\(r.text)", sourceLocation: sourceLocation)
    #expect(r.header("content-type") == "application/problem+json", sourceLocation: sourceLocation)
    let p = try json(r)
    #expect(p["type"] as? String == "https://meshgate.dev/problems/\(code)", "\(r.text)", sourceLocation: sourceLocation)
    #expect(p["status"] as? Int == status, sourceLocation: sourceLocation)
    #expect((p["title"] as? String)?.isEmpty == false, sourceLocation: sourceLocation)
    if let detail {
        #expect((p["detail"] as? String ?? "").contains(detail), "detail: \(p["detail"] ?? "none")", sourceLocation: sourceLocation)
    }
}

/// Decodes `data`/`data_base64` of a structured event back to bytes.
func dataBytes(_ e: [String: Any]) throws -> [UInt8] {
    if let b64 = e["data_base64"] as? String { return [UInt8](try #require(Data(base64Encoded: b64))) }
    guard let data = e["data"] else { return [] }
    if let s = data as? String, let ct = e["datacontenttype"] as? String, !ct.contains("json") { return Array(s.utf8) }
    return [UInt8](try JSONSerialization.data(withJSONObject: data, options: [.fragmentsAllowed, .sortedKeys]))
}

// MARK: Server-Sent Events

struct SSEEvent: Sendable {
    var id: String?
    /// The `event:` field; nil for the default `message`.
    var event: String?
    var data: String

    var json: [String: Any] { (try? JSONSerialization.jsonObject(with: Data(data.utf8))) as? [String: Any] ?? [:] }
}

/// A Server-Sent Events client over a raw NIO HTTP client pipeline, read event by event. A reader
/// task collects the body; `next` polls what it collected.
final class SSEClient: @unchecked Sendable {
    let status: Int
    private let channel: NIOAsyncChannel<HTTPClientResponsePart, HTTPClientRequestPart>
    private let lock = NSLock()
    private var received = ""
    private var ended = false
    private var pending = ""
    private(set) var comments: [String] = []

    init(port: Int, path: String, lastEventID: String? = nil, headers extra: [(String, String)] = []) async throws {
        channel = try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .connect(host: "127.0.0.1", port: port) { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHTTPClientHandlers()
                    return try NIOAsyncChannel<HTTPClientResponsePart, HTTPClientRequestPart>(wrappingChannelSynchronously: channel)
                }
            }
        var headers = HTTPHeaders()
        headers.add(name: "host", value: "127.0.0.1")
        headers.add(name: "accept", value: "text/event-stream")
        if let lastEventID { headers.add(name: "last-event-id", value: lastEventID) }
        for (name, value) in extra { headers.add(name: name, value: value) }
        try await channel.outbound.write(.head(HTTPRequestHead(version: .http1_1, method: .GET, uri: path, headers: headers)))
        try await channel.outbound.write(.end(nil))
        var iterator = channel.inbound.makeAsyncIterator()
        guard case .head(let head)? = try await iterator.next() else { throw AdminClient.Failure(description: "no response head") }
        status = Int(head.status.code)
        let it = UncheckedBox(iterator)
        Task { [self] in
            var iterator = it.value
            do {
                while let part = try await iterator.next() {
                    if case .body(let b) = part { lock.withLock { received += String(buffer: b) } }
                    if case .end = part { break }
                }
            } catch {}
            lock.withLock { ended = true }
        }
        if status == 200 {
            // The stream opens with a comment once the subscription exists.
            let deadline = ContinuousClock.now + .seconds(10)
            while !lock.withLock({ received.contains("\n\n") || ended }) && ContinuousClock.now < deadline {
                try await Task.sleep(for: .milliseconds(2))
            }
        }
    }

    /// The body received so far (for non-200 answers).
    var body: String { lock.withLock { received } }

    /// The next event, or nil when the stream ends or `timeout` passes first.
    func next(timeout: Duration = .seconds(10)) async throws -> SSEEvent? {
        let deadline = ContinuousClock.now + timeout
        while true {
            let (more, done) = lock.withLock { () -> (String, Bool) in
                defer { received = "" }
                return (received, ended)
            }
            pending += more
            while let range = pending.range(of: "\n\n") {
                let block = String(pending[..<range.lowerBound])
                pending.removeSubrange(..<range.upperBound)
                var event = SSEEvent(id: nil, event: nil, data: "")
                var dataLines: [String] = []
                for line in block.split(separator: "\n", omittingEmptySubsequences: false) {
                    if line.hasPrefix(":") { comments.append(String(line)); continue }
                    if line.hasPrefix("id: ") { event.id = String(line.dropFirst(4)) }
                    if line.hasPrefix("event: ") { event.event = String(line.dropFirst(7)) }
                    if line.hasPrefix("data: ") { dataLines.append(String(line.dropFirst(6))) }
                }
                if !dataLines.isEmpty {
                    event.data = dataLines.joined(separator: "\n")
                    return event
                }
            }
            if done || ContinuousClock.now >= deadline { return nil }
            try await Task.sleep(for: .milliseconds(2))
        }
    }

    func close() async {
        channel.outbound.finish()
        try? await channel.channel.close()
    }
}

struct UncheckedBox<T>: @unchecked Sendable {
    var value: T
    init(_ value: T) { self.value = value }
}

// MARK: Raw bytes

/// What `rawExchange` has read so far, for its timeout message.
private final class ReceivedText: Sendable {
    let text = Mutex("")
}

/// Sends raw bytes and collects what comes back until the server closes or `timeout` passes.

func rawExchange(port: Int, _ request: [UInt8], timeout: Duration = .seconds(5), until: @escaping @Sendable (String) -> Bool = { _ in false }) async throws -> String {
    let channel = try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
        .channelOption(.allowRemoteHalfClosure, value: true)
        .connect(host: "127.0.0.1", port: port) { channel in
            channel.eventLoop.makeCompletedFuture {
                try NIOAsyncChannel<ByteBuffer, ByteBuffer>(wrappingChannelSynchronously: channel)
            }
        }
    let collected = try await channel.executeThenClose { inbound, outbound in
        // A server may answer and close before reading the whole request (an early 413): the
        // write then fails, and what the server sent is still read below.
        try? await outbound.write(ByteBuffer(bytes: request))
        let received = ReceivedText()
        return try await withThrowingTaskGroup(of: String?.self) { group in
            group.addTask {
                var text = ""
                do {
                    for try await chunk in inbound {
                        text += String(buffer: chunk)
                        received.text.withLock { $0 = text }
                        if until(text) { break }
                    }
                } catch where !text.isEmpty {
                    // Reset after answering (unread request bytes): keep the answer.
                }
                return text
            }
            group.addTask { try await Task.sleep(for: timeout); return nil }
            let first = try await group.next()!
            group.cancelAll()
            // On a timeout, what had arrived by then (an answer without the close, say).
            return first ?? "<timeout> after: " + received.text.withLock { $0 }
        }
    }
    return collected
}
