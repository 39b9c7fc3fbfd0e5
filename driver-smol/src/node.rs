//! Starting a node: [`NodeBuilder`] validates the configuration, loads the peer store,
//! opens channels (before any connection, since channels are advertised in NodeInfo) and
//! starts the executor threads, the router task, the store task and the accept loop;
//! [`NodeHandle`] is the running node.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use async_channel::{Receiver, Sender};
use bytes::Bytes;
use smol::{Executor, Task};
use tmp2p_core::address::NodeAddress;
use tmp2p_core::mconn::ChannelDescriptor;
use tmp2p_core::node::{CountersView, Node};
use tmp2p_core::node_config::NodeConfig;
use tmp2p_core::peer_manager::{ClockAnchor, PeerUpdate};
use tmp2p_core::pex::PexConfig;
use tmp2p_core::router::{CountersSnapshot, OverflowPolicy, PeerSnapshot};
use tmp2p_core::typed::{ChannelCodec, RawCodec};
use tmp2p_core::{NodeId, NodeKey};
use tmp2p_store::PeerStore;

use crate::envelope::{AppCommand, Channel, ChannelSender, ErrorSender};
use crate::error::DriverError;
use crate::inbound::{self, Deliverer};
use crate::router_task::{accept_loop, RouterInput, RouterTask};
use crate::send_windows::SharedWindows;
use crate::shared_listener::SharedListener;
use crate::store_task::{run_store, StoreRequest};

/// Settings of the driver itself (the protocol settings are in [`NodeConfig`]).
#[derive(Debug, Clone)]
pub struct DriverOptions {
    /// Executor threads running the router, connection and application tasks (≥ 1;
    /// connection crypto runs in parallel across them).
    pub threads: usize,
    /// Application commands (sends, errors, ...) queued for the router task; a full queue
    /// makes senders wait.
    pub command_capacity: usize,
    /// Inbound messages buffered per channel for the application. When a channel is full,
    /// a connection holds what arrives for it (up to `NodeConfig::inbound_hold_bytes`)
    /// while it keeps reading its socket and delivering its other channels.
    pub inbound_capacity: usize,
    /// Peer updates buffered per subscriber; beyond it updates are dropped with a warning.
    pub subscriber_capacity: usize,
}

impl Default for DriverOptions {
    fn default() -> Self {
        DriverOptions {
            threads: 2,
            command_capacity: 1024,
            inbound_capacity: 1024,
            subscriber_capacity: 256,
        }
    }
}

impl DriverOptions {
    fn validate(&self) -> Result<(), DriverError> {
        let bad = |what: &str| Err(DriverError::Options(what.to_owned()));
        if self.threads == 0 || self.threads > 256 {
            return bad("threads must be between 1 and 256");
        }
        if self.command_capacity == 0 || self.inbound_capacity == 0 {
            return bad("command_capacity and inbound_capacity must be above zero");
        }
        if self.subscriber_capacity == 0 {
            return bad("subscriber_capacity must be above zero");
        }
        Ok(())
    }
}

/// A stream of peer updates (`Up` with the peer's channels, `Down`).
pub type PeerUpdates = Receiver<PeerUpdate>;

/// A node being set up: open its channels, then [`NodeBuilder::start`] it.
pub struct NodeBuilder {
    config: NodeConfig,
    key: NodeKey,
    options: DriverOptions,
    store: Box<dyn PeerStore + Send>,
    node: Node,
    /// `None` on a [`SharedListener`], which hands the node its connections.
    listener: Option<std::net::TcpListener>,
    local_addr: SocketAddr,
    commands_tx: Sender<AppCommand>,
    commands: Receiver<AppCommand>,
    deliverers: BTreeMap<u8, Deliverer>,
    subscribers: Vec<Sender<PeerUpdate>>,
    windows: Arc<SharedWindows>,
}

impl NodeBuilder {
    /// A node with the default [`DriverOptions`]; see [`NodeBuilder::with_options`].
    ///
    /// # Errors
    /// As [`NodeBuilder::with_options`].
    pub fn new(
        config: NodeConfig,
        key: NodeKey,
        store: Box<dyn PeerStore + Send>,
    ) -> Result<Self, DriverError> {
        Self::with_options(config, key, store, DriverOptions::default())
    }

    /// Validates `config` for `key`, binds the listener (port 0 picks a free port, which
    /// is then advertised unless `external_address` is set), and builds the Router from
    /// the records in `store`.
    ///
    /// # Errors
    /// [`DriverError::Config`], [`DriverError::Options`], [`DriverError::Bind`],
    /// [`DriverError::Store`] (the store cannot be read), [`DriverError::Router`].
    pub fn with_options(
        config: NodeConfig,
        key: NodeKey,
        store: Box<dyn PeerStore + Send>,
        options: DriverOptions,
    ) -> Result<Self, DriverError> {
        config.validate_for(&key)?;
        let listener = bind_listener(config.listen, config.listen_backlog)?;
        let local_addr = listener.local_addr().map_err(|source| DriverError::Bind {
            addr: config.listen,
            source,
        })?;
        Self::build(config, key, store, options, Some(listener), local_addr)
    }

    /// A node whose inbound connections come from `shared` (see [`SharedListener`]): it
    /// advertises the shared address and binds nothing itself. Otherwise as
    /// [`NodeBuilder::with_options`].
    ///
    /// # Errors
    /// As [`NodeBuilder::with_options`].
    pub fn on_shared_listener(
        mut config: NodeConfig,
        key: NodeKey,
        store: Box<dyn PeerStore + Send>,
        options: DriverOptions,
        shared: &SharedListener,
    ) -> Result<Self, DriverError> {
        config.listen = shared.local_addr();
        config.validate_for(&key)?;
        Self::build(config, key, store, options, None, shared.local_addr())
    }

    fn build(
        mut config: NodeConfig,
        key: NodeKey,
        store: Box<dyn PeerStore + Send>,
        options: DriverOptions,
        listener: Option<std::net::TcpListener>,
        local_addr: SocketAddr,
    ) -> Result<Self, DriverError> {
        options.validate()?;
        config.listen = local_addr;
        let records = store.load()?;
        let now = Instant::now();
        let clock = ClockAnchor {
            instant: now,
            since_unix_epoch: SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .unwrap_or_default(),
        };
        let node = Node::new(
            &config,
            key.node_id(),
            clock,
            now,
            records,
            rand_core::OsRng,
        )
        .map_err(DriverError::from_node)?;
        let (commands_tx, commands) = async_channel::bounded(options.command_capacity);
        let windows = Arc::new(SharedWindows::new(node.window_limits()));
        Ok(NodeBuilder {
            config,
            key,
            options,
            store,
            node,
            listener,
            local_addr,
            commands_tx,
            commands,
            deliverers: BTreeMap::new(),
            subscribers: Vec::new(),
            windows,
        })
    }

    /// The address the listener is bound to.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Opens a typed channel with [`OverflowPolicy::Backpressure`]: `codec` turns its
    /// bytes into `C::Message` and back. An inbound message that does not decode is a fatal
    /// `PeerError` against its sender.
    ///
    /// # Errors
    /// [`DriverError::Router`] for a duplicate id or an invalid descriptor.
    pub fn open_channel<C: ChannelCodec>(
        &mut self,
        descriptor: ChannelDescriptor,
        codec: C,
    ) -> Result<Channel<C::Message>, DriverError> {
        self.open_channel_with_policy(descriptor, codec, OverflowPolicy::Backpressure)
    }

    /// Opens a typed channel whose full peer queues are handled by `policy` (see
    /// [`ChannelSender::send`]).
    ///
    /// # Errors
    /// As [`NodeBuilder::open_channel`].
    pub fn open_channel_with_policy<C: ChannelCodec>(
        &mut self,
        descriptor: ChannelDescriptor,
        codec: C,
        policy: OverflowPolicy,
    ) -> Result<Channel<C::Message>, DriverError> {
        let id = descriptor.id;
        self.node
            .open_channel(descriptor, policy)
            .map_err(DriverError::from_node)?;
        let codec = Arc::new(codec);
        let (inbound_tx, inbound) = async_channel::bounded(self.options.inbound_capacity);
        let deliverer = inbound::deliverer(Arc::clone(&codec), inbound_tx);
        self.deliverers.insert(id, deliverer);
        let encode = Arc::new(move |message: &C::Message| codec.encode(message));
        Ok(Channel {
            id,
            inbound,
            outbound: ChannelSender::new(
                id,
                policy,
                encode,
                self.commands_tx.clone(),
                Arc::clone(&self.windows),
            ),
            errors: ErrorSender::new(self.commands_tx.clone()),
        })
    }

    /// Opens a channel of raw bytes (no decoding).
    ///
    /// # Errors
    /// As [`NodeBuilder::open_channel`].
    pub fn open_raw_channel(
        &mut self,
        descriptor: ChannelDescriptor,
    ) -> Result<Channel<Bytes>, DriverError> {
        self.open_channel(descriptor, RawCodec)
    }

    /// Enables peer exchange: opens the PEX channel 0x00 as CometBFT declares it (priority
    /// 1, 10 queued messages, 64000-byte messages) and runs the PEX reactor (with
    /// `config`, seed mode included) inside the router task. Its messages never reach the
    /// application.
    ///
    /// # Errors
    /// [`DriverError::Pex`] for an invalid `config`; [`DriverError::Router`] when channel
    /// 0x00 is already open.
    pub fn enable_pex(&mut self, config: PexConfig) -> Result<(), DriverError> {
        self.node.enable_pex(config).map_err(DriverError::from_node)
    }

    /// Peer updates from the very start (no update is missed).
    pub fn subscribe(&mut self) -> PeerUpdates {
        let (tx, rx) = async_channel::bounded(self.options.subscriber_capacity);
        self.subscribers.push(tx);
        rx
    }

    /// Starts the node on an executor of its own with [`DriverOptions::threads`] threads:
    /// store task, router task (which dials the configured persistent and bootstrap peers
    /// and the stored ones) and the accept loop.
    ///
    /// # Errors
    /// [`DriverError::Thread`], [`DriverError::Bind`] (the listener cannot be made
    /// non-blocking), [`DriverError::Router`] (a configured peer is refused).
    pub async fn start(self) -> Result<NodeHandle, DriverError> {
        let executor = Arc::new(Executor::new());
        let (shutdown, shutdown_rx) = async_channel::bounded::<()>(1);
        let mut threads = Vec::new();
        for i in 0..self.options.threads {
            let executor = Arc::clone(&executor);
            let shutdown_rx = shutdown_rx.clone();
            let thread = std::thread::Builder::new()
                .name(format!("tmp2p-smol-{i}"))
                .spawn(move || {
                    smol::block_on(executor.run(async {
                        let _ = shutdown_rx.recv().await;
                    }))
                })
                .map_err(DriverError::Thread)?;
            threads.push(thread);
        }
        let mut handle = self.start_on(executor).await?;
        handle.threads = threads;
        handle.shutdown = Some(shutdown);
        Ok(handle)
    }

    /// Starts the node's tasks on `executor`, which the caller runs (on as many threads as
    /// it likes, beside its own tasks): for applications that already have a smol executor,
    /// or several nodes in one process sharing the cores. [`DriverOptions::threads`] is not
    /// used. The node's tasks end with [`NodeHandle::stop`]; the executor goes on.
    ///
    /// # Errors
    /// As [`NodeBuilder::start`], without [`DriverError::Thread`].
    pub async fn start_on(
        self,
        executor: Arc<Executor<'static>>,
    ) -> Result<NodeHandle, DriverError> {
        let NodeBuilder {
            config,
            key,
            options,
            store,
            mut node,
            listener,
            local_addr,
            commands_tx,
            commands,
            deliverers,
            subscribers,
            windows,
        } = self;
        let now = Instant::now();
        node.start(now).map_err(DriverError::from_node)?;
        let listener = listener
            .map(async_net::TcpListener::try_from)
            .transpose()
            .map_err(|source| DriverError::Bind {
                addr: local_addr,
                source,
            })?;

        let (store_tx, store_rx) = async_channel::unbounded::<StoreRequest>();
        executor.spawn(run_store(store, store_rx)).detach();
        let (inputs_tx, inputs) = async_channel::bounded(options.command_capacity);
        let accept =
            listener.map(|listener| executor.spawn(accept_loop(listener, inputs_tx.clone())));
        let node_id = key.node_id();
        // Only a node on a shared listener (no listener of its own) keeps a copy of the
        // key, to answer in its name.
        let answering = accept.is_none().then(|| Answering {
            key: key.clone(),
            handshake: config.router.connection.clone(),
            network: config.network.clone(),
            inputs: inputs_tx.clone(),
        });
        let view = node.counters_view();
        let task = RouterTask {
            node,
            key,
            executor: Arc::downgrade(&executor),
            inputs,
            inputs_tx,
            commands,
            app_channels: Arc::new(deliverers),
            subscribers,
            store: store_tx,
            listener: accept,
            dial_timeout: config.router.dial_timeout,
            windows,
            live: Arc::default(),
        };
        let span = tracing::info_span!("node", id = %node_id, network = %config.network);
        let router_task = executor.spawn(tracing::Instrument::instrument(task.run(), span));
        tracing::info!(%node_id, %local_addr, "node started");
        Ok(NodeHandle {
            commands: commands_tx,
            node_id,
            local_addr,
            subscriber_capacity: options.subscriber_capacity,
            executor,
            router_task: Some(router_task),
            threads: Vec::new(),
            shutdown: None,
            view,
            answering,
        })
    }
}

/// Binds `addr` with a listen backlog of `backlog`.
pub(crate) fn bind_listener(
    addr: SocketAddr,
    backlog: u32,
) -> Result<std::net::TcpListener, DriverError> {
    let bind = |source| DriverError::Bind { addr, source };
    let listener = std::net::TcpListener::bind(addr).map_err(bind)?;
    // std listens with a backlog of 128; listen(2) again only changes it.
    #[cfg(unix)]
    if let Err(error) = rustix::net::listen(&listener, i32::try_from(backlog).unwrap_or(i32::MAX)) {
        tracing::warn!(%error, "cannot set the listen backlog: std's 128 stays");
    }
    Ok(listener)
}

/// What a [`SharedListener`] needs of a node to answer a dialer in its name.
#[derive(Clone)]
pub(crate) struct Answering {
    pub(crate) key: NodeKey,
    /// The handshake settings (timeout, node-info size, AEAD).
    pub(crate) handshake: tmp2p_core::connection::PeerConfig,
    pub(crate) network: String,
    pub(crate) inputs: Sender<RouterInput>,
}

/// A running node. Dropping it without [`NodeHandle::stop`] flushes nothing: on the node's
/// own executor ([`NodeBuilder::start`]) every task is aborted at once; under
/// [`NodeBuilder::start_on`] the router task is dropped, and each connection task, which
/// the application's executor runs, ends when it next hears from the gone router.
pub struct NodeHandle {
    commands: Sender<AppCommand>,
    node_id: NodeId,
    local_addr: SocketAddr,
    subscriber_capacity: usize,
    executor: Arc<Executor<'static>>,
    router_task: Option<Task<()>>,
    threads: Vec<JoinHandle<()>>,
    shutdown: Option<Sender<()>>,
    /// The node machine's counters, for any thread.
    view: CountersView,
    /// Set for a node built on a [`SharedListener`].
    pub(crate) answering: Option<Answering>,
}

impl NodeHandle {
    /// Our node id.
    pub fn node_id(&self) -> NodeId {
        self.node_id
    }

    /// The address the listener is bound to.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The Router's delivery counters now: messages handed to connections and every drop
    /// by reason (read without asking the router task).
    pub fn counters(&self) -> CountersSnapshot {
        self.view.counters()
    }

    /// Each routed peer's counters now, per channel (read without asking the router task).
    pub fn peer_counters(&self) -> Vec<PeerSnapshot> {
        self.counters_view().peer_counters()
    }

    /// A cloneable reader of the same counters, for an exporter on another thread.
    pub fn counters_view(&self) -> CountersView {
        self.view.clone()
    }

    /// Adds a peer address (dialed when the PeerManager decides). Returns whether the
    /// address was new.
    ///
    /// # Errors
    /// [`DriverError::Router`] when the PeerManager refuses it, [`DriverError::Stopped`].
    pub async fn add_peer(&self, address: NodeAddress) -> Result<bool, DriverError> {
        let (tx, rx) = async_channel::bounded(1);
        self.request(AppCommand::AddPeer(address, tx)).await?;
        Ok(rx.recv().await.map_err(|_| DriverError::Stopped)??)
    }

    /// A stream of peer updates from now on.
    ///
    /// # Errors
    /// [`DriverError::Stopped`].
    pub async fn subscribe(&self) -> Result<PeerUpdates, DriverError> {
        let (tx, rx) = async_channel::bounded(self.subscriber_capacity);
        self.request(AppCommand::Subscribe(tx)).await?;
        Ok(rx)
    }

    /// The peers connected right now.
    ///
    /// # Errors
    /// [`DriverError::Stopped`].
    pub async fn connected_peers(&self) -> Result<Vec<NodeId>, DriverError> {
        let (tx, rx) = async_channel::bounded(1);
        self.request(AppCommand::ConnectedPeers(tx)).await?;
        rx.recv().await.map_err(|_| DriverError::Stopped)
    }

    /// Runs `future` on the node's executor (e.g. a reactor such as
    /// [`crate::echo::run_echo`]). On an executor of the node's own (see
    /// [`NodeBuilder::start`]) it is dropped when the node stops; on one passed to
    /// [`NodeBuilder::start_on`] it lives as long as that executor runs it.
    pub fn spawn<T: Send + 'static>(
        &self,
        future: impl std::future::Future<Output = T> + Send + 'static,
    ) -> Task<T> {
        self.executor.spawn(future)
    }

    /// Stops gracefully: no new connections; every message already sent through a
    /// channel is handed to its connection (within `NodeConfig::stop_timeout`), every
    /// connection flushes its queue, closes and waits for its peer's EOF (within the close
    /// linger each), the peer store is synced; then the node's own executor threads (if
    /// any) end.
    pub async fn stop(mut self) {
        let (tx, rx) = async_channel::bounded(1);
        if self.commands.send(AppCommand::Stop(tx)).await.is_ok() {
            let _ = rx.recv().await;
        }
        if let Some(task) = self.router_task.take() {
            task.await;
        }
        self.shutdown = None;
        let threads = std::mem::take(&mut self.threads);
        smol::unblock(move || {
            for thread in threads {
                let _ = thread.join();
            }
        })
        .await;
    }

    async fn request(&self, command: AppCommand) -> Result<(), DriverError> {
        self.commands
            .send(command)
            .await
            .map_err(|_| DriverError::Stopped)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tmp2p_core::node_config::NodeConfigError;
    use tmp2p_core::router::RouterError;
    use tmp2p_store::MemoryPeerStore;

    fn config() -> NodeConfig {
        NodeConfig::new("unit", "127.0.0.1:0".parse().unwrap())
    }

    fn store() -> Box<dyn PeerStore + Send> {
        Box::new(MemoryPeerStore::new())
    }

    fn descriptor(id: u8) -> ChannelDescriptor {
        ChannelDescriptor {
            id,
            priority: 1,
            send_queue_capacity: 4,
            recv_message_capacity: 1024,
        }
    }

    #[test]
    fn invalid_settings_are_typed_errors_before_anything_starts() {
        let key = NodeKey::from_seed([1; 32]);
        let mut bad = config();
        bad.network.clear();
        assert!(matches!(
            NodeBuilder::new(bad, key.clone(), store()),
            Err(DriverError::Config(NodeConfigError::EmptyNetwork))
        ));
        let options = DriverOptions {
            threads: 0,
            ..DriverOptions::default()
        };
        assert!(matches!(
            NodeBuilder::with_options(config(), key.clone(), store(), options),
            Err(DriverError::Options(_))
        ));
        let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let busy = NodeConfig::new("unit", taken.local_addr().unwrap());
        assert!(matches!(
            NodeBuilder::new(busy, key, store()),
            Err(DriverError::Bind { .. })
        ));
    }

    #[test]
    fn channels_are_checked_when_opened_and_port_zero_is_advertised_as_bound() {
        let key = NodeKey::from_seed([2; 32]);
        let mut builder = NodeBuilder::new(config(), key, store()).unwrap();
        assert_ne!(builder.local_addr().port(), 0);
        let listen = format!("tcp://{}", builder.local_addr());
        assert_eq!(builder.node.router().node_info().listen_addr, listen);
        builder.open_raw_channel(descriptor(0x20)).unwrap();
        assert!(matches!(
            builder.open_raw_channel(descriptor(0x20)),
            Err(DriverError::Router(RouterError::DuplicateChannel(0x20)))
        ));
        let zero_priority = ChannelDescriptor {
            priority: 0,
            ..descriptor(0x21)
        };
        assert!(matches!(
            builder.open_raw_channel(zero_priority),
            Err(DriverError::Router(RouterError::InvalidChannel(_)))
        ));
        assert_eq!(builder.node.router().node_info().channels, vec![0x20]);
    }
}
