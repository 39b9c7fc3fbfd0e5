//! `tmp2p node --metrics ADDR` and `tmp2p seed --metrics ADDR`: the counters of each
//! network's node (and of each address several networks share) in the Prometheus /
//! OpenMetrics text format on `GET /metrics`, over tiny_http on a thread of its own.
//!
//! Every sample carries `chain_id`, as CometBFT labels all its metrics (`node/setup.go`
//! builds each package's metrics with `"chain_id", chainID`), so dashboards that select a
//! chain work, and a seed serving several chains exposes each under its own id.
//!
//! Everything is read at scrape time from the node machine's lock-free counters (the
//! drivers' `counters()` / `peer_counters()`): nothing is added to the per-message path.
//! Where CometBFT v0.38 has a p2p metric for the same quantity, its name and labels are
//! used (`cometbft_p2p_peers`, `cometbft_p2p_peer_receive_bytes_total` and
//! `cometbft_p2p_peer_send_bytes_total` with `peer_id` and `chID` as `0x40`,
//! `cometbft_p2p_peer_pending_send_bytes`, and `cometbft_p2p_message_receive_bytes_total` /
//! `_send_bytes_total` by `message_type` for the PEX messages), so existing dashboards
//! work; the rest is ours, under `tmp2p_`.

use std::net::SocketAddr;
use std::sync::Arc;

use prometheus_client::encoding::text::encode;
use prometheus_client::encoding::{EncodeMetric, MetricEncoder};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Registry;
use tmp2p_core::router::{
    CountersSnapshot, PeerSnapshot, PexMessageType, RttSnapshot, RTT_BUCKETS_SECONDS,
};
use tmp2p_core::shared_address::SharedAddressSnapshot;

use crate::CliError;

/// Where the live view (and, through [`one_network`], a scrape) reads a node's counters.
pub(crate) type CountersSource =
    Arc<dyn Fn() -> (CountersSnapshot, Vec<PeerSnapshot>) + Send + Sync>;

/// One network's counters at scrape time.
pub(crate) struct NetworkCounters {
    pub(crate) chain_id: String,
    pub(crate) counters: CountersSnapshot,
    pub(crate) peers: Vec<PeerSnapshot>,
}

/// Everything one scrape exposes.
#[derive(Default)]
pub(crate) struct Scrape {
    pub(crate) networks: Vec<NetworkCounters>,
    /// Each address several networks share, and its counts.
    pub(crate) shared: Vec<(SocketAddr, SharedAddressSnapshot)>,
}

/// Where a scrape reads what it exposes.
pub(crate) type ScrapeSource = Arc<dyn Fn() -> Scrape + Send + Sync>;

/// The scrape of one node on `chain_id`.
pub(crate) fn one_network(chain_id: String, source: CountersSource) -> ScrapeSource {
    Arc::new(move || {
        let (counters, peers) = source();
        Scrape {
            networks: vec![NetworkCounters {
                chain_id: chain_id.clone(),
                counters,
                peers,
            }],
            shared: Vec::new(),
        }
    })
}

/// The OpenMetrics content type Prometheus negotiates.
const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Serves `GET /metrics` on `addr` from `source`; returns the bound address (port 0 picks
/// a free one).
///
/// # Errors
/// [`CliError::BadInput`] when `addr` cannot be bound.
pub(crate) fn serve(addr: SocketAddr, source: ScrapeSource) -> Result<SocketAddr, CliError> {
    let server = tiny_http::Server::http(addr)
        .map_err(|e| CliError::BadInput(format!("--metrics {addr}: {e}")))?;
    let bound = server
        .server_addr()
        .to_ip()
        .ok_or_else(|| CliError::Runtime("the metrics listener has no IP address".into()))?;
    let header = tiny_http::Header::from_bytes("Content-Type", CONTENT_TYPE)
        .map_err(|()| CliError::Runtime("bad metrics content type".into()))?;
    std::thread::Builder::new()
        .name("metrics".into())
        .spawn(move || {
            for request in server.incoming_requests() {
                let path = request.url().split('?').next().unwrap_or_default();
                let response = if path == "/metrics" {
                    tiny_http::Response::from_string(render(&source())).with_header(header.clone())
                } else {
                    tiny_http::Response::from_string("not found\n").with_status_code(404)
                };
                if let Err(error) = request.respond(response) {
                    tracing::debug!(%error, "metrics response not written");
                }
            }
        })
        .map_err(|e| CliError::Runtime(format!("cannot start the metrics thread: {e}")))?;
    Ok(bound)
}

type Labels = Vec<(&'static str, String)>;

fn counter_family() -> Family<Labels, Counter> {
    Family::default()
}

fn gauge_family() -> Family<Labels, Gauge> {
    Family::default()
}

/// `chain_id` and then `rest`: a sample's labels.
fn labels(chain_id: &str, rest: &[(&'static str, String)]) -> Labels {
    let mut labels = vec![("chain_id", chain_id.to_owned())];
    labels.extend(rest.iter().cloned());
    labels
}

/// The exposition of one scrape.
fn render(scrape: &Scrape) -> String {
    let mut registry = Registry::default();
    register_cometbft(
        registry.sub_registry_with_prefix("cometbft_p2p"),
        &scrape.networks,
    );
    let ours = registry.sub_registry_with_prefix("tmp2p");
    register_ours(ours, &scrape.networks);
    register_peers(ours, &scrape.networks);
    register_shared(ours, &scrape.shared);
    let mut out = String::new();
    if encode(&mut out, &registry).is_err() {
        out.clear();
    }
    out
}

/// CometBFT's p2p metrics that our counters measure the same way.
fn register_cometbft(registry: &mut Registry, networks: &[NetworkCounters]) {
    let connected = gauge_family();
    let (received, sent, pending) = (counter_family(), counter_family(), gauge_family());
    let (type_received, type_sent) = (counter_family(), counter_family());
    for network in networks {
        let chain = network.chain_id.as_str();
        connected
            .get_or_create(&labels(chain, &[]))
            .set(i64::try_from(network.peers.len()).unwrap_or(i64::MAX));
        for peer in &network.peers {
            let peer_id = ("peer_id", peer.node.to_string());
            for channel in &peer.channels {
                let at = labels(
                    chain,
                    &[peer_id.clone(), ("chID", format!("{:#x}", channel.channel))],
                );
                received.get_or_create(&at).inc_by(channel.received_bytes);
                sent.get_or_create(&at).inc_by(channel.sent_bytes);
            }
            let bytes = peer
                .channels
                .iter()
                .fold(0u64, |sum, c| sum.saturating_add(c.queued_bytes));
            pending
                .get_or_create(&labels(chain, &[peer_id]))
                .set(i64::try_from(bytes).unwrap_or(i64::MAX));
        }
        // Per message type, as CometBFT labels them (Go package and type). Only the
        // built-in PEX channel's messages have a type here: raw channels carry bytes.
        for kind in [PexMessageType::Request, PexMessageType::Addrs] {
            let at = labels(chain, &[("message_type", kind.metric_label().to_owned())]);
            let counters = &network.counters;
            type_received
                .get_or_create(&at)
                .inc_by(counters.pex_bytes(kind, false));
            type_sent
                .get_or_create(&at)
                .inc_by(counters.pex_bytes(kind, true));
        }
    }
    registry.register("peers", "Number of peers", connected);
    registry.register(
        "peer_receive_bytes",
        "Number of bytes received from a given peer",
        received,
    );
    registry.register(
        "peer_send_bytes",
        "Number of bytes sent to a given peer",
        sent,
    );
    registry.register(
        "peer_pending_send_bytes",
        "Pending bytes to be sent to a given peer",
        pending,
    );
    registry.register(
        "message_receive_bytes",
        "Number of bytes of each message type received",
        type_received,
    );
    registry.register(
        "message_send_bytes",
        "Number of bytes of each message type sent",
        type_sent,
    );
}

/// A counter of [`CountersSnapshot`], for the families built from every network.
type Total = fn(&CountersSnapshot) -> u64;

/// Ours: node totals, and totals by outcome and reason.
fn register_ours(registry: &mut Registry, networks: &[NetworkCounters]) {
    let totals: [(&str, &str, Total); 9] = [
        ("sent_messages", "Messages handed to connections", |c| {
            c.sent_messages
        }),
        ("sent_bytes", "Payload bytes handed to connections", |c| {
            c.sent_bytes
        }),
        ("received_messages", "Messages received", |c| {
            c.received_messages
        }),
        ("received_bytes", "Payload bytes received", |c| {
            c.received_bytes
        }),
        (
            "undelivered_inbound_messages",
            "Received messages the application never took (their peer went away first)",
            |c| c.undelivered_inbound,
        ),
        (
            "pex_addresses_received",
            "Addresses in the PEX answers received",
            |c| c.pex_addresses_received,
        ),
        (
            "pex_addresses_accepted",
            "Addresses from PEX answers the peer store took as new",
            |c| c.pex_addresses_new,
        ),
        ("store_transactions", "Peer-store write transactions", |c| {
            c.store_transactions
        }),
        (
            "store_operations",
            "Peer-store record writes and deletions",
            |c| c.store_operations,
        ),
    ];
    for (name, help, total) in totals {
        let family = counter_family();
        for network in networks {
            family
                .get_or_create(&labels(&network.chain_id, &[]))
                .inc_by(total(&network.counters));
        }
        registry.register(name, help, family);
    }
    let dials: [(&str, Total); 2] = [
        ("succeeded", |c| c.dials_succeeded),
        ("failed", |c| c.dials_failed),
    ];
    let handshakes: [(&str, Total); 6] = [
        ("succeeded", |c| c.handshakes_succeeded),
        ("auth_failure", |c| c.handshakes_auth_failure),
        ("invalid_node_info", |c| c.handshakes_invalid_node_info),
        ("incompatible", |c| c.handshakes_incompatible),
        ("self", |c| c.handshakes_self),
        ("other_failure", |c| c.handshakes_other_failure),
    ];
    let dropped: [(&str, Total); 5] = [
        ("queue_full", |c| c.dropped_queue_full),
        ("peer_gone", |c| c.dropped_peer_gone),
        ("not_connected", |c| c.dropped_not_connected),
        ("no_channel", |c| c.dropped_no_channel),
        ("channel_not_open", |c| c.dropped_channel_not_open),
    ];
    let by_label = [
        ("dials", "Dials by outcome", "outcome", &dials[..]),
        (
            "handshakes",
            "Handshakes by outcome",
            "outcome",
            &handshakes[..],
        ),
        (
            "dropped_messages",
            "Messages dropped, by reason",
            "reason",
            &dropped[..],
        ),
    ];
    for (name, help, label, values) in by_label {
        let family = counter_family();
        for network in networks {
            for (value, total) in values {
                let at = labels(&network.chain_id, &[(label, (*value).to_owned())]);
                family.get_or_create(&at).inc_by(total(&network.counters));
            }
        }
        registry.register(name, help, family);
    }
}

/// Per peer and channel: messages each way and the outbound queue; per peer: inbound
/// messages held for a full application channel, and the ping round trips.
fn register_peers(registry: &mut Registry, networks: &[NetworkCounters]) {
    let sent = counter_family();
    let received = counter_family();
    let queued = gauge_family();
    let held = gauge_family();
    let mut rtts = Vec::new();
    for network in networks {
        let chain = network.chain_id.as_str();
        for peer in &network.peers {
            let peer_id = ("peer_id", peer.node.to_string());
            for channel in &peer.channels {
                let at = labels(
                    chain,
                    &[peer_id.clone(), ("chID", format!("{:#x}", channel.channel))],
                );
                sent.get_or_create(&at).inc_by(channel.sent_messages);
                received
                    .get_or_create(&at)
                    .inc_by(channel.received_messages);
                queued
                    .get_or_create(&at)
                    .set(i64::try_from(channel.queued).unwrap_or(i64::MAX));
            }
            held.get_or_create(&labels(chain, std::slice::from_ref(&peer_id)))
                .set(i64::try_from(peer.inbound_held).unwrap_or(i64::MAX));
            rtts.push((chain.to_owned(), peer_id.1, peer.rtt.clone()));
        }
    }
    registry.register(
        "peer_sent_messages",
        "Messages sent to a peer, per channel",
        sent,
    );
    registry.register(
        "peer_received_messages",
        "Messages received from a peer, per channel",
        received,
    );
    registry.register(
        "peer_queued_messages",
        "Messages waiting in a peer's outbound queue, per backpressure channel",
        queued,
    );
    registry.register(
        "peer_inbound_held_messages",
        "Messages held for a full application channel, per peer",
        held,
    );
    registry.register(
        "peer_ping_rtt_seconds",
        "MConnection ping round-trip times, per peer",
        PeerRtts(rtts),
    );
}

/// Each address several networks share (`tmp2p seed`): what it did with the connections
/// it accepted before their network was known.
fn register_shared(registry: &mut Registry, shared: &[(SocketAddr, SharedAddressSnapshot)]) {
    if shared.is_empty() {
        return;
    }
    type Count = fn(&SharedAddressSnapshot) -> u64;
    let families: [(&str, &str, Count); 4] = [
        (
            "shared_address_handed_over",
            "Connections a shared address handed to the node of their network",
            |s| s.handed_over,
        ),
        (
            "shared_address_unknown_network",
            "Of those, dialers of a network not served here (refused by the first node)",
            |s| s.unknown_network,
        ),
        (
            "shared_address_failed_handshakes",
            "Handshakes that failed or timed out before the dialer's network was known",
            |s| s.failed,
        ),
        (
            "shared_address_refused_busy",
            "Connections refused at once because the handshake limits were reached",
            |s| s.refused_busy,
        ),
    ];
    for (name, help, count) in families {
        let family = counter_family();
        for (address, snapshot) in shared {
            family
                .get_or_create(&vec![("address", address.to_string())])
                .inc_by(count(snapshot));
        }
        registry.register(name, help, family);
    }
}

/// Each peer's ping round-trip histogram, as the node machine counted it (the buckets
/// are [`RTT_BUCKETS_SECONDS`]), with its chain id and peer id; encoded at scrape time
/// from the snapshot.
#[derive(Debug)]
struct PeerRtts(Vec<(String, String, RttSnapshot)>);

impl EncodeMetric for PeerRtts {
    fn encode(&self, mut encoder: MetricEncoder<'_>) -> Result<(), std::fmt::Error> {
        for (chain, peer, rtt) in &self.0 {
            let bounds = RTT_BUCKETS_SECONDS.iter().copied().chain([f64::INFINITY]);
            let buckets: Vec<(f64, u64)> = bounds.zip(rtt.buckets.iter().copied()).collect();
            let labels = [("chain_id", chain.as_str()), ("peer_id", peer.as_str())];
            encoder
                .encode_family(&labels)?
                .encode_histogram::<prometheus_client::encoding::NoLabelSet>(
                    rtt.sum.as_secs_f64(),
                    rtt.count(),
                    &buckets,
                    None,
                )?;
        }
        Ok(())
    }

    fn metric_type(&self) -> MetricType {
        MetricType::Histogram
    }
}
