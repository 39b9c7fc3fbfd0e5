//! Inbound delivery from the connection tasks. Each connection task decodes the messages of
//! the application's channels and offers them to those channels' bounded receivers itself,
//! with no hop through the router task. A full receiver holds back only its own channel:
//! the connection keeps reading its socket (so pings and pongs go on, and a slow reactor
//! does not make the connection time out) and delivering other channels' messages, holding
//! what waits for the full channel, up to `DriverOptions::inbound_hold_bytes` per
//! connection. Past that budget the connection stops reading until there is room (TCP
//! backpressure towards that peer): nothing taken off the wire is dropped, and the other
//! connections go on.
//!
//! The router still decides who is a peer: a connection holds the application messages that
//! follow its `Authenticated` event (and reads nothing more) until the router task says the
//! peer is routed ([`Inbound::routed`]); if the router refuses the peer, they are dropped
//! with the connection. PEX messages (and any channel the application did not open) go to
//! the router task as before.

use std::collections::{BTreeMap, VecDeque};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use async_channel::{Sender, TrySendError};
use bytes::Bytes;
use tmp2p_core::router::{self, PeerError};
use tmp2p_core::typed::{decode_inbound, ChannelCodec, UndecodableMessage};
use tmp2p_core::NodeId;

use crate::envelope::Envelope;

/// Waits for room in a full receiver and delivers the message it holds; `false` when the
/// receiver was dropped meanwhile.
pub(crate) type WaitForRoom = Pin<Box<dyn Future<Output = bool> + Send>>;

/// The outcome of offering an inbound envelope to its channel.
pub(crate) enum Delivery {
    Delivered,
    Undecodable(UndecodableMessage),
    /// The receiver is full: awaiting the future delivers the (decoded) message.
    Full(WaitForRoom),
    /// The application dropped the receiver.
    Closed,
}

/// Decodes an inbound envelope and offers it to its channel's receiver.
pub(crate) type Deliverer = Box<dyn Fn(router::Envelope) -> Delivery + Send + Sync>;

/// The application's channels, shared by every connection task.
pub(crate) type AppChannels = Arc<BTreeMap<u8, Deliverer>>;

/// The deliverer of one application channel: decodes with `codec` and offers the typed
/// envelope to `inbound` (the receiver the application holds).
pub(crate) fn deliverer<C: ChannelCodec>(
    codec: Arc<C>,
    inbound: Sender<Envelope<C::Message>>,
) -> Deliverer {
    Box::new(move |envelope: router::Envelope| {
        let Some(from) = envelope.from else {
            return Delivery::Delivered;
        };
        match decode_inbound(&*codec, from, envelope.message) {
            Ok(message) => match inbound.try_send(Envelope {
                from: Some(from),
                to: None,
                channel: envelope.channel,
                message,
            }) {
                Ok(()) => Delivery::Delivered,
                Err(TrySendError::Full(envelope)) => {
                    let inbound = inbound.clone();
                    Delivery::Full(Box::pin(
                        async move { inbound.send(envelope).await.is_ok() },
                    ))
                }
                Err(TrySendError::Closed(_)) => Delivery::Closed,
            },
            Err(error) => Delivery::Undecodable(error),
        }
    })
}

/// One connection's inbound side: held messages, the delivery waiting for room, and the
/// complaints to pass to the router.
pub(crate) struct Inbound {
    channels: AppChannels,
    /// The routed peer, once the router task said so.
    peer: Option<NodeId>,
    /// Messages not yet delivered, in arrival order.
    held: VecDeque<(u8, Bytes)>,
    /// Held messages of the channel waiting for room (those stay put: a pass over `held`
    /// is needed only when others are held too).
    held_for_waiting: usize,
    /// Payload bytes held, including the message waiting for room.
    held_bytes: usize,
    /// `DriverOptions::inbound_hold_bytes`: past it the socket is not read.
    hold_limit: usize,
    /// The delivery waiting for room in a full receiver: its channel, its size, and the
    /// future that delivers it.
    waiting: Option<(u8, usize, WaitForRoom)>,
    /// Set after an undecodable message: the peer is being evicted, nothing more of it
    /// reaches the application.
    poisoned: bool,
}

impl Inbound {
    /// The inbound side of a new connection.
    pub(crate) fn new(channels: AppChannels, hold_limit: usize) -> Self {
        Inbound {
            channels,
            peer: None,
            held: VecDeque::new(),
            held_for_waiting: 0,
            held_bytes: 0,
            hold_limit,
            waiting: None,
            poisoned: false,
        }
    }

    /// Takes a message if its channel is an application channel; otherwise hands it back
    /// (it is for the router task).
    pub(crate) fn take(&mut self, channel: u8, message: Bytes) -> Result<(), Bytes> {
        if !self.channels.contains_key(&channel) {
            return Err(message);
        }
        if !self.poisoned {
            self.held_bytes = self.held_bytes.saturating_add(message.len());
            if self.waiting.as_ref().is_some_and(|(c, _, _)| *c == channel) {
                self.held_for_waiting += 1;
            }
            self.held.push_back((channel, message));
        }
        Ok(())
    }

    /// The router routed the connection to `peer`: held messages may go out.
    pub(crate) fn routed(&mut self, peer: NodeId) {
        self.peer = Some(peer);
    }

    /// Whether the socket must not be read: messages wait for the router's verdict, or
    /// more than the hold budget waits for room in full receivers.
    pub(crate) fn is_blocked(&self) -> bool {
        let unrouted = self.peer.is_none() && !self.held.is_empty();
        unrouted || self.held_bytes > self.hold_limit
    }

    /// Whether anything is left to deliver.
    pub(crate) fn is_empty(&self) -> bool {
        self.held.is_empty() && self.waiting.is_none()
    }

    /// Whether a delivery waits for room (held messages without one wait for the router).
    pub(crate) fn waits_for_room(&self) -> bool {
        self.waiting.is_some()
    }

    /// Delivers held messages, in order per channel; a channel whose receiver is full keeps
    /// its messages (the first waits for room) while the other channels' go on. Returns the
    /// peer error to report when a message did not decode.
    pub(crate) fn deliver(&mut self) -> Option<PeerError> {
        let peer = self.peer?;
        if self.held.len() == self.held_for_waiting {
            // Everything held waits for the full channel: nothing to do until it has room.
            return None;
        }
        // Only while a channel is full are messages kept back (in a queue of their own,
        // so the common path reuses `held`'s allocation).
        let mut kept = VecDeque::new();
        while let Some((channel, message)) = self.held.pop_front() {
            let full = self.waiting.as_ref().map(|(c, _, _)| *c);
            if full == Some(channel) {
                kept.push_back((channel, message));
                continue;
            }
            let len = message.len();
            let Some(deliverer) = self.channels.get(&channel) else {
                self.held_bytes = self.held_bytes.saturating_sub(len);
                continue;
            };
            match deliverer(router::Envelope {
                from: Some(peer),
                to: None,
                channel,
                message,
            }) {
                Delivery::Delivered => self.held_bytes = self.held_bytes.saturating_sub(len),
                Delivery::Full(wait) => {
                    self.waiting = Some((channel, len, wait));
                    self.held_for_waiting = 0;
                }
                Delivery::Closed => {
                    self.held_bytes = self.held_bytes.saturating_sub(len);
                    tracing::debug!(channel, "inbound receiver dropped: message dropped");
                }
                Delivery::Undecodable(error) => {
                    self.poisoned = true;
                    self.held.clear();
                    self.held_for_waiting = 0;
                    self.held_bytes = self.waiting.as_ref().map_or(0, |(_, len, _)| *len);
                    return Some(PeerError::from(error));
                }
            }
        }
        if !kept.is_empty() {
            // What came after the kept messages (of other channels) was delivered: the
            // kept ones are all that is left.
            self.held = kept;
        }
        self.held_for_waiting = self.held.len();
        None
    }

    /// Polls the delivery waiting for room: ready once it is done (delivered or the
    /// receiver dropped); pending (forever) when nothing waits.
    pub(crate) fn poll_room(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        let Some((_, len, waiting)) = &mut self.waiting else {
            return Poll::Pending;
        };
        match waiting.as_mut().poll(cx) {
            Poll::Ready(delivered) => {
                if !delivered {
                    tracing::debug!("inbound receiver dropped: message dropped");
                }
                self.held_bytes = self.held_bytes.saturating_sub(*len);
                self.waiting = None;
                self.held_for_waiting = 0;
                Poll::Ready(())
            }
            Poll::Pending => Poll::Pending,
        }
    }

    /// Drops what is left (the connection is gone before it could be delivered); returns
    /// how many messages that was.
    pub(crate) fn discard(&mut self) -> usize {
        let count = self.held.len() + usize::from(self.waiting.is_some());
        self.held.clear();
        self.held_for_waiting = 0;
        self.held_bytes = 0;
        self.waiting = None;
        count
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tmp2p_core::typed::{ProtoCodec, RawCodec};
    use tmp2p_proto::echo::EchoMessage;

    const RAW: u8 = 0x20;
    const TYPED: u8 = 0x21;
    const PEER: NodeId = NodeId::from_bytes([9; 20]);

    /// An inbound side with a raw channel of `capacity` and a protobuf channel.
    #[allow(clippy::type_complexity)]
    fn inbound(
        capacity: usize,
    ) -> (
        Inbound,
        async_channel::Receiver<Envelope<Bytes>>,
        async_channel::Receiver<Envelope<EchoMessage>>,
    ) {
        let (raw_tx, raw) = async_channel::bounded(capacity);
        let (typed_tx, typed) = async_channel::bounded(capacity);
        let mut channels = BTreeMap::new();
        channels.insert(RAW, deliverer(Arc::new(RawCodec), raw_tx));
        channels.insert(
            TYPED,
            deliverer(Arc::new(ProtoCodec::<EchoMessage>::new()), typed_tx),
        );
        // A hold budget of 8 bytes: three 3-byte messages pass it.
        (Inbound::new(Arc::new(channels), 8), raw, typed)
    }

    fn bytes(n: u8) -> Bytes {
        Bytes::from(vec![n; 3])
    }

    fn drain(rx: &async_channel::Receiver<Envelope<Bytes>>) -> Vec<u8> {
        std::iter::from_fn(|| rx.try_recv().ok())
            .map(|e| {
                assert_eq!(e.from, Some(PEER));
                e.message[0]
            })
            .collect()
    }

    #[test]
    fn messages_wait_for_the_routing_verdict_and_other_channels_go_to_the_router() {
        let (mut inbound, raw, _typed) = inbound(8);
        assert_eq!(
            inbound.take(0x00, bytes(0)),
            Err(bytes(0)),
            "PEX is the router's"
        );
        inbound.take(RAW, bytes(1)).unwrap();
        inbound.take(RAW, bytes(2)).unwrap();
        assert!(inbound.deliver().is_none());
        assert!(raw.is_empty(), "nothing before the router routed the peer");
        assert!(inbound.is_blocked(), "the socket is not read meanwhile");
        inbound.routed(PEER);
        assert!(inbound.deliver().is_none());
        assert_eq!(drain(&raw), vec![1, 2]);
        assert!(!inbound.is_blocked());
    }

    #[test]
    fn a_full_channel_blocks_until_there_is_room_and_loses_nothing() {
        let (mut inbound, raw, _typed) = inbound(2);
        inbound.routed(PEER);
        for n in 0..5 {
            inbound.take(RAW, bytes(n)).unwrap();
        }
        assert!(inbound.deliver().is_none());
        assert!(inbound.waits_for_room());
        assert!(
            inbound.is_blocked(),
            "3 messages of 3 bytes wait: over the budget of 8"
        );
        let pending = futures_lite::future::block_on(async {
            // Pending while the channel is full.
            futures_lite::future::poll_once(futures_lite::future::poll_fn(|cx| {
                inbound.poll_room(cx)
            }))
            .await
        });
        assert!(pending.is_none());
        let mut got = drain(&raw);
        while got.len() < 5 {
            futures_lite::future::block_on(futures_lite::future::poll_fn(|cx| {
                inbound.poll_room(cx)
            }));
            assert!(inbound.deliver().is_none());
            got.extend(drain(&raw));
        }
        assert_eq!(got, vec![0, 1, 2, 3, 4], "every message, once, in order");
        assert!(!inbound.is_blocked());
    }

    #[test]
    fn a_full_channel_holds_only_its_own_messages_and_reading_goes_on_within_the_budget() {
        let (mut inbound, raw, typed) = inbound(1);
        inbound.routed(PEER);
        inbound.take(RAW, bytes(0)).unwrap();
        inbound.take(RAW, bytes(1)).unwrap();
        let ping = EchoMessage::default();
        let codec = ProtoCodec::<EchoMessage>::new();
        inbound.take(TYPED, codec.encode(&ping)).unwrap();
        assert!(inbound.deliver().is_none());
        assert_eq!(drain(&raw), vec![0], "the raw channel took one and is full");
        assert!(inbound.waits_for_room());
        assert_eq!(typed.len(), 1, "the other channel is not held back");
        assert!(
            !inbound.is_blocked(),
            "3 bytes wait: the socket is still read"
        );
        inbound.take(RAW, bytes(2)).unwrap();
        inbound.take(RAW, bytes(3)).unwrap();
        assert!(inbound.deliver().is_none());
        assert!(inbound.is_blocked(), "9 bytes wait: past the budget of 8");
    }

    #[test]
    fn an_undecodable_message_is_one_fatal_error_and_nothing_after_it_is_delivered() {
        let (mut inbound, raw, typed) = inbound(8);
        inbound.routed(PEER);
        inbound
            .take(TYPED, Bytes::from_static(&[0xff, 0xff]))
            .unwrap();
        inbound.take(RAW, bytes(1)).unwrap();
        let error = inbound.deliver().unwrap();
        assert_eq!(error.node, PEER);
        assert!(error.fatal);
        assert!(typed.is_empty());
        inbound.take(RAW, bytes(2)).unwrap();
        assert!(inbound.deliver().is_none());
        assert!(
            raw.is_empty(),
            "the evicted peer's later messages are dropped"
        );
    }

    #[test]
    fn discard_drops_what_is_held_and_waiting() {
        let (mut inbound, _raw, _typed) = inbound(1);
        inbound.routed(PEER);
        for n in 0..4 {
            inbound.take(RAW, bytes(n)).unwrap();
        }
        inbound.deliver();
        // One delivered, one waiting for room, two held.
        assert_eq!(inbound.discard(), 3);
        assert!(inbound.is_empty());
    }
}
