//! Backpressure for senders on other threads: core's [`SendWindows`] behind a lock, with a
//! condition variable that wakes a blocked [`NodeHandle::send`](crate::NodeHandle::send)
//! when the loop releases room or a peer goes up or down. A handle walks core's
//! `SendSteps` over them: it reserves room before it queues a message for the loop, so the
//! Router never refuses one, and a full peer blocks only the senders to that peer.

use std::collections::BTreeSet;
use std::sync::{Condvar, Mutex, MutexGuard};

use std::time::Instant;
use tmp2p_core::router::window::{
    Reservation, SendRefused, SendStep, SendSteps, SendWindows, WindowChange, WindowLimits,
};

use tmp2p_core::node::Node;
use tmp2p_core::router::{Envelope, SendError, Target};
use tmp2p_core::NodeId;

/// Shared by a driver and its handles.
pub(crate) struct BlockingWindows {
    windows: Mutex<SendWindows>,
    changed: Condvar,
    /// Channels opened with `OverflowPolicy::Drop`: nothing to reserve.
    drop_channels: BTreeSet<u8>,
}

impl BlockingWindows {
    pub(crate) fn new(limits: WindowLimits, drop_channels: BTreeSet<u8>) -> Self {
        BlockingWindows {
            windows: Mutex::new(SendWindows::new(limits)),
            changed: Condvar::new(),
            drop_channels,
        }
    }

    /// Each update is one whole change of a count, so a lock poisoned by a panic elsewhere
    /// still holds consistent counts.
    fn lock(&self) -> MutexGuard<'_, SendWindows> {
        self.windows
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Whether sends on `channel` reserve room (backpressure) or go straight through.
    pub(crate) fn is_bounded(&self, channel: u8) -> bool {
        !self.drop_channels.contains(&channel)
    }

    /// Starts a send (see `SendSteps::start`).
    pub(crate) fn start(
        &self,
        target: Target,
        channel: u8,
        len: usize,
    ) -> Result<SendSteps, SendRefused> {
        SendSteps::start(&mut self.lock(), target, channel, len)
    }

    /// The send's next step, without blocking.
    pub(crate) fn next_now(&self, steps: &mut SendSteps) -> Result<SendStep, SendRefused> {
        match steps.ready() {
            Some(step) => Ok(step),
            None => steps.next(&mut self.lock()),
        }
    }

    /// The send's next peer to hand the message over for, blocking the calling thread
    /// while that peer's window is full; `None` once every target peer has its copy.
    pub(crate) fn next_blocking(
        &self,
        steps: &mut SendSteps,
    ) -> Result<Option<(NodeId, Reservation)>, SendRefused> {
        match steps.ready() {
            Some(SendStep::HandOver(node, reservation)) => return Ok(Some((node, reservation))),
            Some(_) => return Ok(None),
            None => {}
        }
        let mut windows = self.lock();
        loop {
            match steps.next(&mut windows)? {
                SendStep::HandOver(node, reservation) => return Ok(Some((node, reservation))),
                SendStep::Done => return Ok(None),
                SendStep::Wait(_) => {
                    windows = self
                        .changed
                        .wait(windows)
                        .unwrap_or_else(std::sync::PoisonError::into_inner);
                }
            }
        }
    }

    /// Applies the node machine's changes of one turn (`NodeOutput::Windows`), wakes
    /// blocked senders and adds to `writable` each peer and channel that refused a
    /// non-blocking send and has room now.
    pub(crate) fn apply(&self, changes: &mut Vec<WindowChange>, writable: &mut Vec<(NodeId, u8)>) {
        if changes.is_empty() {
            return;
        }
        let mut windows = self.lock();
        writable.extend(changes.drain(..).filter_map(|change| windows.apply(change)));
        drop(windows);
        self.changed.notify_all();
    }
}

impl BlockingWindows {
    /// Routes an envelope with the room reserved for it (a bounded channel's message to one
    /// peer), or none; the node machine gives back the room of one it refuses.
    pub(crate) fn route_reserved(
        &self,
        node: &mut Node,
        now: Instant,
        envelope: Envelope,
        reservation: Option<Reservation>,
    ) {
        let sent = match reservation {
            Some(reservation) => node.send_reserved(now, envelope, reservation),
            None => node.send(now, envelope),
        };
        if let Err(error) = sent {
            tracing::debug!(%error, "message from a handle not sent");
        }
    }

    /// Routes an envelope sent on the loop thread, without blocking: a full peer hands it
    /// back with [`SendError::Full`] and an `AppEvent::Writable` follows once it has room.
    pub(crate) fn route_now(
        &self,
        node: &mut Node,
        now: Instant,
        envelope: Envelope,
    ) -> Result<usize, SendError> {
        let channel = envelope.channel;
        if !self.is_bounded(channel) {
            return node.send(now, envelope);
        }
        let Some(to) = envelope.to else {
            return Err(SendError::NotConnected);
        };
        let Ok(mut steps) = self.start(to, channel, envelope.message.len()) else {
            // Not queued: the node says why (and counts it).
            return node.send(now, envelope);
        };
        let mut queued = 0;
        loop {
            // On the loop thread no peer comes or goes between the steps: this never fails.
            match self.next_now(&mut steps)? {
                SendStep::HandOver(peer, reservation) => {
                    let copy = Envelope::to_peer(peer, channel, envelope.message.clone());
                    self.route_reserved(node, now, copy, Some(reservation));
                    queued += 1;
                }
                SendStep::Wait(_) => {
                    let peers = steps.waiting_for();
                    return Err(SendError::Full { envelope, peers });
                }
                SendStep::Done => return Ok(queued),
            }
        }
    }
}
