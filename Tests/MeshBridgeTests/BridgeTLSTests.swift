import Foundation
import MeshClient
import MeshCore
import MeshNet
import MeshTestSupport
import Testing

/// A site bridge over `tls://`: two `meshgate serve` processes, the receiving one with mutual TLS
/// on its TCP listener, the sending one pinning the receiver's CA and presenting a client
/// certificate. A second connector pinning another CA delivers nothing.
@Suite(.serialized) struct BridgeTLSTests {
    @Test func twoSitesOverMutualTLSWithCAPinning() async throws {
        let root = try temporaryRoot("tls")
        defer { try? FileManager.default.removeItem(atPath: root) }
        let certs = try await TestCertificates.make(in: root + "/certs")
        let a = try Site("site-a", root: root)
        let b = try Site("site-b", root: root)
        b.extraArguments = ["--tls-cert", certs.serverCertificate, "--tls-key", certs.serverKey, "--tls-client-ca", certs.ca,
                            "--tls-listeners", "tcp"]
        b.clientTLS = ClientTLS(caFile: certs.ca, certificateChain: certs.clientCertificate, privateKey: certs.clientKey)
        let url = "tls://127.0.0.1:\(b.tcpPort)"
        try """
            version: 1
            connectors:
              site-b: {type: meshgate, url: "\(url)", ca_file: "\(certs.ca)", cert_file: "\(certs.clientCertificate)", key_file: "\(certs.clientKey)"}
              site-b-pinned-elsewhere: {type: meshgate, url: "\(url)", ca_file: "\(certs.otherCA)", cert_file: "\(certs.clientCertificate)", key_file: "\(certs.clientKey)"}
            routes:
              - name: bridge
                from: "orders/#"
                to:
                  - connector: site-b
                    topic: "{topic}"
                    retry: {backoff: 50ms, max_backoff: 500ms}
                    start: earliest
                  - connector: site-b-pinned-elsewhere
                    topic: "wrong/{topic}"
                    retry: {backoff: 50ms, max_backoff: 500ms}
                    start: earliest
            """.write(toFile: a.dir + "/routes/bridge.yaml", atomically: true, encoding: .utf8)
        try await b.start()
        try await a.start()
        do {
            try await a.publish(count: 300)
            let received = try await b.collect("orders/#", expected: 300)
            let check = verifyExactlyOnce(received, count: 300)
            #expect(received.count == 300 && check.missing == 0 && check.duplicates == 0 && check.outOfOrder == 0, "\(check)")
            #expect(received.allSatisfy { $0.hops == ["site-a", "site-b"] }, "\(received.first?.hops ?? [])")
            let wrong = try await b.collect("wrong/#", expected: 0, timeout: .seconds(3), quiet: .seconds(1))
            #expect(wrong.isEmpty, "\(wrong.count) events crossed a connector pinned to another CA")
            // The pinned-elsewhere connector reports why it cannot connect.
            let output = a.process?.text ?? ""
            let httpPort = try #require(output.firstMatch(of: /listening http=127\.0\.0\.1:(\d+)/).map { String($0.1) })
            let (status, connectors) = try await ChildProcess.run("/usr/bin/curl", ["-sS", "http://127.0.0.1:\(httpPort)/v1/connectors"])
            #expect(status == 0 && connectors.lowercased().contains("certificate") && connectors.contains(#""tls":true"#), "\(connectors)")
            // A plain-TCP client is refused by the TLS listener: no WELCOME.
            var plain = MeshClient.Configuration(name: "plain")
            plain.reconnect = false
            await #expect(throws: (any Error).self) { _ = try await MeshClient.connect(host: "127.0.0.1", port: b.tcpPort, configuration: plain) }
        } catch {
            await a.stop()
            await b.stop()
            throw error
        }
        await a.stop()
        await b.stop()
    }
}
