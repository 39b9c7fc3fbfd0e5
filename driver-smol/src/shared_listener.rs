//! One listen address for several nodes of one key, each on its own network (a seed serving
//! many chains on port 26656). The dialer's network is only known from its NodeInfo, after
//! the SecretConnection handshake, so each accepted connection first runs core's
//! answering `PeerConnection` here: handshake, then the dialer's NodeInfo read and checked.
//! The node of that network (the first node when none serves it, which then refuses the
//! dialer as incompatible, with the typed reason in its log and counters) admits the
//! connection, and its link answers with that node's own NodeInfo. CometBFT writes its
//! NodeInfo without waiting for ours, so it accepts this order.
//!
//! Admission comes after the handshake here, unlike a node's own listener: at most
//! [`SharedListener::MAX_ANSWERING`] connections are in their handshake at once (the
//! accept loop waits for one to finish), and each has the node's handshake timeout.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_channel::Sender;
use async_io::Timer;
use async_net::{TcpListener, TcpStream};
use bytes::BytesMut;
use futures_lite::{future, AsyncReadExt, AsyncWriteExt};
use smol::lock::Semaphore;
use smol::Task;
use tmp2p_core::connection::{PeerConfig, PeerConnection, PeerEvent};
use tmp2p_core::NodeKey;

use crate::error::DriverError;
use crate::node::{bind_listener, Answering, NodeHandle};
use crate::router_task::RouterInput;

/// A bound listener to share between nodes: build each with
/// [`NodeBuilder::on_shared_listener`](crate::NodeBuilder::on_shared_listener), start them,
/// then [`SharedListener::serve`] them.
pub struct SharedListener {
    listener: std::net::TcpListener,
    local_addr: SocketAddr,
}

/// The node a dialer of this network goes to.
struct Target {
    network: String,
    inputs: Sender<RouterInput>,
}

impl SharedListener {
    /// Connections in their handshake at once, before a node admits them.
    pub const MAX_ANSWERING: usize = 256;

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

    /// Accepts connections for `nodes` (started, built on this listener) on the first
    /// node's executor until the returned task is dropped.
    ///
    /// # Errors
    /// [`DriverError::Options`] when `nodes` is empty, has two nodes of one network or
    /// nodes of different keys; [`DriverError::Bind`] when the listener cannot be made
    /// non-blocking.
    pub fn serve(self, nodes: &[&NodeHandle]) -> Result<Task<()>, DriverError> {
        let bad = |what: &str| Err(DriverError::Options(what.to_owned()));
        let Some(first) = nodes.first() else {
            return bad("a shared listener needs at least one node");
        };
        let mut targets = Vec::new();
        for node in nodes {
            let answering: &Answering = &node.answering;
            if node.node_id() != first.node_id() {
                return bad("the nodes of a shared listener must share one node key");
            }
            if targets
                .iter()
                .any(|t: &Target| t.network == answering.network)
            {
                return bad("two nodes of a shared listener serve one network");
            }
            targets.push(Target {
                network: answering.network.clone(),
                inputs: answering.inputs.clone(),
            });
        }
        let addr = self.local_addr;
        let listener = TcpListener::try_from(self.listener)
            .map_err(|source| DriverError::Bind { addr, source })?;
        let answering = first.answering.clone();
        let executor = first.executor();
        let spawner = Arc::clone(&executor);
        Ok(executor.spawn(async move {
            let targets = Arc::new(targets);
            let slots = Arc::new(Semaphore::new(Self::MAX_ANSWERING));
            loop {
                let (stream, remote) = match listener.accept().await {
                    Ok(accepted) => accepted,
                    Err(error) => {
                        tracing::warn!(%error, "accept failed");
                        Timer::after(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                let slot = slots.acquire_arc().await;
                let (key, handshake) = (answering.key.clone(), answering.handshake.clone());
                let targets = Arc::clone(&targets);
                spawner
                    .spawn(async move {
                        let _slot = slot;
                        answer(stream, remote, &key, handshake, &targets).await;
                    })
                    .detach();
            }
        }))
    }
}

/// What woke a connection in its handshake.
enum Wake {
    Read(std::io::Result<usize>),
    Deadline,
}

/// Runs the handshake of one connection until the dialer's node info is read, then hands
/// the connection to the node of its network.
async fn answer(
    mut stream: TcpStream,
    remote: SocketAddr,
    key: &NodeKey,
    handshake: PeerConfig,
    targets: &[Target],
) {
    let _ = stream.set_nodelay(true);
    let mut connection =
        PeerConnection::answering(Instant::now(), key, handshake, &mut rand_core::OsRng);
    let mut out = BytesMut::new();
    let mut buf = vec![0u8; 4096];
    loop {
        while connection.poll_transmit(Instant::now(), &mut out) {}
        if !out.is_empty() {
            if stream.write_all(&out).await.is_err() {
                return;
            }
            out.clear();
        }
        if let Some(info) = connection.peer_info() {
            let target = targets
                .iter()
                .find(|t| t.network == info.network)
                .or(targets.first());
            if let Some(target) = target {
                let input = RouterInput::Answering(stream, remote, Box::new(connection));
                let _ = target.inputs.send(input).await;
            }
            return;
        }
        if let Some(PeerEvent::Closed { reason }) = connection.poll_event() {
            if let Some(error) = reason {
                tracing::info!(%remote, %error, "handshake failed");
            }
            return;
        }
        let deadline = connection.poll_timeout();
        let wake = future::or(async { Wake::Read(stream.read(&mut buf).await) }, async {
            match deadline {
                Some(at) => Timer::at(at).await,
                None => future::pending().await,
            };
            Wake::Deadline
        })
        .await;
        let now = Instant::now();
        match wake {
            Wake::Read(Ok(0)) | Wake::Read(Err(_)) => connection.handle_eof(),
            Wake::Read(Ok(n)) => {
                let _ = connection.handle_input(now, buf.get(..n).unwrap_or_default());
            }
            Wake::Deadline => connection.handle_timeout(now),
        }
    }
}
