import Foundation
import MeshAuth
import MeshBroker
import MeshClient
import MeshCore
import MeshWire
import Synchronization
import Testing
@testable import MeshTCP

/// Tokens, ACLs and publish rates on the TCP protocol, through the Swift client (docs/security.md).
/// Nested in the serialized server suite: its restart test rebinds a port that a server started
/// here at the same time could take.
extension TCPServerTests {
    @Suite struct TCPAuthTests {
        static let writer = "tcp-writer-token-0123456789"
        static let reader = "tcp-reader-token-0123456789"
        static let site = "tcp-site-b-token-0123456789"

        static func grant(publish: [String] = [], denyPublish: [String] = [], subscribe: [String] = [],
                          rate: PublishRate? = nil) -> AuthConfiguration.Grant {
            .init(publish: TopicACL(allow: publish.map(pattern), deny: denyPublish.map(pattern)),
                  subscribe: TopicACL(allow: subscribe.map(pattern)), rate: rate)
        }

        static func configuration(readerSubscribe: [String] = ["orders/#"], withReader: Bool = true) -> AuthConfiguration {
            var tokens: [AuthConfiguration.StaticToken] = [
                .init(name: "writer", sha256: TokenHash.sha256(writer),
                      grant: grant(publish: ["orders/#"], denyPublish: ["orders/secret"], rate: PublishRate(eventsPerSecond: 1, burst: 20))),
                .init(name: "site-b", sha256: TokenHash.sha256(site), grant: grant(publish: ["from-b/#"])),
            ]
            if withReader { tokens.append(.init(name: "reader", sha256: TokenHash.sha256(reader), grant: grant(subscribe: readerSubscribe))) }
            return AuthConfiguration(enabled: true, tokens: tokens)
        }

        static func connect(_ server: TestServer, token: String?, bridge: Bool = false, name: String = "auth-test") async throws -> MeshClient {
            var c = MeshClient.Configuration(name: name, token: token)
            c.reconnect = false
            c.bridge = bridge
            return try await MeshClient.connect(port: server.port, configuration: c)
        }

        static func wireError(_ body: () async throws -> Void) async -> WireError? {
            do { try await body() } catch let e as WireError { return e } catch { return WireError(.internalError, "\(error)") }
            return nil
        }

        @Test func helloWithoutOrWithAWrongTokenIsRefused() async throws {
            let access = try AccessControl(Self.configuration())
            let server = try await TestServer { $0.access = access }
            defer { server.remove() }
            let none = await Self.wireError { _ = try await Self.connect(server, token: nil) }
            #expect(none?.code == .authenticationFailed)
            let wrong = await Self.wireError { _ = try await Self.connect(server, token: "not-a-token-we-know") }
            #expect(wrong?.code == .authenticationFailed)
            #expect(access.metrics.failures[.unknownToken] == 1)
            #expect(access.metrics.failures[.missing] == 1)
            await server.stop()
        }

        @Test func outsideTheACLIsAForbiddenErrorAndTheConnectionKeepsServing() async throws {
            let server = try await TestServer { $0.access = try! AccessControl(Self.configuration()) }
            defer { server.remove() }
            let client = try await Self.connect(server, token: Self.writer)
            let denied = await Self.wireError { _ = try await client.publish(Event(topic: topic("payments/1"), data: [1])) }
            #expect(denied?.code == .forbidden)
            #expect(denied?.message.contains("payments/1") == true)
            // A batch with one denied topic is refused whole.
            let batch = await Self.wireError {
                _ = try await client.publish(batch: [Event(topic: topic("orders/a"), data: [1]), Event(topic: topic("orders/secret"), data: [2])])
            }
            #expect(batch?.code == .forbidden)
            #expect(server.log.topics.contains { $0.topic.name == "orders/a" } == false)
            // Still serving.
            let receipt = try await client.publish(Event(topic: topic("orders/a"), data: [3]))
            #expect(receipt.offset == 0)
            let sub = await Self.wireError { _ = try await client.subscribe(pattern("orders/#")) }
            #expect(sub?.code == .forbidden)
            #expect(client.isConnected)

            let reader = try await Self.connect(server, token: Self.reader, name: "reader")
            let stream = try await reader.subscribe(pattern("orders/+"), from: .earliest)
            var it = stream.makeAsyncIterator()
            #expect(try await it.next()?.event.data == [3])
            await reader.close()
            await client.close()
            await server.stop()
        }

        @Test func overThePublishRateIsOverloadedWithARetryHint() async throws {
            let server = try await TestServer { $0.access = try! AccessControl(Self.configuration()) }
            defer { server.remove() }
            let client = try await Self.connect(server, token: Self.writer)
            _ = try await client.publish(batch: (0..<20).map { Event(topic: topic("orders/r"), data: [UInt8($0)]) })
            let limited = await Self.wireError { _ = try await client.publish(Event(topic: topic("orders/r"), data: [0])) }
            #expect(limited?.code == .overloaded)
            #expect((limited?.retryAfterMilliseconds ?? 0) > 0)
            #expect(limited?.message.contains("publish rate") == true)
            await client.close()
            await server.stop()
        }

        @Test func reloadEndsASubscriptionThatLostItsRightAndClosesARemovedToken() async throws {
            let access = try AccessControl(Self.configuration())
            let server = try await TestServer { $0.access = access }
            defer { server.remove() }
            let reader = try await Self.connect(server, token: Self.reader)
            let wide = try await reader.subscribe(pattern("orders/#"))
            let narrow = try await reader.subscribe(pattern("orders/eu/#"))
            try access.reload(Self.configuration(readerSubscribe: ["orders/eu/#"]))
            let ended = await Self.wireError { for try await _ in wide {} }
            #expect(ended?.code == .forbidden)
            #expect(reader.isConnected)
            let writer = try await Self.connect(server, token: Self.writer, name: "writer")
            _ = try await writer.publish(Event(topic: topic("orders/eu/1"), data: [9]))
            var it = narrow.makeAsyncIterator()
            #expect(try await it.next()?.event.data == [9])
            // The token is removed: its connection is closed.
            try access.reload(Self.configuration(withReader: false))
            #expect(await eventually(10) { !reader.isConnected })
            await writer.close()
            await reader.close()
            await server.stop()
        }

        /// A bridge from another site authenticates with its HELLO token; what it forwards is checked
        /// against that identity's publish ACL.
        @Test func bridgeIngressNeedsAValidTokenAndItsPublishACL() async throws {
            let ingress = RecordingIngress()
            let server = try await TestServer {
                $0.access = try! AccessControl(Self.configuration())
                $0.bridgeIngress = ingress
            }
            defer { server.remove() }
            let refused = await Self.wireError { _ = try await Self.connect(server, token: "wrong-site-token-0000", bridge: true, name: "site-b") }
            #expect(refused?.code == .authenticationFailed)
            let bridge = try await Self.connect(server, token: Self.site, bridge: true, name: "site-b")
            _ = try await bridge.publish(Event(topic: topic("from-b/x"), data: [1]))
            let denied = await Self.wireError { _ = try await bridge.publish(Event(topic: topic("orders/x"), data: [2])) }
            #expect(denied?.code == .forbidden)
            #expect(ingress.topics == ["from-b/x"])
            await bridge.close()
            await server.stop()
        }
    }
}

final class RecordingIngress: BridgeIngress {
    private let seen = Mutex<[String]>([])
    var topics: [String] { seen.withLock { $0 } }

    func publish(_ events: [Event], from peer: String,
                 completion: @escaping @Sendable (Result<[MeshWire.PublishReceipt], WireError>) -> Void) {
        seen.withLock { $0 += events.map(\.topic.name) }
        completion(.success(events.indices.map { MeshWire.PublishReceipt(partition: 0, offset: UInt64($0)) }))
    }

    func publish(encoded events: [EventEnvelope], from peer: String,
                 completion: @escaping @Sendable (Result<[MeshWire.PublishReceipt], WireError>) -> Void) {
        seen.withLock { $0 += events.map(\.topic.name) }
        completion(.success(events.indices.map { MeshWire.PublishReceipt(partition: 0, offset: UInt64($0)) }))
    }
}
