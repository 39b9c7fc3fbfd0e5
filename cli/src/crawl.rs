//! `tmp2p crawl`: walks a network by PEX from one node. Each node is dialed once with a
//! [`Session`] (advertising the CometBFT standard channels, PEX 0x00 included), measured
//! with one MConnection ping, asked once with a `PexRequest` (CometBFT tolerates two
//! requests per connection before its rate rule applies; one is enough), and closed; the
//! addresses of its `PexAddrs` answer are queued. Bounded by `--max-nodes` (nodes
//! found), `--concurrency` (worker threads dialing at once) and `--timeout` (per node).
//! One connection and one request per node keep well inside CometBFT's pacing (a peer
//! may ask at most once per 10 s). What the walk learned is a [`Census`].

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::io::{IsTerminal as _, Write as _};
use std::path::PathBuf;
use std::time::Duration;

use crate::session::{Session, SessionError};
use async_io::Timer;
use futures_lite::future;
use rand_core::OsRng;
use tmp2p_core::address::{NetAddress, NodeAddress};
use tmp2p_core::connection::PeerConfig;
use tmp2p_core::node_info::NodeInfo;
use tmp2p_core::pex::{MAX_ADDRESSES_RECEIVED, PEX_CHANNEL};
use tmp2p_core::typed::pex::PexInner;
use tmp2p_core::typed::{ChannelCodec, WrapperCodec};
use tmp2p_core::{NodeId, NodeKey};
use tmp2p_proto::p2p::{Message, PexAddrs, PexRequest};

use crate::census::{host_port, Census, Found, Reached, Unreached};
use crate::ping::{COMETBFT_CHANNELS, DEFAULT_NETWORK};
use crate::CliError;

/// Arguments of `tmp2p crawl`.
#[derive(clap::Args)]
pub(crate) struct CrawlArgs {
    /// The node to start from: ID@HOST:PORT.
    #[arg(value_name = "ID@HOST:PORT", value_parser = crate::ping::parse_address)]
    address: NodeAddress,
    /// Network (chain id) to advertise; nodes of another network refuse the handshake.
    /// Without it, the start node's network is learned from its NodeInfo (even when it
    /// refuses a node of tmp2p-local) and used for the whole walk.
    #[arg(long)]
    network: Option<String>,
    /// Stop queueing new nodes once this many were found.
    #[arg(long, value_name = "N", default_value_t = 1000,
          value_parser = clap::value_parser!(u32).range(1..))]
    max_nodes: u32,
    /// Nodes dialed at the same time.
    #[arg(long, value_name = "N", default_value_t = 8,
          value_parser = clap::value_parser!(u16).range(1..=256))]
    concurrency: u16,
    /// Seconds allowed per node (connect, handshake, ping and the PEX answer).
    #[arg(long, value_name = "SECONDS", default_value_t = 10,
          value_parser = clap::value_parser!(u64).range(1..))]
    timeout: u64,
    /// Print one JSON object instead of a table.
    #[arg(long, conflicts_with = "csv")]
    json: bool,
    /// Print the census as CSV (one row per node) instead of a table.
    #[arg(long)]
    csv: bool,
    /// Also write who knows whom (the graph the PEX answers reveal) to FILE: SVG to open
    /// in a browser when FILE ends in .svg, Graphviz DOT otherwise.
    #[arg(long, value_name = "FILE")]
    graph: Option<PathBuf>,
}

/// The per-node work: one session, one ping, one PEX request.
struct Visit {
    key: NodeKey,
    info: NodeInfo,
    config: PeerConfig,
    timeout: Duration,
}

/// Runs `tmp2p crawl`.
pub(crate) fn run(args: &CrawlArgs) -> Result<(), CliError> {
    let key = NodeKey::generate(&mut OsRng);
    // Port 0: a node offered our listen address drops it (nobody listens there).
    let mut info = crate::our_node_info(
        &key,
        args.network
            .clone()
            .unwrap_or_else(|| DEFAULT_NETWORK.to_owned()),
        "tmp2p-crawl".to_owned(),
        "tcp://0.0.0.0:0".to_owned(),
        COMETBFT_CHANNELS.to_vec(),
    )?;
    let timeout = Duration::from_secs(args.timeout);
    let config = crate::session::session_config(&COMETBFT_CHANNELS, timeout);
    if args.network.is_none() {
        info.network = async_io::block_on(crate::session::learn_network(
            &args.address,
            &key,
            &info,
            &config,
        ));
    }
    let visit = std::sync::Arc::new(Visit {
        key,
        info,
        config,
        timeout,
    });
    let max_nodes = usize::try_from(args.max_nodes).unwrap_or(usize::MAX);
    let census = walk(
        &args.address,
        &visit,
        max_nodes,
        args.concurrency,
        !args.json && !args.csv,
    );
    if let Some(path) = &args.graph {
        census.write_graph(path)?;
    }
    if args.json {
        println!("{}", census.json());
    } else if args.csv {
        print!("{}", census.csv()?);
    } else {
        print!("{}", census.table());
    }
    Ok(())
}

/// The crawl loop: worker threads visit nodes; this thread queues what they learn and
/// keeps every address and edge the answers reveal.
fn walk(
    start: &NodeAddress,
    visit: &std::sync::Arc<Visit>,
    max_nodes: usize,
    concurrency: u16,
    progress: bool,
) -> Census {
    let progress = progress && std::io::stderr().is_terminal();
    let (jobs_tx, jobs) = async_channel::unbounded::<NodeAddress>();
    let (results_tx, results) = async_channel::unbounded::<(Found, Vec<NodeAddress>)>();
    let mut workers = Vec::new();
    for _ in 0..concurrency {
        let jobs = jobs.clone();
        let results_tx = results_tx.clone();
        let visit = std::sync::Arc::clone(visit);
        workers.push(std::thread::spawn(move || {
            while let Ok(address) = jobs.recv_blocking() {
                let (outcome, learned) = async_io::block_on(visit_node(&visit, &address));
                let found = Found { address, outcome };
                if results_tx.send_blocking((found, learned)).is_err() {
                    return;
                }
            }
        }));
    }
    drop(results_tx);
    let mut seen: BTreeSet<NodeId> = BTreeSet::from([start.node_id]);
    let mut queue = VecDeque::from([start.clone()]);
    let mut in_flight = 0usize;
    let mut found = Vec::new();
    let mut heard: BTreeMap<NodeId, BTreeSet<String>> = BTreeMap::new();
    let mut edges = BTreeSet::new();
    loop {
        while let Some(address) = queue.pop_front() {
            if jobs_tx.send_blocking(address).is_ok() {
                in_flight = in_flight.saturating_add(1);
            }
        }
        if in_flight == 0 {
            break;
        }
        let Ok((node, learned)) = results.recv_blocking() else {
            break;
        };
        in_flight = in_flight.saturating_sub(1);
        for address in &learned {
            edges.insert((node.address.node_id, address.node_id));
            heard
                .entry(address.node_id)
                .or_default()
                .insert(host_port(address));
        }
        for address in learned {
            if seen.len() >= max_nodes {
                break;
            }
            if address.node_id != visit.key.node_id() && seen.insert(address.node_id) {
                queue.push_back(address);
            }
        }
        found.push(node);
        if progress {
            let mut err = std::io::stderr().lock();
            let _ = write!(
                err,
                "\rcrawled {} of {} found, {} in flight ",
                found.len(),
                seen.len(),
                in_flight.saturating_add(queue.len())
            );
        }
    }
    if progress {
        eprintln!();
    }
    jobs_tx.close();
    for worker in workers {
        let _ = worker.join();
    }
    Census::new(found, heard, edges)
}

/// Dials one node, pings it, asks it for addresses once. Returns the outcome and the
/// addresses it gave.
async fn visit_node(
    visit: &Visit,
    address: &NodeAddress,
) -> (Result<Reached, Unreached>, Vec<NodeAddress>) {
    let limit = visit.timeout;
    let connect = Session::connect(
        address,
        &visit.key,
        visit.info.clone(),
        visit.config.clone(),
    );
    let mut session = match within(limit, connect).await {
        Some(Ok(session)) => session,
        Some(Err(error)) => return (Err(unreached(&error)), Vec::new()),
        None => {
            let outcome = Unreached::Unreachable {
                kind: "timeout",
                detail: format!("no handshake within {limit:?}"),
            };
            return (Err(outcome), Vec::new());
        }
    };
    let Some(info) = session.peer_info().cloned() else {
        let outcome = Unreached::Refused {
            kind: "NoNodeInfo".to_owned(),
            detail: "handshake completed without the peer's node info".to_owned(),
        };
        return (Err(outcome), Vec::new());
    };
    let rtt = match within(limit, session.ping()).await {
        Some(Ok(rtt)) => Some(rtt),
        // Closed right after the handshake: the node refused us (full, banned...).
        Some(Err(error)) => {
            let outcome = Unreached::Refused {
                kind: "ClosedAfterHandshake".to_owned(),
                detail: format!("{:?} closed the connection: {error}", info.moniker),
            };
            return (Err(outcome), Vec::new());
        }
        None => None,
    };
    let answer = within(limit, ask_addresses(&mut session)).await;
    if let Some(Err(error)) = &answer {
        tracing::debug!(peer = %address.node_id, %error, "no PEX answer");
    }
    let _ = within(Duration::from_secs(1), session.close()).await;
    let learned = match answer {
        Some(Ok(addrs)) => Some(checked_addresses(addrs, address)),
        _ => None,
    };
    let reached = Reached {
        info,
        rtt,
        addresses: learned.as_ref().map(Vec::len),
    };
    (Ok(reached), learned.unwrap_or_default())
}

/// Sends one `PexRequest` and waits for the `PexAddrs` answer (the node's own request to
/// us is answered with an empty list).
async fn ask_addresses(session: &mut Session) -> Result<PexAddrs, SessionError> {
    let codec = WrapperCodec::<Message, PexInner>::new();
    session
        .send(PEX_CHANNEL, codec.encode(&PexInner::Request(PexRequest {})))
        .await?;
    loop {
        let (channel, bytes) = session.recv().await?;
        if channel != PEX_CHANNEL {
            continue;
        }
        match codec.decode(bytes) {
            Ok(PexInner::Addrs(addrs)) => return Ok(addrs),
            Ok(PexInner::Request(_)) => {
                let empty = PexInner::Addrs(PexAddrs { addrs: Vec::new() });
                session.send(PEX_CHANNEL, codec.encode(&empty)).await?;
            }
            Err(error) => tracing::debug!(%error, "undecodable PEX message ignored"),
        }
    }
}

/// The well-formed addresses of a PEX answer (at most [`MAX_ADDRESSES_RECEIVED`] are
/// looked at); bad entries are traced and skipped.
fn checked_addresses(addrs: PexAddrs, from: &NodeAddress) -> Vec<NodeAddress> {
    addrs
        .addrs
        .into_iter()
        .take(MAX_ADDRESSES_RECEIVED)
        .filter_map(|entry| match NetAddress::try_from(entry) {
            Ok(address) if address.port != 0 => NodeAddress::parse(&address.to_string()).ok(),
            Ok(_) => None,
            Err(error) => {
                tracing::debug!(peer = %from.node_id, %error, "bad PEX address skipped");
                None
            }
        })
        .collect()
}

/// Runs `work`, or gives up after `limit` (`None`).
async fn within<T>(limit: Duration, work: impl std::future::Future<Output = T>) -> Option<T> {
    future::or(async { Some(work.await) }, async {
        Timer::after(limit).await;
        None
    })
    .await
}

/// The typed reason of a failed visit.
fn unreached(error: &SessionError) -> Unreached {
    let detail = error.to_string();
    match error {
        SessionError::Connection(reason) => Unreached::Refused {
            kind: format!("{:?}", reason.kind()),
            detail,
        },
        SessionError::Undialable { .. } => Unreached::Unreachable {
            kind: "Undialable",
            detail,
        },
        SessionError::Resolve { .. } => Unreached::Unreachable {
            kind: "Resolve",
            detail,
        },
        SessionError::Connect { .. } => Unreached::Unreachable {
            kind: "Connect",
            detail,
        },
        SessionError::ConnectTimeout { .. } => Unreached::Unreachable {
            kind: "ConnectTimeout",
            detail,
        },
        SessionError::Io(_) | SessionError::Closed | SessionError::Send(_) => {
            Unreached::Unreachable { kind: "Io", detail }
        }
    }
}
