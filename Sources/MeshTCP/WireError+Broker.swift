import MeshBroker
import MeshWire

extension WireError {
    /// The protocol's error code for a broker refusal (docs/protocol.md, "Error codes").
    public init(broker error: BrokerError) {
        let code: WireErrorCode = switch error.kind {
        case .invalidTopic, .invalidPattern, .unknownTopic: .invalidTopic
        case .invalidEvent: .invalidEvent
        case .tooLarge: .eventTooLarge
        case .offsetOutOfRange: .offsetOutOfRange
        case .overloaded: .overloaded
        case .storage, .unknownPartition: .storageUnavailable
        case .closed: .notReady
        case .invalidRequest: .protocolViolation
        }
        self.init(code, error.message, retryAfterMilliseconds: UInt32(clamping: error.retryAfterMilliseconds ?? 0))
    }
}
