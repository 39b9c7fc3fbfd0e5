//! What `tmp2p observe` prints for one received message: [`Sighting`] (when, from whom,
//! on which channel, what) and its one-line rendering, plain or JSON. Both renderings
//! come from one list of named fields ([`describe`]), so they never disagree.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use serde_json::{json, Map, Value};
use sha2::{Digest as _, Sha256};
use tmp2p_core::typed::cometbft::{ConsensusInner, MempoolInner};
use tmp2p_core::NodeId;
use tmp2p_proto::types::{self, BitArray, BlockId, EvidenceList, EvidenceSum};

/// Hex characters of a hash shown in plain lines (JSON has the whole hash).
const PLAIN_HASH_CHARS: usize = 16;
/// Transactions or evidence items a line lists; the rest are counted (`more`). A peer's
/// 1 MiB message of empty items would otherwise make a line of half a million entries.
const ITEMS_LISTED: usize = 64;

/// A decoded message from a reactor channel.
// Moved once from its channel to the printer: boxing would only add an allocation.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Observed {
    /// Channels 0x20–0x23.
    Consensus(ConsensusInner),
    /// Channel 0x30.
    Mempool(MempoolInner),
    /// Channel 0x38.
    Evidence(EvidenceList),
}

/// One message as it arrived.
#[derive(Debug, Clone)]
pub(crate) struct Sighting {
    /// Wall-clock time of arrival.
    pub(crate) at: SystemTime,
    /// The peer that sent it.
    pub(crate) peer: NodeId,
    /// The channel it came on.
    pub(crate) channel: u8,
    /// The message.
    pub(crate) message: Observed,
}

/// One printed field's value.
#[derive(Debug, Clone, PartialEq)]
enum Field {
    Int(i64),
    Text(String),
    /// A hash: whole in JSON, its first [`PLAIN_HASH_CHARS`] in plain lines.
    Hash(String),
    /// Transactions or evidence items.
    List(Vec<Listed>),
}

/// One item of a listed field.
#[derive(Debug, Clone, PartialEq)]
enum Listed {
    /// A transaction: its SHA-256 and size.
    Tx { hash: String, size: usize },
    /// A piece of evidence: its kind and height.
    Evidence { kind: &'static str, height: i64 },
}

impl Listed {
    /// ` tx=HASH16/SIZEB` or ` evidence=KIND@HEIGHT`.
    fn plain(&self) -> String {
        match self {
            Listed::Tx { hash, size } => {
                let short: String = hash.chars().take(PLAIN_HASH_CHARS).collect();
                format!(" tx={short}/{size}B")
            }
            Listed::Evidence { kind, height } => format!(" evidence={kind}@{height}"),
        }
    }

    fn json(&self) -> Value {
        match self {
            Listed::Tx { hash, size } => json!({ "hash": hash, "size": size }),
            Listed::Evidence { kind, height } => json!({ "kind": kind, "height": height }),
        }
    }
}

/// A message's type name and its fields, in print order.
struct Description {
    kind: &'static str,
    fields: Vec<(&'static str, Field)>,
}

/// CometBFT's tx hash: SHA-256 of the tx bytes, upper-case hex (as its RPC shows it).
pub(crate) fn tx_hash(tx: &[u8]) -> String {
    hex::encode_upper(Sha256::digest(tx))
}

/// The name of a round step (Go's `RoundStepType.String()` without the prefix).
pub(crate) fn step_name(step: u32) -> &'static str {
    match step {
        1 => "NewHeight",
        2 => "NewRound",
        3 => "Propose",
        4 => "Prevote",
        5 => "PrevoteWait",
        6 => "Precommit",
        7 => "PrecommitWait",
        8 => "Commit",
        _ => "unknown",
    }
}

/// The name of a vote or proposal type.
pub(crate) fn vote_type_name(signed_msg_type: i32) -> &'static str {
    match types::SignedMsgType::try_from(signed_msg_type) {
        Ok(types::SignedMsgType::Prevote) => "prevote",
        Ok(types::SignedMsgType::Precommit) => "precommit",
        Ok(types::SignedMsgType::Proposal) => "proposal",
        _ => "unknown",
    }
}

fn int(value: impl Into<i64>) -> Field {
    Field::Int(value.into())
}

fn hash(bytes: &Bytes) -> Field {
    if bytes.is_empty() {
        Field::Text("nil".to_owned())
    } else {
        Field::Hash(hex::encode_upper(bytes))
    }
}

fn set_bits(bits: Option<&BitArray>) -> Field {
    let ones = bits.map_or(0, |b| {
        b.elems.iter().map(|e| i64::from(e.count_ones())).sum()
    });
    Field::Int(ones)
}

/// The block hash and part-set header of a block id (a nil vote has neither).
fn block_fields(id: Option<&BlockId>, fields: &mut Vec<(&'static str, Field)>) {
    let empty = Bytes::new();
    fields.push(("block", hash(id.map_or(&empty, |id| &id.hash))));
    if let Some(parts) = id.and_then(|id| id.part_set_header.as_ref()) {
        fields.push(("parts_total", int(parts.total)));
        fields.push(("parts_hash", hash(&parts.hash)));
    }
}

/// Height and round.
fn at(height: i64, round: i32) -> [(&'static str, Field); 2] {
    [("height", int(height)), ("round", int(round))]
}

/// Height, round and vote type.
fn vote_at(height: i64, round: i32, kind: i32) -> [(&'static str, Field); 3] {
    let [h, r] = at(height, round);
    [
        h,
        r,
        ("vote_type", Field::Text(vote_type_name(kind).to_owned())),
    ]
}

fn describe_consensus(message: &ConsensusInner) -> Description {
    let mut fields = Vec::new();
    match message {
        ConsensusInner::NewRoundStep(m) => {
            fields.extend(at(m.height, m.round));
            fields.push(("step", Field::Text(step_name(m.step).to_owned())));
            fields.push(("last_commit_round", int(m.last_commit_round)));
        }
        ConsensusInner::NewValidBlock(m) => {
            fields.extend(at(m.height, m.round));
            if let Some(parts) = &m.block_part_set_header {
                fields.push(("parts_total", int(parts.total)));
                fields.push(("parts_hash", hash(&parts.hash)));
            }
            fields.push(("is_commit", Field::Text(m.is_commit.to_string())));
        }
        ConsensusInner::Proposal(m) => {
            if let Some(p) = &m.proposal {
                fields.extend(at(p.height, p.round));
                fields.push(("pol_round", int(p.pol_round)));
                block_fields(p.block_id.as_ref(), &mut fields);
            }
        }
        ConsensusInner::ProposalPol(m) => {
            fields.push(("height", int(m.height)));
            fields.push(("pol_round", int(m.proposal_pol_round)));
            fields.push(("votes", set_bits(m.proposal_pol.as_ref())));
        }
        ConsensusInner::BlockPart(m) => {
            fields.extend(at(m.height, m.round));
            if let Some(part) = &m.part {
                fields.push(("part", int(part.index)));
                fields.push(("size", Field::Int(len(&part.bytes))));
                if let Some(proof) = &part.proof {
                    fields.push(("part_hash", hash(&proof.leaf_hash)));
                }
            }
        }
        ConsensusInner::Vote(m) => {
            if let Some(v) = &m.vote {
                fields.extend(vote_at(v.height, v.round, v.r#type));
                fields.push(("validator", int(v.validator_index)));
                fields.push(("validator_address", hash(&v.validator_address)));
                block_fields(v.block_id.as_ref(), &mut fields);
                if !v.extension.is_empty() {
                    fields.push(("extension_size", Field::Int(len(&v.extension))));
                }
            }
        }
        ConsensusInner::HasVote(m) => {
            fields.extend(vote_at(m.height, m.round, m.r#type));
            fields.push(("validator", int(m.index)));
        }
        ConsensusInner::VoteSetMaj23(m) => {
            fields.extend(vote_at(m.height, m.round, m.r#type));
            block_fields(m.block_id.as_ref(), &mut fields);
        }
        ConsensusInner::VoteSetBits(m) => {
            fields.extend(vote_at(m.height, m.round, m.r#type));
            block_fields(m.block_id.as_ref(), &mut fields);
            fields.push(("votes", set_bits(m.votes.as_ref())));
        }
        ConsensusInner::HasProposalBlockPart(m) => {
            fields.extend(at(m.height, m.round));
            fields.push(("part", int(m.index)));
        }
    }
    Description {
        kind: message.name(),
        fields,
    }
}

fn len(bytes: &Bytes) -> i64 {
    i64::try_from(bytes.len()).unwrap_or(i64::MAX)
}

/// A count as a field value.
fn count(n: usize) -> Field {
    Field::Int(i64::try_from(n).unwrap_or(i64::MAX))
}

/// The first [`ITEMS_LISTED`] of `items` as `name`, and how many more there were.
fn listed<T>(
    name: &'static str,
    items: &[T],
    item: impl Fn(&T) -> Listed,
    fields: &mut Vec<(&'static str, Field)>,
) {
    let shown = items.iter().take(ITEMS_LISTED).map(item).collect();
    fields.push((name, Field::List(shown)));
    if items.len() > ITEMS_LISTED {
        fields.push(("more", count(items.len() - ITEMS_LISTED)));
    }
}

fn describe_evidence(list: &EvidenceList) -> Description {
    let mut fields = vec![("count", count(list.evidence.len()))];
    listed(
        "evidence",
        &list.evidence,
        |evidence| match &evidence.sum {
            Some(EvidenceSum::DuplicateVoteEvidence(e)) => Listed::Evidence {
                kind: "duplicate_vote",
                height: e.vote_a.as_ref().map_or(0, |v| v.height),
            },
            Some(EvidenceSum::LightClientAttackEvidence(e)) => Listed::Evidence {
                kind: "light_client_attack",
                height: e.common_height,
            },
            None => Listed::Evidence {
                kind: "empty",
                height: 0,
            },
        },
        &mut fields,
    );
    Description {
        kind: "EvidenceList",
        fields,
    }
}

fn describe(message: &Observed) -> Description {
    match message {
        Observed::Consensus(m) => describe_consensus(m),
        Observed::Mempool(MempoolInner::Txs(txs)) => {
            let mut fields = Vec::new();
            let tx = |tx: &Bytes| Listed::Tx {
                hash: tx_hash(tx),
                size: tx.len(),
            };
            listed("txs", &txs.txs, tx, &mut fields);
            Description {
                kind: "Txs",
                fields,
            }
        }
        Observed::Evidence(list) => describe_evidence(list),
    }
}

/// Milliseconds since the Unix epoch.
fn unix_millis(at: SystemTime) -> u128 {
    at.duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_millis()
}

/// `HH:MM:SS.mmm` in UTC.
pub(crate) fn clock_utc(at: SystemTime) -> String {
    let since = at.duration_since(UNIX_EPOCH).unwrap_or(Duration::ZERO);
    let day_seconds = since.as_secs() % 86_400;
    format!(
        "{:02}:{:02}:{:02}.{:03}",
        day_seconds / 3600,
        day_seconds / 60 % 60,
        day_seconds % 60,
        since.subsec_millis()
    )
}

/// A node id shortened for a plain line (JSON has the whole id).
pub(crate) fn short_id(id: &NodeId) -> String {
    id.to_string().chars().take(12).collect()
}

impl Sighting {
    /// The plain line: time, peer, channel, type, then `key=value` fields.
    pub(crate) fn plain_line(&self) -> String {
        let description = describe(&self.message);
        let mut line = format!(
            "{} {} 0x{:02x} {:<13}",
            clock_utc(self.at),
            short_id(&self.peer),
            self.channel,
            description.kind
        );
        for (name, value) in &description.fields {
            match value {
                Field::Int(v) => line.push_str(&format!(" {name}={v}")),
                Field::Text(v) => line.push_str(&format!(" {name}={v}")),
                Field::Hash(v) => {
                    let short: String = v.chars().take(PLAIN_HASH_CHARS).collect();
                    line.push_str(&format!(" {name}={short}"));
                }
                Field::List(items) => {
                    for item in items {
                        line.push_str(&item.plain());
                    }
                }
            }
        }
        line
    }

    /// The JSON line: `time_ms`, `peer`, `channel`, `type`, then the fields.
    pub(crate) fn json_line(&self) -> String {
        let description = describe(&self.message);
        let mut object = Map::new();
        object.insert("time_ms".into(), json!(unix_millis(self.at)));
        object.insert("peer".into(), json!(self.peer.to_string()));
        object.insert("channel".into(), json!(format!("0x{:02x}", self.channel)));
        object.insert("type".into(), json!(description.kind));
        for (name, value) in description.fields {
            let value = match value {
                Field::Int(v) => json!(v),
                Field::Text(v) | Field::Hash(v) => json!(v),
                Field::List(items) => Value::Array(items.iter().map(Listed::json).collect()),
            };
            object.insert(name.to_owned(), value);
        }
        Value::Object(object).to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tmp2p_proto::consensus;
    use tmp2p_proto::mempool::Txs;
    use tmp2p_proto::types::{PartSetHeader, Vote};

    fn sighting(message: Observed) -> Sighting {
        Sighting {
            at: UNIX_EPOCH + Duration::from_millis(3_723_004),
            peer: NodeId::from_bytes([0xab; 20]),
            channel: 0x22,
            message,
        }
    }

    fn vote() -> Observed {
        Observed::Consensus(ConsensusInner::Vote(consensus::Vote {
            vote: Some(Vote {
                r#type: 1,
                height: 5,
                round: 0,
                block_id: Some(BlockId {
                    hash: Bytes::from(vec![0xcd; 32]),
                    part_set_header: Some(PartSetHeader {
                        total: 2,
                        hash: Bytes::from(vec![0xef; 32]),
                    }),
                }),
                validator_index: 3,
                validator_address: Bytes::from(vec![0x11; 20]),
                ..Vote::default()
            }),
        }))
    }

    #[test]
    fn a_vote_line_names_height_round_type_validator_and_block() {
        let line = sighting(vote()).plain_line();
        assert_eq!(
            line,
            "01:02:03.004 abababababab 0x22 Vote          height=5 round=0 vote_type=prevote \
             validator=3 validator_address=1111111111111111 block=CDCDCDCDCDCDCDCD \
             parts_total=2 parts_hash=EFEFEFEFEFEFEFEF"
        );
        let json: Value = serde_json::from_str(&sighting(vote()).json_line()).unwrap();
        assert_eq!(json["time_ms"], 3_723_004);
        assert_eq!(json["peer"], "ab".repeat(20));
        assert_eq!(json["channel"], "0x22");
        assert_eq!(json["type"], "Vote");
        assert_eq!(json["validator"], 3);
        assert_eq!(json["block"], "CD".repeat(32));
    }

    #[test]
    fn a_txs_line_has_each_tx_hash_and_size() {
        let txs = Observed::Mempool(MempoolInner::Txs(Txs {
            txs: vec![Bytes::from_static(b"abc")],
        }));
        let json: Value = serde_json::from_str(&sighting(txs.clone()).json_line()).unwrap();
        // SHA-256("abc"), the FIPS 180-2 test vector.
        let abc = "BA7816BF8F01CFEA414140DE5DAE2223B00361A396177A9CB410FF61F20015AD";
        assert_eq!(json["txs"][0]["hash"], abc);
        assert_eq!(json["txs"][0]["size"], 3);
        assert!(sighting(txs)
            .plain_line()
            .ends_with(" Txs           tx=BA7816BF8F01CFEA/3B"));
    }

    #[test]
    fn a_message_of_many_txs_lists_the_first_ones_and_counts_the_rest() {
        let txs = Observed::Mempool(MempoolInner::Txs(Txs {
            txs: (0..100u8).map(|i| Bytes::from(vec![i])).collect(),
        }));
        let json: Value = serde_json::from_str(&sighting(txs.clone()).json_line()).unwrap();
        assert_eq!(json["txs"].as_array().unwrap().len(), ITEMS_LISTED);
        assert_eq!(json["more"], 100 - ITEMS_LISTED);
        let plain = sighting(txs).plain_line();
        assert_eq!(plain.matches(" tx=").count(), ITEMS_LISTED);
        assert!(
            plain.ends_with(&format!(" more={}", 100 - ITEMS_LISTED)),
            "{plain}"
        );
    }

    #[test]
    fn a_nil_vote_and_a_step_are_named() {
        let step = Observed::Consensus(ConsensusInner::NewRoundStep(consensus::NewRoundStep {
            height: 9,
            round: 1,
            step: 6,
            seconds_since_start_time: 0,
            last_commit_round: 0,
        }));
        assert!(sighting(step)
            .plain_line()
            .contains("height=9 round=1 step=Precommit"));
        let nil = Observed::Consensus(ConsensusInner::Vote(consensus::Vote {
            vote: Some(Vote {
                r#type: 2,
                height: 9,
                ..Vote::default()
            }),
        }));
        assert!(sighting(nil)
            .plain_line()
            .contains("vote_type=precommit validator=0 validator_address=nil block=nil"));
    }
}
