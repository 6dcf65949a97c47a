import Foundation

/// A property value: what JSON can hold, checked by the compiler. Literals
/// just work: `["plan": "pro", "seats": 12, "tags": ["a", "b"], "trial": false]`.
public enum TrodoValue: Sendable, Equatable {
    case string(String)
    case int(Int64)
    case double(Double)
    case bool(Bool)
    case null
    case array([TrodoValue])
    case object([String: TrodoValue])

    /// The JSON text. A NaN or infinite double cannot be written: it throws,
    /// naming where it was.
    func json(at path: String = "value") throws -> String {
        switch self {
        case .string(let s): return Self.quote(s)
        case .int(let i): return String(i)
        case .double(let d):
            guard d.isFinite else {
                throw TrodoError(status: .invalidArgument, message: "\(path): \(d) cannot be represented in JSON")
            }
            if d == d.rounded(), abs(d) < 9.007199254740992e15 { return String(Int64(d)) }
            return "\(d)"
        case .bool(let b): return b ? "true" : "false"
        case .null: return "null"
        case .array(let a):
            return "[" + (try a.enumerated().map { try $0.element.json(at: "\(path)[\($0.offset)]") }).joined(separator: ",") + "]"
        case .object(let o):
            let fields = try o.keys.sorted().map { key in
                Self.quote(key) + ":" + (try o[key]!.json(at: "\(path)[\"\(key)\"]"))
            }
            return "{" + fields.joined(separator: ",") + "}"
        }
    }

    static func quote(_ s: String) -> String {
        var out = "\""
        for scalar in s.unicodeScalars {
            switch scalar {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            case _ where scalar.value < 0x20:
                out += String(format: "\\u%04x", scalar.value)
            default: out.unicodeScalars.append(scalar)
            }
        }
        return out + "\""
    }
}

extension TrodoValue: ExpressibleByStringLiteral {
    public init(stringLiteral value: String) { self = .string(value) }
}

extension TrodoValue: ExpressibleByIntegerLiteral {
    public init(integerLiteral value: Int64) { self = .int(value) }
}

extension TrodoValue: ExpressibleByFloatLiteral {
    public init(floatLiteral value: Double) { self = .double(value) }
}

extension TrodoValue: ExpressibleByBooleanLiteral {
    public init(booleanLiteral value: Bool) { self = .bool(value) }
}

extension TrodoValue: ExpressibleByNilLiteral {
    public init(nilLiteral: ()) { self = .null }
}

extension TrodoValue: ExpressibleByArrayLiteral {
    public init(arrayLiteral elements: TrodoValue...) { self = .array(elements) }
}

extension TrodoValue: ExpressibleByDictionaryLiteral {
    public init(dictionaryLiteral elements: (String, TrodoValue)...) {
        self = .object(Dictionary(elements, uniquingKeysWith: { _, last in last }))
    }
}

/// Properties of an event or profile.
public typealias TrodoProperties = [String: TrodoValue]

func jsonObject(_ props: TrodoProperties, _ what: String) throws -> String {
    try TrodoValue.object(props).json(at: what)
}
