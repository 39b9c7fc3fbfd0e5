//! `tmp2p init --home DIR`: writes a CometBFT-style home that `tmp2p node --home DIR`
//! (and a CometBFT node) reads: `config/config.toml` with the `[p2p]` keys at CometBFT
//! v0.38's defaults, `config/node_key.json`, a `config/genesis.json` naming the chain id,
//! and `data/`. Files that already exist are kept, as `cometbft init` keeps them, so a
//! real chain's genesis.json copied in first is never overwritten.

use std::io::Write as _;
use std::path::{Path, PathBuf};

use rand_core::OsRng;
use tmp2p_core::NodeKey;

use crate::home::{CONFIG_TOML, DEFAULT_GENESIS, DEFAULT_NODE_KEY};
use crate::CliError;

/// Arguments of `tmp2p init`.
#[derive(clap::Args)]
pub(crate) struct InitArgs {
    /// The home directory to write (created if missing).
    #[arg(long, value_name = "DIR")]
    home: PathBuf,
    /// Chain id written to config/genesis.json (when that file does not exist yet).
    #[arg(long, default_value = "tmp2p-local")]
    network: String,
    /// Node name written to config.toml.
    #[arg(long, default_value = "tmp2p")]
    moniker: String,
}

/// Runs `tmp2p init`: prints one line per file, written or kept, then the node id.
pub(crate) fn run(args: &InitArgs) -> Result<(), CliError> {
    for dir in ["config", "data"] {
        let path = args.home.join(dir);
        std::fs::create_dir_all(&path)
            .map_err(|e| CliError::Runtime(format!("cannot create {}: {e}", path.display())))?;
    }
    let moniker = toml_string(&args.moniker);
    let config = args.home.join(CONFIG_TOML);
    write_new(&config, &config_toml(&moniker))?;

    let key_path = args.home.join(DEFAULT_NODE_KEY);
    let key = if key_path.exists() {
        report("kept", &key_path);
        crate::load_key(&key_path)?
    } else {
        let key = NodeKey::generate(&mut OsRng);
        crate::write_key_file(&key_path, &key, false)?;
        report("wrote", &key_path);
        key
    };
    let genesis = serde_json::json!({
        "genesis_time": "1970-01-01T00:00:00Z",
        "chain_id": args.network,
        "initial_height": "1",
    });
    let genesis = serde_json::to_string_pretty(&genesis)
        .map_err(|e| CliError::Runtime(format!("cannot encode genesis.json: {e}")))?;
    write_new(&args.home.join(DEFAULT_GENESIS), &genesis)?;
    println!("node id {}", key.node_id());
    Ok(())
}

/// Writes `text` to `path` unless the file exists (then it is kept); one line either way.
fn write_new(path: &Path, text: &str) -> Result<(), CliError> {
    let mut file = match std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(path)
    {
        Ok(file) => file,
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            report("kept", path);
            return Ok(());
        }
        Err(e) => {
            return Err(CliError::Runtime(format!(
                "cannot create {}: {e}",
                path.display()
            )))
        }
    };
    file.write_all(text.as_bytes())
        .and_then(|()| file.write_all(b"\n"))
        .and_then(|()| file.sync_all())
        .map_err(|e| CliError::Runtime(format!("cannot write {}: {e}", path.display())))?;
    report("wrote", path);
    Ok(())
}

fn report(what: &str, path: &Path) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{what} {}", path.display());
}

/// `value` as a TOML string, quoted and escaped.
fn toml_string(value: &str) -> String {
    toml::Value::String(value.to_owned()).to_string()
}

/// The config.toml we write: the keys tmp2p reads, at CometBFT v0.38's defaults, in
/// CometBFT's layout so a CometBFT node can use the same home.
fn config_toml(moniker: &str) -> String {
    format!(
        r#"# A CometBFT-style node configuration, written by `tmp2p init`.
# tmp2p reads the keys below; it ignores every other key and section, so a full
# CometBFT config.toml works as well. Command-line flags override these values.

# Node name advertised to peers.
moniker = {moniker}

# Paths are relative to the home directory.
genesis_file = "config/genesis.json"
node_key_file = "config/node_key.json"

[p2p]

# Where to listen for peers.
laddr = "tcp://0.0.0.0:26656"

# The address peers should dial (HOST:PORT); empty advertises laddr.
external_address = ""

# Comma-separated ID@HOST:PORT lists.
seeds = ""
persistent_peers = ""

# CometBFT's address book, imported into tmp2p's peer store at first start.
addr_book_file = "config/addrbook.json"

# Refuse non-routable addresses learned from routable peers.
addr_book_strict = true

max_num_inbound_peers = 40
max_num_outbound_peers = 10

# Comma-separated node ids.
unconditional_peer_ids = ""
private_peer_ids = ""

# Longest pause between redials of a persistent peer; 0s keeps the default backoff.
persistent_peers_max_dial_period = "0s"

flush_throttle_timeout = "100ms"
max_packet_msg_payload_size = 1024

# Bytes per second; 0 is no limit.
send_rate = 5120000
recv_rate = 5120000

pex = true
seed_mode = false
allow_duplicate_ip = false

handshake_timeout = "20s"
dial_timeout = "3s""#
    )
}
