import CCurlShims
#if canImport(Glibc)
import Glibc
#endif

/// The `deny_private` guard's rule, callable from Swift (the guard itself runs in C, inside
/// curl's socket callback, on the address curl is about to connect to).
public enum PrivateAddresses {
    /// Whether `deny_private` refuses this literal IPv4 or IPv6 address; nil when it is neither.
    public static func isDenied(_ address: String) -> Bool? {
        var v4 = in_addr()
        if inet_pton(AF_INET, address, &v4) == 1 {
            return withUnsafeBytes(of: &v4) { mesh_address_is_denied(AF_INET, $0.bindMemory(to: UInt8.self).baseAddress) == 1 }
        }
        var v6 = in6_addr()
        if inet_pton(AF_INET6, address, &v6) == 1 {
            return withUnsafeBytes(of: &v6) { mesh_address_is_denied(AF_INET6, $0.bindMemory(to: UInt8.self).baseAddress) == 1 }
        }
        return nil
    }
}
