//! `tmp2p node` on a terminal: instead of one line per peer going up or down, a table of
//! the connected peers redrawn every second (direction, address, ping round trip, bytes
//! per second each way, shared channels, time connected) with the last few peer events
//! under it. Read from the same lock-free counters as the metrics; on anything but a
//! terminal the node prints plain lines ([`UpdateSink::Lines`]).

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::fmt::Write as _;
use std::io::{IsTerminal as _, Write as _};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use tmp2p_core::peer_manager::{PeerStatus, PeerUpdate};
use tmp2p_core::router::PeerSnapshot;
use tmp2p_core::NodeId;

use crate::metrics::CountersSource;

/// How often the table is redrawn.
const REFRESH: Duration = Duration::from_secs(1);
/// Peer events kept under the table.
const EVENTS_SHOWN: usize = 5;

/// Where `tmp2p node` reports its peers going up and down.
pub(crate) enum UpdateSink {
    /// One plain line per update (stdout is not a terminal); the connected set counts them.
    Lines(BTreeSet<NodeId>),
    /// The live table's thread.
    Live(mpsc::Sender<PeerUpdate>),
}

impl UpdateSink {
    /// The live table when stdout is a terminal, plain lines otherwise. `title` heads the
    /// table (the node's id and address).
    pub(crate) fn for_stdout(source: CountersSource, title: String) -> Self {
        if !std::io::stdout().is_terminal() {
            return UpdateSink::Lines(BTreeSet::new());
        }
        let (tx, rx) = mpsc::channel();
        let spawned = std::thread::Builder::new()
            .name("live-view".into())
            .spawn(move || run(&rx, &source, LiveView::new(title)));
        match spawned {
            Ok(_) => UpdateSink::Live(tx),
            Err(error) => {
                tracing::warn!(%error, "no live view: printing peer lines instead");
                UpdateSink::Lines(BTreeSet::new())
            }
        }
    }

    /// Reports one update.
    pub(crate) fn update(&mut self, update: &PeerUpdate) {
        match self {
            UpdateSink::Lines(connected) => crate::node::print_update(connected, update),
            UpdateSink::Live(tx) => {
                let _ = tx.send(update.clone());
            }
        }
    }
}

/// Redraws every [`REFRESH`] and at each update, until the sender is dropped.
fn run(updates: &mpsc::Receiver<PeerUpdate>, source: &CountersSource, mut view: LiveView) {
    loop {
        match updates.recv_timeout(REFRESH) {
            Ok(update) => view.record(Instant::now(), &update),
            Err(mpsc::RecvTimeoutError::Timeout) => {}
            Err(mpsc::RecvTimeoutError::Disconnected) => return,
        }
        let (_, peers) = source();
        let screen = view.render(Instant::now(), &peers);
        let mut out = std::io::stdout().lock();
        // Cursor home, clear the screen, draw; a closed stdout ends nothing.
        let _ = write!(out, "\x1b[H\x1b[2J{screen}");
        let _ = out.flush();
    }
}

/// The table's state: the previous byte totals (for rates) and the recent events.
pub(crate) struct LiveView {
    title: String,
    started: Instant,
    /// Per peer: when its totals were read, bytes received, bytes sent.
    previous: BTreeMap<NodeId, (Instant, u64, u64)>,
    events: VecDeque<String>,
}

impl LiveView {
    pub(crate) fn new(title: String) -> Self {
        LiveView {
            title,
            started: Instant::now(),
            previous: BTreeMap::new(),
            events: VecDeque::new(),
        }
    }

    /// Keeps `update` for the events under the table.
    pub(crate) fn record(&mut self, now: Instant, update: &PeerUpdate) {
        let status = match update.status {
            PeerStatus::Up => "up",
            PeerStatus::Down => "down",
        };
        let at = format_age(now.saturating_duration_since(self.started));
        self.events
            .push_back(format!("+{at:>7}  peer {} {status}", update.node_id));
        while self.events.len() > EVENTS_SHOWN {
            self.events.pop_front();
        }
    }

    /// The screen for `peers` at `now`; rates are over the time since the last render.
    pub(crate) fn render(&mut self, now: Instant, peers: &[PeerSnapshot]) -> String {
        let mut out = String::new();
        let plural = if peers.len() == 1 { "" } else { "s" };
        let _ = writeln!(out, "{}  ({} peer{plural})\n", self.title, peers.len());
        let _ = writeln!(
            out,
            "{:<12}  {:<16}  {:<10}  {:<3}  {:<21}  {:>8}  {:>10}  {:>10}  {:<14}  {:>7}",
            "PEER",
            "MONIKER",
            "VERSION",
            "DIR",
            "ADDRESS",
            "RTT",
            "IN/s",
            "OUT/s",
            "CHANNELS",
            "UP"
        );
        let mut seen = BTreeMap::new();
        for peer in peers {
            let received = peer
                .channels
                .iter()
                .fold(0u64, |n, c| n.saturating_add(c.received_bytes));
            let sent = peer
                .channels
                .iter()
                .fold(0u64, |n, c| n.saturating_add(c.sent_bytes));
            let (rate_in, rate_out) = match self.previous.get(&peer.node) {
                Some(&(at, was_in, was_out)) => {
                    let seconds = now.saturating_duration_since(at).as_secs_f64();
                    (
                        rate(received.saturating_sub(was_in), seconds),
                        rate(sent.saturating_sub(was_out), seconds),
                    )
                }
                None => ("-".to_owned(), "-".to_owned()),
            };
            seen.insert(peer.node, (now, received, sent));
            let id = peer.node.to_string();
            let channels: Vec<String> = peer
                .channels
                .iter()
                .map(|c| format!("{:02x}", c.channel))
                .collect();
            let _ = writeln!(
                out,
                "{:<12}  {:<16}  {:<10}  {:<3}  {:<21}  {:>8}  {:>10}  {:>10}  {:<14}  {:>7}",
                id.get(..12).unwrap_or(&id),
                // Both are printable ASCII (NodeInfo validation), so safe on a terminal.
                clip(&peer.origin.info.moniker, 16),
                clip(&peer.origin.info.version, 10),
                if peer.origin.outbound { "out" } else { "in" },
                peer.origin.remote.to_string(),
                peer.rtt.last.map_or_else(|| "-".to_owned(), format_rtt),
                rate_in,
                rate_out,
                channels.join(","),
                format_age(now.saturating_duration_since(peer.origin.since)),
            );
        }
        self.previous = seen;
        if !self.events.is_empty() {
            out.push('\n');
            for event in &self.events {
                let _ = writeln!(out, "{event}");
            }
        }
        out
    }
}

/// At most `width` characters of `text`.
fn clip(text: &str, width: usize) -> String {
    text.chars().take(width).collect()
}

/// Bytes per second, in B/KB/MB (powers of 1000, as network rates go).
fn rate(bytes: u64, seconds: f64) -> String {
    if seconds <= 0.0 {
        return "-".to_owned();
    }
    let per_second = bytes as f64 / seconds;
    match per_second {
        r if r >= 1e6 => format!("{:.1} MB", r / 1e6),
        r if r >= 1e3 => format!("{:.1} KB", r / 1e3),
        r => format!("{r:.0} B"),
    }
}

fn format_rtt(rtt: Duration) -> String {
    let ms = rtt.as_secs_f64() * 1e3;
    if ms < 10.0 {
        format!("{ms:.2}ms")
    } else {
        format!("{ms:.0}ms")
    }
}

/// `42s`, `3m05s`, `2h07m`, `3d04h`.
fn format_age(age: Duration) -> String {
    let s = age.as_secs();
    match s {
        0..=59 => format!("{s}s"),
        60..=3599 => format!("{}m{:02}s", s / 60, s % 60),
        3600..=86_399 => format!("{}h{:02}m", s / 3600, s % 3600 / 60),
        _ => format!("{}d{:02}h", s / 86_400, s % 86_400 / 3600),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tmp2p_core::node_config::NodeConfig;
    use tmp2p_core::router::{ChannelSnapshot, PeerOrigin, RttSnapshot};

    fn peer(id: u8, outbound: bool, since: Instant, received: u64, sent: u64) -> PeerSnapshot {
        PeerSnapshot {
            node: NodeId::from_bytes([id; 20]),
            origin: PeerOrigin {
                outbound,
                remote: "10.1.2.3:26656".parse().unwrap(),
                since,
                info: {
                    let mut config = NodeConfig::new("c", "127.0.0.1:1".parse().unwrap());
                    config.moniker = "validator-with-a-long-name".into();
                    config.version = "0.38.25".into();
                    std::sync::Arc::new(config.node_info(NodeId::from_bytes([id; 20])))
                },
            },
            rtt: RttSnapshot {
                last: Some(Duration::from_micros(420)),
                buckets: vec![1],
                sum: Duration::from_micros(420),
            },
            channels: [0x00, 0x99]
                .into_iter()
                .map(|channel| ChannelSnapshot {
                    channel,
                    received_bytes: received / 2,
                    sent_bytes: sent / 2,
                    ..ChannelSnapshot::default()
                })
                .collect(),
            dropped_queue_full: 0,
            dropped_peer_gone: 0,
            inbound_held: 0,
        }
    }

    #[test]
    fn rows_show_each_peer_with_rates_over_the_last_interval() {
        let t0 = Instant::now();
        let mut view = LiveView::new("node abc on 127.0.0.1:1".into());
        let first = view.render(t0, &[peer(0xab, true, t0, 1_000, 0)]);
        assert!(first.contains("(1 peer)"), "{first}");
        let row = first
            .lines()
            .find(|l| l.starts_with("abababababab"))
            .unwrap();
        // No rate before a second reading.
        let words: Vec<&str> = row.split_whitespace().collect();
        assert_eq!(
            words,
            [
                "abababababab",
                "validator-with-a",
                "0.38.25",
                "out",
                "10.1.2.3:26656",
                "0.42ms",
                "-",
                "-",
                "00,99",
                "0s"
            ]
        );

        let t1 = t0 + Duration::from_secs(2);
        view.record(
            t1,
            &PeerUpdate {
                node_id: NodeId::from_bytes([0xcd; 20]),
                status: PeerStatus::Up,
                channels: Default::default(),
            },
        );
        let second = view.render(
            t1,
            &[
                peer(0xab, true, t0, 1_000 + 5_000_000, 4_000),
                peer(0xcd, false, t1, 0, 0),
            ],
        );
        let row = second
            .lines()
            .find(|l| l.starts_with("abababababab"))
            .unwrap();
        assert!(
            row.contains("2.5 MB") && row.contains("2.0 KB") && row.ends_with("2s"),
            "{row}"
        );
        let new = second
            .lines()
            .find(|l| l.starts_with("cdcdcdcdcdcd"))
            .unwrap();
        assert!(new.contains(" in "), "{new}");
        assert!(
            second.contains("peer cdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcd up"),
            "{second}"
        );
    }

    #[test]
    fn ages_and_round_trips_read_well() {
        assert_eq!(format_age(Duration::from_secs(59)), "59s");
        assert_eq!(format_age(Duration::from_secs(185)), "3m05s");
        assert_eq!(format_age(Duration::from_secs(7_620)), "2h07m");
        assert_eq!(format_age(Duration::from_secs(273_600)), "3d04h");
        assert_eq!(format_rtt(Duration::from_millis(85)), "85ms");
        assert_eq!(rate(999, 1.0), "999 B");
        assert_eq!(rate(1, 0.0), "-");
    }
}
