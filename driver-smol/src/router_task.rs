//! The task that owns the node machine (`tmp2p_core::node::Node`; no lock around it:
//! everything reaches it as a message). It feeds it the connections' reports, accepted
//! sockets, dial and DNS results and the application's commands, and carries out its
//! outputs: dials and lookups as tasks, link commands to connection tasks, window changes
//! to the senders' windows, peer updates to subscribers, store batches to the store task.
//! It tells each connection task when its peer is routed (from then on that task delivers
//! the application's inbound messages itself: see `inbound`), arms the node's timer, and
//! runs the graceful stop: wait until every routed message is handed to its connection,
//! close every connection (each flushes its queue), wait for their `Closed` events and for
//! each connection task to finish its close (the peer's EOF), sync the store; at the node's
//! give-up time (`Node::stop_give_up`) it stops waiting. Every node-level decision is the
//! node machine's.

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use async_channel::{Receiver, Sender, TrySendError};
use async_io::Timer;
use async_net::TcpStream;
use event_listener::Event;
use futures_lite::future;
use smol::{Executor, Task};
use tmp2p_core::address::{NodeAddress, Resolution};
use tmp2p_core::connection::{PeerConnection, PeerEvent};
use tmp2p_core::deadline::later;
use tmp2p_core::node::{LinkCommand, LinkReport, Node, NodeOutput};
use tmp2p_core::peer_manager::PeerUpdate;
use tmp2p_core::router::window::Reservation;
use tmp2p_core::router::{self, ConnectionId, ConnectionParams, PeerError};
use tmp2p_core::NodeKey;
use tracing::Instrument;

use crate::connection_task::ConnTask;
use crate::envelope::AppCommand;
use crate::inbound::AppChannels;
use crate::send_windows::SharedWindows;
use crate::store_task::StoreRequest;

/// Queued inputs and commands handled after a wake-up before the task yields again.
const WAKE_BATCH: usize = 256;
/// How long the stop waits past the node's give-up time for connections to finish.
const CLOSE_GRACE: Duration = Duration::from_secs(3);

/// What reaches the router task from connections, dials, lookups and the accept loop.
pub(crate) enum RouterInput {
    /// Reports of a connection's `Link`, in order.
    Connection(ConnectionId, Vec<LinkReport>),
    /// A TCP connect finished.
    Dialed {
        conn: ConnectionId,
        socket: SocketAddr,
        result: std::io::Result<TcpStream>,
    },
    /// A TCP connection arrived.
    Incoming(TcpStream, SocketAddr),
    /// A connection of a shared listener that read the dialer's node info, for this node's
    /// network (see `shared_listener`).
    Answering(TcpStream, SocketAddr, Box<PeerConnection>),
    /// A DNS lookup finished (no IPs: it did not resolve).
    Resolved(NodeAddress, Vec<IpAddr>),
    /// A connection task found an inbound message that does not decode.
    Undecodable(PeerError),
}

/// A connection task's command queue, and its span (entered while the node machine
/// handles the connection's reports, so those logs carry the connection's fields too).
struct ConnEntry {
    inputs: Sender<LinkCommand>,
    span: tracing::Span,
}

struct Stopping {
    replies: Vec<Sender<()>>,
    /// Past it the task ends even if connections have not reported `Closed`.
    give_up: Instant,
}

/// Everything the router task owns.
pub(crate) struct RouterTask {
    pub(crate) node: Node,
    pub(crate) key: NodeKey,
    pub(crate) executor: Weak<Executor<'static>>,
    pub(crate) inputs: Receiver<RouterInput>,
    pub(crate) inputs_tx: Sender<RouterInput>,
    pub(crate) commands: Receiver<AppCommand>,
    /// The application's channels, handed to every connection task.
    pub(crate) app_channels: AppChannels,
    pub(crate) subscribers: Vec<Sender<PeerUpdate>>,
    pub(crate) store: Sender<StoreRequest>,
    pub(crate) listener: Option<Task<()>>,
    pub(crate) dial_timeout: Duration,
    /// The senders' backpressure windows: peers in and out, room released.
    pub(crate) windows: Arc<SharedWindows>,
    /// The connection tasks still running.
    pub(crate) live: Arc<LiveTasks>,
}

/// Counts running connection tasks, so a stop can wait until each has finished its close.
#[derive(Default)]
pub(crate) struct LiveTasks {
    count: AtomicUsize,
    ended: Event,
}

/// One running task; dropped when it ends (or is cancelled).
pub(crate) struct LiveTask(Arc<LiveTasks>);

impl Drop for LiveTask {
    fn drop(&mut self) {
        self.0.count.fetch_sub(1, Ordering::AcqRel);
        self.0.ended.notify(usize::MAX);
    }
}

impl LiveTasks {
    fn enter(self: &Arc<Self>) -> LiveTask {
        self.count.fetch_add(1, Ordering::AcqRel);
        LiveTask(Arc::clone(self))
    }

    /// Returns once no task runs.
    async fn all_ended(&self) {
        loop {
            if self.count.load(Ordering::Acquire) == 0 {
                return;
            }
            let listener = self.ended.listen();
            if self.count.load(Ordering::Acquire) == 0 {
                return;
            }
            listener.await;
        }
    }
}

enum Wake {
    Input(RouterInput),
    Command(Option<AppCommand>),
    Timer,
}

impl RouterTask {
    /// Runs until a stop completes (or the executor goes away).
    pub(crate) async fn run(mut self) {
        let mut conns: BTreeMap<ConnectionId, ConnEntry> = BTreeMap::new();
        let mut stopping: Option<Stopping> = None;
        let mut commands_open = true;
        loop {
            self.drain_actions(&mut conns, stopping.is_some());
            if let Some(stop) = &stopping {
                // The node machine closes each connection once what it accepted is handed
                // over (see `Node::stop`); the task ends when every one reported `Closed`.
                let done = self.node.is_stopped() && conns.is_empty();
                if done || Instant::now() >= stop.give_up {
                    break;
                }
            }
            let timeout = match (self.node.poll_timeout(), &stopping) {
                (Some(at), Some(stop)) => Some(at.min(stop.give_up)),
                (at, stop) => at.or(stop.as_ref().map(|s| s.give_up)),
            };
            let wake = future::or(
                future::or(
                    async {
                        match self.inputs.recv().await {
                            Ok(input) => Wake::Input(input),
                            Err(_) => future::pending().await,
                        }
                    },
                    async {
                        if !commands_open {
                            future::pending::<()>().await;
                        }
                        Wake::Command(self.commands.recv().await.ok())
                    },
                ),
                async {
                    match timeout {
                        Some(at) => Timer::at(at).await,
                        None => future::pending().await,
                    };
                    Wake::Timer
                },
            )
            .await;
            let now = Instant::now();
            self.on_wake(now, wake, &mut conns, &mut stopping, &mut commands_open);
            // Take what else is already queued: one wake-up, many messages.
            for _ in 0..WAKE_BATCH {
                let wake = match self.inputs.try_recv() {
                    Ok(input) => Wake::Input(input),
                    Err(_) if !commands_open => break,
                    Err(_) => match self.commands.try_recv() {
                        Ok(command) => Wake::Command(Some(command)),
                        Err(async_channel::TryRecvError::Closed) => Wake::Command(None),
                        Err(async_channel::TryRecvError::Empty) => break,
                    },
                };
                self.on_wake(now, wake, &mut conns, &mut stopping, &mut commands_open);
            }
        }
        if let Some(stop) = &stopping {
            // After its `Closed` each connection still writes what is left and waits for
            // the peer's EOF: the stop waits for that too.
            future::or(self.live.all_ended(), async {
                Timer::at(stop.give_up).await;
            })
            .await;
        }
        // Last store operations (the disconnections), then sync.
        self.drain_actions(&mut conns, true);
        let (synced_tx, synced) = async_channel::bounded(1);
        if self.store.try_send(StoreRequest::Sync(synced_tx)).is_ok() {
            let _ = synced.recv().await;
        }
        tracing::info!("stopped");
        if let Some(stop) = stopping {
            for reply in stop.replies {
                let _ = reply.try_send(());
            }
        }
    }

    /// Handles one wake-up of the router task.
    fn on_wake(
        &mut self,
        now: Instant,
        wake: Wake,
        conns: &mut BTreeMap<ConnectionId, ConnEntry>,
        stopping: &mut Option<Stopping>,
        commands_open: &mut bool,
    ) {
        match wake {
            Wake::Input(input) => self.on_input(now, input, conns, stopping.is_some()),
            Wake::Command(None) => *commands_open = false,
            Wake::Command(Some(AppCommand::Stop(reply))) => match stopping {
                Some(stop) => stop.replies.push(reply),
                None => {
                    tracing::info!("stopping: flushing queued messages");
                    // Dropping the accept loop's task cancels it: no new connections.
                    self.listener = None;
                    self.node.stop(now, self.node.stop_timeout());
                    let give_up = self.node.stop_give_up().unwrap_or(now);
                    *stopping = Some(Stopping {
                        replies: vec![reply],
                        give_up: later(give_up, CLOSE_GRACE),
                    });
                }
            },
            Wake::Command(Some(command)) => self.on_command(now, command),
            Wake::Timer => self.node.handle_timeout(now),
        }
    }

    fn on_command(&mut self, now: Instant, command: AppCommand) {
        match command {
            AppCommand::Send(envelope, reservation) => self.route(now, envelope, reservation),
            AppCommand::Error(error) => self.node.report_error(now, error),
            AppCommand::AddPeer(address, reply) => {
                let _ = reply.try_send(self.node.add_peer(now, address));
            }
            AppCommand::Subscribe(subscriber) => self.subscribers.push(subscriber),
            AppCommand::ConnectedPeers(reply) => {
                let _ = reply.try_send(self.node.connected_peers().collect());
            }
            AppCommand::Stop(_) => {}
        }
    }

    /// Routes an application message. Backpressure messages come with room reserved in
    /// their peer's window (every `ChannelSender` reserves first), so the Router takes
    /// them; the node machine sorts out one whose peer went down, or reconnected, since.
    fn route(
        &mut self,
        now: Instant,
        envelope: router::Envelope,
        reservation: Option<Reservation>,
    ) {
        let sent = match reservation {
            Some(reservation) => self.node.send_reserved(now, envelope, reservation),
            None => self.node.send(now, envelope),
        };
        if let Err(error) = sent {
            tracing::debug!(%error, "message not sent");
        }
    }

    fn on_input(
        &mut self,
        now: Instant,
        input: RouterInput,
        conns: &mut BTreeMap<ConnectionId, ConnEntry>,
        stopping: bool,
    ) {
        match input {
            RouterInput::Connection(conn, reports) => {
                let span = conns.get(&conn).map(|entry| entry.span.clone());
                let _entered = span.as_ref().map(tracing::Span::enter);
                for report in reports {
                    if matches!(report, LinkReport::Event(PeerEvent::Closed { .. })) {
                        conns.remove(&conn);
                    }
                    self.node.handle_link_report(now, conn, report);
                }
            }
            RouterInput::Undecodable(error) => self.node.report_error(now, error),
            RouterInput::Dialed {
                conn,
                socket,
                result,
            } => match result {
                Ok(_) if stopping => {
                    self.node.dial_failed(now, conn);
                }
                Ok(stream) => match self.node.dial_succeeded(now, conn, socket) {
                    Ok(params) => self.spawn_connection(params, stream, socket, None, conns),
                    Err(error) => tracing::debug!(%conn, %error, "late dial result dropped"),
                },
                Err(error) => {
                    if self.node.dial_failed(now, conn) {
                        tracing::info!(%conn, %socket, %error, "dial failed");
                    } else {
                        tracing::debug!(%conn, %socket, %error, "late failure of a timed-out dial");
                    }
                }
            },
            RouterInput::Incoming(stream, remote) => {
                if stopping {
                    return;
                }
                // A refusal is logged by the node machine.
                if let Ok(params) = self.node.accept(now, remote) {
                    self.spawn_connection(params, stream, remote, None, conns);
                }
            }
            RouterInput::Answering(stream, remote, connection) => {
                if stopping {
                    return;
                }
                if let Ok(params) = self.node.accept(now, remote) {
                    self.spawn_connection(params, stream, remote, Some(connection), conns);
                }
            }
            RouterInput::Resolved(address, ips) => self.node.resolved(now, &address, &ips),
        }
    }

    fn spawn_connection(
        &self,
        params: ConnectionParams,
        stream: TcpStream,
        remote: SocketAddr,
        answering: Option<Box<PeerConnection>>,
        conns: &mut BTreeMap<ConnectionId, ConnEntry>,
    ) {
        let Some(executor) = self.executor.upgrade() else {
            return;
        };
        let conn = params.conn;
        let (inputs_tx, inputs) = async_channel::unbounded();
        let span = tracing::info_span!(
            "peer",
            %conn,
            %remote,
            direction = params.direction.name(),
            peer = tracing::field::Empty
        );
        let task = ConnTask {
            params,
            key: self.key.clone(),
            stream,
            answering,
            inputs,
            inputs_tx: inputs_tx.clone(),
            router: self.inputs_tx.clone(),
            executor: std::sync::Arc::downgrade(&executor),
            app_channels: std::sync::Arc::clone(&self.app_channels),
            settings: self.node.link_settings(),
        };
        let live = self.live.enter();
        let run = async move {
            task.run().await;
            drop(live);
        };
        executor.spawn(run.instrument(span.clone())).detach();
        conns.insert(
            conn,
            ConnEntry {
                inputs: inputs_tx,
                span,
            },
        );
    }

    /// Carries out every pending output of the node machine.
    fn drain_actions(&mut self, conns: &mut BTreeMap<ConnectionId, ConnEntry>, stopping: bool) {
        let now = Instant::now();
        while let Some(output) = self.node.poll_output() {
            match output {
                NodeOutput::Dial {
                    conn,
                    address,
                    socket,
                } => {
                    if stopping {
                        self.node.dial_failed(now, conn);
                    } else {
                        self.spawn_dial(conn, address, socket);
                    }
                }
                NodeOutput::Resolve { address } => self.spawn_resolve(address),
                NodeOutput::Link { conn, command } => {
                    if let Some(entry) = conns.get(&conn) {
                        let _ = entry.inputs.try_send(command);
                    }
                }
                NodeOutput::Windows(changes) => self.windows.apply(changes),
                NodeOutput::PeerUpdate(update) => self.publish(update),
                NodeOutput::Store(ops) => {
                    let _ = self.store.try_send(StoreRequest::Apply(ops));
                }
                // The senders' windows already let waiting senders go.
                NodeOutput::Writable { .. } => {}
                NodeOutput::Pex(event) => tracing::debug!(?event, "PEX"),
            }
        }
    }

    /// A peer went up or down (the senders' windows followed already): the subscribers
    /// learn.
    fn publish(&mut self, update: PeerUpdate) {
        // The node machine logs why a peer went down, at info.
        tracing::debug!(peer = %update.node_id, status = ?update.status, "peer update");
        self.subscribers
            .retain(|s| match s.try_send(update.clone()) {
                Ok(()) => true,
                Err(TrySendError::Full(_)) => {
                    tracing::warn!("peer-update subscriber is full: update dropped");
                    true
                }
                Err(TrySendError::Closed(_)) => false,
            });
    }

    fn spawn_dial(&self, conn: ConnectionId, address: NodeAddress, socket: SocketAddr) {
        let Some(executor) = self.executor.upgrade() else {
            return;
        };
        let inputs = self.inputs_tx.clone();
        let timeout = self.dial_timeout;
        let span = tracing::debug_span!("dial", peer = %address.node_id, %socket);
        executor
            .spawn(
                async move {
                    let result = future::or(TcpStream::connect(socket), async {
                        Timer::after(timeout).await;
                        Err(std::io::Error::new(
                            std::io::ErrorKind::TimedOut,
                            format!("connect did not finish within {timeout:?}"),
                        ))
                    })
                    .await;
                    let _ = inputs
                        .send(RouterInput::Dialed {
                            conn,
                            socket,
                            result,
                        })
                        .await;
                }
                .instrument(span),
            )
            .detach();
    }

    fn spawn_resolve(&self, address: NodeAddress) {
        let Some(executor) = self.executor.upgrade() else {
            return;
        };
        let inputs = self.inputs_tx.clone();
        executor
            .spawn(async move {
                let ips = match address.resolution() {
                    Ok(Resolution::Lookup { hostname, port }) => {
                        match async_net::resolve((hostname.as_str(), port)).await {
                            Ok(found) => found.into_iter().map(|s| s.ip()).collect(),
                            Err(error) => {
                                tracing::debug!(%hostname, %error, "DNS lookup failed");
                                Vec::new()
                            }
                        }
                    }
                    _ => Vec::new(),
                };
                let _ = inputs.send(RouterInput::Resolved(address, ips)).await;
            })
            .detach();
    }
}

/// The accept loop: every TCP connection goes to the router task, which admits or refuses
/// it before any handshake work.
pub(crate) async fn accept_loop(listener: async_net::TcpListener, inputs: Sender<RouterInput>) {
    loop {
        match listener.accept().await {
            Ok((stream, remote)) => {
                if inputs
                    .send(RouterInput::Incoming(stream, remote))
                    .await
                    .is_err()
                {
                    return;
                }
            }
            Err(error) => {
                tracing::warn!(%error, "accept failed");
                Timer::after(Duration::from_millis(50)).await;
            }
        }
    }
}
