//! `tmp2p node`: a long-running node on the smol driver (or the mio driver with
//! `--driver mio`), with its key and redb peer store under `--home` (created on first run)
//! and a raw echo reactor on `--echo-channel`. Prints one line when it listens and one per
//! peer going up or down. Peer exchange (channel 0x00) is on unless `--no-pex`;
//! `--seed-mode` makes it a seed; `--import-addrbook` adds the good entries of a CometBFT
//! `addrbook.json` to the peer store. Both drivers run the same node machine, so they
//! behave the same.

use std::io::Write as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use rand_core::OsRng;
use tmp2p_core::address::NodeAddress;
use tmp2p_core::mconn::ChannelDescriptor;
use tmp2p_core::node_config::NodeConfig;
use tmp2p_core::pex::addrbook::import_addrbook;
use tmp2p_core::pex::PexConfig;
use tmp2p_core::NodeKey;
use tmp2p_driver_smol::NodeBuilder;
use tmp2p_store::RedbPeerStore;

use crate::CliError;

/// Arguments of `tmp2p node`.
#[derive(clap::Args)]
pub(crate) struct NodeArgs {
    /// Directory holding node_key.json and the peer store (created on first run).
    #[arg(long, value_name = "DIR", default_value = ".tmp2p")]
    home: PathBuf,
    /// Address to listen on (port 0 picks a free port). On a loopback address (a local
    /// testnet) loopback peers are exempt from the per-IP-group connection cap (8).
    #[arg(long, value_name = "ADDR", default_value = "0.0.0.0:26656")]
    listen: SocketAddr,
    /// Comma-separated ID@HOST:PORT peers to keep connected.
    #[arg(long, value_name = "LIST", value_delimiter = ',', value_parser = crate::ping::parse_address)]
    persistent_peers: Vec<NodeAddress>,
    /// Comma-separated ID@HOST:PORT peers to dial at start (not kept connected).
    #[arg(long, value_name = "LIST", value_delimiter = ',', value_parser = crate::ping::parse_address)]
    bootstrap_peers: Vec<NodeAddress>,
    /// Do not run peer exchange (channel 0x00 is then not advertised).
    #[arg(long, conflicts_with = "seed_mode")]
    no_pex: bool,
    /// Run as a PEX seed: answer an inbound peer's request then disconnect it, and crawl
    /// the network to keep the peer store fresh.
    #[arg(long)]
    seed_mode: bool,
    /// Add the entries of a CometBFT addrbook.json to the peer store at start (malformed
    /// entries are reported on stderr and skipped).
    #[arg(long, value_name = "FILE")]
    import_addrbook: Option<PathBuf>,
    /// Network (chain id).
    #[arg(long, default_value = "tmp2p-local")]
    network: String,
    /// Channel of the raw echo reactor (decimal or 0xHEX).
    #[arg(long, value_name = "ID", default_value = "0x99", value_parser = crate::ping::parse_channel)]
    echo_channel: u8,
    /// Node name to advertise.
    #[arg(long, default_value = "tmp2p")]
    moniker: String,
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

/// The key under `home`, generated (mode 0600) on first run.
fn home_key(home: &Path) -> Result<NodeKey, CliError> {
    let path = home.join("node_key.json");
    if path.exists() {
        return crate::load_key(&path);
    }
    let key = NodeKey::generate(&mut OsRng);
    crate::write_key_file(&path, &key, false)?;
    Ok(key)
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
    std::fs::create_dir_all(&args.home).map_err(|e| {
        CliError::BadInput(format!("cannot create home {}: {e}", args.home.display()))
    })?;
    let key = home_key(&args.home)?;
    let imported = match &args.import_addrbook {
        Some(path) => Some(read_addrbook(path)?),
        None => None,
    };
    let store_path = args.home.join("peerstore.redb");
    let store = RedbPeerStore::open(&store_path).map_err(|e| {
        CliError::Runtime(format!(
            "cannot open peer store {}: {e}",
            store_path.display()
        ))
    })?;
    let mut config = NodeConfig::new(args.network.clone(), args.listen);
    config.moniker = args.moniker.clone();
    config.persistent_peers = args.persistent_peers.clone();
    config.bootstrap_peers = args.bootstrap_peers.clone();
    config.router.peer_manager.exempt_loopback = args.listen.ip().is_loopback();
    let pex = (!args.no_pex).then(|| PexConfig {
        seed_mode: args.seed_mode,
        ..PexConfig::default()
    });
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

/// The raw echo channel both drivers open.
pub(crate) fn echo_descriptor(id: u8) -> ChannelDescriptor {
    ChannelDescriptor {
        id,
        priority: 1,
        send_queue_capacity: 64,
        recv_message_capacity: 4 * 1024 * 1024,
    }
}

/// One line per peer going up or down, with the count of connected peers; a closed
/// stdout must not end the node (`println!` would panic).
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
    let mut builder =
        NodeBuilder::new(config, key, store).map_err(|e| CliError::BadInput(e.to_string()))?;
    let echo = builder
        .open_raw_channel(echo_descriptor(args.echo_channel))
        .map_err(|e| CliError::BadInput(e.to_string()))?;
    if let Some(pex) = pex {
        builder
            .enable_pex(pex)
            .map_err(|e| CliError::BadInput(e.to_string()))?;
    }
    let updates = builder.subscribe();
    async_io::block_on(async {
        let node = builder
            .start()
            .await
            .map_err(|e| CliError::Runtime(e.to_string()))?;
        println!("node {} listening on {}", node.node_id(), node.local_addr());
        if let Some(addr) = args.metrics {
            let view = node.counters_view();
            let source: crate::metrics::CountersSource =
                std::sync::Arc::new(move || (view.counters(), view.peer_counters()));
            let bound = crate::metrics::serve(addr, source)?;
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
        let (stop_tx, stop_rx) = async_channel::bounded::<()>(1);
        ctrlc::set_handler(move || {
            let _ = stop_tx.try_send(());
        })
        .map_err(|e| CliError::Runtime(format!("cannot install the Ctrl-C handler: {e}")))?;
        let mut connected = std::collections::BTreeSet::new();
        loop {
            let next = futures_lite::future::or(async { updates.recv().await.ok() }, async {
                let _ = stop_rx.recv().await;
                None
            })
            .await;
            let Some(update) = next else { break };
            print_update(&mut connected, &update);
        }
        print_stopping();
        node.stop().await;
        Ok(())
    })
}
