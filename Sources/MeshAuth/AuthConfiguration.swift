import MeshCore

/// The `auth:` section of meshgate.yaml, validated. Everything but `enabled` can change on a
/// reload (SIGHUP); whether authentication is on is fixed for the life of the process.
public struct AuthConfiguration: Sendable, Equatable {
    public var enabled = false
    public var tokens: [StaticToken] = []
    /// ACLs a JWT names in its role claim.
    public var roles: [String: Grant] = [:]
    public var jwt: JWTSettings?

    public init(enabled: Bool = false, tokens: [StaticToken] = [], roles: [String: Grant] = [:], jwt: JWTSettings? = nil) {
        self.enabled = enabled
        self.tokens = tokens
        self.roles = roles
        self.jwt = jwt
    }

    /// What a token or role allows.
    public struct Grant: Sendable, Equatable {
        public var publish: TopicACL
        public var subscribe: TopicACL
        public var admin: Bool
        public var rate: PublishRate?

        public init(publish: TopicACL = .nothing, subscribe: TopicACL = .nothing, admin: Bool = false, rate: PublishRate? = nil) {
            self.publish = publish
            self.subscribe = subscribe
            self.admin = admin
            self.rate = rate
        }

        func identity(named name: String) -> Identity {
            Identity(name: name, publish: publish, subscribe: subscribe, admin: admin, rate: rate)
        }
    }

    /// A static bearer token: only its SHA-256 is kept (`meshgate auth hash-token` prints it).
    public struct StaticToken: Sendable, Equatable {
        public var name: String
        /// 32 bytes.
        public var sha256: [UInt8]
        public var grant: Grant

        public init(name: String, sha256: [UInt8], grant: Grant) {
            self.name = name
            self.sha256 = sha256
            self.grant = grant
        }
    }

    public struct JWTSettings: Sendable, Equatable {
        public enum Algorithm: String, Sendable, Equatable, CaseIterable {
            case hs256 = "HS256", es256 = "ES256", rs256 = "RS256"
        }
        public var algorithm: Algorithm
        /// The HS256 shared secret, or the ES256 / RS256 public key in PEM.
        public var key: String
        /// When set, `iss` must equal it.
        public var issuer: String?
        /// When set, `aud` must contain it.
        public var audience: String?
        /// The claim naming the role whose ACL the token gets.
        public var roleClaim = "role"
        /// The claim naming the identity (in logs and metrics).
        public var nameClaim = "sub"
        /// Clock skew tolerated on `exp` and `nbf`.
        public var leewaySeconds = 0

        public init(algorithm: Algorithm, key: String, issuer: String? = nil, audience: String? = nil) {
            self.algorithm = algorithm
            self.key = key
            self.issuer = issuer
            self.audience = audience
        }
    }
}
