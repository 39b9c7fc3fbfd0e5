//! The ready-made loop: a node on its own thread, owning a mio `Poll`, for users without
//! an event loop. The application talks to it through a [`NodeHandle`] and either an
//! [`Inbound`] channel or a callback that runs on the loop thread.

use std::net::SocketAddr;
use std::sync::mpsc;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use mio::{Events, Poll, Waker};
use tmp2p_core::deadline::later;
use tmp2p_core::NodeId;

use crate::app::Callback;
use crate::driver::{waker_notify, Driver};
use crate::error::DriverError;
use crate::handle::{Inbound, NodeHandle};
use crate::setup::DriverSetup;
use crate::tokens::TokenRange;

/// Events taken from the OS per poll.
const EVENTS_PER_POLL: usize = 1024;

/// How long a shutdown waits past the node's give-up time (`Node::stop_give_up`) for
/// connections to finish, before it drops them.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(3);

/// A node running on its own thread.
pub struct RunningNode {
    handle: NodeHandle,
    inbound: Option<Inbound>,
    local_addr: SocketAddr,
    thread: Option<JoinHandle<Result<(), DriverError>>>,
}

/// How inbound events reach the application.
enum Delivery {
    Channel(usize),
    Callback(Callback),
}

impl RunningNode {
    /// Starts a node whose inbound events arrive on an [`Inbound`] channel holding at most
    /// `inbound_capacity` events (then sockets stop being read until the application
    /// catches up).
    ///
    /// # Errors
    /// Any start-up [`DriverError`] (bad configuration, bind failure...).
    pub fn spawn(setup: DriverSetup, inbound_capacity: usize) -> Result<RunningNode, DriverError> {
        start(setup, Delivery::Channel(inbound_capacity))
    }

    /// Starts a node whose inbound events run `callback` on the loop thread.
    ///
    /// # Errors
    /// Any start-up [`DriverError`].
    pub fn spawn_with_callback(
        setup: DriverSetup,
        callback: Callback,
    ) -> Result<RunningNode, DriverError> {
        start(setup, Delivery::Callback(callback))
    }

    /// The command handle (clone it for other threads).
    pub fn handle(&self) -> &NodeHandle {
        &self.handle
    }

    /// The inbound channel (channel form only; `None` once taken or with a callback).
    pub fn inbound(&self) -> Option<&Inbound> {
        self.inbound.as_ref()
    }

    /// Takes the inbound channel, e.g. to move it to a consumer thread.
    pub fn take_inbound(&mut self) -> Option<Inbound> {
        self.inbound.take()
    }

    /// Our node id.
    pub fn node_id(&self) -> NodeId {
        self.handle.node_id()
    }

    /// The bound listen address.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Asks the node to close its connections and waits for its thread.
    ///
    /// # Errors
    /// The loop's error, or [`DriverError::ThreadPanicked`].
    pub fn stop(mut self) -> Result<(), DriverError> {
        let _ = self.handle.shutdown();
        match self.thread.take() {
            Some(thread) => thread.join().map_err(|_| DriverError::ThreadPanicked)?,
            None => Ok(()),
        }
    }
}

impl Drop for RunningNode {
    fn drop(&mut self) {
        if self.thread.is_some() {
            let _ = self.handle.shutdown();
        }
    }
}

type Started = Result<(NodeHandle, Option<Inbound>, SocketAddr), DriverError>;

fn start(setup: DriverSetup, delivery: Delivery) -> Result<RunningNode, DriverError> {
    let (started_tx, started_rx) = mpsc::sync_channel::<Started>(1);
    let thread = std::thread::Builder::new()
        .name("tmp2p-mio".into())
        .spawn(move || {
            let (mut poll, mut driver) = match build(setup, delivery) {
                Ok((poll, driver, handle, inbound)) => {
                    let addr = driver.local_addr();
                    let _ = started_tx.send(Ok((handle, inbound, addr)));
                    (poll, driver)
                }
                Err(error) => {
                    let _ = started_tx.send(Err(error));
                    return Ok(());
                }
            };
            run(&mut poll, &mut driver)
        })?;
    let (handle, inbound, local_addr) = started_rx.recv().map_err(|_| DriverError::Stopped)??;
    Ok(RunningNode {
        handle,
        inbound,
        local_addr,
        thread: Some(thread),
    })
}

fn build(
    setup: DriverSetup,
    delivery: Delivery,
) -> Result<(Poll, Driver, NodeHandle, Option<Inbound>), DriverError> {
    let poll = Poll::new()?;
    let len = setup.config.router.max_connections.saturating_add(8);
    let tokens = TokenRange::new(0, len)?;
    let mut driver = Driver::new(setup, poll.registry(), tokens)?;
    let waker = Arc::new(Waker::new(poll.registry(), tokens.waker())?);
    let notify = waker_notify(waker);
    let (handle, inbound) = match delivery {
        Delivery::Channel(capacity) => {
            let (handle, inbound) = driver.channels(capacity, notify)?;
            (handle, Some(inbound))
        }
        Delivery::Callback(callback) => {
            let handle = driver.handle(notify)?;
            driver.set_callback(callback)?;
            (handle, None)
        }
    };
    Ok((poll, driver, handle, inbound))
}

/// The loop: poll until the driver's deadline, hand it the events, let it work.
fn run(poll: &mut Poll, driver: &mut Driver) -> Result<(), DriverError> {
    let mut events = Events::with_capacity(EVENTS_PER_POLL);
    loop {
        let now = Instant::now();
        let give_up = driver
            .node()
            .stop_give_up()
            .map(|at| later(at, SHUTDOWN_GRACE));
        let timeout = match (driver.poll_duration(now), give_up) {
            (Some(wait), Some(at)) => Some(wait.min(at.saturating_duration_since(now))),
            (wait, at) => wait.or(at.map(|at| at.saturating_duration_since(now))),
        };
        if let Err(error) = poll.poll(&mut events, timeout) {
            if error.kind() != std::io::ErrorKind::Interrupted {
                return Err(error.into());
            }
        }
        for event in events.iter() {
            driver.handle_event(event);
        }
        let now = Instant::now();
        driver.process(now);
        if driver.is_finished() {
            return Ok(());
        }
        if give_up.is_some_and(|at| now >= at) {
            let left = driver.connection_count();
            tracing::warn!(left, "stop gave up: remaining connections dropped");
            return Ok(());
        }
    }
}
