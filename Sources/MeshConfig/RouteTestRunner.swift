import Foundation
import MeshCore
import MeshRouting
import Yams

/// Route test files (`*.test.yaml` beside the routes): given an event, the exact set of
/// deliveries the table must produce — which route, which destination (log topic or connector),
/// the destination topic, and attributes/data the delivered event must carry.
///
///     version: 1
///     tests:
///       - name: a big order goes to billing and audit
///         given: {topic: orders/eu, type: order.created, data: {total: 150}}
///         expect:
///           - {route: big-orders, connector: billing, topic: orders/eu}
///           - {route: big-orders, topic: audit/eu, attributes: {type: order.created}}
///       - name: small orders go nowhere
///         given: {topic: orders/eu, type: order.created, data: {total: 5}}
///         expect: []
public struct RouteTestCase: Sendable {
    public struct Expectation: Sendable {
        public let route: String
        public let connector: String?
        public let topic: String?
        public let attributes: [String: String]
        /// Expected data as canonical JSON (or the raw string).
        public let data: [UInt8]?
        public let location: SourceLocation
    }
    public let name: String
    public let event: Event
    public let expect: [Expectation]
    public let location: SourceLocation
}

public struct RouteTestOutcome: Sendable {
    public let test: RouteTestCase
    public let failures: [String]
    public var passed: Bool { failures.isEmpty }
}

public enum RouteTestRunner {
    static let givenKeys = ["topic", "id", "source", "type", "subject", "time", "datacontenttype", "dataschema",
                            "partitionkey", "extensions", "data"]

    /// The `*.test.yaml` files in a directory (or the file named, if it is one).
    public static func testFiles(at path: String) -> [String] {
        var isDir: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isDir) else { return [] }
        if !isDir.boolValue { return RouteLoader.isTestFile(path) ? [path] : [] }
        let names = (try? FileManager.default.contentsOfDirectory(atPath: path)) ?? []
        return names.filter(RouteLoader.isTestFile).sorted().map { (path as NSString).appendingPathComponent($0) }
    }

    public static func parse(file: String, text: String) throws(ConfigErrors) -> [RouteTestCase] {
        let reader = YAMLReader(file: file, environment: [:])
        let root: Node?
        do { root = try Yams.compose(yaml: text) } catch { throw ConfigErrors([RouteLoader.yamlError(error, file: file, text: text)]) }
        guard let root, let top = reader.mapping(root, what: "a route test file", allowed: ["version", "tests"]) else {
            throw ConfigErrors(reader.errors.isEmpty ? [ConfigError(file: file, line: 1, column: 1, "empty test file; expected version: 1 and tests")] : reader.errors)
        }
        var cases: [RouteTestCase] = []
        if let t = top["tests"], let items = reader.sequence(t.value, what: "tests") {
            for item in items {
                guard let m = reader.mapping(item, what: "a test", allowed: ["name", "given", "expect"]) else { continue }
                let name = m["name"].flatMap { reader.string($0.value, what: "name") } ?? "(unnamed)"
                guard let g = m["given"]?.value else { reader.error(item, "a test needs 'given': the event"); continue }
                guard let e = m["expect"]?.value else { reader.error(item, "a test needs 'expect': the deliveries (or [] for none)"); continue }
                guard let event = parseEvent(g, reader) else { continue }
                var expects: [RouteTestCase.Expectation] = []
                for x in reader.sequence(e, what: "expect") ?? [] {
                    guard let xm = reader.mapping(x, what: "an expected delivery", allowed: ["route", "connector", "topic", "attributes", "data"]) else { continue }
                    guard let route = xm["route"].flatMap({ reader.string($0.value, what: "route") }) else {
                        reader.error(x, "an expected delivery needs 'route'")
                        continue
                    }
                    var attributes: [String: String] = [:]
                    if let a = xm["attributes"]?.value {
                        for (k, _, v) in reader.entries(a, what: "attributes") ?? [] { attributes[k] = reader.string(v, what: k) ?? "" }
                    }
                    expects.append(.init(route: route, connector: xm["connector"].flatMap { reader.string($0.value, what: "connector") },
                                         topic: xm["topic"].flatMap { reader.string($0.value, what: "topic") },
                                         attributes: attributes, data: xm["data"].map { dataBytes($0.value) },
                                         location: SourceLocation(file: file, line: x.mark?.line ?? 1, column: x.mark?.column ?? 1)))
                }
                cases.append(RouteTestCase(name: name, event: event, expect: expects,
                                           location: SourceLocation(file: file, line: item.mark?.line ?? 1, column: item.mark?.column ?? 1)))
            }
        }
        if !reader.errors.isEmpty { throw ConfigErrors(reader.errors) }
        return cases
    }

    /// Builds an event from a `given:` mapping (also used by `routes test --explain`).
    static func parseEvent(_ node: Node, _ reader: YAMLReader) -> Event? {
        guard let m = reader.mapping(node, what: "the given event", allowed: givenKeys) else { return nil }
        guard let topicNode = m["topic"]?.value, let topicText = reader.string(topicNode, what: "topic") else {
            reader.error(node, "the given event needs a 'topic'")
            return nil
        }
        let topic: Topic
        do { topic = try Topic(topicText) } catch { reader.error(topicNode, "invalid topic: \(error.reason)"); return nil }
        var e = Event(topic: topic, id: "test-1", source: "meshgate://test", type: "meshgate.publish")
        func s(_ k: String) -> String? { m[k].flatMap { reader.string($0.value, what: k) } }
        if let v = s("id") { e.id = v }
        if let v = s("source") { e.source = v }
        if let v = s("type") { e.type = v }
        e.subject = s("subject")
        e.datacontenttype = s("datacontenttype")
        e.dataschema = s("dataschema")
        e.partitionKey = s("partitionkey")
        if let t = m["time"]?.value, let text = reader.string(t, what: "time") {
            do { e.time = try Timestamp(rfc3339: text) } catch { reader.error(t, "invalid time: \(error.message)") }
        }
        if let x = m["extensions"]?.value {
            for (k, _, v) in reader.entries(x, what: "extensions") ?? [] { e.extensions[k] = reader.string(v, what: k) }
        }
        if let d = m["data"]?.value {
            e.data = dataBytes(d)
            if case .scalar = d {} else if e.datacontenttype == nil { e.datacontenttype = "application/json" }
        }
        return e
    }

    /// A string scalar is the payload as is; anything else is encoded as JSON (sorted keys).
    static func dataBytes(_ node: Node) -> [UInt8] {
        if case .scalar(let s) = node, s.style != .plain || node.int == nil && node.float == nil && node.bool == nil {
            return Array(s.string.utf8)
        }
        let object = jsonObject(node)
        guard let data = try? JSONSerialization.data(withJSONObject: object, options: [.sortedKeys, .fragmentsAllowed]) else { return [] }
        return Array(data)
    }

    static func jsonObject(_ node: Node) -> Any {
        switch node {
        case .scalar(let s):
            if s.style == .plain {
                if node.null != nil { return NSNull() }
                if let b = node.bool { return b }
                if let i = node.int { return i }
                if let f = node.float { return f }
            }
            return s.string
        case .mapping(let m):
            var out: [String: Any] = [:]
            for (k, v) in m { out[k.string ?? ""] = jsonObject(v) }
            return out
        case .sequence(let seq):
            return seq.map(jsonObject)
        case .alias:
            return NSNull()
        }
    }

    /// Canonical JSON for comparing payloads regardless of key order or spacing.
    static func canonical(_ bytes: [UInt8]) -> [UInt8] {
        guard let object = try? JSONSerialization.jsonObject(with: Data(bytes), options: [.fragmentsAllowed]),
              let data = try? JSONSerialization.data(withJSONObject: object, options: [.sortedKeys, .fragmentsAllowed]) else { return bytes }
        return Array(data)
    }

    public static func run(_ test: RouteTestCase, table: RouteTable) -> RouteTestOutcome {
        var failures: [String] = []
        let decisions = table.evaluate(test.event)
        var actual: [(route: String, delivery: PlannedDelivery)] = []
        for d in decisions { for p in d.deliveries { actual.append((d.route, p)) } }
        for (route, p) in actual where p.error != nil {
            failures.append("route \(route) → \(p.label) fails: \(p.error!)")
        }
        for (route, decision) in table.explain(test.event).map({ ($0.route, $0) }) {
            if case .error(let errors)? = decision.filter {
                failures.append("route \(route): filter error: \(errors.map(\.description).joined(separator: "; "))")
            }
        }
        var unmatched = Array(actual.indices)
        for x in test.expect {
            let hit = unmatched.firstIndex { i in
                let (route, p) = actual[i]
                guard route == x.route, let ev = p.event else { return false }
                if let c = x.connector, p.connector != c { return false }
                if x.connector == nil && p.connector != nil { return false }
                if let t = x.topic, ev.topic.name != t { return false }
                let input = CESQLInput(ev)
                for (k, v) in x.attributes where input.attribute(k) != v { return false }
                if let d = x.data, canonical(d) != canonical(ev.data) { return false }
                return true
            }
            if let hit { unmatched.remove(at: hit) } else {
                var what = "route \(x.route)"
                if let c = x.connector { what += " connector \(c)" }
                if let t = x.topic { what += " topic \(t)" }
                if !x.attributes.isEmpty { what += " attributes \(x.attributes.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: ","))" }
                failures.append("\(x.location): expected a delivery to \(what), but none matched")
            }
        }
        for i in unmatched {
            let (route, p) = actual[i]
            guard let ev = p.event else { continue }
            failures.append("unexpected delivery: route \(route) → \(p.connector.map { "connector \($0)" } ?? "log") topic \(ev.topic)")
        }
        if !failures.isEmpty {
            let summary = actual.compactMap { r, p in p.event.map { "\(r) → \(p.connector.map { "connector \($0)" } ?? "log") topic \($0.topic)" } }
            failures.append("actual deliveries: \(summary.isEmpty ? "none" : summary.joined(separator: "; "))")
        }
        return RouteTestOutcome(test: test, failures: failures)
    }
}

extension RouteTestRunner {
    /// One event from a YAML or JSON mapping shaped like a test's `given:`.
    public static func event(fromYAML text: String) throws(ConfigErrors) -> Event {
        let reader = YAMLReader(file: "<event>", environment: [:])
        let node: Node?
        do { node = try Yams.compose(yaml: text) } catch { throw ConfigErrors([RouteLoader.yamlError(error, file: "<event>", text: text)]) }
        guard let node, let event = parseEvent(node, reader) else {
            throw ConfigErrors(reader.errors.isEmpty ? [ConfigError(file: "<event>", line: 1, column: 1, "expected an event mapping with at least 'topic'")] : reader.errors)
        }
        return event
    }
}
