/// Why the server could not start or keep running, in words an operator can act on.
public enum ServerError: Error, CustomStringConvertible {
    case startup(String)

    public var description: String {
        switch self {
        case let .startup(text): text
        }
    }
}
