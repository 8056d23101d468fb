#if canImport(Glibc)
import Glibc
#endif
import Foundation
import Synchronization

public struct SocketFailure: Error, CustomStringConvertible {
    public let description: String
}

/// A TCP socket listening on 127.0.0.1 at a port the kernel picks: its descriptor and port.
public func listenOnLoopback(backlog: Int32 = 128) throws -> (fd: Int32, port: Int) {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    var one: Int32 = 1
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(MemoryLayout<Int32>.size))
    var addr = loopbackAddress(port: 0)
    var len = socklen_t(MemoryLayout<sockaddr_in>.size)
    let bound = withUnsafePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, len) } }
    guard bound == 0, listen(fd, backlog) == 0 else {
        let reason = String(cString: strerror(errno))
        close(fd)
        throw SocketFailure(description: "cannot listen on 127.0.0.1: \(reason)")
    }
    _ = withUnsafeMutablePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &len) } }
    return (fd, Int(UInt16(bigEndian: addr.sin_port)))
}

/// 127.0.0.1 at `port`, for bind and connect.
public func loopbackAddress(port: Int) -> sockaddr_in {
    var addr = sockaddr_in()
    addr.sin_family = sa_family_t(AF_INET)
    addr.sin_addr.s_addr = inet_addr("127.0.0.1")
    addr.sin_port = UInt16(port).bigEndian
    return addr
}

/// A loopback TCP port for a server that a test starts later (and may restart on the same port),
/// when the port must be known first: a route file names it, or a site comes back on it.
///
/// Chosen below the kernel's ephemeral range (`ip_local_port_range`), not by binding port 0: a
/// port the kernel hands out for port 0 comes from that range, and while the test gets round to
/// using it, the kernel may give the same number to an outgoing connection of another test as its
/// source port, and the server then fails with "address already in use". Below the range only
/// other tests' explicit choices compete: the ports handed out in this process are never handed
/// out twice, and each is checked free by binding it.
public func reservablePort() -> Int {
    let low = ephemeralRangeStart()  // above 12,000
    while true {
        let port = Int.random(in: 10_000..<low)
        guard handedOut.withLock({ $0.insert(port).inserted }) else { continue }
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var addr = loopbackAddress(port: port)
        let bound = withUnsafePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }
        close(fd)
        if bound == 0 { return port }
    }
}

private let handedOut = Mutex<Set<Int>>([])

/// The first port of the kernel's ephemeral range (32768 when it cannot be read).
private func ephemeralRangeStart() -> Int {
    guard let text = try? String(contentsOfFile: "/proc/sys/net/ipv4/ip_local_port_range", encoding: .utf8),
          let first = text.split(whereSeparator: { $0 == " " || $0 == "\t" || $0 == "\n" }).first.flatMap({ Int($0) }),
          first > 12_000 else { return 32768 }
    return first
}
