import Foundation
import Glibc
import Logging
import MeshBroker
import MeshCore
import MeshLog
import MeshWire
import NIOCore
import Synchronization
import Testing
@testable import MeshTCP

/// A real server on 127.0.0.1: a log in a temporary directory, a broker and a TCP listener.
final class TestServer: Sendable {
    let directory: String
    let log: DurableLog
    let broker: Broker
    let server: TCPServer
    let port: Int

    init(directory: String? = nil, port: Int = 0, durability: Durability = .none,
         configure: (inout TCPServer.Configuration) -> Void = { _ in }) async throws {
        let directory = directory ?? FileManager.default.temporaryDirectory
            .appendingPathComponent("meshtcp-\(UUID().uuidString)").path
        self.directory = directory
        var options = LogOptions()
        options.defaultTopic.durability = durability
        log = try DurableLog(directory: directory, options: options)
        var brokerOptions = BrokerOptions()
        brokerOptions.node = "test-node"
        broker = Broker(log: log, options: brokerOptions)
        var configuration = TCPServer.Configuration()
        configuration.shutdownGracePeriod = .milliseconds(500)
        configure(&configuration)
        server = TCPServer(broker: broker, configuration: configuration)
        self.port = try await server.start(host: "127.0.0.1", port: port)
    }

    /// Stops the listener and closes the log; the directory stays (for restarts).
    func stop() async {
        await server.shutdown()
        log.close()
    }

    func remove() {
        try? FileManager.default.removeItem(atPath: directory)
    }

    func createTopic(_ name: String, partitions: Int) throws {
        _ = try log.createTopic(try Topic(name), config: TopicConfig(partitions: partitions, durability: .none))
    }
}

/// A value behind a lock that closures can share.
final class Locked<Value: Sendable>: Sendable {
    private let mutex: Mutex<Value>
    init(_ value: Value) { mutex = Mutex(value) }
    func withLock<T>(_ body: (inout Value) -> T) -> T { mutex.withLock { body(&$0) } }
}

func topic(_ name: String) -> Topic { try! Topic(name) }
func pattern(_ text: String) -> TopicPattern { try! TopicPattern(text) }

/// Polls `condition` until it holds or `seconds` pass.
func eventually(_ seconds: Double = 5, _ condition: () async throws -> Bool) async rethrows -> Bool {
    let deadline = Date().addingTimeInterval(seconds)
    while Date() < deadline {
        if try await condition() { return true }
        try? await Task.sleep(for: .milliseconds(10))
    }
    return try await condition()
}

/// A plain blocking socket, for sending exactly the bytes a test wants and reading raw frames.
final class RawSocket {
    let fd: Int32
    private var pending = ByteBuffer()

    init(port: Int) throws {
        fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = in_port_t(UInt16(port).bigEndian)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        let result = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard result == 0 else { throw POSIXError(POSIXErrorCode(rawValue: errno) ?? .EIO) }
        setTimeout(seconds: 5)
    }

    deinit { close(fd) }

    func setTimeout(seconds: Double) {
        var tv = timeval(tv_sec: Int(seconds), tv_usec: Int((seconds - Double(Int(seconds))) * 1_000_000))
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
    }

    /// A small receive buffer, so that a reader that never reads fills up quickly.
    func shrinkReceiveBuffer() {
        var size: Int32 = 4096
        setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &size, socklen_t(MemoryLayout<Int32>.size))
    }

    func send(_ bytes: [UInt8]) {
        _ = bytes.withUnsafeBytes { Glibc.send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
    }

    func send(_ frame: Frame) {
        var buffer = ByteBuffer()
        frame.encode(into: &buffer)
        send(Array(buffer.readableBytesView))
    }

    /// The next frame, or nil at end of stream or timeout.
    func readFrame() -> Frame? {
        while true {
            if let frame = try? Frame.decode(from: &pending) { return frame }
            var chunk = [UInt8](repeating: 0, count: 65_536)
            let n = chunk.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            guard n > 0 else { return nil }
            pending.writeBytes(chunk[..<n])
        }
    }

    /// Every frame until the server closes (or the timeout), and whether it closed.
    func readUntilClosed() -> (frames: [Frame], closed: Bool) {
        var frames: [Frame] = []
        while true {
            if let frame = try? Frame.decode(from: &pending) {
                frames.append(frame)
                continue
            }
            var chunk = [UInt8](repeating: 0, count: 65_536)
            let n = chunk.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            if n == 0 { return (frames, true) }
            if n < 0 { return (frames, false) }
            pending.writeBytes(chunk[..<n])
        }
    }

    /// Frames that arrive within `seconds`.
    /// Reads frames until at least `atLeast` have arrived (giving up after 20 s), then goes on
    /// for `seconds` more to catch any frame that should not come. The quiet period is the only
    /// timing here; a slow machine only makes the test wait longer.
    func readFor(seconds: Double, atLeast: Int = 0) -> [Frame] {
        var frames: [Frame] = []
        setTimeout(seconds: 20)
        while frames.count < atLeast, let frame = readFrame() { frames.append(frame) }
        setTimeout(seconds: seconds)
        defer { setTimeout(seconds: 5) }
        let deadline = Date().addingTimeInterval(seconds)
        while Date() < deadline, let frame = readFrame() { frames.append(frame) }
        return frames
    }

    func handshake() -> Welcome? {
        send(.hello(Hello(clientName: "raw")))
        guard case .welcome(let welcome)? = readFrame() else { return nil }
        return welcome
    }
}

extension TCPServer {
    /// Per connection: EVENT frames written so far and whether the channel is writable.
    func connectionStats() async -> [(eventsWritten: Int, writable: Bool)] {
        var stats: [(Int, Bool)] = []
        for entry in connections.all() {
            let handler = entry.handler
            if let s = try? await entry.channel.eventLoop.submit({ (handler.value.eventsWritten, entry.channel.isWritable) }).get() {
                stats.append(s)
            }
        }
        return stats
    }
}
