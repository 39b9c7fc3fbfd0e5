//! One send on a backpressure channel, step by step: which target peers get the message
//! now, which one the sender waits for, and when the send fails. This is the outbound
//! half of the delivery contract (README.md), written once: smol's async `ChannelSender`,
//! mio's blocking `NodeHandle` and its loop-thread `Control` all walk these steps, and
//! differ only in how they wait (a task parks on an event, a thread on a condition
//! variable, the loop thread hands the message back).
//!
//! Call order: [`SendSteps::start`], then [`SendSteps::next`] until [`SendStep::Done`],
//! each time with the same [`SendWindows`] under the driver's lock ([`SendSteps::ready`]
//! first spares the lock when the step needs no look at the windows). After
//! [`SendStep::Wait`] a waiting sender waits for the next change of the windows and calls
//! `next` again; a sender that must not wait stops and hands the message back for
//! [`SendSteps::waiting_for`].

use std::collections::VecDeque;

use super::{Reservation, Reserve, SendWindows};
use crate::router::{SendError, Target};
use crate::NodeId;

/// Why a send to one peer cannot go (a broadcast is never refused: it is owed only to the
/// peers that are there).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SendRefused {
    /// The peer is not connected, or went down while the send waited.
    #[error("peer {0} is not connected")]
    NotConnected(NodeId),
    /// The peer did not advertise the channel.
    #[error("peer {node} did not advertise channel {channel:#04x}")]
    NoChannel {
        /// The peer.
        node: NodeId,
        /// The channel.
        channel: u8,
    },
}

impl From<SendRefused> for SendError {
    fn from(refused: SendRefused) -> Self {
        match refused {
            SendRefused::NotConnected(_) => SendError::NotConnected,
            SendRefused::NoChannel { node, channel } => SendError::NoChannel { node, channel },
        }
    }
}

/// What a sender does next (see the module docs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SendStep {
    /// Hand the message over for this peer, with the room reserved for it
    /// (`Node::send_reserved`).
    HandOver(NodeId, Reservation),
    /// This peer's window is full: wait for the windows to change, then call
    /// [`SendSteps::next`] again.
    Wait(NodeId),
    /// Every target peer has been handed its copy (or, for a broadcast, left meanwhile).
    Done,
}

/// One send's progress over its target peers.
#[derive(Debug)]
pub struct SendSteps {
    target: Target,
    channel: u8,
    len: usize,
    /// The one peer of a send to one peer whose room was reserved at the start (kept out of
    /// `reserved` so the common send allocates nothing).
    first: Option<(NodeId, Reservation)>,
    /// Peers whose room was reserved at the start, not handed over yet.
    reserved: Vec<(NodeId, Reservation)>,
    /// Peers that were full at the start, waited for in turn.
    full: VecDeque<NodeId>,
}

impl SendSteps {
    /// Starts a send of `len` bytes on `channel` to `target`: reserves room for every
    /// target peer that has it. A broadcast goes to every connected peer with the channel.
    ///
    /// # Errors
    /// For a send to one peer: [`SendRefused`] when it is not connected or did not
    /// advertise the channel. Nothing was reserved.
    pub fn start(
        windows: &mut SendWindows,
        target: Target,
        channel: u8,
        len: usize,
    ) -> Result<Self, SendRefused> {
        let mut steps = SendSteps {
            target,
            channel,
            len,
            first: None,
            reserved: Vec::new(),
            full: VecDeque::new(),
        };
        match target {
            Target::Peer(node) => match windows.try_reserve(node, channel, len) {
                Reserve::Reserved(reservation) => steps.first = Some((node, reservation)),
                Reserve::Full => steps.full.push_back(node),
                refused => return Err(refusal(node, channel, refused)),
            },
            Target::Broadcast => {
                let peers: Vec<NodeId> = windows.peers_with(channel).collect();
                for node in peers {
                    match windows.try_reserve(node, channel, len) {
                        Reserve::Reserved(reservation) => steps.reserved.push((node, reservation)),
                        Reserve::Full => steps.full.push_back(node),
                        // Only peers with the channel were listed.
                        Reserve::NotConnected | Reserve::NoChannel => {}
                    }
                }
                // Handed over in the order of the peers (`next` pops from the end).
                steps.reserved.reverse();
            }
        }
        Ok(steps)
    }

    /// The next step. A peer waited for is tried again here: when it has room now, its
    /// step is [`SendStep::HandOver`]; when it went down meanwhile, a broadcast owes it no
    /// copy and goes on.
    ///
    /// # Errors
    /// For a send to one peer that went down (or reconnected without the channel) while
    /// the send waited: as [`SendSteps::start`].
    pub fn next(&mut self, windows: &mut SendWindows) -> Result<SendStep, SendRefused> {
        if let Some(step) = self.ready() {
            return Ok(step);
        }
        while let Some(&node) = self.full.front() {
            match windows.try_reserve(node, self.channel, self.len) {
                Reserve::Full => return Ok(SendStep::Wait(node)),
                Reserve::Reserved(reservation) => {
                    self.full.pop_front();
                    return Ok(SendStep::HandOver(node, reservation));
                }
                _ if self.target == Target::Broadcast => {
                    self.full.pop_front();
                }
                refused => return Err(refusal(node, self.channel, refused)),
            }
        }
        Ok(SendStep::Done)
    }

    /// The next step when it needs no look at the windows: a peer whose room was reserved
    /// at the start ([`SendStep::HandOver`]), or [`SendStep::Done`] when no peer is waited
    /// for. `None`: call [`SendSteps::next`], under the driver's lock. (A send to one peer
    /// with room takes the lock once, at the start.)
    pub fn ready(&mut self) -> Option<SendStep> {
        if let Some((node, reservation)) = self.first.take().or_else(|| self.reserved.pop()) {
            return Some(SendStep::HandOver(node, reservation));
        }
        self.full.is_empty().then_some(SendStep::Done)
    }

    /// The peers still waited for: the message has been handed over for every other
    /// target peer. What a sender that does not wait hands back with the message.
    pub fn waiting_for(self) -> Vec<NodeId> {
        self.full.into()
    }
}

/// The error for a send to `node` that its window refused.
fn refusal(node: NodeId, channel: u8, refused: Reserve) -> SendRefused {
    match refused {
        Reserve::NoChannel => SendRefused::NoChannel { node, channel },
        _ => SendRefused::NotConnected(node),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::router::window::WindowLimits;

    const LIMITS: WindowLimits = WindowLimits {
        messages: 1,
        bytes: 100,
    };

    fn node(n: u8) -> NodeId {
        NodeId::from_bytes([n; 20])
    }

    fn windows() -> SendWindows {
        let mut windows = SendWindows::new(LIMITS);
        windows.peer_up(node(1), 1, [7]);
        windows.peer_up(node(2), 2, [7]);
        windows.peer_up(node(3), 3, [8]);
        windows
    }

    #[test]
    fn a_send_to_one_peer_hands_over_or_waits_until_there_is_room() {
        let mut w = windows();
        let mut steps = SendSteps::start(&mut w, Target::Peer(node(1)), 7, 10).unwrap();
        let reserved = SendStep::HandOver(node(1), Reservation::new(1));
        assert_eq!(steps.next(&mut w), Ok(reserved));
        assert_eq!(steps.next(&mut w), Ok(SendStep::Done));

        let mut steps = SendSteps::start(&mut w, Target::Peer(node(1)), 7, 10).unwrap();
        assert_eq!(steps.next(&mut w), Ok(SendStep::Wait(node(1))));
        assert_eq!(
            steps.next(&mut w),
            Ok(SendStep::Wait(node(1))),
            "still full"
        );
        w.release(node(1), 7, 10);
        assert_eq!(steps.next(&mut w), Ok(reserved));
        assert_eq!(steps.next(&mut w), Ok(SendStep::Done));
    }

    #[test]
    fn a_send_to_one_peer_fails_for_a_missing_peer_or_channel_even_after_waiting() {
        let mut w = windows();
        let refused = SendSteps::start(&mut w, Target::Peer(node(3)), 7, 1).unwrap_err();
        assert_eq!(
            refused,
            SendRefused::NoChannel {
                node: node(3),
                channel: 7
            }
        );
        let refused = SendSteps::start(&mut w, Target::Peer(node(9)), 7, 1).unwrap_err();
        assert_eq!(refused, SendRefused::NotConnected(node(9)));

        w.try_reserve(node(1), 7, 1);
        let mut steps = SendSteps::start(&mut w, Target::Peer(node(1)), 7, 1).unwrap();
        assert_eq!(steps.next(&mut w), Ok(SendStep::Wait(node(1))));
        w.peer_down(node(1));
        assert_eq!(steps.next(&mut w), Err(SendRefused::NotConnected(node(1))));
    }

    #[test]
    fn a_broadcast_hands_over_to_peers_with_room_first_and_skips_peers_that_left() {
        let mut w = windows();
        w.peer_up(node(4), 4, [7]);
        w.try_reserve(node(2), 7, 1);
        w.try_reserve(node(4), 7, 1);
        let mut steps = SendSteps::start(&mut w, Target::Broadcast, 7, 1).unwrap();
        let first = SendStep::HandOver(node(1), Reservation::new(1));
        assert_eq!(steps.next(&mut w), Ok(first), "node 3 lacks the channel");
        assert_eq!(steps.next(&mut w), Ok(SendStep::Wait(node(2))));
        w.peer_down(node(2));
        assert_eq!(steps.next(&mut w), Ok(SendStep::Wait(node(4))));
        assert_eq!(steps.waiting_for(), vec![node(4)]);
    }
}
