import Foundation
import Logging

/// How `serve` writes its log lines to standard error: human-readable text (the default) or one
/// JSON object per line for log shippers. Both redact metadata whose key names a secret, so a
/// token passed along as metadata never reaches the log.
struct MeshLogHandler: LogHandler {
    enum Format: String, Sendable { case text, json }

    let label: String
    let format: Format
    var logLevel: Logger.Level
    var metadata: Logger.Metadata = [:]
    var metadataProvider: Logger.MetadataProvider?

    subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    /// Metadata keys whose values are replaced by `[redacted]` (matched as substrings, lowercased).
    static let secretKeys = ["secret", "token", "password", "passwd", "authorization", "credential", "api_key", "apikey"]

    static func redacted(_ metadata: Logger.Metadata) -> Logger.Metadata {
        var out = metadata
        for key in metadata.keys {
            let k = key.lowercased()
            if secretKeys.contains(where: { k.contains($0) }) { out[key] = "[redacted]" }
        }
        return out
    }

    func log(event: LogEvent) {
        var all = metadata
        if let provided = metadataProvider?.get() { all.merge(provided) { $1 } }
        if let extra = event.metadata { all.merge(extra) { $1 } }
        all = Self.redacted(all)
        let line: String
        switch format {
        case .text: line = text(event, all)
        case .json: line = json(event, all)
        }
        Self.write(line)
    }

    private func text(_ event: LogEvent, _ metadata: Logger.Metadata) -> String {
        var line = "\(Self.timestamp()) \(event.level.rawValue.padding(toLength: 7, withPad: " ", startingAt: 0)) \(label): \(event.message)"
        for (k, v) in metadata.sorted(by: { $0.key < $1.key }) {
            let value = "\(v)"
            line += value.contains(where: { $0 == " " || $0 == "\"" }) ? " \(k)=\"\(value.replacingOccurrences(of: "\"", with: "\\\""))\"" : " \(k)=\(value)"
        }
        return line + "\n"
    }

    private func json(_ event: LogEvent, _ metadata: Logger.Metadata) -> String {
        var object: [String: Any] = ["time": Self.timestamp(), "level": event.level.rawValue, "logger": label,
                                     "message": "\(event.message)"]
        for (k, v) in metadata where object[k] == nil { object[k] = Self.plain(v) }
        if event.level >= .warning { object["source"] = "\(event.file.split(separator: "/").last ?? ""):\(event.line)" }
        let data = (try? JSONSerialization.data(withJSONObject: object, options: [.sortedKeys, .withoutEscapingSlashes])) ?? Data("{}".utf8)
        return String(decoding: data, as: UTF8.self) + "\n"
    }

    private static func plain(_ v: Logger.Metadata.Value) -> Any {
        switch v {
        case .string(let s): s
        case .stringConvertible(let c): "\(c)"
        case .array(let a): a.map(plain)
        case .dictionary(let d): d.mapValues(plain)
        }
    }

    private static func timestamp() -> String {
        var tv = timeval()
        gettimeofday(&tv, nil)
        var t = tv.tv_sec
        var tm = tm()
        gmtime_r(&t, &tm)
        return String(format: "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", Int(tm.tm_year) + 1900, Int(tm.tm_mon) + 1, Int(tm.tm_mday),
                      Int(tm.tm_hour), Int(tm.tm_min), Int(tm.tm_sec), Int(tv.tv_usec / 1000))
    }

    /// One `write(2)` per line so lines from different threads never interleave.
    private static func write(_ line: String) {
        var line = line
        line.withUTF8 { buffer in
            var offset = 0
            while offset < buffer.count {
                let n = Foundation.write(2, buffer.baseAddress! + offset, buffer.count - offset)
                if n <= 0 { return }
                offset += n
            }
        }
    }
}
