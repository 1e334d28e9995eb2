import ArgumentParser
import Server

/// The `dmanoel-nas` command: the server, its console and its tools.
@main
struct DmanoelNAS: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "dmanoel-nas",
        abstract: "A userspace NFS / SMB / S3 server with a live performance console.",
        version: BuildInfo.version,
        subcommands: [ServeCommand.self, ConsoleCommand.self, ConfigCommand.self, RunCommand.self, ReportCommand.self, TraceCommand.self],
        defaultSubcommand: nil
    )
}
