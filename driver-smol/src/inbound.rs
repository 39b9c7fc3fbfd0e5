//! Inbound delivery from the connection tasks: each connection task hands its link's
//! received messages (core's `Link::poll_delivery`, under core's one inbound rule) to the
//! application's bounded receivers itself, with no hop through the router task, decoding
//! them on the way. A full receiver holds back only its own channel: the message that
//! found it full waits here for room (the link delivers nothing more of that channel
//! meanwhile), and the link goes on reading and delivering the other channels' messages
//! up to `NodeConfig::inbound_hold_bytes`.

use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use async_channel::{Sender, TrySendError};
use tmp2p_core::node::Link;
use tmp2p_core::router::{self, PeerError};
use tmp2p_core::typed::{decode_inbound, ChannelCodec, UndecodableMessage};

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

/// One connection's deliveries that wait for room in full receivers.
pub(crate) struct Inbound {
    channels: AppChannels,
    /// Per full channel, the future that delivers the message that found it full.
    waiting: Vec<(u8, WaitForRoom)>,
}

impl Inbound {
    /// The inbound side of a new connection.
    pub(crate) fn new(channels: AppChannels) -> Self {
        Inbound {
            channels,
            waiting: Vec::new(),
        }
    }

    /// Hands every message the link can deliver now to its receiver. Returns the peer error
    /// to report when one did not decode (the link then discards the peer's messages).
    pub(crate) fn deliver(&mut self, link: &mut Link) -> Option<PeerError> {
        while let Some(envelope) = link.poll_delivery() {
            let channel = envelope.channel;
            let Some(deliverer) = self.channels.get(&channel) else {
                tracing::debug!(channel, "message for no receiver: dropped");
                continue;
            };
            match deliverer(envelope) {
                Delivery::Delivered => {}
                Delivery::Full(wait) => {
                    link.channel_full(channel);
                    self.waiting.push((channel, wait));
                }
                Delivery::Closed => {
                    tracing::debug!(channel, "inbound receiver dropped: message dropped");
                }
                Delivery::Undecodable(error) => {
                    link.discard_inbound();
                    return Some(PeerError::from(error));
                }
            }
        }
        None
    }

    /// Polls the deliveries waiting for room: the channel of one that completed (its
    /// message delivered, or its receiver dropped); pending (forever) when none waits.
    pub(crate) fn poll_room(&mut self, cx: &mut Context<'_>) -> Poll<u8> {
        let done = self
            .waiting
            .iter_mut()
            .position(|(_, wait)| wait.as_mut().poll(cx).is_ready());
        match done {
            Some(index) => {
                let (channel, _) = self.waiting.swap_remove(index);
                Poll::Ready(channel)
            }
            None => Poll::Pending,
        }
    }

    /// Drops the deliveries waiting for room; returns how many.
    pub(crate) fn discard(&mut self) -> usize {
        std::mem::take(&mut self.waiting).len()
    }
}
