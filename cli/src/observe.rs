//! `tmp2p observe`: joins one or more CometBFT nodes as a non-validator peer and prints
//! their consensus and mempool gossip as it arrives, then summaries.
//!
//! It is a smol-driver node with no listener anyone can reach (127.0.0.1, port 0), no
//! PEX, and the observed nodes as persistent peers (redialled when they drop). It opens
//! CometBFT v0.38's consensus channels (0x20–0x23) and mempool channel (0x30) as typed
//! channels, plus evidence (0x38) when asked. Every consensus message goes through core's
//! [`RoundFollower`], whose only output is a `NewRoundStep` echoing the sender's height,
//! round and step back to that sender: that is what makes a CometBFT node gossip
//! proposals, block parts, votes and transactions to a peer, and it is the only message
//! observe ever sends.

use std::io::Write as _;
use std::path::PathBuf;
use std::time::{Duration, Instant, SystemTime};

use async_io::Timer;
use futures_lite::future;
use rand_core::OsRng;
use tmp2p_core::address::NodeAddress;
use tmp2p_core::cometbft_channels::{self as comet, CometVersion};
use tmp2p_core::node_config::NodeConfig;
use tmp2p_core::peer_manager::{PeerStatus, PeerUpdate};
use tmp2p_core::round_follower::RoundFollower;
use tmp2p_core::typed::cometbft::{ConsensusCodec, ConsensusInner, EvidenceCodec, MempoolCodec};
use tmp2p_core::NodeKey;
use tmp2p_driver_smol::{
    Channel, ChannelSender, CountersView, DriverError, Envelope, NodeBuilder, NodeHandle,
    TrySendError,
};
use tmp2p_store::MemoryPeerStore;

use crate::observe_line::{short_id, Observed, Sighting};
use crate::observe_summary::Summary;
use crate::ping::{COMETBFT_CHANNELS, DEFAULT_NETWORK};
use crate::CliError;

/// Messages waiting between the channel readers and the printer. Small: past it the
/// readers wait, so received messages stay in their connections, which hold them within
/// `NodeConfig::inbound_hold_bytes` (a byte bound) and then stop reading.
const SIGHTINGS_QUEUED: usize = 64;

/// A reactor whose messages `observe` prints.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum Reactor {
    /// Consensus: round steps, proposals, block parts, votes (0x20–0x23).
    Consensus,
    /// Mempool transactions (0x30).
    Mempool,
    /// Evidence (0x38; opened only when asked for).
    Evidence,
}

/// Arguments of `tmp2p observe`.
#[derive(clap::Args)]
pub(crate) struct ObserveArgs {
    /// The nodes to observe, comma-separated: ID@HOST:PORT[,ID@HOST:PORT...].
    #[arg(value_name = "ID@HOST:PORT", required = true, value_delimiter = ',',
          value_parser = crate::ping::parse_address)]
    peers: Vec<NodeAddress>,
    /// Network (chain id) to join; `auto` learns it from the first node's NodeInfo.
    #[arg(long, default_value = "auto")]
    network: String,
    /// Reactors whose messages to print (consensus and mempool are always joined: the
    /// nodes send transactions only to peers whose consensus height they know).
    #[arg(
        long,
        value_enum,
        value_delimiter = ',',
        default_value = "consensus,mempool"
    )]
    channels: Vec<Reactor>,
    /// One JSON object per line (messages, peer updates, summaries).
    #[arg(long)]
    json: bool,
    /// Print only the summaries, not each message.
    #[arg(long)]
    summary_only: bool,
    /// Print a summary every SECONDS (0: only at exit).
    #[arg(long, value_name = "SECONDS", default_value_t = 60)]
    summary_every: u64,
    /// Stop after SECONDS (default: run until Ctrl-C).
    #[arg(long, value_name = "SECONDS")]
    duration: Option<u64>,
    /// Node key file (default: a new identity for this run).
    #[arg(long, value_name = "FILE")]
    key: Option<PathBuf>,
    /// Moniker to advertise.
    #[arg(long, default_value = "tmp2p-observer")]
    moniker: String,
}

/// What woke the observer's loop.
#[allow(clippy::large_enum_variant)] // as `Observed`: built and taken once per message
enum Wake {
    Seen(Sighting),
    Peer(PeerUpdate),
    Summary,
    Stop,
}

/// Runs `tmp2p observe`.
pub(crate) fn run(args: &ObserveArgs) -> Result<(), CliError> {
    let key = match &args.key {
        Some(path) => crate::load_key(path)?,
        None => NodeKey::generate(&mut OsRng),
    };
    let network = if args.network == "auto" {
        learn_network(args)?
    } else {
        args.network.clone()
    };
    let listen = std::net::SocketAddr::from(([127, 0, 0, 1], 0));
    let mut config = NodeConfig::new(network, listen);
    config.moniker.clone_from(&args.moniker);
    config.persistent_peers.clone_from(&args.peers);
    let bad = |e: DriverError| CliError::BadInput(e.to_string());
    let mut builder =
        NodeBuilder::new(config, key, Box::new(MemoryPeerStore::new())).map_err(bad)?;
    let (seen_tx, seen) = async_channel::bounded(SIGHTINGS_QUEUED);
    let mut readers = Vec::new();
    let mut state_out = None;
    for id in [
        comet::CONSENSUS_STATE,
        comet::CONSENSUS_DATA,
        comet::CONSENSUS_VOTE,
        comet::CONSENSUS_VOTE_SET_BITS,
    ] {
        let channel = builder
            .open_channel(descriptor(id)?, consensus_codec(id)?)
            .map_err(bad)?;
        if id == comet::CONSENSUS_STATE {
            state_out = Some(channel.outbound.clone());
        }
        readers.push(reader(channel, seen_tx.clone(), Observed::Consensus));
    }
    let mempool = builder
        .open_channel(descriptor(comet::MEMPOOL)?, MempoolCodec::new())
        .map_err(bad)?;
    readers.push(reader(mempool, seen_tx.clone(), Observed::Mempool));
    if args.channels.contains(&Reactor::Evidence) {
        let evidence = builder
            .open_channel(descriptor(comet::EVIDENCE)?, EvidenceCodec::new())
            .map_err(bad)?;
        readers.push(reader(evidence, seen_tx.clone(), Observed::Evidence));
    }
    drop(seen_tx);
    let state_out =
        state_out.ok_or_else(|| CliError::Runtime("no consensus state channel".to_owned()))?;
    let updates = builder.subscribe();
    crate::wait_on(async {
        let node = builder
            .start()
            .await
            .map_err(|e| CliError::Runtime(e.to_string()))?;
        for read in readers {
            node.spawn(read).detach();
        }
        tracing::info!(id = %node.node_id(), "observing");
        let stop_rx = crate::stop_signal()?;
        let mut observer = Observer::new(args, state_out, node.counters_view());
        observer.watch(&seen, &updates, &stop_rx).await;
        observer.print_summary();
        stop(node).await;
        Ok(())
    })
}

/// The network of the first node: ours is refused by a node of another network, whose
/// NodeInfo names its own.
fn learn_network(args: &ObserveArgs) -> Result<String, CliError> {
    let Some(first) = args.peers.first() else {
        return Err(CliError::BadInput("no node to observe".to_owned()));
    };
    // A throwaway identity: the node sees the probe as another peer than the observer.
    let key = NodeKey::generate(&mut OsRng);
    let info = crate::our_node_info(
        &key,
        DEFAULT_NETWORK.to_owned(),
        args.moniker.clone(),
        "tcp://0.0.0.0:0".to_owned(),
        COMETBFT_CHANNELS.to_vec(),
    )?;
    let config = crate::session::session_config(&COMETBFT_CHANNELS, Duration::from_secs(10));
    async_io::block_on(async {
        let network = crate::session::probe_network(first, &key, &info, &config)
            .await
            .map_err(|e| {
                CliError::Runtime(format!(
                    "cannot learn the network of {first} ({e}); name it with --network"
                ))
            })?;
        // A node may refuse a second connection from our IP while it still holds the probe's.
        Timer::after(crate::session::REDIAL_DELAY).await;
        Ok(network)
    })
}

fn consensus_codec(id: u8) -> Result<ConsensusCodec, CliError> {
    ConsensusCodec::for_channel(id)
        .ok_or_else(|| CliError::Runtime(format!("0x{id:02x} is not a consensus channel")))
}

fn descriptor(id: u8) -> Result<tmp2p_core::mconn::ChannelDescriptor, CliError> {
    comet::descriptor(CometVersion::V0_38, id)
        .ok_or_else(|| CliError::Runtime(format!("no CometBFT descriptor for channel 0x{id:02x}")))
}

/// A task that moves one channel's messages into the printer's queue.
fn reader<M: Send + 'static>(
    channel: Channel<M>,
    seen: async_channel::Sender<Sighting>,
    wrap: fn(M) -> Observed,
) -> future::Boxed<()> {
    Box::pin(async move {
        while let Ok(envelope) = channel.inbound.recv().await {
            let Some(peer) = envelope.from else { continue };
            let sighting = Sighting {
                at: SystemTime::now(),
                peer,
                channel: envelope.channel,
                message: wrap(envelope.message),
            };
            if seen.send(sighting).await.is_err() {
                break;
            }
        }
    })
}

/// The printing side: follows each peer's round, prints and tallies.
struct Observer<'a> {
    args: &'a ObserveArgs,
    state_out: ChannelSender<ConsensusInner>,
    /// The routed peers, with the NodeInfo each sent.
    peers: CountersView,
    follower: RoundFollower,
    summary: Summary,
    deadline: Option<Instant>,
    next_summary: Option<Instant>,
    /// Set when stdout is closed: nobody reads any more, so stop.
    stdout_closed: bool,
}

impl<'a> Observer<'a> {
    fn new(
        args: &'a ObserveArgs,
        state_out: ChannelSender<ConsensusInner>,
        peers: CountersView,
    ) -> Self {
        let now = Instant::now();
        let every = Duration::from_secs(args.summary_every);
        Observer {
            args,
            state_out,
            peers,
            follower: RoundFollower::new(),
            summary: Summary::new(now),
            deadline: args
                .duration
                .and_then(|s| now.checked_add(Duration::from_secs(s))),
            next_summary: (args.summary_every > 0)
                .then(|| now.checked_add(every))
                .flatten(),
            stdout_closed: false,
        }
    }

    async fn watch(
        &mut self,
        seen: &async_channel::Receiver<Sighting>,
        updates: &async_channel::Receiver<PeerUpdate>,
        stop: &async_channel::Receiver<()>,
    ) {
        while !self.stdout_closed {
            let wake = self.next(seen, updates, stop).await;
            match wake {
                Wake::Seen(sighting) => self.seen(&sighting).await,
                Wake::Peer(update) => self.peer(&update),
                Wake::Summary => {
                    self.print_summary();
                    let every = Duration::from_secs(self.args.summary_every);
                    self.next_summary = Instant::now().checked_add(every);
                }
                Wake::Stop => break,
            }
        }
    }

    async fn next(
        &self,
        seen: &async_channel::Receiver<Sighting>,
        updates: &async_channel::Receiver<PeerUpdate>,
        stop: &async_channel::Receiver<()>,
    ) -> Wake {
        let deadline = self.deadline;
        let next_summary = self.next_summary;
        let timers = async move {
            match (deadline, next_summary) {
                (Some(d), Some(s)) if s < d => {
                    Timer::at(s).await;
                    Wake::Summary
                }
                (Some(d), _) => {
                    Timer::at(d).await;
                    Wake::Stop
                }
                (None, Some(s)) => {
                    Timer::at(s).await;
                    Wake::Summary
                }
                (None, None) => future::pending().await,
            }
        };
        let messages = async { seen.recv().await.map_or(Wake::Stop, Wake::Seen) };
        let peers = async { updates.recv().await.map_or(Wake::Stop, Wake::Peer) };
        let stopped = async {
            let _ = stop.recv().await;
            Wake::Stop
        };
        // `or` polls its first future first: the rare events go first, so a steady stream
        // of messages can never starve Ctrl-C, the deadline, summaries or peer updates.
        future::or(stopped, future::or(timers, future::or(peers, messages))).await
    }

    async fn seen(&mut self, sighting: &Sighting) {
        if let Observed::Consensus(message) = &sighting.message {
            if let Some(reply) = self.follower.handle_message(sighting.peer, message) {
                // The queue holds 100 messages for a peer that reads; a peer that lets it
                // fill gets the next step's reply instead. A peer that went down since
                // needs none.
                match self
                    .state_out
                    .try_send(Envelope::to_peer(sighting.peer, reply))
                    .await
                {
                    Ok(()) => {}
                    Err(TrySendError::Failed(DriverError::NotConnected(_))) => {}
                    Err(error) => {
                        tracing::warn!(peer = %sighting.peer, %error, "round step not sent");
                    }
                }
            }
        }
        self.summary
            .record(Instant::now(), sighting.peer, &sighting.message);
        if self.args.summary_only || !self.prints(&sighting.message) {
            return;
        }
        let line = if self.args.json {
            sighting.json_line()
        } else {
            sighting.plain_line()
        };
        self.print(&line);
    }

    fn prints(&self, message: &Observed) -> bool {
        let reactor = match message {
            Observed::Consensus(_) => Reactor::Consensus,
            Observed::Mempool(_) => Reactor::Mempool,
            Observed::Evidence(_) => Reactor::Evidence,
        };
        self.args.channels.contains(&reactor)
    }

    /// A peer going up (with the NodeInfo it sent, which the routed peers' counters keep)
    /// or down.
    fn peer(&mut self, update: &PeerUpdate) {
        let id = update.node_id;
        let info = match update.status {
            PeerStatus::Up => self
                .peers
                .peer_counters()
                .into_iter()
                .find(|p| p.node == id)
                .map(|p| p.origin.info),
            PeerStatus::Down => {
                self.follower.peer_down(&id);
                None
            }
        };
        let status = if update.status == PeerStatus::Up {
            "up"
        } else {
            "down"
        };
        let line = match (&info, self.args.json) {
            (Some(info), true) => serde_json::json!({
                "peer": id.to_string(), "status": status, "moniker": info.moniker,
                "version": info.version, "network": info.network,
                "listen_addr": info.listen_addr,
                "channels": info.channels.iter().map(|c| format!("0x{c:02x}")).collect::<Vec<_>>(),
            })
            .to_string(),
            (None, true) => {
                serde_json::json!({ "peer": id.to_string(), "status": status }).to_string()
            }
            // Moniker and version are printable ASCII (NodeInfo validation).
            (Some(info), false) => format!(
                "peer {} {status}: moniker={} version={} network={} listen={}",
                short_id(&id),
                info.moniker,
                info.version,
                info.network,
                info.listen_addr
            ),
            (None, false) => format!("peer {} {status}", short_id(&id)),
        };
        self.print(&line);
    }

    fn print_summary(&mut self) {
        let now = Instant::now();
        let text = if self.args.json {
            self.summary.json(now).to_string()
        } else {
            self.summary.plain(now)
        };
        self.print(text.trim_end());
    }

    fn print(&mut self, text: &str) {
        let mut out = std::io::stdout().lock();
        if writeln!(out, "{text}").and_then(|()| out.flush()).is_err() {
            self.stdout_closed = true;
        }
    }
}

/// Stops the node, within a bound: nothing we queued matters once we are leaving.
async fn stop(node: NodeHandle) {
    let limit = Duration::from_secs(5);
    let stopped = future::or(
        async {
            node.stop().await;
            true
        },
        async {
            Timer::after(limit).await;
            false
        },
    )
    .await;
    if !stopped {
        tracing::warn!(?limit, "the node did not stop in time");
    }
}
