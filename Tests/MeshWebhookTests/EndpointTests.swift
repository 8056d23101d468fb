import MeshTestSupport
import Foundation
import MeshCore
import MeshRouting
import Synchronization
import Testing
@testable import MeshWebhook

/// One endpoint against the test receiver: what goes on the wire, and how answers are classified.
@Suite(.serialized) struct EndpointTests {
    let loop = CurlLoop(name: "webhook-test")

    @Test func binaryModePostsAttributesAsHeadersAndDataAsBody() async throws {
        let receiver = try TestReceiver()
        defer { receiver.stop() }
        let hook = try endpoint(#"{type: webhook, url: "\#(receiver.url)/in", headers: {Authorization: "Bearer t"}}"#, loop: loop)
        var e = event("e1", data: #"{"total":5}"#)
        e.extensions["region"] = "eu west"
        try await hook.deliver(e)
        let r = try #require(receiver.requests.first)
        #expect(r.method == "POST" && r.path == "/in")
        #expect(r.headers["ce-id"] == "e1" && r.headers["ce-specversion"] == "1.0" && r.headers["ce-type"] == "order.created")
        #expect(r.headers["ce-region"] == "eu%20west" && r.headers["meshgate-topic"] == "orders/eu")
        #expect(r.headers["content-type"] == "application/json" && r.headers["authorization"] == "Bearer t")
        #expect(r.headers["expect"] == nil && r.headers["webhook-signature"] == nil)
        #expect(r.body == Array(#"{"total":5}"#.utf8))
        // No datacontenttype: no Content-Type at all (not curl's form default).
        try await hook.deliver(event("e2", data: "raw", contentType: nil))
        #expect(receiver.requests[1].headers["content-type"] == nil && receiver.requests[1].body == Array("raw".utf8))
        #expect(hook.status.delivered == 2 && hook.status.state == .idle && hook.status.lastStatus == 204)
    }

    @Test func structuredAndBatchModes() async throws {
        let receiver = try TestReceiver()
        defer { receiver.stop() }
        let structured = try endpoint(#"{type: webhook, url: "\#(receiver.url)/s", mode: structured}"#, loop: loop)
        try await structured.deliver(event("s1"))
        let r = try #require(receiver.requests.first)
        #expect(r.headers["content-type"] == "application/cloudevents+json; charset=utf-8" && r.headers["ce-id"] == nil)
        let json = try #require(JSONSerialization.jsonObject(with: Data(r.body)) as? [String: Any])
        #expect(json["id"] as? String == "s1" && (json["data"] as? [String: Any])?["total"] as? Int == 5)

        let batch = try endpoint(#"{type: webhook, url: "\#(receiver.url)/b", mode: batch, batch_size: 10, batch_linger: 50ms}"#, loop: loop)
        try await withThrowingTaskGroup(of: Void.self) { group in
            for i in 0..<25 { group.addTask { try await batch.deliver(event("b\(i)")) } }
            try await group.waitForAll()
        }
        let posts = receiver.requests.filter { $0.path == "/b" }
        let ids = try posts.flatMap { p in
            try #require(JSONSerialization.jsonObject(with: Data(p.body)) as? [[String: Any]]).map { $0["id"] as! String }
        }
        #expect(Set(ids) == Set((0..<25).map { "b\($0)" }) && ids.count == 25)
        #expect(posts.count >= 3 && posts.count <= 6, "\(posts.count) batch requests")
        #expect(posts.allSatisfy { $0.headers["content-type"] == "application/cloudevents-batch+json; charset=utf-8" })
    }

    @Test func signsWhenASecretIsSet() async throws {
        let receiver = try TestReceiver()
        defer { receiver.stop() }
        let secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
        let hook = try endpoint(#"{type: webhook, url: "\#(receiver.url)", secret: "\#(secret)"}"#, loop: loop)
        try await hook.deliver(event("sig1"))
        let r = try #require(receiver.requests.first)
        let ts = try #require(r.headers["webhook-timestamp"].flatMap { Int64($0) })
        #expect(abs(ts - Int64(Date().timeIntervalSince1970)) < 5)
        #expect(r.headers["webhook-id"] == "sig1")
        #expect(r.headers["webhook-signature"] == (try WebhookSigner(secrets: secret)).signature(id: "sig1", timestamp: ts, body: r.body))
    }

    @Test func answersBecomeDeliveryErrors() async throws {
        let receiver = try TestReceiver { r in
            switch r.path {
            case "/bad": .respond(status: 400, body: String(repeating: "x", count: 600) + "tail")
            case "/busy": .respond(status: 429, headers: ["Retry-After": "3"])
            case "/down": .respond(status: 503, headers: ["Retry-After": "Wed, 21 Oct 2037 07:28:00 GMT"], body: "maintenance")
            case "/early": .respond(status: 425)
            case "/moved": .respond(status: 301, headers: ["Location": "http://127.0.0.1:1/"])
            case "/hang": .hang(.seconds(2))
            case "/drop": .drop
            default: .respond(status: 200)
            }
        }
        defer { receiver.stop() }
        func failure(_ path: String, _ extra: String = "") async throws -> DeliveryError? {
            let hook = try endpoint(#"{type: webhook, url: "\#(receiver.url)\#(path)", timeout: 300ms\#(extra)}"#, loop: loop)
            do { try await hook.deliver(event("x")); return nil } catch { return error }
        }
        let policy = DeliveryPolicy()
        let bad = try #require(try await failure("/bad"))
        #expect(bad.status == 400 && bad.retryable == nil && !policy.isRetryable(status: bad.status))
        #expect(bad.response == String(repeating: "x", count: 512))  // the first 512 bytes
        let busy = try #require(try await failure("/busy"))
        #expect(busy.status == 429 && busy.retryAfter == .seconds(3) && policy.isRetryable(status: 429))
        let down = try #require(try await failure("/down"))
        #expect(down.status == 503 && down.retryAfter == RetryAfter.cap && down.response == "maintenance")
        #expect(try await failure("/early")?.status == 425 && policy.isRetryable(status: 425))
        #expect(try await failure("/moved")?.status == 301)  // redirects are not followed
        let started = ContinuousClock.now
        let hang = try #require(try await failure("/hang"))
        #expect(hang.status == nil && hang.retryable == nil && hang.reason.hasPrefix("timed out"))
        #expect(ContinuousClock.now - started < .seconds(1))
        let drop = try #require(try await failure("/drop"))
        #expect(drop.status == nil && drop.retryable == nil && drop.reason.contains("cannot reach"))
        #expect(try await failure("/ok") == nil)
        // Nothing listens on port 1.
        let hook = try endpoint(#"{type: webhook, url: "http://127.0.0.1:1/x"}"#, loop: loop)
        await #expect(throws: DeliveryError.self) { try await hook.deliver(event("x")) }
        #expect(hook.status.state == .failing && hook.status.lastError?.contains("cannot reach") == true)
    }

    @Test func denyPrivateRefusesLoopbackAfterResolution() async throws {
        let receiver = try TestReceiver()
        defer { receiver.stop() }
        for host in ["127.0.0.1", "localhost"] {
            let hook = try endpoint(#"{type: webhook, url: "http://\#(host):\#(receiver.port)/", deny_private: true}"#, loop: loop)
            do {
                try await hook.deliver(event("x"))
                Issue.record("\(host) was not refused")
            } catch {
                #expect(error.retryable == false && error.reason.contains("deny_private"), "\(error)")
            }
        }
        #expect(receiver.requests.isEmpty)
    }

    /// With several curl threads each keeps its own connections, so the limit's slots are split
    /// among them and stay with their thread: the endpoint never holds more connections than its
    /// `concurrency`, whatever the number of threads (and fewer slots than threads works too).
    @Test(arguments: [1, 2, 3]) func concurrencyIsLimitedPerEndpointAndConnectionsAreReused(threads: Int) async throws {
        let receiver = try TestReceiver { _ in
            Thread.sleep(forTimeInterval: 0.02)
            return .respond(status: 200)
        }
        defer { receiver.stop() }
        let ownLoop = CurlLoop(name: "webhook-limit-test", threads: threads)
        let hook = try endpoint(#"{type: webhook, url: "\#(receiver.url)", concurrency: 3}"#, loop: ownLoop)
        // Sixty at once (a freed slot passes to a queued request), then waves of three (every
        // request finds a free slot; with slots not tied to threads, the waves would land on the
        // threads in turn and each thread would open as many connections as the whole limit).
        try await withThrowingTaskGroup(of: Void.self) { group in
            for i in 0..<60 { group.addTask { try await hook.deliver(event("c\(i)")) } }
            try await group.waitForAll()
        }
        for wave in 0..<10 {
            try await withThrowingTaskGroup(of: Void.self) { group in
                for i in 0..<3 { group.addTask { try await hook.deliver(event("w\(wave)-\(i)")) } }
                try await group.waitForAll()
            }
        }
        #expect(receiver.maxInFlight == 3)
        #expect(receiver.delivered.count == 90)
        // Keep-alive: three connections carried the ninety requests.
        #expect(receiver.connectionCount == 3, "\(receiver.connectionCount) connections")
        #expect(hook.status.inFlight == 0)

        // One slot, however many threads: one connection, one request at a time.
        let single = try endpoint(#"{type: webhook, url: "\#(receiver.url)/one", concurrency: 1}"#, loop: ownLoop)
        try await withThrowingTaskGroup(of: Void.self) { group in
            for i in 0..<12 { group.addTask { try await single.deliver(event("one\(i)")) } }
            try await group.waitForAll()
        }
        #expect(receiver.connectionCount <= 4, "\(receiver.connectionCount) connections")
        #expect(receiver.requests.filter { $0.path == "/one" }.count == 12)
        await ownLoop.shutdown()
    }

    /// The slots of a limit are spread over the threads as evenly as possible, and limits with
    /// fewer slots than there are threads start on different threads.
    @Test func slotsAreSplitAmongTheThreads() async {
        let ownLoop = CurlLoop(name: "webhook-share-test", threads: 3)
        #expect(ownLoop.makeLimit(7).freeSlots.sorted() == [2, 2, 3])
        #expect(ownLoop.makeLimit(3).freeSlots == [1, 1, 1])
        let ones = (0..<3).map { _ in ownLoop.makeLimit(1).freeSlots }
        #expect(ones.allSatisfy { $0.reduce(0, +) == 1 })
        #expect(Set(ones.map { $0.firstIndex(of: 1)! }).count == 3)
        await ownLoop.shutdown()
    }

    /// Requests beyond `concurrency` wait in the limit's queue, already built, and the curl thread
    /// starts the next one when a transfer ends. A queued request whose caller is cancelled leaves
    /// the queue and is never sent; signed requests (which take their slot first, so the timestamp
    /// is the time of sending) share the same queue; shutdown ends the queued ones too.
    @Test func queuedRequestsStartInTurnLeaveOnCancelAndEndAtShutdown() async throws {
        let receiver = try TestReceiver { r in
            if r.ceID?.hasPrefix("hang") == true { return .hang(.seconds(5)) }
            Thread.sleep(forTimeInterval: 0.005)
            return .respond(status: 200)
        }
        defer { receiver.stop() }
        let ownLoop = CurlLoop(name: "webhook-queue-test")
        let hook = try endpoint(#"{type: webhook, url: "\#(receiver.url)", concurrency: 2, timeout: 30s}"#, loop: ownLoop)
        // Two hanging requests take both slots; the next one queues.
        let hanging = (0..<2).map { i in Task { try await hook.deliver(event("hang\(i)")) } }
        #expect(await eventually { receiver.requests.count == 2 })
        let queued = Task { try await hook.deliver(event("queued")) }
        #expect(await eventually { hook.status.waiting == 1 })
        #expect(hook.status.inFlight == 2)
        queued.cancel()
        guard case .failure(let error as DeliveryError) = await queued.result else { Issue.record("the queued delivery was not cancelled"); return }
        #expect(error.retryable == true)
        #expect(hook.status.waiting == 0 && hook.status.inFlight == 2)
        // Freeing a slot starts whatever queued next.
        let next = Task { try await hook.deliver(event("next")) }
        #expect(await eventually { hook.status.waiting == 1 })
        hanging[0].cancel()
        try await next.value
        #expect(receiver.delivered.contains("next") && !receiver.requests.contains { $0.ceID == "queued" })
        // Shutdown ends what is in flight and what waits: one more hanging request takes the free
        // slot, two queue behind it.
        let late = (0..<3).map { i in Task { try await hook.deliver(event("hang-late\(i)")) } }
        #expect(await eventually { hook.status.waiting == 2 })
        await ownLoop.shutdown()
        for t in late {
            guard case .failure(let e as DeliveryError) = await t.result else { Issue.record("a late delivery succeeded"); continue }
            #expect(e.retryable == true, "\(e)")
        }
        _ = await hanging[1].result
        #expect(hook.status.waiting == 0 && hook.status.inFlight == 0)

        // Signed: the limit holds across signed callers, and every request carries a valid signature.
        let signedLoop = CurlLoop(name: "webhook-queue-signed-test", threads: 2)
        defer { Task { await signedLoop.shutdown() } }
        let secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
        let signedReceiver = try TestReceiver { _ in
            Thread.sleep(forTimeInterval: 0.005)
            return .respond(status: 200)
        }
        defer { signedReceiver.stop() }
        let signed = try endpoint(#"{type: webhook, url: "\#(signedReceiver.url)", concurrency: 3, secret: "\#(secret)"}"#, loop: signedLoop)
        try await withThrowingTaskGroup(of: Void.self) { group in
            for i in 0..<40 { group.addTask { try await signed.deliver(event("s\(i)")) } }
            try await group.waitForAll()
        }
        #expect(signedReceiver.maxInFlight <= 3)
        #expect(signedReceiver.requests.count == 40)
        let signer = try WebhookSigner(secrets: secret)
        for r in signedReceiver.requests {
            let id = try #require(r.headers["webhook-id"]), ts = try #require(r.headers["webhook-timestamp"].flatMap { Int64($0) })
            #expect(r.headers["webhook-signature"] == signer.signature(id: id, timestamp: ts, body: r.body))
        }
        #expect((0..<40).allSatisfy { signedReceiver.delivered.contains("s\($0)") })
        #expect(signed.status.inFlight == 0 && signed.status.waiting == 0)
    }

    @Test func cancellingADeliveryAbortsItsTransfer() async throws {
        let receiver = try TestReceiver { _ in .hang(.seconds(5)) }
        defer { receiver.stop() }
        let hook = try endpoint(#"{type: webhook, url: "\#(receiver.url)", timeout: 30s}"#, loop: loop)
        let started = ContinuousClock.now
        let task = Task { try await hook.deliver(event("slow")) }
        #expect(await eventually { receiver.requests.count == 1 })
        task.cancel()
        let result = await task.result
        #expect(ContinuousClock.now - started < .seconds(2))
        guard case .failure(let error as DeliveryError) = result else { Issue.record("not cancelled: \(result)"); return }
        #expect(error.retryable == true)
        #expect(hook.status.inFlight == 0)
    }

    @Test func shutdownEndsTransfersInFlight() async throws {
        let receiver = try TestReceiver { _ in .hang(.seconds(5)) }
        defer { receiver.stop() }
        let ownLoop = CurlLoop(name: "webhook-shutdown-test")
        let hook = try endpoint(#"{type: webhook, url: "\#(receiver.url)", timeout: 30s}"#, loop: ownLoop)
        let task = Task { try await hook.deliver(event("slow")) }
        #expect(await eventually { receiver.requests.count == 1 })
        await ownLoop.shutdown()
        let result = await task.result
        guard case .failure(let error as DeliveryError) = result else { Issue.record("not ended: \(result)"); return }
        #expect(error.retryable == true)
        // After shutdown nothing is sent, and nothing hangs.
        await #expect(throws: DeliveryError.self) { try await hook.deliver(event("late")) }
        await ownLoop.shutdown()
    }

    /// The curl thread runs on curl's socket interface over epoll: sockets come and go as the
    /// receiver drops connections (curl reconnects, possibly on a reused descriptor number),
    /// curl's timers end hanging transfers while the others go on, and a thread idle in its
    /// wait picks a new submission up.
    @Test func socketDrivenTransfersSurviveDropsTimeoutsAndIdleWaits() async throws {
        let receiver = try TestReceiver { r in
            if r.ceID?.hasPrefix("hang") == true { return .hang(.seconds(4)) }
            if r.ceID?.hasPrefix("drop") == true { return .drop }
            return .respond(status: 200)
        }
        defer { receiver.stop() }
        for threads in [1, 2] {
            let ownLoop = CurlLoop(name: "webhook-socket-test", threads: threads)
            let hook = try endpoint(#"{type: webhook, url: "\#(receiver.url)", concurrency: 6, timeout: 1500ms}"#, loop: ownLoop)
            let ids = (0..<240).map { i in i % 60 == 7 ? "hang\(threads)-\(i)" : (i % 9 == 4 ? "drop\(threads)-\(i)" : "ok\(threads)-\(i)") }
            let outcomes = await withTaskGroup(of: (String, DeliveryError?).self) { group in
                for id in ids {
                    group.addTask {
                        do throws(DeliveryError) { try await hook.deliver(event(id)); return (id, nil) } catch { return (id, error) }
                    }
                }
                var all: [String: Result<Void, DeliveryError>] = [:]
                for await (id, error) in group { all[id] = error.map { .failure($0) } ?? .success(()) }
                return all
            }
            #expect(outcomes.count == ids.count)
            for id in ids {
                guard let outcome = outcomes[id] else { continue }
                var error: DeliveryError?
                if case .failure(let e) = outcome { error = e }
                if id.hasPrefix("ok") { #expect(error == nil, "\(id): \(String(describing: error))") }
                if id.hasPrefix("hang") { #expect(error?.reason.hasPrefix("timed out") == true, "\(id): \(String(describing: error))") }
                if id.hasPrefix("drop") { #expect(error?.status == nil && error?.reason.contains("cannot reach") == true, "\(id): \(String(describing: error))") }
            }
            #expect(receiver.delivered.isSuperset(of: ids.filter { $0.hasPrefix("ok") }))
            // Dropped connections were replaced by new ones.
            #expect(receiver.connectionCount > 6 * threads)
            // The threads have nothing to do: each sleeps in its wait until a submission wakes it.
            try await Task.sleep(for: .milliseconds(1300))
            try await hook.deliver(event("after-idle\(threads)"))
            #expect(receiver.delivered.contains("after-idle\(threads)"))
            #expect(hook.status.inFlight == 0)
            await ownLoop.shutdown()
        }
    }

    /// A connection stays in the curl thread's epoll set while it sits idle between transfers.
    /// When the receiver closes one there, the end-of-stream event comes for a socket curl does not
    /// watch: the thread takes it out of the set (else it would wake for it again and again), and
    /// the next transfer goes on a new connection, often on the same descriptor number.
    @Test func idleConnectionsClosedByTheReceiverAreReplacedWithoutSpinning() async throws {
        let receiver = try TestReceiver { _ in .respondThenClose(status: 200, after: .milliseconds(20)) }
        defer { receiver.stop() }
        let name = "wh-idle-test"
        let ownLoop = CurlLoop(name: name)
        let hook = try endpoint(#"{type: webhook, url: "\#(receiver.url)", concurrency: 2}"#, loop: ownLoop)
        for round in 0..<15 {
            try await withThrowingTaskGroup(of: Void.self) { group in
                for i in 0..<2 { group.addTask { try await hook.deliver(event("idle\(round)-\(i)")) } }
                try await group.waitForAll()
            }
            try await Task.sleep(for: .milliseconds(50))  // closed by the receiver while idle
        }
        #expect(receiver.delivered.count == 30)
        #expect(receiver.connectionCount >= 15, "\(receiver.connectionCount) connections")
        // `Connection: close`: curl closes each connection itself, through the loop's close hook,
        // while the socket is still registered; the next socket often gets the same number.
        receiver.setScript { _ in .respond(status: 200, headers: ["Connection": "close"]) }
        let opened = receiver.connectionCount
        for i in 0..<20 { try await hook.deliver(event("closing\(i)")) }
        #expect(receiver.delivered.count == 50)
        #expect(receiver.connectionCount - opened >= 19, "\(receiver.connectionCount - opened) connections for 20 requests")
        // Closed connections wait in curl's cache; the thread sleeps through them.
        let before = try #require(Self.cpuTicks(ofThreadNamed: name))
        try await Task.sleep(for: .milliseconds(500))
        let after = try #require(Self.cpuTicks(ofThreadNamed: name))
        #expect(after - before < 10, "the curl thread used \(after - before) ticks of CPU in 500 ms with nothing to do")
        await ownLoop.shutdown()
    }

    /// User plus system CPU ticks of this process's thread called `name`.
    static func cpuTicks(ofThreadNamed name: String) -> Int? {
        guard let tasks = try? FileManager.default.contentsOfDirectory(atPath: "/proc/self/task") else { return nil }
        for tid in tasks {
            guard let comm = try? String(contentsOfFile: "/proc/self/task/\(tid)/comm", encoding: .utf8),
                  comm.trimmingCharacters(in: .whitespacesAndNewlines) == name,
                  let stat = try? String(contentsOfFile: "/proc/self/task/\(tid)/stat", encoding: .utf8),
                  let close = stat.lastIndex(of: ")") else { continue }
            // After "pid (comm)": state is field 3; utime and stime are fields 14 and 15.
            let fields = stat[stat.index(after: close)...].split(separator: " ")
            guard fields.count > 13, let user = Int(fields[11]), let system = Int(fields[12]) else { return nil }
            return user + system
        }
        return nil
    }

    /// The header list goes to curl as one block (nodes, then the NUL-terminated lines): every
    /// line arrives whole and in place, whatever the number and lengths of the lines.
    @Test func everyHeaderLineArrivesWhole() async throws {
        let receiver = try TestReceiver()
        defer { receiver.stop() }
        let extra = (0..<20).map { i in "X-Extra-\(i): \"\(String(repeating: "v", count: i * 37))\(i)\"" }.joined(separator: ", ")
        let secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
        let hook = try endpoint(#"{type: webhook, url: "\#(receiver.url)/h", secret: "\#(secret)", headers: {\#(extra)}}"#, loop: loop)
        var e = event("hdr1")
        e.extensions["region"] = "eu"
        try await hook.deliver(e)
        try await hook.deliver(event("hdr2", contentType: nil))
        let r = receiver.requests
        #expect(r.count == 2)
        for (request, id) in zip(r, ["hdr1", "hdr2"]) {
            for i in 0..<20 { #expect(request.headers["x-extra-\(i)"] == String(repeating: "v", count: i * 37) + "\(i)") }
            #expect(request.headers["ce-id"] == id && request.headers["webhook-id"] == id && request.headers["webhook-signature"] != nil)
            #expect(request.headers["expect"] == nil && request.body == Array(#"{"total":5}"#.utf8))
        }
        #expect(r[0].headers["ce-region"] == "eu" && r[0].headers["content-type"] == "application/json")
        #expect(r[1].headers["ce-region"] == nil && r[1].headers["content-type"] == nil)
    }
}
