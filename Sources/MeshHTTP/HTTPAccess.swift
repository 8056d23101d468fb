import MeshAuth
import MeshCore
import NIOCore
import NIOHTTP1
import Synchronization

/// What a request needs before it is dispatched. Topic rights are checked where the topics are
/// known (after the body is parsed, for publishes); this table covers the rest.
extension Route {
    enum Access {
        /// Answered for anyone: probes, the OpenAPI document, the status page shell.
        case open
        /// A valid credential; the handler checks the topic ACL.
        case identity
        /// A valid credential with the admin flag.
        case admin
    }

    var access: Access {
        switch self {
        case .healthz, .readyz, .openapi, .statusPage: .open
        case .publish, .stream, .fetch, .group, .groupOffsets: .identity
        case .status, .topics, .routes, .reloadRoutes, .connectors, .metrics: .admin
        }
    }
}

enum HTTPCredential {
    /// The bearer token of an `Authorization: Bearer <token>` header; "" when the header is
    /// missing or is not a bearer credential.
    static func bearer(_ headers: HTTPHeaders) -> String {
        guard let value = headers.first(name: "authorization") else { return "" }
        let parts = value.split(separator: " ", maxSplits: 1, omittingEmptySubsequences: true)
        guard parts.count == 2, parts[0].lowercased() == "bearer" else { return "" }
        return parts[1].trimmingCharacters(in: .whitespaces)
    }
}

/// Open Server-Sent Events streams and the credential each was opened with. After a reload each
/// credential is authenticated again: a stream whose token is gone, or whose identity may no
/// longer subscribe to its pattern, gets a final `event: error` carrying the 401 or 403 problem
/// and is closed.
final class LiveStreams: Sendable {
    struct Entry: Sendable {
        let credential: String
        let pattern: TopicPattern
        let channel: any Channel
    }

    private let entries = Mutex<[ObjectIdentifier: Entry]>([:])

    func add(_ entry: Entry) {
        let id = ObjectIdentifier(entry.channel)
        entries.withLock { $0[id] = entry }
        entry.channel.closeFuture.whenComplete { [self] _ in
            _ = entries.withLock { $0.removeValue(forKey: id) }
        }
    }

    var count: Int { entries.withLock { $0.count } }

    func recheck(_ access: AccessControl) {
        let all = entries.withLock { Array($0.values) }
        guard !all.isEmpty else { return }
        Task {
            for entry in all {
                let problem: Problem
                switch await access.authenticate(entry.credential, record: false) {
                case .failure(let f): problem = .unauthorized(f)
                case .success(let identity):
                    guard let denied = access.checkSubscribe(identity, entry.pattern) else { continue }
                    problem = .forbidden(denied)
                }
                Self.end(entry.channel, problem)
            }
        }
    }

    /// Writes the problem as the stream's last event and closes the connection.
    static func end(_ channel: any Channel, _ problem: Problem) {
        var out = ByteBuffer(string: "event: error\n")
        EventStream.writeDataLines(problem.body, into: &out)
        out.writeString("\n")
        channel.writeAndFlush(HTTPServerResponsePart.body(.byteBuffer(out))).whenComplete { _ in
            channel.close(promise: nil)
        }
    }
}
