//! Generates the `evault.v1` messages, clients and servers from
//! `proto/evault/v1/` at build time, with the vendored `protoc`, so building
//! needs no protobuf compiler on the machine.

use std::path::PathBuf;

/// The service files; each imports the shared messages of `log.proto`.
const PROTOS: [&str; 4] = [
    "ingest.proto",
    "tree.proto",
    "sequencer.proto",
    "signer.proto",
];

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let manifest_dir = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR")?);
    // Import paths in the .proto files are relative to this root
    // (`evault/v1/log.proto`), as buf sees them.
    let root = manifest_dir.join("../../proto");
    let package_dir = root.join("evault/v1");
    println!("cargo:rerun-if-changed={}", package_dir.display());
    for entry in std::fs::read_dir(&package_dir)? {
        println!("cargo:rerun-if-changed={}", entry?.path().display());
    }

    let mut config = tonic_prost_build::Config::new();
    // The path is handed to prost-build directly rather than through the
    // PROTOC environment variable, which a build script could only set with
    // `unsafe` code under Rust 2024.
    config.protoc_executable(protoc_bin_vendored::protoc_bin_path()?);
    let protos: Vec<PathBuf> = PROTOS.iter().map(|p| package_dir.join(p)).collect();
    tonic_prost_build::configure()
        .build_client(true)
        .build_server(true)
        .compile_with_config(config, &protos, &[root])?;
    Ok(())
}
