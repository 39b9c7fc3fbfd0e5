//! `tmp2p observe`'s summary: height progress and block interval, votes per height, round
//! and type, block parts, transactions, and per peer how much later than the first peer it
//! delivered the same vote or transaction. Memory is bounded whatever peers send: the last
//! [`HEIGHTS_KEPT`] heights, each with at most [`VOTES_PER_HEIGHT`] votes and
//! [`PARTS_PER_HEIGHT`] parts tallied; the last [`ITEMS_KEPT`] votes and transactions for
//! first-seen matching; the last [`LAGS_KEPT`] lags per peer.

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::fmt::Write as _;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use tmp2p_core::round_follower::is_valid_round_step;
use tmp2p_core::typed::cometbft::{ConsensusInner, MempoolInner};
use tmp2p_core::NodeId;

use crate::observe_line::{short_id, tx_hash, vote_type_name, Observed};

/// Heights whose votes and parts are kept (the worst case, every height at both bounds
/// below, is about 10 MB).
const HEIGHTS_KEPT: usize = 20;
/// Votes tallied per height: two types for CometBFT's largest validator set
/// (`MaxVotesCount`, 10 000), with room for a few rounds of a normal set. Beyond it a
/// height's votes still count per peer but add no new voter.
const VOTES_PER_HEIGHT: usize = 20_000;
/// Block parts tallied per height: a 100 MiB block (CometBFT's largest) in 64 KiB parts
/// is 1 600; beyond the bound parts still count per message but add no new part.
const PARTS_PER_HEIGHT: usize = 4_096;
/// Votes and transactions remembered to match copies from other peers.
const ITEMS_KEPT: usize = 100_000;
/// Lags kept per peer for its percentiles.
const LAGS_KEPT: usize = 10_000;
/// Heights shown in the plain summary's vote table.
const HEIGHTS_SHOWN: usize = 5;

/// A vote or a transaction, as peers relay the same one.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Item {
    /// Height, round, type and validator index.
    Vote(i64, i32, i32, i32),
    /// The tx hash.
    Tx(String),
}

/// One height's tallies.
#[derive(Debug, Default)]
struct HeightTally {
    /// When a peer first announced this height.
    announced: Option<Instant>,
    /// Validators seen voting, per round and type.
    votes: BTreeMap<(i32, i32), BTreeSet<i32>>,
    /// Block parts seen, by round and index (at most [`PARTS_PER_HEIGHT`]).
    parts: BTreeSet<(i32, u32)>,
    /// Votes in `votes`, all rounds and types (at most [`VOTES_PER_HEIGHT`]).
    tallied_votes: usize,
    /// Proposals seen.
    proposals: u32,
}

/// One peer's tallies.
#[derive(Debug, Default)]
struct PeerTally {
    messages: u64,
    votes: u64,
    txs: u64,
    /// Items this peer delivered before any other peer.
    first: u64,
    /// How long after the first peer it delivered the others (the latest [`LAGS_KEPT`]).
    lags: VecDeque<Duration>,
}

/// Everything observed so far.
#[derive(Debug)]
pub(crate) struct Summary {
    started: Instant,
    heights: BTreeMap<i64, HeightTally>,
    lowest_height: Option<i64>,
    highest_height: Option<i64>,
    unique_votes: u64,
    unique_parts: u64,
    txs: u64,
    tx_bytes: u64,
    messages: u64,
    first_seen: HashMap<Item, (Instant, NodeId)>,
    first_seen_order: VecDeque<Item>,
    peers: BTreeMap<NodeId, PeerTally>,
}

impl Summary {
    /// An empty summary starting at `now`.
    pub(crate) fn new(now: Instant) -> Self {
        Summary {
            started: now,
            heights: BTreeMap::new(),
            lowest_height: None,
            highest_height: None,
            unique_votes: 0,
            unique_parts: 0,
            txs: 0,
            tx_bytes: 0,
            messages: 0,
            first_seen: HashMap::new(),
            first_seen_order: VecDeque::new(),
            peers: BTreeMap::new(),
        }
    }

    /// Counts `message`, received from `peer` at `now`.
    pub(crate) fn record(&mut self, now: Instant, peer: NodeId, message: &Observed) {
        self.messages = self.messages.saturating_add(1);
        let tally = self.peers.entry(peer).or_default();
        tally.messages = tally.messages.saturating_add(1);
        match message {
            // Only states CometBFT itself would accept (the follower's check) set heights.
            Observed::Consensus(ConsensusInner::NewRoundStep(step))
                if is_valid_round_step(step) =>
            {
                let h = step.height;
                self.lowest_height = Some(self.lowest_height.map_or(h, |low| low.min(h)));
                self.highest_height = Some(self.highest_height.map_or(h, |high| high.max(h)));
                if let Some(tally) = self.height(h) {
                    tally.announced.get_or_insert(now);
                }
            }
            Observed::Consensus(ConsensusInner::Proposal(m)) => {
                if let Some(tally) = m.proposal.as_ref().and_then(|p| self.height(p.height)) {
                    tally.proposals = tally.proposals.saturating_add(1);
                }
            }
            Observed::Consensus(ConsensusInner::BlockPart(m)) => {
                let index = m.part.as_ref().map_or(0, |p| p.index);
                if let Some(tally) = self.height(m.height) {
                    if tally.parts.len() < PARTS_PER_HEIGHT && tally.parts.insert((m.round, index))
                    {
                        self.unique_parts = self.unique_parts.saturating_add(1);
                    }
                }
            }
            Observed::Consensus(ConsensusInner::Vote(m)) => {
                if let Some(v) = &m.vote {
                    if let Some(tally) = self.peers.get_mut(&peer) {
                        tally.votes = tally.votes.saturating_add(1);
                    }
                    if let Some(tally) = self.height(v.height) {
                        if tally.tallied_votes < VOTES_PER_HEIGHT
                            && tally
                                .votes
                                .entry((v.round, v.r#type))
                                .or_default()
                                .insert(v.validator_index)
                        {
                            tally.tallied_votes = tally.tallied_votes.saturating_add(1);
                            self.unique_votes = self.unique_votes.saturating_add(1);
                        }
                    }
                    let item = Item::Vote(v.height, v.round, v.r#type, v.validator_index);
                    self.first_seen(now, peer, item);
                }
            }
            Observed::Mempool(MempoolInner::Txs(txs)) => {
                for tx in &txs.txs {
                    if let Some(tally) = self.peers.get_mut(&peer) {
                        tally.txs = tally.txs.saturating_add(1);
                    }
                    if self.first_seen(now, peer, Item::Tx(tx_hash(tx))) {
                        self.txs = self.txs.saturating_add(1);
                        self.tx_bytes = self
                            .tx_bytes
                            .saturating_add(u64::try_from(tx.len()).unwrap_or(u64::MAX));
                    }
                }
            }
            Observed::Consensus(_) | Observed::Evidence(_) => {}
        }
    }

    /// The tallies of `height`, dropping the lowest heights past [`HEIGHTS_KEPT`]. None for
    /// a height no block can have (below 1), or one below every kept height when all
    /// [`HEIGHTS_KEPT`] are taken (an old height never evicts a newer one).
    fn height(&mut self, height: i64) -> Option<&mut HeightTally> {
        if height < 1 {
            return None;
        }
        if !self.heights.contains_key(&height) && self.heights.len() >= HEIGHTS_KEPT {
            if self
                .heights
                .keys()
                .next()
                .is_some_and(|&lowest| height < lowest)
            {
                return None;
            }
            self.heights.pop_first();
        }
        Some(self.heights.entry(height).or_default())
    }

    /// Notes `peer` delivering `item` at `now`: true when no peer had delivered it before.
    fn first_seen(&mut self, now: Instant, peer: NodeId, item: Item) -> bool {
        let Some(tally) = self.peers.get_mut(&peer) else {
            return false;
        };
        if let Some((at, first_peer)) = self.first_seen.get(&item) {
            if *first_peer != peer {
                if tally.lags.len() >= LAGS_KEPT {
                    tally.lags.pop_front();
                }
                tally.lags.push_back(now.saturating_duration_since(*at));
            }
            return false;
        }
        tally.first = tally.first.saturating_add(1);
        if self.first_seen_order.len() >= ITEMS_KEPT {
            if let Some(oldest) = self.first_seen_order.pop_front() {
                self.first_seen.remove(&oldest);
            }
        }
        self.first_seen_order.push_back(item.clone());
        self.first_seen.insert(item, (now, peer));
        true
    }

    /// Mean time between consecutive heights' first announcements, and the last one.
    fn block_intervals(&self) -> Option<(Duration, Duration)> {
        let announced: Vec<(i64, Instant)> = self
            .heights
            .iter()
            .filter_map(|(h, t)| t.announced.map(|at| (*h, at)))
            .collect();
        let gaps: Vec<Duration> = announced
            .windows(2)
            .filter_map(|pair| match pair {
                [(h0, t0), (h1, t1)] if *h1 == h0.saturating_add(1) => {
                    Some(t1.saturating_duration_since(*t0))
                }
                _ => None,
            })
            .collect();
        let last = *gaps.last()?;
        let count = u32::try_from(gaps.len()).unwrap_or(u32::MAX);
        Some((gaps.iter().sum::<Duration>() / count, last))
    }

    /// The plain summary, several lines.
    pub(crate) fn plain(&self, now: Instant) -> String {
        let mut out = String::new();
        let elapsed = now.saturating_duration_since(self.started).as_secs_f64();
        let _ = writeln!(
            out,
            "summary after {elapsed:.1} s: {} message(s) from {} peer(s)",
            self.messages,
            self.peers.len()
        );
        match (self.lowest_height, self.highest_height) {
            (Some(low), Some(high)) => {
                let _ = write!(out, "heights {low}..{high}");
                if let Some((mean, last)) = self.block_intervals() {
                    let _ = write!(
                        out,
                        ", block interval mean {:.2} s, last {:.2} s",
                        mean.as_secs_f64(),
                        last.as_secs_f64()
                    );
                }
                out.push('\n');
            }
            _ => out.push_str("no height announced yet\n"),
        }
        for (height, tally) in self.heights.iter().rev().take(HEIGHTS_SHOWN) {
            for ((round, kind), voters) in &tally.votes {
                let _ = writeln!(
                    out,
                    "  height {height} round {round}: {} {}(s)",
                    voters.len(),
                    vote_type_name(*kind)
                );
            }
        }
        let _ = writeln!(
            out,
            "votes {}, block parts {}, txs {} ({} bytes)",
            self.unique_votes, self.unique_parts, self.txs, self.tx_bytes
        );
        let _ = writeln!(
            out,
            "{:<12} {:>8} {:>7} {:>7} {:>6} {:>10} {:>10} {:>10}",
            "peer", "messages", "votes", "txs", "first", "lag p50", "lag p90", "lag max"
        );
        for (peer, tally) in &self.peers {
            let lags = percentiles(&tally.lags);
            let cell = |d: Option<Duration>| {
                d.map_or("-".to_owned(), |d| {
                    format!("{:.1} ms", d.as_secs_f64() * 1e3)
                })
            };
            let _ = writeln!(
                out,
                "{:<12} {:>8} {:>7} {:>7} {:>6} {:>10} {:>10} {:>10}",
                short_id(peer),
                tally.messages,
                tally.votes,
                tally.txs,
                tally.first,
                cell(lags.map(|l| l.0)),
                cell(lags.map(|l| l.1)),
                cell(lags.map(|l| l.2)),
            );
        }
        out
    }

    /// The summary as one JSON object (`{"summary": {...}}`).
    pub(crate) fn json(&self, now: Instant) -> Value {
        let votes: Vec<Value> = self
            .heights
            .iter()
            .flat_map(|(height, tally)| {
                tally.votes.iter().map(move |((round, kind), voters)| {
                    json!({ "height": height, "round": round, "type": vote_type_name(*kind),
                            "validators": voters.len() })
                })
            })
            .collect();
        let peers: Vec<Value> = self
            .peers
            .iter()
            .map(|(peer, tally)| {
                let lags = percentiles(&tally.lags);
                let ms = |d: Duration| d.as_secs_f64() * 1e3;
                json!({
                    "peer": peer.to_string(), "messages": tally.messages, "votes": tally.votes,
                    "txs": tally.txs, "first": tally.first, "lagged": tally.lags.len(),
                    "lag_ms_p50": lags.map(|l| ms(l.0)), "lag_ms_p90": lags.map(|l| ms(l.1)),
                    "lag_ms_max": lags.map(|l| ms(l.2)),
                })
            })
            .collect();
        let intervals = self.block_intervals();
        json!({ "summary": {
            "elapsed_s": now.saturating_duration_since(self.started).as_secs_f64(),
            "messages": self.messages,
            "lowest_height": self.lowest_height,
            "highest_height": self.highest_height,
            "block_interval_mean_s": intervals.map(|i| i.0.as_secs_f64()),
            "block_interval_last_s": intervals.map(|i| i.1.as_secs_f64()),
            "votes": self.unique_votes,
            "votes_by_height": votes,
            "block_parts": self.unique_parts,
            "txs": self.txs,
            "tx_bytes": self.tx_bytes,
            "peers": peers,
        }})
    }
}

/// p50, p90 and max of `lags` (nearest rank), none when empty.
fn percentiles(lags: &VecDeque<Duration>) -> Option<(Duration, Duration, Duration)> {
    let mut sorted: Vec<Duration> = lags.iter().copied().collect();
    sorted.sort_unstable();
    let rank = |p: usize| {
        let index = (sorted.len().saturating_mul(p).div_ceil(100)).saturating_sub(1);
        sorted.get(index).copied()
    };
    Some((rank(50)?, rank(90)?, *sorted.last()?))
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use tmp2p_proto::consensus::{self, NewRoundStep};
    use tmp2p_proto::mempool::Txs;
    use tmp2p_proto::types::Vote;

    fn step(height: i64) -> Observed {
        Observed::Consensus(ConsensusInner::NewRoundStep(NewRoundStep {
            height,
            round: 0,
            step: 1,
            seconds_since_start_time: 0,
            last_commit_round: 0,
        }))
    }

    fn vote(height: i64, kind: i32, validator: i32) -> Observed {
        Observed::Consensus(ConsensusInner::Vote(consensus::Vote {
            vote: Some(Vote {
                r#type: kind,
                height,
                validator_index: validator,
                ..Vote::default()
            }),
        }))
    }

    fn tx(bytes: &'static [u8]) -> Observed {
        Observed::Mempool(MempoolInner::Txs(Txs {
            txs: vec![Bytes::from_static(bytes)],
        }))
    }

    #[test]
    fn heights_votes_and_txs_are_tallied_once_each() {
        let t0 = Instant::now();
        let (a, b) = (NodeId::from_bytes([1; 20]), NodeId::from_bytes([2; 20]));
        let mut summary = Summary::new(t0);
        summary.record(t0, a, &step(10));
        summary.record(t0 + Duration::from_secs(5), a, &step(11));
        summary.record(t0 + Duration::from_secs(11), a, &step(12));
        summary.record(t0, a, &vote(11, 1, 0));
        summary.record(t0, a, &vote(11, 1, 1));
        summary.record(t0, b, &vote(11, 1, 1));
        summary.record(t0, a, &vote(11, 2, 1));
        summary.record(t0, a, &tx(b"tx-one"));
        summary.record(t0, b, &tx(b"tx-one"));
        let json = summary.json(t0 + Duration::from_secs(12));
        let s = &json["summary"];
        assert_eq!(s["lowest_height"], 10);
        assert_eq!(s["highest_height"], 12);
        assert_eq!(s["block_interval_mean_s"], 5.5);
        assert_eq!(s["block_interval_last_s"], 6.0);
        assert_eq!(s["votes"], 3, "validator 1's prevote counted once");
        assert_eq!(s["txs"], 1);
        assert_eq!(s["tx_bytes"], 6);
        assert_eq!(s["votes_by_height"][0]["validators"], 2);
        assert_eq!(s["votes_by_height"][1]["type"], "precommit");
        let plain = summary.plain(t0 + Duration::from_secs(12));
        assert!(
            plain.contains("heights 10..12, block interval mean 5.50 s, last 6.00 s"),
            "{plain}"
        );
        assert!(plain.contains("height 11 round 0: 2 prevote(s)"), "{plain}");
    }

    #[test]
    fn each_peer_lag_is_measured_from_the_first_peer_to_deliver() {
        let t0 = Instant::now();
        let (fast, slow) = (NodeId::from_bytes([1; 20]), NodeId::from_bytes([2; 20]));
        let mut summary = Summary::new(t0);
        for i in 0..10 {
            let at = t0 + Duration::from_millis(100 * i);
            summary.record(at, fast, &vote(5, 1, i32::try_from(i).unwrap()));
            summary.record(
                at + Duration::from_millis(i + 1),
                slow,
                &vote(5, 1, i32::try_from(i).unwrap()),
            );
        }
        // The slow peer is first for one tx.
        summary.record(t0, slow, &tx(b"x"));
        summary.record(t0 + Duration::from_millis(40), fast, &tx(b"x"));
        let json = summary.json(t0 + Duration::from_secs(2));
        let peers = json["summary"]["peers"].as_array().unwrap();
        let (f, s) = (&peers[0], &peers[1]);
        assert_eq!(f["first"], 10);
        assert_eq!(f["lagged"], 1);
        assert_eq!(f["lag_ms_max"], 40.0);
        assert_eq!(s["first"], 1);
        assert_eq!(s["lagged"], 10);
        assert_eq!(s["lag_ms_p50"], 5.0);
        assert_eq!(s["lag_ms_p90"], 9.0);
        assert_eq!(s["lag_ms_max"], 10.0);
    }

    #[test]
    fn only_the_latest_heights_are_kept() {
        let t0 = Instant::now();
        let peer = NodeId::from_bytes([1; 20]);
        let mut summary = Summary::new(t0);
        for height in 1..=300 {
            summary.record(t0, peer, &vote(height, 1, 0));
        }
        assert_eq!(summary.heights.len(), HEIGHTS_KEPT);
        let lowest = 301 - i64::try_from(HEIGHTS_KEPT).unwrap();
        assert_eq!(summary.heights.keys().next(), Some(&lowest));
        assert_eq!(summary.unique_votes, 300);
        // An older height, or one no block has, never evicts a kept one.
        summary.record(t0, peer, &vote(5, 1, 0));
        summary.record(t0, peer, &vote(-3, 1, 0));
        summary.record(t0, peer, &step(i64::MIN));
        assert_eq!(summary.heights.keys().next(), Some(&lowest));
        assert_eq!(summary.unique_votes, 300);
        assert_eq!(summary.lowest_height, None, "no valid round step was seen");
    }

    #[test]
    fn a_flood_of_made_up_voters_and_parts_at_one_height_is_bounded() {
        let t0 = Instant::now();
        let peer = NodeId::from_bytes([1; 20]);
        let mut summary = Summary::new(t0);
        for validator in 0..30_000 {
            summary.record(t0, peer, &vote(7, 1 + validator % 2, validator));
        }
        for index in 0..10_000u32 {
            let part = Observed::Consensus(ConsensusInner::BlockPart(consensus::BlockPart {
                height: 7,
                round: 0,
                part: Some(tmp2p_proto::types::Part {
                    index,
                    ..Default::default()
                }),
            }));
            summary.record(t0, peer, &part);
        }
        let tally = &summary.heights[&7];
        let voters: usize = tally.votes.values().map(BTreeSet::len).sum();
        assert_eq!(
            (voters, tally.tallied_votes),
            (VOTES_PER_HEIGHT, VOTES_PER_HEIGHT)
        );
        assert_eq!(tally.parts.len(), PARTS_PER_HEIGHT);
        // Every message still counts for its peer.
        assert_eq!(summary.peers[&peer].votes, 30_000);
        assert_eq!(summary.peers[&peer].messages, 40_000);
    }
}
