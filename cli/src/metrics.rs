//! `tmp2p node --metrics ADDR`: the node's counters in the Prometheus / OpenMetrics text
//! format on `GET /metrics`, over tiny_http on a thread of its own.
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

use crate::CliError;

/// Where a scrape reads the node's counters.
pub(crate) type CountersSource =
    Arc<dyn Fn() -> (CountersSnapshot, Vec<PeerSnapshot>) + Send + Sync>;

/// The OpenMetrics content type Prometheus negotiates.
const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Serves `GET /metrics` on `addr` from `source`; returns the bound address (port 0 picks
/// a free one).
///
/// # Errors
/// [`CliError::BadInput`] when `addr` cannot be bound.
pub(crate) fn serve(addr: SocketAddr, source: CountersSource) -> Result<SocketAddr, CliError> {
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
                    let (counters, peers) = source();
                    tiny_http::Response::from_string(render(&counters, &peers))
                        .with_header(header.clone())
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

/// The exposition of one scrape.
fn render(counters: &CountersSnapshot, peers: &[PeerSnapshot]) -> String {
    let mut registry = Registry::default();
    register_cometbft(
        registry.sub_registry_with_prefix("cometbft_p2p"),
        counters,
        peers,
    );
    register_ours(registry.sub_registry_with_prefix("tmp2p"), counters, peers);
    let mut out = String::new();
    if encode(&mut out, &registry).is_err() {
        out.clear();
    }
    out
}

/// CometBFT's p2p metrics that our counters measure the same way.
fn register_cometbft(registry: &mut Registry, counters: &CountersSnapshot, peers: &[PeerSnapshot]) {
    let connected = Gauge::<i64>::default();
    connected.set(i64::try_from(peers.len()).unwrap_or(i64::MAX));
    registry.register("peers", "Number of peers", connected);
    let received = counter_family();
    let sent = counter_family();
    for peer in peers {
        for channel in &peer.channels {
            let labels = vec![
                ("peer_id", peer.node.to_string()),
                ("chID", format!("{:#x}", channel.channel)),
            ];
            received
                .get_or_create(&labels)
                .inc_by(channel.received_bytes);
            sent.get_or_create(&labels).inc_by(channel.sent_bytes);
        }
    }
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
    let pending = gauge_family();
    for peer in peers {
        let bytes = peer
            .channels
            .iter()
            .fold(0u64, |sum, c| sum.saturating_add(c.queued_bytes));
        pending
            .get_or_create(&vec![("peer_id", peer.node.to_string())])
            .set(i64::try_from(bytes).unwrap_or(i64::MAX));
    }
    registry.register(
        "peer_pending_send_bytes",
        "Pending bytes to be sent to a given peer",
        pending,
    );
    // Per message type, as CometBFT labels them (Go package and type). Only the built-in
    // PEX channel's messages have a type here: raw channels carry bytes.
    let (received, sent) = (counter_family(), counter_family());
    for kind in [PexMessageType::Request, PexMessageType::Addrs] {
        let labels = vec![("message_type", kind.metric_label().to_owned())];
        received
            .get_or_create(&labels)
            .inc_by(counters.pex_bytes(kind, false));
        sent.get_or_create(&labels)
            .inc_by(counters.pex_bytes(kind, true));
    }
    registry.register(
        "message_receive_bytes",
        "Number of bytes of each message type received",
        received,
    );
    registry.register(
        "message_send_bytes",
        "Number of bytes of each message type sent",
        sent,
    );
}

/// Ours: node totals by outcome and reason, and per peer and channel what CometBFT does
/// not count.
fn register_ours(registry: &mut Registry, c: &CountersSnapshot, peers: &[PeerSnapshot]) {
    let totals = [
        (
            "sent_messages",
            "Messages handed to connections",
            c.sent_messages,
        ),
        (
            "sent_bytes",
            "Payload bytes handed to connections",
            c.sent_bytes,
        ),
        (
            "received_messages",
            "Messages received",
            c.received_messages,
        ),
        ("received_bytes", "Payload bytes received", c.received_bytes),
        (
            "undelivered_inbound_messages",
            "Received messages the application never took (their peer went away first)",
            c.undelivered_inbound,
        ),
        (
            "pex_addresses_received",
            "Addresses in the PEX answers received",
            c.pex_addresses_received,
        ),
        (
            "pex_addresses_accepted",
            "Addresses from PEX answers the peer store took as new",
            c.pex_addresses_new,
        ),
        (
            "store_transactions",
            "Peer-store write transactions",
            c.store_transactions,
        ),
        (
            "store_operations",
            "Peer-store record writes and deletions",
            c.store_operations,
        ),
    ];
    for (name, help, value) in totals {
        let counter = Counter::<u64>::default();
        counter.inc_by(value);
        registry.register(name, help, counter);
    }
    let outcome = |pairs: &[(&str, u64)], family: &Family<Labels, Counter>| {
        for (label, value) in pairs {
            family
                .get_or_create(&vec![("outcome", (*label).to_owned())])
                .inc_by(*value);
        }
    };
    let dials = counter_family();
    outcome(
        &[("succeeded", c.dials_succeeded), ("failed", c.dials_failed)],
        &dials,
    );
    registry.register("dials", "Dials by outcome", dials);
    let handshakes = counter_family();
    outcome(
        &[
            ("succeeded", c.handshakes_succeeded),
            ("auth_failure", c.handshakes_auth_failure),
            ("invalid_node_info", c.handshakes_invalid_node_info),
            ("incompatible", c.handshakes_incompatible),
            ("self", c.handshakes_self),
            ("other_failure", c.handshakes_other_failure),
        ],
        &handshakes,
    );
    registry.register("handshakes", "Handshakes by outcome", handshakes);
    let dropped = counter_family();
    for (reason, value) in [
        ("queue_full", c.dropped_queue_full),
        ("peer_gone", c.dropped_peer_gone),
        ("not_connected", c.dropped_not_connected),
        ("no_channel", c.dropped_no_channel),
        ("channel_not_open", c.dropped_channel_not_open),
    ] {
        dropped
            .get_or_create(&vec![("reason", reason.to_owned())])
            .inc_by(value);
    }
    registry.register("dropped_messages", "Messages dropped, by reason", dropped);
    register_peers(registry, peers);
}

/// Per peer and channel: messages each way and the outbound queue; per peer: inbound
/// messages held for a full application channel.
fn register_peers(registry: &mut Registry, peers: &[PeerSnapshot]) {
    let sent = counter_family();
    let received = counter_family();
    let queued = gauge_family();
    let held = gauge_family();
    for peer in peers {
        let id = peer.node.to_string();
        for channel in &peer.channels {
            let labels = vec![
                ("peer_id", id.clone()),
                ("chID", format!("{:#x}", channel.channel)),
            ];
            sent.get_or_create(&labels).inc_by(channel.sent_messages);
            received
                .get_or_create(&labels)
                .inc_by(channel.received_messages);
            queued
                .get_or_create(&labels)
                .set(i64::try_from(channel.queued).unwrap_or(i64::MAX));
        }
        held.get_or_create(&vec![("peer_id", id)])
            .set(i64::try_from(peer.inbound_held).unwrap_or(i64::MAX));
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
    let rtt = PeerRtts(
        peers
            .iter()
            .map(|p| (p.node.to_string(), p.rtt.clone()))
            .collect(),
    );
    registry.register(
        "peer_ping_rtt_seconds",
        "MConnection ping round-trip times, per peer",
        rtt,
    );
}

/// Each peer's ping round-trip histogram, as the node machine counted it (the buckets
/// are [`RTT_BUCKETS_SECONDS`]); encoded at scrape time from the snapshot.
#[derive(Debug)]
struct PeerRtts(Vec<(String, RttSnapshot)>);

impl EncodeMetric for PeerRtts {
    fn encode(&self, mut encoder: MetricEncoder<'_>) -> Result<(), std::fmt::Error> {
        for (peer, rtt) in &self.0 {
            let bounds = RTT_BUCKETS_SECONDS.iter().copied().chain([f64::INFINITY]);
            let buckets: Vec<(f64, u64)> = bounds.zip(rtt.buckets.iter().copied()).collect();
            let labels = [("peer_id", peer.as_str())];
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
