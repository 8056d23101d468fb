import Foundation
import JWTKit
import MeshCore
import Testing
@testable import MeshAuth

struct TestClaims: JWTPayload {
    var sub: String = "alice"
    var role: String? = "reader"
    var exp: Double? = Date().timeIntervalSince1970 + 3600
    var nbf: Double?
    var iss: String?
    var aud: String?
    func verify(using algorithm: some JWTAlgorithm) async throws {}
}

@Suite struct JWTTests {
    static let secret = "an-hs256-secret-of-at-least-32-bytes!"

    static func config(_ jwt: AuthConfiguration.JWTSettings) throws -> AccessControl {
        try AccessControl(AuthConfiguration(enabled: true, roles: [
            "reader": .init(subscribe: TopicACL(allow: [try TopicPattern("news/#")])),
        ], jwt: jwt))
    }

    static func hs256(_ claims: TestClaims, secret: String = secret) async throws -> String {
        let keys = JWTKeyCollection()
        await keys.add(hmac: HMACKey(from: secret), digestAlgorithm: .sha256)
        return try await keys.sign(claims)
    }

    static func reason(_ result: Result<Identity, AuthFailure>) -> AuthFailure.Reason? {
        if case .failure(let f) = result { f.reason } else { nil }
    }

    static func b64(_ s: String) -> String {
        Data(s.utf8).base64EncodedString().replacingOccurrences(of: "=", with: "")
            .replacingOccurrences(of: "+", with: "-").replacingOccurrences(of: "/", with: "_")
    }

    @Test func validHS256TokenGetsItsRolesACL() async throws {
        let access = try Self.config(.init(algorithm: .hs256, key: Self.secret))
        let identity = try await access.authenticate(Self.hs256(TestClaims())).get()
        #expect(identity.name == "alice")
        #expect(identity.maySubscribe(try TopicPattern("news/+")))
        #expect(!identity.mayPublish(try Topic("news/a")))
    }

    @Test func expiredAndNotYetValidTokensAreRefused() async throws {
        let access = try Self.config(.init(algorithm: .hs256, key: Self.secret))
        var expired = TestClaims()
        expired.exp = Date().timeIntervalSince1970 - 10
        #expect(Self.reason(await access.authenticate(try await Self.hs256(expired))) == .expired)
        var noExp = TestClaims()
        noExp.exp = nil
        #expect(Self.reason(await access.authenticate(try await Self.hs256(noExp))) == .expired)
        var early = TestClaims()
        early.nbf = Date().timeIntervalSince1970 + 600
        #expect(Self.reason(await access.authenticate(try await Self.hs256(early))) == .notYetValid)
    }

    @Test func badSignatureIsRefused() async throws {
        let access = try Self.config(.init(algorithm: .hs256, key: Self.secret))
        let forged = try await Self.hs256(TestClaims(), secret: "another-secret-another-secret-another")
        #expect(Self.reason(await access.authenticate(forged)) == .badSignature)
        // A payload swapped under a valid signature.
        let good = try await Self.hs256(TestClaims()).split(separator: ".")
        let tampered = "\(good[0]).\(Self.b64(#"{"sub":"mallory","role":"reader","exp":9999999999}"#)).\(good[2])"
        #expect(Self.reason(await access.authenticate(tampered)) == .badSignature)
    }

    @Test func algNoneIsRefused() async throws {
        let access = try Self.config(.init(algorithm: .hs256, key: Self.secret))
        let unsigned = Self.b64(#"{"alg":"none","typ":"JWT"}"#) + "." + Self.b64(#"{"sub":"x","role":"reader","exp":9999999999}"#) + "."
        #expect(Self.reason(await access.authenticate(unsigned)) == .wrongAlgorithm)
    }

    @Test func algorithmConfusionIsRefused() async throws {
        // RS256 configured; an attacker signs HS256 with the public key as the HMAC secret.
        let access = try Self.config(.init(algorithm: .rs256, key: testRSAPublicKey))
        let confused = try await Self.hs256(TestClaims(), secret: testRSAPublicKey)
        #expect(Self.reason(await access.authenticate(confused)) == .wrongAlgorithm)
    }

    @Test func wrongIssuerAndAudienceAreRefused() async throws {
        var settings = AuthConfiguration.JWTSettings(algorithm: .hs256, key: Self.secret, issuer: "https://id.example", audience: "meshgate")
        settings.leewaySeconds = 0
        let access = try Self.config(settings)
        var claims = TestClaims()
        claims.iss = "https://evil.example"
        claims.aud = "meshgate"
        #expect(Self.reason(await access.authenticate(try await Self.hs256(claims))) == .wrongIssuer)
        claims.iss = "https://id.example"
        claims.aud = "other"
        #expect(Self.reason(await access.authenticate(try await Self.hs256(claims))) == .wrongAudience)
        claims.aud = "meshgate"
        #expect(try await access.authenticate(try await Self.hs256(claims)).get().name == "alice")
    }

    @Test func unknownRoleIsRefused() async throws {
        let access = try Self.config(.init(algorithm: .hs256, key: Self.secret))
        var claims = TestClaims()
        claims.role = "root"
        #expect(Self.reason(await access.authenticate(try await Self.hs256(claims))) == .unknownRole)
        claims.role = nil
        #expect(Self.reason(await access.authenticate(try await Self.hs256(claims))) == .unknownRole)
    }

    @Test func es256AndRS256Verify() async throws {
        let ec = ES256PrivateKey()
        let ecAccess = try Self.config(.init(algorithm: .es256, key: ec.publicKey.pemRepresentation))
        let ecKeys = JWTKeyCollection()
        await ecKeys.add(ecdsa: ec)
        #expect(try await ecAccess.authenticate(try await ecKeys.sign(TestClaims())).get().name == "alice")

        let rsAccess = try Self.config(.init(algorithm: .rs256, key: testRSAPublicKey))
        let rsKeys = JWTKeyCollection()
        await rsKeys.add(rsa: try Insecure.RSA.PrivateKey(pem: testRSAPrivateKey), digestAlgorithm: .sha256)
        #expect(try await rsAccess.authenticate(try await rsKeys.sign(TestClaims())).get().name == "alice")
        // The EC token under the RSA configuration: wrong algorithm.
        #expect(Self.reason(await rsAccess.authenticate(try await ecKeys.sign(TestClaims()))) == .wrongAlgorithm)
    }

    @Test func unusableKeysAreRefusedWhenConfigured() {
        #expect(throws: AuthKeyError.self) { try JWTVerifier(.init(algorithm: .hs256, key: "short")) }
        #expect(throws: AuthKeyError.self) { try JWTVerifier(.init(algorithm: .es256, key: "not a pem")) }
        #expect(throws: AuthKeyError.self) { try JWTVerifier(.init(algorithm: .rs256, key: "not a pem")) }
    }
}
