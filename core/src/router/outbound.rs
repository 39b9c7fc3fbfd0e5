//! The Router's outbound path: [`Router::send`] queues an envelope for its targets under
//! the channel's [`OverflowPolicy`], and the pump hands queued messages to connections as
//! their send credit allows.
//!
//! The delivery contract: a message `send` accepted (`Ok`, or for the other targets of a
//! `Full`) is handed to that peer's connection unless the peer goes down first, which the
//! application learns from its `Down` update and [`DropReason::PeerGone`]. Backpressure
//! channels never drop: a full peer queue hands the message back ([`SendError::Full`]) and
//! [`RouterAction::Writable`] says when to retry. Drop channels drop by the QoS queue's
//! policy and count each drop.

use super::counters::DropReason;
use super::held::Popped;
use super::types::{OverflowPolicy, SendError};
use super::window::WindowLimits;
use super::{Conn, ConnectionId, Envelope, Phase, Router, RouterAction, Target};
use crate::connection::Taken;
use crate::id::NodeId;
use crate::queue::Queued;

/// Where one target of an envelope stands.
enum Outcome {
    Queued,
    Full(NodeId),
    NoChannel(NodeId),
}

impl Router {
    /// Routes an outbound envelope to one connected peer or, for a broadcast, to every
    /// connected peer that advertised the channel. Returns how many peers it was queued for
    /// (a broadcast with no such peer queues for none).
    ///
    /// # Errors
    /// [`SendError::Full`] (backpressure channels) hands the message back with the peers
    /// whose queue is full; it was queued for the others. The other errors drop the
    /// message and count it.
    pub fn send(&mut self, envelope: Envelope) -> Result<usize, SendError> {
        let channel = envelope.channel;
        let Some(policy) = self.channel_policy(channel) else {
            self.counters.dropped(DropReason::ChannelNotOpen, 1);
            return Err(SendError::ChannelNotOpen(channel));
        };
        let mut targets = std::mem::take(&mut self.targets);
        targets.clear();
        match envelope.to {
            Some(Target::Peer(node)) => targets.extend(self.by_node.get(&node).copied()),
            Some(Target::Broadcast) => targets.extend(self.by_node.values().copied()),
            None => {}
        }
        let broadcast = envelope.to == Some(Target::Broadcast);
        let (mut queued, mut full, mut no_channel) = (0, Vec::new(), None);
        for &conn in &targets {
            match self.queue_for(conn, channel, policy, &envelope) {
                Some(Outcome::Queued) => queued += 1,
                Some(Outcome::Full(node)) => full.push(node),
                Some(Outcome::NoChannel(node)) => no_channel = Some(node),
                None => {}
            }
            self.pump(conn);
        }
        self.targets = targets;
        if !full.is_empty() {
            return Err(SendError::Full {
                envelope,
                peers: full,
            });
        }
        match (queued, broadcast, no_channel) {
            (0, false, Some(node)) => {
                tracing::debug!(%node, channel, "peer did not advertise the channel: dropped");
                self.counters.dropped(DropReason::NoChannel, 1);
                Err(SendError::NoChannel { node, channel })
            }
            (0, false, None) => {
                tracing::debug!(channel, to = ?envelope.to, "no connected peer: dropped");
                self.counters.dropped(DropReason::NotConnected, 1);
                Err(SendError::NotConnected)
            }
            (queued, ..) => Ok(queued),
        }
    }

    /// The policy `channel` was opened with (`None`: it is not open).
    pub fn channel_policy(&self, channel: u8) -> Option<OverflowPolicy> {
        if !self.channels.contains_key(&channel) {
            None
        } else if self.drop_channels.contains(channel) {
            Some(OverflowPolicy::Drop)
        } else {
            Some(OverflowPolicy::Backpressure)
        }
    }

    /// The bounds of each peer's queue for each backpressure channel
    /// (`RouterConfig::channel_queue_messages` and `channel_queue_bytes`).
    pub fn window_limits(&self) -> WindowLimits {
        WindowLimits {
            messages: self.config.channel_queue_messages,
            bytes: self.config.channel_queue_bytes,
        }
    }

    /// The driver handed `taken` (messages of `conn`'s `Send` actions) to its connection:
    /// as many more may follow.
    pub fn messages_accepted(&mut self, conn: ConnectionId, taken: Taken) {
        if let Some(Conn {
            phase:
                Phase::Active {
                    credit,
                    in_flight_bytes,
                    ..
                },
            ..
        }) = self.conns.get_mut(conn)
        {
            *credit = credit
                .saturating_add(taken.messages)
                .min(self.config.send_credit);
            *in_flight_bytes = in_flight_bytes.saturating_sub(taken.bytes);
        }
        self.pump(conn);
    }

    /// Queues `envelope` for connection `conn` (`None`: it is not an active, open peer).
    fn queue_for(
        &mut self,
        conn: ConnectionId,
        channel: u8,
        policy: OverflowPolicy,
        envelope: &Envelope,
    ) -> Option<Outcome> {
        let limits = self.window_limits();
        let Some(Conn {
            phase:
                Phase::Active {
                    channels,
                    queue,
                    held,
                    node,
                    stats,
                    ..
                },
            closing: false,
            ..
        }) = self.conns.get_mut(conn)
        else {
            return None;
        };
        if !channels.contains(channel) {
            return Some(Outcome::NoChannel(*node));
        }
        let message = envelope.message.clone();
        if policy == OverflowPolicy::Backpressure {
            let len = message.len();
            return Some(match held.try_push(channel, message, limits) {
                Ok(()) => {
                    stats.enqueued(channel, len);
                    Outcome::Queued
                }
                Err(_) => Outcome::Full(*node),
            });
        }
        for dropped in queue.push(Queued { channel, message }) {
            tracing::debug!(%node, channel = dropped.channel, len = dropped.message.len(),
                "outbound queue full: message dropped");
            self.counters.dropped(DropReason::QueueFull, 1);
            stats.dropped_queue_full(1);
        }
        Some(Outcome::Queued)
    }

    /// Hands queued messages of `conn` to the driver while its credit lasts, taking turns
    /// between the backpressure channels and the QoS queue.
    pub(super) fn pump(&mut self, conn: ConnectionId) {
        let limits = self.window_limits();
        let Some(Conn {
            phase:
                Phase::Active {
                    queue,
                    held,
                    node,
                    credit,
                    in_flight_bytes,
                    held_turn,
                    stats,
                    ..
                },
            closing: false,
            ..
        }) = self.conns.get_mut(conn)
        else {
            return;
        };
        while *credit > 0 && *in_flight_bytes < self.config.send_credit_bytes {
            let from_held = |held: &mut super::held::Held| held.pop(limits);
            let from_queue = |queue: &mut Box<dyn crate::queue::MessageQueue>| {
                queue.pop().map(|Queued { channel, message }| Popped {
                    channel,
                    message,
                    writable: false,
                })
            };
            let next = if *held_turn {
                from_held(held).or_else(|| from_queue(queue))
            } else {
                from_queue(queue).or_else(|| from_held(held))
            };
            let Some(Popped {
                channel,
                message,
                writable,
            }) = next
            else {
                break;
            };
            *held_turn = !*held_turn;
            *credit -= 1; // cannot panic: credit > 0
            *in_flight_bytes = in_flight_bytes.saturating_add(message.len());
            self.counters.sent(message.len());
            stats.sent(channel, message.len());
            self.actions.push_back(RouterAction::Send {
                conn,
                node: *node,
                channel,
                message,
            });
            if writable {
                self.actions.push_back(RouterAction::Writable {
                    node: *node,
                    channel,
                });
            }
        }
    }
}
