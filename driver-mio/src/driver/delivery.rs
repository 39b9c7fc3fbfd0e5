//! Inbound delivery: events go to the application's sink (kept for `poll_event`, pushed
//! into the bounded `Inbound` channel, or run through the callback), and parked
//! connections resume reading once there is room again.

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

    pub(super) fn resume_if_room(&mut self) {
        if self.reading_paused() || self.parked.is_empty() {
            return;
        }
        for slot in std::mem::take(&mut self.parked) {
            if let Some(link) = self.links.get_mut(slot) {
                link.parked = false;
            }
            self.enqueue(slot);
        }
    }
}
