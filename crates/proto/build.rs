//! Generates the gRPC code from `proto/` with protox (a pure-Rust protobuf compiler), so a fresh
//! clone builds with cargo alone: no `protoc`.

use std::path::PathBuf;

/// The proto files to compile, relative to the workspace's `proto/` directory.
const PROTOS: &[&str] = &[
    "strata/internal/v1/raft.proto",
    "strata/internal/v1/node.proto",
    "strata/v1/strata.proto",
    "strata/v1/admin.proto",
    "strata/v1/groups.proto",
    "strata/v1/queues.proto",
];

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let root = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR")?).join("../../proto");
    for proto in PROTOS {
        println!("cargo:rerun-if-changed={}", root.join(proto).display());
    }
    let files: Vec<PathBuf> = PROTOS.iter().map(|p| root.join(p)).collect();
    let descriptors = protox::compile(&files, [&root])?;
    // The descriptor set, for gRPC server reflection.
    let out = PathBuf::from(std::env::var("OUT_DIR")?).join("strata_descriptor.bin");
    std::fs::write(out, prost::Message::encode_to_vec(&descriptors))?;
    tonic_prost_build::configure()
        // Every `bytes` field is `bytes::Bytes`, so payloads are shared, not copied.
        .bytes(".")
        .build_server(true)
        .build_client(true)
        .compile_fds(descriptors)?;
    Ok(())
}
