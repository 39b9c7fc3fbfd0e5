//! The built-in PEX reactor inside the node machine: what it must be told (each peer's
//! NodeInfo and socket IP, held from the connection's `Authenticated` event until the
//! peer's Up update; PEX-channel messages; timers) and what its outputs become (Router
//! calls, and [`PexEvent`]s for whoever watches the node).

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::time::Instant;

use bytes::Bytes;
use rand_core::RngCore;

use crate::id::NodeId;
use crate::node_info::NodeInfo;
use crate::peer_manager::{PeerStatus, PeerUpdate};
use crate::pex::{PexOutput, PexPeerError, PexReactor};
use crate::router::{PeerError, Router};

/// What the PEX reactor did, for logs and metrics (its messages are not the application's).
#[derive(Debug, Clone, PartialEq)]
pub enum PexEvent {
    /// A peer broke a PEX rule; it was reported (fatal rules disconnect it).
    PeerError(PexPeerError),
    /// Seed mode: a peer was disconnected after its answer.
    Disconnected(NodeId),
    /// A peer's answer passed every check: this many addresses were offered to the
    /// PeerManager.
    Learned {
        /// The peer that answered.
        from: NodeId,
        /// Addresses offered.
        count: usize,
    },
}

/// The reactor and the per-peer facts it gets once the peer is Up.
pub(super) struct PexHost {
    reactor: PexReactor,
    pending: BTreeMap<NodeId, (Option<IpAddr>, NodeInfo)>,
    rng: Box<dyn RngCore + Send>,
}

impl PexHost {
    pub(super) fn new(reactor: PexReactor, rng: Box<dyn RngCore + Send>) -> Self {
        PexHost {
            reactor,
            pending: BTreeMap::new(),
            rng,
        }
    }

    /// A connection authenticated; the peer's Up update follows if the Router keeps it.
    pub(super) fn on_authenticated(&mut self, info: &NodeInfo, ip: Option<IpAddr>) {
        self.pending.insert(info.node_id, (ip, info.clone()));
    }

    pub(super) fn on_peer_update(
        &mut self,
        now: Instant,
        update: &PeerUpdate,
        router: &mut Router,
    ) {
        self.reactor.handle_peer_update(now, update, router);
        let pending = self.pending.remove(&update.node_id);
        if let (PeerStatus::Up, Some((ip, info))) = (update.status, pending) {
            if let Some(ip) = ip {
                self.reactor.set_peer_ip(update.node_id, ip);
            }
            if let Some(address) = self.reactor.handle_peer_info(now, &info, router) {
                tracing::debug!(peer = %update.node_id, %address, "inbound peer's listen address offered");
            }
        }
    }

    pub(super) fn on_message(
        &mut self,
        now: Instant,
        from: NodeId,
        message: Bytes,
        router: &mut Router,
    ) {
        router.counters().pex_message(&message, false);
        self.reactor
            .handle_message(now, from, message, router, &mut self.rng);
    }

    pub(super) fn poll_timeout(&self) -> Option<Instant> {
        self.reactor.poll_timeout()
    }

    pub(super) fn handle_timeout(&mut self, now: Instant, router: &mut Router) {
        if self.reactor.poll_timeout().is_some_and(|at| at <= now) {
            self.reactor.handle_timeout(now, router);
        }
    }

    /// Carries out the reactor's outputs on `router`; returns the first event to report,
    /// or `None` when no output is left.
    pub(super) fn carry_out(
        &mut self,
        now: Instant,
        router: &mut Router,
    ) -> Option<Option<PexEvent>> {
        let output = self.reactor.poll_output()?;
        Some(match output {
            PexOutput::Send(envelope) => {
                let message = envelope.message.clone();
                // One request or answer per peer at a time: far below a peer's window, so
                // a refusal means the peer is gone (the Router counted it).
                match router.send(envelope) {
                    Ok(_) => router.counters().pex_message(&message, true),
                    Err(error) => tracing::debug!(%error, "PEX message not sent"),
                }
                None
            }
            PexOutput::PeerError(error) => {
                tracing::debug!(peer = %error.node, error = %error.error, "PEX peer error");
                router.report_error(now, PeerError::from(error.clone()));
                Some(PexEvent::PeerError(error))
            }
            PexOutput::Disconnect { node } => {
                if let Err(error) = router.disconnect(node) {
                    tracing::debug!(peer = %node, %error, "PEX disconnect of a gone peer");
                }
                Some(PexEvent::Disconnected(node))
            }
            PexOutput::Learned { from, addresses } => {
                tracing::debug!(peer = %from, count = addresses.len(), "PEX addresses learned");
                Some(PexEvent::Learned {
                    from,
                    count: addresses.len(),
                })
            }
        })
    }
}
