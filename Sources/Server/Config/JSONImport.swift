/// The configuration, the admin API and their users speak JSON through the JSON module;
/// re-exported so `import Server` is enough for them.
@_exported import JSON
