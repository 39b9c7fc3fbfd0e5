//! One listen address for several nodes of one key, each on its own network (a seed serving
//! many chains on port 26656). Each accepted connection is admitted by core's
//! `tmp2p_core::shared_address::SharedAddress` (bounded handshakes in flight, in total and
//! per IP), then runs core's answering `PeerConnection` in a task of its own until the
//! dialer's NodeInfo names its network; the connection then goes to that network's node
//! (`SharedAddress::route`), whose link answers with the node's own NodeInfo. CometBFT
//! writes its NodeInfo without waiting for ours, so it accepts this order. The nodes' own
//! admission comes after the handshake here: see `shared_address` for what bounds it.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_channel::Sender;
use async_io::Timer;
use async_net::{TcpListener, TcpStream};
use bytes::BytesMut;
use futures_lite::{future, AsyncReadExt, AsyncWriteExt};
use smol::{Executor, Task};
use tmp2p_core::connection::{PeerConfig, PeerConnection, PeerEvent};
use tmp2p_core::shared_address::{
    Outcome, Routes, SharedAddress, SharedAddressCounters, SharedLimits, Ticket,
};
use tmp2p_core::NodeKey;

use crate::error::DriverError;
use crate::node::{bind_listener, NodeHandle};
use crate::router_task::RouterInput;

/// A bound listener to share between nodes: build each with
/// [`NodeBuilder::on_shared_listener`](crate::NodeBuilder::on_shared_listener), start them,
/// then [`SharedListener::serve`] them.
pub struct SharedListener {
    listener: std::net::TcpListener,
    local_addr: SocketAddr,
}

/// A shared listener at work. Dropping it stops accepting and cancels the handshakes still
/// in flight (their connections close); connections already handed to a node are the
/// node's.
pub struct SharedServing {
    _accepting: Task<()>,
    counters: Arc<SharedAddressCounters>,
}

impl SharedServing {
    /// What the shared address did so far, readable from any thread.
    pub fn counters(&self) -> Arc<SharedAddressCounters> {
        Arc::clone(&self.counters)
    }
}

/// A connection whose handshake ended: its task, its claim on the limits, and how.
struct Finished {
    id: u64,
    ticket: Ticket,
    outcome: Outcome,
    network: Option<String>,
}

/// What the accept loop needs to answer and route dialers.
struct Answerer {
    key: NodeKey,
    handshake: PeerConfig,
    /// Each node's inputs, in the order of the shared address's networks.
    nodes: Vec<Sender<RouterInput>>,
}

impl SharedListener {
    /// Binds `addr` (port 0 picks a free port) with a listen backlog of `backlog`.
    ///
    /// # Errors
    /// [`DriverError::Bind`].
    pub fn bind(addr: SocketAddr, backlog: u32) -> Result<Self, DriverError> {
        let listener = bind_listener(addr, backlog)?;
        let local_addr = listener
            .local_addr()
            .map_err(|source| DriverError::Bind { addr, source })?;
        Ok(SharedListener {
            listener,
            local_addr,
        })
    }

    /// The bound address.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Accepts connections for `nodes` (started, each built on this listener) on
    /// `executor`, within `limits`, until the returned [`SharedServing`] is dropped.
    ///
    /// # Errors
    /// [`DriverError::Options`] when a node was not built on this listener, the nodes do
    /// not share one key or their handshake settings (timeout, node-info limit, AEAD),
    /// two serve one network, there is none, or a limit is zero;
    /// [`DriverError::Bind`] when the listener cannot be made non-blocking.
    pub fn serve(
        self,
        executor: &Arc<Executor<'static>>,
        nodes: &[&NodeHandle],
        limits: SharedLimits,
    ) -> Result<SharedServing, DriverError> {
        let bad = |what: String| DriverError::Options(what);
        let mut networks = Vec::new();
        let mut inputs = Vec::new();
        let mut first: Option<(NodeKey, PeerConfig)> = None;
        for node in nodes {
            let answering = match &node.answering {
                Some(answering) if node.local_addr() == self.local_addr => answering,
                _ => {
                    let node_id = node.node_id();
                    return Err(bad(format!(
                        "node {node_id} was not built on this listener"
                    )));
                }
            };
            let (key, handshake) =
                first.get_or_insert_with(|| (answering.key.clone(), answering.handshake.clone()));
            if key.node_id() != answering.key.node_id() {
                return Err(bad(
                    "the nodes of a shared listener must share one key".into()
                ));
            }
            // The handshake runs before the network (and so the node) is known.
            let theirs = &answering.handshake;
            if (
                theirs.secret,
                theirs.handshake_timeout,
                theirs.max_node_info_size,
            ) != (
                handshake.secret,
                handshake.handshake_timeout,
                handshake.max_node_info_size,
            ) {
                return Err(bad(
                    "the nodes of a shared listener must share their handshake settings".into(),
                ));
            }
            networks.push(answering.network.clone());
            inputs.push(answering.inputs.clone());
        }
        let shared = SharedAddress::new(networks, limits).map_err(|e| bad(e.to_string()))?;
        let Some((key, handshake)) = first else {
            return Err(bad("a shared listener needs at least one node".into()));
        };
        let addr = self.local_addr;
        let listener = TcpListener::try_from(self.listener)
            .map_err(|source| DriverError::Bind { addr, source })?;
        let counters = shared.counters();
        let answerer = Arc::new(Answerer {
            key,
            handshake,
            nodes: inputs,
        });
        let accepting = executor.spawn(accept_loop(
            listener,
            shared,
            answerer,
            Arc::downgrade(executor),
        ));
        Ok(SharedServing {
            _accepting: accepting,
            counters,
        })
    }
}

/// What woke the accept loop.
enum Wake {
    Accepted(std::io::Result<(TcpStream, SocketAddr)>),
    Finished(Finished),
}

/// Accepts taken in a row before the loop yields to the executor's other tasks.
const ACCEPT_BATCH: usize = 64;

/// An admitted connection's claim on the limits: given back exactly once, with its outcome,
/// or as failed when its task is dropped first (cancelled with the accept loop).
struct Claim {
    id: u64,
    ticket: Option<Ticket>,
    finished: Sender<Finished>,
}

impl Claim {
    fn give_back(mut self, outcome: Outcome, network: Option<String>) {
        self.send(outcome, network);
    }

    fn send(&mut self, outcome: Outcome, network: Option<String>) {
        if let Some(ticket) = self.ticket.take() {
            let done = Finished {
                id: self.id,
                ticket,
                outcome,
                network,
            };
            // Unbounded: fails only once the accept loop, which owns the limits, is gone.
            let _ = self.finished.try_send(done);
        }
    }
}

impl Drop for Claim {
    fn drop(&mut self) {
        self.send(Outcome::Failed, None);
    }
}

/// Accepts, admits and starts each connection's handshake; takes back the claims of
/// those that ended. The handshake tasks are owned here: dropping the loop (its
/// `SharedServing`) cancels those still running, and their connections close.
async fn accept_loop(
    listener: TcpListener,
    mut shared: SharedAddress,
    answerer: Arc<Answerer>,
    executor: std::sync::Weak<Executor<'static>>,
) {
    let (finished_tx, finished) = async_channel::unbounded::<Finished>();
    let mut tasks: BTreeMap<u64, Task<()>> = BTreeMap::new();
    let mut next_id = 0u64;
    let mut in_a_row = 0usize;
    loop {
        // Claims first, so a flood of connections never keeps slots from coming back.
        while let Ok(done) = finished.try_recv() {
            tasks.remove(&done.id);
            shared.finished(done.ticket, done.outcome, done.network.as_deref());
        }
        in_a_row += 1;
        if in_a_row >= ACCEPT_BATCH {
            in_a_row = 0;
            future::yield_now().await;
        }
        let wake = future::or(async { Wake::Accepted(listener.accept().await) }, async {
            match finished.recv().await {
                Ok(done) => Wake::Finished(done),
                // The loop holds a sender: never closed while it runs.
                Err(_) => future::pending().await,
            }
        })
        .await;
        let (stream, remote) = match wake {
            Wake::Finished(done) => {
                tasks.remove(&done.id);
                shared.finished(done.ticket, done.outcome, done.network.as_deref());
                in_a_row = 0;
                continue;
            }
            Wake::Accepted(Ok(accepted)) => accepted,
            Wake::Accepted(Err(error)) => {
                tracing::warn!(%error, "accept failed");
                Timer::after(Duration::from_millis(50)).await;
                continue;
            }
        };
        let ticket = match shared.admit(remote.ip()) {
            Ok(ticket) => ticket,
            Err(error) => {
                // Counted (`refused_busy`, in the seed's summary line): a flood must not
                // flood the log too.
                tracing::debug!(%remote, %error, "inbound connection refused");
                continue;
            }
        };
        let Some(executor) = executor.upgrade() else {
            return;
        };
        let claim = Claim {
            id: next_id,
            ticket: Some(ticket),
            finished: finished_tx.clone(),
        };
        let (answerer, routes) = (Arc::clone(&answerer), shared.routes());
        let task = executor.spawn(async move {
            // The whole stay here, the hand-over to the node included, is bounded by the
            // handshake timeout.
            let within = answerer.handshake.handshake_timeout;
            let (outcome, network) =
                future::or(answer(stream, remote, &answerer, &routes), async {
                    Timer::after(within).await;
                    tracing::info!(%remote, ?within, "handshake did not complete in time");
                    (Outcome::Failed, None)
                })
                .await;
            claim.give_back(outcome, network);
        });
        tasks.insert(next_id, task);
        next_id = next_id.wrapping_add(1);
    }
}

/// Runs the handshake of one connection until the dialer's node info is read, then hands
/// the connection to the node of its network. Returns how it ended and the network.
async fn answer(
    mut stream: TcpStream,
    remote: SocketAddr,
    answerer: &Answerer,
    routes: &Routes,
) -> (Outcome, Option<String>) {
    let _ = stream.set_nodelay(true);
    let mut connection = PeerConnection::answering(
        Instant::now(),
        &answerer.key,
        answerer.handshake.clone(),
        &mut rand_core::OsRng,
    );
    let mut out = BytesMut::new();
    let mut buf = vec![0u8; 4096];
    loop {
        while connection.poll_transmit(Instant::now(), &mut out) {}
        if !out.is_empty() {
            if let Err(error) = stream.write_all(&out).await {
                tracing::info!(%remote, %error, "handshake failed");
                return (Outcome::Failed, None);
            }
            out.clear();
        }
        if let Some(info) = connection.peer_info() {
            let network = info.network.clone();
            let Some(node) = answerer.nodes.get(routes.route(&network)) else {
                return (Outcome::Failed, Some(network));
            };
            let input = RouterInput::Answering(stream, remote, Box::new(connection));
            if node.send(input).await.is_err() {
                // The node stopped meanwhile: the connection closes with the input.
                tracing::debug!(%remote, %network, "the network's node is gone");
                return (Outcome::Failed, Some(network));
            }
            return (Outcome::HandedOver, Some(network));
        }
        if let Some(PeerEvent::Closed { reason }) = connection.poll_event() {
            match reason {
                Some(error) => tracing::info!(%remote, %error, "handshake failed"),
                None => tracing::debug!(%remote, "handshake ended"),
            }
            return (Outcome::Failed, None);
        }
        let deadline = connection.poll_timeout();
        let read = future::or(async { Some(stream.read(&mut buf).await) }, async {
            match deadline {
                Some(at) => Timer::at(at).await,
                None => future::pending().await,
            };
            None
        })
        .await;
        let now = Instant::now();
        match read {
            Some(Ok(0) | Err(_)) => connection.handle_eof(),
            Some(Ok(n)) => {
                let _ = connection.handle_input(now, buf.get(..n).unwrap_or_default());
            }
            None => connection.handle_timeout(now),
        }
    }
}
