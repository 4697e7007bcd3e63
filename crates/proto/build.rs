//! Generates the `evault.v1` messages, clients and servers from
//! `proto/evault/v1/` at build time, with the vendored `protoc`, so building
//! needs no protobuf compiler on the machine.

use std::path::PathBuf;

/// The service files; each imports the shared messages of `log.proto`.
const PROTOS: [&str; 6] = [
    "ingest.proto",
    "evidence.proto",
    "tree.proto",
    "sequencer.proto",
    "audit.proto",
    "signer.proto",
];

/// The files of the services callers reach through the gateway.
const PUBLIC: [&str; 3] = ["ingest.proto", "evidence.proto", "tree.proto"];

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

    let protoc = protoc_bin_vendored::protoc_bin_path()?;
    let config = || {
        let mut config = tonic_prost_build::Config::new();
        // The path is handed to prost-build directly rather than through the
        // PROTOC environment variable, which a build script could only set
        // with `unsafe` code under Rust 2024.
        config.protoc_executable(&protoc);
        config
    };
    let protos: Vec<PathBuf> = PROTOS.iter().map(|p| package_dir.join(p)).collect();
    // The public services' files alone, for gRPC reflection on the
    // gateway: what a caller may call, and nothing internal.
    let descriptors = PathBuf::from(std::env::var("OUT_DIR")?).join("public_descriptors.bin");
    let status = std::process::Command::new(&protoc)
        .arg("--include_imports")
        .arg(format!("--descriptor_set_out={}", descriptors.display()))
        .arg(format!("-I{}", root.display()))
        .args(PUBLIC.iter().map(|p| format!("evault/v1/{p}")))
        .status()?;
    if !status.success() {
        return Err(format!("protoc could not describe the public services: {status}").into());
    }
    // Messages and clients. A client keeps prost's codec: a response it
    // cannot decode is the server's fault, which `INTERNAL` says.
    tonic_prost_build::configure()
        .build_client(true)
        .build_server(false)
        .compile_with_config(config(), &protos, std::slice::from_ref(&root))?;
    // Servers, apart, with the vault's codec (`src/codec.rs`): a request
    // that does not decode is the caller's mistake, `INVALID_ARGUMENT`.
    // The messages are those generated above.
    let servers = PathBuf::from(std::env::var("OUT_DIR")?).join("servers");
    std::fs::create_dir_all(&servers)?;
    tonic_prost_build::configure()
        .build_client(false)
        .build_server(true)
        .extern_path(".evault.v1", "crate::v1")
        .codec_path("crate::codec::RequestCodec")
        .out_dir(servers)
        .compile_with_config(config(), &protos, &[root])?;
    Ok(())
}
