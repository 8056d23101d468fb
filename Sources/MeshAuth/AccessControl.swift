import Foundation
import MeshCore
import Synchronization

/// Authentication and authorization for every listener: turns a presented credential into an
/// `Identity`, checks operations against its ACLs, meters its publish rate, and counts every
/// refusal. One instance per gateway, shared by HTTP, TCP and bridge ingress; `reload` swaps the
/// tokens, roles and JWT key atomically and tells the listeners, which re-check live connections.
public final class AccessControl: Sendable {
    /// Fixed for the life of the process.
    public let enabled: Bool
    private let state: Mutex<Snapshot>
    private let limiter = RateLimiter()
    private let observers = Mutex<[@Sendable () -> Void]>([])
    public let metrics = AuthMetrics()

    struct Snapshot: Sendable {
        var configuration: AuthConfiguration
        var jwt: JWTVerifier?
        var generation = 1
    }

    /// Authentication off: every credential (or none) is `Identity.anonymous`.
    public static let disabled = AccessControl(disabled: ())

    private init(disabled: Void) {
        enabled = false
        state = Mutex(Snapshot(configuration: AuthConfiguration(), jwt: nil))
    }

    /// Disabled when `configuration.enabled` is false; throws when the JWT key is unusable.
    public init(_ configuration: AuthConfiguration) throws(AuthKeyError) {
        enabled = configuration.enabled
        let jwt = try configuration.jwt.map { s throws(AuthKeyError) in try JWTVerifier(s) }
        state = Mutex(Snapshot(configuration: configuration, jwt: jwt))
    }

    /// Increments on every successful reload.
    public var generation: Int { state.withLock { $0.generation } }
    public var configuration: AuthConfiguration { state.withLock { $0.configuration } }

    /// Replaces tokens, roles and the JWT key, then calls every observer (listeners re-check their
    /// live connections). `enabled` cannot change here.
    public func reload(_ configuration: AuthConfiguration) throws(AuthKeyError) {
        guard enabled else { return }
        let jwt = try configuration.jwt.map { s throws(AuthKeyError) in try JWTVerifier(s) }
        state.withLock {
            $0.configuration = configuration
            $0.configuration.enabled = true
            $0.jwt = jwt
            $0.generation += 1
        }
        for observer in observers.withLock({ $0 }) { observer() }
    }

    /// `observer` runs after each reload.
    public func onReload(_ observer: @escaping @Sendable () -> Void) {
        observers.withLock { $0.append(observer) }
    }

    // MARK: Authentication

    /// The identity of a static token, decided without suspending; nil when the credential is a
    /// JWT, which `authenticate` verifies.
    public func authenticateNow(_ credential: String?, record: Bool = true) -> Result<Identity, AuthFailure>? {
        guard enabled else { return .success(.anonymous) }
        guard let credential, !credential.isEmpty else {
            return recorded(.failure(AuthFailure(.missing, "no credential was presented; send Authorization: Bearer <token>")), record)
        }
        let hash = TokenHash.sha256(credential)
        let (tokens, jwt) = state.withLock { ($0.configuration.tokens, $0.jwt) }
        // Every token is compared, in constant time, so timing tells nothing about which matched.
        var match: AuthConfiguration.StaticToken?
        for t in tokens where TokenHash.constantTimeEqual(t.sha256, hash) && match == nil { match = t }
        if let match { return .success(match.grant.identity(named: match.name)) }
        if jwt != nil, JWTVerifier.looksLikeJWT(credential) { return nil }
        return recorded(.failure(AuthFailure(.unknownToken, "the token is not one this gateway accepts")), record)
    }

    /// The identity of any credential: a static token, or a JWT whose role claim names a
    /// configured role. `record: false` for re-checks after a reload, which are not new attempts.
    public func authenticate(_ credential: String?, record: Bool = true, now: Date = Date()) async -> Result<Identity, AuthFailure> {
        if let decided = authenticateNow(credential, record: record) { return decided }
        let (jwt, roles) = state.withLock { ($0.jwt, $0.configuration.roles) }
        guard let jwt, let credential else { return .failure(AuthFailure(.unknownToken, "the token is not one this gateway accepts")) }
        switch await jwt.verify(credential, now: now) {
        case .failure(let failure):
            return recorded(.failure(failure), record)
        case .success(let claims):
            let claim = jwt.settings.roleClaim
            guard let role = claims.string(claim) else {
                return recorded(.failure(AuthFailure(.unknownRole, "the JWT has no \"\(claim)\" claim naming a role")), record)
            }
            guard let grant = roles[role] else {
                return recorded(.failure(AuthFailure(.unknownRole, "the JWT's role \"\(role)\" is not configured")), record)
            }
            let name = claims.string(jwt.settings.nameClaim) ?? role
            return .success(grant.identity(named: name))
        }
    }

    /// Counts a connection refused for presenting no credential where the refusal happened
    /// outside `authenticate` (the TCP state machine refuses a HELLO without a token itself).
    public func noteMissingCredential() {
        if enabled { metrics.failed(.missing) }
    }

    private func recorded(_ result: Result<Identity, AuthFailure>, _ record: Bool) -> Result<Identity, AuthFailure> {
        if record, case .failure(let f) = result { metrics.failed(f.reason) }
        return result
    }

    // MARK: Authorization

    /// Nil when `identity` may publish to every topic of `topics`; a batch is allowed or refused whole.
    public func checkPublish(_ identity: Identity, _ topics: some Sequence<Topic>) -> AccessDenied? {
        guard enabled else { return nil }
        for topic in topics where !identity.mayPublish(topic) {
            metrics.denied(.publish)
            return AccessDenied(.publish, identity: identity.name, subject: topic.name)
        }
        return nil
    }

    public func checkSubscribe(_ identity: Identity, _ pattern: TopicPattern) -> AccessDenied? {
        guard enabled, !identity.maySubscribe(pattern) else { return nil }
        metrics.denied(.subscribe)
        return AccessDenied(.subscribe, identity: identity.name, subject: pattern.text)
    }

    /// For reading a topic (long-poll fetch, group offsets): the subscribe right on it.
    public func checkRead(_ identity: Identity, _ topics: some Sequence<Topic>) -> AccessDenied? {
        guard enabled else { return nil }
        for topic in topics where !identity.subscribe.permits(topic) {
            metrics.denied(.subscribe)
            return AccessDenied(.subscribe, identity: identity.name, subject: topic.name)
        }
        return nil
    }

    public func checkAdmin(_ identity: Identity, _ endpoint: String) -> AccessDenied? {
        guard enabled, !identity.admin else { return nil }
        metrics.denied(.admin)
        return AccessDenied(.admin, identity: identity.name, subject: endpoint)
    }

    /// Takes `count` events from the identity's publish rate; nil when admitted.
    public func admitPublish(_ identity: Identity, count: Int) -> RateLimited? {
        guard enabled, let refused = limiter.admit(identity, count: count) else { return nil }
        metrics.rateLimited()
        return refused
    }
}

/// Counts of refusals, read at scrape time (`meshgate_auth_failures_total{reason}`,
/// `meshgate_acl_denials_total{operation}`, `meshgate_rate_limited_total`).
public final class AuthMetrics: Sendable {
    private let counts = Mutex<(failures: [AuthFailure.Reason: Int], denials: [AccessDenied.Operation: Int], rateLimited: Int)>(([:], [:], 0))

    func failed(_ reason: AuthFailure.Reason) { counts.withLock { $0.failures[reason, default: 0] += 1 } }
    func denied(_ operation: AccessDenied.Operation) { counts.withLock { $0.denials[operation, default: 0] += 1 } }
    func rateLimited() { counts.withLock { $0.rateLimited += 1 } }

    public var failures: [AuthFailure.Reason: Int] { counts.withLock { $0.failures } }
    public var denials: [AccessDenied.Operation: Int] { counts.withLock { $0.denials } }
    public var rateLimitedCount: Int { counts.withLock { $0.rateLimited } }
}
