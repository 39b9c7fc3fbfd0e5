//! Inbound delivery: events go to the application's sink (kept for `poll_event`, pushed
//! into the bounded `Inbound` channel, or run through the callback), and connections whose
//! messages waited for room hand them on once there is room again.

use std::sync::atomic::Ordering;
use std::sync::mpsc::TrySendError;
use std::time::Instant;

use super::{Driver, Sink};
use crate::app::{AppEvent, Control};

impl Driver {
    pub(super) fn run_callback(&mut self, event: AppEvent) {
        if let Sink::Callback(callback) = &mut self.sink {
            callback(
                &mut Control {
                    node: &mut self.node,
                    windows: &self.windows,
                    now: self.now,
                },
                event,
            );
        }
    }

    pub(super) fn deliver(&mut self, now: Instant) {
        match &self.sink {
            Sink::Poll => {}
            Sink::Channel(tx) => {
                let tx = tx.clone();
                while let Some(event) = self.events.pop_front() {
                    match tx.try_send(event) {
                        Ok(()) => {}
                        Err(TrySendError::Full(event)) => {
                            self.events.push_front(event);
                            break;
                        }
                        Err(TrySendError::Disconnected(_)) => {
                            tracing::debug!("inbound receiver dropped: events discarded");
                            self.events.clear();
                            break;
                        }
                    }
                }
                if let Some(remote) = &self.remote {
                    // Ask the consumer to wake us while events wait for room.
                    remote
                        .shared
                        .paused
                        .store(!self.events.is_empty(), Ordering::Release);
                }
            }
            Sink::Callback(_) => {
                // Events the callback causes are delivered in the same loop, bounded by
                // what one pass of pending events holds.
                let pending = self.events.len();
                for _ in 0..pending {
                    let Some(event) = self.events.pop_front() else {
                        break;
                    };
                    self.run_callback(event);
                    self.run_outputs(now);
                }
            }
        }
    }

    /// Links holding messages the application's queue could not take get another turn
    /// once it has room: their messages move on, and a link that had stopped reading
    /// (past its hold budget) reads again.
    pub(super) fn resume_waiting(&mut self) {
        if !self.has_inbound_room() || self.waiting.is_empty() {
            return;
        }
        for slot in std::mem::take(&mut self.waiting) {
            if let Some(link) = self.links.get_mut(slot) {
                link.waiting = false;
            }
            self.take_deliveries(slot);
            self.enqueue(slot);
        }
    }
}
