//! Compiles the wire schema with protox (pure Rust) and generates prost types, so
//! building needs no system `protoc`.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let files = [
        "proto/tendermint/crypto/keys.proto",
        "proto/tendermint/p2p/conn.proto",
        "proto/tendermint/p2p/types.proto",
        "proto/tendermint/p2p/pex.proto",
        "proto/tendermint/crypto/proof.proto",
        "proto/tendermint/libs/bits/types.proto",
        "proto/tendermint/version/types.proto",
        "proto/tendermint/types/types.proto",
        "proto/tendermint/types/validator.proto",
        "proto/tendermint/types/evidence.proto",
        "proto/tendermint/types/block.proto",
        "proto/tendermint/blocksync/types.proto",
        "proto/tendermint/consensus/types.proto",
        "proto/tendermint/mempool/types.proto",
        "proto/tendermint/statesync/types.proto",
        "proto/tmp2p/echo.proto",
    ];
    for file in files {
        println!("cargo:rerun-if-changed={file}");
    }
    let descriptors = protox::compile(files, ["proto"])?;
    prost_build::Config::new()
        // Every bytes field is bytes::Bytes: payloads are shared, never copied.
        .bytes(["."])
        // Hand-derived in src/node_info.rs so fields 1 and 8 are always encoded.
        .extern_path(
            ".tendermint.p2p.DefaultNodeInfo",
            "crate::node_info::DefaultNodeInfo",
        )
        .compile_fds(descriptors)?;
    Ok(())
}
