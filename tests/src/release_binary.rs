//! Where the benches find the `tmp2p` binary they run as a process: `TMP2P_BIN`, else this
//! workspace's release build (so two builds compare by pointing the variable at each).

use std::path::PathBuf;

/// `TMP2P_BIN`, or `target/release/tmp2p` of this workspace.
pub fn tmp2p_binary() -> PathBuf {
    std::env::var_os("TMP2P_BIN").map_or_else(
        || {
            PathBuf::from(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/../target/release/tmp2p"
            ))
        },
        PathBuf::from,
    )
}
