import ArgumentParser
import Foundation
import MeshHTTP

/// `--server` for the commands that read the admin API.
struct AdminServerOption: ParsableArguments {
    @Option(help: "The gateway's HTTP address (env MESHGATE_SERVER).")
    var server: String = ProcessInfo.processInfo.environment["MESHGATE_SERVER"] ?? "http://127.0.0.1:8080"
    @Option(help: "A bearer token or JWT of an admin identity (default: $MESHGATE_TOKEN).")
    var token: String?

    /// GETs `path` and returns the JSON body; exit 1 when the server cannot be reached or refuses.
    func get(_ path: String) async throws -> Any {
        let client: AdminClient
        do { client = try AdminClient(url: server) } catch { throw UsageFailure(message: "--server: \(error)") }
        let response: AdminClient.Response
        let credential = token ?? ProcessInfo.processInfo.environment["MESHGATE_TOKEN"].flatMap { $0.isEmpty ? nil : $0 }
        let headers = credential.map { [("authorization", "Bearer \($0)")] } ?? []
        do { response = try await client.request(.GET, path, headers: headers) } catch {
            FileHandle.standardError.write(Data("meshgate: cannot reach \(server): \(error)\n".utf8))
            throw ExitCode(1)
        }
        let json = try? JSONSerialization.jsonObject(with: Data(response.body))
        guard response.status == 200, let json else {
            let detail = (json as? [String: Any])?["detail"] as? String ?? response.text
            FileHandle.standardError.write(Data("meshgate: \(server)\(path) answered \(response.status): \(detail)\n".utf8))
            throw ExitCode(1)
        }
        return json
    }
}

/// Left-aligned columns with a header row.
func table(_ header: [String], _ rows: [[String]]) -> String {
    let all = [header] + rows
    let widths = header.indices.map { i in all.map { $0[i].count }.max() ?? 0 }
    return all.map { row in
        row.enumerated().map { i, cell in i == row.count - 1 ? cell : cell.padding(toLength: widths[i], withPad: " ", startingAt: 0) }
            .joined(separator: "  ")
    }.joined(separator: "\n") + "\n"
}

/// `1.5 MiB`-style sizes.
func byteSize(_ bytes: Int) -> String {
    var value = Double(bytes)
    var unit = 0
    let units = ["B", "KiB", "MiB", "GiB", "TiB"]
    while value >= 1024 && unit < units.count - 1 { value /= 1024; unit += 1 }
    return unit == 0 ? "\(bytes) B" : String(format: "%.1f", value) + " " + units[unit]
}

struct Topics: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "List the topics of a running gateway, with partitions and offsets.")
    @OptionGroup var admin: AdminServerOption

    func run() async throws {
        let json = try await admin.get("/v1/topics")
        let topics = (json as? [String: Any])?["topics"] as? [[String: Any]] ?? []
        var rows: [[String]] = []
        for t in topics {
            let partitions = t["partitions"] as? [[String: Any]] ?? []
            let events = partitions.reduce(0) { sum, p in
                sum + ((p["end_offset"] as? Int ?? 0) - (p["start_offset"] as? Int ?? 0))
            }
            let ranges = partitions.map { p in "\(p["start_offset"] as? Int ?? 0)..\(p["end_offset"] as? Int ?? 0)" }
            rows.append([t["name"] as? String ?? "?", String(partitions.count), t["durability"] as? String ?? "?",
                         String(events), byteSize(t["bytes"] as? Int ?? 0), ranges.joined(separator: " ")])
        }
        if rows.isEmpty {
            print("no topics")
        } else {
            print(table(["TOPIC", "PARTITIONS", "FSYNC", "EVENTS", "SIZE", "OFFSETS"], rows), terminator: "")
        }
    }
}

struct Status: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Show a running gateway's node, version, uptime and listeners.")
    @OptionGroup var admin: AdminServerOption

    func run() async throws {
        let json = try await admin.get("/v1/status") as? [String: Any] ?? [:]
        let uptime = json["uptime_seconds"] as? Int ?? 0
        var rows: [[String]] = [
            ["node", json["node"] as? String ?? "?"],
            ["version", json["version"] as? String ?? "?"],
            ["started", json["started_at"] as? String ?? "?"],
            ["uptime", "\(uptime / 86400)d \(uptime / 3600 % 24)h \(uptime / 60 % 60)m \(uptime % 60)s"],
            ["ready", (json["ready"] as? Bool ?? false) ? "yes" : "no"],
        ]
        for l in json["listeners"] as? [[String: Any]] ?? [] {
            rows.append(["listener \(l["name"] as? String ?? "?")", l["address"] as? String ?? "?"])
        }
        print(table(["", ""], rows).split(separator: "\n", omittingEmptySubsequences: false).dropFirst().joined(separator: "\n"), terminator: "")
    }
}
