//! `tmp2p seed`: one process serving as PEX seed for several networks (chain ids), as
//! seed operators run one seed for dozens of chains. Each network is a node machine of its
//! own in seed mode with its own peer store (`HOME/<chain id>/peerstore.redb`), so
//! addresses never cross between networks; all share one node key (`HOME/node_key.json`)
//! and one smol executor. Networks may share a listen address: a `SharedListener` reads
//! each dialer's NodeInfo and hands the connection to the node of its network. Networks
//! come from `--network CHAIN=ADDR` flags or a TOML file (`--config`):
//!
//! ```toml
//! [[network]]
//! chain_id = "cosmoshub-4"
//! listen = "0.0.0.0:26656"
//! bootstrap_peers = "ID@HOST:PORT,ID@HOST:PORT"   # optional
//! external_address = "seed.example.com:26656"     # optional
//! ```

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::Deserialize;
use tmp2p_core::address::NodeAddress;
use tmp2p_core::node_config::NodeConfig;
use tmp2p_core::pex::PexConfig;
use tmp2p_driver_smol::{
    CountersView, DriverOptions, NodeBuilder, NodeHandle, PeerUpdates, SharedAddressCounters,
    SharedAddressSnapshot, SharedLimits, SharedListener,
};
use tmp2p_store::RedbPeerStore;

use crate::CliError;

/// Arguments of `tmp2p seed`.
#[derive(clap::Args)]
pub(crate) struct SeedArgs {
    /// Directory holding the node key and one peer store per network (created on first
    /// run).
    #[arg(long, value_name = "DIR", default_value = ".tmp2p-seed")]
    home: PathBuf,
    /// A network to serve, as CHAIN_ID=LISTEN_ADDR (repeat for more).
    #[arg(long = "network", value_name = "CHAIN=ADDR", value_parser = parse_network)]
    networks: Vec<NetworkSpec>,
    /// A TOML file of [[network]] tables (chain_id, listen, optional bootstrap_peers and
    /// external_address), served besides the --network flags.
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Peers each network's store keeps at most.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u16).range(1..))]
    max_peers: Option<u16>,
    /// Node name to advertise.
    #[arg(long, default_value = "tmp2p-seed")]
    moniker: String,
    /// Print a line for every peer going up or down (off by default: a busy seed sees
    /// thousands a second).
    #[arg(long)]
    peer_lines: bool,
    /// Print each network's activity every SECONDS (0: never).
    #[arg(long, value_name = "SECONDS", default_value_t = 60)]
    summary_every: u64,
    /// On a listen address shared by several networks: handshakes in flight at once before
    /// a network's node admits them (more are closed at once).
    #[arg(long, value_name = "N",
          default_value_t = u32::try_from(SharedLimits::default().max_answering).unwrap_or(u32::MAX),
          value_parser = clap::value_parser!(u32).range(1..))]
    max_handshakes: u32,
    /// On a shared listen address: of those, from one IP.
    #[arg(long, value_name = "N", default_value_t = SharedLimits::default().max_answering_per_ip,
          value_parser = clap::value_parser!(u32).range(1..))]
    max_handshakes_per_ip: u32,
    /// Serve Prometheus metrics on http://ADDR/metrics: every network's under its
    /// `chain_id` label, and each shared address's (port 0 picks a free port; the address
    /// is printed).
    #[arg(long, value_name = "ADDR")]
    metrics: Option<SocketAddr>,
}

/// One network the seed serves.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct NetworkSpec {
    chain_id: String,
    listen: SocketAddr,
    #[serde(default)]
    bootstrap_peers: String,
    #[serde(default)]
    external_address: Option<String>,
}

/// The config file: `[[network]]` tables.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SeedFile {
    #[serde(default)]
    network: Vec<NetworkSpec>,
}

fn parse_network(text: &str) -> Result<NetworkSpec, String> {
    let (chain_id, listen) = text
        .split_once('=')
        .ok_or_else(|| "expected CHAIN_ID=LISTEN_ADDR".to_owned())?;
    let listen = listen
        .parse()
        .map_err(|e| format!("listen address {listen:?}: {e}"))?;
    Ok(NetworkSpec {
        chain_id: chain_id.to_owned(),
        listen,
        bootstrap_peers: String::new(),
        external_address: None,
    })
}

/// The networks of the flags and the file, checked: at least one, chain ids distinct.
fn networks(args: &SeedArgs) -> Result<Vec<NetworkSpec>, CliError> {
    let mut all = args.networks.clone();
    if let Some(path) = &args.config {
        let text = std::fs::read_to_string(path)
            .map_err(|e| CliError::BadInput(format!("cannot read {}: {e}", path.display())))?;
        let file: SeedFile = toml::from_str(&text).map_err(|e| {
            CliError::BadInput(format!("{}: {}", path.display(), e.message().trim()))
        })?;
        all.extend(file.network);
    }
    if all.is_empty() {
        return Err(CliError::BadInput(
            "no network to serve: pass --network CHAIN=ADDR or --config FILE".into(),
        ));
    }
    let mut chains = BTreeSet::new();
    for spec in &all {
        if !chains.insert(spec.chain_id.clone()) {
            return Err(CliError::BadInput(format!(
                "network {:?} is listed twice",
                spec.chain_id
            )));
        }
    }
    Ok(all)
}

/// Runs `tmp2p seed` until Ctrl-C, then stops every network gracefully.
pub(crate) fn run(args: &SeedArgs) -> Result<(), CliError> {
    let specs = networks(args)?;
    let home = crate::home::Home::open(&args.home)?;
    let key = home.key()?;
    let executor = Arc::new(smol::Executor::new());
    let (quit, quit_rx) = async_channel::bounded::<()>(1);
    for _ in 0..2 {
        let (executor, quit_rx) = (executor.clone(), quit_rx.clone());
        std::thread::spawn(move || smol::block_on(executor.run(quit_rx.recv())));
    }
    let mut running = Vec::new();
    let mut shared = Vec::new();
    let limits = SharedLimits {
        max_answering: usize::try_from(args.max_handshakes).unwrap_or(usize::MAX),
        max_answering_per_ip: args.max_handshakes_per_ip,
    };
    for (listener, group) in listen_groups(&specs)? {
        let first = running.len();
        for spec in group {
            let (handle, updates) = start_network(args, spec, &key, &executor, listener.as_ref())?;
            println!(
                "seed for {} is {}@{}",
                spec.chain_id,
                handle.node_id(),
                handle.local_addr()
            );
            running.push((spec.chain_id.clone(), handle, updates));
        }
        if let Some(listener) = listener {
            let address = listener.local_addr();
            let nodes: Vec<&NodeHandle> = running.iter().skip(first).map(|(_, h, _)| h).collect();
            let serving = listener
                .serve(&executor, &nodes, limits)
                .map_err(|e| CliError::Runtime(e.to_string()))?;
            shared.push((address, serving));
        }
    }
    if let Some(addr) = args.metrics {
        let bound = crate::metrics::serve(addr, scrape_source(&running, &shared))?;
        println!("metrics on http://{bound}/metrics");
    }
    let stop_rx = crate::stop_signal()?;
    for (chain, _, updates) in &running {
        let Some(updates) = updates.clone() else {
            continue;
        };
        let chain = chain.clone();
        executor
            .spawn(async move {
                while let Ok(update) = updates.recv().await {
                    let mut out = std::io::stdout().lock();
                    let _ = writeln!(out, "{chain}: peer {} {:?}", update.node_id, update.status);
                }
            })
            .detach();
    }
    if args.summary_every > 0 {
        let views = running
            .iter()
            .map(|(chain, handle, _)| (chain.clone(), handle.counters_view()))
            .collect();
        let addresses = shared
            .iter()
            .map(|(address, serving)| (*address, serving.counters()))
            .collect();
        let every = std::time::Duration::from_secs(args.summary_every);
        executor
            .spawn(print_activity(views, addresses, every))
            .detach();
    }
    crate::wait_on(async {
        let _ = stop_rx.recv().await;
        crate::node::print_stopping();
        // No new connections on the shared addresses, then each network stops.
        drop(shared);
        for (_, handle, _) in running {
            handle.stop().await;
        }
    });
    drop(quit);
    Ok(())
}

/// What a scrape of `--metrics` reads: each network's counters and each shared address's.
fn scrape_source(
    running: &[(String, NodeHandle, Option<PeerUpdates>)],
    shared: &[(SocketAddr, tmp2p_driver_smol::SharedServing)],
) -> crate::metrics::ScrapeSource {
    let views: Vec<(String, CountersView)> = running
        .iter()
        .map(|(chain, handle, _)| (chain.clone(), handle.counters_view()))
        .collect();
    let addresses: Vec<(SocketAddr, Arc<SharedAddressCounters>)> = shared
        .iter()
        .map(|(address, serving)| (*address, serving.counters()))
        .collect();
    Arc::new(move || crate::metrics::Scrape {
        networks: views
            .iter()
            .map(|(chain, view)| crate::metrics::NetworkCounters {
                chain_id: chain.clone(),
                counters: view.counters(),
                peers: view.peer_counters(),
            })
            .collect(),
        shared: addresses
            .iter()
            .map(|(address, counters)| (*address, counters.snapshot()))
            .collect(),
    })
}

/// Every `every`, one line per network: the handshakes completed, the bytes of addresses
/// handed out and the peers connected, over the last interval; and one per shared address:
/// the connections it handed to a network, those of networks not served here, the
/// handshakes that failed before the dialer's network was known, and the connections
/// refused at once because too many handshakes were in flight.
async fn print_activity(
    views: Vec<(String, CountersView)>,
    addresses: Vec<(SocketAddr, Arc<SharedAddressCounters>)>,
    every: std::time::Duration,
) {
    let mut last: Vec<(u64, u64)> = vec![(0, 0); views.len()];
    let mut last_shared = vec![SharedAddressSnapshot::default(); addresses.len()];
    loop {
        async_io::Timer::after(every).await;
        for ((address, counters), last) in addresses.iter().zip(last_shared.iter_mut()) {
            let now = counters.snapshot();
            let mut out = std::io::stdout().lock();
            let _ = writeln!(
                out,
                "{address} (shared): {} handed over ({} of other networks), {} failed before \
                 their network was known, {} refused as busy in the last {}s",
                now.handed_over.saturating_sub(last.handed_over),
                now.unknown_network.saturating_sub(last.unknown_network),
                now.failed.saturating_sub(last.failed),
                now.refused_busy.saturating_sub(last.refused_busy),
                every.as_secs()
            );
            *last = now;
        }
        for ((chain, view), last) in views.iter().zip(last.iter_mut()) {
            let now = view.counters();
            let (handshakes, addrs_bytes) = (now.handshakes_succeeded, now.pex_addrs_bytes_sent);
            let mut out = std::io::stdout().lock();
            let _ = writeln!(
                out,
                "{chain}: {} handshakes and {} bytes of addresses sent in the last {}s; {} connected",
                handshakes.saturating_sub(last.0),
                addrs_bytes.saturating_sub(last.1),
                every.as_secs(),
                view.peer_counters().len()
            );
            *last = (handshakes, addrs_bytes);
        }
    }
}

/// Networks served on one listen address: several share a listener, bound here; a network
/// alone on its address binds its own (`None`).
type ListenGroup<'a> = (Option<SharedListener>, Vec<&'a NetworkSpec>);

/// The networks grouped by listen address (port 0 is never shared).
fn listen_groups(specs: &[NetworkSpec]) -> Result<Vec<ListenGroup<'_>>, CliError> {
    let mut by_address: BTreeMap<SocketAddr, Vec<&NetworkSpec>> = BTreeMap::new();
    let mut groups = Vec::new();
    for spec in specs {
        if spec.listen.port() == 0 {
            groups.push((None, vec![spec]));
        } else {
            by_address.entry(spec.listen).or_default().push(spec);
        }
    }
    for (address, group) in by_address {
        if group.len() == 1 {
            groups.push((None, group));
            continue;
        }
        let backlog = NodeConfig::new("shared", address).listen_backlog;
        let listener =
            SharedListener::bind(address, backlog).map_err(|e| CliError::Runtime(e.to_string()))?;
        groups.push((Some(listener), group));
    }
    Ok(groups)
}

/// Builds and starts one network's seed on `executor`, on `shared` when it shares its
/// listen address.
fn start_network(
    args: &SeedArgs,
    spec: &NetworkSpec,
    key: &tmp2p_core::NodeKey,
    executor: &Arc<smol::Executor<'static>>,
    shared: Option<&SharedListener>,
) -> Result<(NodeHandle, Option<PeerUpdates>), CliError> {
    let bad =
        |e: &dyn std::fmt::Display| CliError::BadInput(format!("network {:?}: {e}", spec.chain_id));
    let mut config = NodeConfig::new(spec.chain_id.clone(), spec.listen);
    config.moniker.clone_from(&args.moniker);
    config.external_address.clone_from(&spec.external_address);
    for peer in spec
        .bootstrap_peers
        .split(',')
        .map(str::trim)
        .filter(|p| !p.is_empty())
    {
        let address: NodeAddress = crate::ping::parse_address(peer).map_err(|e| bad(&e))?;
        config.bootstrap_peers.push(address);
    }
    config.router.peer_manager.exempt_loopback = spec.listen.ip().is_loopback();
    crate::node::size_store(&mut config.router.peer_manager, args.max_peers, true);
    let store = open_store(&args.home, &spec.chain_id)?;
    let options = DriverOptions::default();
    let mut builder = match shared {
        Some(shared) => {
            NodeBuilder::on_shared_listener(config, key.clone(), Box::new(store), options, shared)
        }
        None => NodeBuilder::with_options(config, key.clone(), Box::new(store), options),
    }
    .map_err(|e| bad(&e))?;
    builder
        .enable_pex(PexConfig {
            seed_mode: true,
            ..PexConfig::default()
        })
        .map_err(|e| bad(&e))?;
    let updates = args.peer_lines.then(|| builder.subscribe());
    let handle = smol::block_on(builder.start_on(executor.clone()))
        .map_err(|e| CliError::Runtime(format!("network {:?}: {e}", spec.chain_id)))?;
    Ok((handle, updates))
}

/// The network's own peer store, `HOME/<chain id>/peerstore.redb`; the chain id is used
/// as a directory name only when it is one plain path component.
fn open_store(home: &Path, chain_id: &str) -> Result<RedbPeerStore, CliError> {
    let plain = !chain_id.is_empty()
        && chain_id != "."
        && chain_id != ".."
        && chain_id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if !plain {
        return Err(CliError::BadInput(format!(
            "chain id {chain_id:?}: expected letters, digits, '-', '_' or '.'"
        )));
    }
    let dir = home.join(chain_id);
    std::fs::create_dir_all(&dir)
        .map_err(|e| CliError::Runtime(format!("cannot create {}: {e}", dir.display())))?;
    let path = dir.join("peerstore.redb");
    RedbPeerStore::open(&path)
        .map_err(|e| CliError::Runtime(format!("cannot open peer store {}: {e}", path.display())))
}
