//! Reactors inside the simulation: what runs on a node's channel when a message is
//! delivered, and (optionally) when the reactor's own timer is due. A reactor is a plain
//! closure `FnMut(&mut ReactorCtx, &Envelope)` or a small struct; [`TypedReactor`] puts a
//! `tmp2p_core::typed` codec in front of a closure, so an undecodable message becomes a
//! `PeerError` against its sender. A reactor's timer joins its node's timers, so the
//! engine's hot-loop check also catches a reactor that stays due without doing anything.

use std::time::Duration;

use bytes::Bytes;
use tmp2p_core::router::{Envelope, PeerError};
use tmp2p_core::typed::{decode_inbound, ChannelCodec};
use tmp2p_core::NodeId;

/// What a reactor sees and may do while it handles one message.
#[derive(Debug)]
pub struct ReactorCtx {
    /// Virtual time since the start of the simulation.
    pub now: Duration,
    /// The node's index in the simulation.
    pub node: usize,
    /// The node's id.
    pub node_id: NodeId,
    /// Envelopes to hand to the node's router after the call.
    pub sends: Vec<Envelope>,
    /// Complaints to hand to the node's router after the call.
    pub errors: Vec<PeerError>,
}

impl ReactorCtx {
    /// Sends `message` on `channel` to one peer.
    pub fn send_to(&mut self, peer: NodeId, channel: u8, message: Bytes) {
        self.sends.push(Envelope::to_peer(peer, channel, message));
    }

    /// Sends `message` on `channel` to every connected peer that has the channel.
    pub fn broadcast(&mut self, channel: u8, message: Bytes) {
        self.sends.push(Envelope::broadcast(channel, message));
    }

    /// Reports `peer` to the router.
    pub fn report(&mut self, peer: NodeId, reason: impl Into<String>, fatal: bool) {
        self.errors.push(PeerError {
            node: peer,
            reason: reason.into(),
            fatal,
        });
    }
}

/// Handles the messages delivered on one channel of one node.
pub trait Reactor: Send {
    /// One inbound envelope (`from` is always set).
    fn on_message(&mut self, ctx: &mut ReactorCtx, envelope: &Envelope);

    /// When the reactor's timer is due next, as virtual time since the start of the
    /// simulation; `None` (the default): no timer. Re-read after every call.
    fn next_timer(&self) -> Option<Duration> {
        None
    }

    /// The timer is due (`ctx.now` ≥ [`Reactor::next_timer`]); the node runs.
    fn on_timer(&mut self, ctx: &mut ReactorCtx) {
        let _ = ctx;
    }
}

impl<F> Reactor for F
where
    F: FnMut(&mut ReactorCtx, &Envelope) + Send,
{
    fn on_message(&mut self, ctx: &mut ReactorCtx, envelope: &Envelope) {
        self(ctx, envelope)
    }
}

/// A reactor over a typed channel: decodes with `codec`, hands the typed message to the
/// closure, and reports a fatal `PeerError` against the sender of undecodable bytes.
pub struct TypedReactor<C: ChannelCodec, F> {
    codec: C,
    handler: F,
}

impl<C, F> TypedReactor<C, F>
where
    C: ChannelCodec,
    F: FnMut(&mut ReactorCtx, NodeId, C::Message) + Send,
{
    /// A reactor decoding with `codec` and handling with `handler`.
    pub fn new(codec: C, handler: F) -> Self {
        TypedReactor { codec, handler }
    }

    /// The codec, to encode replies.
    pub fn codec(&self) -> &C {
        &self.codec
    }
}

impl<C, F> Reactor for TypedReactor<C, F>
where
    C: ChannelCodec,
    F: FnMut(&mut ReactorCtx, NodeId, C::Message) + Send,
{
    fn on_message(&mut self, ctx: &mut ReactorCtx, envelope: &Envelope) {
        let Some(from) = envelope.from else {
            return;
        };
        match decode_inbound(&self.codec, from, envelope.message.clone()) {
            Ok(message) => (self.handler)(ctx, from, message),
            Err(undecodable) => ctx.report(from, undecodable.to_string(), true),
        }
    }
}
