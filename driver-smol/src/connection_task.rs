//! The task that owns one connection's `PeerConnection`: it feeds socket bytes, timers and
//! the router's commands into the machine and carries its output to the socket (through a
//! writer subtask, so reading never waits on writing) and its events to the router task.
//! After the `Closed` event it flushes what is left, half-closes the socket and lingers
//! until the peer closes too (so unread bytes never turn the close into a reset).

use std::collections::VecDeque;
use std::net::Shutdown;
use std::sync::Weak;
use std::time::{Duration, Instant};

use async_channel::{Receiver, Sender};
use async_io::Timer;
use async_net::TcpStream;
use bytes::{Bytes, BytesMut};
use futures_lite::future;
use futures_lite::{AsyncReadExt, AsyncWriteExt};
use smol::Executor;
use tmp2p_core::connection::{PeerConnection, PeerEvent};
use tmp2p_core::mconn::SendError;
use tmp2p_core::router::{ConnectionId, ConnectionParams};
use tmp2p_core::NodeKey;

use crate::router_task::RouterInput;

/// Socket writes in flight before the machine is asked for more output.
const WRITES_IN_FLIGHT: usize = 2;
/// Bytes gathered from `poll_transmit` into one socket write.
const WRITE_BATCH: usize = 512 * 1024;
/// Size of one socket read.
const READ_SIZE: usize = 64 * 1024;
/// Reads queued between the reader subtask and the machine.
const READS_QUEUED: usize = 4;
/// How long a closed connection waits for the peer's EOF before dropping the socket.
const LINGER: Duration = Duration::from_secs(2);

/// What the router task tells a connection.
#[derive(Debug)]
pub(crate) enum ConnCommand {
    /// Hand this message to `PeerConnection::send` (confirm with `RouterInput::Accepted`).
    Send { channel: u8, message: Bytes },
    /// Close gracefully.
    Close,
}

/// Inputs of the connection task other than socket reads: router commands and the
/// writer's progress. Unbounded: router commands are bounded by the router's send credit,
/// writer notices by [`WRITES_IN_FLIGHT`].
#[derive(Debug)]
pub(crate) enum ConnInput {
    Command(ConnCommand),
    Written,
    WriteFailed(std::io::Error),
    Finished,
}

enum ReadResult {
    Data(Bytes),
    Eof,
    Failed(std::io::Error),
}

enum WriterCommand {
    Write(Bytes),
    Finish,
}

/// Everything a connection task needs.
pub(crate) struct ConnTask {
    pub(crate) params: ConnectionParams,
    pub(crate) key: NodeKey,
    pub(crate) stream: TcpStream,
    pub(crate) inputs: Receiver<ConnInput>,
    pub(crate) inputs_tx: Sender<ConnInput>,
    pub(crate) router: Sender<RouterInput>,
    pub(crate) executor: Weak<Executor<'static>>,
}

enum Wake {
    Input(Option<ConnInput>),
    Read(Option<ReadResult>),
    Timer,
}

impl ConnTask {
    /// Runs the connection until it is closed and the socket is done.
    pub(crate) async fn run(self) {
        let ConnTask {
            params,
            key,
            stream,
            inputs,
            inputs_tx,
            router,
            executor,
        } = self;
        let conn = params.conn;
        // Packets are batched by the machine, never by Nagle: without this, a small write
        // waiting for an ACK stalled about 1 in 200 handshakes by 40 ms.
        let _ = stream.set_nodelay(true);
        let Some(executor) = executor.upgrade() else {
            return;
        };
        let mut pc = PeerConnection::new(
            Instant::now(),
            &key,
            params.node_info,
            params.direction,
            params.config,
            &mut rand_core::OsRng,
        );
        drop(key);
        let (read_tx, reads) = async_channel::bounded(READS_QUEUED);
        let reader = executor.spawn(read_loop(stream.clone(), read_tx));
        let (write_tx, write_rx) = async_channel::unbounded();
        let writer = executor.spawn(write_loop(stream, write_rx, inputs_tx));
        drop(executor);
        let mut in_flight = 0usize;
        let mut blocked: VecDeque<(u8, Bytes)> = VecDeque::new();
        let mut eof_seen = false;

        loop {
            let now = Instant::now();
            in_flight += transmit(&mut pc, now, &write_tx, in_flight);
            let mut closed = false;
            while let Some(event) = pc.poll_event() {
                closed |= matches!(event, PeerEvent::Closed { .. });
                match &event {
                    PeerEvent::Authenticated { node_info, .. } => {
                        let peer = tracing::field::display(node_info.node_id);
                        tracing::Span::current().record("peer", peer);
                        tracing::debug!("authenticated");
                    }
                    PeerEvent::Closed { reason } => tracing::debug!(?reason, "connection closed"),
                    _ => {}
                }
                if router
                    .send(RouterInput::Connection(conn, event))
                    .await
                    .is_err()
                {
                    // The router task is gone: the node is shutting down.
                    return;
                }
            }
            if closed {
                break;
            }
            let timer = pc.poll_timeout();
            let wake = future::or(
                future::or(async { Wake::Input(inputs.recv().await.ok()) }, async {
                    if eof_seen {
                        future::pending::<()>().await;
                    }
                    Wake::Read(reads.recv().await.ok())
                }),
                async {
                    match timer {
                        Some(at) => Timer::at(at).await,
                        None => future::pending().await,
                    };
                    Wake::Timer
                },
            )
            .await;
            let now = Instant::now();
            match wake {
                Wake::Input(Some(ConnInput::Command(ConnCommand::Send { channel, message }))) => {
                    if blocked.is_empty() {
                        send_one(&mut pc, now, conn, channel, message, &mut blocked, &router).await;
                    } else {
                        blocked.push_back((channel, message));
                    }
                }
                Wake::Input(Some(ConnInput::Command(ConnCommand::Close))) => pc.close(),
                Wake::Input(Some(ConnInput::Written)) => {
                    in_flight = in_flight.saturating_sub(1);
                    // The connection transmitted: retry what it handed back as full.
                    let retry = std::mem::take(&mut blocked);
                    for (channel, message) in retry {
                        if blocked.is_empty() {
                            send_one(&mut pc, now, conn, channel, message, &mut blocked, &router)
                                .await;
                        } else {
                            blocked.push_back((channel, message));
                        }
                    }
                }
                Wake::Input(Some(ConnInput::WriteFailed(error))) => {
                    tracing::debug!(%error, "socket write failed");
                    pc.handle_eof();
                }
                Wake::Input(Some(ConnInput::Finished)) | Wake::Input(None) => {}
                Wake::Read(Some(ReadResult::Data(bytes))) => {
                    if let Err(error) = pc.handle_input(now, &bytes) {
                        tracing::debug!(%error, "connection failed on input");
                    }
                }
                Wake::Read(Some(ReadResult::Eof)) | Wake::Read(None) => {
                    eof_seen = true;
                    pc.handle_eof();
                }
                Wake::Read(Some(ReadResult::Failed(error))) => {
                    tracing::debug!(%error, "socket read failed");
                    eof_seen = true;
                    pc.handle_eof();
                }
                Wake::Timer => pc.handle_timeout(now),
            }
        }

        // Closed: flush the rest, half-close, and linger for the peer's EOF.
        let now = Instant::now();
        let mut out = BytesMut::new();
        while pc.poll_transmit(now, &mut out) {}
        if !out.is_empty() {
            let _ = write_tx.send(WriterCommand::Write(out.freeze())).await;
        }
        let _ = write_tx.send(WriterCommand::Finish).await;
        let deadline = Instant::now() + LINGER;
        let mut finished = false;
        loop {
            let wake = future::or(
                future::or(async { Wake::Input(inputs.recv().await.ok()) }, async {
                    if eof_seen {
                        future::pending::<()>().await;
                    }
                    Wake::Read(reads.recv().await.ok())
                }),
                async {
                    Timer::at(deadline).await;
                    Wake::Timer
                },
            )
            .await;
            match wake {
                Wake::Input(Some(ConnInput::Finished)) => {
                    finished = true;
                    if eof_seen {
                        break;
                    }
                }
                Wake::Input(Some(ConnInput::WriteFailed(_))) | Wake::Input(None) => break,
                Wake::Input(Some(_)) | Wake::Read(Some(ReadResult::Data(_))) => {}
                Wake::Read(_) => {
                    eof_seen = true;
                    if finished {
                        break;
                    }
                }
                Wake::Timer => {
                    tracing::debug!("peer did not close within the linger time");
                    break;
                }
            }
        }
        drop(reader);
        drop(writer);
    }
}

/// Gathers the machine's output into socket writes while fewer than
/// [`WRITES_IN_FLIGHT`] are pending; returns how many writes it queued.
fn transmit(
    pc: &mut PeerConnection,
    now: Instant,
    write_tx: &Sender<WriterCommand>,
    in_flight: usize,
) -> usize {
    let mut queued = 0;
    while in_flight + queued < WRITES_IN_FLIGHT {
        let mut out = BytesMut::new();
        while out.len() < WRITE_BATCH && pc.poll_transmit(now, &mut out) {}
        if out.is_empty() {
            break;
        }
        if write_tx
            .try_send(WriterCommand::Write(out.freeze()))
            .is_err()
        {
            break;
        }
        queued += 1;
    }
    queued
}

/// Hands one router `Send` to the machine; confirms it to the router when taken.
async fn send_one(
    pc: &mut PeerConnection,
    now: Instant,
    conn: ConnectionId,
    channel: u8,
    message: Bytes,
    blocked: &mut VecDeque<(u8, Bytes)>,
    router: &Sender<RouterInput>,
) {
    match pc.send(now, channel, message) {
        Ok(()) => {
            let _ = router.send(RouterInput::Accepted(conn)).await;
        }
        Err(SendError::Full(message)) => blocked.push_back((channel, message)),
        Err(error) => tracing::debug!(channel, %error, "message not sent"),
    }
}

async fn read_loop(mut stream: TcpStream, reads: Sender<ReadResult>) {
    let mut buf = vec![0u8; READ_SIZE];
    loop {
        let result = match stream.read(&mut buf).await {
            Ok(0) => ReadResult::Eof,
            Ok(n) => ReadResult::Data(Bytes::copy_from_slice(buf.get(..n).unwrap_or_default())),
            Err(error) => ReadResult::Failed(error),
        };
        let last = !matches!(result, ReadResult::Data(_));
        if reads.send(result).await.is_err() || last {
            return;
        }
    }
}

async fn write_loop(
    mut stream: TcpStream,
    commands: Receiver<WriterCommand>,
    notices: Sender<ConnInput>,
) {
    while let Ok(command) = commands.recv().await {
        match command {
            WriterCommand::Write(bytes) => {
                if let Err(error) = stream.write_all(&bytes).await {
                    let _ = notices.send(ConnInput::WriteFailed(error)).await;
                    return;
                }
                let _ = notices.send(ConnInput::Written).await;
            }
            WriterCommand::Finish => {
                let _ = stream.flush().await;
                let _ = stream.shutdown(Shutdown::Write);
                let _ = notices.send(ConnInput::Finished).await;
                return;
            }
        }
    }
}
