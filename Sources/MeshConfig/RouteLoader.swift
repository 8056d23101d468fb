import Foundation
import MeshCore
import MeshRouting
import Yams

/// Reads route files (`routes/*.yaml`, all merged) into a validated `RouteTable`, or reports every
/// problem at its `file:line:column`. Nothing partial is ever returned.
public enum RouteLoader {
    /// Route files in `path`: the `.yaml`/`.yml` files of a directory (not `*.test.yaml`), sorted,
    /// or the one file named.
    public static func routeFiles(at path: String) throws(ConfigErrors) -> [String] {
        var isDir: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isDir) else {
            throw ConfigErrors([ConfigError(file: path, line: 1, column: 1, "no such file or directory")])
        }
        guard isDir.boolValue else { return [path] }
        let names = (try? FileManager.default.contentsOfDirectory(atPath: path)) ?? []
        return names.filter { ($0.hasSuffix(".yaml") || $0.hasSuffix(".yml")) && !isTestFile($0) && !$0.hasPrefix(".") }
            .sorted().map { (path as NSString).appendingPathComponent($0) }
    }

    public static func isTestFile(_ name: String) -> Bool {
        name.hasSuffix(".test.yaml") || name.hasSuffix(".test.yml")
    }

    public static func load(path: String, environment: [String: String] = ProcessInfo.processInfo.environment) throws(ConfigErrors) -> RouteTable {
        let files = try routeFiles(at: path)
        var sources: [(String, String)] = []
        var errors: [ConfigError] = []
        for f in files {
            if let text = try? String(contentsOfFile: f, encoding: .utf8) { sources.append((f, text)) } else {
                errors.append(ConfigError(file: f, line: 1, column: 1, "cannot read the file (missing, unreadable or not UTF-8)"))
            }
        }
        if !errors.isEmpty { throw ConfigErrors(errors) }
        return try load(sources: sources, environment: environment)
    }

    /// Validates and merges route files given as (file name, text).
    public static func load(sources: [(file: String, text: String)], environment: [String: String] = [:]) throws(ConfigErrors) -> RouteTable {
        var errors: [ConfigError] = []
        var parsed: [FileContents] = []
        for (file, text) in sources {
            let reader = YAMLReader(file: file, environment: environment)
            let node: Node?
            do { node = try Yams.compose(yaml: text) } catch {
                errors.append(yamlError(error, file: file, text: text))
                continue
            }
            guard let node else {
                errors.append(ConfigError(file: file, line: 1, column: 1, "the file is empty; expected 'version: 1' with connectors and routes"))
                continue
            }
            parsed.append(FileParser(reader: reader).parseFile(node))
            errors += reader.errors
        }
        // Connectors first (routes in any file may use any connector), then routes.
        var connectors: [String: ConnectorSpec] = [:]
        for f in parsed {
            for c in f.connectors {
                if let first = connectors[c.name] {
                    errors.append(ConfigError(file: c.location.file, line: c.location.line, column: c.location.column,
                                              "duplicate connector name '\(c.name)' (first defined at \(first.location))"))
                } else {
                    connectors[c.name] = c
                }
            }
        }
        var routes: [Route] = []
        var names: [String: SourceLocation] = [:]
        for f in parsed {
            for draft in f.routes {
                if let first = names[draft.name] {
                    errors.append(ConfigError(file: draft.location.file, line: draft.location.line, column: draft.location.column,
                                              "duplicate route name '\(draft.name)' (first defined at \(first))"))
                    continue
                }
                names[draft.name] = draft.location
                let invalid = parsed.reduce(into: Set<String>()) { $0.formUnion($1.invalidConnectors) }
                errors += draft.checkConnectors(connectors).filter { e in !invalid.contains { e.reason.hasPrefix("unknown connector '\($0)'") } }
                if let route = draft.route { routes.append(route) }
            }
        }
        if !errors.isEmpty { throw ConfigErrors(errors) }
        return RouteTable(routes: routes, connectors: connectors, files: sources.map(\.file))
    }

    /// Where `key:` appears as a mapping key for the second time (a best effort for messages).
    static func secondOccurrence(of key: String, in text: String) -> (line: Int, column: Int)? {
        var seen: [Int: Int] = [:]  // indentation -> count
        for (i, line) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            let body = line.drop { $0 == " " || $0 == "-" }
            let indent = line.count - body.count
            if body.hasPrefix(key + ":") || body.hasPrefix("\"\(key)\":") {
                seen[indent, default: 0] += 1
                if seen[indent] == 2 { return (i + 1, indent + 1) }
            }
        }
        return nil
    }

    static func yamlError(_ error: Error, file: String, text: String) -> ConfigError {
        if let y = error as? YamlError {
            switch y {
            case .duplicatedKeysInMapping(let duplicates, _):
                // Point at the second occurrence, not at the mapping's start.
                let key = duplicates.first ?? "?"
                let at = secondOccurrence(of: key, in: text) ?? (1, 1)
                return ConfigError(file: file, line: at.line, column: at.column, "duplicate key '\(key)'")
            case .scanner(let context, let problem, let mark, _), .parser(let context, let problem, let mark, _),
                 .composer(let context, let problem, let mark, _):
                let ctx = context.map { " \($0.text)" } ?? ""
                return ConfigError(file: file, line: mark.line, column: mark.column, "invalid YAML: \(problem)\(ctx)")
            default: break
            }
        }
        return ConfigError(file: file, line: 1, column: 1, "invalid YAML: \(error)")
    }
}

struct FileContents {
    var connectors: [ConnectorSpec] = []
    var routes: [RouteDraft] = []
    /// Declared but invalid (already reported): references to them are not reported again.
    var invalidConnectors: Set<String> = []
}

/// A parsed route whose connector references are checked once every file is read.
struct RouteDraft {
    let name: String
    let location: SourceLocation
    let route: Route?
    /// (connector name, node position, needs ingress?)
    let references: [(name: String, at: SourceLocation, ingress: Bool)]

    func checkConnectors(_ connectors: [String: ConnectorSpec]) -> [ConfigError] {
        references.compactMap { ref in
            guard let c = connectors[ref.name] else {
                let known = connectors.keys.sorted()
                let hint = known.isEmpty ? "; no connectors are declared" : "\(Suggest.didYouMean(ref.name, in: known)); declared connectors: \(known.joined(separator: ", "))"
                return ConfigError(file: ref.at.file, line: ref.at.line, column: ref.at.column, "unknown connector '\(ref.name)'\(hint)")
            }
            if ref.ingress && c.kind == .webhook {
                return ConfigError(file: ref.at.file, line: ref.at.line, column: ref.at.column,
                                   "connector '\(ref.name)' is a webhook, which cannot be a route's source; expected an mqtt or meshgate connector")
            }
            return nil
        }
    }
}
