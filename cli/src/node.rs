//! `tmp2p node`: a long-running node on the smol driver (or the mio driver with
//! `--driver mio`), with its key and redb peer store under `--home` (created on first run;
//! a CometBFT home's config.toml, genesis.json and address book are read, see
//! [`crate::home`]) and a raw echo reactor on `--echo-channel`. Prints one line when it listens and one per
//! peer going up or down. Peer exchange (channel 0x00) is on unless `--no-pex`;
//! `--seed-mode` makes it a seed; `--import-addrbook` adds the good entries of a CometBFT
//! `addrbook.json` to the peer store. Both drivers run the same node machine, so they
//! behave the same.

use std::io::Write as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use tmp2p_core::address::NodeAddress;
use tmp2p_core::mconn::ChannelDescriptor;
use tmp2p_core::node_config::NodeConfig;
use tmp2p_core::pex::addrbook::import_addrbook;
use tmp2p_core::pex::PexConfig;
use tmp2p_core::NodeKey;
use tmp2p_driver_smol::NodeBuilder;
use tmp2p_store::RedbPeerStore;

use crate::home::Home;
use crate::live_view::UpdateSink;
use crate::CliError;

/// The network of a node started without --network and without a CometBFT home.
const DEFAULT_NETWORK: &str = "tmp2p-local";
/// Peers a seed keeps by default: about what a CometBFT address book holds (256 new
/// buckets of 64 and 64 old buckets of 64).
const SEED_MAX_PEERS: u16 = 20_000;
/// CometBFT's default p2p.laddr.
const DEFAULT_LISTEN: SocketAddr =
    SocketAddr::new(std::net::IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED), 26656);

/// Arguments of `tmp2p node`.
#[derive(clap::Args)]
pub(crate) struct NodeArgs {
    /// Home directory: a CometBFT home (config/config.toml, config/node_key.json,
    /// config/genesis.json, the address book; see `tmp2p init`), or else a directory
    /// holding node_key.json and the peer store (created on first run). Flags override
    /// config.toml.
    #[arg(long, value_name = "DIR", default_value = ".tmp2p")]
    home: PathBuf,
    /// Address to listen on (port 0 picks a free port) [default: config.toml's
    /// p2p.laddr, else 0.0.0.0:26656]. On a loopback address (a local testnet) loopback
    /// peers are exempt from the per-IP-group connection cap (8).
    #[arg(long, value_name = "ADDR")]
    listen: Option<SocketAddr>,
    /// Comma-separated ID@HOST:PORT peers to keep connected (replaces config.toml's
    /// p2p.persistent_peers).
    #[arg(long, value_name = "LIST", value_delimiter = ',', value_parser = crate::ping::parse_address)]
    persistent_peers: Vec<NodeAddress>,
    /// Comma-separated ID@HOST:PORT peers to dial at start, not kept connected (replaces
    /// config.toml's p2p.seeds).
    #[arg(long, value_name = "LIST", value_delimiter = ',', value_parser = crate::ping::parse_address)]
    bootstrap_peers: Vec<NodeAddress>,
    /// Do not run peer exchange (channel 0x00 is then not advertised).
    #[arg(long, conflicts_with = "seed_mode")]
    no_pex: bool,
    /// Run as a PEX seed: answer an inbound peer's request then disconnect it, and crawl
    /// the network to keep the peer store fresh.
    #[arg(long)]
    seed_mode: bool,
    /// Peers the peer store keeps at most [default: 260, or 20000 with --seed-mode, about
    /// what a CometBFT address book holds].
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u16).range(1..))]
    max_peers: Option<u16>,
    /// Add the entries of a CometBFT addrbook.json to the peer store at start (malformed
    /// entries are reported on stderr and skipped).
    #[arg(long, value_name = "FILE")]
    import_addrbook: Option<PathBuf>,
    /// Network (chain id) [default: genesis.json's chain_id in a CometBFT home, else
    /// tmp2p-local].
    #[arg(long)]
    network: Option<String>,
    /// Channel of the raw echo reactor (decimal or 0xHEX).
    #[arg(long, value_name = "ID", default_value = "0x99", value_parser = crate::ping::parse_channel)]
    echo_channel: u8,
    /// Node name to advertise [default: config.toml's moniker, else tmp2p].
    #[arg(long)]
    moniker: Option<String>,
    /// How often to ping each peer (Go duration, e.g. 10s); the pong timeout is then
    /// kept below it [default: 60s, as CometBFT].
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    ping_interval: Option<std::time::Duration>,
    /// Executor threads of the smol driver (default 2; connection crypto runs in parallel
    /// across them). One thread saves the wake-ups between threads, which pays off on a
    /// machine whose other cores are busy.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u16).range(1..=256))]
    threads: Option<u16>,
    /// Which driver runs the node.
    #[arg(long, value_enum, default_value = "smol")]
    driver: DriverKind,
    /// Serve Prometheus metrics on http://ADDR/metrics (port 0 picks a free port; the
    /// address is printed on the line after the listening one).
    #[arg(long, value_name = "ADDR")]
    metrics: Option<SocketAddr>,
}

/// The drivers `tmp2p node` can run on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum DriverKind {
    /// The smol driver (async tasks on an executor).
    Smol,
    /// The mio driver (one event-loop thread).
    Mio,
}

/// The good addresses of a CometBFT addrbook.json; each malformed entry is reported on
/// stderr (one line) and skipped.
fn read_addrbook(path: &Path) -> Result<Vec<NodeAddress>, CliError> {
    let bytes = std::fs::read(path)
        .map_err(|e| CliError::BadInput(format!("cannot read {}: {e}", path.display())))?;
    let imported = import_addrbook(&bytes)
        .map_err(|e| CliError::BadInput(format!("{}: {e}", path.display())))?;
    for rejected in &imported.rejected {
        eprintln!(
            "tmp2p: {}: entry {} skipped: {}",
            path.display(),
            rejected.index,
            rejected.reason
        );
    }
    Ok(imported.addresses)
}

/// Runs `tmp2p node` until the process is stopped.
pub(crate) fn run(args: &NodeArgs) -> Result<(), CliError> {
    if args.threads.is_some() && args.driver == DriverKind::Mio {
        return Err(CliError::BadInput(
            "--threads sets the smol driver's executor; the mio driver runs one loop thread".into(),
        ));
    }
    let home = Home::open(&args.home)?;
    let key = home.key()?;
    let (config, pex) = resolve_config(args, &home)?;
    let store_path = home.store_path();
    let first_start = !store_path.exists();
    let addrbook = match (&args.import_addrbook, home.addrbook()) {
        (Some(path), _) => Some(path.clone()),
        (None, Some(path)) if first_start => Some(path),
        _ => None,
    };
    let imported = addrbook.as_deref().map(read_addrbook).transpose()?;
    if let Some(dir) = store_path.parent() {
        std::fs::create_dir_all(dir)
            .map_err(|e| CliError::Runtime(format!("cannot create {}: {e}", dir.display())))?;
    }
    let store = RedbPeerStore::open(&store_path).map_err(|e| {
        CliError::Runtime(format!(
            "cannot open peer store {}: {e}",
            store_path.display()
        ))
    })?;
    let store = Box::new(store);
    match args.driver {
        DriverKind::Smol => run_smol(args, config, key, store, pex, imported),
        DriverKind::Mio => {
            let metrics = args.metrics;
            crate::node_mio::run(
                args.echo_channel,
                config,
                key,
                store,
                pex,
                imported,
                metrics,
            )
        }
    }
}

/// The node's settings: the defaults, then config.toml (in a CometBFT home), then the
/// flags. Each config.toml key tmp2p honours differently is logged once, at info.
fn resolve_config(
    args: &NodeArgs,
    home: &Home,
) -> Result<(NodeConfig, Option<PexConfig>), CliError> {
    let network = match &args.network {
        Some(network) => network.clone(),
        None => match home.genesis_network()? {
            Some(network) => network,
            None if home.is_cometbft() => {
                return Err(CliError::BadInput(format!(
                    "{}: no genesis.json to take the chain id from; pass --network",
                    args.home.display()
                )))
            }
            None => DEFAULT_NETWORK.to_owned(),
        },
    };
    let mut config = NodeConfig::new(network, DEFAULT_LISTEN);
    let mut pex = Some(PexConfig::default());
    for note in home.settings().apply(&mut config, &mut pex) {
        tracing::info!(file = crate::home::CONFIG_TOML, "{note}");
    }
    if let Some(listen) = args.listen {
        config.listen = listen;
    }
    if let Some(moniker) = &args.moniker {
        config.moniker.clone_from(moniker);
    }
    if !args.persistent_peers.is_empty() {
        config.persistent_peers.clone_from(&args.persistent_peers);
    }
    if !args.bootstrap_peers.is_empty() {
        config.bootstrap_peers.clone_from(&args.bootstrap_peers);
    }
    if args.no_pex {
        pex = None;
    }
    if args.seed_mode {
        pex.get_or_insert_with(PexConfig::default).seed_mode = true;
    }
    let seed = pex.as_ref().is_some_and(|p| p.seed_mode);
    size_store(&mut config.router.peer_manager, args.max_peers, seed);
    if let Some(interval) = args.ping_interval {
        let mconn = &mut config.router.connection.mconn;
        mconn.ping_interval = interval;
        if mconn.pong_timeout >= interval {
            mconn.pong_timeout = interval.saturating_mul(3) / 4;
        }
    }
    config.router.peer_manager.exempt_loopback = config.listen.ip().is_loopback();
    Ok((config, pex))
}

/// Sets how many peers the store keeps: `max_peers` when given, else [`SEED_MAX_PEERS`]
/// for a seed; the connection caps are then fitted into it (as
/// `PeerManagerOptions::validate` requires).
pub(crate) fn size_store(
    pm: &mut tmp2p_core::peer_manager::PeerManagerOptions,
    max_peers: Option<u16>,
    seed: bool,
) {
    match max_peers {
        Some(max) => pm.max_peers = max,
        None if seed => pm.max_peers = pm.max_peers.max(SEED_MAX_PEERS),
        None => {}
    }
    let room = pm.max_peers.saturating_sub(pm.max_connected_upgrade);
    pm.max_connected = pm.max_connected.min(room);
    pm.max_outgoing_connections = pm.max_outgoing_connections.min(pm.max_connected);
}

fn driver_options(args: &NodeArgs) -> tmp2p_driver_smol::DriverOptions {
    let mut options = tmp2p_driver_smol::DriverOptions::default();
    if let Some(threads) = args.threads {
        options.threads = usize::from(threads);
    }
    options
}

fn parse_duration(text: &str) -> Result<std::time::Duration, String> {
    crate::cometbft_config::parse_go_duration(text)
        .filter(|d| !d.is_zero())
        .ok_or_else(|| "expected a duration above zero such as 500ms, 10s or 1m0s".to_owned())
}

/// The raw echo channel both drivers open.
pub(crate) fn echo_descriptor(id: u8) -> ChannelDescriptor {
    ChannelDescriptor {
        id,
        priority: 1,
        send_queue_capacity: 64,
        recv_message_capacity: 4 * 1024 * 1024,
    }
}

/// One line per peer going up or down, with the count of connected peers (when stdout is
/// not a terminal); a closed stdout must not end the node (`println!` would panic).
pub(crate) fn print_update(
    connected: &mut std::collections::BTreeSet<tmp2p_core::NodeId>,
    update: &tmp2p_core::peer_manager::PeerUpdate,
) {
    match update.status {
        tmp2p_core::peer_manager::PeerStatus::Up => connected.insert(update.node_id),
        tmp2p_core::peer_manager::PeerStatus::Down => connected.remove(&update.node_id),
    };
    let mut out = std::io::stdout().lock();
    let _ = writeln!(
        out,
        "peer {} {:?} ({} connected)",
        update.node_id,
        update.status,
        connected.len()
    );
}

/// Prints the stop line (to a stdout that may be closed).
pub(crate) fn print_stopping() {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(
        out,
        "stopping: flushing queued messages and syncing the peer store"
    );
}

fn run_smol(
    args: &NodeArgs,
    config: NodeConfig,
    key: NodeKey,
    store: Box<RedbPeerStore>,
    pex: Option<PexConfig>,
    imported: Option<Vec<NodeAddress>>,
) -> Result<(), CliError> {
    let chain_id = config.network.clone();
    let mut builder = NodeBuilder::with_options(config, key, store, driver_options(args))
        .map_err(|e| CliError::BadInput(e.to_string()))?;
    let echo = builder
        .open_raw_channel(echo_descriptor(args.echo_channel))
        .map_err(|e| CliError::BadInput(e.to_string()))?;
    if let Some(pex) = pex {
        builder
            .enable_pex(pex)
            .map_err(|e| CliError::BadInput(e.to_string()))?;
    }
    let updates = builder.subscribe();
    crate::wait_on(async {
        let node = builder
            .start()
            .await
            .map_err(|e| CliError::Runtime(e.to_string()))?;
        let title = format!("node {} listening on {}", node.node_id(), node.local_addr());
        println!("{title}");
        let view = node.counters_view();
        let source: crate::metrics::CountersSource =
            std::sync::Arc::new(move || (view.counters(), view.peer_counters()));
        if let Some(addr) = args.metrics {
            let scrape = crate::metrics::one_network(chain_id, source.clone());
            let bound = crate::metrics::serve(addr, scrape)?;
            println!("metrics on http://{bound}/metrics");
        }
        node.spawn(tmp2p_driver_smol::echo::run_raw_echo(echo))
            .detach();
        if let Some(addresses) = imported {
            let mut added = 0usize;
            for address in addresses {
                match node.add_peer(address.clone()).await {
                    Ok(true) => added = added.saturating_add(1),
                    Ok(false) => {}
                    Err(e) => eprintln!("tmp2p: addrbook address {address} refused: {e}"),
                }
            }
            println!("imported {added} new address(es) from the address book");
        }
        // Ctrl-C (or SIGTERM) stops the node gracefully: queued messages are flushed and
        // the peer store synced before the process exits.
        let stop_rx = crate::stop_signal()?;
        let mut sink = UpdateSink::for_stdout(source, title);
        loop {
            let next = futures_lite::future::or(async { updates.recv().await.ok() }, async {
                let _ = stop_rx.recv().await;
                None
            })
            .await;
            let Some(update) = next else { break };
            sink.update(&update);
        }
        print_stopping();
        node.stop().await;
        Ok(())
    })
}
