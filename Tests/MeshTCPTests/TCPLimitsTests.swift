import Foundation
import MeshClient
import MeshCore
import MeshNet
import MeshTestSupport
import MeshWire
import NIOCore
import Testing
@testable import MeshTCP

/// The TCP listener's frame limit and connection cap: each refused with an ERROR frame, counted,
/// and the listener keeps serving other clients.
@Suite struct TCPLimitsTests {
    @Test func oversizeFrameGetsAnErrorFrameAndOthersServeOn() async throws {
        let server = try await TestServer { c in c.connection.maxFrameLength = 4096 }
        defer { server.remove() }
        let bystander = try await MeshClient.connect(host: "127.0.0.1", port: server.port, name: "bystander")
        let (frames, closed) = try await onThread { () throws -> ([Frame], Bool) in
            let raw = try RawSocket(port: server.port)
            guard raw.handshake() != nil else { return ([], false) }
            // A length prefix of 8 KiB against a 4 KiB limit: refused from the prefix alone.
            raw.send([0, 0, 0x20, 0, 0x10, 0, 0, 0, 0, 1])
            return raw.readUntilClosed()
        }
        #expect(closed, "the server closes after a fatal error")
        guard case .error(let error)? = frames.last else {
            Issue.record("expected an ERROR frame, got \(frames)")
            return
        }
        #expect(error.code == .frameTooLarge && error.isFatal && error.message.contains("4096"), "\(error)")
        #expect(server.server.configuration.network.limiter.stats.value(.frameBytes) == 1)
        let receipt = try await bystander.publish(Event(topic: topic("orders/after"), data: [1, 2, 3]))
        #expect(receipt.offset == 0)
        await bystander.close()
        await server.stop()
    }

    @Test func connectionCapRefusesWithOverloadedAfterHello() async throws {
        let server = try await TestServer { c in
            c.network.limiter = ConnectionLimiter(listener: "tcp", limits: ConnectionLimits(maxConnections: 1, maxConnectionsPerPeer: 1))
        }
        defer { server.remove() }
        let first = try await MeshClient.connect(host: "127.0.0.1", port: server.port, name: "first")
        let (frames, closed) = try await onThread { () throws -> ([Frame], Bool) in
            let raw = try RawSocket(port: server.port)
            raw.send(.hello(Hello(minVersion: 1, maxVersion: 1, clientName: "second")))
            return raw.readUntilClosed()
        }
        #expect(closed)
        guard case .error(let error)? = frames.first, frames.count == 1 else {
            Issue.record("expected one ERROR frame, got \(frames)")
            return
        }
        #expect(error.code == .overloaded && error.isFatal && error.retryAfterMilliseconds == 1000, "\(error)")
        #expect(error.message.contains("max_connections 1"), "\(error.message)")
        #expect(server.server.configuration.network.limiter.stats.value(.maxConnections) == 1)
        let receipt = try await first.publish(Event(topic: topic("orders/cap"), data: [1]))
        #expect(receipt.offset == 0)
        await first.close()
        await server.stop()
    }
}
