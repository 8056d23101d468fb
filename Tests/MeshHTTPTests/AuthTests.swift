import Foundation
import JWTKit
import MeshAuth
import MeshCore
import MeshGateway
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

    @Test func jwtWithAConfiguredRoleIsAccepted() async throws {
        let gw = try await Self.gateway()
        defer { Task { try await gw.stop() } }
        struct Claims: JWTPayload {
            var sub = "auditor-1", role = "auditor", iss = "tests", exp = Date().timeIntervalSince1970 + 600
            func verify(using algorithm: some JWTAlgorithm) async throws {}
        }
        let keys = JWTKeyCollection()
        await keys.add(hmac: HMACKey(from: Self.jwtSecret), digestAlgorithm: .sha256)
        let good = try await keys.sign(Claims())
        #expect(try await gw.post("/v1/publish/orders/1", "x", headers: Self.bearer(Self.writerToken)).status == 200)
        let fetched = try await gw.get("/v1/fetch/orders/1?offset=0", headers: Self.bearer(good))
        #expect(fetched.status == 200, "\(fetched.text)")
        try expectProblem(try await gw.post("/v1/publish/orders/1", "x", headers: Self.bearer(good)), 403, "auth.forbidden", detail: "auditor-1")
        var expired = Claims()
        expired.exp = Date().timeIntervalSince1970 - 5
        try expectProblem(try await gw.get("/v1/fetch/orders/1", headers: Self.bearer(try await keys.sign(expired))),
                          401, "auth.unauthorized", detail: "expired")
    }

    @Test func overThePublishRateIs429WithRetryAfter() async throws {
        let gw = try await Self.gateway(auth: Self.auth(writerRate: PublishRate(eventsPerSecond: 0.5, burst: 3)))
        defer { Task { try await gw.stop() } }
        for i in 0..<3 {
            #expect(try await gw.post("/v1/publish/orders/1", "e\(i)", headers: Self.bearer(Self.writerToken)).status == 200)
        }
        let limited = try await gw.post("/v1/publish/orders/1", "e3", headers: Self.bearer(Self.writerToken))
        try expectProblem(limited, 429, "rate_limited", detail: "writer")
        #expect(limited.header("retry-after") == "2")
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
    }
}
