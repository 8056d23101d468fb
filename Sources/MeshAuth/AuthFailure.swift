/// Why a credential was refused. `reason` is the stable label of
/// `meshgate_auth_failures_total{reason}`; `message` is for the client.
public struct AuthFailure: Error, Sendable, Equatable, CustomStringConvertible {
    public enum Reason: String, Sendable, CaseIterable {
        /// No credential was presented.
        case missing
        /// Not a static token this gateway knows, nor a JWT.
        case unknownToken = "unknown_token"
        /// A JWT that cannot be parsed.
        case malformed
        /// The JWT's `alg` is not the configured one (`none` included).
        case wrongAlgorithm = "wrong_algorithm"
        case badSignature = "bad_signature"
        case expired
        case notYetValid = "not_yet_valid"
        case wrongIssuer = "wrong_issuer"
        case wrongAudience = "wrong_audience"
        /// The role claim is missing or names no configured role.
        case unknownRole = "unknown_role"
    }

    public let reason: Reason
    public let message: String

    public init(_ reason: Reason, _ message: String) {
        self.reason = reason
        self.message = message
    }

    public var description: String { message }
}

/// An operation the identity's ACL does not allow. `operation` is the label of
/// `meshgate_acl_denials_total{operation}`.
public struct AccessDenied: Error, Sendable, Equatable, CustomStringConvertible {
    public enum Operation: String, Sendable, CaseIterable {
        case publish, subscribe, admin
    }

    public let operation: Operation
    public let identity: String
    /// The topic or pattern refused; empty for admin.
    public let subject: String

    public init(_ operation: Operation, identity: String, subject: String) {
        self.operation = operation
        self.identity = identity
        self.subject = subject
    }

    public var description: String {
        switch operation {
        case .publish: "identity \"\(identity)\" may not publish to \(subject)"
        case .subscribe: "identity \"\(identity)\" may not subscribe to \(subject)"
        case .admin: "identity \"\(identity)\" may not use the admin endpoint \(subject)"
        }
    }
}

/// The identity's publish rate is spent: retry after `retryAfterMilliseconds`.
public struct RateLimited: Error, Sendable, Equatable, CustomStringConvertible {
    public let identity: String
    public let retryAfterMilliseconds: Int
    public let rate: PublishRate

    public var description: String {
        "identity \"\(identity)\" is over its publish rate of \(Self.format(rate.eventsPerSecond)) events/s (burst \(rate.burst)); retry in \(retryAfterMilliseconds) ms"
    }

    static func format(_ v: Double) -> String {
        v == v.rounded() ? String(Int(v)) : String(v)
    }
}
