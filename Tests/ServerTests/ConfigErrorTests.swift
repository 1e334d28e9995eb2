import Testing
import Server

/// One refused configuration: the key path the error must name, and words its reason and fix
/// must contain.
struct RefusedCase: CustomTestStringConvertible, Sendable {
    var text: String
    var keyPath: String
    var reason: String
    var fix: String = ""

    var testDescription: String { keyPath.isEmpty ? text : keyPath }
}

@Suite("Configuration errors")
struct ConfigErrorTests {
    static let wrongTypes: [RefusedCase] = [
        RefusedCase(text: #"{"server": {"threads": "abc"}}"#, keyPath: "server.threads",
                    reason: #"expected a whole number, got a string ("abc")"#, fix: "without quotes"),
        RefusedCase(text: #"{"server": {"threads": "4"}}"#, keyPath: "server.threads",
                    reason: "expected a whole number", fix: #"Remove the quotes: "threads": 4"#),
        RefusedCase(text: #"{"server": {"threads": 2.5}}"#, keyPath: "server.threads", reason: "expected a whole number, got 2.5"),
        RefusedCase(text: #"{"server": {"rdma": "yes"}}"#, keyPath: "server.rdma", reason: #"expected true or false, got a string ("yes")"#),
        RefusedCase(text: #"{"server": {"rdma": "true"}}"#, keyPath: "server.rdma", reason: "expected true or false", fix: "Remove the quotes"),
        RefusedCase(text: #"{"server": {"bind": 127}}"#, keyPath: "server.bind", reason: "expected a string, got a number (127)"),
        RefusedCase(text: #"{"server": []}"#, keyPath: "server", reason: "expected an object (the server settings), got an empty array"),
        RefusedCase(text: #"{"server": {"smb_multichannel": {"address": "1.2.3.4"}}}"#, keyPath: "server.smb_multichannel", reason: "expected an array"),
        RefusedCase(text: #"{"mounts": []}"#, keyPath: "mounts", reason: "expected an object of mounts"),
        RefusedCase(text: #"{"mounts": {"m": "memfs"}}"#, keyPath: "mounts.m", reason: "expected an object (a mount)"),
        RefusedCase(text: #"{"mounts": {"d": {"module": "linux", "path": "/srv", "cache_ttl_ms": "1000"}}}"#, keyPath: "mounts.d.cache_ttl_ms",
                    reason: "expected a whole number", fix: #"Remove the quotes: "cache_ttl_ms": 1000"#),
        RefusedCase(text: #"{"mounts": {"d": {"module": "linux", "path": "/srv", "cache_ttl_ms": 0.5}}}"#, keyPath: "mounts.d.cache_ttl_ms",
                    reason: "expected a whole number, got 0.5"),
        RefusedCase(text: withMemfs(#""exports": {"/memfs": {"read_only": 1}}"#), keyPath: #"exports["/memfs"].read_only"#, reason: "expected true or false"),
        RefusedCase(text: withMemfs(#""exports": {"/memfs": {"clients": "10.0.0.0/8"}}"#), keyPath: #"exports["/memfs"].clients"#, reason: "expected an array"),
        RefusedCase(text: withMemfs(#""exports": {"/memfs": {"clients": [10]}}"#), keyPath: #"exports["/memfs"].clients[0]"#, reason: "expected a string"),
        RefusedCase(text: withMemfs(#""shares": {"s": {"path": "/memfs", "guest": "no"}}"#), keyPath: "shares.s.guest", reason: "expected true or false"),
        RefusedCase(text: #"{"users": {"u": {"password": "p", "uid": "1000", "gid": 1}}}"#, keyPath: "users.u.uid", reason: "expected a whole number"),
        RefusedCase(text: #"{"users": {"u": {"password": "p", "uid": 1, "gid": 1, "groups": [1, "2"]}}}"#, keyPath: "users.u.groups[1]", reason: "expected a whole number"),
        RefusedCase(text: #"{"users": {"u": {"password": 1234, "uid": 1, "gid": 1}}}"#, keyPath: "users.u.password", reason: "expected a string", fix: #""password": "1234""#),
        RefusedCase(text: "[]", keyPath: "", reason: "the configuration must be a JSON object, got an empty array"),
    ]

    static let outOfRange: [RefusedCase] = [
        RefusedCase(text: #"{"server": {"threads": 0}}"#, keyPath: "server.threads", reason: "0 is out of range: it must be from 1 to 1024", fix: "leave \"threads\" out"),
        RefusedCase(text: #"{"server": {"delegation_threads": -1}}"#, keyPath: "server.delegation_threads", reason: "out of range"),
        RefusedCase(text: #"{"server": {"nfs_port": 65536}}"#, keyPath: "server.nfs_port", reason: "65536 is out of range: it must be from 0 to 65535", fix: "0 to turn the service off"),
        RefusedCase(text: #"{"server": {"spin_ns": -5}}"#, keyPath: "server.spin_ns", reason: "out of range"),
        RefusedCase(text: #"{"mounts": {"d": {"module": "io_uring", "path": "/srv", "cache_ttl_ms": -1}}}"#, keyPath: "mounts.d.cache_ttl_ms",
                    reason: "-1 is out of range: it must be from 0 to 3600000", fix: "0 (no cache)"),
        RefusedCase(text: #"{"mounts": {"d": {"module": "io_uring", "path": "/srv", "cache_ttl_ms": 3600001}}}"#, keyPath: "mounts.d.cache_ttl_ms",
                    reason: "out of range", fix: "leave \"cache_ttl_ms\" out for the default"),
        RefusedCase(text: #"{"server": {"smb_multichannel": [{"address": "127.0.0.1", "speed": 0}]}}"#, keyPath: "server.smb_multichannel[0].speed", reason: "out of range"),
        RefusedCase(text: #"{"users": {"u": {"password": "p", "uid": 4294967295, "gid": 1}}}"#, keyPath: "users.u.uid", reason: "out of range"),
        RefusedCase(text: #"{"users": {"u": {"password": "p", "uid": -1, "gid": 1}}}"#, keyPath: "users.u.uid", reason: "out of range"),
    ]

    static let unknownNames: [RefusedCase] = [
        RefusedCase(text: #"{"mount": {}}"#, keyPath: "mount", reason: "unknown key", fix: #"Did you mean "mounts"?"#),
        RefusedCase(text: #"{"server": {"thread": 4}}"#, keyPath: "server.thread", reason: "unknown key", fix: #"Did you mean "threads"?"#),
        RefusedCase(text: #"{"server": {"nfsPort": 4}}"#, keyPath: "server.nfsPort", reason: "unknown key", fix: #"Did you mean "nfs_port"?"#),
        RefusedCase(text: #"{"server": {"delegation": 4}}"#, keyPath: "server.delegation", reason: "unknown key", fix: #"Did you mean "delegation_threads"?"#),
        RefusedCase(text: #"{"server": {"colour": 4}}"#, keyPath: "server.colour", reason: "unknown key", fix: "The keys allowed in the server settings are: threads,"),
        RefusedCase(text: withMemfs(#""shares": {"s": {"path": "/memfs", "readonly": true}}"#), keyPath: "shares.s.readonly", reason: "unknown key", fix: #"Did you mean "read_only"?"#),
        RefusedCase(text: withMemfs(#""exports": {"/memfs": {"squash_root": true}}"#), keyPath: #"exports["/memfs"].squash_root"#, reason: "unknown key"),
        RefusedCase(text: #"{"mounts": {"a": {"module": "linux", "path": "/x", "cache_ttl": 5}}}"#, keyPath: "mounts.a.cache_ttl", reason: "unknown key", fix: #"Did you mean "cache_ttl_ms"?"#),
        RefusedCase(text: #"{"mounts": {"a": {"module": "iouring", "path": "/x"}}}"#, keyPath: "mounts.a.module", reason: #"unknown module "iouring""#, fix: #"Did you mean "io_uring"?"#),
        RefusedCase(text: #"{"mounts": {"a": {"module": "uring", "path": "/x"}}}"#, keyPath: "mounts.a.module", reason: "unknown module", fix: #"Did you mean "io_uring"?"#),
        RefusedCase(text: #"{"mounts": {"a": {"module": "zfs", "path": "/x"}}}"#, keyPath: "mounts.a.module", reason: #"unknown module "zfs""#, fix: "declare a plugin of that name under server.vfs"),
        RefusedCase(text: #"{"server": {"vfs": {"demofs": {"path": "/d.so"}}}, "mounts": {"a": {"module": "demofx", "path": "/"}}}"#,
                    keyPath: "mounts.a.module", reason: "unknown module", fix: #"Did you mean "demofs"?"#),
        RefusedCase(text: #"{"server": {"io": "uring"}}"#, keyPath: "server.io", reason: #""uring" is not one of "io_uring" or "epoll""#, fix: #"Did you mean "io_uring"?"#),
        RefusedCase(text: #"{"server": {"poll_mode": "sometimes"}}"#, keyPath: "server.poll_mode", reason: #"not one of "auto", "always" or "never""#),
        RefusedCase(text: withMemfs(#""exports": {"/memfs": {"squash": "everyone"}}"#), keyPath: #"exports["/memfs"].squash"#, reason: #"not one of "none", "root" or "all""#),
    ]

    static let namespacePaths: [RefusedCase] = [
        RefusedCase(text: withMemfs(#""shares": {"s": {"path": "/data"}}"#), keyPath: "shares.s.path",
                    reason: #""/data" names no mount"#, fix: "The mounts are: /memfs."),
        RefusedCase(text: withMemfs(#""shares": {"s": {"path": "/memf/x"}}"#), keyPath: "shares.s.path", reason: "names no mount", fix: #"Did you mean "/memfs/x"?"#),
        RefusedCase(text: withMemfs(#""buckets": {"bkt": {"path": "memfs"}}"#), keyPath: "buckets.bkt.path", reason: "is not an absolute path", fix: #"Write "/memfs""#),
        RefusedCase(text: withMemfs(#""buckets": {"bkt": {"path": "data"}}"#), keyPath: "buckets.bkt.path", reason: "is not an absolute path", fix: "The mounts are: /memfs."),
        RefusedCase(text: withMemfs(#""buckets": {"bkt": {"path": "/memfs/"}}"#), keyPath: "buckets.bkt.path", reason: "empty component", fix: #"Write "/memfs""#),
        RefusedCase(text: withMemfs(#""buckets": {"bkt": {"path": "/memfs//a"}}"#), keyPath: "buckets.bkt.path", reason: "empty component", fix: #"Write "/memfs/a""#),
        RefusedCase(text: withMemfs(#""buckets": {"bkt": {"path": "/memfs/../etc"}}"#), keyPath: "buckets.bkt.path", reason: #"".." component"#),
        RefusedCase(text: withMemfs(#""buckets": {"bkt": {"path": "/memfs/./a"}}"#), keyPath: "buckets.bkt.path", reason: #"".." component"#),
        RefusedCase(text: withMemfs(#""buckets": {"bkt": {"path": "/"}}"#), keyPath: "buckets.bkt.path", reason: "the namespace root, not a mount"),
        RefusedCase(text: withMemfs(#""buckets": {"bkt": {}}"#), keyPath: "buckets.bkt.path", reason: "is missing"),
        RefusedCase(text: withMemfs(#""server": {"s3_bucket_root": "/data"}"#), keyPath: "server.s3_bucket_root", reason: #""/data" names no mount"#,
                    fix: "The mounts are: /memfs."),
        RefusedCase(text: withMemfs(#""server": {"s3_bucket_root": "memfs"}"#), keyPath: "server.s3_bucket_root", reason: "is not an absolute path"),
        RefusedCase(text: withMemfs(#""server": {"s3_bucket_root": 3}"#), keyPath: "server.s3_bucket_root", reason: "expected a string"),
        RefusedCase(text: #"{"server": {"max_connections": 0}}"#, keyPath: "server.max_connections", reason: "0", fix: "1 to 1000000"),
        RefusedCase(text: #"{"server": {"max_connections_per_client": "many"}}"#, keyPath: "server.max_connections_per_client", reason: "expected"),
        RefusedCase(text: #"{"server": {"nfs_max_record_bytes": 65536}}"#, keyPath: "server.nfs_max_record_bytes", reason: "out of range", fix: "1114112"),
        RefusedCase(text: #"{"server": {"smb_max_io_bytes": 16777216}}"#, keyPath: "server.smb_max_io_bytes", reason: "out of range", fix: "8388608"),
        RefusedCase(text: #"{"server": {"smb_max_opens_per_session": 0}}"#, keyPath: "server.smb_max_opens_per_session", reason: "out of range"),
        RefusedCase(text: #"{"server": {"s3_max_put_bytes": 5368709121}}"#, keyPath: "server.s3_max_put_bytes", reason: "out of range", fix: "5 GiB"),
        RefusedCase(text: withMemfs(#""shares": {"s": {"path": "/memfs", "users": ["nobody"]}}"#), keyPath: "shares.s.users[0]",
                    reason: #"no user "nobody" is configured"#),
        RefusedCase(text: withMemfs(#""buckets": {"bucket1": {"path": "/memfs", "users": "alice"}}"#), keyPath: "buckets.bucket1.users", reason: "expected an array"),
        RefusedCase(text: #"{"shares": {"s": {"path": "/memfs"}}}"#, keyPath: "shares.s.path", reason: "names no mount", fix: "There are no mounts yet"),
        RefusedCase(text: withMemfs(#""exports": {"/other": {}}"#), keyPath: #"exports["/other"]"#, reason: #""/other" names no mount"#),
        RefusedCase(text: withMemfs(#""exports": {"/": {"path": "/memfs"}}"#), keyPath: #"exports["/"]"#, reason: "pseudo-root"),
        RefusedCase(text: withMemfs(#""exports": {"memfs": {"path": "/memfs"}}"#), keyPath: "exports.memfs", reason: "is not an absolute path"),
        RefusedCase(text: #"{"mounts": {"l": {"module": "linux", "path": "srv"}}}"#, keyPath: "mounts.l.path", reason: "is not an absolute path", fix: "full path on this machine"),
        RefusedCase(text: #"{"mounts": {"l": {"module": "memfs"}}}"#, keyPath: "mounts.l.path", reason: "is missing", fix: #""path": "/""#),
        RefusedCase(text: #"{"mounts": {"l": {"path": "/"}}}"#, keyPath: "mounts.l.module", reason: "is missing"),
    ]

    static let names: [RefusedCase] = [
        RefusedCase(text: #"{"mounts": {"my mount": {"module": "memfs", "path": "/"}}}"#, keyPath: #"mounts["my mount"]"#, reason: "contains a space"),
        RefusedCase(text: #"{"mounts": {"a/b": {"module": "memfs", "path": "/"}}}"#, keyPath: #"mounts["a/b"]"#, reason: "contains '/'"),
        RefusedCase(text: #"{"mounts": {"..": {"module": "memfs", "path": "/"}}}"#, keyPath: #"mounts[".."]"#, reason: "cannot be a mount name"),
        RefusedCase(text: #"{"mounts": {"": {"module": "memfs", "path": "/"}}}"#, keyPath: #"mounts[""]"#, reason: "the mount name is empty"),
        RefusedCase(text: "{\"mounts\": {\"\(String(repeating: "m", count: 65))\": {\"module\": \"memfs\", \"path\": \"/\"}}}",
                    keyPath: "mounts.\(String(repeating: "m", count: 65))", reason: "65 characters long"),
        RefusedCase(text: #"{"server": {"vfs": {"linux": {"path": "/l.so"}}}}"#, keyPath: "server.vfs.linux", reason: "is a built-in module"),
        RefusedCase(text: #"{"server": {"vfs": {"p": {"path": "p.so"}}}}"#, keyPath: "server.vfs.p.path", reason: "is not an absolute path"),
        RefusedCase(text: #"{"server": {"vfs": {"p": {}}}}"#, keyPath: "server.vfs.p.path", reason: "is missing"),
        RefusedCase(text: withMemfs(#""buckets": {"My_Bucket": {"path": "/memfs"}}"#), keyPath: "buckets.My_Bucket",
                    reason: "uppercase letter ('M')", fix: #"e.g. "my-bucket""#),
        RefusedCase(text: withMemfs(#""buckets": {"ab": {"path": "/memfs"}}"#), keyPath: "buckets.ab", reason: "2 characters long; S3 bucket names are 3 to 63"),
        RefusedCase(text: withMemfs("\"buckets\": {\"\(String(repeating: "b", count: 64))\": {\"path\": \"/memfs\"}}"),
                    keyPath: "buckets.\(String(repeating: "b", count: 64))", reason: "64 characters long"),
        RefusedCase(text: withMemfs(#""buckets": {"-abc": {"path": "/memfs"}}"#), keyPath: "buckets.-abc", reason: "must start and end with a letter or digit"),
        RefusedCase(text: withMemfs(#""buckets": {"abc.": {"path": "/memfs"}}"#), keyPath: #"buckets["abc."]"#, reason: "must start and end with a letter or digit"),
        RefusedCase(text: withMemfs(#""buckets": {"a..b": {"path": "/memfs"}}"#), keyPath: #"buckets["a..b"]"#, reason: "two periods in a row"),
        RefusedCase(text: withMemfs(#""buckets": {"192.168.5.4": {"path": "/memfs"}}"#), keyPath: #"buckets["192.168.5.4"]"#, reason: "looks like an IP address"),
        RefusedCase(text: withMemfs(#""buckets": {"xn--abc": {"path": "/memfs"}}"#), keyPath: "buckets.xn--abc", reason: "reserves"),
        RefusedCase(text: withMemfs(#""buckets": {"a_b": {"path": "/memfs"}}"#), keyPath: "buckets.a_b", reason: "contains '_'", fix: #""a-b""#),
        RefusedCase(text: withMemfs(#""shares": {"a:b": {"path": "/memfs"}}"#), keyPath: #"shares["a:b"]"#, reason: "contains ':'"),
        RefusedCase(text: withMemfs(#""shares": {"IPC$": {"path": "/memfs"}}"#), keyPath: #"shares["IPC$"]"#, reason: "reserved"),
        RefusedCase(text: withMemfs(#""shares": {"data": {"path": "/memfs"}, "DATA": {"path": "/memfs"}}"#), keyPath: "shares.DATA", reason: "ignore case"),
        RefusedCase(text: #"{"users": {"a b": {"password": "p", "uid": 1, "gid": 1}}}"#, keyPath: #"users["a b"]"#, reason: "contains a space"),
        RefusedCase(text: #"{"users": {"-x": {"password": "p", "uid": 1, "gid": 1}}}"#, keyPath: "users.-x", reason: "starts with"),
        RefusedCase(text: #"{"users": {"bob": {"password": "p", "uid": 1, "gid": 1}, "Bob": {"password": "p", "uid": 1, "gid": 1}}}"#,
                    keyPath: "users.Bob", reason: "ignore case"),
    ]

    static let crossChecks: [RefusedCase] = [
        RefusedCase(text: #"{"server": {"s3_port": 2049}}"#, keyPath: "server.s3_port",
                    reason: "port 2049 is already taken by server.nfs_port (by default)", fix: "Give s3_port another port, or 0"),
        RefusedCase(text: #"{"server": {"smb_port": 7000, "metrics_port": 7000}}"#, keyPath: "server.metrics_port",
                    reason: "port 7000 is already taken by server.smb_port; the metrics endpoint and SMB cannot share a port"),
        RefusedCase(text: #"{"server": {"admin_port": 9000}}"#, keyPath: "server.admin_port", reason: "server.s3_port (by default)"),
        RefusedCase(text: #"{"server": {"nfs_port": 9000}}"#, keyPath: "server.nfs_port",
                    reason: "port 9000 is already taken by server.s3_port (by default); NFS (with MOUNT and portmap) and S3 cannot share a port",
                    fix: "Give nfs_port another port, or 0 to turn NFS (with MOUNT and portmap) off."),
        RefusedCase(text: #"{"server": {"smb_multichannel": [{"address": "127.0.0.1", "speed": 1}, {"address": "127.0.0.1", "speed": 2}]}}"#,
                    keyPath: "server.smb_multichannel[1].address", reason: "listed twice"),
        RefusedCase(text: #"{"server": {"smb_multichannel": [{"address": "0.0.0.0", "speed": 1}]}}"#,
                    keyPath: "server.smb_multichannel[0].address", reason: "not the address of an interface"),
        RefusedCase(text: #"{"server": {"smb_multichannel": [{"address": "10.0.0.1"}]}}"#, keyPath: "server.smb_multichannel[0].speed", reason: "is missing"),
        RefusedCase(text: #"{"server": {"bind": "localhost"}}"#, keyPath: "server.bind", reason: "is not an IPv4 or IPv6 address"),
        RefusedCase(text: #"{"server": {"bind": "fe80::1%eth0"}}"#, keyPath: "server.bind", reason: "zone"),
        RefusedCase(text: withMemfs(#""exports": {"/memfs": {"clients": ["192.168.1.5/24"]}}"#), keyPath: #"exports["/memfs"].clients[0]"#,
                    reason: "the network is 192.168.1.0/24"),
        RefusedCase(text: withMemfs(#""exports": {"/memfs": {"clients": ["10.0.0.0/33"]}}"#), keyPath: #"exports["/memfs"].clients[0]"#, reason: "from 0 to 32"),
        RefusedCase(text: withMemfs(#""exports": {"/memfs": {"clients": ["2001:db8::/129"]}}"#), keyPath: #"exports["/memfs"].clients[0]"#, reason: "from 0 to 128"),
        RefusedCase(text: withMemfs(#""exports": {"/memfs": {"clients": []}}"#), keyPath: #"exports["/memfs"].clients"#, reason: "admits no client"),
        RefusedCase(text: #"{"users": {"u": {"uid": 1, "gid": 1}}}"#, keyPath: "users.u", reason: #"neither a "password" nor an "nt_hash""#),
        RefusedCase(text: #"{"users": {"u": {"password": "p", "nt_hash": "8846f7eaee8fb117ad06bdd830b7586c", "uid": 1, "gid": 1}}}"#,
                    keyPath: "users.u.nt_hash", reason: "both"),
        RefusedCase(text: #"{"users": {"u": {"nt_hash": "8846f7eaee8fb117ad06bdd830b7586", "uid": 1, "gid": 1}}}"#, keyPath: "users.u.nt_hash", reason: "32 hexadecimal digits"),
        RefusedCase(text: #"{"users": {"u": {"nt_hash": "8846f7eaee8fb117ad06bdd830b7586g", "uid": 1, "gid": 1}}}"#, keyPath: "users.u.nt_hash", reason: "32 hexadecimal digits"),
        RefusedCase(text: #"{"users": {"u": {"password": "", "uid": 1, "gid": 1}}}"#, keyPath: "users.u.password", reason: "must not be empty"),
        RefusedCase(text: #"{"users": {"u": {"password": "p", "gid": 1}}}"#, keyPath: "users.u.uid", reason: "is missing"),
        RefusedCase(text: #"{"users": {"u": {"password": "p", "uid": 1, "gid": 1, "s3_access_key": "abcd"}}}"#, keyPath: "users.u.s3_access_key", reason: "without \"s3_secret_key\""),
        RefusedCase(text: #"{"users": {"u": {"password": "p", "uid": 1, "gid": 1, "s3_secret_key": "abcdefgh"}}}"#, keyPath: "users.u.s3_secret_key", reason: "without \"s3_access_key\""),
        RefusedCase(text: #"{"users": {"u": {"password": "p", "uid": 1, "gid": 1, "s3_access_key": "a b c", "s3_secret_key": "abcdefgh"}}}"#, keyPath: "users.u.s3_access_key", reason: "3 to 128"),
        RefusedCase(text: #"{"users": {"u": {"password": "p", "uid": 1, "gid": 1, "s3_access_key": "abc", "s3_secret_key": "short"}}}"#, keyPath: "users.u.s3_secret_key", reason: "8 to 128"),
        RefusedCase(text: #"{"users": {"u": {"password": "p", "uid": 1, "gid": 1, "s3_access_key": "key1", "s3_secret_key": "12345678"}, "v": {"password": "p", "uid": 2, "gid": 2, "s3_access_key": "key1", "s3_secret_key": "87654321"}}}"#,
                    keyPath: "users.v.s3_access_key", reason: #"user "u" has the same S3 access key"#),
    ]

    static let syntax: [RefusedCase] = [
        RefusedCase(text: "{\n  \"server\": {\n    \"threads\": 4\n    \"rdma\": true\n  }\n}", keyPath: "server",
                    reason: "invalid JSON at line 4, column 5: expected ',' or '}' after object member", fix: "config default"),
        RefusedCase(text: #"{"mounts": {"memfs": {}, "memfs": {}}}"#, keyPath: "mounts.memfs",
                    reason: #"invalid JSON at line 1, column 26: duplicate key "memfs" (first written at line 1, column 13)"#, fix: "Keep only one"),
        RefusedCase(text: #"{"server": {"threads": 4,}}"#, keyPath: "server", reason: "trailing commas"),
        RefusedCase(text: #"{"server": {"threads": 04}}"#, keyPath: "server.threads", reason: "leading zeros"),
        RefusedCase(text: "", keyPath: "", reason: "the document is empty"),
    ]

    func check(_ refused: RefusedCase) {
        guard let error = configErrorFor(refused.text) else {
            Issue.record("loaded, but should be refused: \(refused.text)")
            return
        }
        #expect(error.keyPath == refused.keyPath, "\(error)")
        #expect(error.reason.contains(refused.reason), "\(error)")
        #expect(refused.fix.isEmpty || error.fix.contains(refused.fix), "\(error)")
        #expect(!error.fix.isEmpty && error.fix.hasSuffix("."), "\(error)")
        #expect(!error.reason.hasSuffix("."), "\(error)")
        #expect(error.source == "test.json")
        let prefix = refused.keyPath.isEmpty ? "test.json: error: " : "test.json: error: \(refused.keyPath): "
        #expect(error.description.hasPrefix(prefix), "\(error)")
    }

    @Test(arguments: wrongTypes) func wrongType(_ refused: RefusedCase) { check(refused) }
    @Test(arguments: outOfRange) func valueOutOfRange(_ refused: RefusedCase) { check(refused) }
    @Test(arguments: unknownNames) func unknownKeyOrValue(_ refused: RefusedCase) { check(refused) }
    @Test(arguments: namespacePaths) func badPath(_ refused: RefusedCase) { check(refused) }
    @Test(arguments: names) func badName(_ refused: RefusedCase) { check(refused) }
    @Test(arguments: crossChecks) func crossCheck(_ refused: RefusedCase) { check(refused) }
    @Test(arguments: syntax) func syntaxError(_ refused: RefusedCase) { check(refused) }

    @Test func errorDescriptionFormat() {
        let error = ConfigError(keyPath: "server.threads", reason: "expected a whole number, got a string (\"abc\")",
                                fix: "Write a whole number without quotes, e.g. \"threads\": 16.", source: "nas.json")
        #expect(error.description == #"nas.json: error: server.threads: expected a whole number, got a string ("abc"). Write a whole number without quotes, e.g. "threads": 16."#)
        #expect(error.message == #"server.threads: expected a whole number, got a string ("abc"). Write a whole number without quotes, e.g. "threads": 16."#)
        let warning = ConfigWarning(keyPath: "mounts.linux.path", message: "directory /share does not exist")
        #expect(warning.description == "mounts.linux.path: directory /share does not exist")
    }

    @Test func validNamesAreAccepted() throws {
        let text = withMemfs(#"""
            "buckets": {"abc": {"path": "/memfs"}, "a.b-c.123": {"path": "/memfs"}, "\#(String(repeating: "z", count: 63))": {"path": "/memfs"}},
            "shares": {"My Share $": {"path": "/memfs/sub dir"}},
            "users": {"first.last_1": {"password": "p", "uid": 0, "gid": 4294967294}}
            """#)
        let config = try Configuration.parse(text, source: "t", environment: .stub()).configuration
        #expect(config.buckets.count == 3)
        #expect(config.shares.first?.path == "/memfs/sub dir")
    }
}
