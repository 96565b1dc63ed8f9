// swift-tools-version: 6.0
import PackageDescription

let package = Package(
    name: "Almanac",
    platforms: [.macOS(.v14)],
    products: [
        .executable(name: "almanac", targets: ["almanac"]),
        .library(name: "AlmanacCore", targets: ["AlmanacCore"]),
        .library(name: "AlmanacFunctions", targets: ["AlmanacFunctions"]),
        .library(name: "AlmanacFunctionsTesting", targets: ["AlmanacFunctionsTesting"]),
        .library(name: "AlmanacControlPlane", targets: ["AlmanacControlPlane"]),
        .library(name: "AlmanacForecast", targets: ["AlmanacForecast"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
        .package(url: "https://github.com/apple/swift-log", from: "1.6.0"),
        .package(url: "https://github.com/jpsim/Yams", from: "5.0.0"),
        .package(url: "https://github.com/x-sheep/swift-property-based", from: "2.0.1"),
        .package(url: "https://github.com/hummingbird-project/hummingbird", from: "2.0.0"),
        .package(url: "https://github.com/apple/swift-http-types", from: "1.0.0"),
        .package(url: "https://github.com/apple/swift-crypto", "3.12.3"..<"5.0.0"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle", from: "2.6.0"),
    ],
    targets: [
        // C libraries, each behind a module map and a thin shim.
        .systemLibrary(name: "CRdKafka", pkgConfig: "rdkafka",
                       providers: [.apt(["librdkafka-dev"])]),
        .systemLibrary(name: "CLibPQ", pkgConfig: "libpq",
                       providers: [.apt(["libpq-dev"])]),
        .systemLibrary(name: "CCurl", pkgConfig: "libcurl",
                       providers: [.apt(["libcurl4-openssl-dev"])]),
        .target(name: "CAlmanacShims", dependencies: ["CRdKafka"]),
        .systemLibrary(name: "CZlib", path: "Sources/CZlib"),

        // The small core: events, patterns, schemas, manifests. No I/O.
        .target(name: "AlmanacCore", dependencies: [
            .product(name: "Yams", package: "Yams"),
        ]),
        // The forecasting library: pure Swift, no I/O beyond reading CSV text.
        .target(name: "AlmanacForecast"),
        // The parts the core uses.
        .target(name: "AlmanacKafka", dependencies: [
            "CRdKafka", "CAlmanacShims", "AlmanacCore",
            .product(name: "Logging", package: "swift-log"),
        ]),
        .target(name: "AlmanacPostgres", dependencies: [
            "CLibPQ",
            .product(name: "Logging", package: "swift-log"),
        ]),
        .target(name: "AlmanacHTTP", dependencies: ["CCurl"]),
        // The function SDK: what a function executable imports (handler protocols, context,
        // the run loop and its attempt state machine, the exec adapter, and the stores it owns).
        .target(name: "AlmanacFunctions", dependencies: [
            "AlmanacCore", "AlmanacKafka", "AlmanacPostgres",
            .product(name: "Logging", package: "swift-log"),
            .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
        ]),
        // For function authors' tests: run a handler on an event and see what it staged.
        .target(name: "AlmanacFunctionsTesting", dependencies: [
            "AlmanacFunctions", "AlmanacCore", "AlmanacPostgres", .product(name: "Logging", package: "swift-log"),
        ]),
        // The control plane: router, launcher, ingress, scheduling, embedded services.
        .target(name: "AlmanacControlPlane", dependencies: [
            "AlmanacFunctions", "AlmanacCore", "AlmanacKafka", "AlmanacPostgres", "AlmanacHTTP",
            .product(name: "Logging", package: "swift-log"),
            .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            .product(name: "Hummingbird", package: "hummingbird"),
            .product(name: "Crypto", package: "swift-crypto"),
        ]),
        // The forecasting pipeline's domain: datasets, ingest, predictors, forecasts, webhooks,
        // and its functions' handlers. Depends on the SDK only.
        .target(name: "AlmanacPipeline", dependencies: [
            "AlmanacFunctions", "AlmanacPostgres", "AlmanacCore", "AlmanacForecast", "AlmanacHTTP", "AlmanacKafka", "CZlib",
            .product(name: "Logging", package: "swift-log"),
            .product(name: "Crypto", package: "swift-crypto"),
        ]),
        // The `/v1` API and the console, served by the control plane's ingress.
        .target(name: "AlmanacAPI", dependencies: [
            "AlmanacPipeline", "AlmanacControlPlane", "AlmanacFunctions", "AlmanacPostgres", "AlmanacCore", "AlmanacForecast",
            .product(name: "Logging", package: "swift-log"),
            .product(name: "Hummingbird", package: "hummingbird"),
            .product(name: "HTTPTypes", package: "swift-http-types"),
            .product(name: "Crypto", package: "swift-crypto"),
        ]),
        // `almanac bench`: the benchmark commands, apart from the command's main target.
        .target(name: "AlmanacBenchmarks", dependencies: [
            "AlmanacAPI", "AlmanacPipeline", "AlmanacControlPlane", "AlmanacFunctions", "AlmanacHTTP", "AlmanacKafka", "AlmanacPostgres", "AlmanacCore",
            .product(name: "ArgumentParser", package: "swift-argument-parser"),
            .product(name: "Hummingbird", package: "hummingbird"),
            .product(name: "Logging", package: "swift-log"),
        ]),
        .executableTarget(name: "fn-ingest", dependencies: ["AlmanacPipeline", "AlmanacFunctions"], path: "functions/ingest",
                          exclude: ["function.yaml"]),
        .executableTarget(name: "fn-train", dependencies: ["AlmanacPipeline", "AlmanacFunctions"], path: "functions/train",
                          exclude: ["function.yaml"]),
        .executableTarget(name: "fn-forecast", dependencies: ["AlmanacPipeline", "AlmanacFunctions"], path: "functions/forecast",
                          exclude: ["function.yaml"]),
        .executableTarget(name: "fn-export", dependencies: ["AlmanacPipeline", "AlmanacFunctions"], path: "functions/export",
                          exclude: ["function.yaml"]),
        .executableTarget(name: "fn-monitor", dependencies: ["AlmanacPipeline", "AlmanacFunctions"], path: "functions/monitor",
                          exclude: ["function.yaml"]),
        .executableTarget(name: "fn-notify", dependencies: ["AlmanacPipeline", "AlmanacFunctions"], path: "functions/notify",
                          exclude: ["function.yaml"]),
        .executableTarget(name: "almanac", dependencies: [
            "AlmanacBenchmarks", "AlmanacAPI", "AlmanacPipeline", "AlmanacControlPlane", "AlmanacFunctions", "AlmanacHTTP", "AlmanacKafka",
            "AlmanacPostgres", "AlmanacCore", "AlmanacForecast",
            .product(name: "ArgumentParser", package: "swift-argument-parser"),
            .product(name: "Hummingbird", package: "hummingbird"),
            .product(name: "Yams", package: "Yams"),
            .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            .product(name: "UnixSignals", package: "swift-service-lifecycle"),
        ]),

        // Small functions that prove the runtime with any handler.
        .executableTarget(name: "almanac-testfn", dependencies: ["AlmanacFunctions"],
                          path: "Tests/Functions/almanac-testfn"),

        .testTarget(name: "AlmanacCoreTests", dependencies: ["AlmanacCore"]),
        .testTarget(name: "AlmanacFunctionsTests", dependencies: ["AlmanacFunctions", "AlmanacFunctionsTesting", "AlmanacCore"]),
        .testTarget(name: "AlmanacForecastTests", dependencies: [
            "AlmanacForecast",
            .product(name: "PropertyBased", package: "swift-property-based"),
        ]),
        .testTarget(name: "AlmanacRuntimeTests", dependencies: [
            "AlmanacFunctions", "AlmanacFunctionsTesting", "AlmanacControlPlane", "AlmanacPipeline", "AlmanacAPI", "almanac-testfn", "almanac", "fn-ingest", "fn-train", "fn-forecast", "fn-export", "fn-monitor", "fn-notify",
            .product(name: "Hummingbird", package: "hummingbird"),
            .product(name: "HTTPTypes", package: "swift-http-types"),
            .product(name: "Crypto", package: "swift-crypto"),
            .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
        ]),
    ]
)
