import CMeshSupport
import CMosquitto
import CMosquittoLoader
import Foundation
import Logging
import MeshCore
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// Stores a burst of received messages. Called on the client's loop thread; returns only once the
/// messages are durable (true), or false when they could not be stored and must not be acknowledged.
protocol MQTTMessageSink: Sendable {
    func store(_ messages: [MQTTMessage]) -> Bool
}

/// What `GET /v1/connectors` shows for one MQTT connector.
public struct MQTTConnectionStatus: Sendable, Equatable {
    public enum State: String, Sendable {
        /// Not connected yet, or reconnecting after a failure (see `lastError`).
        case connecting
        case connected
        /// The broker refused the connection (bad credentials, not authorised, bad client id).
        case refused
        case stopped
    }
    public var state: State = .connecting
    public var lastError: String?
    public var lastErrorAt: Date?
    public var connectedSince: Date?
    /// Successful connections so far (1 + reconnects).
    public var connects = 0
    /// Attempts since the last successful connection.
    public var failedAttempts = 0
    public var nextAttemptAt: Date?
    public var subscriptions: [String] = []
    /// Messages received from the broker, and those stored durably in the log (both as events).
    public var received = 0
    public var stored = 0
    /// Egress publishes acknowledged by the broker, and failed ones.
    public var published = 0
    public var publishFailures = 0
}

/// One libmosquitto client with its own network-loop thread.
///
/// Every libmosquitto call on the handle happens on that thread: requests from Swift (publish,
/// subscription changes, stop) are queued under a mutex and the thread is woken through a pipe. The
/// thread runs its own loop (poll, `mosquitto_loop_read`, `mosquitto_loop_write`, `mosquitto_loop_misc`)
/// with the handle in threaded mode, so libmosquitto writes queued packets only when this loop calls
/// `mosquitto_loop_write`. That is what makes the ingress guarantee hold: after a burst of PUBLISH
/// packets is read, their PUBACKs sit in libmosquitto's queue until the burst is durable in the log;
/// only then is anything written to the socket (docs/connectors.md, "When the PUBACK goes out").
final class MQTTClient: @unchecked Sendable {
    // @unchecked: `mosq` and every `loop…` field are touched only on the loop thread (after `init` and
    // before the thread ends); all state shared with other threads lives in `shared`, a Mutex.
    let name: String
    let settings: MQTTSettings
    private let logger: Logger
    private let sink: (any MQTTMessageSink)?

    /// One message of a `PublishGroup`, queued for the loop thread.
    struct OutgoingRequest: Sendable {
        let message: MQTTMessage
        let group: PublishGroup
        let index: Int

        func resolve(_ result: Result<Void, MQTTPublishFailure>) { group.resolve(index, result) }
    }

    private struct Shared {
        var requests: [OutgoingRequest] = []
        var wanted: Set<String> = []
        var stopping = false
        var wakePending = false
        var status = MQTTConnectionStatus()
        var stopWaiters: [CheckedContinuation<Void, Never>] = []
        var finished = false
    }
    private let shared = Mutex(Shared())

    private let wakeRead: Int32
    private let wakeWrite: Int32
    private var mosq: OpaquePointer?
    // Loop-thread state.
    private var loopConnected = false
    private var loopSocketUp = false
    private var loopBatch: [MQTTMessage] = []
    private var loopInflight: [Int32: OutgoingRequest] = [:]
    private var loopPublished = 0
    private var loopPublishFailures = 0
    private var loopSubscribed: Set<String> = []
    private var loopNextAttempt = ContinuousClock.now
    private var loopAttempt = 0
    private var loopLastLibraryError: String?
    private var loopRefused = false

    static let maxBurst = 4096

    init(name: String, settings: MQTTSettings, sink: (any MQTTMessageSink)?, logger: Logger) {
        precondition(mosquittoUnavailable == nil, "an MQTT client needs libmosquitto: \(mosquittoUnavailable ?? "")")
        self.name = name
        self.settings = settings
        self.sink = sink
        self.logger = logger
        var fds: [Int32] = [0, 0]
        if pipe(&fds) != 0 { fatalError("pipe() failed: \(errno)") }
        for fd in fds { _ = fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK); _ = fcntl(fd, F_SETFD, FD_CLOEXEC) }
        wakeRead = fds[0]
        wakeWrite = fds[1]
    }

    deinit {
        close(wakeRead)
        close(wakeWrite)
    }

    // MARK: API (any thread)

    func start() {
        // The kernel keeps the first 15 bytes of a thread's name: "mg-mqtt-" and 7 of the connector's.
        startThread(named: "mg-mqtt-\(name)") { [self] in self.run() }
    }

    /// Disconnects cleanly (unless a burst could not be stored), stops the loop and frees the handle.
    func stop() async {
        await withCheckedContinuation { (c: CheckedContinuation<Void, Never>) in
            let done = shared.withLock { s -> Bool in
                if s.finished { return true }
                s.stopping = true
                s.stopWaiters.append(c)
                return false
            }
            if done { c.resume() } else { wake() }
        }
    }

    var isStopping: Bool { shared.withLock { $0.stopping } }

    var status: MQTTConnectionStatus { shared.withLock { $0.status } }

    /// The ingress filters to be subscribed (at `settings.subscribeQoS`).
    func setSubscriptions(_ filters: Set<String>) {
        let changed = shared.withLock { s -> Bool in
            if s.wanted == filters { return false }
            s.wanted = filters
            return true
        }
        if changed { wake() }
    }

    /// Publishes `messages` in order, all queued to the loop thread at once (one lock, one wake-up),
    /// so they go out back to back with up to `publish_inflight` of them unacknowledged. The completion
    /// runs once, when every message is settled: the broker acknowledged it (QoS 1: PUBACK, QoS 2:
    /// PUBCOMP, QoS 0: once written) or it failed; it then carries the failure of the earliest
    /// message that failed. It fails immediately when not connected.
    func publish(_ messages: [MQTTMessage], completion: @escaping @Sendable (Result<Void, MQTTPublishFailure>) -> Void) {
        if messages.isEmpty { return completion(.success(())) }
        let group = PublishGroup(count: messages.count, completion: completion)
        let (rejected, wakeNow) = shared.withLock { s -> (String?, Bool) in
            if s.stopping { return ("the connector is stopping", false) }
            if s.status.state != .connected {
                return ("not connected to \(settings.host):\(settings.port)" + (s.status.lastError.map { ": \($0)" } ?? ""), false)
            }
            s.requests.reserveCapacity(s.requests.count + messages.count)
            for (i, m) in messages.enumerated() { s.requests.append(OutgoingRequest(message: m, group: group, index: i)) }
            if s.wakePending { return (nil, false) }
            s.wakePending = true
            return (nil, true)
        }
        if let rejected { return completion(.failure(MQTTPublishFailure(reason: rejected, reasonCode: nil))) }
        if wakeNow { wake() }
    }

    func publish(_ messages: [MQTTMessage]) async -> Result<Void, MQTTPublishFailure> {
        await withCheckedContinuation { c in publish(messages) { c.resume(returning: $0) } }
    }

    func publish(_ message: MQTTMessage) async -> Result<Void, MQTTPublishFailure> {
        await publish([message])
    }

    private func wake() {
        var b: UInt8 = 1
        _ = write(wakeWrite, &b, 1)
    }

    // MARK: The loop thread

    private func run() {
        let me = Unmanaged.passUnretained(self).toOpaque()
        guard let m = mosquitto_new(settings.clientID, settings.cleanSession, me) else {
            fail("cannot create a libmosquitto client (out of memory or invalid client id)", kind: .config, state: .refused)
            finish()
            return
        }
        mosq = m
        configure(m)
        let clock = ContinuousClock()
        var buffer = [UInt8](repeating: 0, count: 256)
        while true {
            let (requests, wanted, stopping) = shared.withLock { s -> ([OutgoingRequest], Set<String>, Bool) in
                defer { s.requests.removeAll(keepingCapacity: true); s.wakePending = false }
                return (s.requests, s.wanted, s.stopping)
            }
            if stopping {
                for r in requests { r.resolve(.failure(MQTTPublishFailure(reason: "the connector is stopping", reasonCode: nil))) }
                break
            }
            for r in requests { sendPublish(m, r) }
            flushPublishCounters()
            if loopConnected { syncSubscriptions(m, wanted) }
            if !loopSocketUp && clock.now >= loopNextAttempt { connect(m) }

            // Wait for the socket, the wake pipe, a reconnect time or a keep-alive tick.
            let fd = mosquitto_socket(m)
            var fds = [pollfd(fd: wakeRead, events: Int16(POLLIN), revents: 0)]
            if loopSocketUp && fd >= 0 {
                var events = Int16(POLLIN)
                if mosquitto_want_write(m) { events |= Int16(POLLOUT) }
                fds.append(pollfd(fd: fd, events: events, revents: 0))
            }
            var timeout: Int32 = 1000
            if !loopSocketUp {
                let left = loopNextAttempt - clock.now
                timeout = Int32(clamping: max(0, min(1000, left.components.seconds * 1000 + left.components.attoseconds / 1_000_000_000_000_000)))
            }
            let n = poll(&fds, nfds_t(fds.count), timeout)
            if n < 0 && errno != EINTR { logger.error("mqtt \(name): poll failed: \(errno)") }
            if fds[0].revents != 0 { while read(wakeRead, &buffer, buffer.count) > 0 {} }
            if fds.count > 1 && fds[1].revents != 0 {
                if fds[1].revents & Int16(POLLIN | POLLERR | POLLHUP) != 0 { readBurst(m, fd: fd) }
                if !loopBatch.isEmpty {
                    // The burst's acknowledgements wait in libmosquitto's queue until this returns.
                    let batch = loopBatch
                    loopBatch.removeAll(keepingCapacity: true)
                    let durable = sink?.store(batch) ?? true
                    if !durable {
                        // Not stored (the gateway is stopping): drop the connection without writing,
                        // so none of these messages is acknowledged; the broker redelivers them.
                        abandonConnection(m)
                        break
                    }
                    shared.withLock { $0.status.stored += batch.count }
                }
            }
            if loopSocketUp && mosquitto_want_write(m) { flush(m) }
            if loopSocketUp { handle(m, mosquitto_loop_misc(m), during: "keep-alive") }
            flushPublishCounters()
        }
        if loopSocketUp && !isAbandoned {
            mosquitto_disconnect_v5(m, 0, nil)
            for _ in 0..<10 where mosquitto_want_write(m) {
                if mosquitto_loop_write(m, 1) != MOSQ_ERR_SUCCESS.rawValue { break }
            }
        }
        failInflight("the connector stopped")
        flushPublishCounters()
        mosquitto_destroy(m)
        mosq = nil
        shared.withLock { s in
            s.status.state = .stopped
            s.status.connectedSince = nil
        }
        finish()
    }

    private var isAbandoned = false

    /// Writes what libmosquitto queued. It writes each packet with its own `write`, and the socket has
    /// TCP_NODELAY, so while egress publishes stream out every one would leave as its own segment
    /// (a send path through the stack per message, here and in the broker). Corked for the duration
    /// of the write, the kernel packs them into full segments; uncorking sends the rest at once, so
    /// nothing waits.
    private func flush(_ m: OpaquePointer) {
        let fd = mosquitto_socket(m)
        let cork = fd >= 0 && !loopInflight.isEmpty
        var on: Int32 = 1
        if cork { _ = setsockopt(fd, Int32(IPPROTO_TCP), TCP_CORK, &on, socklen_t(MemoryLayout<Int32>.size)) }
        handle(m, mosquitto_loop_write(m, 1), during: "write")
        var off: Int32 = 0
        if cork && mosquitto_socket(m) == fd { _ = setsockopt(fd, Int32(IPPROTO_TCP), TCP_CORK, &off, socklen_t(MemoryLayout<Int32>.size)) }
    }

    private func finish() {
        let waiters = shared.withLock { s -> [CheckedContinuation<Void, Never>] in
            s.finished = true
            defer { s.stopWaiters = [] }
            return s.stopWaiters
        }
        for w in waiters { w.resume() }
    }

    /// Reads every packet that is ready (bounded), collecting PUBLISHes into `loopBatch`.
    private func readBurst(_ m: OpaquePointer, fd: Int32) {
        var probe = [pollfd(fd: fd, events: Int16(POLLIN), revents: 0)]
        repeat {
            let rc = mosquitto_loop_read(m, 1)
            handle(m, rc, during: "read")
            guard loopSocketUp, rc == MOSQ_ERR_SUCCESS.rawValue else { return }
            probe[0].revents = 0
        } while loopBatch.count < Self.maxBurst && poll(&probe, 1, 0) > 0 && probe[0].revents & Int16(POLLIN) != 0
        // A broker that leaves Nagle on (mosquitto's default, `set_tcp_nodelay false`) holds the
        // PUBACK of a batch's last publish until its previous packet is acknowledged: without this,
        // every egress batch ended with a 40 ms stall.
        mesh_acknowledge_now(fd)
    }

    private func abandonConnection(_ m: OpaquePointer) {
        isAbandoned = true
        let fd = mosquitto_socket(m)
        if fd >= 0 { shutdown(fd, Int32(SHUT_RDWR)) }
        loopSocketUp = false
    }

    private func configure(_ m: OpaquePointer) {
        mosquitto_threaded_set(m, true)
        mosquitto_int_option(m, MOSQ_OPT_PROTOCOL_VERSION, settings.protocolVersion == .v5 ? MQTT_PROTOCOL_V5 : MQTT_PROTOCOL_V311)
        mosquitto_int_option(m, MOSQ_OPT_TCP_NODELAY, 1)
        if settings.protocolVersion == .v5 {
            mosquitto_int_option(m, MOSQ_OPT_RECEIVE_MAXIMUM, settings.maxInflight)
            mosquitto_int_option(m, MOSQ_OPT_SEND_MAXIMUM, settings.publishInflight)
        } else {
            // 3.1.1 has no receive maximum (the broker's own limit applies); this is the send maximum.
            mosquitto_max_inflight_messages_set(m, UInt32(settings.publishInflight))
        }
        if settings.username != nil || settings.password != nil {
            mosquitto_username_pw_set(m, settings.username, settings.password)
        }
        if settings.tls {
            if settings.caFile == nil { mosquitto_int_option(m, MOSQ_OPT_TLS_USE_OS_CERTS, 1) }
            let rc = mosquitto_tls_set(m, settings.caFile, nil, settings.certFile, settings.keyFile, nil)
            if rc != MOSQ_ERR_SUCCESS.rawValue {
                fail("TLS set-up failed: \(errorText(rc)) (check ca_file, cert_file and key_file)", kind: .tls, state: .connecting)
            }
            if settings.tlsInsecure { mosquitto_tls_insecure_set(m, true) }
        }
        mosquitto_connect_v5_callback_set(m) { _, obj, rc, flags, _ in
            MQTTClient.from(obj).onConnect(rc: rc, flags: flags)
        }
        mosquitto_disconnect_v5_callback_set(m) { _, obj, rc, _ in
            MQTTClient.from(obj).onDisconnect(rc: rc)
        }
        mosquitto_publish_v5_callback_set(m) { _, obj, mid, reason, _ in
            MQTTClient.from(obj).onPublish(mid: mid, reason: reason)
        }
        mosquitto_message_v5_callback_set(m) { _, obj, message, props in
            guard let message else { return }
            MQTTClient.from(obj).onMessage(message.pointee, props)
        }
        mosquitto_subscribe_v5_callback_set(m) { _, obj, _, count, granted, _ in
            guard let granted else { return }
            MQTTClient.from(obj).onSubscribe(Array(UnsafeBufferPointer(start: granted, count: Int(count))))
        }
    }

    /// libmosquitto's log lines, for the detail of connection errors (TLS above all). With a log
    /// callback set it formats every line, including a debug line for each PUBLISH sent and each
    /// PUBACK received (a `malloc` and a `vsnprintf` each), so the callback is set only while
    /// connecting: from the attempt until the CONNACK accepts the session.
    private func libraryLog(_ m: OpaquePointer, _ on: Bool) {
        guard on else { return mosquitto_log_callback_set(m, nil) }
        mosquitto_log_callback_set(m) { _, obj, level, text in
            guard let text, level & (MOSQ_LOG_ERR | MOSQ_LOG_WARNING) != 0 else { return }
            MQTTClient.from(obj).loopLastLibraryError = String(cString: text)
        }
    }

    private static func from(_ obj: UnsafeMutableRawPointer?) -> MQTTClient {
        Unmanaged<MQTTClient>.fromOpaque(obj!).takeUnretainedValue()
    }

    private func connect(_ m: OpaquePointer) {
        loopLastLibraryError = nil
        libraryLog(m, true)
        var props: OpaquePointer? = nil
        if settings.protocolVersion == .v5 && !settings.cleanSession {
            mosquitto_property_add_int32(&props, Int32(MQTT_PROP_SESSION_EXPIRY_INTERVAL.rawValue), settings.sessionExpirySeconds ?? UInt32.max)
        }
        shared.withLock { $0.status.nextAttemptAt = nil }
        let rc = mosquitto_connect_bind_v5(m, settings.host, Int32(settings.port), settings.keepAliveSeconds, nil, props)
        mosquitto_property_free_all(&props)
        if rc == MOSQ_ERR_SUCCESS.rawValue {
            loopSocketUp = true
            loopRefused = false
        } else {
            let detail = rc == MOSQ_ERR_ERRNO.rawValue ? String(cString: strerror(errno)) : errorText(rc)
            connectionFailed("cannot connect to \(settings.host):\(settings.port): \(detail)", kind: .connect)
        }
    }

    /// Schedules the next attempt: exponential backoff with "equal jitter" — half the ceiling plus a
    /// uniform random half — so that many gateways do not reconnect in step, and never in a hot loop.
    private func connectionFailed(_ message: String, kind: MQTTError.Kind) {
        loopAttempt += 1
        let base = settings.reconnectBackoff * (1 << min(loopAttempt - 1, 20))
        let ceiling = min(base, settings.reconnectMaxBackoff)
        let half = ceiling / 2
        let wait = half + .nanoseconds(Int64.random(in: 0...max(0, Self.nanos(half))))
        loopNextAttempt = ContinuousClock.now + wait
        let state: MQTTConnectionStatus.State = loopRefused ? .refused : .connecting
        fail(message, kind: kind, state: state)
        shared.withLock { s in
            s.status.failedAttempts = loopAttempt
            s.status.nextAttemptAt = Date().addingTimeInterval(Double(Self.nanos(wait)) / 1e9)
        }
    }

    private static func nanos(_ d: Duration) -> Int64 {
        let (s, a) = d.components
        return s * 1_000_000_000 + a / 1_000_000_000
    }

    private func fail(_ message: String, kind: MQTTError.Kind, state: MQTTConnectionStatus.State) {
        let repeated = shared.withLock { s -> Bool in
            let same = s.status.lastError == message
            s.status.lastError = message
            s.status.lastErrorAt = Date()
            s.status.state = state
            s.status.connectedSince = nil
            return same
        }
        // The first occurrence is an error; repeats (every reconnect attempt) are debug noise.
        if repeated { logger.debug("mqtt \(name): \(message)") } else { logger.error("mqtt \(name): \(message)", metadata: ["code": "\(kind.rawValue)"]) }
    }

    private func handle(_ m: OpaquePointer, _ rc: Int32, during what: String) {
        guard rc != MOSQ_ERR_SUCCESS.rawValue, loopSocketUp else { return }
        // libmosquitto has already called on_disconnect for lost connections in most paths; make
        // sure the state is right for the rest (e.g. a refused CONNACK, a TLS failure).
        if loopSocketUp {
            loopSocketUp = false
            let wasConnected = loopConnected
            loopConnected = false
            failInflight("connection lost")
            var reason = loopRefused ? (shared.withLock { $0.status.lastError } ?? errorText(rc)) : "\(what) failed: \(errorText(rc))"
            if !loopRefused, let lib = loopLastLibraryError { reason += " (\(lib))" }
            connectionFailed(wasConnected ? "connection to \(settings.host):\(settings.port) lost: \(reason)" : reason,
                             kind: loopRefused ? .refused : (rc == MOSQ_ERR_TLS.rawValue ? .tls : .disconnected))
        }
    }

    private func errorText(_ rc: Int32) -> String {
        if rc == MOSQ_ERR_ERRNO.rawValue { return String(cString: strerror(errno)) }
        return String(cString: mosquitto_strerror(rc))
    }

    // MARK: callbacks (on the loop thread, inside libmosquitto calls)

    private func onConnect(rc: Int32, flags: Int32) {
        if rc == 0 {
            if let m = mosq { libraryLog(m, false) }
            loopLastLibraryError = nil
            loopConnected = true
            loopAttempt = 0
            loopSubscribed = []
            shared.withLock { s in
                s.status.state = .connected
                s.status.connectedSince = Date()
                s.status.connects += 1
                s.status.failedAttempts = 0
                s.status.nextAttemptAt = nil
            }
            logger.info("mqtt \(name): connected to \(settings.host):\(settings.port)", metadata: ["session_present": "\(flags & 1 != 0)"])
            if let m = mosq { syncSubscriptions(m, shared.withLock { $0.wanted }) }
        } else {
            loopRefused = true
            let text = settings.protocolVersion == .v5 ? String(cString: mosquitto_reason_string(rc)) : String(cString: mosquitto_connack_string(rc))
            let hint = (rc == 4 || rc == 5 || rc == 0x86 || rc == 0x87) ? " (check username/password and the broker's ACL)" : ""
            fail("the broker refused the connection: \(text)\(hint)", kind: .refused, state: .refused)
        }
    }

    private func onDisconnect(rc: Int32) {
        guard loopSocketUp else { return }
        loopSocketUp = false
        let wasConnected = loopConnected
        loopConnected = false
        failInflight("connection lost")
        if loopRefused {
            connectionFailed(shared.withLock { $0.status.lastError } ?? "refused", kind: .refused)
        } else if isStopping && rc == 0 {
            return
        } else {
            var reason = rc == 0 ? "disconnected" : errorText(rc)
            if let lib = loopLastLibraryError { reason += " (\(lib))" }
            connectionFailed(wasConnected ? "connection to \(settings.host):\(settings.port) lost: \(reason)" : "cannot connect to \(settings.host):\(settings.port): \(reason)",
                             kind: rc == MOSQ_ERR_TLS.rawValue ? .tls : .disconnected)
        }
    }

    private func onMessage(_ message: mosquitto_message, _ props: OpaquePointer?) {
        var m = MQTTMessage(topic: message.topic.map { String(cString: $0) } ?? "",
                            payload: message.payload.map { Array(UnsafeRawBufferPointer(start: $0, count: Int(message.payloadlen))) } ?? [],
                            qos: message.qos, retain: message.retain)
        var p: OpaquePointer? = props
        while let prop = p {
            switch Int(mosquitto_property_identifier(prop)) {
            case Int(MQTT_PROP_USER_PROPERTY.rawValue):
                var k: UnsafeMutablePointer<CChar>? = nil
                var v: UnsafeMutablePointer<CChar>? = nil
                mosquitto_property_read_string_pair(prop, Int32(MQTT_PROP_USER_PROPERTY.rawValue), &k, &v, false)
                if let k, let v { m.userProperties.append(.init(String(cString: k), String(cString: v))) }
                free(k); free(v)
            case Int(MQTT_PROP_CONTENT_TYPE.rawValue):
                var v: UnsafeMutablePointer<CChar>? = nil
                mosquitto_property_read_string(prop, Int32(MQTT_PROP_CONTENT_TYPE.rawValue), &v, false)
                if let v { m.contentType = String(cString: v) }
                free(v)
            case Int(MQTT_PROP_RESPONSE_TOPIC.rawValue):
                var v: UnsafeMutablePointer<CChar>? = nil
                mosquitto_property_read_string(prop, Int32(MQTT_PROP_RESPONSE_TOPIC.rawValue), &v, false)
                if let v { m.responseTopic = String(cString: v) }
                free(v)
            case Int(MQTT_PROP_CORRELATION_DATA.rawValue):
                var v: UnsafeMutableRawPointer? = nil
                var len: UInt16 = 0
                mosquitto_property_read_binary(prop, Int32(MQTT_PROP_CORRELATION_DATA.rawValue), &v, &len, false)
                if let v { m.correlationData = Array(UnsafeRawBufferPointer(start: v, count: Int(len))) }
                free(v)
            default: break
            }
            p = mosquitto_property_next(prop)
        }
        loopBatch.append(m)
        shared.withLock { $0.status.received += 1 }
    }

    private func onPublish(mid: Int32, reason: Int32) {
        guard let request = loopInflight.removeValue(forKey: mid) else { return }
        if reason >= 0x80 {
            loopPublishFailures += 1
            request.resolve(.failure(MQTTPublishFailure(reason: "the broker rejected the publish: \(String(cString: mosquitto_reason_string(reason)))", reasonCode: reason)))
        } else {
            loopPublished += 1
            request.resolve(.success(()))
        }
    }

    /// Adds the acknowledgements counted since the last call to the status (one lock per loop turn).
    private func flushPublishCounters() {
        guard loopPublished != 0 || loopPublishFailures != 0 else { return }
        let (ok, failed) = (loopPublished, loopPublishFailures)
        loopPublished = 0
        loopPublishFailures = 0
        shared.withLock { s in
            s.status.published += ok
            s.status.publishFailures += failed
        }
    }

    private func onSubscribe(_ granted: [Int32]) {
        for g in granted where g >= 0x80 {
            fail("the broker refused a subscription (reason \(g)); check its ACL for client \(settings.clientID)", kind: .refused, state: .connected)
        }
    }

    // MARK: requests

    private func sendPublish(_ m: OpaquePointer, _ r: OutgoingRequest) {
        guard loopConnected else {
            return r.resolve(.failure(MQTTPublishFailure(reason: "not connected to \(settings.host):\(settings.port)", reasonCode: nil)))
        }
        let msg = r.message
        var props: OpaquePointer? = nil
        if settings.protocolVersion == .v5 {
            for p in msg.userProperties { mosquitto_property_add_string_pair(&props, Int32(MQTT_PROP_USER_PROPERTY.rawValue), p.name, p.value) }
            if let ct = msg.contentType { mosquitto_property_add_string(&props, Int32(MQTT_PROP_CONTENT_TYPE.rawValue), ct) }
            if let rt = msg.responseTopic { mosquitto_property_add_string(&props, Int32(MQTT_PROP_RESPONSE_TOPIC.rawValue), rt) }
            if let cd = msg.correlationData {
                _ = cd.withUnsafeBytes { mosquitto_property_add_binary(&props, Int32(MQTT_PROP_CORRELATION_DATA.rawValue), $0.baseAddress, UInt16(clamping: $0.count)) }
            }
        }
        var mid: Int32 = 0
        let rc = msg.payload.withUnsafeBytes { buf in
            mosquitto_publish_v5(m, &mid, msg.topic, Int32(buf.count), buf.baseAddress, msg.qos, msg.retain, props)
        }
        mosquitto_property_free_all(&props)
        if rc != MOSQ_ERR_SUCCESS.rawValue {
            loopPublishFailures += 1
            let retryable = rc == MOSQ_ERR_NO_CONN.rawValue || rc == MOSQ_ERR_CONN_LOST.rawValue || rc == MOSQ_ERR_NOMEM.rawValue
            return r.resolve(.failure(MQTTPublishFailure(reason: "publish to \(msg.topic) failed: \(errorText(rc))", reasonCode: nil, permanent: !retryable)))
        }
        loopInflight[mid] = r
    }

    private func failInflight(_ reason: String) {
        let pending = loopInflight
        loopInflight.removeAll()
        for (_, r) in pending { r.resolve(.failure(MQTTPublishFailure(reason: reason, reasonCode: nil))) }
    }

    private func syncSubscriptions(_ m: OpaquePointer, _ wanted: Set<String>) {
        guard wanted != loopSubscribed else { return }
        // MQTT 5: retain handling 1 — retained messages only for a subscription that is new to the
        // session, so resubscribing after a reconnect does not replay them.
        let options = settings.protocolVersion == .v5 ? Int32(MQTT_SUB_OPT_SEND_RETAIN_NEW.rawValue) : 0
        for filter in wanted.subtracting(loopSubscribed).sorted() {
            let rc = mosquitto_subscribe_v5(m, nil, filter, settings.subscribeQoS, options, nil)
            if rc == MOSQ_ERR_SUCCESS.rawValue { loopSubscribed.insert(filter) } else {
                fail("cannot subscribe to \(filter): \(errorText(rc))", kind: .refused, state: .connected)
            }
        }
        for filter in loopSubscribed.subtracting(wanted).sorted() {
            if mosquitto_unsubscribe_v5(m, nil, filter, nil) == MOSQ_ERR_SUCCESS.rawValue { loopSubscribed.remove(filter) }
        }
        let now = loopSubscribed.sorted()
        shared.withLock { $0.status.subscriptions = now }
    }
}

/// The messages of one `publish` call, settled one by one on the loop thread (after the call queued
/// them, nothing else touches a group); the completion runs once, when the last one is settled.
final class PublishGroup: @unchecked Sendable {
    // @unchecked: `left` and `failure` are touched only on the loop thread (see above).
    private var left: Int
    private var failure: (index: Int, failure: MQTTPublishFailure)?
    private let completion: @Sendable (Result<Void, MQTTPublishFailure>) -> Void

    init(count: Int, completion: @escaping @Sendable (Result<Void, MQTTPublishFailure>) -> Void) {
        left = count
        self.completion = completion
    }

    func resolve(_ index: Int, _ result: Result<Void, MQTTPublishFailure>) {
        if case .failure(let f) = result, index < failure?.index ?? Int.max { failure = (index, f) }
        left -= 1
        if left == 0 { completion(failure.map { .failure($0.failure) } ?? .success(())) }
    }
}

/// A failed publish. `permanent` failures are not retried by the delivery policy.
struct MQTTPublishFailure: Error, Sendable {
    let reason: String
    let reasonCode: Int32?
    var permanent = false
}

/// libmosquitto, opened and initialised once before the first client: nil, or why it cannot be.
let mosquittoUnavailable: String? = {
    if let failure = mesh_mosquitto_load() { return String(cString: failure) }
    mosquitto_lib_init()
    return nil
}()
