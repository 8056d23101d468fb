import Foundation
import Logging
import MeshCore
import MeshLog
import MeshNet
import MeshRouting
import Synchronization

/// The `type: meshgate` connector runtime: builds route destinations on remote sites (one shared
/// `BridgeLink` per connector and address) and reports each bridge's state for `GET /v1/connectors`.
public final class BridgeConnector: DestinationProvider {
    public let site: String
    let log: DurableLog
    let logger: Logger

    private struct Pair: Sendable {
        let group: String
        let pattern: TopicPattern
        let link: BridgeLink
    }
    private struct State {
        /// Keyed by connector name + url + token, so a changed connector gets a fresh link.
        var links: [String: BridgeLink] = [:]
        var pairs: [String: Pair] = [:]
    }
    private let state = Mutex(State())

    public init(site: String, log: DurableLog, logger: Logger = Logger(label: "meshgate.bridge")) {
        self.site = site
        self.log = log
        self.logger = logger
    }

    public func destination(for connector: ConnectorSpec, route: Route, spec: DestinationSpec) -> (any Destination)? {
        guard connector.kind == .meshgate else { return nil }
        guard let (scheme, host, port) = Self.parse(connector.url) else {
            return UnavailableDestination(reason: "connector \(connector.name): \(connector.url) is not tcp://HOST:PORT or tls://HOST:PORT")
        }
        var tls: ClientTLS?
        if scheme == "tls" {
            let o = connector.options
            let settings = ClientTLS(caFile: o["ca_file"], certificateChain: o["cert_file"], privateKey: o["key_file"], serverName: o["server_name"])
            do {
                _ = try ClientTLSContext(settings)
            } catch {
                return UnavailableDestination(reason: "connector \(connector.name): \(error.message)")
            }
            tls = settings
        } else if scheme != "tcp" {
            return UnavailableDestination(reason: "connector \(connector.name): \(connector.url) is not tcp://HOST:PORT or tls://HOST:PORT")
        }
        let token = connector.options["token"].flatMap { $0.isEmpty ? nil : $0 }
        let key = "\(connector.name)|\(connector.url)|\(token ?? "")|\(tls.map { "\($0)" } ?? "")"
        let index = route.destinations.firstIndex(of: spec) ?? 0
        let link = state.withLock { s -> BridgeLink in
            let link = s.links[key] ?? BridgeLink(connector: connector.name, host: host, port: port, site: site, token: token, tls: tls)
            s.links[key] = link
            let group = route.group(destination: index)
            s.pairs[group] = Pair(group: group, pattern: route.source.pattern, link: link)
            return link
        }
        return BridgeDestination(link: link)
    }

    static func parse(_ url: String) -> (scheme: String, host: String, port: Int)? {
        guard let c = URLComponents(string: url), let scheme = c.scheme, let host = c.host, !host.isEmpty else { return nil }
        return (scheme, host, c.port ?? 7070)
    }

    /// One object per bridge destination: connection state, lag in events and seconds (the age of
    /// the oldest event not yet acknowledged by the remote), counters and the last error.
    public func status() -> [[String: any Sendable]] {
        let pairs = state.withLock { Array($0.pairs.values) }
        let now = Int64(Date().timeIntervalSince1970 * 1_000_000)
        return pairs.sorted { $0.group < $1.group }.map { pair in
            var lag: Int64 = 0
            var oldest: Int64?
            for t in log.topics where pair.pattern.matches(t.topic) {
                for p in t.partitions {
                    let committed = max(log.offsets.committed(group: pair.group, topic: t.topic.name, partition: p.index) ?? p.startOffset, p.startOffset)
                    let behind = max(0, p.endOffset - committed)
                    guard behind > 0 else { continue }
                    lag += behind
                    if let r = try? p.read(from: committed, maxRecords: 1).first { oldest = min(oldest ?? r.timestamp, r.timestamp) }
                }
            }
            let link = pair.link
            var o: [String: any Sendable] = [
                "type": "meshgate", "connector": link.connector, "group": pair.group, "address": "\(link.host):\(link.port)",
                "site": link.site, "connected": link.isConnected, "tls": link.tls != nil,
                "lag_events": lag, "lag_seconds": oldest.map { Double(max(0, now - $0)) / 1_000_000 } ?? 0.0,
                "sent": link.sent.load(ordering: .relaxed), "stored": link.stored.load(ordering: .relaxed),
                "duplicates": link.duplicates.load(ordering: .relaxed), "loops": link.loops.load(ordering: .relaxed),
                "failures": link.failures.load(ordering: .relaxed),
            ]
            if let r = link.remoteSite { o["remote_site"] = r }
            if let e = link.lastError { o["last_error"] = e }
            return o
        }
    }

    public func close() async {
        let links = state.withLock { Array($0.links.values) }
        for l in links { await l.close() }
    }
}
