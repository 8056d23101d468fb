import Foundation

/// A subscription's resume point as one opaque token — the SSE event `id`, so `Last-Event-ID`
/// resumes every partition of a pattern stream exactly where it stopped. Binary layout before
/// URL-safe base64: for each partition, u16 topic length, topic UTF-8, u32 partition, u64 next
/// offset (big-endian).
public enum StreamCursor {
    public static func encode(_ positions: [TopicPartition: Int64]) -> String {
        var bytes: [UInt8] = []
        for (tp, next) in positions.sorted(by: { $0.key < $1.key }) {
            let name = Array(tp.topic.utf8)
            bytes += withUnsafeBytes(of: UInt16(name.count).bigEndian, Array.init)
            bytes += name
            bytes += withUnsafeBytes(of: UInt32(tp.partition).bigEndian, Array.init)
            bytes += withUnsafeBytes(of: UInt64(bitPattern: next).bigEndian, Array.init)
        }
        return Data(bytes).base64EncodedString()
            .replacingOccurrences(of: "+", with: "-").replacingOccurrences(of: "/", with: "_").replacingOccurrences(of: "=", with: "")
    }

    /// nil when the token is not one this encoder made.
    public static func decode(_ token: String) -> [TopicPartition: Int64]? {
        var b64 = token.replacingOccurrences(of: "-", with: "+").replacingOccurrences(of: "_", with: "/")
        while b64.count % 4 != 0 { b64 += "=" }
        guard let data = Data(base64Encoded: b64) else { return nil }
        let bytes = [UInt8](data)
        var at = 0
        var out: [TopicPartition: Int64] = [:]
        func int<T: FixedWidthInteger>(_: T.Type) -> T? {
            guard at + MemoryLayout<T>.size <= bytes.count else { return nil }
            var v: T = 0
            for i in 0..<MemoryLayout<T>.size { v = v << 8 | T(bytes[at + i]) }
            at += MemoryLayout<T>.size
            return v
        }
        while at < bytes.count {
            guard let n = int(UInt16.self), at + Int(n) <= bytes.count else { return nil }
            let topic = String(decoding: bytes[at..<at + Int(n)], as: UTF8.self)
            at += Int(n)
            guard let p = int(UInt32.self), let o = int(UInt64.self) else { return nil }
            out[TopicPartition(topic: topic, partition: Int(p))] = Int64(bitPattern: o)
        }
        return out
    }
}
