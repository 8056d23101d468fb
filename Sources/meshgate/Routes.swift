import ArgumentParser
import Foundation
import MeshConfig
import MeshCore
import MeshRouting
import Yams

/// `meshgate routes check|test`: validate route files and run route tests without a server.
struct Routes: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Check and test route files.",
        subcommands: [RoutesCheck.self, RoutesTest.self])
}

private func printErr(_ s: String) {
    FileHandle.standardError.write((s + "\n").data(using: .utf8)!)
}

/// Loads the table or prints every error and exits 2.
private func loadOrExit(_ path: String) throws -> RouteTable {
    do {
        return try RouteLoader.load(path: path)
    } catch {
        for e in error.errors { printErr(e.message) }
        printErr("\(error.errors.count) error(s) in \(path)")
        throw ExitCode(2)
    }
}

struct RoutesCheck: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "check",
        abstract: "Validate route files; exit 2 listing every error as file:line:column: error: ….")

    @Argument(help: "A routes directory or one route file.") var path = "./routes"

    func run() throws {
        let table = try loadOrExit(path)
        let destinations = table.routes.reduce(0) { $0 + $1.destinations.count }
        print("ok: \(table.routes.count) route(s), \(destinations) destination(s), \(table.connectors.count) connector(s) in \(table.files.count) file(s)")
    }
}

struct RoutesTest: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "test",
        abstract: "Run route test files (*.test.yaml), or explain how one event is routed.",
        discussion: """
        Test files sit beside the routes; see docs/routes.md for their format. Exit 1 when a test fails.
        --explain takes one event as a YAML or JSON mapping, e.g.
          meshgate routes test routes --explain '{topic: orders/eu, type: order.created, data: {total: 150}}'
        """)

    @Argument(help: "A routes directory (its *.test.yaml files are run).") var path = "./routes"
    @Option(help: "Explain why each route matches this event or not, instead of running tests.") var explain: String?

    func run() throws {
        let table = try loadOrExit(path)
        if let explain {
            try runExplain(explain, table: table)
            return
        }
        let files = RouteTestRunner.testFiles(at: path)
        if files.isEmpty {
            printErr("no route test files (*.test.yaml) in \(path)")
            throw ExitCode(1)
        }
        var passed = 0, failed = 0
        for file in files {
            let text = (try? String(contentsOfFile: file, encoding: .utf8)) ?? ""
            let cases: [RouteTestCase]
            do { cases = try RouteTestRunner.parse(file: file, text: text) } catch {
                for e in error.errors { printErr(e.message) }
                throw ExitCode(2)
            }
            for c in cases {
                let outcome = RouteTestRunner.run(c, table: table)
                if outcome.passed {
                    passed += 1
                    print("ok   \(c.name)")
                } else {
                    failed += 1
                    print("FAIL \(c.name) (\(c.location))")
                    for f in outcome.failures { print("     \(f)") }
                }
            }
        }
        print("\(passed) passed, \(failed) failed")
        if failed > 0 { throw ExitCode(1) }
    }

    private func runExplain(_ text: String, table: RouteTable) throws {
        let source = text.hasPrefix("@") ? ((try? String(contentsOfFile: String(text.dropFirst()), encoding: .utf8)) ?? "") : text
        let event: Event
        do { event = try RouteTestRunner.event(fromYAML: source) } catch {
            for e in error.errors { printErr(e.message) }
            throw ExitCode(2)
        }
        print(RouteExplainer.explain(event, table: table))
    }
}

enum RouteExplainer {
    static func explain(_ event: Event, table: RouteTable) -> String {
        var out = ["event: topic \(event.topic), type \(event.type), source \(event.source)\(event.partitionKey.map { ", partitionkey \($0)" } ?? "")"]
        let decisions = table.explain(event)
        if decisions.isEmpty { out.append("no mesh routes are loaded") }
        for d in decisions {
            let route = table.routes.first { $0.name == d.route }
            out.append("route \(d.route) (\(route?.location.description ?? "?")): \(d.selected ? "SELECTED" : "not selected")")
            guard d.patternMatched else {
                out.append("  from \(d.pattern): no match")
                continue
            }
            let caps = d.captures.enumerated().map { "{\($0.offset + 1)}=\($0.element)" }.joined(separator: " ")
            out.append("  from \(d.pattern): matched\(caps.isEmpty ? "" : ", captures \(caps)")")
            if let filter = route?.filter {
                switch d.filter {
                case .matched?: out.append("  where \(filter.text): true")
                case .notMatched(let v)?: out.append("  where \(filter.text): \(v) (not true: no match)")
                case .error(let errors)?: out.append("  where \(filter.text): error (no match): \(errors.map(\.description).joined(separator: "; "))")
                case nil: break
                }
            } else {
                out.append("  where: (none)")
            }
            for p in d.deliveries {
                if let e = p.event {
                    let target = p.connector.map { "connector \($0), topic \(e.topic)" } ?? "log topic \(e.topic)"
                    out.append("  → [\(p.index)] \(target)")
                } else {
                    out.append("  → [\(p.index)] \(p.label): fails: \(p.error ?? "?")")
                }
            }
        }
        return out.joined(separator: "\n")
    }
}
