//! Send windows: how much of one channel's traffic to one peer may wait before a send on a
//! [`OverflowPolicy::Backpressure`](super::OverflowPolicy::Backpressure) channel must wait.
//!
//! [`SendWindow`] is the one admission rule, used by the Router for what it holds and by
//! the drivers for what their senders have handed over. [`SendWindows`] is plain data for
//! a driver whose senders run on other threads or tasks: it mirrors, per connected peer and
//! channel, what those senders have in flight, so a sender can wait *before* it hands a
//! message over and the Router never has to refuse one. A driver wraps it in its own lock
//! and wake-up primitive (core owns no lock); [`SendSteps`] walks one send over them.

mod steps;

pub use steps::{SendRefused, SendStep, SendSteps};

use std::collections::BTreeMap;

use crate::id::NodeId;

/// The bounds of one peer's queue for one channel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WindowLimits {
    /// Messages that may wait (> 0).
    pub messages: usize,
    /// Payload bytes that may wait (> 0); one message is always admitted into an empty
    /// window, whatever its size (the MConnection's own message limit bounds it).
    pub bytes: usize,
}

/// What one peer's channel holds now, against its [`WindowLimits`], and whether a message
/// was refused since it last had room (so room can be announced exactly once).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SendWindow {
    /// Messages held.
    pub messages: usize,
    /// Payload bytes held.
    pub bytes: usize,
    /// A message was refused and no room was announced since.
    pub refused: bool,
}

impl SendWindow {
    /// Whether a message of `len` bytes fits.
    pub fn admits(&self, limits: WindowLimits, len: usize) -> bool {
        self.messages < limits.messages
            && (self.messages == 0 || self.bytes.saturating_add(len) <= limits.bytes)
    }

    /// Counts a message of `len` bytes in if it fits; otherwise marks the window refused
    /// and returns `false`.
    pub fn try_add(&mut self, limits: WindowLimits, len: usize) -> bool {
        if !self.admits(limits, len) {
            self.refused = true;
            return false;
        }
        self.messages = self.messages.saturating_add(1);
        self.bytes = self.bytes.saturating_add(len);
        true
    }

    /// Counts a message of `len` bytes out. Returns `true` when the window had refused a
    /// message and has room again: the moment to tell the refused sender to retry.
    pub fn remove(&mut self, limits: WindowLimits, len: usize) -> bool {
        self.messages = self.messages.saturating_sub(1);
        self.bytes = self.bytes.saturating_sub(len);
        let writable = self.refused && self.admits(limits, 0);
        if writable {
            self.refused = false;
        }
        writable
    }
}

/// A change the senders' [`SendWindows`] must follow, made by the node machine in the
/// order it happened (`NodeOutput::Windows`): a driver applies each with
/// [`SendWindows::apply`] before it tells the application of the peer updates that follow.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WindowChange {
    /// A peer came up with these application backpressure channels (windows start empty);
    /// `epoch` names this connection of the peer in the [`Reservation`]s made for it.
    Up {
        /// The peer.
        node: NodeId,
        /// Names the peer's connection (the node machine counts them).
        epoch: u64,
        /// Its application backpressure channels.
        channels: Vec<u8>,
    },
    /// A peer went down: its windows are gone.
    Down(NodeId),
    /// A message of this many bytes to the peer on the channel left the Router for its
    /// connection, or a reserved one was refused: its room is free again.
    Released(NodeId, u8, usize),
}

/// Room reserved in one peer's window, to hand over with the message
/// (`Node::send_reserved`): it names the peer's connection it was reserved against, so a
/// message whose peer reconnected meanwhile is not counted against the new connection's
/// window, which never counted it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Reservation {
    epoch: u64,
}

impl Reservation {
    /// The reservation of a window of connection `epoch` (see [`WindowChange::Up`]).
    pub fn new(epoch: u64) -> Self {
        Reservation { epoch }
    }

    /// The connection of the peer it was reserved against.
    pub fn epoch(self) -> u64 {
        self.epoch
    }
}

/// What [`SendWindows::try_reserve`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reserve {
    /// Room was reserved: hand the message over with the reservation.
    Reserved(Reservation),
    /// The window is full: wait for a release.
    Full,
    /// The peer is not connected (or went down).
    NotConnected,
    /// The peer did not advertise the channel.
    NoChannel,
}

/// Per connected peer and channel, what senders have in flight (see the module docs).
#[derive(Debug, Clone)]
pub struct SendWindows {
    limits: WindowLimits,
    peers: BTreeMap<NodeId, PeerWindows>,
}

/// One connected peer's windows.
#[derive(Debug, Clone)]
struct PeerWindows {
    epoch: u64,
    channels: BTreeMap<u8, SendWindow>,
}

impl SendWindows {
    /// Empty windows, each bounded by `limits`.
    pub fn new(limits: WindowLimits) -> Self {
        SendWindows {
            limits,
            peers: BTreeMap::new(),
        }
    }

    /// A peer came up on connection `epoch` with these channels (its windows start empty).
    pub fn peer_up(&mut self, node: NodeId, epoch: u64, channels: impl IntoIterator<Item = u8>) {
        let channels = channels
            .into_iter()
            .map(|c| (c, SendWindow::default()))
            .collect();
        self.peers.insert(node, PeerWindows { epoch, channels });
    }

    /// A peer went down: its windows are gone, and waiting senders learn it on their next
    /// [`SendWindows::try_reserve`].
    pub fn peer_down(&mut self, node: NodeId) {
        self.peers.remove(&node);
    }

    /// Whether `node` is connected here (it came up and did not go down since).
    pub fn is_up(&self, node: NodeId) -> bool {
        self.peers.contains_key(&node)
    }

    /// Connected peers that advertised `channel`.
    pub fn peers_with(&self, channel: u8) -> impl Iterator<Item = NodeId> + '_ {
        self.peers
            .iter()
            .filter(move |(_, windows)| windows.channels.contains_key(&channel))
            .map(|(node, _)| *node)
    }

    /// Reserves room for a message of `len` bytes to `node` on `channel`.
    pub fn try_reserve(&mut self, node: NodeId, channel: u8, len: usize) -> Reserve {
        let Some(windows) = self.peers.get_mut(&node) else {
            return Reserve::NotConnected;
        };
        let Some(window) = windows.channels.get_mut(&channel) else {
            return Reserve::NoChannel;
        };
        if window.try_add(self.limits, len) {
            Reserve::Reserved(Reservation::new(windows.epoch))
        } else {
            Reserve::Full
        }
    }

    /// Follows one change of the node machine. Returns the peer and channel whose refused
    /// reservation has room now (see [`SendWindows::release`]).
    pub fn apply(&mut self, change: WindowChange) -> Option<(NodeId, u8)> {
        match change {
            WindowChange::Up {
                node,
                epoch,
                channels,
            } => self.peer_up(node, epoch, channels),
            WindowChange::Down(node) => self.peer_down(node),
            WindowChange::Released(node, channel, len) => {
                return self.release(node, channel, len).then_some((node, channel));
            }
        }
        None
    }

    /// A message of `len` bytes to `node` on `channel` left the Router for its connection
    /// (or was refused there): its room is free again. Returns `true` when a reservation
    /// had been refused and there is room now (see [`SendWindow::remove`]).
    pub fn release(&mut self, node: NodeId, channel: u8, len: usize) -> bool {
        self.peers
            .get_mut(&node)
            .and_then(|windows| windows.channels.get_mut(&channel))
            .is_some_and(|window| window.remove(self.limits, len))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A reservation against node 1's connection 1.
    const RESERVED: Reserve = Reserve::Reserved(Reservation { epoch: 1 });

    const LIMITS: WindowLimits = WindowLimits {
        messages: 2,
        bytes: 100,
    };

    fn node(n: u8) -> NodeId {
        NodeId::from_bytes([n; 20])
    }

    #[test]
    fn a_window_admits_up_to_its_message_and_byte_bounds() {
        let mut w = SendWindow::default();
        assert!(w.admits(LIMITS, 1_000), "an empty window takes any size");
        assert!(w.try_add(LIMITS, 60));
        assert!(!w.try_add(LIMITS, 41), "60 + 41 bytes is over 100");
        assert!(w.try_add(LIMITS, 40));
        assert!(!w.try_add(LIMITS, 0), "two messages is the bound");
        assert!(
            w.remove(LIMITS, 60),
            "room again after a refusal: announce it"
        );
        assert!(!w.remove(LIMITS, 40), "announced once");
        assert!(w.admits(LIMITS, 60));
    }

    #[test]
    fn reservations_follow_peers_and_channels() {
        let mut windows = SendWindows::new(LIMITS);
        assert_eq!(windows.try_reserve(node(1), 7, 1), Reserve::NotConnected);
        windows.peer_up(node(1), 1, [7]);
        assert_eq!(windows.try_reserve(node(1), 8, 1), Reserve::NoChannel);
        assert_eq!(windows.try_reserve(node(1), 7, 1), RESERVED);
        assert_eq!(windows.try_reserve(node(1), 7, 1), RESERVED);
        assert_eq!(windows.try_reserve(node(1), 7, 1), Reserve::Full);
        assert!(windows.release(node(1), 7, 1));
        assert_eq!(windows.try_reserve(node(1), 7, 1), RESERVED);
        assert_eq!(windows.peers_with(7).collect::<Vec<_>>(), vec![node(1)]);
        windows.peer_down(node(1));
        assert_eq!(windows.try_reserve(node(1), 7, 1), Reserve::NotConnected);
        assert_eq!(windows.peers_with(7).count(), 0);
    }

    #[test]
    fn changes_apply_in_order_and_name_the_window_that_has_room_again() {
        let mut windows = SendWindows::new(LIMITS);
        assert_eq!(
            windows.apply(WindowChange::Up {
                node: node(1),
                epoch: 1,
                channels: vec![7],
            }),
            None
        );
        for _ in 0..2 {
            assert_eq!(windows.try_reserve(node(1), 7, 10), RESERVED);
        }
        assert_eq!(windows.try_reserve(node(1), 7, 10), Reserve::Full);
        let released = WindowChange::Released(node(1), 7, 10);
        assert_eq!(windows.apply(released.clone()), Some((node(1), 7)));
        assert_eq!(windows.apply(released), None, "room is announced once");
        assert_eq!(windows.apply(WindowChange::Down(node(1))), None);
        assert_eq!(windows.try_reserve(node(1), 7, 10), Reserve::NotConnected);
    }
}
