import MeshCore
import Testing
@testable import MeshAuth

@Suite struct TopicACLTests {
    func p(_ s: String) throws -> TopicPattern { try TopicPattern(s) }
    func t(_ s: String) throws -> Topic { try Topic(s) }

    @Test func defaultDenyWhenNothingAllows() throws {
        #expect(!TopicACL.nothing.permits(try t("a")))
        #expect(!TopicACL(allow: [try p("orders/#")]).permits(try t("payments/1")))
    }

    @Test func denyWinsOverAllow() throws {
        let acl = TopicACL(allow: [try p("sensors/#")], deny: [try p("sensors/secret/+")])
        #expect(acl.permits(try t("sensors/a/temp")))
        #expect(!acl.permits(try t("sensors/secret/x")))
        #expect(acl.permits(try t("sensors/secret")))  // + needs one more level
    }

    @Test func wildcardsMatchLikeMQTT() throws {
        let acl = TopicACL(allow: [try p("site/+/temp"), try p("logs/#")])
        #expect(acl.permits(try t("site/a/temp")))
        #expect(!acl.permits(try t("site/a/b/temp")))
        #expect(acl.permits(try t("logs")))
        #expect(acl.permits(try t("logs/x/y")))
    }

    @Test func subscribePatternMustBeCoveredByOneAllow() throws {
        let acl = TopicACL(allow: [try p("sensors/#")], deny: [try p("sensors/secret")])
        #expect(acl.permits(try p("sensors/+/temp")))
        #expect(acl.permits(try p("sensors/a/#")))
        #expect(!acl.permits(try p("#")))
        #expect(!acl.permits(try p("+/temp")))
        // Could match the denied topic: refused, deny wins.
        #expect(!acl.permits(try p("sensors/#")))
        #expect(!acl.permits(try p("sensors/+")))
        #expect(acl.permits(try p("sensors/+/x")))
    }

    @Test func coverage() throws {
        #expect(try p("a/b").isCovered(by: p("a/+")))
        #expect(try p("a/+").isCovered(by: p("+/+")))
        #expect(try !p("a/+").isCovered(by: p("a/b")))
        #expect(try p("a").isCovered(by: p("a/#")))
        #expect(try p("a/#").isCovered(by: p("#")))
        #expect(try !p("a/#").isCovered(by: p("a/+/#")))
        #expect(try !p("a/#").isCovered(by: p("a/+")))
        #expect(try !p("a/b/c").isCovered(by: p("a/b")))
    }

    @Test func overlap() throws {
        #expect(try p("a/+").overlaps(p("+/b")))
        #expect(try p("a/#").overlaps(p("a")))
        #expect(try !p("a/b").overlaps(p("a/c")))
        #expect(try !p("a/+").overlaps(p("a")))
        #expect(try p("#").overlaps(p("x/y")))
        #expect(try !p("a/+/c").overlaps(p("a/b/d")))
    }
}

@Suite struct TokenTests {
    @Test func sha256OfAKnownVector() {
        #expect(TokenHash.hex("abc") == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
    }

    @Test func hexRoundTripsAndRejectsJunk() {
        let hex = TokenHash.hex("a-long-enough-token")
        #expect(TokenHash.parseHex(hex) == TokenHash.sha256("a-long-enough-token"))
        #expect(TokenHash.parseHex(hex.uppercased()) == TokenHash.sha256("a-long-enough-token"))
        #expect(TokenHash.parseHex("abc") == nil)
        #expect(TokenHash.parseHex(String(repeating: "g", count: 64)) == nil)
    }

    @Test func constantTimeEquality() {
        #expect(TokenHash.constantTimeEqual([1, 2, 3], [1, 2, 3]))
        #expect(!TokenHash.constantTimeEqual([1, 2, 3], [1, 2, 4]))
        #expect(!TokenHash.constantTimeEqual([1, 2], [1, 2, 3]))
    }

    static func access(rate: PublishRate? = nil) throws -> AccessControl {
        let grant = AuthConfiguration.Grant(publish: TopicACL(allow: [try TopicPattern("in/#")]),
                                            subscribe: TopicACL(allow: [try TopicPattern("out/#")]), rate: rate)
        return try AccessControl(AuthConfiguration(enabled: true, tokens: [
            .init(name: "writer", sha256: TokenHash.sha256("writer-token-0123456789"), grant: grant),
        ]))
    }

    @Test func staticTokenResolvesToItsIdentity() async throws {
        let access = try Self.access()
        let identity = try await access.authenticate("writer-token-0123456789").get()
        #expect(identity.name == "writer")
        #expect(access.checkPublish(identity, [try Topic("in/a")]) == nil)
        #expect(access.checkPublish(identity, [try Topic("in/a"), try Topic("out/a")])?.subject == "out/a")
        #expect(access.checkSubscribe(identity, try TopicPattern("out/+")) == nil)
        #expect(access.checkAdmin(identity, "/v1/topics") != nil)
    }

    @Test func unknownAndMissingTokensFailWithTheirReason() async throws {
        let access = try Self.access()
        let unknown = await access.authenticate("nope-nope-nope-nope")
        #expect(unknown == .failure(AuthFailure(.unknownToken, "the token is not one this gateway accepts")))
        guard case .failure(let missing) = await access.authenticate(nil) else { Issue.record("no token accepted"); return }
        #expect(missing.reason == .missing)
        #expect(access.metrics.failures[.unknownToken] == 1)
        #expect(access.metrics.failures[.missing] == 1)
    }

    @Test func disabledAccessLetsEverythingThrough() async throws {
        let identity = try await AccessControl.disabled.authenticate(nil).get()
        #expect(identity == .anonymous)
        #expect(AccessControl.disabled.checkPublish(identity, [try Topic("x")]) == nil)
    }

    @Test func reloadChangesWhatATokenMayDo() async throws {
        let access = try Self.access()
        let before = try await access.authenticate("writer-token-0123456789").get()
        #expect(access.checkPublish(before, [try Topic("in/a")]) == nil)
        try access.reload(AuthConfiguration(enabled: true, tokens: [
            .init(name: "writer", sha256: TokenHash.sha256("writer-token-0123456789"), grant: .init()),
        ]))
        let after = try await access.authenticate("writer-token-0123456789").get()
        #expect(access.checkPublish(after, [try Topic("in/a")]) != nil)
        #expect(access.generation == 2)
    }

    @Test func rateLimitAdmitsTheBurstThenRefusesWithARetryHint() throws {
        let limiter = RateLimiter()
        let identity = Identity(name: "r", publish: .everything, subscribe: .nothing, rate: PublishRate(eventsPerSecond: 10, burst: 5))
        let t0 = ContinuousClock.now
        #expect(limiter.admit(identity, count: 5, now: t0) == nil)
        let refused = try #require(limiter.admit(identity, count: 1, now: t0))
        #expect(refused.retryAfterMilliseconds == 100)
        #expect(limiter.admit(identity, count: 1, now: t0 + .milliseconds(100)) == nil)
        // A batch is admitted or refused whole.
        #expect(limiter.admit(identity, count: 3, now: t0 + .milliseconds(200)) != nil)
        #expect(limiter.admit(identity, count: 1, now: t0 + .milliseconds(200)) == nil)
    }
}
