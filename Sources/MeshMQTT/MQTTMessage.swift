/// One MQTT application message, as received or to be published, with the MQTT 5 properties the
/// connector maps to CloudEvents attributes (see docs/connectors.md, property mapping).
public struct MQTTMessage: Sendable, Equatable {
    public struct UserProperty: Sendable, Equatable {
        public var name: String
        public var value: String
        public init(_ name: String, _ value: String) {
            self.name = name
            self.value = value
        }
    }

    public var topic: String
    public var payload: [UInt8]
    public var qos: Int32
    public var retain: Bool
    public var userProperties: [UserProperty]
    public var contentType: String?
    public var correlationData: [UInt8]?
    public var responseTopic: String?

    public init(topic: String, payload: [UInt8], qos: Int32 = 1, retain: Bool = false, userProperties: [UserProperty] = [],
                contentType: String? = nil, correlationData: [UInt8]? = nil, responseTopic: String? = nil) {
        self.topic = topic
        self.payload = payload
        self.qos = qos
        self.retain = retain
        self.userProperties = userProperties
        self.contentType = contentType
        self.correlationData = correlationData
        self.responseTopic = responseTopic
    }
}
