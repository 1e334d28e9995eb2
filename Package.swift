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
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
        .package(url: "https://github.com/apple/swift-log", from: "1.6.0"),
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
        .target(
            name: "Server",
            dependencies: ["Runtime", "VFS", "MemFS", .product(name: "Logging", package: "swift-log")],
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
                "Server", "Console", "Runtime",
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

        .testTarget(name: "RuntimeTests", dependencies: ["Runtime"]),
        .testTarget(name: "ServerTests", dependencies: ["Server", "Runtime"]),
        .testTarget(name: "VFSTests", dependencies: ["VFS", "MemFS", "Runtime"]),
    ]
)
