#if canImport(Glibc)
import Glibc
#endif
import Foundation
import MeshClient
import MeshCore
import MeshGateway
import MeshNet
import MeshTestSupport
import Testing

/// TLS and mutual TLS on both listeners of an in-process gateway, with certificates made by
/// `openssl` and clients that are curl (HTTP) and MeshClient (TCP).
@Suite struct TLSTests {
    static func curl(_ args: [String]) async throws -> (status: Int32, output: String) {
        try await ChildProcess.run("/usr/bin/curl", ["-sS", "--max-time", "10"] + args)
    }

    @Test func httpOverTLSPublishAndReadBack() async throws {
        let dir = ScratchDirectory()
        let certs = try await TestCertificates.make(in: dir.path + "/certs")
        let g = try await TestGateway { c in
            c.tlsCertificate = certs.serverCertificate
            c.tlsKey = certs.serverKey
        }
        let base = "https://127.0.0.1:\(g.port)"
        let published = try await Self.curl(["--cacert", certs.ca, "-H", "content-type: text/plain", "--data-binary", "over tls",
                                             base + "/v1/publish/orders/tls"])
        #expect(published.status == 0, "\(published.output)")
        #expect(published.output.contains(#""offset":0"#), "\(published.output)")
        let fetched = try await Self.curl(["--cacert", certs.ca, base + "/v1/fetch/orders/tls?offset=0"])
        #expect(fetched.status == 0 && fetched.output.contains("over tls"), "\(fetched.output)")
        // The certificate names 127.0.0.1 and localhost: curl checks the name as well as the CA.
        let byName = try await Self.curl(["--cacert", certs.ca, "https://localhost:\(g.port)/healthz"])
        #expect(byName.status == 0 && byName.output.contains("ok"), "\(byName.output)")
        // Not trusting the CA: curl refuses the server's certificate.
        let untrusted = try await Self.curl(["--cacert", certs.otherCA, base + "/healthz"])
        #expect(untrusted.status == 60, "\(untrusted.output)")
        // Plain HTTP to the TLS listener is a failed handshake, not an answer; the listener serves on.
        let plain = try await Self.curl(["http://127.0.0.1:\(g.port)/healthz"])
        #expect(plain.status != 0 && !plain.output.contains("ok"), "\(plain.output)")
        // TLS 1.2 is accepted by default.
        let v12 = try await Self.curl(["--cacert", certs.ca, "--tls-max", "1.2", base + "/healthz"])
        #expect(v12.status == 0, "\(v12.output)")
        let after = try await Self.curl(["--cacert", certs.ca, base + "/healthz"])
        #expect(after.status == 0 && after.output.contains("ok"), "\(after.output)")
        try await g.stop()
    }

    @Test func mutualTLSOnHTTPAcceptsOnlyTheRightCA() async throws {
        let dir = ScratchDirectory()
        let certs = try await TestCertificates.make(in: dir.path + "/certs")
        let g = try await TestGateway { c in
            c.tlsCertificate = certs.serverCertificate
            c.tlsKey = certs.serverKey
            c.tlsClientCA = certs.ca
            c.tlsMinimumVersion = .tls13
        }
        let url = "https://127.0.0.1:\(g.port)"
        let right = try await Self.curl(["--cacert", certs.ca, "--cert", certs.clientCertificate, "--key", certs.clientKey,
                                         "-H", "content-type: text/plain", "--data-binary", "mtls", url + "/v1/publish/orders/mtls"])
        #expect(right.status == 0 && right.output.contains(#""offset":0"#), "\(right.output)")
        let wrongCA = try await Self.curl(["--cacert", certs.ca, "--cert", certs.otherClientCertificate, "--key", certs.otherClientKey,
                                           "-H", "content-type: text/plain", "--data-binary", "wrong", url + "/v1/publish/orders/mtls"])
        #expect(wrongCA.status != 0 && !wrongCA.output.contains("offset"), "\(wrongCA.output)")
        let none = try await Self.curl(["--cacert", certs.ca, "-H", "content-type: text/plain", "--data-binary", "none",
                                        url + "/v1/publish/orders/mtls"])
        #expect(none.status != 0 && !none.output.contains("offset"), "\(none.output)")
        // TLS 1.2 is below this listener's minimum.
        let old = try await Self.curl(["--cacert", certs.ca, "--cert", certs.clientCertificate, "--key", certs.clientKey,
                                       "--tls-max", "1.2", url + "/healthz"])
        #expect(old.status != 0, "\(old.output)")
        // Only the right client's event was stored; refusals are counted; the listener serves on.
        let fetched = try await Self.curl(["--cacert", certs.ca, "--cert", certs.clientCertificate, "--key", certs.clientKey,
                                           url + "/v1/fetch/orders/mtls?offset=0"])
        #expect(fetched.output.contains("mtls") && !fetched.output.contains("wrong") && !fetched.output.contains("none"), "\(fetched.output)")
        let metrics = try await Self.curl(["--cacert", certs.ca, "--cert", certs.clientCertificate, "--key", certs.clientKey, url + "/metrics"])
        let refused = metrics.output.split(separator: "\n").first { $0.hasPrefix(#"meshgate_connections_refused_total{listener="http",reason="tls_handshake"}"#) }
        #expect(refused.flatMap { Double($0.split(separator: " ").last!) }.map { $0 >= 3 } == true, "\(refused ?? "no series")")
        try await g.stop()
    }

    @Test func tcpOverMutualTLSWithMeshClient() async throws {
        let dir = ScratchDirectory()
        let certs = try await TestCertificates.make(in: dir.path + "/certs")
        let g = try await TestGateway { c in
            c.tlsCertificate = certs.serverCertificate
            c.tlsKey = certs.serverKey
            c.tlsClientCA = certs.ca
        }
        let tcpPort = try await g.tcpPort()
        func connect(_ tls: ClientTLS?, host: String = "127.0.0.1") async throws -> MeshClient {
            var configuration = MeshClient.Configuration(name: "tls-test")
            configuration.tls = tls
            configuration.reconnect = false
            return try await MeshClient.connect(host: host, port: tcpPort, configuration: configuration)
        }
        let good = ClientTLS(caFile: certs.ca, certificateChain: certs.clientCertificate, privateKey: certs.clientKey)
        let client = try await connect(good)
        let receipt = try await client.publish(Event(topic: try Topic("orders/tcp"), data: Array("tcp over tls".utf8)))
        #expect(receipt.offset == 0)
        let subscription = try await client.subscribe(try TopicPattern("orders/#"), from: .earliest)
        var iterator = subscription.makeAsyncIterator()
        let delivery = try await iterator.next()
        #expect(delivery?.event.data == Array("tcp over tls".utf8))
        await client.close()
        // By name: the certificate carries DNS:localhost.
        let byName = try await connect(good, host: "localhost")
        #expect(byName.welcome != nil)
        await byName.close()

        // No client certificate, a client certificate from another CA, a server certificate that
        // the pinned CA did not issue: each is refused.
        let refusals: [(String, ClientTLS)] = [
            ("no client certificate", ClientTLS(caFile: certs.ca)),
            ("wrong client CA", ClientTLS(caFile: certs.ca, certificateChain: certs.otherClientCertificate, privateKey: certs.otherClientKey)),
            ("pinned other CA", ClientTLS(caFile: certs.otherCA, certificateChain: certs.clientCertificate, privateKey: certs.clientKey)),
        ]
        for (label, tls) in refusals {
            do {
                let c = try await connect(tls)
                // TLS 1.3 sends the server's verdict on the client certificate after the client
                // finished: the connection then ends at the first request.
                _ = try await c.publish(Event(topic: try Topic("orders/tcp"), data: Array(label.utf8)))
                Issue.record("\(label): accepted")
                await c.close()
            } catch {
                #expect("\(error)".lowercased().contains("tls") || "\(error)".contains("certificate") || "\(error)".contains("closed"),
                        "\(label): \(error)")
            }
        }
        // Plain TCP to the TLS listener gets no WELCOME.
        await #expect(throws: (any Error).self) { _ = try await connect(nil) }
        // Only the good client's event is stored, and the listener still serves.
        let again = try await connect(good)
        let second = try await again.publish(Event(topic: try Topic("orders/tcp"), data: Array("again".utf8)))
        #expect(second.offset == 1)
        await again.close()
        try await g.stop()
    }

    /// The server's certificate must carry the name asked for (or, for an IP address, that address).
    /// A certificate that lists the connected IP address passes on the address alone, so this one
    /// names only localhost.
    @Test func serverNameIsVerified() async throws {
        let dir = ScratchDirectory()
        let certs = try await TestCertificates.make(in: dir.path + "/certs")
        let g = try await TestGateway { c in
            c.tlsCertificate = certs.nameOnlyCertificate
            c.tlsKey = certs.nameOnlyKey
            c.tlsListeners = ["tcp"]
        }
        let tcpPort = try await g.tcpPort()
        func connect(host: String, serverName: String?) async throws -> MeshClient {
            var configuration = MeshClient.Configuration(name: "names")
            configuration.tls = ClientTLS(caFile: certs.ca, serverName: serverName)
            configuration.reconnect = false
            return try await MeshClient.connect(host: host, port: tcpPort, configuration: configuration)
        }
        let byName = try await connect(host: "localhost", serverName: nil)
        #expect(byName.welcome != nil)
        await byName.close()
        let overridden = try await connect(host: "127.0.0.1", serverName: "localhost")
        #expect(overridden.welcome != nil)
        await overridden.close()
        for (host, name) in [("127.0.0.1", nil), ("localhost", "elsewhere.example")] as [(String, String?)] {
            do {
                let c = try await connect(host: host, serverName: name)
                Issue.record("\(host) as \(name ?? host): accepted")
                await c.close()
            } catch {
                #expect("\(error)".contains("certificate does not name this host"), "\(error)")
            }
        }
        // HTTP stays plain with tls_listeners: tcp.
        #expect(try await g.get("/healthz").status == 200)
        try await g.stop()
    }

    /// `meshgate serve` with mutual TLS, the CLI over `tls://`, and SIGHUP swapping the certificate
    /// (a bad file on a later SIGHUP keeps the running one).
    @Test func cliOverTLSAndCertificateReloadOnSIGHUP() async throws {
        let dir = ScratchDirectory()
        let certs = try await TestCertificates.make(in: dir.path + "/certs")
        let live = dir.path + "/live"
        try FileManager.default.createDirectory(atPath: live, withIntermediateDirectories: true)
        func install(_ cert: String, _ key: String) throws {
            for (from, to) in [(cert, live + "/server.pem"), (key, live + "/server.key")] {
                try? FileManager.default.removeItem(atPath: to)
                try FileManager.default.copyItem(atPath: from, toPath: to)
            }
        }
        try install(certs.serverCertificate, certs.serverKey)
        let server = try ChildProcess(meshgateBinary, ["serve", "--data", dir.path + "/data", "--routes", dir.path + "/routes",
                                                       "--http", "127.0.0.1:0", "--tcp", "127.0.0.1:0",
                                                       "--tls-cert", live + "/server.pem", "--tls-key", live + "/server.key",
                                                       "--tls-client-ca", certs.ca], mergeStandardError: true)
        defer { server.signal(SIGKILL) }
        #expect(await server.waitForOutput(containing: "listening tcp=", timeout: .seconds(60)), "\(server.text)")
        let port = try #require(server.text.firstMatch(of: /listening tcp=127\.0\.0\.1:(\d+)/).map { String($0.1) }, "\(server.text)")
        let mtls = ["--ca-file", certs.ca, "--cert-file", certs.clientCertificate, "--key-file", certs.clientKey]
        func publish(_ server: String, _ options: [String], data: String) async throws -> (status: Int32, output: String) {
            try await ChildProcess.run(meshgateBinary, ["publish", "orders/cli", data, "--server", server] + options)
        }
        let first = try await publish("tls://127.0.0.1:\(port)", mtls, data: "one")
        #expect(first.status == 0 && first.output.contains("orders/cli partition 0 offset 0"), "\(first.output)")
        let anonymous = try await publish("tls://127.0.0.1:\(port)", ["--ca-file", certs.ca], data: "anonymous")
        #expect(anonymous.status == 1 && anonymous.output.contains("cannot connect to tls://127.0.0.1:\(port)"), "\(anonymous.output)")
        let plain = try await publish("tcp://127.0.0.1:\(port)", [], data: "plain")
        #expect(plain.status == 1, "\(plain.output)")
        let missingFile = try await publish("tls://127.0.0.1:\(port)", ["--ca-file", dir.path + "/nope.pem"], data: "x")
        #expect(missingFile.status == 1 && missingFile.output.contains("cannot read the CA file"), "\(missingFile.output)")

        // SIGHUP with a certificate that names only localhost: new connections get it.
        try install(certs.nameOnlyCertificate, certs.nameOnlyKey)
        server.signal(SIGHUP)
        #expect(await server.waitForOutput(containing: "reloaded the TLS certificate", timeout: .seconds(20)), "\(server.text)")
        let byAddress = try await publish("tls://127.0.0.1:\(port)", mtls, data: "by address")
        #expect(byAddress.status == 1 && byAddress.output.contains("does not name this host"), "\(byAddress.output)")
        let byName = try await publish("tls://localhost:\(port)", mtls, data: "by name")
        #expect(byName.status == 0 && byName.output.contains("offset 1"), "\(byName.output)")

        // A broken key on the next SIGHUP is logged; the running certificate stays.
        try "not a key".write(toFile: live + "/server.key", atomically: true, encoding: .utf8)
        server.signal(SIGHUP)
        #expect(await server.waitForOutput(containing: "TLS certificate not reloaded", timeout: .seconds(20)), "\(server.text)")
        let still = try await publish("tls://localhost:\(port)", mtls, data: "still")
        #expect(still.status == 0 && still.output.contains("offset 2"), "\(still.output)")
        server.signal(SIGTERM)
        _ = try await server.wait()
        #expect(server.exitCode == 0, "\(server.text)")
    }

    @Test func unreadableOrMismatchedFilesStopStartUpWithTheFileNamed() async throws {
        let dir = ScratchDirectory()
        let certs = try await TestCertificates.make(in: dir.path + "/certs")
        func load(_ flags: [String: String]) -> String? {
            do {
                _ = try GatewayConfig.load(flags: flags, environment: [:])
                return nil
            } catch { return error.message }
        }
        let missing = load(["--tls-cert": dir.path + "/nope.pem", "--tls-key": certs.serverKey])
        #expect(missing?.contains("cannot read the certificate chain file \(dir.path)/nope.pem") == true, "\(missing ?? "accepted")")
        let mismatched = load(["--tls-cert": certs.serverCertificate, "--tls-key": certs.clientKey])
        #expect(mismatched?.contains("does not match the certificate") == true, "\(mismatched ?? "accepted")")
        let notPEM = load(["--tls-cert": certs.serverCertificate, "--tls-key": certs.directory + "/server.ext"])
        #expect(notPEM?.contains("is not an unencrypted PEM private key") == true, "\(notPEM ?? "accepted")")
        let keyOnly = load(["--tls-key": certs.serverKey])
        #expect(keyOnly?.contains("--tls-key needs --tls-cert") == true, "\(keyOnly ?? "accepted")")
        let badCA = load(["--tls-cert": certs.serverCertificate, "--tls-key": certs.serverKey, "--tls-client-ca": certs.serverKey])
        #expect(badCA?.contains("client CA") == true, "\(badCA ?? "accepted")")
        #expect(load(["--tls-cert": certs.serverCertificate, "--tls-key": certs.serverKey, "--tls-client-ca": certs.ca]) == nil)
        // The binary says the same and exits 2 before listening.
        let run = try await ChildProcess.run(meshgateBinary, ["serve", "--data", dir.path + "/data", "--http", "127.0.0.1:0", "--tcp", "127.0.0.1:0",
                                                              "--tls-cert", certs.serverCertificate, "--tls-key", certs.clientKey])
        #expect(run.status != 0 && run.output.contains("does not match the certificate"), "\(run.output)")
    }
}

