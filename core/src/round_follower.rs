//! [`RoundFollower`]: what a non-validator observer says on CometBFT's consensus state
//! channel so that its peers keep gossiping to it.
//!
//! A CometBFT node gossips to a peer according to the peer's announced round state (Go's
//! `PeerState`, filled from the peer's `NewRoundStep` messages):
//! - proposals and block parts only when the peer is at the node's height and round;
//! - votes of the node's height only when the peer is at that height, and precommits only
//!   while the peer's step is at most PrecommitWait;
//! - a mempool transaction only once the peer's height is at least the transaction's
//!   height minus one (v0.38 `broadcastTxRoutine`); evidence likewise waits for the
//!   peer's height.
//!
//! A peer that never announces a state therefore hears only `NewRoundStep`s. The follower
//! answers each peer's newer `NewRoundStep` with the same height, round, step and
//! last-commit round, to that peer only, so each remote sees us one step behind it at
//! most. That is all it ever sends. It never sends `HasVote`, `VoteSetBits`,
//! `NewValidBlock`, proposals, parts or votes: it never claims data it does not have.
//!
//! A `NewRoundStep` that CometBFT itself would reject (negative height or round, a step
//! outside 1..=8, a last-commit round below -1) is not followed, so an echo can never get
//! us disconnected by a peer that validates it. Go's node ignores a `NewRoundStep` that
//! does not advance the height, round and step; the follower keeps the same order and
//! answers only advances.
//!
//! Sans-IO: [`RoundFollower::handle_message`] takes a peer's consensus message and returns
//! the reply to send that peer on [`CONSENSUS_STATE`](crate::cometbft_channels::CONSENSUS_STATE),
//! if any; [`RoundFollower::peer_down`] forgets a peer.

use std::collections::BTreeMap;

use tmp2p_proto::consensus::NewRoundStep;

use crate::typed::cometbft::ConsensusInner;
use crate::NodeId;

/// CometBFT's round steps run from NewHeight (1) to Commit (8).
const STEPS: std::ops::RangeInclusive<u32> = 1..=8;

/// One peer's announced height, round and step.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct RoundPosition {
    /// Block height.
    pub height: i64,
    /// Round within the height.
    pub round: i32,
    /// Step within the round (1 NewHeight … 8 Commit).
    pub step: u32,
}

/// Follows each peer's announced round state; see the module docs.
#[derive(Debug, Default)]
pub struct RoundFollower {
    peers: BTreeMap<NodeId, RoundPosition>,
}

impl RoundFollower {
    /// A follower that knows no peer yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Takes a consensus message `peer` sent. Returns the `NewRoundStep` to send back to
    /// `peer` (and to no one else) when it announced a valid state past the last one it
    /// announced; `None` for every other message.
    pub fn handle_message(
        &mut self,
        peer: NodeId,
        message: &ConsensusInner,
    ) -> Option<ConsensusInner> {
        let ConsensusInner::NewRoundStep(step) = message else {
            return None;
        };
        if !is_valid_round_step(step) {
            return None;
        }
        let announced = RoundPosition {
            height: step.height,
            round: step.round,
            step: step.step,
        };
        if self.peers.get(&peer).is_some_and(|last| *last >= announced) {
            return None;
        }
        self.peers.insert(peer, announced);
        Some(ConsensusInner::NewRoundStep(NewRoundStep {
            height: step.height,
            round: step.round,
            step: step.step,
            // We entered this round as we learned of it.
            seconds_since_start_time: 0,
            last_commit_round: step.last_commit_round,
        }))
    }

    /// The last position `peer` announced (and we echoed).
    pub fn position(&self, peer: &NodeId) -> Option<RoundPosition> {
        self.peers.get(peer).copied()
    }

    /// Forgets `peer` (it went down): a reconnect starts from its first announcement.
    pub fn peer_down(&mut self, peer: &NodeId) {
        self.peers.remove(peer);
    }
}

/// What CometBFT's `NewRoundStepMessage::ValidateBasic` accepts. (Its `ValidateHeight`
/// needs the chain's initial height, which only the sender's own state satisfies: we
/// echo the sender's last-commit round with its height, so the pair stays as valid as
/// the sender made it.)
pub fn is_valid_round_step(step: &NewRoundStep) -> bool {
    step.height >= 0
        && step.round >= 0
        && STEPS.contains(&step.step)
        && step.last_commit_round >= -1
}

#[cfg(test)]
mod tests {
    use super::*;

    fn peer(n: u8) -> NodeId {
        NodeId::from_bytes([n; 20])
    }

    fn announce(height: i64, round: i32, step: u32, last_commit_round: i32) -> ConsensusInner {
        ConsensusInner::NewRoundStep(NewRoundStep {
            height,
            round,
            step,
            seconds_since_start_time: 12,
            last_commit_round,
        })
    }

    #[test]
    fn each_advance_is_echoed_to_its_sender_with_the_same_position() {
        let mut follower = RoundFollower::new();
        let reply = follower.handle_message(peer(1), &announce(5, 0, 1, 0));
        assert_eq!(
            reply,
            Some(ConsensusInner::NewRoundStep(NewRoundStep {
                height: 5,
                round: 0,
                step: 1,
                seconds_since_start_time: 0,
                last_commit_round: 0,
            }))
        );
        // A later step, a later round and a later height are each followed.
        assert!(follower
            .handle_message(peer(1), &announce(5, 0, 4, 0))
            .is_some());
        assert!(follower
            .handle_message(peer(1), &announce(5, 1, 1, 0))
            .is_some());
        assert!(follower
            .handle_message(peer(1), &announce(6, 0, 1, 1))
            .is_some());
        assert_eq!(
            follower.position(&peer(1)),
            Some(RoundPosition {
                height: 6,
                round: 0,
                step: 1
            })
        );
    }

    #[test]
    fn repeats_and_regressions_are_not_answered_and_peers_are_separate() {
        let mut follower = RoundFollower::new();
        assert!(follower
            .handle_message(peer(1), &announce(6, 1, 4, 0))
            .is_some());
        assert!(follower
            .handle_message(peer(1), &announce(6, 1, 4, 0))
            .is_none());
        assert!(follower
            .handle_message(peer(1), &announce(6, 0, 8, 0))
            .is_none());
        assert!(follower
            .handle_message(peer(1), &announce(5, 3, 8, 0))
            .is_none());
        // Another peer at a lower height is followed on its own.
        assert!(follower
            .handle_message(peer(2), &announce(5, 0, 1, 0))
            .is_some());
        // After a disconnect the peer starts over.
        follower.peer_down(&peer(1));
        assert!(follower
            .handle_message(peer(1), &announce(5, 0, 1, 0))
            .is_some());
    }

    #[test]
    fn states_cometbft_would_reject_and_other_messages_are_never_echoed() {
        let mut follower = RoundFollower::new();
        for invalid in [
            announce(-1, 0, 1, 0),
            announce(5, -1, 1, 0),
            announce(5, 0, 0, 0),
            announce(5, 0, 9, 0),
            announce(5, 0, 1, -2),
        ] {
            assert!(follower.handle_message(peer(1), &invalid).is_none());
        }
        assert_eq!(follower.position(&peer(1)), None);
        let has_vote = ConsensusInner::HasVote(tmp2p_proto::consensus::HasVote {
            height: 5,
            round: 0,
            r#type: 1,
            index: 0,
        });
        assert!(follower.handle_message(peer(1), &has_vote).is_none());
        // The first valid height (last-commit round -1) is followed.
        assert!(follower
            .handle_message(peer(1), &announce(1, 0, 1, -1))
            .is_some());
    }
}
