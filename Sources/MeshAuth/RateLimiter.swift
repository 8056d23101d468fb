import Synchronization

/// One token bucket per identity name. A bucket holds up to `burst` events and refills at
/// `eventsPerSecond`; a request of n events takes n at once or nothing, so a batch is admitted
/// or refused whole. A Mutex, not an actor: it is taken on the event loop for every publish and
/// holds for a few arithmetic operations.
final class RateLimiter: Sendable {
    private struct Bucket {
        var rate: PublishRate
        var tokens: Double
        var updated: ContinuousClock.Instant
    }

    private let buckets = Mutex<[String: Bucket]>([:])

    /// Nil when admitted; otherwise how long until `count` events would be.
    func admit(_ identity: Identity, count: Int, now: ContinuousClock.Instant = .now) -> RateLimited? {
        guard let rate = identity.rate else { return nil }
        return buckets.withLock { buckets -> RateLimited? in
            var b = buckets[identity.name] ?? Bucket(rate: rate, tokens: Double(rate.burst), updated: now)
            if b.rate != rate {
                b = Bucket(rate: rate, tokens: min(b.tokens, Double(rate.burst)), updated: b.updated)
            }
            let elapsed = now - b.updated
            let seconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
            b.tokens = min(Double(rate.burst), b.tokens + seconds * rate.eventsPerSecond)
            b.updated = now
            defer { buckets[identity.name] = b }
            let need = Double(count)
            if b.tokens >= need {
                b.tokens -= need
                return nil
            }
            // A request larger than the burst can never pass; it waits for a full bucket anyway,
            // and the message says why.
            let missing = min(need, Double(rate.burst)) - b.tokens
            let wait = max(1, Int((missing / rate.eventsPerSecond * 1000).rounded(.up)))
            return RateLimited(identity: identity.name, retryAfterMilliseconds: wait, rate: rate)
        }
    }
}
