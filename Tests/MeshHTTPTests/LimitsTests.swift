import Foundation
import MeshClient
import MeshCore
import MeshGateway
import MeshTestSupport
import NIOCore
import NIOPosix
import Testing

/// Connection-level limits of the HTTP listener (and the TCP listener's connection cap): each is
/// enforced with its error, counted, and the listener keeps serving other clients afterwards.
@Suite struct LimitsTests {
    /// A connection held open without sending anything, optionally from another loopback address.
    static func hold(port: Int, from source: String? = nil) async throws -> any Channel {
        var bootstrap = ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
        if let source { bootstrap = bootstrap.bind(to: try SocketAddress(ipAddress: source, port: 0)) }
        return try await bootstrap.connect(host: "127.0.0.1", port: port).get()
    }

    static let healthz = Array("GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n".utf8)

    static func value(_ metrics: String, _ series: String) -> Double? {
        metrics.split(separator: "\n").first { $0.hasPrefix(series + " ") }.flatMap { Double($0.split(separator: " ").last!) }
    }

    @Test func connectionCapsAnswer503AndServeOnAfterwards() async throws {
        let g = try await TestGateway { c in
            c.maxConnections = 3
            c.maxConnectionsPerPeer = 2
        }
        let limiter = g.gateway.connectionLimiters[0]
        // Two from 127.0.0.1: the per-address limit is reached.
        var held = [try await Self.hold(port: g.port), try await Self.hold(port: g.port)]
        #expect(await eventually { limiter.open == 2 })
        let perPeer = try await rawExchange(port: g.port, Self.healthz)
        #expect(perPeer.hasPrefix("HTTP/1.1 503"), "\(perPeer)")
        #expect(perPeer.contains("connections.limit") && perPeer.contains("max_connections_per_peer 2"), "\(perPeer)")
        #expect(perPeer.lowercased().contains("retry-after: 1"), "\(perPeer)")
        // Another address still gets in, up to the listener's total.
        held.append(try await Self.hold(port: g.port, from: "127.0.0.2"))
        #expect(await eventually { limiter.open == 3 })
        let total = try await rawExchange(port: g.port, Self.healthz)
        #expect(total.hasPrefix("HTTP/1.1 503") && total.contains("max_connections 3"), "\(total)")
        // Closing one lets the next request in.
        try await held.removeFirst().close()
        #expect(await eventually { limiter.open == 2 })
        let ok = try await rawExchange(port: g.port, Array("GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".utf8))
        #expect(ok.hasPrefix("HTTP/1.1 200"), "\(ok)")
        for c in held { try await c.close() }
        #expect(await eventually { limiter.open == 0 })
        let metrics = try await g.get("/metrics").text
        #expect(Self.value(metrics, #"meshgate_connections_refused_total{listener="http",reason="max_connections_per_peer"}"#) == 1, "\(metrics)")
        #expect(Self.value(metrics, #"meshgate_connections_refused_total{listener="http",reason="max_connections"}"#) == 1)
        try await g.stop()
    }

    @Test func tcpConnectionCapIsAnErrorFrameNamingTheLimit() async throws {
        let g = try await TestGateway { c in c.maxConnectionsPerPeer = 1 }
        let tcpPort = try await g.tcpPort()
        var configuration = MeshClient.Configuration(name: "limits")
        configuration.reconnect = false
        let first = try await MeshClient.connect(host: "127.0.0.1", port: tcpPort, configuration: configuration)
        do {
            let second = try await MeshClient.connect(host: "127.0.0.1", port: tcpPort, configuration: configuration)
            Issue.record("a second connection from the same address was accepted")
            await second.close()
        } catch {
            #expect("\(error)".contains("overloaded") && "\(error)".contains("max_connections_per_peer 1"), "\(error)")
        }
        // The first connection is untouched.
        let receipt = try await first.publish(Event(topic: try Topic("orders/limits"), data: [1]))
        #expect(receipt.offset == 0)
        await first.close()
        #expect(await eventually { g.gateway.connectionLimiters[1].open == 0 })
        let again = try await MeshClient.connect(host: "127.0.0.1", port: tcpPort, configuration: configuration)
        #expect(again.welcome != nil)
        await again.close()
        let metrics = try await g.get("/metrics").text
        #expect(Self.value(metrics, #"meshgate_connections_refused_total{listener="tcp",reason="max_connections_per_peer"}"#) == 1, "\(metrics)")
        try await g.stop()
    }

    @Test func slowRequestsGet408AndIdleConnectionsAreClosed() async throws {
        // The idle timeout also runs from the connection's accept to its first byte: long enough
        // that a loaded machine's test client always sends its bytes in time.
        let g = try await TestGateway { c in
            c.requestTimeoutMilliseconds = 1000
            c.idleTimeoutMilliseconds = 3000
        }
        // Half a request head, then nothing: 408 problem+json, then the server closes.
        let halfHead = try await rawExchange(port: g.port, Array("POST /v1/publish/orders/slow HTTP/1.1\r\nHost: x\r\nContent-Ty".utf8),
                                             timeout: .seconds(20))
        #expect(halfHead.hasPrefix("HTTP/1.1 408"), "\(halfHead)")
        #expect(halfHead.contains("application/problem+json") && halfHead.contains("request.timeout"), "\(halfHead)")
        // A whole head whose body never comes in full: the same.
        let halfBody = try await rawExchange(port: g.port, Array("POST /v1/publish/orders/slow HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\nabc".utf8),
                                             timeout: .seconds(20))
        #expect(halfBody.hasPrefix("HTTP/1.1 408") && halfBody.contains("request.timeout"), "\(halfBody)")
        // A keep-alive connection is answered, then closed once idle (no "<timeout>": the server closed).
        let idle = try await rawExchange(port: g.port, Self.healthz, timeout: .seconds(20))
        #expect(idle.hasPrefix("HTTP/1.1 200") && !idle.contains("<timeout>"), "\(idle)")
        // A connection that never sends anything is closed too.
        let silent = try await rawExchange(port: g.port, [], timeout: .seconds(20))
        #expect(silent.isEmpty, "\(silent)")
        // Nothing slow was stored, and the listener serves normal clients.
        let published = try await g.post("/v1/publish/orders/slow", "fine", headers: [("content-type", "text/plain")])
        #expect(published.status == 200, "\(published.text)")
        #expect(try await g.fetch("orders/slow").count == 1)
        let metrics = try await g.get("/metrics").text
        #expect(Self.value(metrics, #"meshgate_connections_closed_total{listener="http",reason="request_timeout"}"#) == 2, "\(metrics)")
        #expect((Self.value(metrics, #"meshgate_connections_closed_total{listener="http",reason="idle_timeout"}"#) ?? 0) >= 2)
        try await g.stop()
    }

    @Test func oversizedHeadersAre431AndCounted() async throws {
        let g = try await TestGateway { c in c.maxHeaderBytes = 1024 }
        let big = "GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: \(String(repeating: "a", count: 2000))\r\n\r\n"
        let answer = try await rawExchange(port: g.port, Array(big.utf8))
        #expect(answer.hasPrefix("HTTP/1.1 431") && answer.contains("headers.too_large"), "\(answer)")
        let ok = try await g.get("/healthz")
        #expect(ok.status == 200)
        let metrics = try await g.get("/metrics").text
        #expect(Self.value(metrics, #"meshgate_connections_closed_total{listener="http",reason="header_bytes"}"#) == 1, "\(metrics)")
        try await g.stop()
    }

    @Test func settingsParseAndRefuseNonsense() throws {
        let c = try GatewayConfig.load(flags: ["--max-connections": "50", "--max-connections-per-peer": "5", "--idle-timeout": "2m",
                                              "--request-timeout": "1500ms", "--max-frame-bytes": "2000000"], environment: [:])
        #expect(c.maxConnections == 50 && c.maxConnectionsPerPeer == 5)
        #expect(c.idleTimeoutMilliseconds == 120_000 && c.requestTimeoutMilliseconds == 1500 && c.effectiveMaxFrameBytes == 2_000_000)
        #expect(GatewayConfig().effectiveMaxFrameBytes == (1 << 20) + (64 << 10))
        #expect(throws: ConfigError.self) { try GatewayConfig.load(flags: ["--idle-timeout": "soon"], environment: [:]) }
        #expect(throws: ConfigError.self) { try GatewayConfig.load(flags: ["--max-connections": "0"], environment: [:]) }
        #expect(throws: ConfigError.self) { try GatewayConfig.load(flags: ["--max-frame-bytes": "4096"], environment: [:]) }
        let env = try GatewayConfig.load(environment: ["MESHGATE_MAX_CONNECTIONS_PER_PEER": "7", "MESHGATE_TLS_LISTENERS": "tcp"])
        #expect(env.maxConnectionsPerPeer == 7 && env.tlsListeners == ["tcp"])
    }
}
