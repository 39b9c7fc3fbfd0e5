//! The senders' side of backpressure: core's [`SendWindows`] behind a lock, with an event
//! that wakes waiting senders when the node machine releases room or a peer goes up or
//! down (`NodeOutput::Windows`). A sender walks core's `SendSteps` over them: it reserves room
//! before it hands a message to the router task, so the Router never has to refuse one, and
//! a full peer makes only its own senders wait.

use std::sync::Mutex;

use event_listener::Event;
use tmp2p_core::router::window::{
    Reservation, SendRefused, SendStep, SendSteps, SendWindows, WindowChange, WindowLimits,
};
use tmp2p_core::router::Target;
use tmp2p_core::NodeId;

/// Shared by every `ChannelSender` of a node and its router task.
pub(crate) struct SharedWindows {
    windows: Mutex<SendWindows>,
    room: Event,
}

impl SharedWindows {
    pub(crate) fn new(limits: WindowLimits) -> Self {
        SharedWindows {
            windows: Mutex::new(SendWindows::new(limits)),
            room: Event::new(),
        }
    }

    fn with<T>(&self, f: impl FnOnce(&mut SendWindows) -> T) -> T {
        // A panic while the lock was held cannot leave the counts half-written (each
        // operation is a single update), so a poisoned lock is still usable.
        let mut guard = self
            .windows
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        f(&mut guard)
    }

    /// The send's next step, without waiting.
    pub(crate) fn next_now(&self, steps: &mut SendSteps) -> Result<SendStep, SendRefused> {
        match steps.ready() {
            Some(step) => Ok(step),
            None => self.with(|w| steps.next(w)),
        }
    }

    /// The send's next peer to hand the message over for, waiting while that peer's window
    /// is full; `None` once every target peer has its copy.
    pub(crate) async fn next(
        &self,
        steps: &mut SendSteps,
    ) -> Result<Option<(NodeId, Reservation)>, SendRefused> {
        let mut listener = None;
        loop {
            match self.next_now(steps)? {
                SendStep::HandOver(node, reservation) => return Ok(Some((node, reservation))),
                SendStep::Done => return Ok(None),
                // Listen first, then try again: room may come between the try and the
                // listen.
                SendStep::Wait(_) => match listener.take() {
                    None => listener = Some(self.room.listen()),
                    Some(listener) => listener.await,
                },
            }
        }
    }

    /// Starts a send (see `SendSteps::start`).
    pub(crate) fn start(
        &self,
        target: Target,
        channel: u8,
        len: usize,
    ) -> Result<SendSteps, SendRefused> {
        self.with(|w| SendSteps::start(w, target, channel, len))
    }

    /// Follows the node machine's changes (peers up and down, room released), then wakes
    /// every waiting sender to try again.
    pub(crate) fn apply(&self, changes: Vec<WindowChange>) {
        self.with(|w| {
            for change in changes {
                // Waiting senders are woken below, whatever the window says.
                let _writable = w.apply(change);
            }
        });
        self.room.notify(usize::MAX);
    }
}
