//! `tmp2p`, the operator command. Thin: it parses arguments, does the file IO and prints;
//! identities, addresses and node info live in `tmp2p-core`.
//!
//! Exit codes: 0 success, 1 runtime failure, 2 bad arguments or an unreadable or malformed
//! key file; every failure prints one line on stderr.
#![allow(clippy::print_stdout, clippy::print_stderr)]
#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used, clippy::panic))]

mod census;
mod cometbft_config;
mod crawl;
mod demo;
mod home;
mod init;
mod latency;
mod live_view;
mod logging;
mod metrics;
mod node;
mod node_mio;
mod observe;
mod observe_line;
mod observe_summary;
mod ping;
mod seed;
mod session;

use std::fs::OpenOptions;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use rand_core::OsRng;
use tmp2p_core::node_info::{
    NodeInfo, ProtocolVersions, BLOCK_PROTOCOL_VERSION, P2P_PROTOCOL_VERSION,
};
use tmp2p_core::NodeKey;

/// tmp2p: a Tendermint / CometBFT compatible peer-to-peer stack.
#[derive(Parser)]
#[command(name = "tmp2p", version)]
struct Cli {
    #[command(subcommand)]
    command: Command,
    /// Log filter, e.g. `info` or `tmp2p_core=debug,info` (default: RUST_LOG, else info
    /// for `node`, `seed` and `observe`, warn for the other commands). Logs go to stderr.
    #[arg(long, global = true, value_name = "FILTER")]
    log_level: Option<String>,
    /// Log line format.
    #[arg(long, global = true, value_enum, default_value = "plain")]
    log_format: logging::LogFormat,
}

#[derive(Subcommand)]
enum Command {
    /// Generate a node key in Tendermint's node_key.json format.
    Keygen {
        /// Write the key to FILE (created with mode 0600) instead of stdout; prints the node id.
        #[arg(long, value_name = "FILE")]
        out: Option<PathBuf>,
        /// Overwrite FILE if it exists.
        #[arg(long, requires = "out")]
        force: bool,
    },
    /// Print this node's id, then the NodeInfo it would advertise (JSON).
    Id {
        /// The node_key.json to use; without it a throwaway key is generated.
        #[arg(long, value_name = "FILE")]
        key: Option<PathBuf>,
        /// Network (chain id) to advertise.
        #[arg(long, default_value = "tmp2p-local")]
        network: String,
        /// Node name to advertise.
        #[arg(long, default_value = "tmp2p")]
        moniker: String,
        /// Listen address to advertise.
        #[arg(long, default_value = "tcp://0.0.0.0:26656")]
        listen: String,
        /// Channel ids to advertise, as hex bytes (default: PEX only).
        #[arg(long, default_value = "00")]
        channels: String,
    },
    /// Dial a peer, print its NodeInfo and measure round trips (MConnection pings, or an
    /// echo reactor's echoes with --echo-channel).
    Ping(ping::PingArgs),
    /// Write a CometBFT-style home (config/config.toml, node_key.json, genesis.json).
    Init(init::InitArgs),
    /// Run a node: key and peer store under --home, raw echo reactor on --echo-channel.
    Node(node::NodeArgs),
    /// Serve as PEX seed for several networks at once, each with its own peer store.
    Seed(seed::SeedArgs),
    /// Run N nodes on loopback exchanging verified echo traffic, then print a summary.
    Demo(demo::DemoArgs),
    /// Walk a network by PEX from one node and print every node found.
    Crawl(crawl::CrawlArgs),
    /// Join CometBFT nodes as a non-validator peer and print their consensus and mempool
    /// gossip as it arrives (one line or JSON object per message), with summaries.
    Observe(observe::ObserveArgs),
}

/// Why a command failed; decides the exit code.
#[derive(Debug, thiserror::Error)]
enum CliError {
    /// The user asked for something that cannot be done as asked (exit code 2).
    #[error("{0}")]
    BadInput(String),
    /// The environment failed us (exit code 1).
    #[error("{0}")]
    Runtime(String),
}

impl CliError {
    fn exit_code(&self) -> ExitCode {
        match self {
            CliError::BadInput(_) => ExitCode::from(2),
            CliError::Runtime(_) => ExitCode::from(1),
        }
    }
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) if !e.use_stderr() => {
            // --help / --version: print and succeed.
            print!("{e}");
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            let rendered = e.to_string();
            let line = rendered.lines().next().unwrap_or("error: bad arguments");
            eprintln!("tmp2p: {}", line.trim_start_matches("error: "));
            return ExitCode::from(2);
        }
    };
    let default_level = match cli.command {
        Command::Node(_) | Command::Seed(_) | Command::Observe(_) => "info",
        _ => "warn",
    };
    if let Err(e) = logging::install(cli.log_level.as_deref(), cli.log_format, default_level) {
        eprintln!("tmp2p: {e}");
        return e.exit_code();
    }
    let result = match cli.command {
        Command::Keygen { out, force } => keygen(out.as_deref(), force),
        Command::Id {
            key,
            network,
            moniker,
            listen,
            channels,
        } => id(key.as_deref(), network, moniker, listen, &channels),
        Command::Ping(args) => ping::run(&args),
        Command::Init(args) => init::run(&args),
        Command::Node(args) => node::run(&args),
        Command::Seed(args) => seed::run(&args),
        Command::Demo(args) => demo::run(&args),
        Command::Crawl(args) => crawl::run(&args),
        Command::Observe(args) => observe::run(&args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("tmp2p: {e}");
            e.exit_code()
        }
    }
}

fn keygen(out: Option<&Path>, force: bool) -> Result<(), CliError> {
    let key = NodeKey::generate(&mut OsRng);
    let Some(path) = out else {
        print_lines(&[&key.to_json()]);
        return Ok(());
    };
    write_key_file(path, &key, force)?;
    print_lines(&[&key.node_id().to_string()]);
    Ok(())
}

/// Writes `key` to `path` (mode 0600), refusing to overwrite unless `force`.
fn write_key_file(path: &Path, key: &NodeKey, force: bool) -> Result<(), CliError> {
    let json = key.to_json();
    let mut options = OpenOptions::new();
    options.write(true);
    if force {
        options.create(true).truncate(true);
    } else {
        options.create_new(true);
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        options.mode(0o600);
    }
    let mut file = options.open(path).map_err(|e| match e.kind() {
        std::io::ErrorKind::AlreadyExists => CliError::BadInput(format!(
            "{} already exists; pass --force to overwrite it",
            path.display()
        )),
        _ => CliError::Runtime(format!("cannot create {}: {e}", path.display())),
    })?;
    file.write_all(json.as_bytes())
        .and_then(|()| file.write_all(b"\n"))
        .and_then(|()| file.sync_all())
        .map_err(|e| CliError::Runtime(format!("cannot write {}: {e}", path.display())))?;
    Ok(())
}

/// Prints `lines` to stdout; a reader that went away (`tmp2p id | head -1`) ends the
/// output quietly instead of a panic, as `println!` would.
fn print_lines(lines: &[&str]) {
    let mut out = std::io::stdout().lock();
    for line in lines {
        if writeln!(out, "{line}").is_err() {
            return;
        }
    }
}

fn load_key(path: &Path) -> Result<NodeKey, CliError> {
    let bytes = std::fs::read(path)
        .map_err(|e| CliError::BadInput(format!("cannot read key file {}: {e}", path.display())))?;
    NodeKey::from_json(&bytes)
        .map_err(|e| CliError::BadInput(format!("key file {}: {e}", path.display())))
}

fn id(
    key_path: Option<&Path>,
    network: String,
    moniker: String,
    listen: String,
    channels: &str,
) -> Result<(), CliError> {
    let key = match key_path {
        Some(path) => load_key(path)?,
        None => NodeKey::generate(&mut OsRng),
    };
    let channels = hex::decode(channels)
        .map_err(|e| CliError::BadInput(format!("--channels {channels:?} is not hex: {e}")))?;
    let info = our_node_info(&key, network, moniker, listen, channels)?;
    if key_path.is_none() {
        eprintln!("tmp2p: no --key given, using a throwaway key (not saved)");
    }
    print_lines(&[&info.node_id.to_string(), &node_info_json(&info)]);
    Ok(())
}

/// The node info we advertise, validated as a peer would (invalid values are bad input).
fn our_node_info(
    key: &NodeKey,
    network: String,
    moniker: String,
    listen: String,
    channels: Vec<u8>,
) -> Result<NodeInfo, CliError> {
    let info = NodeInfo {
        protocol_version: ProtocolVersions {
            p2p: P2P_PROTOCOL_VERSION,
            block: BLOCK_PROTOCOL_VERSION,
            app: 0,
        },
        node_id: key.node_id(),
        listen_addr: listen,
        network,
        version: env!("CARGO_PKG_VERSION").to_owned(),
        channels,
        moniker,
        tx_index: "off".to_owned(),
        rpc_address: String::new(),
    };
    info.validate()
        .map_err(|e| CliError::BadInput(format!("this node info would be rejected: {e}")))?;
    Ok(info)
}

/// Runs `future` to completion on the main thread while nodes run on executor threads.
/// Unlike `async_io::block_on`, it never drives async-io's reactor: the executor threads
/// do, so a socket's readiness wakes its task on a thread that runs tasks, not on this
/// mostly idle one, which would hand every event across. For `tmp2p node` with one
/// executor thread a sequential dialer's accepts went up 10 % with 11 % less CPU each
/// (BENCHMARKS.md, "The main thread and the reactor").
fn wait_on<T>(future: impl std::future::Future<Output = T>) -> T {
    futures_lite::future::block_on(future)
}

/// A receiver that gets one `()` at Ctrl-C (or SIGTERM): long-running commands stop
/// gracefully on it.
fn stop_signal() -> Result<async_channel::Receiver<()>, CliError> {
    let (stop_tx, stop_rx) = async_channel::bounded::<()>(1);
    ctrlc::set_handler(move || {
        let _ = stop_tx.try_send(());
    })
    .map_err(|e| CliError::Runtime(format!("cannot install the Ctrl-C handler: {e}")))?;
    Ok(stop_rx)
}

/// The node info as CometBFT's RPC `/status` shows it (versions as decimal strings,
/// channels as hex).
fn node_info_json(info: &NodeInfo) -> String {
    let value = serde_json::json!({
        "protocol_version": {
            "p2p": info.protocol_version.p2p.to_string(),
            "block": info.protocol_version.block.to_string(),
            "app": info.protocol_version.app.to_string(),
        },
        "id": info.node_id.to_string(),
        "listen_addr": info.listen_addr,
        "network": info.network,
        "version": info.version,
        "channels": hex::encode_upper(&info.channels),
        "moniker": info.moniker,
        "other": {
            "tx_index": info.tx_index,
            "rpc_address": info.rpc_address,
        },
    });
    serde_json::to_string_pretty(&value).unwrap_or_else(|_| value.to_string())
}
