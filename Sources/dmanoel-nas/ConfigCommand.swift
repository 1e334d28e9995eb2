import ArgumentParser
import Server

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// `dmanoel-nas config`: check configuration files, print the built-in default.
struct ConfigCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "config",
        abstract: "Check configuration files, or print the built-in default configuration.",
        discussion: """
            A configuration is a JSON object with the sections "server", "mounts", "exports" \
            (NFS), "shares" (SMB), "buckets" (S3) and "users". A mount named NAME appears at \
            /NAME in the server's namespace; exports, shares and buckets name paths there.

            Mistakes in the file are errors that name the key and the fix, and the server \
            refuses to start with them. Facts about this machine (a plugin library or host \
            directory that is missing, no RDMA device, a port below 1024 without root) are \
            warnings: the server starts and keeps the affected mount or feature offline.

            Start from the default: dmanoel-nas config default > nas.json
            """,
        subcommands: [Check.self, Default.self]
    )

    struct Check: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "check",
            abstract: "Check configuration files without starting the server.",
            discussion: """
                For each FILE, prints "FILE: ok" to standard output and then any warnings \
                ("FILE: warning: KEY: ...") to standard error; or, for a file the server would \
                refuse, one line "FILE: error: KEY: REASON. FIX" to standard error.

                Exit status: 0 when every file is valid (warnings allowed), 1 otherwise.
                """
        )

        @Argument(help: ArgumentHelp("The configuration files to check.", valueName: "FILE"))
        var files: [String]

        @Flag(name: .long, help: "Also print each valid configuration with every default filled in.")
        var effective = false

        func validate() throws {
            if files.isEmpty { throw ValidationError("Name the configuration file to check.") }
        }

        func run() throws {
            var failed = false
            for file in files {
                do {
                    let loaded = try Configuration.load(path: file)
                    ConfigCommand.emit("\(file): ok\n", to: STDOUT_FILENO)
                    for warning in loaded.warnings {
                        ConfigCommand.emit("\(file): warning: \(warning)\n", to: STDERR_FILENO)
                    }
                    if effective {
                        ConfigCommand.emit(loaded.configuration.jsonValue().serialized() + "\n", to: STDOUT_FILENO)
                    }
                } catch {
                    ConfigCommand.emit("\(error)\n", to: STDERR_FILENO)
                    failed = true
                }
            }
            if failed { throw ExitCode(1) }
        }
    }

    struct Default: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "default",
            abstract: "Print the built-in default configuration (what `serve` runs without one).",
            discussion: """
                One in-memory filesystem, mounted at /memfs and offered over NFS (export \
                /memfs), SMB (share "memfs", guests allowed) and S3 (bucket "memfs"), listening \
                on 127.0.0.1 only, on the default unprivileged ports. The user "nas" (password \
                "nas", S3 keys "nasaccesskey" / "nassecretkey123") is a demo credential: change \
                it, and set server.bind, before serving other machines.

                Save it as a starting point: dmanoel-nas config default > nas.json
                """
        )

        func run() throws {
            ConfigCommand.emit(Configuration.embeddedDefaultText + "\n", to: STDOUT_FILENO)
        }
    }

    /// Unbuffered, so that lines on standard output and standard error keep their order.
    static func emit(_ text: String, to fd: Int32) {
        var text = text
        text.withUTF8 { buffer in
            var offset = 0
            while offset < buffer.count {
                let n = write(fd, buffer.baseAddress! + offset, buffer.count - offset)
                if n < 0 {
                    if errno == EINTR { continue }
                    return
                }
                offset += n
            }
        }
    }
}
