import MeshTestSupport
import Foundation
import MeshConfig
import MeshCore
import MeshRouting
import Testing
@testable import MeshWebhook

struct SignatureTests {
    /// The example of the Standard Webhooks specification (and of its reference libraries' tests).
    @Test func matchesTheSpecificationExample() throws {
        let signer = try WebhookSigner(secrets: "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")
        let sig = signer.signature(id: "msg_p5jXN8AQM9LWM0D4loKWxJek", timestamp: 1_614_265_330, body: Array(#"{"test": 2432232314}"#.utf8))
        #expect(sig == "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=")
    }

    @Test func rotationSignsWithEverySecretInOrder() throws {
        let old = try WebhookSigner(secrets: "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")
        let new = try WebhookSigner(secrets: "whsec_c2VjcmV0LXNlY3JldC1zZWNyZXQ=")
        let both = try WebhookSigner(secrets: "whsec_c2VjcmV0LXNlY3JldC1zZWNyZXQ= whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")
        let body = Array("x".utf8)
        #expect(both.signature(id: "m", timestamp: 1, body: body)
            == new.signature(id: "m", timestamp: 1, body: body) + " " + old.signature(id: "m", timestamp: 1, body: body))
        let headers = both.headers(id: "m", timestamp: 7, body: body)
        #expect(headers.map(\.name) == ["webhook-id", "webhook-timestamp", "webhook-signature"])
        #expect(headers[1].value == "7")
    }

    @Test func badSecretsAreRefusedWithoutShowingThem() throws {
        #expect(throws: WebhookConfigError.self) { try WebhookSigner(secrets: "whsec_not base64!!") }
        do {
            _ = try WebhookSigner(secrets: "whsec_czNjcjN0 whsec_%%%hunter2")
            Issue.record("accepted a bad secret")
        } catch {
            #expect(error.message == "secret: secret 2 is not whsec_ followed by base64")
            #expect(!error.message.contains("hunter2"))
        }
    }

    /// HMAC-SHA256 against RFC 4231 test case 2.
    @Test func hmacMatchesRFC4231() {
        let mac = WebhookSigner.hmacSHA256(key: Array("Jefe".utf8), message: Array("what do ya want for nothing?".utf8))
        #expect(mac.map { String(format: "%02x", $0) }.joined() == "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843")
    }
}

struct RetryAfterTests {
    @Test func secondsAndDates() {
        let now = Date(timeIntervalSince1970: 784_111_777)  // Sun, 06 Nov 1994 08:49:37 GMT
        #expect(RetryAfter.parse("120") == .seconds(120))
        #expect(RetryAfter.parse(" 0 ") == .zero)
        #expect(RetryAfter.parse("Sun, 06 Nov 1994 08:49:47 GMT", now: now) == .seconds(10))
        #expect(RetryAfter.parse("Sunday, 06-Nov-94 08:50:37 GMT", now: now) == .seconds(60))
        #expect(RetryAfter.parse("Sun Nov  6 08:49:39 1994", now: now) == .seconds(2))
        #expect(RetryAfter.parse("Sun, 06 Nov 1994 08:00:00 GMT", now: now) == .zero)  // in the past: now
        #expect(RetryAfter.parse("99999999999999999999") == RetryAfter.cap)
        #expect(RetryAfter.parse("86400") == RetryAfter.cap)
        #expect(RetryAfter.parse("soon") == nil)
        #expect(RetryAfter.parse("-5") == nil)
    }
}

struct PrivateAddressTests {
    @Test func deniesNonPublicAddresses() {
        for a in ["127.0.0.1", "127.8.9.10", "10.1.2.3", "172.16.0.1", "172.31.255.255", "192.168.1.1", "169.254.169.254",
                  "0.0.0.0", "100.64.0.1", "224.0.0.1", "255.255.255.255", "198.18.0.1",
                  "::1", "::", "fe80::1", "fc00::1", "fd12:3456::1", "ff02::1", "::ffff:127.0.0.1", "::ffff:10.0.0.1",
                  "64:ff9b::a9fe:a9fe", "2002:c0a8:0101::1", "2001:db8::1"] {
            #expect(PrivateAddresses.isDenied(a) == true, "\(a)")
        }
        for a in ["8.8.8.8", "1.1.1.1", "172.32.0.1", "172.15.255.255", "100.128.0.1", "2606:4700:4700::1111", "::ffff:8.8.8.8",
                  "2002:0808:0808::1"] {
            #expect(PrivateAddresses.isDenied(a) == false, "\(a)")
        }
        #expect(PrivateAddresses.isDenied("example.com") == nil)
    }
}

struct EncodingTests {
    @Test func headerValuesArePercentEncoded() {
        #expect(CloudEventsHTTPEncoding.headerValue("plain-value/1") == "plain-value/1")
        #expect(CloudEventsHTTPEncoding.headerValue("a b\"c%d") == "a%20b%22c%25d")
        #expect(CloudEventsHTTPEncoding.headerValue("x\r\nInjected: 1") == "x%0D%0AInjected:%201")
        #expect(CloudEventsHTTPEncoding.headerValue("Käse") == "K%C3%A4se")
    }

    @Test func binaryHeadersCarryEveryAttribute() throws {
        var e = event("e1")
        e.subject = "s 1"
        e.time = try Timestamp(rfc3339: "2024-01-02T03:04:05Z")
        e.dataschema = "https://schema/x"
        e.partitionKey = "k"
        e.traceparent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
        e.extensions["region"] = "eu"
        var h = HeaderLines()
        CloudEventsHTTPEncoding.binaryHeaders(e, into: &h)
        #expect(h.count == 12 && h.bytes.filter { $0 == 0 }.count == 12)
        #expect(h.lines == [
            "ce-specversion: 1.0", "ce-id: e1", "ce-source: test", "ce-type: order.created", "ce-subject: s%201",
            "ce-time: 2024-01-02T03:04:05Z", "ce-dataschema: https://schema/x", "ce-partitionkey: k", "ce-region: eu",
            "traceparent: 00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01", "meshgate-topic: orders/eu",
            "Content-Type: application/json",
        ])
        var noType = HeaderLines()
        CloudEventsHTTPEncoding.binaryHeaders(event("e2", contentType: nil), into: &noType)
        #expect(noType.lines.last == "Content-Type:")  // tells curl to send none
        // A line ends at its first NUL, as curl would read it.
        var cut = HeaderLines()
        cut.append("X-A: ", "one\u{0}two")
        cut.append(line: "X-B: three")
        #expect(cut.lines == ["X-A: one", "X-B: three"] && cut.count == 2)
    }

    @Test func structuredModeKeepsDataExactly() throws {
        func json(_ e: Event) throws -> [String: Any] {
            var out: [UInt8] = []
            CloudEventsHTTPEncoding.structured(e, into: &out)
            return try #require(JSONSerialization.jsonObject(with: Data(out)) as? [String: Any])
        }
        let j = try json(event("e1", data: #"{"total": 5, "note": "a\"b"}"#))
        #expect(j["specversion"] as? String == "1.0" && j["id"] as? String == "e1" && j["topic"] as? String == "orders/eu")
        #expect((j["data"] as? [String: Any])?["total"] as? Int == 5)
        let text = try json(event("e2", data: "line\n\"two\"", contentType: "text/plain"))
        #expect(text["data"] as? String == "line\n\"two\"")
        let binary = try json(Event(topic: try Topic("t"), id: "e3", source: "s", type: "t", datacontenttype: "application/octet-stream", data: [0, 255, 10]))
        #expect(binary["data_base64"] as? String == "AP8K")
        let notJSON = try json(event("e4", data: "{not json"))
        #expect(notJSON["data_base64"] as? String == Data("{not json".utf8).base64EncodedString())
        let batch = CloudEventsHTTPEncoding.batch([event("a"), event("b")])
        let array = try #require(JSONSerialization.jsonObject(with: Data(batch)) as? [[String: Any]])
        #expect(array.map { $0["id"] as? String } == ["a", "b"])
    }

    @Test func dataIsInlinedOnlyWhenItIsJSON() {
        let valid = [#"{"a":[1,-2.5e+3,true,false,null,"x\"\u00e9"],"b":{}}"#, "[]", " 7 ", #""é""#, "0", "-0.0E1", #"[[[{"k":[]}]]]"#]
        for text in valid { #expect(CloudEventsHTTPEncoding.isValidJSON(Array(text.utf8)), "\(text)") }
        let invalid = ["", "{", #"{"a"}"#, #"{"a":1,}"#, "[1,]", "01", "1.", "-", "tru", "nul", #""a"#, #""\x""#, #""\u12""#,
                       "[1] 2", "{'a':1}", "\"tab\t\"", #"{"a":1}}"#, "[}", "NaN"]
        for text in invalid { #expect(!CloudEventsHTTPEncoding.isValidJSON(Array(text.utf8)), "\(text)") }
        #expect(!CloudEventsHTTPEncoding.isValidJSON([0x22, 0xFF, 0x22]))  // not UTF-8
        #expect(!CloudEventsHTTPEncoding.isValidJSON(Array(String(repeating: "[", count: 600).utf8) + Array(String(repeating: "]", count: 600).utf8)))
        #expect(CloudEventsHTTPEncoding.isJSON("application/json") && CloudEventsHTTPEncoding.isJSON(" Application/JSON ; charset=utf-8"))
        #expect(CloudEventsHTTPEncoding.isJSON("text/json") && CloudEventsHTTPEncoding.isJSON("application/cloudevents+json"))
        #expect(!CloudEventsHTTPEncoding.isJSON("text/plain") && !CloudEventsHTTPEncoding.isJSON("application/jsonx") && !CloudEventsHTTPEncoding.isJSON(""))
    }
}

struct ConfigTests {
    @Test func optionsAreRead() throws {
        let spec = try connector("""
        {type: webhook, url: "https://user:pw@example.com/h", secret: "whsec_czNjcjN0", mode: structured, timeout: 2s, connect_timeout: 250ms,
               concurrency: 4, http_version: "1.1", deny_private: true, headers: {Authorization: "Bearer t", X-Env: prod}}
        """)
        let c = try WebhookConfig(spec)
        #expect(c.mode == .structured && c.concurrency == 4 && c.timeout == .seconds(2) && c.connectTimeout == .milliseconds(250))
        #expect(c.denyPrivate && c.transfer.httpVersion == .http1 && c.signer != nil)
        #expect(c.headers.map(\.name) == ["Authorization", "X-Env"])
        #expect(c.redactedURL == "https://***@example.com/h")
        // The gateway-wide default applies when the connector does not say.
        #expect(try WebhookConfig(try connector(#"{type: webhook, url: "http://h/x"}"#), denyPrivate: true).denyPrivate)
        #expect(try !WebhookConfig(try connector(#"{type: webhook, url: "http://h/x", deny_private: false}"#), denyPrivate: true).denyPrivate)
    }

    @Test func theLoaderRefusesBadWebhookOptions() throws {
        func errors(_ options: String) -> [String] {
            do {
                _ = try table("version: 1\nconnectors:\n  hook: {type: webhook, url: \"http://h/x\", \(options)}\n")
                return []
            } catch let e as ConfigErrors { return e.errors.map(\.reason) } catch { return ["\(error)"] }
        }
        #expect(errors("mode: bundle") == ["mode must be binary, structured or batch, not 'bundle'"])
        #expect(errors("connect_timeout: 0s") == ["connect_timeout must be a duration like 10s, not '0s'"])
        #expect(errors("http_version: 3") == ["http_version must be auto, 1.1 or 2, not '3'"])
        #expect(errors("deny_private: maybe") == ["deny_private must be true or false, not 'maybe'"])
        #expect(errors("batch_size: 0") == ["batch_size must be a whole number from 1 to 10000, not '0'"])
        #expect(errors("secret: \"whsec_czNjcjN0 hunter2!\"") == ["secret 2 of 2 is not a Standard Webhooks secret; expected whsec_ followed by base64"])
        #expect(errors("headers: {ce-id: x}") == ["header 'ce-id' is set by the webhook connector and cannot be given in headers"])
        #expect(errors("headers: {\"Bad Name\": x}") == ["'Bad Name' is not a valid HTTP header name"])
        #expect(errors("retries: 3").first?.hasPrefix("unknown key 'retries' for a webhook connector") == true)
        #expect(errors("mode: batch, batch_size: 50, batch_linger: 0ms, deny_private: true, http_version: auto").isEmpty)
    }

    @Test func theExampleRouteFileLoadsAndMatchesTheSchema() throws {
        let dir = repositoryRoot + "/examples/webhook-fanout"
        let t = try RouteLoader.load(path: dir, environment: ["BILLING_SECRET": "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"])
        #expect(t.connectors.count == 3 && t.routes.map(\.name) == ["orders-fanout"])
        for c in t.connectors.values { _ = try WebhookConfig(c) }
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        p.arguments = ["python3", repositoryRoot + "/scripts/validate-route-schema.py", dir]
        let out = Pipe()
        p.standardOutput = out
        p.standardError = out
        try p.run()
        let text = String(decoding: out.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        p.waitUntilExit()
        #expect(p.terminationStatus == 0 && text.contains("0 invalid"), "\(text)")
    }
}
