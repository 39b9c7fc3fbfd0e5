//! The node machine's send side: application messages into the Router, and the changes
//! the senders' windows must follow (`NodeOutput::Windows`), with each peer connection's
//! epoch so a reservation made against a connection that is gone is not counted against
//! the next.

use std::time::Instant;

use super::Node;
use crate::peer_manager::{PeerStatus, PeerUpdate};
use crate::pex::PEX_CHANNEL;
use crate::router::window::{Reservation, WindowChange};
use crate::router::{DropReason, Envelope, OverflowPolicy, SendError, Target};

impl Node {
    /// Routes an application message (see `Router::send` for the contract).
    ///
    /// # Errors
    /// As `Router::send`.
    pub fn send(&mut self, now: Instant, envelope: Envelope) -> Result<usize, SendError> {
        let sent = self.router.send(envelope);
        self.drain(now);
        sent
    }

    /// Routes an application message for which the sender reserved room in the senders'
    /// windows (one peer, on a backpressure channel), with that `reservation`. One reserved
    /// against a connection of the peer that has gone since (the application saw its
    /// `Down`) is dropped and counted as `dropped_peer_gone`, as if it had waited in the
    /// Router: the new connection's window never counted it. A refusal gives the room back
    /// with a `WindowChange::Released`.
    ///
    /// # Errors
    /// As `Router::send`; [`SendError::NotConnected`] for a reservation of a gone
    /// connection.
    pub fn send_reserved(
        &mut self,
        now: Instant,
        envelope: Envelope,
        reservation: Reservation,
    ) -> Result<usize, SendError> {
        let peer = match envelope.to {
            Some(Target::Peer(node)) => Some(node),
            _ => None,
        };
        let current = peer.and_then(|node| self.epochs.get(&node).copied());
        if current != Some(reservation.epoch()) {
            self.router.counters().dropped(DropReason::PeerGone, 1);
            tracing::debug!(
                ?peer,
                "a message reserved against a gone connection: dropped"
            );
            return Err(SendError::NotConnected);
        }
        let release = peer
            .filter(|_| self.windowed(envelope.channel))
            .map(|node| WindowChange::Released(node, envelope.channel, envelope.message.len()));
        let sent = self.router.send(envelope);
        if let (Err(error), Some(release)) = (&sent, release) {
            if let SendError::Full { peers, .. } = error {
                // The windows admit no more than the Router holds, so this is a sender that
                // reserved nothing for what it sent before; the message is lost and counted.
                self.router.counters().dropped(DropReason::QueueFull, 1);
                tracing::warn!(
                    ?peers,
                    "the senders' windows and the Router disagree: message not sent"
                );
            } else {
                tracing::debug!(%error, "a message with reserved room was refused");
            }
            self.window_changes.push(release);
        }
        self.drain(now);
        sent
    }

    /// Whether the senders' windows track `channel`: an application channel opened with
    /// backpressure (the built-in PEX reactor's channel is the node's own).
    pub(super) fn windowed(&self, channel: u8) -> bool {
        let own = self.pex.is_some() && channel == PEX_CHANNEL;
        !own && self.router.channel_policy(channel) == Some(OverflowPolicy::Backpressure)
    }

    /// The windows' side of a peer update: a peer that comes up gets the next epoch (its
    /// connection's name in the reservations made for it).
    pub(super) fn window_change(&mut self, update: &PeerUpdate) -> WindowChange {
        match update.status {
            PeerStatus::Up => {
                let epoch = self.next_epoch;
                self.next_epoch = epoch.wrapping_add(1);
                self.epochs.insert(update.node_id, epoch);
                let channels = update.channels.iter();
                let channels = channels.filter_map(|&c| u8::try_from(c).ok());
                WindowChange::Up {
                    node: update.node_id,
                    epoch,
                    channels: channels.filter(|&c| self.windowed(c)).collect(),
                }
            }
            PeerStatus::Down => {
                self.epochs.remove(&update.node_id);
                WindowChange::Down(update.node_id)
            }
        }
    }
}
