import Foundation
import JWTKit
import MeshAuth
import MeshCore
import MeshGateway
import MeshHTTP
import MeshTestSupport
import Testing

/// Authentication, topic ACLs and publish rates on the HTTP API (docs/security.md).
@Suite struct AuthTests {
    static let writerToken = "writer-token-0123456789abcdef"
    static let readerToken = "reader-token-0123456789abcdef"
    static let adminToken = "admin-token-0123456789abcdef"
    static let jwtSecret = "a-shared-hs256-secret-for-these-tests"

    static func grant(publish: [String] = [], denyPublish: [String] = [], subscribe: [String] = [], admin: Bool = false,
                      rate: PublishRate? = nil) -> AuthConfiguration.Grant {
        .init(publish: TopicACL(allow: publish.map { try! TopicPattern($0) }, deny: denyPublish.map { try! TopicPattern($0) }),
              subscribe: TopicACL(allow: subscribe.map { try! TopicPattern($0) }), admin: admin, rate: rate)
    }

    static func auth(readerSubscribe: [String] = ["orders/#"], writerRate: PublishRate? = nil) -> AuthConfiguration {
        var jwt = AuthConfiguration.JWTSettings(algorithm: .hs256, key: jwtSecret, issuer: "tests")
        jwt.roleClaim = "role"
        return AuthConfiguration(enabled: true, tokens: [
            .init(name: "writer", sha256: TokenHash.sha256(writerToken),
                  grant: grant(publish: ["orders/#"], denyPublish: ["orders/secret"], rate: writerRate)),
            .init(name: "reader", sha256: TokenHash.sha256(readerToken), grant: grant(subscribe: readerSubscribe)),
            .init(name: "ops", sha256: TokenHash.sha256(adminToken), grant: grant(admin: true)),
        ], roles: ["auditor": grant(subscribe: ["orders/#"])], jwt: jwt)
    }

    static func bearer(_ token: String) -> [(String, String)] { [("authorization", "Bearer \(token)")] }

    static func gateway(_ name: String = #function, auth: AuthConfiguration = auth()) async throws -> TestGateway {
        try await TestGateway(name) { $0.auth = auth }
    }

    @Test func noOrUnknownTokenIs401WithAChallenge() async throws {
        let gw = try await Self.gateway()
        defer { Task { try await gw.stop() } }
        let none = try await gw.post("/v1/publish/orders/1", "x")
        try expectProblem(none, 401, "auth.unauthorized", detail: "Authorization: Bearer")
        #expect(none.header("www-authenticate") == #"Bearer realm="meshgate""#)
        let wrong = try await gw.post("/v1/publish/orders/1", "x", headers: Self.bearer("not-a-known-token-at-all"))
        try expectProblem(wrong, 401, "auth.unauthorized")
        #expect(wrong.header("www-authenticate")?.contains(#"error="invalid_token""#) == true)
        try expectProblem(try await gw.get("/v1/stream/orders/%23"), 401, "auth.unauthorized")
        try expectProblem(try await gw.get("/v1/fetch/orders/1"), 401, "auth.unauthorized")
        try expectProblem(try await gw.get("/v1/topics"), 401, "auth.unauthorized")
        // Probes stay open.
        #expect(try await gw.get("/healthz").status == 200)
        #expect(try await gw.get("/v1/openapi.yaml").status == 200)
    }

    @Test func publishOutsideTheACLIs403AndABatchIsRefusedWhole() async throws {
        let gw = try await Self.gateway()
        defer { Task { try await gw.stop() } }
        let ok = try await gw.post("/v1/publish/orders/1", "x", headers: Self.bearer(Self.writerToken))
        #expect(ok.status == 200, "\(ok.text)")
        try expectProblem(try await gw.post("/v1/publish/payments/1", "x", headers: Self.bearer(Self.writerToken)),
                          403, "auth.forbidden", detail: "payments/1")
        try expectProblem(try await gw.post("/v1/publish/orders/secret", "x", headers: Self.bearer(Self.writerToken)),
                          403, "auth.forbidden", detail: "orders/secret")
        // A refused batch stores nothing (an HTTP batch has the path's one topic; TCP batches with
        // several topics are covered in MeshTCPTests).
        let batch = #"[{"specversion":"1.0","id":"b1","source":"t","type":"t"},{"specversion":"1.0","id":"b2","source":"t","type":"t"}]"#
        let refused = try await gw.post("/v1/publish/orders/secret", batch,
                                        headers: Self.bearer(Self.writerToken) + [("content-type", "application/cloudevents-batch+json")])
        try expectProblem(refused, 403, "auth.forbidden", detail: "orders/secret")
        #expect(gw.broker.log.topics.contains { $0.topic.name == "orders/secret" } == false)
        // The reader may not publish at all.
        try expectProblem(try await gw.post("/v1/publish/orders/1", "x", headers: Self.bearer(Self.readerToken)), 403, "auth.forbidden")
    }

    @Test func subscribeAndFetchOutsideTheACLAre403AndInsideWork() async throws {
        let gw = try await Self.gateway()
        defer { Task { try await gw.stop() } }
        #expect(try await gw.post("/v1/publish/orders/1", "hello", headers: Self.bearer(Self.writerToken)).status == 200)
        // Inside the ACL.
        let fetched = try await gw.get("/v1/fetch/orders/1?offset=0", headers: Self.bearer(Self.readerToken))
        #expect(fetched.status == 200, "\(fetched.text)")
        #expect(fetched.text.contains("aGVsbG8="))  // "hello", base64
        let stream = try await SSEClient(port: gw.port, path: "/v1/stream/orders/%2B?from=earliest", headers: Self.bearer(Self.readerToken))
        #expect(stream.status == 200)
        #expect(try await stream.next()?.json["topic"] as? String == "orders/1")
        await stream.close()
        // Outside it.
        try expectProblem(try await gw.get("/v1/stream/%23", headers: Self.bearer(Self.readerToken)), 403, "auth.forbidden", detail: "#")
        try expectProblem(try await gw.get("/v1/fetch/payments/1", headers: Self.bearer(Self.readerToken)), 403, "auth.forbidden", detail: "payments/1")
        try expectProblem(try await gw.get("/v1/stream/orders/%23", headers: Self.bearer(Self.writerToken)), 403, "auth.forbidden")
        try expectProblem(try await gw.post("/v1/groups/g/offsets", #"{"offsets":[{"topic":"payments/1","partition":0,"offset":1}]}"#,
                                            headers: Self.bearer(Self.readerToken)), 403, "auth.forbidden", detail: "payments/1")
    }

    @Test func adminEndpointsNeedTheAdminFlag() async throws {
        let gw = try await Self.gateway()
        defer { Task { try await gw.stop() } }
        try expectProblem(try await gw.get("/v1/topics", headers: Self.bearer(Self.readerToken)), 403, "auth.forbidden", detail: "/v1/topics")
        try expectProblem(try await gw.get("/metrics", headers: Self.bearer(Self.writerToken)), 403, "auth.forbidden")
        #expect(try await gw.get("/v1/topics", headers: Self.bearer(Self.adminToken)).status == 200)
        #expect(try await gw.get("/v1/status", headers: Self.bearer(Self.adminToken)).status == 200)
    }

    /// Claims of a token the tests sign with `jwtSecret`.
    struct TestClaims: JWTPayload {
        var sub: String, role: String, iss = "tests", exp = Date().timeIntervalSince1970 + 600
        func verify(using algorithm: some JWTAlgorithm) async throws {}
    }

    static func sign(_ claims: TestClaims) async throws -> String {
        let keys = JWTKeyCollection()
        await keys.add(hmac: HMACKey(from: jwtSecret), digestAlgorithm: .sha256)
        return try await keys.sign(claims)
    }

    @Test func jwtWithAConfiguredRoleIsAccepted() async throws {
        let gw = try await Self.gateway()
        defer { Task { try await gw.stop() } }
        let good = try await Self.sign(TestClaims(sub: "auditor-1", role: "auditor"))
        #expect(try await gw.post("/v1/publish/orders/1", "x", headers: Self.bearer(Self.writerToken)).status == 200)
        let fetched = try await gw.get("/v1/fetch/orders/1?offset=0", headers: Self.bearer(good))
        #expect(fetched.status == 200, "\(fetched.text)")
        try expectProblem(try await gw.post("/v1/publish/orders/1", "x", headers: Self.bearer(good)), 403, "auth.forbidden", detail: "auditor-1")
        var expired = TestClaims(sub: "auditor-1", role: "auditor")
        expired.exp = Date().timeIntervalSince1970 - 5
        try expectProblem(try await gw.get("/v1/fetch/orders/1", headers: Self.bearer(try await Self.sign(expired))),
                          401, "auth.unauthorized", detail: "expired")
    }

    /// A refused JWT's claims reach the challenge's error description: a line break in them must
    /// not become a header of its own.
    @Test func aJWTClaimCannotAddAResponseHeader() async throws {
        let gw = try await Self.gateway()
        defer { Task { try await gw.stop() } }
        let token = try await Self.sign(TestClaims(sub: "intruder", role: "nobody\r\nx-injected: yes"))
        let refused = try await gw.get("/v1/fetch/orders/1", headers: Self.bearer(token))
        try expectProblem(refused, 401, "auth.unauthorized", detail: "x-injected")
        #expect(refused.header("x-injected") == nil)
        let challenge = try #require(refused.header("www-authenticate"))
        #expect(challenge.contains("nobody  x-injected: yes"), "\(challenge)")
        #expect(!challenge.utf8.contains { $0 < 0x20 })
        // The connection still serves.
        #expect(try await gw.get("/healthz").status == 200)
    }

    @Test func overThePublishRateIs429WithRetryAfter() async throws {
        let gw = try await Self.gateway(auth: Self.auth(writerRate: PublishRate(eventsPerSecond: 0.01, burst: 3)))
        defer { Task { try await gw.stop() } }
        for i in 0..<3 {
            #expect(try await gw.post("/v1/publish/orders/1", "e\(i)", headers: Self.bearer(Self.writerToken)).status == 200)
        }
        let limited = try await gw.post("/v1/publish/orders/1", "e3", headers: Self.bearer(Self.writerToken))
        try expectProblem(limited, 429, "rate_limited", detail: "writer")
        // One event refills in 100 s; some of it may have refilled while the three were stored.
        let retry = try #require(limited.header("retry-after").flatMap { Int($0) })
        #expect(retry > 1 && retry <= 100)
        // Other identities have their own bucket (and the reader's refusal is its ACL, not the rate).
        try expectProblem(try await gw.post("/v1/publish/orders/1", "x", headers: Self.bearer(Self.readerToken)), 403, "auth.forbidden")
        let metrics = try await gw.get("/metrics", headers: Self.bearer(Self.adminToken)).text
        #expect(metrics.contains("meshgate_rate_limited_total 1"))
        #expect(metrics.contains(#"meshgate_acl_denials_total{operation="publish"} 1"#))
    }

    @Test func reloadRevokingTheSubscribeRightEndsALiveStream() async throws {
        let gw = try await Self.gateway()
        defer { Task { try await gw.stop() } }
        let stream = try await SSEClient(port: gw.port, path: "/v1/stream/orders/%23", headers: Self.bearer(Self.readerToken))
        #expect(stream.status == 200)
        #expect(try await gw.post("/v1/publish/orders/1", "before", headers: Self.bearer(Self.writerToken)).status == 200)
        #expect(try await stream.next()?.json["topic"] as? String == "orders/1")
        try gw.gateway.access.reload(Self.auth(readerSubscribe: ["orders/eu/#"]))
        let last = try #require(try await stream.next())
        #expect(last.event == "error")
        #expect(last.json["status"] as? Int == 403)
        #expect((last.json["detail"] as? String)?.contains("orders/#") == true)
        #expect(try await stream.next(timeout: .seconds(2)) == nil)  // closed
        // A removed token's stream is ended with 401.
        let narrow = try await SSEClient(port: gw.port, path: "/v1/stream/orders/eu/%23", headers: Self.bearer(Self.readerToken))
        #expect(narrow.status == 200)
        var without = Self.auth()
        without.tokens.removeAll { $0.name == "reader" }
        try gw.gateway.access.reload(without)
        let gone = try #require(try await narrow.next())
        #expect(gone.json["status"] as? Int == 401)
        await stream.close()
        await narrow.close()
    }
}

/// The `auth:` section of meshgate.yaml and the loopback rule.
@Suite struct AuthConfigTests {
    static func load(_ yaml: String, flags: [String: String] = [:]) throws(ConfigError) -> GatewayConfig {
        let dir = ScratchDirectory()
        let path = dir.path + "/meshgate.yaml"
        #expect(FileManager.default.createFile(atPath: path, contents: Data(yaml.utf8)), "cannot write \(path)")
        return try withExtendedLifetime(dir) { () throws(ConfigError) -> GatewayConfig in
            try GatewayConfig.load(flags: flags, environment: [:], configFile: path)
        }
    }

    static let hash = TokenHash.hex("config-token-0123456789")

    @Test func aValidSectionLoads() throws {
        let config = try Self.load("""
            http: 0.0.0.0:8080
            auth:
              enabled: true
              tokens:
                - name: ingest
                  sha256: \(Self.hash)
                  publish: ["sensors/#"]
                  deny_publish: sensors/secret
                  rate: 50
                  burst: 100
              roles:
                reader: {subscribe: ["sensors/+/temp"], admin: true}
              jwt: {algorithm: HS256, secret: "0123456789abcdef0123456789abcdef", issuer: https://id.example}
            """)
        #expect(config.auth.enabled)
        #expect(config.auth.tokens.first?.grant.rate == PublishRate(eventsPerSecond: 50, burst: 100))
        #expect(config.auth.tokens.first?.grant.publish.deny == [try TopicPattern("sensors/secret")])
        #expect(config.auth.roles["reader"]?.admin == true)
        #expect(config.auth.jwt?.issuer == "https://id.example")
        // Authentication on: listening beyond loopback needs no extra flag, and nothing warns.
        #expect(config.remoteListeners.isEmpty)
    }

    @Test func errorsNameTheKey() {
        func message(_ yaml: String) -> String {
            do { _ = try Self.load(yaml); return "loaded" } catch { return error.message }
        }
        #expect(message("auth:\n  enabled: true\n  tokens:\n    - {name: a, sha256: nothex}\n").contains("auth.tokens[0].sha256"))
        #expect(message("auth:\n  tokens:\n    - {name: a, sha256: \(Self.hash), publish: [\"a/#/b\"]}\n").contains("auth.tokens[0].publish[0]"))
        #expect(message("auth:\n  tokens:\n    - {name: a, sha256: \(Self.hash), pubish: x}\n").contains("unknown key \"pubish\""))
        #expect(message("auth:\n  jwt: {algorithm: RS256, secret: x}\n").contains("auth.jwt"))
        #expect(message("auth:\n  jwt: {algorithm: ES256, public_key: nope}\n").contains("PEM"))
        #expect(message("auth:\n  tokens:\n    - {name: a, sha256: \(Self.hash), burst: 3}\n").contains("auth.tokens[0].burst"))
        #expect(message("auth:\n  enabled: true\n").contains("neither tokens nor jwt"))
        #expect(message("auth:\n  enabled: maybe\n").contains("auth.enabled"))
    }

    @Test func authOffBeyondLoopbackStillNeedsTheFlag() {
        #expect(throws: ConfigError.self) {
            try Self.load("auth:\n  tokens:\n    - {name: a, sha256: \(Self.hash)}\n", flags: ["--http": "0.0.0.0:0"])
        }
        #expect(throws: Never.self) {
            try Self.load("auth:\n  tokens:\n    - {name: a, sha256: \(Self.hash)}\n", flags: ["--http": "0.0.0.0:0", "--auth": "on"])
        }
    }
}

/// `meshgate serve` with authentication on from meshgate.yaml, reloaded by SIGHUP.
@Suite(.serialized) struct AuthProcessTests {
    static let writer = "process-writer-token-0123456789"

    static func yaml(writer: Bool) -> String {
        var text = """
            auth:
              enabled: true
              tokens:
                - name: ops
                  sha256: \(TokenHash.hex("process-ops-token-0123456789"))
                  admin: true

            """
        if writer {
            text += """
                    - name: writer
                      sha256: \(TokenHash.hex(Self.writer))
                      publish: ["orders/#"]

                """
        }
        return text
    }

    @Test func serveEnforcesTheFileAndReloadsItOnSIGHUP() async throws {
        let dir = ScratchDirectory()
        let config = dir.path + "/meshgate.yaml"
        try #require(FileManager.default.createFile(atPath: config, contents: Data(Self.yaml(writer: true).utf8)), "cannot write \(config)")
        // A routes directory, so that routing traps SIGHUP too and both reloads see it.
        try FileManager.default.createDirectory(atPath: dir.path + "/routes", withIntermediateDirectories: true)
        let hash = try await ChildProcess.run(meshgateBinary, ["auth", "hash-token", Self.writer])
        #expect(hash.output.trimmingCharacters(in: .whitespacesAndNewlines) == TokenHash.hex(Self.writer))

        let serve = try ServeProcessTests.Child(["serve", "--config", config, "--http", "127.0.0.1:0", "--tcp", "127.0.0.1:0",
                                                 "--data", dir.path + "/data", "--routes", dir.path + "/routes"])
        let port = try await serve.httpPort()
        let client = AdminClient(host: "127.0.0.1", port: port)
        let bearer = [("authorization", "Bearer \(Self.writer)")]
        try expectProblem(try await client.request(.POST, "/v1/publish/orders/1", body: Array("x".utf8)), 401, "auth.unauthorized")
        #expect(try await client.request(.POST, "/v1/publish/orders/1", headers: bearer, body: Array("x".utf8)).status == 200)
        try expectProblem(try await client.request(.POST, "/v1/publish/other", headers: bearer, body: Array("x".utf8)), 403, "auth.forbidden")

        // The CLI presents MESHGATE_TOKEN over TCP.
        let tcp = try #require(serve.output.range(of: #"listening tcp=127\.0\.0\.1:(\d+)"#, options: .regularExpression)
            .map { Int(serve.output[$0].split(separator: ":").last!)! })
        let cli = try ServeProcessTests.Child(["publish", "orders/2", "hi", "--server", "tcp://127.0.0.1:\(tcp)"],
                                              environment: ["MESHGATE_TOKEN": Self.writer])
        #expect(await cli.exit() == 0, "\(cli.output)")
        let anonymous = try ServeProcessTests.Child(["publish", "orders/2", "hi", "--server", "tcp://127.0.0.1:\(tcp)"])
        #expect(await anonymous.exit() != 0)
        #expect(anonymous.output.contains("authentication"), "\(anonymous.output)")

        // Remove the writer and reload.
        try #require(FileManager.default.createFile(atPath: config, contents: Data(Self.yaml(writer: false).utf8)), "cannot write \(config)")
        serve.child.signal(SIGHUP)
        #expect(await serve.child.waitForOutput(containing: "reloaded auth"), "\(serve.output)")
        #expect(await serve.child.waitForOutput(containing: "SIGHUP: reloading routes"), "\(serve.output)")
        try expectProblem(try await client.request(.POST, "/v1/publish/orders/1", headers: bearer, body: Array("x".utf8)), 401, "auth.unauthorized")
        #expect(await serve.terminate() == 0, "\(serve.output)")
    }
}
