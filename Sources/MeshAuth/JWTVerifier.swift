import Foundation
import JWTKit

/// Verifies JWTs with one configured key (jwt-kit does the signature), then checks what jwt-kit
/// leaves to the caller: the header's `alg` must be the configured algorithm — so `alg: none` and
/// algorithm confusion (an RS256 public key used as an HS256 secret) are refused before any
/// signature is looked at — and `exp` (required), `nbf`, `iss` and `aud`.
public final class JWTVerifier: Sendable {
    public let settings: AuthConfiguration.JWTSettings
    private let keys: KeyHolder

    /// Parses the key; the error says what is wrong with it.
    public init(_ settings: AuthConfiguration.JWTSettings) throws(AuthKeyError) {
        self.settings = settings
        let material: KeyHolder.Material
        switch settings.algorithm {
        case .hs256:
            guard settings.key.utf8.count >= 32 else { throw AuthKeyError("an HS256 secret must be at least 32 bytes") }
            material = .hmac(HMACKey(from: settings.key))
        case .es256:
            do { material = .ecdsa(try ES256PublicKey(pem: settings.key)) } catch {
                throw AuthKeyError("not a PEM P-256 public key (-----BEGIN PUBLIC KEY-----): \(error)")
            }
        case .rs256:
            do { material = .rsa(try Insecure.RSA.PublicKey(pem: settings.key)) } catch {
                throw AuthKeyError("not a PEM RSA public key (-----BEGIN PUBLIC KEY-----) of 2048 bits or more: \(error)")
            }
        }
        keys = KeyHolder(material)
    }

    /// jwt-kit's key collection is an actor that is filled asynchronously; it is built on first
    /// use so that the verifier itself can be made synchronously, while configuration loads.
    private actor KeyHolder {
        enum Material: Sendable {
            case hmac(HMACKey), ecdsa(ES256PublicKey), rsa(Insecure.RSA.PublicKey)
        }
        let material: Material
        var keys: JWTKeyCollection?

        init(_ material: Material) { self.material = material }

        func collection() async -> JWTKeyCollection {
            if let keys { return keys }
            let made = JWTKeyCollection()
            switch material {
            case .hmac(let key): await made.add(hmac: key, digestAlgorithm: .sha256)
            case .ecdsa(let key): await made.add(ecdsa: key)
            case .rsa(let key): await made.add(rsa: key, digestAlgorithm: .sha256)
            }
            keys = made
            return made
        }
    }

    /// True when `token` has the shape of a JWT (three base64url parts), so it is not looked up
    /// as a static token.
    public static func looksLikeJWT(_ token: String) -> Bool {
        token.utf8.count > 10 && token.utf8.reduce(0) { $0 + ($1 == UInt8(ascii: ".") ? 1 : 0) } == 2
    }

    /// The verified claims, or why the token was refused.
    public func verify(_ token: String, now: Date = Date()) async -> Result<Claims, AuthFailure> {
        let parts = token.split(separator: ".", omittingEmptySubsequences: false)
        guard parts.count == 3, let headerBytes = Base64URL.decode(parts[0]),
              let header = try? JSONSerialization.jsonObject(with: Data(headerBytes)) as? [String: Any]
        else { return .failure(AuthFailure(.malformed, "the token is not a JWT (header.payload.signature, base64url)")) }
        let alg = header["alg"] as? String ?? ""
        guard alg == settings.algorithm.rawValue else {
            return .failure(AuthFailure(.wrongAlgorithm, "the JWT is signed with \"\(alg)\"; this gateway accepts \(settings.algorithm.rawValue) only"))
        }
        let claims: Claims
        do {
            claims = try await keys.collection().verify(token, as: Claims.self)
        } catch let error as JWTError where error.errorType == .signatureVerificationFailed {
            return .failure(AuthFailure(.badSignature, "the JWT's signature does not verify"))
        } catch {
            return .failure(AuthFailure(.malformed, "the JWT cannot be read: \(error)"))
        }
        let leeway = Double(settings.leewaySeconds)
        guard let exp = claims.number("exp") else {
            return .failure(AuthFailure(.expired, "the JWT has no \"exp\" claim; tokens must expire"))
        }
        if now.timeIntervalSince1970 >= exp + leeway {
            return .failure(AuthFailure(.expired, "the JWT expired at \(Date(timeIntervalSince1970: exp))"))
        }
        if let nbf = claims.number("nbf"), now.timeIntervalSince1970 + leeway < nbf {
            return .failure(AuthFailure(.notYetValid, "the JWT is not valid before \(Date(timeIntervalSince1970: nbf))"))
        }
        if let issuer = settings.issuer, claims.string("iss") != issuer {
            return .failure(AuthFailure(.wrongIssuer, "the JWT's issuer is \(claims.string("iss").map { "\"\($0)\"" } ?? "missing"); expected \"\(issuer)\""))
        }
        if let audience = settings.audience, !claims.strings("aud").contains(audience) {
            return .failure(AuthFailure(.wrongAudience, "the JWT's audience does not include \"\(audience)\""))
        }
        return .success(claims)
    }

    /// Every claim of a payload, kept as JSON values: which claims matter (the role and name
    /// claims) is configuration, not a fixed struct.
    public struct Claims: JWTPayload {
        public let values: [String: ClaimValue]

        public func verify(using algorithm: some JWTAlgorithm) async throws {}

        public func string(_ name: String) -> String? {
            if case .string(let s) = values[name] { s } else { nil }
        }

        public func number(_ name: String) -> Double? {
            if case .number(let n) = values[name] { n } else { nil }
        }

        /// A string claim or an array of strings (`aud` may be either).
        public func strings(_ name: String) -> [String] {
            switch values[name] {
            case .string(let s): [s]
            case .strings(let a): a
            default: []
            }
        }

        struct Key: CodingKey {
            var stringValue: String
            var intValue: Int? { nil }
            init(stringValue: String) { self.stringValue = stringValue }
            init?(intValue: Int) { nil }
        }

        public init(from decoder: any Decoder) throws {
            let c = try decoder.container(keyedBy: Key.self)
            var values: [String: ClaimValue] = [:]
            for key in c.allKeys {
                if let s = try? c.decode(String.self, forKey: key) {
                    values[key.stringValue] = .string(s)
                } else if let n = try? c.decode(Double.self, forKey: key) {
                    values[key.stringValue] = .number(n)
                } else if let a = try? c.decode([String].self, forKey: key) {
                    values[key.stringValue] = .strings(a)
                } else {
                    values[key.stringValue] = .other
                }
            }
            self.values = values
        }

        public func encode(to encoder: any Encoder) throws {
            var c = encoder.container(keyedBy: Key.self)
            for (k, v) in values {
                switch v {
                case .string(let s): try c.encode(s, forKey: Key(stringValue: k))
                case .number(let n): try c.encode(n, forKey: Key(stringValue: k))
                case .strings(let a): try c.encode(a, forKey: Key(stringValue: k))
                case .other: break
                }
            }
        }
    }

    public enum ClaimValue: Sendable, Equatable {
        case string(String), number(Double), strings([String]), other
    }
}

/// A JWT key that cannot be used.
public struct AuthKeyError: Error, Sendable, CustomStringConvertible {
    public let message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}

enum Base64URL {
    static func decode<S: StringProtocol>(_ text: S) -> [UInt8]? {
        var s = text.replacingOccurrences(of: "-", with: "+").replacingOccurrences(of: "_", with: "/")
        while s.utf8.count % 4 != 0 { s += "=" }
        return Data(base64Encoded: s).map { [UInt8]($0) }
    }
}
