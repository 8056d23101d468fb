import Foundation
import MeshCore
import MeshRouting
import Yams

/// Validates one route file's tree. Keys and their meaning are documented in docs/routes.md.
struct FileParser {
    let reader: YAMLReader

    static let topKeys = ["version", "connectors", "routes"]
    static let routeKeys = ["name", "description", "from", "where", "to", "set", "remove", "allow_loop"]
    static let destinationKeys = ["topic", "connector", "retry", "dead_letter", "ordering", "in_flight", "buffer", "start", "set", "remove"]
    static let retryKeys = ["attempts", "backoff", "max_backoff", "max_elapsed", "jitter", "retry_on", "respect_retry_after"]
    static let connectorKeys: [ConnectorSpec.Kind: [String]] = [
        .mqtt: ["type", "url", "client_id", "username", "password", "protocol", "qos", "retain", "clean_session", "keepalive",
                "session_expiry", "max_inflight", "publish_inflight", "reconnect_backoff", "reconnect_max_backoff", "tls_insecure",
                "ca_file", "cert_file", "key_file"],
        .webhook: ["type", "url", "secret", "mode", "timeout", "connect_timeout", "concurrency", "headers", "http_version",
                   "deny_private", "batch_size", "batch_linger", "ca_file", "cert_file", "key_file"],
        .meshgate: ["type", "url", "token", "ca_file", "cert_file", "key_file", "server_name"],
    ]
    static let schemes: [ConnectorSpec.Kind: [String]] = [
        .mqtt: ["mqtt", "mqtts"], .webhook: ["http", "https"], .meshgate: ["tcp", "tls"],
    ]
    /// Options whose values are secrets: shown as *** by the API and logs.
    static let secretKeys: Set<String> = ["secret", "password", "token"]

    func location(_ node: Node) -> SourceLocation {
        SourceLocation(file: reader.file, line: node.mark?.line ?? 1, column: node.mark?.column ?? 1)
    }

    func parseFile(_ root: Node) -> FileContents {
        var out = FileContents()
        guard let top = reader.mapping(root, what: "a route file", allowed: Self.topKeys) else { return out }
        if let v = top["version"] {
            if reader.string(v.value, what: "version") != "1" {
                reader.error(v.value, "unsupported version; expected 'version: 1'")
            }
        } else {
            reader.error(root, "missing 'version: 1' at the top of the route file")
        }
        if let c = top["connectors"], let entries = reader.entries(c.value, what: "connectors") {
            for (name, keyNode, value) in entries {
                if let spec = parseConnector(name: name, keyNode: keyNode, value) { out.connectors.append(spec) } else { out.invalidConnectors.insert(name) }
            }
        }
        if let r = top["routes"], let items = reader.sequence(r.value, what: "routes") {
            for item in items { if let d = parseRoute(item) { out.routes.append(d) } }
        }
        return out
    }

    // MARK: connectors

    func parseConnector(name: String, keyNode: Node, _ node: Node) -> ConnectorSpec? {
        if !isName(name) { reader.error(keyNode, "connector name '\(name)' may only use letters, digits, '.', '_' and '-'") }
        guard case .mapping = node else {
            reader.error(node, "expected connector '\(name)' as a mapping with 'type' and 'url'")
            return nil
        }
        guard let entries = reader.entries(node, what: "connector '\(name)'") else { return nil }
        guard let typeEntry = entries.first(where: { $0.key == "type" }) else {
            reader.error(node, "connector '\(name)' needs a 'type': mqtt, webhook or meshgate")
            return nil
        }
        guard let typeText = reader.string(typeEntry.value, what: "type") else { return nil }
        guard let kind = ConnectorSpec.Kind(rawValue: typeText) else {
            reader.error(typeEntry.value, "unknown connector type '\(typeText)'\(Suggest.didYouMean(typeText, in: ConnectorSpec.Kind.allCases.map(\.rawValue))); expected mqtt, webhook or meshgate")
            return nil
        }
        let allowed = Self.connectorKeys[kind]!
        var options: [String: String] = [:]
        var redacted: [String: String] = [:]
        var url: String?
        var ok = true
        for (key, keyNode, value) in entries where key != "type" {
            guard allowed.contains(key) else {
                reader.error(keyNode, "unknown key '\(key)' for a \(kind.rawValue) connector\(Suggest.didYouMean(key, in: allowed)); expected one of: \(allowed.joined(separator: ", "))")
                ok = false
                continue
            }
            if key == "headers" {
                guard let headers = reader.entries(value, what: "headers") else { ok = false; continue }
                for (h, hk, hv) in headers {
                    guard let s = reader.string(hv, what: "header \(h)") else { ok = false; continue }
                    if let problem = Self.headerProblem(name: h, value: s) { reader.error(hk, problem); ok = false; continue }
                    options["headers.\(h)"] = s
                    redacted["headers.\(h)"] = h.lowercased() == "authorization" ? "***" : (reader.raw(hv) ?? "")
                }
                continue
            }
            guard let s = reader.string(value, what: key) else { ok = false; continue }
            options[key] = s
            redacted[key] = Self.secretKeys.contains(key) ? "***" : (reader.raw(value) ?? "")
            switch key {
            case "url":
                url = s
                let scheme = s.split(separator: ":", maxSplits: 1).first.map(String.init) ?? ""
                let schemes = Self.schemes[kind]!
                if !s.contains("://") || !schemes.contains(scheme.lowercased()) {
                    reader.error(value, "a \(kind.rawValue) connector's url must start with \(schemes.map { $0 + "://" }.joined(separator: " or ")), not '\(s)'")
                    ok = false
                } else if s.split(separator: "/", omittingEmptySubsequences: true).count < 2 {
                    reader.error(value, "the url '\(s)' has no host")
                    ok = false
                }
            case "qos":
                if !["0", "1", "2"].contains(s) { reader.error(value, "qos must be 0, 1 or 2, not '\(s)'"); ok = false }
            case "protocol":
                if !["3.1.1", "5"].contains(s) { reader.error(value, "protocol must be 3.1.1 or 5, not '\(s)'"); ok = false }
            case "mode":
                if !["binary", "structured", "batch"].contains(s) { reader.error(value, "mode must be binary, structured or batch, not '\(s)'"); ok = false }
            case "session_expiry" where s == "never":
                break
            case "timeout", "keepalive", "connect_timeout":
                if (YAMLReader.parseDuration(s) ?? .zero) <= .zero { reader.error(value, "\(key) must be a duration like 10s, not '\(s)'"); ok = false }
            case "session_expiry", "reconnect_backoff", "reconnect_max_backoff":
                if YAMLReader.parseDuration(s) == nil { reader.error(value, "\(key) must be a duration like 10s, not '\(s)'"); ok = false }
            case "batch_linger":
                if YAMLReader.parseDuration(s) == nil { reader.error(value, "batch_linger must be a duration like 5ms, not '\(s)'"); ok = false }
            case "concurrency", "batch_size":
                if !(1...10_000).contains(Int(s) ?? 0) { reader.error(value, "\(key) must be a whole number from 1 to 10000, not '\(s)'"); ok = false }
            case "max_inflight", "publish_inflight":
                if !(1...65535).contains(Int(s) ?? 0) { reader.error(value, "\(key) must be a whole number from 1 to 65535, not '\(s)'"); ok = false }
            case "http_version":
                if !["auto", "1.1", "2"].contains(s) { reader.error(value, "http_version must be auto, 1.1 or 2, not '\(s)'"); ok = false }
            case "secret" where kind == .webhook:
                // Standard Webhooks secrets: whsec_<base64>, several separated by spaces while rotating.
                // The message never shows the value.
                let items = s.split(whereSeparator: { $0 == " " || $0 == "," || $0 == "\n" || $0 == "\t" })
                if items.isEmpty { reader.error(value, "secret is empty; expected whsec_ followed by base64"); ok = false }
                for (i, item) in items.enumerated() {
                    let encoded = item.hasPrefix("whsec_") ? String(item.dropFirst(6)) : String(item)
                    if (Data(base64Encoded: encoded) ?? Data()).isEmpty {
                        reader.error(value, "secret \(i + 1) of \(items.count) is not a Standard Webhooks secret; expected whsec_ followed by base64")
                        ok = false
                    }
                }
            case "retain", "clean_session", "tls_insecure", "deny_private":
                if !["true", "false"].contains(s.lowercased()) { reader.error(value, "\(key) must be true or false, not '\(s)'"); ok = false }
            default: break
            }
        }
        guard let url else {
            reader.error(node, "connector '\(name)' needs a 'url'")
            return nil
        }
        guard ok else { return nil }
        return ConnectorSpec(name: name, kind: kind, url: url, options: options, redactedOptions: redacted, location: location(keyNode))
    }

    /// Why a webhook `headers:` entry cannot be sent, or nil. The connector sets the CloudEvents,
    /// signature and framing headers itself.
    static func headerProblem(name: String, value: String) -> String? {
        let token = !name.isEmpty && name.utf8.allSatisfy { b in
            (b >= 0x30 && b <= 0x39) || (b >= 0x41 && b <= 0x5A) || (b >= 0x61 && b <= 0x7A) || "!#$%&'*+-.^_`|~".utf8.contains(b)
        }
        if !token { return "'\(name)' is not a valid HTTP header name" }
        let n = name.lowercased()
        if n.hasPrefix("ce-") || n.hasPrefix("webhook-")
            || ["content-type", "content-length", "host", "expect", "transfer-encoding", "connection", "meshgate-topic"].contains(n) {
            return "header '\(name)' is set by the webhook connector and cannot be given in headers"
        }
        if value.utf8.contains(where: { $0 == 0x0D || $0 == 0x0A || $0 == 0 }) { return "header '\(name)' has a line break in its value" }
        return nil
    }

    func isName(_ s: String) -> Bool {
        !s.isEmpty && s.count <= 100 && s.allSatisfy { $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "-" || $0 == "_" || $0 == ".") }
    }

    // MARK: routes

    func parseRoute(_ node: Node) -> RouteDraft? {
        guard let m = reader.mapping(node, what: "a route", allowed: Self.routeKeys) else { return nil }
        let before = reader.errors.count
        guard let nameNode = m["name"]?.value, let name = reader.string(nameNode, what: "name") else {
            if m["name"] == nil { reader.error(node, "a route needs a 'name'") }
            return nil
        }
        if !isName(name) { reader.error(nameNode, "route name '\(name)' may only use letters, digits, '.', '_' and '-'") }
        var references: [(String, SourceLocation, Bool)] = []

        // from
        var source: RouteSource?
        var sourceConnector: String?
        if let from = m["from"]?.value {
            switch from {
            case .mapping:
                if let f = reader.mapping(from, what: "from", allowed: ["connector", "topic"]) {
                    let c = f["connector"].flatMap { reader.string($0.value, what: "connector") }
                    let t = f["topic"].flatMap { topicPattern($0.value, what: "the connector's topic filter") }
                    if f["connector"] == nil { reader.error(from, "an ingress 'from' needs 'connector' and 'topic'") }
                    if f["topic"] == nil { reader.error(from, "an ingress 'from' needs a 'topic' filter") }
                    if let c, let t, let cn = f["connector"]?.value {
                        source = .connector(name: c, filter: t)
                        sourceConnector = c
                        references.append((c, location(cn), true))
                    }
                }
            default:
                if let p = topicPattern(from, what: "from") { source = .topics(p) }
            }
        } else {
            reader.error(node, "route '\(name)' needs a 'from': a topic pattern, or {connector, topic}")
        }

        // where
        var filter: CESQLExpression?
        if let w = m["where"]?.value, let text = reader.string(w, what: "where") {
            do {
                let expr = try CESQLExpression(text)
                if let t = expr.resultType, t != .boolean {
                    reader.error(w, "a 'where' filter must be a boolean expression; this one is \(t)")
                } else {
                    filter = expr
                }
            } catch {
                reader.error(w, "invalid CESQL filter: \(error.message)", offset: error.offset)
            }
        }

        let allowLoop = m["allow_loop"].flatMap { reader.bool($0.value, what: "allow_loop") } ?? false
        let captures = source?.pattern.wildcardCount ?? 0
        let routeTransform = transform(set: m["set"]?.value, remove: m["remove"]?.value, captures: captures)

        // to
        var destinations: [DestinationSpec] = []
        if let to = m["to"]?.value, let items = reader.sequence(to, what: "to") {
            if items.isEmpty { reader.error(to, "route '\(name)' has no destinations; 'to' needs at least one") }
            for item in items {
                if let d = destination(item, captures: captures, routeTransform: routeTransform, references: &references) {
                    destinations.append(d)
                    // Loop check: can this destination feed the route's own source?
                    if !allowLoop, let source {
                        var loops = false
                        switch (source, d.target) {
                        case (.topics(let p), .topic(let t)): loops = LoopCheck.canLoop(t, from: p)
                        case (.connector(let c, let p), .connector(let dc, let t)) where c == dc: loops = LoopCheck.canLoop(t, from: p)
                        default: break
                        }
                        if loops {
                            reader.error(item, "this destination's topic '\(d.topicTemplate.text)' can match the route's own source '\(source.pattern.text)', so events would loop forever; change the topic or set 'allow_loop: true' on the route")
                        }
                        if case .topics(let p) = source, let dl = d.deadLetter, p.matches(dl) {
                            reader.error(item, "the dead_letter topic '\(dl)' matches the route's own source '\(p.text)', so failed events would be routed again; choose another topic or set 'allow_loop: true'")
                        }
                    }
                }
            }
        } else if m["to"] == nil {
            reader.error(node, "route '\(name)' needs 'to': a list of destinations")
        }
        _ = sourceConnector
        let loc = location(nameNode)
        guard reader.errors.count == before, let source else {
            return RouteDraft(name: name, location: loc, route: nil, references: references)
        }
        let route = Route(name: name, source: source, filter: filter, destinations: destinations, allowLoop: allowLoop, location: loc)
        return RouteDraft(name: name, location: loc, route: route, references: references)
    }

    func topicPattern(_ node: Node, what: String) -> TopicPattern? {
        guard let text = reader.string(node, what: what) else { return nil }
        do { return try TopicPattern(text) } catch {
            let offset = error.byteOffset.map { scalarOffset(text, byte: $0) } ?? 0
            reader.error(node, "invalid topic pattern '\(text)' in \(what): \(error.reason)", offset: offset)
            return nil
        }
    }

    func scalarOffset(_ text: String, byte: Int) -> Int {
        String(decoding: Array(text.utf8).prefix(byte), as: UTF8.self).unicodeScalars.count
    }

    func template(_ node: Node, what: String, captures: Int, attributes: Bool) -> Template? {
        guard let text = reader.string(node, what: what) else { return nil }
        do { return try Template(text, captures: captures, attributes: attributes) } catch {
            reader.error(node, "invalid \(what) template '\(text)': \(error.message)", offset: error.offset)
            return nil
        }
    }

    func transform(set: Node?, remove: Node?, captures: Int) -> Transform {
        var t = Transform()
        if let remove, let items = reader.sequence(remove, what: "remove") {
            for item in items {
                guard let name = reader.string(item, what: "an attribute name") else { continue }
                if Transform.required.contains(name) {
                    reader.error(item, "cannot remove '\(name)': CloudEvents requires it")
                } else if !Event.isValidAttributeName(name) || Transform.unsettable.contains(name) {
                    reader.error(item, "'\(name)' is not a removable attribute (lowercase a-z and 0-9, not topic or data)")
                } else {
                    t.remove.append(name)
                }
            }
        }
        if let set, let entries = reader.entries(set, what: "set") {
            for (name, keyNode, value) in entries {
                if Transform.unsettable.contains(name) || !Event.isValidAttributeName(name) {
                    let hint = name == "topic" ? "; use the destination's 'topic' template to change the topic" : ""
                    reader.error(keyNode, "cannot set '\(name)': expected a CloudEvents attribute name (lowercase a-z and 0-9)\(hint)")
                    continue
                }
                if let v = template(value, what: "set.\(name)", captures: captures, attributes: true) {
                    t.assignments.append(.init(attribute: name, value: v))
                }
            }
        }
        return t
    }

    func destination(_ node: Node, captures: Int, routeTransform: Transform,
                     references: inout [(String, SourceLocation, Bool)]) -> DestinationSpec? {
        guard let m = reader.mapping(node, what: "a destination", allowed: Self.destinationKeys) else { return nil }
        let before = reader.errors.count
        var topic: Template?
        if let t = m["topic"]?.value { topic = template(t, what: "topic", captures: captures, attributes: false) }
        var target: DestinationSpec.Target?
        if let c = m["connector"]?.value, let name = reader.string(c, what: "connector") {
            references.append((name, location(c), false))
            let t = topic ?? (try? Template("{topic}", captures: captures, attributes: false))
            if let t { target = .connector(name: name, topic: t) }
        } else if let topic {
            target = .topic(topic)
        } else if m["topic"] == nil && m["connector"] == nil {
            reader.error(node, "a destination needs 'topic' (a log topic) or 'connector' (a named connector)")
        }

        var policy = DeliveryPolicy()
        if let r = m["retry"]?.value, let rm = reader.mapping(r, what: "retry", allowed: Self.retryKeys) {
            if let a = rm["attempts"]?.value {
                if reader.raw(a) == "unlimited" { policy.attempts = nil } else { policy.attempts = reader.int(a, what: "retry.attempts", range: 1...1_000_000) }
            }
            if let b = rm["backoff"]?.value, let d = reader.duration(b, what: "retry.backoff") {
                if d <= .zero { reader.error(b, "retry.backoff must be more than 0") } else { policy.backoff = d }
            }
            if let b = rm["max_backoff"]?.value, let d = reader.duration(b, what: "retry.max_backoff") { policy.maxBackoff = d }
            if let b = rm["max_elapsed"]?.value, let d = reader.duration(b, what: "retry.max_elapsed") { policy.maxElapsed = d }
            if let j = rm["jitter"]?.value, let text = reader.string(j, what: "retry.jitter") {
                switch text.lowercased() {
                case "full", "true": policy.jitter = true
                case "none", "false": policy.jitter = false
                default: reader.error(j, "retry.jitter must be full or none, not '\(text)'")
                }
            }
            if let ro = rm["retry_on"]?.value, let items = reader.sequence(ro, what: "retry.retry_on") {
                var classes: Set<String> = []
                for item in items {
                    guard let s = reader.string(item, what: "a status class") else { continue }
                    let valid = (s.count == 3 && s.hasSuffix("xx") && "12345".contains(s.first!)) || (Int(s).map { (100...599).contains($0) } ?? false)
                    if valid { classes.insert(s) } else { reader.error(item, "expected a status like 503 or a class like 5xx, not '\(s)'") }
                }
                policy.retryOn = classes
            }
            if let b = rm["respect_retry_after"]?.value, let v = reader.bool(b, what: "retry.respect_retry_after") { policy.respectRetryAfter = v }
            if policy.backoff > policy.maxBackoff {
                reader.error(rm["max_backoff"]?.value ?? r, "retry.max_backoff (\(policy.maxBackoff)) is shorter than retry.backoff (\(policy.backoff)); expected max_backoff ≥ backoff")
            }
            if let e = policy.maxElapsed, e < policy.backoff {
                reader.error(rm["max_elapsed"]?.value ?? r, "retry.max_elapsed (\(e)) is shorter than the first backoff (\(policy.backoff)), so no retry could ever happen")
            }
        }
        var deadLetter: Topic?
        if let d = m["dead_letter"]?.value, let text = reader.string(d, what: "dead_letter") {
            do { deadLetter = try Topic(text) } catch { reader.error(d, "invalid dead_letter topic '\(text)': \(error.reason); expected a plain topic (no wildcards)") }
        }
        if let o = m["ordering"]?.value, let text = reader.string(o, what: "ordering") {
            if let ordering = DeliveryPolicy.Ordering(rawValue: text) { policy.ordering = ordering } else {
                reader.error(o, "ordering must be 'key' (per partition key) or 'none', not '\(text)'")
            }
        }
        if let n = m["in_flight"]?.value, let v = reader.int(n, what: "in_flight", range: 1...10_000) { policy.inFlight = v }
        if let n = m["buffer"]?.value, let v = reader.int(n, what: "buffer", range: 1...100_000) { policy.buffer = v }
        if let s = m["start"]?.value, let text = reader.string(s, what: "start") {
            switch text {
            case "latest": policy.startAtEarliest = false
            case "earliest": policy.startAtEarliest = true
            default: reader.error(s, "start must be 'latest' or 'earliest', not '\(text)'")
            }
        }
        // No silent drops: a policy that can give up needs somewhere to put what it gives up on.
        if deadLetter == nil && (policy.attempts != nil || policy.maxElapsed != nil) {
            let what = policy.attempts != nil ? "retry.attempts is \(policy.attempts!)" : "retry.max_elapsed is set"
            reader.error(m["retry"]?.value ?? node, "\(what) but there is no dead_letter topic, so events would be dropped silently after the last attempt; add 'dead_letter: <topic>' or use 'attempts: unlimited'")
        }
        let own = transform(set: m["set"]?.value, remove: m["remove"]?.value, captures: captures)
        let merged = Transform(assignments: routeTransform.assignments + own.assignments, remove: routeTransform.remove + own.remove)
        guard reader.errors.count == before, let target else { return nil }
        return DestinationSpec(target: target, transform: merged, policy: policy, deadLetter: deadLetter, location: location(node))
    }
}
