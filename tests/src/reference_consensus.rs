//! A reference consensus and mempool peer: what a CometBFT v0.38 node's consensus and
//! mempool reactors send one peer, with Go's gates, built on [`ReferencePeer`] and
//! tendermint-proto only (an encoding independent of tmp2p's).
//!
//! The gates are those of v0.38's `gossipDataRoutine`, `gossipVotesRoutine` and mempool
//! `broadcastTxRoutine`, keyed on the round state the other end announced in its
//! `NewRoundStep` messages:
//! - a proposal and its block parts only when the other end is at our height and round;
//! - votes only when it is at our height;
//! - a transaction of height `h` only once its height is at least `h - 1` (until then the
//!   transaction waits, and goes out when a `NewRoundStep` opens the gate).
//!
//! Everything the other end sends is decoded with tendermint-proto and kept in
//! [`ReferenceConsensusPeer::received`], so a test can check what an observer says.

use std::io;
use std::net::TcpListener;
use std::sync::mpsc::RecvTimeoutError;
use std::time::{Duration, Instant};

use prost::Message as _;
use tendermint_proto::google::protobuf::Timestamp;
use tendermint_proto::v0_38::consensus::{self, message::Sum as ConsensusSum};
use tendermint_proto::v0_38::crypto::Proof;
use tendermint_proto::v0_38::mempool::{self, message::Sum as MempoolSum};
use tendermint_proto::v0_38::types::{self, BlockId, PartSetHeader, SignedMsgType};

use crate::reference_peer::{reference_info, RefEvent, ReferencePeer};

/// Consensus round state.
pub const STATE: u8 = 0x20;
/// Proposals and block parts.
pub const DATA: u8 = 0x21;
/// Votes.
pub const VOTE: u8 = 0x22;
/// Mempool.
pub const MEMPOOL: u8 = 0x30;
/// The channels a CometBFT v0.38 validator advertises for these reactors (and evidence,
/// vote-set bits).
pub const CHANNELS: [u8; 6] = [0x20, 0x21, 0x22, 0x23, 0x30, 0x38];

/// The round step NewHeight.
pub const STEP_NEW_HEIGHT: u32 = 1;

/// A height, round and step, as a `NewRoundStep` announces them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Position {
    /// Height.
    pub height: i64,
    /// Round.
    pub round: i32,
    /// Step.
    pub step: u32,
}

/// One message the other end sent.
#[derive(Debug, Clone, PartialEq)]
pub enum Received {
    /// On a consensus channel, decoded.
    Consensus(u8, consensus::Message),
    /// Anything else, or bytes that did not decode, as they came.
    Other(u8, Vec<u8>),
}

/// The reference peer (see the module docs).
pub struct ReferenceConsensusPeer {
    peer: ReferencePeer,
    /// Our own height, round and last-commit round.
    ours: (i64, i32, i32),
    /// What the other end last announced (Go's `PeerRoundState`), with its last-commit round.
    announced: Option<(Position, i32)>,
    /// Transactions waiting for the other end's height, with theirs.
    waiting_txs: Vec<(i64, Vec<u8>)>,
    /// Everything the other end sent, in order.
    pub received: Vec<Received>,
    /// Messages a v0.38 node would have disconnected the other end for, and why.
    pub violations: Vec<String>,
    /// The transactions sent so far.
    pub sent_txs: Vec<Vec<u8>>,
    /// Our node id (what the other end calls us).
    pub id: String,
}

impl ReferenceConsensusPeer {
    /// Accepts connections on `listener` as `seed`'s key on `network` until one stays:
    /// a connection that closes before its first message (a probe that only wanted our
    /// NodeInfo) is let go. Sends our `NewRoundStep` at (`height`, 0) as a v0.38 node does
    /// when a peer is added.
    pub fn accept(
        listener: &TcpListener,
        seed: [u8; 32],
        network: &str,
        height: i64,
        timeout: Duration,
    ) -> io::Result<Self> {
        let until = Instant::now() + timeout;
        loop {
            let (stream, _) = listener.accept()?;
            let info = reference_info(seed, network, &CHANNELS);
            let id = info.default_node_id.clone();
            let peer = match ReferencePeer::start(stream, seed, info) {
                Ok(peer) => peer,
                Err(_) if Instant::now() < until => continue,
                Err(e) => return Err(e),
            };
            let mut this = ReferenceConsensusPeer {
                id,
                peer,
                ours: (height, 0, 0),
                announced: None,
                waiting_txs: Vec::new(),
                received: Vec::new(),
                violations: Vec::new(),
                sent_txs: Vec::new(),
            };
            this.send_round_step();
            match this.pump(until.saturating_duration_since(Instant::now())) {
                Ok(true) => return Ok(this),
                Ok(false) => return Err(io::Error::new(io::ErrorKind::TimedOut, "no message")),
                Err(_) if Instant::now() < until => continue,
                Err(e) => return Err(e),
            }
        }
    }

    /// Moves to `height` (round 0, step NewHeight, last commit in round 0) and announces it.
    pub fn enter_height(&mut self, height: i64) {
        self.ours = (height, 0, 0);
        self.send_round_step();
    }

    fn send_round_step(&self) {
        let (height, round, last_commit_round) = self.ours;
        let step = consensus::NewRoundStep {
            height,
            round,
            step: STEP_NEW_HEIGHT,
            seconds_since_start_time: 1,
            last_commit_round,
        };
        self.send_consensus(STATE, ConsensusSum::NewRoundStep(step));
    }

    fn send_consensus(&self, channel: u8, sum: ConsensusSum) {
        let message = consensus::Message { sum: Some(sum) };
        self.peer.send(channel, message.encode_to_vec());
    }

    /// What the other end last announced.
    pub fn announced(&self) -> Option<Position> {
        self.announced.map(|(position, _)| position)
    }

    /// Takes the other end's events until it announces our height and round, for at most
    /// `timeout`.
    ///
    /// # Errors
    /// The connection closed, or the time ran out (the error says what was announced).
    pub fn wait_until_at_our_round(&mut self, timeout: Duration) -> io::Result<()> {
        let until = Instant::now() + timeout;
        let (height, round, _) = self.ours;
        while !self
            .announced()
            .is_some_and(|p| p.height == height && p.round == round)
        {
            let left = until.saturating_duration_since(Instant::now());
            if !self.pump(left)? {
                return Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    format!(
                        "still announced {:?}, not {height}/{round}",
                        self.announced()
                    ),
                ));
            }
        }
        Ok(())
    }

    /// Takes events for `period` (to collect what the other end sends meanwhile).
    ///
    /// # Errors
    /// The connection closed.
    pub fn listen_for(&mut self, period: Duration) -> io::Result<()> {
        let until = Instant::now() + period;
        while Instant::now() < until {
            self.pump(until.saturating_duration_since(Instant::now()))?;
        }
        Ok(())
    }

    /// Takes one event, within `timeout`: `Ok(false)` when none came.
    fn pump(&mut self, timeout: Duration) -> io::Result<bool> {
        let event = match self.peer.events.recv_timeout(timeout) {
            Ok(event) => event,
            Err(RecvTimeoutError::Timeout) => return Ok(false),
            Err(RecvTimeoutError::Disconnected) => {
                return Err(io::Error::new(io::ErrorKind::BrokenPipe, "reader gone"))
            }
        };
        match event {
            RefEvent::Message(channel, bytes) => self.take_message(channel, bytes),
            RefEvent::Ping | RefEvent::Pong => {}
            RefEvent::Closed(reason) => {
                return Err(io::Error::new(io::ErrorKind::ConnectionAborted, reason))
            }
        }
        Ok(true)
    }

    fn take_message(&mut self, channel: u8, bytes: Vec<u8>) {
        let decoded = (0x20..=0x23)
            .contains(&channel)
            .then(|| consensus::Message::decode(&bytes[..]).ok())
            .flatten();
        let Some(message) = decoded else {
            self.received.push(Received::Other(channel, bytes));
            return;
        };
        // Go's `ApplyNewRoundStepMessage`: only an advance replaces the peer's state.
        if let Some(ConsensusSum::NewRoundStep(step)) = &message.sum {
            if let Err(why) = validate_round_step(step, INITIAL_HEIGHT) {
                self.violations.push(why);
            }
            let position = Position {
                height: step.height,
                round: step.round,
                step: step.step,
            };
            if self.announced().is_none_or(|last| position > last) {
                self.announced = Some((position, step.last_commit_round));
                self.release_txs();
            }
        }
        self.received.push(Received::Consensus(channel, message));
    }

    /// Gossips a proposal for our height and round with `parts` block parts, as
    /// `gossipDataRoutine` does.
    ///
    /// # Panics
    /// When the other end is not at our height and round: Go would not send them.
    pub fn gossip_proposal(&mut self, parts: u32) {
        let (height, round, _) = self.ours;
        assert!(
            self.announced()
                .is_some_and(|p| p.height == height && p.round == round),
            "a v0.38 node sends a proposal only to a peer at its height and round"
        );
        let proposal = types::Proposal {
            r#type: SignedMsgType::Proposal as i32,
            height,
            round,
            pol_round: -1,
            block_id: Some(block_id(height, parts)),
            timestamp: Some(timestamp(height)),
            signature: vec![0x51; 64],
        };
        self.send_consensus(
            DATA,
            ConsensusSum::Proposal(consensus::Proposal {
                proposal: Some(proposal),
            }),
        );
        for index in 0..parts {
            let part = types::Part {
                index,
                bytes: vec![u8::try_from(index).unwrap_or(0); 1000],
                proof: Some(Proof {
                    total: i64::from(parts),
                    index: i64::from(index),
                    leaf_hash: part_hash(height, index),
                    aunts: vec![vec![0xaa; 32]],
                }),
            };
            let block_part = consensus::BlockPart {
                height,
                round,
                part: Some(part),
            };
            self.send_consensus(DATA, ConsensusSum::BlockPart(block_part));
        }
    }

    /// Gossips validator `index`'s vote of `kind` for our block, as `gossipVotesRoutine`
    /// does.
    ///
    /// # Panics
    /// When the other end is not at our height: Go would not send it.
    pub fn gossip_vote(&mut self, kind: SignedMsgType, index: i32) {
        let (height, round, _) = self.ours;
        assert!(
            self.announced().is_some_and(|p| p.height == height),
            "a v0.38 node sends votes of its height only to a peer at that height"
        );
        let vote = types::Vote {
            r#type: kind as i32,
            height,
            round,
            block_id: Some(block_id(height, 2)),
            timestamp: Some(timestamp(height)),
            validator_address: vec![u8::try_from(index).unwrap_or(0); 20],
            validator_index: index,
            signature: vec![0x52; 64],
            extension: Vec::new(),
            extension_signature: Vec::new(),
        };
        self.send_consensus(
            VOTE,
            ConsensusSum::Vote(consensus::Vote { vote: Some(vote) }),
        );
    }

    /// Offers a transaction that entered our mempool at our height: sent at once when the
    /// other end's height is at least ours minus one, else when it gets there.
    pub fn offer_tx(&mut self, tx: Vec<u8>) {
        self.waiting_txs.push((self.ours.0, tx));
        self.release_txs();
    }

    /// The transactions still waiting for the other end's height.
    pub fn waiting_txs(&self) -> usize {
        self.waiting_txs.len()
    }

    fn release_txs(&mut self) {
        let Some(announced) = self.announced() else {
            return;
        };
        let (ready, waiting): (Vec<_>, Vec<_>) = std::mem::take(&mut self.waiting_txs)
            .into_iter()
            .partition(|(height, _)| announced.height >= height - 1);
        self.waiting_txs = waiting;
        for (_, tx) in ready {
            let message = mempool::Message {
                sum: Some(MempoolSum::Txs(mempool::Txs {
                    txs: vec![tx.clone()],
                })),
            };
            self.peer.send(MEMPOOL, message.encode_to_vec());
            self.sent_txs.push(tx);
        }
    }
}

/// The chain's first height (genesis `initial_height`).
pub const INITIAL_HEIGHT: i64 = 1;

/// v0.38's `NewRoundStepMessage` checks, `ValidateBasic` then `ValidateHeight`: a node
/// disconnects a peer whose round step fails them.
///
/// # Errors
/// The failed check, in Go's words.
pub fn validate_round_step(
    step: &consensus::NewRoundStep,
    initial_height: i64,
) -> Result<(), String> {
    if step.height < 0 {
        return Err("negative Height".into());
    }
    if step.round < 0 {
        return Err("negative Round".into());
    }
    if !(1..=8).contains(&step.step) {
        return Err("invalid Step".into());
    }
    if step.last_commit_round < -1 {
        return Err("invalid LastCommitRound (cannot be < -1)".into());
    }
    if step.height < initial_height {
        return Err(format!(
            "invalid Height {} (lower than initial height {initial_height})",
            step.height
        ));
    }
    if step.height == initial_height && step.last_commit_round != -1 {
        return Err(format!(
            "invalid LastCommitRound {} (must be -1 for initial height)",
            step.last_commit_round
        ));
    }
    if step.height > initial_height && step.last_commit_round < 0 {
        return Err("LastCommitRound can only be negative for initial height".into());
    }
    Ok(())
}

/// The block id of our block at `height` (a made-up hash that names the height).
pub fn block_id(height: i64, parts: u32) -> BlockId {
    BlockId {
        hash: block_hash(height),
        part_set_header: Some(PartSetHeader {
            total: parts,
            hash: vec![0xbb; 32],
        }),
    }
}

/// Our block hash at `height`: 32 bytes of the height's low byte.
pub fn block_hash(height: i64) -> Vec<u8> {
    vec![u8::try_from(height & 0xff).unwrap_or(0); 32]
}

/// The leaf hash we give part `index` of the block at `height`.
pub fn part_hash(height: i64, index: u32) -> Vec<u8> {
    let mut hash = vec![0xc0; 32];
    if let Some(first) = hash.first_mut() {
        *first = u8::try_from(height & 0xff).unwrap_or(0);
    }
    if let Some(second) = hash.get_mut(1) {
        *second = u8::try_from(index & 0xff).unwrap_or(0);
    }
    hash
}

fn timestamp(height: i64) -> Timestamp {
    Timestamp {
        seconds: 1_700_000_000 + height,
        nanos: 0,
    }
}
