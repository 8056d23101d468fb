import Foundation
import MeshAuth
import MeshCore
import Yams

/// The `auth:` section of meshgate.yaml → `AuthConfiguration`. Every error names the file,
/// position and key path (`auth.tokens[1].publish[0]`). docs/security.md describes the section.
enum AuthSection {
    static let sectionKeys = ["enabled", "tokens", "roles", "jwt"]
    static let grantKeys = ["publish", "deny_publish", "subscribe", "deny_subscribe", "admin", "rate", "burst"]
    static let jwtKeys = ["algorithm", "secret", "secret_file", "public_key", "public_key_file", "issuer", "audience",
                          "role_claim", "name_claim", "leeway_seconds"]

    struct Reader {
        let path: String

        func error(_ node: Node?, _ key: String, _ message: String) -> ConfigError {
            let mark = node?.mark
            return ConfigError("\(path):\(mark.map { "\($0.line):\($0.column)" } ?? "1:1"): \(key): \(message)")
        }

        func mapping(_ node: Node, _ key: String, allowed: [String]) throws(ConfigError) -> [(String, Node, Node)] {
            guard case .mapping(let m) = node else { throw error(node, key, "expected a mapping") }
            var out: [(String, Node, Node)] = []
            for (k, v) in m {
                guard let name = k.string, allowed.contains(name) else {
                    throw error(k, key, "unknown key \"\(k.string ?? "?")\"; expected one of \(allowed.joined(separator: ", "))")
                }
                out.append((name, k, v))
            }
            return out
        }

        func scalar(_ node: Node, _ key: String) throws(ConfigError) -> String {
            guard case .scalar(let s) = node else { throw error(node, key, "expected a single value") }
            return s.string
        }

        func bool(_ node: Node, _ key: String) throws(ConfigError) -> Bool {
            let text = try scalar(node, key)
            guard let b = GatewayConfig.parseBool(text) else { throw error(node, key, "\"\(text)\" is not true or false") }
            return b
        }

        func patterns(_ node: Node, _ key: String) throws(ConfigError) -> [TopicPattern] {
            let items: [Node]
            switch node {
            case .scalar: items = [node]
            case .sequence(let s): items = Array(s)
            default: throw error(node, key, "expected a topic pattern or a list of them")
            }
            var out: [TopicPattern] = []
            for (i, item) in items.enumerated() {
                let k = node.sequence == nil ? key : "\(key)[\(i)]"
                let text = try scalar(item, k)
                do { out.append(try TopicPattern(text)) } catch {
                    throw self.error(item, k, "\"\(text)\" is not a topic pattern: \(error.message)")
                }
            }
            return out
        }

        func file(_ node: Node, _ key: String) throws(ConfigError) -> String {
            let name = try scalar(node, key)
            let resolved = name.hasPrefix("/") ? name : URL(fileURLWithPath: path).deletingLastPathComponent().appendingPathComponent(name).path
            guard let data = FileManager.default.contents(atPath: resolved), let text = String(data: data, encoding: .utf8) else {
                throw error(node, key, "cannot read \(resolved)")
            }
            return text
        }

        func grant(_ node: Node, _ key: String, extra: [String]) throws(ConfigError) -> (AuthConfiguration.Grant, [(String, Node, Node)]) {
            var g = AuthConfiguration.Grant()
            var allow = (publish: [TopicPattern](), subscribe: [TopicPattern]())
            var deny = allow
            var rate: (Double, Node)?
            var burst: (Int, Node)?
            var rest: [(String, Node, Node)] = []
            for (name, keyNode, value) in try mapping(node, key, allowed: grantKeys + extra) {
                let k = "\(key).\(name)"
                switch name {
                case "publish": allow.publish = try patterns(value, k)
                case "subscribe": allow.subscribe = try patterns(value, k)
                case "deny_publish": deny.publish = try patterns(value, k)
                case "deny_subscribe": deny.subscribe = try patterns(value, k)
                case "admin": g.admin = try bool(value, k)
                case "rate":
                    let text = try scalar(value, k)
                    guard let r = Double(text), r > 0, r <= 10_000_000 else {
                        throw error(value, k, "\"\(text)\" is not a rate in events per second (more than 0, at most 10000000)")
                    }
                    rate = (r, value)
                case "burst":
                    let text = try scalar(value, k)
                    guard let b = Int(text), b >= 1, b <= 100_000_000 else { throw error(value, k, "\"\(text)\" is not a count from 1 to 100000000") }
                    burst = (b, value)
                default: rest.append((name, keyNode, value))
                }
            }
            if let (_, node) = burst, rate == nil { throw error(node, "\(key).burst", "burst needs a rate") }
            if let (r, _) = rate { g.rate = PublishRate(eventsPerSecond: r, burst: burst?.0 ?? max(1, Int(r.rounded(.up)))) }
            g.publish = TopicACL(allow: allow.publish, deny: deny.publish)
            g.subscribe = TopicACL(allow: allow.subscribe, deny: deny.subscribe)
            return (g, rest)
        }
    }

    /// Parses the section; `node` is the value of the `auth` key.
    static func parse(_ node: Node, path: String) throws(ConfigError) -> AuthConfiguration {
        let r = Reader(path: path)
        var config = AuthConfiguration()
        for (name, _, value) in try r.mapping(node, "auth", allowed: sectionKeys) {
            let key = "auth.\(name)"
            switch name {
            case "enabled": config.enabled = try r.bool(value, key)
            case "tokens":
                guard case .sequence(let items) = value else { throw r.error(value, key, "expected a list of tokens") }
                for (i, item) in items.enumerated() {
                    let k = "\(key)[\(i)]"
                    let (grant, rest) = try r.grant(item, k, extra: ["name", "sha256"])
                    var tokenName: String?
                    var hash: [UInt8]?
                    for (field, _, v) in rest {
                        let text = try r.scalar(v, "\(k).\(field)")
                        if field == "name" {
                            guard !text.isEmpty, text.utf8.count <= 255 else { throw r.error(v, "\(k).name", "a name is 1 to 255 bytes") }
                            guard !config.tokens.contains(where: { $0.name == text }) else {
                                throw r.error(v, "\(k).name", "\"\(text)\" names another token already")
                            }
                            tokenName = text
                        } else {
                            guard let h = TokenHash.parseHex(text) else {
                                throw r.error(v, "\(k).sha256", "expected the 64 hex digits of a SHA-256 (meshgate auth hash-token TOKEN prints it)")
                            }
                            hash = h
                        }
                    }
                    guard let tokenName else { throw r.error(item, k, "a token needs a name") }
                    guard let hash else { throw r.error(item, k, "a token needs sha256, the hash of the token (meshgate auth hash-token TOKEN)") }
                    if config.tokens.contains(where: { $0.sha256 == hash }) {
                        throw r.error(item, "\(k).sha256", "the same hash is given to another token already")
                    }
                    config.tokens.append(AuthConfiguration.StaticToken(name: tokenName, sha256: hash, grant: grant))
                }
            case "roles":
                guard case .mapping(let roles) = value else { throw r.error(value, key, "expected a mapping of role names to ACLs") }
                for (roleKey, roleValue) in roles {
                    guard let role = roleKey.string, !role.isEmpty else { throw r.error(roleKey, key, "a role name must be a non-empty string") }
                    config.roles[role] = try r.grant(roleValue, "\(key).\(role)", extra: []).0
                }
            case "jwt":
                config.jwt = try parseJWT(value, r)
            default: break
            }
        }
        if let jwt = config.jwt {
            do { _ = try JWTVerifier(jwt) } catch { throw r.error(node, "auth.jwt", error.message) }
        }
        return config
    }

    private static func parseJWT(_ node: Node, _ r: Reader) throws(ConfigError) -> AuthConfiguration.JWTSettings {
        var algorithm: AuthConfiguration.JWTSettings.Algorithm?
        var key: (String, String)?  // (key name, material)
        var settings = AuthConfiguration.JWTSettings(algorithm: .hs256, key: "")
        for (name, keyNode, value) in try r.mapping(node, "auth.jwt", allowed: jwtKeys) {
            let k = "auth.jwt.\(name)"
            switch name {
            case "algorithm":
                let text = try r.scalar(value, k)
                guard let a = AuthConfiguration.JWTSettings.Algorithm(rawValue: text.uppercased()) else {
                    throw r.error(value, k, "\"\(text)\" is not HS256, ES256 or RS256")
                }
                algorithm = a
            case "secret", "public_key", "secret_file", "public_key_file":
                if let (other, _) = key { throw r.error(keyNode, k, "give one of secret, secret_file, public_key, public_key_file; \(other) is given already") }
                key = (name, name.hasSuffix("_file") ? try r.file(value, k) : try r.scalar(value, k))
            case "issuer": settings.issuer = try r.scalar(value, k)
            case "audience": settings.audience = try r.scalar(value, k)
            case "role_claim": settings.roleClaim = try r.scalar(value, k)
            case "name_claim": settings.nameClaim = try r.scalar(value, k)
            case "leeway_seconds":
                let text = try r.scalar(value, k)
                guard let s = Int(text), (0...3600).contains(s) else { throw r.error(value, k, "\"\(text)\" is not a number of seconds from 0 to 3600") }
                settings.leewaySeconds = s
            default: break
            }
        }
        guard let algorithm else { throw r.error(node, "auth.jwt", "algorithm is required: HS256, ES256 or RS256") }
        guard let (keyName, material) = key else {
            throw r.error(node, "auth.jwt", algorithm == .hs256 ? "HS256 needs secret or secret_file" : "\(algorithm.rawValue) needs public_key or public_key_file (PEM)")
        }
        let symmetric = keyName.hasPrefix("secret")
        if symmetric != (algorithm == .hs256) {
            throw r.error(node, "auth.jwt.\(keyName)", algorithm == .hs256 ? "HS256 takes secret or secret_file, not a public key" : "\(algorithm.rawValue) takes public_key or public_key_file, not a secret")
        }
        settings.algorithm = algorithm
        settings.key = symmetric ? material.trimmingCharacters(in: .newlines) : material
        return settings
    }

    /// Reads only the `auth:` section of a configuration file (for reloads); nil when it has none.
    static func load(path: String) throws(ConfigError) -> AuthConfiguration? {
        guard let data = FileManager.default.contents(atPath: path), let text = String(data: data, encoding: .utf8) else {
            throw ConfigError("\(path): cannot read the file")
        }
        let root: Node?
        do { root = try Yams.compose(yaml: text) } catch { throw ConfigError("\(path): not valid YAML: \(error)") }
        guard case .mapping(let m)? = root else { return nil }
        for (k, v) in m where k.string == "auth" {
            if case .mapping = v { return try parse(v, path: path) }
        }
        return nil
    }
}
