import CCurlShims
import Foundation

/// Standard Webhooks signing (https://www.standardwebhooks.com): three headers,
/// `webhook-id`, `webhook-timestamp` (Unix seconds) and `webhook-signature`, which is
/// `v1,<base64 HMAC-SHA256 of "id.timestamp.body">` for each secret, space-separated.
/// Several secrets make several signatures, so a receiver that knows either the old or the new
/// secret accepts the request while a secret is rotated.
public struct WebhookSigner: Sendable, Hashable {
    /// The decoded keys, in the order the secrets were written.
    let keys: [[UInt8]]

    /// `secrets` as written in the connector's `secret` option: one or more `whsec_<base64>`
    /// values separated by spaces (the `whsec_` prefix is optional).
    public init(secrets: String) throws(WebhookConfigError) {
        var keys: [[UInt8]] = []
        for (i, item) in secrets.split(whereSeparator: { $0 == " " || $0 == "," || $0 == "\n" || $0 == "\t" }).enumerated() {
            let encoded = item.hasPrefix("whsec_") ? item.dropFirst(6) : item[...]
            guard let key = Data(base64Encoded: String(encoded)), !key.isEmpty else {
                // Never echo the secret itself.
                throw WebhookConfigError(option: "secret", "secret \(i + 1) is not whsec_ followed by base64")
            }
            keys.append([UInt8](key))
        }
        if keys.isEmpty { throw WebhookConfigError(option: "secret", "the secret is empty") }
        self.keys = keys
    }

    /// The three headers for `body`, sent with message id `id` at `timestamp` (Unix seconds).
    public func headers(id: String, timestamp: Int64, body: [UInt8]) -> [(name: String, value: String)] {
        [("webhook-id", id), ("webhook-timestamp", String(timestamp)), ("webhook-signature", signature(id: id, timestamp: timestamp, body: body))]
    }

    public func signature(id: String, timestamp: Int64, body: [UInt8]) -> String {
        var message = Array("\(id).\(timestamp).".utf8)
        message.append(contentsOf: body)
        return keys.map { "v1," + Data(Self.hmacSHA256(key: $0, message: message)).base64EncodedString() }.joined(separator: " ")
    }

    static func hmacSHA256(key: [UInt8], message: [UInt8]) -> [UInt8] {
        var out = [UInt8](repeating: 0, count: 32)
        let ok = key.withUnsafeBufferPointer { k in
            message.withUnsafeBufferPointer { m in
                out.withUnsafeMutableBufferPointer { o in
                    mesh_hmac_sha256(k.baseAddress, k.count, m.baseAddress, m.count, o.baseAddress)
                }
            }
        }
        precondition(ok == 1, "OpenSSL HMAC-SHA256 failed")
        return out
    }
}
