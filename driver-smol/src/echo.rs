//! Two reactors as library examples: the ADR 062 echo reactor ([`run_echo`]: a `Ping`
//! is answered with a `Pong` carrying the same payload) and a raw echo reactor
//! ([`run_raw_echo`]: every message is sent back to its sender on the same channel).

use bytes::Bytes;
use tmp2p_core::router::Target;
use tmp2p_core::typed::echo::EchoInner;
use tmp2p_proto::echo::Pong;

use crate::envelope::{Channel, Envelope};
use crate::error::DriverError;

/// Answers every `Ping` on `channel` with a `Pong` of the same payload, to its sender.
/// `Pong`s are ignored. Returns when the node stops.
pub async fn run_echo(channel: Channel<EchoInner>) {
    while let Ok(envelope) = channel.inbound.recv().await {
        let (Some(from), EchoInner::Ping(ping)) = (envelope.from, envelope.message) else {
            continue;
        };
        let reply = EchoInner::Pong(Pong {
            payload: ping.payload,
        });
        let sent = channel
            .outbound
            .send(Envelope {
                from: None,
                to: Some(Target::Peer(from)),
                channel: channel.id,
                message: reply,
            })
            .await;
        if !keeps_echoing(sent) {
            return;
        }
    }
}

/// Sends every message received on `channel` back to its sender. Returns when the node
/// stops.
pub async fn run_raw_echo(channel: Channel<Bytes>) {
    while let Ok(envelope) = channel.inbound.recv().await {
        let Some(from) = envelope.from else {
            continue;
        };
        let sent = channel
            .outbound
            .send(Envelope::to_peer(from, envelope.message))
            .await;
        if !keeps_echoing(sent) {
            return;
        }
    }
}

/// Whether an echo reactor goes on after a send: only a stopped node ends it (a peer that
/// left before its echo went out costs that echo alone).
fn keeps_echoing(sent: Result<(), DriverError>) -> bool {
    match sent {
        Ok(()) => true,
        Err(DriverError::Stopped) => false,
        Err(error) => {
            tracing::debug!(%error, "echo not sent");
            true
        }
    }
}
