//! One listen address for several nodes of one key, each on its own network (a seed serving
//! many chains on port 26656). Each accepted connection is admitted by core's
//! `tmp2p_core::shared_address::SharedAddress` (bounded handshakes in flight, in total and
//! per IP), then runs core's answering `PeerConnection` in a task of its own until the
//! dialer's NodeInfo names its network; the connection then goes to that network's node
//! (`SharedAddress::route`), whose link answers with the node's own NodeInfo. CometBFT
//! writes its NodeInfo without waiting for ours, so it accepts this order. The nodes' own
//! admission comes after the handshake here: see `shared_address` for what bounds it.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_channel::{Receiver, Sender};
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

/// A shared listener at work; dropping it stops accepting (connections already handed to
/// a node are the node's).
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

/// A connection whose handshake ended: its claim on the limits, and how.
struct Finished {
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
    /// not share one key, two serve one network, there is none, or a limit is zero;
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
            let (key, _) =
                first.get_or_insert_with(|| (answering.key.clone(), answering.handshake.clone()));
            if key.node_id() != answering.key.node_id() {
                return Err(bad(
                    "the nodes of a shared listener must share one key".into()
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

/// Accepts, admits and starts each connection's handshake; takes back the claims of
/// those that ended.
async fn accept_loop(
    listener: TcpListener,
    mut shared: SharedAddress,
    answerer: Arc<Answerer>,
    executor: std::sync::Weak<Executor<'static>>,
) {
    let (finished_tx, finished) = async_channel::unbounded::<Finished>();
    loop {
        let wake = future::or(
            async { Wake::Accepted(listener.accept().await) },
            next_finished(&finished),
        )
        .await;
        let (stream, remote) = match wake {
            Wake::Finished(done) => {
                shared.finished(done.ticket, done.outcome, done.network.as_deref());
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
                tracing::info!(%remote, %error, "inbound connection refused");
                continue;
            }
        };
        let Some(executor) = executor.upgrade() else {
            return;
        };
        let (answerer, finished_tx) = (Arc::clone(&answerer), finished_tx.clone());
        let routes = shared.routes();
        executor
            .spawn(async move {
                let (outcome, network) = answer(stream, remote, &answerer, &routes).await;
                let done = Finished {
                    ticket,
                    outcome,
                    network,
                };
                let _ = finished_tx.send(done).await;
            })
            .detach();
    }
}

async fn next_finished(finished: &Receiver<Finished>) -> Wake {
    match finished.recv().await {
        Ok(done) => Wake::Finished(done),
        // The loop holds a sender: never closed while it runs.
        Err(_) => future::pending().await,
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
            // A node that stopped meanwhile drops the connection with the input.
            let _ = node.send(input).await;
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
