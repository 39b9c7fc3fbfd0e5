//! PEX inside the simulation: a node given a [`PexRole`] with [`Sim::enable_pex`] runs,
//! in every incarnation, either the real sans-IO [`PexReactor`] on channel 0x00 or a
//! flooder that sends `PexRequest`s on a fixed period (a misbehaving peer).
//!
//! The engine is the reactor's driver, in the call order of `tmp2p_core::pex`'s module
//! docs (as `driver-smol`'s `PexDriver` does it): each connection's `Authenticated`
//! node info and its socket IP are held until the peer's Up update, then given with
//! `handle_peer_update`, `set_peer_ip` and `handle_peer_info`; channel-0x00 deliveries
//! go to `handle_message` (not to the node's inbox); the reactor's timer joins the node's
//! timers; its outputs are carried out on the Router (`Send` → `Router::send`,
//! `PeerError` → `Router::report_error`, `Disconnect` → `Router::disconnect`) and logged
//! in the node's [`PexLog`].

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::time::{Duration, Instant};

use bytes::Bytes;
use rand_chacha::rand_core::SeedableRng;
use rand_chacha::ChaCha20Rng;
use tmp2p_core::node_info::NodeInfo;
use tmp2p_core::peer_manager::{PeerStatus, PeerUpdate};
use tmp2p_core::pex::{PexConfig, PexError, PexOutput, PexPeerError, PexReactor, PEX_CHANNEL};
use tmp2p_core::router::{Envelope, PeerError, Router};
use tmp2p_core::typed::pex::PexInner;
use tmp2p_core::typed::{ChannelCodec, WrapperCodec};
use tmp2p_core::NodeId;
use tmp2p_proto::p2p::{Message, PexRequest};

use super::network::LinkId;
use super::{Sim, SimError};

/// What a node does on the PEX channel.
#[derive(Debug, Clone)]
pub enum PexRole {
    /// Runs the real PEX reactor with these settings.
    Reactor(PexConfig),
    /// Sends a `PexRequest` to every connected peer every `every` (from its start) and
    /// ignores what it receives on the channel.
    Flooder {
        /// The period.
        every: Duration,
    },
}

/// What one node's PEX did (reset at every start).
#[derive(Debug, Clone, Default)]
pub struct PexLog {
    /// Peer errors the reactor reported, with their virtual times.
    pub errors: Vec<(Duration, PexPeerError)>,
    /// Answers accepted: when, from whom, how many addresses passed the checks.
    pub answers: Vec<(Duration, NodeId, usize)>,
    /// Graceful disconnects (seed mode) carried out.
    pub disconnects: Vec<(Duration, NodeId)>,
    /// Envelopes sent on the PEX channel (requests and answers, or a flooder's requests).
    pub sent: u64,
}

impl PexLog {
    /// Whether a fatal [`PexError::RequestTooSoon`] was reported against `peer`.
    pub fn flagged_flooding(&self, peer: NodeId) -> bool {
        self.errors.iter().any(|(_, e)| {
            e.node == peer
                && matches!(e.error, PexError::RequestTooSoon { .. })
                && e.error.is_fatal()
        })
    }
}

enum Behaviour {
    Reactor(Box<PexReactor>),
    Flooder { every: Duration, next: Instant },
}

/// A node's PEX while it runs.
pub(crate) struct SimPex {
    behaviour: Behaviour,
    /// Authenticated peers not yet reported Up: their socket IP and node info.
    pending: BTreeMap<NodeId, (Option<IpAddr>, NodeInfo)>,
    rng: ChaCha20Rng,
    pub(crate) log: PexLog,
}

impl SimPex {
    /// Builds the role's machinery for one incarnation.
    pub(crate) fn new(role: &PexRole, now: Instant, rng: ChaCha20Rng) -> Result<Self, PexError> {
        let behaviour = match role {
            PexRole::Reactor(config) => {
                Behaviour::Reactor(Box::new(PexReactor::new(config.clone())?))
            }
            PexRole::Flooder { every } => Behaviour::Flooder {
                every: *every,
                next: now.checked_add(*every).unwrap_or(now),
            },
        };
        Ok(SimPex {
            behaviour,
            pending: BTreeMap::new(),
            rng,
            log: PexLog::default(),
        })
    }

    /// A connection authenticated; its Up update (if the Router keeps it) follows.
    pub(crate) fn on_authenticated(&mut self, info: NodeInfo, ip: Option<IpAddr>) {
        self.pending.insert(info.node_id, (ip, info));
    }

    /// A peer went up or down.
    pub(crate) fn on_peer_update(
        &mut self,
        now: Instant,
        update: &PeerUpdate,
        router: &mut Router,
    ) {
        let pending = self.pending.remove(&update.node_id);
        let Behaviour::Reactor(reactor) = &mut self.behaviour else {
            return;
        };
        reactor.handle_peer_update(now, update, router);
        if update.status == PeerStatus::Up {
            if let Some((ip, info)) = pending {
                if let Some(ip) = ip {
                    reactor.set_peer_ip(update.node_id, ip);
                }
                reactor.handle_peer_info(now, &info, router);
            }
        }
    }

    /// A message delivered on the PEX channel.
    pub(crate) fn on_message(&mut self, now: Instant, envelope: Envelope, router: &mut Router) {
        let (Behaviour::Reactor(reactor), Some(from)) = (&mut self.behaviour, envelope.from) else {
            return;
        };
        reactor.handle_message(now, from, envelope.message, router, &mut self.rng);
    }

    /// When [`SimPex::on_timeout`] is due.
    pub(crate) fn poll_timeout(&self) -> Option<Instant> {
        match &self.behaviour {
            Behaviour::Reactor(reactor) => reactor.poll_timeout(),
            Behaviour::Flooder { next, .. } => Some(*next),
        }
    }

    /// The timer fired.
    pub(crate) fn on_timeout(&mut self, now: Instant, router: &mut Router) {
        match &mut self.behaviour {
            Behaviour::Reactor(reactor) => reactor.handle_timeout(now, router),
            Behaviour::Flooder { every, next } => {
                let request: Bytes = WrapperCodec::<Message, PexInner>::new()
                    .encode(&PexInner::Request(PexRequest {}));
                let peers: Vec<NodeId> = router.connected_peers().collect();
                for peer in peers {
                    self.log.sent = self.log.sent.saturating_add(1);
                    if let Err(error) =
                        router.send(Envelope::to_peer(peer, PEX_CHANNEL, request.clone()))
                    {
                        tracing::debug!(%error, "flooder request not queued");
                    }
                }
                *next = now.checked_add(*every).unwrap_or(now);
            }
        }
    }

    /// The reactor's next output.
    fn poll_output(&mut self) -> Option<PexOutput> {
        match &mut self.behaviour {
            Behaviour::Reactor(reactor) => reactor.poll_output(),
            Behaviour::Flooder { .. } => None,
        }
    }
}

impl Sim {
    /// Gives node `i` a PEX role, used from its next start on (its PEX channel is opened
    /// then with CometBFT's descriptor, unless its spec opens channel 0x00 itself).
    ///
    /// # Errors
    /// [`SimError::NoSuchNode`].
    pub fn enable_pex(&mut self, i: usize, role: PexRole) -> Result<(), SimError> {
        self.node_mut(i)?.pex_role = Some(role);
        Ok(())
    }

    /// What node `i`'s PEX did in its current (or last) incarnation; `None` without PEX
    /// or while down.
    pub fn pex_log(&self, i: usize) -> Option<&PexLog> {
        self.nodes
            .get(i)?
            .running
            .as_ref()?
            .pex
            .as_ref()
            .map(|p| &p.log)
    }

    /// The PEX machinery of node `i` about to start its next incarnation (`None` without
    /// a role).
    pub(crate) fn pex_for_start(&self, i: usize) -> Result<Option<SimPex>, SimError> {
        let node = self.node(i)?;
        let Some(role) = node.pex_role.as_ref() else {
            return Ok(None);
        };
        let incarnation = node.incarnation.saturating_add(1);
        let stream = (u64::try_from(i).unwrap_or(u64::MAX) << 16) | u64::from(incarnation);
        let mut rng = ChaCha20Rng::seed_from_u64(self.seed ^ 0x7065_7821);
        rng.set_stream(stream);
        SimPex::new(role, self.now, rng)
            .map(Some)
            .map_err(|e| SimError::Invariant {
                at: self.elapsed(),
                what: format!("node {i}: PEX role refused: {e}"),
            })
    }

    /// Hands the node info of connections that just authenticated to node `i`'s PEX, with
    /// the socket IP of the link's far end.
    pub(crate) fn pex_authenticated(
        &mut self,
        i: usize,
        link: LinkId,
        side: usize,
        infos: Vec<NodeInfo>,
    ) {
        if infos.is_empty() {
            return;
        }
        let ip = self
            .links
            .get(&link)
            .and_then(|l| l.ends.get(1usize.saturating_sub(side)))
            .and_then(|end| self.nodes.get(end.node))
            .map(|n| n.spec.ip);
        if let Some(pex) = self
            .nodes
            .get_mut(i)
            .and_then(|n| n.running.as_mut())
            .and_then(|r| r.pex.as_mut())
        {
            for info in infos {
                pex.on_authenticated(info, ip);
            }
        }
    }

    /// Carries out node `i`'s pending PEX outputs; returns whether there were any.
    pub(crate) fn carry_out_pex(&mut self, i: usize) -> bool {
        let now = self.now;
        let at = self.elapsed();
        let mut errors = Vec::new();
        let mut progress = false;
        {
            let Some(running) = self.nodes.get_mut(i).and_then(|n| n.running.as_mut()) else {
                return false;
            };
            let Some(pex) = running.pex.as_mut() else {
                return false;
            };
            while let Some(output) = pex.poll_output() {
                progress = true;
                match output {
                    PexOutput::Send(envelope) => {
                        pex.log.sent = pex.log.sent.saturating_add(1);
                        if let Err(error) = running.router.send(envelope) {
                            tracing::debug!(%error, "PEX message not queued");
                        }
                    }
                    PexOutput::PeerError(error) => {
                        pex.log.errors.push((at, error.clone()));
                        errors.push(error.node);
                        running.router.report_error(now, PeerError::from(error));
                    }
                    PexOutput::Disconnect { node } => {
                        pex.log.disconnects.push((at, node));
                        if let Err(error) = running.router.disconnect(node) {
                            tracing::debug!(peer = %node, %error, "PEX disconnect of a gone peer");
                        }
                    }
                    PexOutput::Learned { from, addresses } => {
                        pex.log.answers.push((at, from, addresses.len()));
                    }
                }
            }
        }
        for node in errors {
            let peer = self.index_of(node).map_or(u64::MAX, |p| p as u64);
            self.record("pex_error", &[i as u64, peer], &[]);
        }
        progress
    }
}
