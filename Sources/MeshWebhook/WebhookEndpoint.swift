import CCurl
import Foundation
import Logging
import MeshCore
import MeshRouting
import Synchronization

/// The runtime of one webhook connector: builds each request (CloudEvents mode, headers,
/// signature), holds the endpoint's concurrency limit, runs the transfer on the shared curl
/// thread, and turns the answer into success or a `DeliveryError` the route's policy acts on.
/// Every route destination that names the connector shares it.
final class WebhookEndpoint: Sendable {
    let name: String
    let config: WebhookConfig
    let spec: ConnectorSpec
    private let loop: CurlLoop
    private let limit: TransferLimit
    private let logger: Logger
    private let fixedHeaders: HeaderLines
    private let batcher: WebhookBatcher?
    /// `config.redactedURL`, worked out once: errors and the status page name the url.
    private let redactedURL: String
    private let target: TransferTarget
    let stats = Mutex(Stats())

    struct Stats {
        var requests = 0
        var delivered = 0
        var failed = 0
        var lastStatus: Int?
        var lastError: String?
        var lastOK: Bool?
        var lastSuccess: Date?
        var lastFailure: Date?
        /// Route destinations using this endpoint right now.
        var users = 0
    }

    init(spec: ConnectorSpec, config: WebhookConfig, loop: CurlLoop, logger: Logger) {
        self.name = spec.name
        self.spec = spec
        self.config = config
        self.loop = loop
        self.logger = logger
        limit = loop.makeLimit(config.concurrency)
        var fixed = HeaderLines()
        for h in config.headers { fixed.append("\(h.name): ", h.value) }
        fixed.append(line: "Expect:")  // no 100-continue round trip before each body
        fixedHeaders = fixed
        redactedURL = config.redactedURL
        target = TransferTarget(url: config.url, options: config.transfer)
        batcher = config.mode == .batch ? WebhookBatcher(size: config.batchSize, linger: config.batchLinger) : nil
    }

    var waiting: Int { limit.waiting }

    func deliver(_ event: Event) async throws(DeliveryError) {
        switch config.mode {
        case .binary:
            var headers = HeaderLines(capacity: 384 + fixedHeaders.bytes.count)
            CloudEventsHTTPEncoding.binaryHeaders(event, into: &headers)
            try await post(event.data, headers: headers, messageID: event.id, count: 1)
        case .structured:
            var body: [UInt8] = []
            body.reserveCapacity(event.data.count + 256)
            CloudEventsHTTPEncoding.structured(event, into: &body)
            try await post(body, contentType: CloudEventsHTTPEncoding.structuredContentType, messageID: event.id, count: 1)
        case .batch:
            let error = await batcher!.submit(event) { [self] events async -> DeliveryError? in
                do throws(DeliveryError) {
                    try await post(CloudEventsHTTPEncoding.batch(events), contentType: CloudEventsHTTPEncoding.batchContentType,
                                   messageID: WebhookBatcher.messageID(events), count: events.count)
                    return nil
                } catch { return error }
            }
            if let error { throw error }
        }
    }

    private func post(_ body: [UInt8], contentType: String, messageID: String, count: Int) async throws(DeliveryError) {
        var headers = HeaderLines(capacity: 128 + fixedHeaders.bytes.count)
        headers.append("Content-Type: ", contentType)
        try await post(body, headers: headers, messageID: messageID, count: count)
    }

    /// One request under the concurrency limit. `messageID` is the Standard Webhooks
    /// `webhook-id`: the event id, the same on every retry so receivers can de-duplicate.
    private func post(_ body: [UInt8], headers: HeaderLines, messageID: String, count: Int) async throws(DeliveryError) {
        var lines = headers
        lines.append(contentsOf: fixedHeaders)
        let outcome: CurlOutcome
        if let signer = config.signer {
            // Signed when sent: the timestamp is taken once a slot is free, not before a wait.
            guard let slot = await limit.acquire() else { throw DeliveryError("cancelled while waiting for a free connection", retryable: true) }
            let now = Int64(Date().timeIntervalSince1970)
            for (n, v) in signer.headers(id: messageID, timestamp: now, body: body) { lines.append("\(n): ", v) }
            outcome = await loop.perform(CurlRequest(target: target, headers: lines, body: body), limit: limit, slot: slot)
        } else {
            // Queued with the limit if every slot is taken: the curl thread starts it when one frees.
            outcome = await loop.perform(CurlRequest(target: target, headers: lines, body: body), limit: limit)
        }
        let error = classify(outcome)
        stats.withLock { s in
            s.requests += 1
            if case .response(let status, _, _) = outcome { s.lastStatus = status }
            if let error {
                s.failed += count
                s.lastOK = false
                s.lastError = error.message
                s.lastFailure = Date()
            } else {
                s.delivered += count
                s.lastOK = true
                s.lastSuccess = Date()
            }
        }
        if let error { throw error }
    }

    /// 2xx: done. Other statuses go to the route's policy with the status, `Retry-After` and the
    /// start of the body (which of them retry is `retry.retry_on`: 5xx, 429, 425 and 408 by
    /// default; the rest are dead-lettered at once). Timeouts and connection errors carry no
    /// status, so the policy always retries them; a refused private address or a malformed url
    /// never succeeds on retry and is marked so.
    func classify(_ outcome: CurlOutcome) -> DeliveryError? {
        let url = redactedURL
        switch outcome {
        case .response(let status, let retryAfter, let body):
            if (200..<300).contains(status) { return nil }
            let snippet = body.isEmpty ? nil : String(decoding: body, as: UTF8.self)
            return DeliveryError("HTTP \(status) from \(url)", status: status, retryAfter: retryAfter.flatMap { RetryAfter.parse($0) },
                                 response: snippet)
        case .failed(let code, let message, let refused):
            if refused {
                return DeliveryError("\(url) resolves only to private, loopback or link-local addresses, which deny_private refuses", retryable: false)
            }
            let c = CURLcode(UInt32(code))
            if c == CURLE_OPERATION_TIMEDOUT { return DeliveryError("timed out: \(message) (\(url))") }
            let permanent: Set<CURLcode> = [CURLE_URL_MALFORMAT, CURLE_UNSUPPORTED_PROTOCOL, CURLE_BAD_FUNCTION_ARGUMENT]
            return DeliveryError("cannot reach \(url): \(message)", retryable: permanent.contains(c) ? false : nil)
        case .cancelled:
            return DeliveryError("cancelled", retryable: true)
        }
    }

    var status: WebhookConnectorStatus {
        let s = stats.withLock { $0 }
        let inFlight = limit.inFlight
        let state: WebhookConnectorStatus.State = s.lastOK == false ? .failing : (inFlight > 0 ? .delivering : .idle)
        return WebhookConnectorStatus(name: name, url: redactedURL, mode: config.mode.rawValue, state: state, inFlight: inFlight,
                                      waiting: limit.waiting, concurrency: config.concurrency, requests: s.requests,
                                      delivered: s.delivered, failed: s.failed, lastStatus: s.lastStatus, lastError: s.lastError,
                                      lastSuccess: s.lastSuccess, lastFailure: s.lastFailure, destinations: s.users)
    }
}

extension CURLcode: @retroactive Hashable {
    public func hash(into h: inout Hasher) { h.combine(rawValue) }
}

/// One row of `GET /v1/connectors` for a webhook connector. Never holds secrets.
public struct WebhookConnectorStatus: Sendable, Equatable {
    public enum State: String, Sendable {
        /// Nothing in flight and the last request (if any) succeeded.
        case idle
        case delivering
        /// The last request failed; `lastError` says why.
        case failing
    }
    public let name: String
    /// The url with any user information replaced by `***`.
    public let url: String
    public let mode: String
    public let state: State
    public let inFlight: Int
    /// Deliveries waiting for a free slot under `concurrency`.
    public let waiting: Int
    public let concurrency: Int
    public let requests: Int
    /// Events delivered (2xx) and failed attempts, counted per event.
    public let delivered: Int
    public let failed: Int
    public let lastStatus: Int?
    public let lastError: String?
    public let lastSuccess: Date?
    public let lastFailure: Date?
    /// Route destinations currently using the connector.
    public let destinations: Int
}
