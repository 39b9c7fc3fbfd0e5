//! The senders' side of backpressure: core's [`SendWindows`] behind a lock, with an event
//! that wakes waiting senders when the node machine releases room or a peer goes up or
//! down (`NodeOutput::Windows`). A sender reserves room before it hands a message to the router task, so the
//! Router never has to refuse one, and a full peer makes only its own senders wait.

use std::sync::Mutex;

use event_listener::Event;
use tmp2p_core::router::window::{Reserve, SendPlan, SendWindows, WindowChange, WindowLimits};
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

    /// Reserves room without waiting.
    pub(crate) fn try_reserve(&self, node: NodeId, channel: u8, len: usize) -> Reserve {
        self.with(|w| w.try_reserve(node, channel, len))
    }

    /// Reserves room, waiting while the peer's window for the channel is full.
    pub(crate) async fn reserve(&self, node: NodeId, channel: u8, len: usize) -> Reserve {
        loop {
            match self.try_reserve(node, channel, len) {
                Reserve::Full => {}
                other => return other,
            }
            let listener = self.room.listen();
            // Room may have come between the try and the listen.
            match self.try_reserve(node, channel, len) {
                Reserve::Full => {}
                other => return other,
            }
            listener.await;
        }
    }

    /// Reserves what it can for a send to `target` (see `SendWindows::plan`).
    pub(crate) fn plan(&self, target: Target, channel: u8, len: usize) -> SendPlan {
        self.with(|w| w.plan(target, channel, len))
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
