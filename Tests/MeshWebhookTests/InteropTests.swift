import MeshTestSupport
import Foundation
import MeshCore
import MeshLog
import MeshRouting
import Testing
@testable import MeshWebhook

/// Against Python's http.server and the reference Standard Webhooks verifier (PyPI
/// `standardwebhooks`, installed by scripts/setup.sh).
@Suite(.serialized) struct InteropTests {
    static let oldSecret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
    static let newSecret = "whsec_" + Data("a brand new secret, 32 bytes ok".utf8).base64EncodedString()

    /// Python's http.server leaves Nagle on and writes an answer's headers and body separately, so
    /// it holds the body until the headers are acknowledged. The curl thread acknowledges what it
    /// reads at once (TCP_QUICKACK on every read event); before, each request waited for the
    /// kernel's delayed-ACK timer: 40 deliveries one at a time took 1.76 s (about 43 ms each, which
    /// the `curl` command shows against the same kind of server too); now about 10 ms. The bound is
    /// generous against a loaded machine and still under what 40 stalls cost.
    @Test func answersInTwoWritesFromANagleReceiverDoNotWaitForTheDelayedACK() async throws {
        let dir = ScratchDirectory()
        let receiver = try PythonReceiver(["--status", "200", "--body", #"{"ok":true}"#], directory: dir.path)
        defer { receiver.stop() }
        let loop = CurlLoop(name: "wh-nagle-test")
        let hook = try endpoint(#"{type: webhook, url: "\#(receiver.url)/nagle", concurrency: 1}"#, loop: loop)
        try await hook.deliver(event("warm-up"))  // the connection, and Python's first-request costs
        let started = ContinuousClock.now
        for i in 0..<40 { try await hook.deliver(event("nagle\(i)")) }
        let took = ContinuousClock.now - started
        #expect(took < .milliseconds(1200), "40 deliveries took \(took)")
        #expect(receiver.records.filter { $0.path == "/nagle" }.count == 41)
        await loop.shutdown()
    }

    @Test func signaturesVerifyWithTheReferenceVerifierBeforeDuringAndAfterRotation() async throws {
        let dir = ScratchDirectory()
        let receiver = try PythonReceiver(["--secret", "old=\(Self.oldSecret)", "--secret", "new=\(Self.newSecret)"], directory: dir.path)
        defer { receiver.stop() }
        let log = try openLog(dir.path)
        defer { log.close() }
        let webhooks = WebhookConnectors(logger: quietLogger)
        let engine = RouteEngine(log: log, provider: webhooks, logger: quietLogger)
        // Secrets come from the environment, as route files should write them.
        let env = ["OLD": Self.oldSecret, "NEW": Self.newSecret]
        await engine.apply(try table("""
        version: 1
        connectors:
          before:     {type: webhook, url: "\(receiver.url)/before", secret: "${OLD}"}
          rotating:   {type: webhook, url: "\(receiver.url)/rotating", secret: "${NEW} ${OLD}"}
          after:      {type: webhook, url: "\(receiver.url)/after", secret: "${NEW}"}
          structured: {type: webhook, url: "\(receiver.url)/structured", secret: "${NEW} ${OLD}", mode: structured}
          batch:      {type: webhook, url: "\(receiver.url)/batch", secret: "${NEW}", mode: batch, batch_size: 7}
        routes:
          - name: signed
            from: "orders/#"
            to: [{connector: before}, {connector: rotating}, {connector: after}, {connector: structured}, {connector: batch}]
        """, environment: env))
        let t = try log.createTopic(try Topic("orders/eu"), config: TopicConfig(partitions: 1, durability: .none))
        var ids: [String] = []
        for i in 0..<20 {
            // Bodies that would break a careless signer: JSON, text with line breaks, empty. (The
            // reference verifier decodes bodies as UTF-8, so it cannot check arbitrary bytes.)
            let data: [UInt8] = i % 3 == 0 ? Array(#"{"n": \#(i), "s": "é\n"}"#.utf8) : (i % 3 == 1 ? Array("plain\r\ntext \(i) ✓".utf8) : [])
            let type = i % 3 == 0 ? "application/json" : (i % 3 == 1 ? "text/plain; charset=utf-8" : "application/octet-stream")
            let e = Event(topic: t.topic, id: "sig-\(i)", source: "test", type: "order.created", datacontenttype: type, data: data)
            _ = try await t.append(EventCodec.encode(e), key: nil)
            ids.append(e.id)
        }
        func received(_ path: String) -> Set<String> { Set(receiver.records.filter { $0.path == path }.flatMap(\.ids)) }
        let all = await eventually(20) { ["/before", "/rotating", "/after", "/structured", "/batch"].allSatisfy { received($0) == Set(ids) } }
        #expect(all, "\(receiver.records.count) requests recorded; missing per path: \(["/before", "/rotating", "/after", "/structured", "/batch"].map { "\($0)=\(Set(ids).subtracting(received($0)).sorted())" })")
        let records = receiver.records
        for r in records {
            switch r.path {
            case "/before": #expect(r.verified == ["old": true, "new": false], "\(r)")
            case "/after", "/batch": #expect(r.verified == ["old": false, "new": true], "\(r)")
            default: #expect(r.verified == ["old": true, "new": true], "\(r)")  // either secret verifies during rotation
            }
        }
        #expect(records.filter { $0.path == "/before" }.allSatisfy { $0.webhookID == $0.ids.first && $0.mode == "binary" })
        #expect(records.filter { $0.path == "/structured" }.allSatisfy { $0.mode == "structured" })
        #expect(records.contains { $0.path == "/batch" && $0.mode == "batch" && $0.ids.count > 1 })
        await engine.stop()
        await webhooks.stop()
    }

    @Test func tlsWithACAFileAndAClientCertificate() async throws {
        let dir = ScratchDirectory()
        let d = dir.path
        func openssl(_ args: String) throws {
            #expect(try run(["openssl"] + args.split(separator: " ").map(String.init), in: d) == 0, "openssl \(args)")
        }
        let ec = "-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes"
        try openssl("req -x509 \(ec) -keyout ca.key -out ca.pem -days 2 -subj /CN=meshgate-test-ca")
        try "subjectAltName=IP:127.0.0.1\n".write(toFile: d + "/server.ext", atomically: true, encoding: .utf8)
        try openssl("req \(ec) -keyout server.key -out server.csr -subj /CN=127.0.0.1")
        try openssl("x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out server.pem -days 2 -extfile server.ext")
        try openssl("req \(ec) -keyout client.key -out client.csr -subj /CN=meshgate")
        try openssl("x509 -req -in client.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out client.pem -days 2")
        let receiver = try PythonReceiver(["--tls-cert", d + "/server.pem", "--tls-key", d + "/server.key", "--client-ca", d + "/ca.pem"], directory: d)
        defer { receiver.stop() }
        #expect(receiver.url.hasPrefix("https://127.0.0.1:"))
        let loop = CurlLoop(name: "webhook-tls-test")
        let good = try endpoint(#"{type: webhook, url: "\#(receiver.url)/tls", ca_file: "\#(d)/ca.pem", cert_file: "\#(d)/client.pem", key_file: "\#(d)/client.key"}"#, loop: loop)
        try await good.deliver(event("tls-1"))
        #expect(receiver.records.map(\.ids) == [["tls-1"]])
        // Without trusting the CA: the server's certificate does not verify.
        let untrusted = try endpoint(#"{type: webhook, url: "\#(receiver.url)/tls", cert_file: "\#(d)/client.pem", key_file: "\#(d)/client.key"}"#, loop: loop)
        do {
            try await untrusted.deliver(event("tls-2"))
            Issue.record("delivered to a server whose certificate does not verify")
        } catch {
            #expect(error.reason.contains("certificate") && error.retryable == nil, "\(error)")
        }
        // Without a client certificate: the server refuses the handshake.
        let anonymous = try endpoint(#"{type: webhook, url: "\#(receiver.url)/tls", ca_file: "\#(d)/ca.pem", timeout: 3s}"#, loop: loop)
        await #expect(throws: DeliveryError.self) { try await anonymous.deliver(event("tls-3")) }
        #expect(receiver.records.count == 1)
        await loop.shutdown()
    }
}
