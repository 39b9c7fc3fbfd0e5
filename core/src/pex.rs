//! The PEX reactor (peer exchange on channel 0x00, protocol.md §5), sans-IO and compatible
//! with CometBFT: it asks connected peers for addresses with `PexRequest`, answers their
//! requests with `PexAddrs`, and feeds what it learns to the PeerManager. [`addrbook`]
//! imports an existing CometBFT `addrbook.json`.
//!
//! Only `tendermint.p2p.Message` with `PexRequest` / `PexAddrs` is ever sent (never the
//! v0.35 V2 messages, which a CometBFT node cannot decode and disconnects for).
//!
//! # Call order, for a driver
//! 1. Open [`channel_descriptor`] on the Router before the first connection; build the
//!    reactor with [`PexReactor::new`].
//! 2. For every `RouterAction::PeerUpdate` call [`PexReactor::handle_peer_update`]; for
//!    an Up peer then also [`PexReactor::set_peer_ip`] (its socket IP, when known) and
//!    [`PexReactor::handle_peer_info`] (its `NodeInfo` from `PeerEvent::Authenticated`).
//! 3. For every `RouterAction::Deliver` on channel [`PEX_CHANNEL`] call
//!    [`PexReactor::handle_message`].
//! 4. Sleep until [`PexReactor::poll_timeout`] (re-read after every call), then call
//!    [`PexReactor::handle_timeout`].
//! 5. After every call drain [`PexReactor::poll_output`]: `Send` → `Router::send`;
//!    `PeerError` → `Router::report_error` (via `PeerError::from`); `Disconnect` →
//!    `Router::disconnect` (graceful: its `Close` action follows the already queued
//!    `Send`, `PeerConnection::close` flushes it, and the peer's score is untouched);
//!    `Learned` is informational (crawlers).
//!
//! The PeerManager is reached through [`PexPeers`], implemented for
//! [`PeerManager`](crate::peer_manager::PeerManager) and for
//! [`Router`](crate::router::Router) (which also starts dials for new addresses).
//!
//! # Rules, and what CometBFT does in each case
//! - We request a given peer at most once per [`PexConfig::request_interval`] (default
//!   30 s, never below [`MIN_REQUEST_INTERVAL`] = 10 s: CometBFT disconnects and bans for
//!   24 h a peer whose third request comes less than 10 s after the previous one). The
//!   interval counts from the peer's answer (or from the request's expiry), not from our
//!   send, so network delays can never shrink the gap the peer measures. Requests go out only
//!   while the PeerManager wants more addresses (`peer_ratio() <
//!   `[`PexConfig::full_ratio`]), with one outstanding request per peer.
//! - Requests are answered with up to [`PexConfig::max_addresses_sent`] (100) addresses
//!   from `advertise` (own address first; never private peers, never the requester).
//!   Addresses whose host is not an IP literal cannot be put in a `NetAddress` and are
//!   skipped (core resolves no names).
//! - Peer errors ([`PexError`]): an unsolicited `PexAddrs` is fatal (CometBFT: disconnect
//!   and ban 24 h); requests faster than [`PexConfig::min_receive_interval`] after the
//!   first two are fatal (CometBFT: disconnect and ban 24 h); more than
//!   [`MAX_ADDRESSES_RECEIVED`] (250) addresses is non-fatal and the response is dropped
//!   (CometBFT has no count check, only its 64000-byte message cap; v0.35 errors above
//!   100); an entry with a bad id, IP or port is non-fatal and only that entry is skipped
//!   (CometBFT disconnects and bans for any unparsable IP or port ≥ 65536); an undecodable
//!   message is non-fatal (CometBFT disconnects on any undecodable message).
//! - Addresses that are not `Valid()` (unspecified, documentation range, broadcast) are
//!   dropped silently, as CometBFT's address book does. In strict mode (default) a
//!   non-routable address learned from a routable (or unknown-IP) peer is dropped; from a
//!   non-routable peer (a local testnet) it is kept. Every kept address goes through
//!   `PeerManager::add`, so its IP-group caps apply.
//! - Seed mode: an inbound peer is never asked; its request is answered, then a
//!   `Disconnect` is output. An outbound peer is asked once (whatever the ratio, to keep the
//!   store fresh while the Router dials stored peers in turn) and disconnected after its
//!   answer (or its timeout). A seed raises the PeerManager's redial cooldown to
//!   [`PexConfig::seed_recrawl_interval`] (default 2 min), so a crawled peer is not redialed
//!   and re-asked every few seconds (CometBFT seeds re-crawl a peer every few minutes), and
//!   keeps it there: the brief connections it ends itself do not grow it.

pub mod addrbook;
mod config;
mod conversions;
mod peers;

use std::collections::{BTreeMap, VecDeque};
use std::net::IpAddr;
use std::time::{Duration, Instant};

use bytes::Bytes;
use rand_core::RngCore;
use tmp2p_proto::p2p::{Message, NetAddress as ProtoNetAddress, PexAddrs, PexRequest};

use crate::address::{AddressError, NetAddress, NodeAddress, ParsedNetAddress};
use crate::deadline::later;
use crate::id::NodeId;
use crate::mconn::ChannelDescriptor;
use crate::node_info::NodeInfo;
use crate::peer_manager::{Direction, PeerStatus, PeerUpdate};
use crate::router::{Envelope, PeerError};
use crate::typed::pex::PexInner;
use crate::typed::{decode_inbound, ChannelCodec, CodecError, WrapperCodec};

pub use config::PexConfig;
pub use peers::PexPeers;

use conversions::{checked_address, is_routable_ip, to_net_address, to_node_address};

/// The PEX channel id.
pub const PEX_CHANNEL: u8 = 0x00;
/// The shortest request interval a config may set: CometBFT bans faster requesters.
pub const MIN_REQUEST_INTERVAL: Duration = Duration::from_secs(10);
/// Most addresses accepted in one response (CometBFT's `maxGetSelection`).
pub const MAX_ADDRESSES_RECEIVED: usize = 250;
/// CometBFT's receive capacity of the PEX channel.
pub const PEX_RECV_MESSAGE_CAPACITY: usize = 64_000;

/// The PEX channel as CometBFT declares it: id 0x00, priority 1, 10 queued messages,
/// 64000-byte messages.
pub fn channel_descriptor() -> ChannelDescriptor {
    ChannelDescriptor {
        id: PEX_CHANNEL,
        priority: 1,
        send_queue_capacity: 10,
        recv_message_capacity: PEX_RECV_MESSAGE_CAPACITY,
    }
}

/// Everything that can be wrong in PEX: a bad configuration, or a peer's misbehaviour (the
/// reason of a [`PexPeerError`]).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum PexError {
    /// `request_interval` is below the minimum CometBFT tolerates.
    #[error("PEX request interval {interval:?} is below the minimum {min:?}")]
    RequestIntervalTooShort {
        /// The configured interval.
        interval: Duration,
        /// [`MIN_REQUEST_INTERVAL`].
        min: Duration,
    },
    /// `response_timeout` is zero.
    #[error("PEX response timeout must be above zero")]
    ZeroResponseTimeout,
    /// `max_addresses_sent` is 0 or above the most a peer accepts.
    #[error("PEX max_addresses_sent {value} must be in 1..={max}")]
    MaxAddressesSentOutOfRange {
        /// The configured value.
        value: usize,
        /// [`MAX_ADDRESSES_RECEIVED`].
        max: usize,
    },
    /// `full_ratio` is not a positive number.
    #[error("PEX full_ratio {0} must be a positive number")]
    InvalidFullRatio(f64),
    /// The peer sent addresses we did not ask for (fatal; CometBFT bans 24 h).
    #[error("unsolicited PEX addresses: no request outstanding")]
    Unsolicited,
    /// The peer requested again too soon (fatal; CometBFT bans 24 h).
    #[error("PEX request {elapsed:?} after the previous one; the minimum is {min:?}")]
    RequestTooSoon {
        /// Time since its previous request.
        elapsed: Duration,
        /// [`PexConfig::min_receive_interval`].
        min: Duration,
    },
    /// The response carries more addresses than allowed; it was dropped.
    #[error("PEX response with {count} addresses; the limit is {limit}")]
    TooManyAddresses {
        /// Addresses in the response.
        count: usize,
        /// [`MAX_ADDRESSES_RECEIVED`].
        limit: usize,
    },
    /// Entries of a response have a bad id, IP or port; they were skipped, the rest kept.
    #[error("{bad} PEX address(es) malformed, first at index {index}: {error}")]
    BadAddress {
        /// Index of the first bad entry in the response.
        index: usize,
        /// How many entries were bad.
        bad: usize,
        /// What is wrong with the first one.
        #[source]
        error: AddressError,
    },
    /// The message is not a PEX message.
    #[error("undecodable PEX message: {0}")]
    Undecodable(#[source] CodecError),
}

impl PexError {
    /// Whether the peer must be disconnected (unsolicited responses and flooding).
    pub fn is_fatal(&self) -> bool {
        matches!(
            self,
            PexError::Unsolicited | PexError::RequestTooSoon { .. }
        )
    }
}

/// A peer's PEX misbehaviour, typed; converts into the Router's [`PeerError`].
#[derive(Debug, Clone, PartialEq)]
pub struct PexPeerError {
    /// The peer.
    pub node: NodeId,
    /// What it did.
    pub error: PexError,
}

impl From<PexPeerError> for PeerError {
    fn from(e: PexPeerError) -> Self {
        PeerError {
            node: e.node,
            fatal: e.error.is_fatal(),
            reason: e.error.to_string(),
        }
    }
}

/// What the reactor asks the driver to do (pulled with [`PexReactor::poll_output`]).
#[derive(Debug, Clone, PartialEq)]
pub enum PexOutput {
    /// Send this envelope (`Router::send`).
    Send(Envelope),
    /// Report this peer (`Router::report_error` with `PeerError::from`).
    PeerError(PexPeerError),
    /// Seed mode: close the connection to `node` gracefully, after what was sent to it.
    Disconnect {
        /// The peer.
        node: NodeId,
    },
    /// Addresses a peer gave us that passed every check (each was offered to the
    /// PeerManager, which may already have known it).
    Learned {
        /// The peer that sent them.
        from: NodeId,
        /// The addresses.
        addresses: Vec<NodeAddress>,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum RequestState {
    Idle,
    Outstanding {
        deadline: Instant,
    },
    /// Not answered in time: a late answer is ignored.
    Expired,
}

/// Requests received from a peer, for the CometBFT rate rule (the first two are free).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Received {
    None,
    One,
    Last(Instant),
}

#[derive(Debug, Clone)]
struct PeerState {
    inbound: bool,
    /// Whether the peer's IP is routable; `None` when unknown.
    routable: Option<bool>,
    /// The peer's socket IP, if the driver told us.
    ip: Option<IpAddr>,
    request: RequestState,
    next_request_at: Instant,
    received: Received,
    /// Seed mode: this peer has been asked (or is done with).
    crawled: bool,
}

/// The PEX reactor (see the module docs).
pub struct PexReactor {
    config: PexConfig,
    codec: WrapperCodec<Message, PexInner>,
    peers: BTreeMap<NodeId, PeerState>,
    outputs: VecDeque<PexOutput>,
}

impl PexReactor {
    /// A reactor with no peers.
    ///
    /// # Errors
    /// The config's [`PexError`].
    pub fn new(config: PexConfig) -> Result<Self, PexError> {
        config.validate()?;
        Ok(PexReactor {
            config,
            codec: WrapperCodec::new(),
            peers: BTreeMap::new(),
            outputs: VecDeque::new(),
        })
    }

    /// The settings.
    pub fn config(&self) -> &PexConfig {
        &self.config
    }

    /// The next output, or `None`.
    pub fn poll_output(&mut self) -> Option<PexOutput> {
        self.outputs.pop_front()
    }

    /// Whether a request to `node` is awaiting its answer.
    pub fn is_request_outstanding(&self, node: NodeId) -> bool {
        self.peers
            .get(&node)
            .is_some_and(|p| matches!(p.request, RequestState::Outstanding { .. }))
    }

    /// A peer went up or down. Up: a request goes out at once if addresses are wanted.
    /// Down: its request and rate state are forgotten.
    pub fn handle_peer_update(
        &mut self,
        now: Instant,
        update: &PeerUpdate,
        peers: &mut impl PexPeers,
    ) {
        let node = update.node_id;
        match update.status {
            PeerStatus::Down => {
                self.peers.remove(&node);
            }
            PeerStatus::Up => {
                if self.config.seed_mode {
                    peers.use_seed_redials(self.config.seed_recrawl_interval);
                }
                if !update.channels.contains(&u16::from(PEX_CHANNEL)) {
                    tracing::debug!(peer = %node, "peer has no PEX channel");
                    self.peers.remove(&node);
                    return;
                }
                let routable = peers
                    .known_addresses(node)
                    .iter()
                    .filter_map(|a| a.hostname.parse::<IpAddr>().ok())
                    .map(is_routable_ip)
                    .reduce(|a, b| a || b);
                self.peers.insert(
                    node,
                    PeerState {
                        inbound: peers.direction(node) == Some(Direction::Inbound),
                        routable,
                        ip: None,
                        request: RequestState::Idle,
                        next_request_at: now,
                        received: Received::None,
                        crawled: false,
                    },
                );
                self.request_if_due(now, node, peers);
            }
        }
    }

    /// The socket IP of an Up peer (call after its Up update): decides whether strict mode
    /// applies to the addresses it sends.
    pub fn set_peer_ip(&mut self, node: NodeId, ip: IpAddr) {
        if let Some(peer) = self.peers.get_mut(&node) {
            peer.routable = Some(is_routable_ip(ip));
            peer.ip = Some(ip);
        }
    }

    /// The node info of an Up peer (call after its Up update and [`set_peer_ip`]). An
    /// inbound peer's self-reported `id@listen_addr` is offered to the PeerManager, as
    /// CometBFT adds it to its address book; a listen address on `0.0.0.0` / `::` (a
    /// node listening on every interface) is taken at the peer's socket IP when known,
    /// where CometBFT would drop it. The address passes the same checks as a PEX entry.
    /// Returns the address offered, if any.
    ///
    /// [`set_peer_ip`]: PexReactor::set_peer_ip
    pub fn handle_peer_info(
        &mut self,
        now: Instant,
        info: &NodeInfo,
        peers: &mut impl PexPeers,
    ) -> Option<NodeAddress> {
        let node = info.node_id;
        let peer = self.peers.get(&node).filter(|p| p.inbound)?;
        let (sender_routable, socket_ip) = (peer.routable.unwrap_or(true), peer.ip);
        let listen = info
            .listen_addr
            .split_once("://")
            .map_or(info.listen_addr.as_str(), |(_, rest)| rest);
        let text = format!("{node}@{listen}");
        let mut address = match NetAddress::parse(&text) {
            Ok(ParsedNetAddress::Resolved(address)) => address,
            Ok(ParsedNetAddress::NeedsLookup(_)) | Err(_) => {
                tracing::debug!(peer = %node, listen = %info.listen_addr, "unusable listen address");
                return None;
            }
        };
        if address.ip.is_unspecified() {
            address.ip = socket_ip?;
        }
        if address.port == 0
            || address.valid().is_err()
            || (self.config.strict && sender_routable && !address.is_routable())
        {
            return None;
        }
        let address = to_node_address(&address);
        if let Err(e) = peers.add_address(now, address.clone()) {
            tracing::debug!(peer = %node, %address, %e, "listen address refused");
        }
        peers.addresses_added(now);
        Some(address)
    }

    /// The next instant at which [`PexReactor::handle_timeout`] must be called.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.peers
            .values()
            .filter_map(|p| match p.request {
                RequestState::Outstanding { deadline } => Some(deadline),
                RequestState::Idle | RequestState::Expired => {
                    self.may_ask(p).then_some(p.next_request_at)
                }
            })
            .min()
    }

    /// Timers: answers that did not come, and requests that are due.
    pub fn handle_timeout(&mut self, now: Instant, peers: &mut impl PexPeers) {
        let ids: Vec<NodeId> = self.peers.keys().copied().collect();
        for node in ids {
            let Some(peer) = self.peers.get_mut(&node) else {
                continue;
            };
            if let RequestState::Outstanding { deadline } = peer.request {
                if deadline <= now {
                    tracing::debug!(peer = %node, "PEX request not answered in time");
                    peer.request = RequestState::Expired;
                    // It may still arrive late: count the interval from now.
                    peer.next_request_at = peer
                        .next_request_at
                        .max(later(now, self.config.request_interval));
                    if self.config.seed_mode {
                        self.outputs.push_back(PexOutput::Disconnect { node });
                    }
                }
            }
            self.request_if_due(now, node, peers);
        }
    }

    /// A message received on [`PEX_CHANNEL`] from `from`.
    pub fn handle_message(
        &mut self,
        now: Instant,
        from: NodeId,
        bytes: Bytes,
        peers: &mut impl PexPeers,
        rng: &mut impl RngCore,
    ) {
        if !self.peers.contains_key(&from) {
            tracing::debug!(peer = %from, "PEX message from a peer that is not up: dropped");
            return;
        }
        match decode_inbound(&self.codec, from, bytes) {
            Ok(PexInner::Request(_)) => self.on_request(now, from, peers, rng),
            Ok(PexInner::Addrs(addrs)) => self.on_addrs(now, from, addrs, peers),
            Err(e) => self.peer_error(from, PexError::Undecodable(e.error)),
        }
    }

    fn may_ask(&self, peer: &PeerState) -> bool {
        !(self.config.seed_mode && (peer.inbound || peer.crawled))
    }

    fn request_if_due(&mut self, now: Instant, node: NodeId, peers: &mut impl PexPeers) {
        let seed = self.config.seed_mode;
        let wants = seed || peers.peer_ratio() < self.config.full_ratio;
        let interval = self.config.request_interval;
        let timeout = self.config.response_timeout;
        let Some(peer) = self.peers.get(&node) else {
            return;
        };
        if !self.may_ask(peer)
            || matches!(peer.request, RequestState::Outstanding { .. })
            || peer.next_request_at > now
        {
            return;
        }
        let Some(peer) = self.peers.get_mut(&node) else {
            return;
        };
        peer.next_request_at = later(now, interval);
        if !wants {
            return;
        }
        peer.request = RequestState::Outstanding {
            deadline: later(now, timeout),
        };
        peer.crawled = true;
        tracing::debug!(peer = %node, "sending PEX request");
        let bytes = self.codec.encode(&PexInner::Request(PexRequest {}));
        self.outputs
            .push_back(PexOutput::Send(Envelope::to_peer(node, PEX_CHANNEL, bytes)));
    }

    fn on_request(
        &mut self,
        now: Instant,
        from: NodeId,
        peers: &mut impl PexPeers,
        rng: &mut impl RngCore,
    ) {
        let min = self.config.min_receive_interval;
        let Some(peer) = self.peers.get_mut(&from) else {
            return;
        };
        match peer.received {
            Received::None => peer.received = Received::One,
            Received::One => peer.received = Received::Last(now),
            Received::Last(last) => {
                let elapsed = now.saturating_duration_since(last);
                if elapsed < min {
                    self.peer_error(from, PexError::RequestTooSoon { elapsed, min });
                    return;
                }
                peer.received = Received::Last(now);
            }
        }
        let inbound = peer.inbound;
        let addrs: Vec<ProtoNetAddress> = peers
            // Ask for more than we send: names and non-MConnection addresses drop out.
            .advertise_to(from, MAX_ADDRESSES_RECEIVED, rng)
            .iter()
            .filter(|a| a.node_id != from)
            .filter_map(to_net_address)
            .map(|a| ProtoNetAddress::from(&a))
            .take(self.config.max_addresses_sent)
            .collect();
        tracing::debug!(peer = %from, count = addrs.len(), "answering PEX request");
        let bytes = self.codec.encode(&PexInner::Addrs(PexAddrs { addrs }));
        self.outputs
            .push_back(PexOutput::Send(Envelope::to_peer(from, PEX_CHANNEL, bytes)));
        if self.config.seed_mode && inbound {
            self.outputs.push_back(PexOutput::Disconnect { node: from });
        }
    }

    fn on_addrs(&mut self, now: Instant, from: NodeId, addrs: PexAddrs, peers: &mut impl PexPeers) {
        let Some(peer) = self.peers.get_mut(&from) else {
            return;
        };
        match peer.request {
            RequestState::Outstanding { .. } => {
                peer.request = RequestState::Idle;
                // The peer received our request before it answered, so counting the
                // interval from its answer keeps the gap it measures between our
                // requests at least `request_interval`, whatever the network delays.
                peer.next_request_at = peer
                    .next_request_at
                    .max(later(now, self.config.request_interval));
            }
            RequestState::Expired => {
                peer.request = RequestState::Idle;
                tracing::debug!(peer = %from, "late PEX answer ignored");
                return;
            }
            RequestState::Idle => {
                self.peer_error(from, PexError::Unsolicited);
                return;
            }
        }
        let sender_routable = peer.routable.unwrap_or(true);
        if self.config.seed_mode && !peer.inbound {
            self.outputs.push_back(PexOutput::Disconnect { node: from });
        }
        let count = addrs.addrs.len();
        if count > MAX_ADDRESSES_RECEIVED {
            self.peer_error(
                from,
                PexError::TooManyAddresses {
                    count,
                    limit: MAX_ADDRESSES_RECEIVED,
                },
            );
            return;
        }
        let mut learned = Vec::new();
        let mut first_bad: Option<(usize, AddressError)> = None;
        let mut bad = 0usize;
        for (index, proto) in addrs.addrs.into_iter().enumerate() {
            match checked_address(proto) {
                Ok(address) => {
                    if address.valid().is_err() {
                        tracing::trace!(peer = %from, %address, "invalid PEX address dropped");
                        continue;
                    }
                    if self.config.strict && sender_routable && !address.is_routable() {
                        tracing::trace!(peer = %from, %address, "strict: non-routable dropped");
                        continue;
                    }
                    learned.push(to_node_address(&address));
                }
                Err(error) => {
                    bad = bad.saturating_add(1);
                    first_bad.get_or_insert((index, error));
                }
            }
        }
        if let Some((index, error)) = first_bad {
            self.peer_error(from, PexError::BadAddress { index, bad, error });
        }
        let mut new = 0usize;
        for address in &learned {
            match peers.add_address(now, address.clone()) {
                Ok(true) => new = new.saturating_add(1),
                Ok(false) => {}
                Err(e) => tracing::debug!(peer = %from, %address, %e, "PEX address refused"),
            }
        }
        peers.pex_answer_counted(count, new);
        peers.addresses_added(now);
        tracing::debug!(peer = %from, count, learned = learned.len(), "PEX addresses received");
        self.outputs.push_back(PexOutput::Learned {
            from,
            addresses: learned,
        });
    }

    fn peer_error(&mut self, node: NodeId, error: PexError) {
        tracing::debug!(peer = %node, %error, "PEX peer error");
        self.outputs
            .push_back(PexOutput::PeerError(PexPeerError { node, error }));
    }
}

#[cfg(test)]
mod tests;
