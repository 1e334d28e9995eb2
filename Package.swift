// swift-tools-version: 6.1
import PackageDescription

/// Release builds drop runtime exclusivity checks: measured ~38% on parsing probes (notes/swift.md).
let fastSettings: [SwiftSetting] = [
    .unsafeFlags(["-enforce-exclusivity=unchecked"], .when(configuration: .release)),
]

let package = Package(
    name: "dmanoel-NAS",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "dmanoel-nas", targets: ["dmanoel-nas"]),
        // The example VFS plugin, loaded with dlopen (libdmanoel-NAS_vfs_demofs.so).
        .library(name: "dmanoel-NAS_vfs_demofs", type: .dynamic, targets: ["DemoFS"]),
        // For the fuzz targets in Fuzz/ (a package of their own, built with -sanitize=fuzzer).
        .library(name: "FuzzSurface", targets: ["HTTP", "S3", "Server", "ONCRPC", "NFS3", "NFS4", "SMB", "MemFS", "VFS"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
        .package(url: "https://github.com/apple/swift-log", from: "1.16.0"),
    ],
    targets: [
        // C libraries, wrapped as system libraries with small shims.
        .systemLibrary(name: "CURing", path: "Sources/CURing"),
        .systemLibrary(name: "CNuma", path: "Sources/CNuma"),
        .systemLibrary(name: "CNcurses", path: "Sources/CNcurses"),
        .systemLibrary(name: "COpenSSL", path: "Sources/COpenSSL"),
        .systemLibrary(name: "CVerbs", path: "Sources/CVerbs"),
        .target(name: "CRuntimeShims", path: "Sources/CRuntimeShims"),

        // Layers, bottom to top: Runtime ← (VFS ← protocols) ← Server ← Console ← CLI.
        .target(
            name: "Runtime",
            dependencies: [
                "CURing", "CNuma", "CVerbs", "CRuntimeShims",
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: fastSettings
        ),
        .target(
            name: "VFS",
            dependencies: ["Runtime", "COpenSSL"],
            swiftSettings: fastSettings
        ),
        .target(
            name: "MemFS",
            dependencies: ["VFS"],
            swiftSettings: fastSettings
        ),
        .target(name: "CLinuxFS", path: "Sources/CLinuxFS"),
        .target(name: "LinuxFS", dependencies: ["VFS", "Runtime", "CLinuxFS"], swiftSettings: fastSettings),
        .target(name: "URingFS", dependencies: ["LinuxFS", "VFS", "Runtime", "CLinuxFS"], swiftSettings: fastSettings),
        // The faults module: wraps another backend and injects errors and delays (a test facility).
        .target(name: "FaultFS", dependencies: ["VFS", "Runtime"], swiftSettings: fastSettings),
        // External VFS plugins: the stable C ABI, its loader, and the example plugin (C).
        .target(name: "CVFSPlugin", path: "Sources/CVFSPlugin"),
        .target(
            name: "PluginFS",
            dependencies: ["VFS", "Runtime", "CVFSPlugin"],
            swiftSettings: fastSettings
        ),
        .target(name: "DemoFS", dependencies: ["CVFSPlugin"], path: "Sources/DemoFS"),
        .target(
            name: "ONCRPC",
            dependencies: ["Runtime"],
            swiftSettings: fastSettings
        ),
        .target(
            name: "NFS3",
            dependencies: ["ONCRPC", "VFS", "Runtime"],
            swiftSettings: fastSettings
        ),
        // NFSv4.0/4.1 (COMPOUND) on the same RPC layer, VFS and shared state table.
        .target(
            name: "NFS4",
            dependencies: ["ONCRPC", "NFS3", "VFS", "Runtime"],
            swiftSettings: fastSettings
        ),
        // HTTP/1.1 on the runtime's loops, and S3 on top of it and the VFS.
        .target(name: "HTTP", dependencies: ["Runtime"], swiftSettings: fastSettings),
        .target(name: "Crypto", dependencies: ["COpenSSL"], swiftSettings: fastSettings),
        // JSON without Foundation: configuration, the admin API, S3 POST policies.
        .target(name: "JSON", swiftSettings: fastSettings),
        .target(name: "S3", dependencies: ["HTTP", "VFS", "Crypto", "JSON", "Runtime"], swiftSettings: fastSettings),
        // SMB2/SMB3 on the runtime's loops and the VFS.
        .target(name: "SMB", dependencies: ["Runtime", "VFS", "Crypto"], swiftSettings: fastSettings),
        .target(
            name: "Server",
            dependencies: [
                "Runtime", "VFS", "MemFS", "LinuxFS", "URingFS", "PluginFS", "FaultFS", "ONCRPC", "NFS3", "NFS4", "HTTP", "S3", "SMB", "JSON",
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: fastSettings
        ),
        // Load clients (NFSv3, S3) on the runtime's loops, and the workload engine and reports.
        .target(name: "LoadClients", dependencies: ["Runtime", "ONCRPC", "Crypto"], swiftSettings: fastSettings),
        .target(
            name: "Workload",
            dependencies: ["LoadClients", "Runtime", "JSON", .product(name: "Logging", package: "swift-log")],
            swiftSettings: fastSettings
        ),
        .target(
            name: "Console",
            dependencies: ["Server", "Runtime", "CNcurses"],
            swiftSettings: fastSettings
        ),
        .executableTarget(
            name: "dmanoel-nas",
            dependencies: [
                "Server", "Console", "Runtime", "LoadClients", "Workload",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: fastSettings
        ),
        // The runtime's side of the ping-pong benchmark (scripts/bench-runtime).
        .executableTarget(
            name: "runtime-echo",
            dependencies: ["Runtime", .product(name: "ArgumentParser", package: "swift-argument-parser")],
            path: "Benchmarks/RuntimeEcho",
            swiftSettings: fastSettings
        ),

        // VFS operation costs without the network (scripts/bench-vfs).
        .executableTarget(
            name: "vfs-bench",
            dependencies: ["VFS", "MemFS", "LinuxFS", "URingFS", "Runtime", .product(name: "ArgumentParser", package: "swift-argument-parser")],
            path: "Benchmarks/VFSBench",
            swiftSettings: fastSettings
        ),

        .testTarget(name: "RuntimeTests", dependencies: ["Runtime"]),
        .testTarget(name: "ServerTests", dependencies: ["Server", "Runtime"]),
        .testTarget(name: "S3Tests", dependencies: ["S3", "HTTP", "Crypto", "VFS"]),
        .testTarget(name: "NFS4Tests", dependencies: ["NFS4", "NFS3", "ONCRPC", "VFS", "MemFS", "Runtime"]),
        .testTarget(name: "WorkloadTests", dependencies: ["Workload", "LoadClients", "ONCRPC", "Runtime"]),
        .testTarget(name: "SMBTests", dependencies: ["SMB", "Crypto", "VFS", "MemFS", "Runtime"]),
        .testTarget(name: "VFSTests", dependencies: ["VFS", "MemFS", "Runtime", "PluginFS", "LinuxFS", "URingFS", "FaultFS"]),
    ]
)
