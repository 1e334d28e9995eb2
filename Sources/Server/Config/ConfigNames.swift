/// The naming rules for mounts, plugins, SMB shares, S3 buckets and users.
enum ConfigNames {
    private static func isAlphanumeric(_ c: Unicode.Scalar) -> Bool {
        ("a"..."z").contains(c) || ("A"..."Z").contains(c) || ("0"..."9").contains(c)
    }

    // MARK: Mounts and plugins

    /// Mount and plugin names: 1 to 64 of `A-Z a-z 0-9 . _ -`, not `.` or `..`. A mount named
    /// NAME appears at /NAME in the server's namespace, so the name is one path component.
    static func checkSimpleName(_ name: String, at path: ConfigKeyPath, kind: String) throws(ConfigError) {
        let rule = "\(kind) names are 1 to 64 letters, digits, '.', '_' or '-'"
        if name.isEmpty {
            throw configError(path, "the \(kind) name is empty", fix: "Name it, e.g. \"data\"; \(rule).")
        }
        if name == "." || name == ".." {
            throw configError(path, "\(JSONValue.quoted(name)) cannot be a \(kind) name", fix: "Choose another name; \(rule).")
        }
        if name.unicodeScalars.count > 64 {
            throw configError(path, "the \(kind) name is \(name.unicodeScalars.count) characters long", fix: "Shorten it; \(rule).")
        }
        if let bad = name.unicodeScalars.first(where: { !isAlphanumeric($0) && $0 != "." && $0 != "_" && $0 != "-" }) {
            throw configError(path, "the \(kind) name \(JSONValue.quoted(name)) contains \(describe(bad))", fix: "Rename it; \(rule).")
        }
    }

    // MARK: SMB shares

    /// SMB share names: 1 to 80 characters, none of `" / \ [ ] : | < > + = ; , * ?` or control
    /// characters, no leading or trailing space, and not `IPC$` (the server's own pipe share).
    /// Windows compares share names without case, so two names that differ only in case clash.
    static func checkShareName(_ name: String, at path: ConfigKeyPath) throws(ConfigError) {
        let rule = "share names are 1 to 80 characters without \" / \\ [ ] : | < > + = ; , * ?"
        if name.isEmpty {
            throw configError(path, "the share name is empty", fix: "Name it, e.g. \"data\"; \(rule).")
        }
        if name.unicodeScalars.count > 80 {
            throw configError(path, "the share name is \(name.unicodeScalars.count) characters long", fix: "Shorten it; \(rule).")
        }
        if let bad = name.unicodeScalars.first(where: { "\"/\\[]:|<>+=;,*?".unicodeScalars.contains($0) || $0.value < 0x20 || $0.value == 0x7F }) {
            throw configError(path, "the share name \(JSONValue.quoted(name)) contains \(describe(bad))", fix: "Rename it; \(rule).")
        }
        if name.first == " " || name.last == " " {
            throw configError(path, "the share name \(JSONValue.quoted(name)) starts or ends with a space", fix: "Remove the space.")
        }
        if name.uppercased() == "IPC$" {
            throw configError(path, "IPC$ is reserved for the server's named pipes", fix: "Choose another share name.")
        }
    }

    // MARK: S3 buckets

    /// S3 bucket names (the general-purpose bucket rules): 3 to 63 characters of lowercase
    /// letters, digits, `.` and `-`; starting and ending with a letter or digit; no `..`; not
    /// shaped like an IPv4 address; not starting with `xn--` or `sthree-` nor ending with
    /// `-s3alias` or `--ol-s3`. Clients reject or mangle names outside these rules.
    static func checkBucketName(_ name: String, at path: ConfigKeyPath) throws(ConfigError) {
        func refuse(_ reason: String) -> ConfigError {
            let suggestion = suggestedBucketName(name)
            let example = suggestion.map { "Rename it, e.g. \(JSONValue.quoted($0)); b" } ?? "B"
            return configError(path, reason, fix: "\(example)ucket names are 3 to 63 lowercase letters, digits, '.' or '-', starting and ending with a letter or digit.")
        }
        try check(name, refuse)
    }

    private static func check(_ name: String, _ refuse: (String) -> ConfigError) throws(ConfigError) {
        let quoted = JSONValue.quoted(name)
        let length = name.unicodeScalars.count
        if length < 3 || length > 63 {
            throw refuse("the bucket name \(quoted) is \(length) characters long; S3 bucket names are 3 to 63")
        }
        if let bad = name.unicodeScalars.first(where: { !(("a"..."z").contains($0) || ("0"..."9").contains($0) || $0 == "." || $0 == "-") }) {
            let what = ("A"..."Z").contains(bad) ? "an uppercase letter ('\(bad)')" : describe(bad)
            throw refuse("the bucket name \(quoted) contains \(what); S3 bucket names allow only lowercase letters, digits, '.' and '-'")
        }
        if !isAlphanumeric(name.unicodeScalars.first!) || !isAlphanumeric(name.unicodeScalars.last!) {
            throw refuse("the bucket name \(quoted) must start and end with a letter or digit")
        }
        if name.contains("..") {
            throw refuse("the bucket name \(quoted) has two periods in a row")
        }
        if case .success = IPAddress.parseV4(Substring(name)) {
            throw refuse("the bucket name \(quoted) looks like an IP address, which S3 does not allow")
        }
        for prefix in ["xn--", "sthree-"] where name.hasPrefix(prefix) {
            throw refuse("the bucket name \(quoted) starts with \(JSONValue.quoted(prefix)), which S3 reserves")
        }
        for suffix in ["-s3alias", "--ol-s3"] where name.hasSuffix(suffix) {
            throw refuse("the bucket name \(quoted) ends with \(JSONValue.quoted(suffix)), which S3 reserves")
        }
    }

    /// A valid bucket name close to `name` (lowercased, other characters turned into '-').
    static func suggestedBucketName(_ name: String) -> String? {
        var scalars = String.UnicodeScalarView()
        for c in name.lowercased().unicodeScalars {
            let ok = ("a"..."z").contains(c) || ("0"..."9").contains(c) || c == "." || c == "-"
            let mapped: Unicode.Scalar = ok ? c : "-"
            if (mapped == "." || mapped == "-"), let last = scalars.last, last == "." || last == "-" { continue }
            scalars.append(mapped)
        }
        var candidate = String(scalars)
        while let first = candidate.unicodeScalars.first, !isAlphanumeric(first) { candidate.unicodeScalars.removeFirst() }
        while let last = candidate.unicodeScalars.last, !isAlphanumeric(last) { candidate.unicodeScalars.removeLast() }
        if candidate.unicodeScalars.count > 63 {
            candidate = String(String.UnicodeScalarView(candidate.unicodeScalars.prefix(63)))
            while let last = candidate.unicodeScalars.last, !isAlphanumeric(last) { candidate.unicodeScalars.removeLast() }
        }
        guard candidate != name else { return nil }
        do {
            try check(candidate) { configError(.root, $0, fix: "") }
            return candidate
        } catch {
            return nil
        }
    }

    // MARK: Users

    /// User names: 1 to 64 of `A-Z a-z 0-9 . _ -`, not starting with '-' or '.'. SMB compares
    /// user names without case, so two that differ only in case clash.
    static func checkUserName(_ name: String, at path: ConfigKeyPath) throws(ConfigError) {
        let rule = "user names are 1 to 64 letters, digits, '.', '_' or '-', not starting with '.' or '-'"
        if name.isEmpty {
            throw configError(path, "the user name is empty", fix: "Name the user; \(rule).")
        }
        if name.unicodeScalars.count > 64 {
            throw configError(path, "the user name is \(name.unicodeScalars.count) characters long", fix: "Shorten it; \(rule).")
        }
        if let bad = name.unicodeScalars.first(where: { !isAlphanumeric($0) && $0 != "." && $0 != "_" && $0 != "-" }) {
            throw configError(path, "the user name \(JSONValue.quoted(name)) contains \(describe(bad))", fix: "Rename the user; \(rule).")
        }
        if name.hasPrefix("-") || name.hasPrefix(".") {
            throw configError(path, "the user name \(JSONValue.quoted(name)) starts with \(JSONValue.quoted(String(name.first!)))", fix: "Rename the user; \(rule).")
        }
    }

    /// `'/'`, `a space`, `U+0009`, for messages.
    static func describe(_ c: Unicode.Scalar) -> String {
        if c == " " { return "a space" }
        if c.value < 0x20 || c.value == 0x7F { return "the control character U+" + jsonHex(c.value, width: 4) }
        return "'\(c)'"
    }
}
