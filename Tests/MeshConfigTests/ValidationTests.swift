import MeshTestSupport
import Foundation
import MeshConfig
import MeshCore
import MeshRouting
import Testing

private func errors(_ yaml: String, env: [String: String] = [:], file: String = "r.yaml") -> [String] {
    do {
        _ = try RouteLoader.load(sources: [(file, yaml)], environment: env)
        return []
    } catch {
        return error.errors.map(\.message)
    }
}

struct ValidationTests {
    @Test func reportsEveryErrorWithItsPosition() {
        let yaml = """
        version: 1
        connectors:
          hook: {type: webhook, url: "ftp://x/y"}
          mq: {type: mqtt, url: "mqtt://h:1883", clientid: a}
        routes:
          - name: a
            form: "x/#"
            to: [{topic: "b"}]
          - name: b
            from: "orders/#"
            where: "type = 'x' AND data.total >> 3"
            to:
              - topic: "orders/copy/{1}"
              - topic: "audit/{2}"
              - connector: hookk
                retry: {attempts: 3, backoff: 2s, max_backoff: 1s}
          - name: b
            from: "a/+/#/c"
            to: [{topic: x}]
        """
        #expect(errors(yaml) == [
            "r.yaml:3:30: error: a webhook connector's url must start with http:// or https://, not 'ftp://x/y'",
            "r.yaml:4:42: error: unknown key 'clientid' for a mqtt connector; did you mean 'client_id'?; expected one of: type, url, client_id, username, password, protocol, qos, retain, clean_session, keepalive, session_expiry, max_inflight, publish_inflight, reconnect_backoff, reconnect_max_backoff, tls_insecure, ca_file, cert_file, key_file",
            "r.yaml:6:5: error: route 'a' needs a 'from': a topic pattern, or {connector, topic}",
            "r.yaml:7:5: error: unknown key 'form' in a route; did you mean 'from'?; expected one of: name, description, from, where, to, set, remove, allow_loop",
            "r.yaml:11:40: error: invalid CESQL filter: expected a value, found '>'",
            "r.yaml:13:9: error: this destination's topic 'orders/copy/{1}' can match the route's own source 'orders/#', so events would loop forever; change the topic or set 'allow_loop: true' on the route",
            "r.yaml:14:23: error: invalid topic template 'audit/{2}': {2} refers to a capture the route's from pattern does not have (it has 1 wildcard(s), so {1}..{1} exist)",
            "r.yaml:15:20: error: unknown connector 'hookk'; no connectors are declared",
            "r.yaml:16:16: error: retry.attempts is 3 but there is no dead_letter topic, so events would be dropped silently after the last attempt; add 'dead_letter: <topic>' or use 'attempts: unlimited'",
            "r.yaml:16:56: error: retry.max_backoff (1.0 seconds) is shorter than retry.backoff (2.0 seconds); expected max_backoff ≥ backoff",
            "r.yaml:17:11: error: duplicate route name 'b' (first defined at r.yaml:9:11)",
            "r.yaml:18:16: error: invalid topic pattern 'a/+/#/c' in from: level 3 is \"#\" (byte 4) but \"#\" is only allowed as the last level",
        ])
    }

    @Test func filterErrorsPointInsideTheExpression() {
        let plain = "version: 1\nroutes:\n  - name: r\n    from: a/#\n    where: type = 'x' AND FOO(1)\n    to: [{topic: b}]\n"
        #expect(errors(plain) == ["r.yaml:5:27: error: invalid CESQL filter: unknown function FOO; the built-in functions are LENGTH, CONCAT, CONCAT_WS, LOWER, UPPER, TRIM, LEFT, RIGHT, SUBSTRING, ABS, INT, BOOL, STRING, IS_BOOL, IS_INT"])
        let typed = "version: 1\nroutes:\n  - name: r\n    from: a/#\n    where: \"LENGTH(type)\"\n    to: [{topic: b}]\n"
        #expect(errors(typed) == ["r.yaml:5:12: error: a 'where' filter must be a boolean expression; this one is Integer"])
        let cast = "version: 1\nroutes:\n  - name: r\n    from: a/#\n    where: \"'abc' + 1 > 2\"\n    to: [{topic: b}]\n"
        #expect(errors(cast) == ["r.yaml:5:19: error: invalid CESQL filter: the literal 'abc' can never be cast to Integer"])
    }

    @Test func versionDuplicatesAndMergedFiles() throws {
        #expect(errors("routes: []\n") == ["r.yaml:1:1: error: missing 'version: 1' at the top of the route file"])
        #expect(errors("version: 2\n") == ["r.yaml:1:10: error: unsupported version; expected 'version: 1'"])
        #expect(errors("version: 1\nroutes: []\nversion: 1\n") == ["r.yaml:3:1: error: duplicate key 'version'"])
        #expect(errors("version: 1\nroutes: [\n") == ["r.yaml:3:1: error: invalid YAML: did not find expected node content while parsing a flow node"])
        let a = "version: 1\nconnectors:\n  mq: {type: mqtt, url: \"mqtt://h\"}\nroutes:\n  - {name: x, from: {connector: mq, topic: \"s/#\"}, to: [{topic: \"m/{topic}\"}]}\n"
        let b = "version: 1\nconnectors:\n  mq: {type: mqtt, url: \"mqtt://h2\"}\nroutes:\n  - {name: x, from: a, to: [{connector: mq}]}\n"
        do {
            _ = try RouteLoader.load(sources: [("a.yaml", a), ("b.yaml", b)])
            Issue.record("expected errors")
        } catch {
            #expect(error.errors.map(\.message) == [
                "b.yaml:3:3: error: duplicate connector name 'mq' (first defined at a.yaml:3:3)",
                "b.yaml:5:12: error: duplicate route name 'x' (first defined at a.yaml:5:12)",
            ])
        }
        // Routes in one file may use connectors declared in another.
        let c = "version: 1\nroutes:\n  - {name: y, from: a, to: [{connector: mq}]}\n"
        let t = try RouteLoader.load(sources: [("a.yaml", a), ("c.yaml", c)])
        #expect(t.routes.map(\.name) == ["x", "y"] && t.files == ["a.yaml", "c.yaml"])
        guard case .connector("mq", let filter) = t.routes[0].source else { Issue.record("ingress"); return }
        #expect(filter.text == "s/#")
    }

    @Test func environmentSubstitutionAndRedaction() throws {
        let yaml = """
        version: 1
        connectors:
          billing: {type: webhook, url: "http://${HOST}:9000/hook", secret: "${BILLING_SECRET}", headers: {Authorization: "Bearer ${TOKEN}", X-Env: prod}}
        """
        #expect(errors(yaml, env: ["HOST": "h"]) == [
            "r.yaml:3:69: error: environment variable BILLING_SECRET is not set (referenced as ${BILLING_SECRET})",
            "r.yaml:3:115: error: environment variable TOKEN is not set (referenced as ${TOKEN})",
        ])
        let t = try RouteLoader.load(sources: [("r.yaml", yaml)], environment: ["HOST": "h", "BILLING_SECRET": "whsec_czNjcjN0", "TOKEN": "tok"])
        let c = try #require(t.connectors["billing"])
        #expect(c.url == "http://h:9000/hook")
        #expect(c.options["secret"] == "whsec_czNjcjN0" && c.options["headers.Authorization"] == "Bearer tok")
        #expect(c.redactedOptions["secret"] == "***" && c.redactedOptions["headers.Authorization"] == "***")
        #expect(c.redactedOptions["url"] == "http://${HOST}:9000/hook" && c.redactedOptions["headers.X-Env"] == "prod")
        #expect(!c.redactedOptions.values.contains { $0.contains("czNjcjN0") || $0.contains("tok") })
        #expect(errors("version: 1\nconnectors:\n  a: {type: webhook, url: \"$${NOT}http://x/y\"}\n").count == 1)  // literal ${ kept, then bad scheme
    }

    @Test func policiesThatCannotWorkAreRefused() {
        func destErrors(_ dest: String) -> [String] {
            errors("version: 1\nroutes:\n  - name: r\n    from: a/#\n    to:\n      - \(dest)\n").map { String($0.split(separator: " ", maxSplits: 2)[2]) }
        }
        #expect(destErrors("{topic: b, retry: {max_elapsed: 1m}}") == ["retry.max_elapsed is set but there is no dead_letter topic, so events would be dropped silently after the last attempt; add 'dead_letter: <topic>' or use 'attempts: unlimited'"])
        #expect(destErrors("{topic: b, retry: {attempts: unlimited}}").isEmpty)
        #expect(destErrors("{topic: b, retry: {attempts: 0}, dead_letter: d}") == ["retry.attempts must be between 1 and 1000000, not 0"])
        #expect(destErrors("{topic: b, retry: {backoff: 1s, max_elapsed: 10ms}, dead_letter: d}") == ["retry.max_elapsed (0.01 seconds) is shorter than the first backoff (1.0 seconds), so no retry could ever happen"])
        #expect(destErrors("{topic: b, retry: {retry_on: [5xx, 42]}}") == ["expected a status like 503 or a class like 5xx, not '42'"])
        #expect(destErrors("{topic: b, ordering: fifo}") == ["ordering must be 'key' (per partition key) or 'none', not 'fifo'"])
        #expect(destErrors("{topic: b, in_flight: 0}") == ["in_flight must be between 1 and 10000, not 0"])
        #expect(destErrors("{topic: b, retry: {backoff: soon}}") == ["expected retry.backoff as a duration like 200ms, 5s, 2m or 1h (at most 2562047h), found 'soon'"])
        // Found by the route-file fuzzer: a duration past Int64 nanoseconds trapped the loader.
        #expect(destErrors("{topic: b, retry: {backoff: 1ms, max_backoff: 104444444444444444444444444444454s}}") == ["expected retry.max_backoff as a duration like 200ms, 5s, 2m or 1h (at most 2562047h), found '104444444444444444444444444444454s'"])
        #expect(destErrors("{topic: b, retry: {backoff: 2562048h}}").count == 1)
        #expect(destErrors("{topic: b, retry: {backoff: 2562047h, max_backoff: 2562047h}}").isEmpty)
        #expect(destErrors("{topic: b, dead_letter: \"a/x\"}") == ["the dead_letter topic 'a/x' matches the route's own source 'a/#', so failed events would be routed again; choose another topic or set 'allow_loop: true'"])
        #expect(destErrors("{topic: b, remove: [id]}") == ["cannot remove 'id': CloudEvents requires it"])
        #expect(destErrors("{topic: b, set: {topic: x}}") == ["cannot set 'topic': expected a CloudEvents attribute name (lowercase a-z and 0-9); use the destination's 'topic' template to change the topic"])
        #expect(destErrors("{}") == ["a destination needs 'topic' (a log topic) or 'connector' (a named connector)"])
        #expect(destErrors("{topic: \"a/{topic}\"}").count == 1)  // loops
        #expect(errors("version: 1\nroutes:\n  - {name: r, from: a/#, allow_loop: true, to: [{topic: \"a/{1}\"}]}\n").isEmpty)
    }

    @Test func ingressFromAWebhookIsRefused() {
        let yaml = "version: 1\nconnectors:\n  h: {type: webhook, url: \"http://x/y\"}\nroutes:\n  - {name: r, from: {connector: h, topic: a}, to: [{topic: b}]}\n"
        #expect(errors(yaml) == ["r.yaml:5:33: error: connector 'h' is a webhook, which cannot be a route's source; expected an mqtt or meshgate connector"])
    }

    /// Every input a fuzzer crashed on (Tests/Fixtures/fuzz/routefile-*) loads or is refused with positioned errors.
    @Test func fuzzerFindingsLoadOrFailCleanly() throws {
        let dir = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("../Fixtures/fuzz").standardized
        let files = try FileManager.default.contentsOfDirectory(atPath: dir.path).filter { $0.hasPrefix("routefile-") }
        #expect(!files.isEmpty)
        for name in files {
            let text = String(decoding: try Data(contentsOf: dir.appendingPathComponent(name)), as: UTF8.self)
            let messages = errors(text, file: name)
            #expect(messages.allSatisfy { $0.hasPrefix(name + ":") }, "\(messages)")
        }
    }
}
