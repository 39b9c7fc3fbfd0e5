//! PEX inside the simulation: a node given a [`PexRole`] with [`Sim::enable_pex`] runs,
//! in every incarnation, either the real PEX reactor the node machine hosts (channel 0x00,
//! `Node::enable_pex`) or a flooder that sends `PexRequest`s on a fixed period (a
//! misbehaving peer, written here as the misbehaviour it is).
//!
//! What the node machine's reactor did arrives as `NodeOutput::Pex` and is logged in the
//! node's [`PexLog`].

use std::time::{Duration, Instant};

use bytes::Bytes;
use tmp2p_core::node::PexEvent;
use tmp2p_core::pex::{PexConfig, PexError, PexPeerError, PEX_CHANNEL};
use tmp2p_core::router::Envelope;
use tmp2p_core::typed::pex::PexInner;
use tmp2p_core::typed::{ChannelCodec, WrapperCodec};
use tmp2p_core::NodeId;
use tmp2p_proto::p2p::{Message, PexRequest};

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
    /// Requests a flooder sent.
    pub flooded: u64,
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

/// A node's PEX while it runs: its log, and its timer when it floods.
pub(crate) struct SimPex {
    /// A flooder's period and next request.
    flooder: Option<(Duration, Instant)>,
    pub(crate) log: PexLog,
}

impl SimPex {
    /// The role's machinery for one incarnation (a reactor role runs inside the node).
    pub(crate) fn new(role: &PexRole, now: Instant) -> Self {
        let flooder = match role {
            PexRole::Reactor(_) => None,
            PexRole::Flooder { every } => Some((*every, now.checked_add(*every).unwrap_or(now))),
        };
        SimPex {
            flooder,
            log: PexLog::default(),
        }
    }

    /// Logs what the node machine's reactor did.
    pub(crate) fn on_event(&mut self, at: Duration, event: PexEvent) {
        match event {
            PexEvent::PeerError(error) => self.log.errors.push((at, error)),
            PexEvent::Disconnected(node) => self.log.disconnects.push((at, node)),
            PexEvent::Learned { from, count } => self.log.answers.push((at, from, count)),
        }
    }

    /// When a flooder sends next.
    pub(crate) fn poll_timeout(&self) -> Option<Instant> {
        self.flooder.map(|(_, next)| next)
    }

    /// A flooder's timer fired: the requests to send, one per connected peer.
    pub(crate) fn on_timeout(&mut self, now: Instant, peers: &[NodeId]) -> Vec<Envelope> {
        let Some((every, next)) = &mut self.flooder else {
            return Vec::new();
        };
        if *next > now {
            return Vec::new();
        }
        *next = now.checked_add(*every).unwrap_or(now);
        let request: Bytes =
            WrapperCodec::<Message, PexInner>::new().encode(&PexInner::Request(PexRequest {}));
        self.log.flooded = self.log.flooded.saturating_add(peers.len() as u64);
        peers
            .iter()
            .map(|&peer| Envelope::to_peer(peer, PEX_CHANNEL, request.clone()))
            .collect()
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

    /// The PEX log and flooder of node `i` about to start its next incarnation, and the
    /// reactor settings for its node machine (`None`s without a role).
    pub(crate) fn pex_for_start(
        &self,
        i: usize,
    ) -> Result<(Option<SimPex>, Option<PexConfig>), SimError> {
        let node = self.node(i)?;
        let Some(role) = node.pex_role.as_ref() else {
            return Ok((None, None));
        };
        let reactor = match role {
            PexRole::Reactor(config) => Some(config.clone()),
            PexRole::Flooder { .. } => None,
        };
        Ok((Some(SimPex::new(role, self.now)), reactor))
    }
}
