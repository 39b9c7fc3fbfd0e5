//! Tests of the WDRR queue: round robin order, skipping idle rounds, the fairest-victim drop
//! policy, convergence to the weights, and v0.35's `TestWDRRQueue_*` in our own form.

use std::collections::VecDeque;

use bytes::Bytes;
use quickcheck::{quickcheck, TestResult};
use rand_chacha::rand_core::{RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::*;
use crate::queue::{ChannelQos, QueueKind};

fn config(max_items: usize, max_bytes: usize, weights: &[u32]) -> QueueConfig {
    QueueConfig {
        kind: QueueKind::Wdrr,
        max_items,
        max_bytes,
        channels: weights
            .iter()
            .zip(0u8..)
            .map(|(&weight, channel)| ChannelQos {
                channel,
                priority: 1,
                weight,
            })
            .collect(),
    }
}

fn queue(max_items: usize, max_bytes: usize, weights: &[u32], unit: u32) -> WdrrQueue {
    WdrrQueue::with_quantum_unit(&config(max_items, max_bytes, weights), unit).unwrap()
}

fn item(channel: u8, size: usize) -> Queued {
    Queued {
        channel,
        message: Bytes::from(vec![channel; size]),
    }
}

fn drain_channels(q: &mut WdrrQueue) -> Vec<u8> {
    std::iter::from_fn(|| q.pop()).map(|i| i.channel).collect()
}

#[test]
fn zero_quantum_unit_is_refused() {
    assert_eq!(
        WdrrQueue::with_quantum_unit(&config(1, 1, &[1]), 0).err(),
        Some(QueueError::ZeroQuantumUnit)
    );
}

#[test]
fn equal_weights_alternate_one_quantum_each() {
    let mut q = queue(100, 1000, &[1, 1], 10);
    for _ in 0..3 {
        assert!(q.push(item(0, 10)).is_empty());
        assert!(q.push(item(1, 10)).is_empty());
    }
    assert_eq!(drain_channels(&mut q), vec![0, 1, 0, 1, 0, 1]);
    assert_eq!(q.total_deficit(), 0);
}

#[test]
fn weights_set_how_many_quanta_a_lane_sends_per_round() {
    let mut q = queue(100, 1000, &[3, 1], 10);
    for _ in 0..6 {
        assert!(q.push(item(0, 10)).is_empty());
    }
    for _ in 0..3 {
        assert!(q.push(item(1, 10)).is_empty());
    }
    assert_eq!(drain_channels(&mut q), vec![0, 0, 0, 1, 0, 0, 0, 1, 1]);
}

#[test]
fn lanes_are_visited_by_descending_priority_then_config_order() {
    let mut c = config(100, 1000, &[1, 1, 1]);
    c.channels[2].priority = 5;
    let mut q = WdrrQueue::with_quantum_unit(&c, 10).unwrap();
    for channel in [0, 1, 2, 42] {
        assert!(q.push(item(channel, 10)).is_empty());
    }
    assert_eq!(
        drain_channels(&mut q),
        vec![2, 0, 1, 42],
        "unknown channel 42 comes last"
    );
}

#[test]
fn a_message_far_larger_than_the_quantum_still_goes_out() {
    let mut q = queue(100, 1 << 20, &[1, 2], 1);
    assert!(q.push(item(0, 1 << 19)).is_empty());
    assert!(q.push(item(1, 1 << 19)).is_empty());
    // Lane 1 earns twice as fast, so it is ready first despite being visited second.
    assert_eq!(drain_channels(&mut q), vec![1, 0]);
    assert_eq!(q.total_deficit(), 0);
}

#[test]
fn full_queue_sheds_from_the_lane_most_over_its_share() {
    let mut q = queue(100, 100, &[1, 1, 4], 10);
    for _ in 0..8 {
        assert!(q.push(item(0, 10)).is_empty());
    }
    assert!(q.push(item(2, 10)).is_empty());
    assert!(q.push(item(2, 10)).is_empty());
    // Full: a newcomer on lane 1 displaces lane 0's newest.
    assert_eq!(q.push(item(1, 10)), vec![item(0, 10)]);
    // Lane 2 (4 × weight) may grow past lane 0 in bytes before it is the heaviest.
    assert_eq!(q.push(item(2, 10)), vec![item(0, 10)]);
    // Lane 0 holding the most for its weight cannot displace anyone: the newcomer goes.
    assert_eq!(q.push(item(0, 10)), vec![item(0, 10)]);
    assert_eq!((q.len(), q.bytes()), (10, 100));
}

#[test]
fn eviction_takes_just_enough_and_never_in_vain() {
    let mut q = queue(100, 100, &[1, 1], 10);
    for _ in 0..5 {
        assert!(q.push(item(0, 15)).is_empty());
    }
    assert!(q.push(item(1, 20)).is_empty());
    // 5 bytes free; a 30 B newcomer on lane 1 needs 25 more: two of lane 0's.
    assert_eq!(q.push(item(1, 30)), vec![item(0, 15), item(0, 15)]);
    assert_eq!((q.len(), q.bytes()), (5, 95));
    // Lane 1 now holds 50 B against lane 0's 45 B: its next newcomer is dropped.
    assert_eq!(q.push(item(1, 10)), vec![item(1, 10)]);
    assert_eq!((q.len(), q.bytes()), (5, 95));
}

#[test]
fn an_emptied_lane_forgets_its_deficit_even_by_eviction() {
    let mut q = queue(2, 1000, &[1, 1], 100);
    assert!(q.push(item(0, 10)).is_empty());
    assert!(q.push(item(0, 10)).is_empty());
    assert_eq!(q.pop(), Some(item(0, 10)));
    assert!(q.total_deficit() > 0, "lane 0 still has deficit left");
    assert!(q.push(item(1, 5)).is_empty());
    assert_eq!(q.push(item(1, 1)), vec![item(0, 10)]);
    assert_eq!(q.total_deficit(), 0);
}

/// Keeps every lane non-empty, pops `pops` messages and returns the bytes each lane sent.
fn saturated_shares(weights: &[u32], unit: u32, pops: usize, seed: u64) -> Vec<u64> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut q = queue(10_000, 10_000_000, weights, unit);
    let lanes = u8::try_from(weights.len()).unwrap();
    let size = |rng: &mut ChaCha8Rng| 1 + (rng.next_u32() % 1500) as usize;
    for channel in 0..lanes {
        for _ in 0..4 {
            assert!(q.push(item(channel, size(&mut rng))).is_empty());
        }
    }
    let mut sent = vec![0u64; weights.len()];
    for _ in 0..pops {
        let popped = q.pop().unwrap();
        sent[usize::from(popped.channel)] += popped.size() as u64;
        assert!(q.push(item(popped.channel, size(&mut rng))).is_empty());
    }
    sent
}

#[test]
fn saturated_lanes_converge_to_their_weights() {
    for (weights, seed) in [(vec![1, 2, 3, 4], 1), (vec![18, 10, 2, 1, 1, 1], 2)] {
        let sent = saturated_shares(&weights, DEFAULT_WDRR_QUANTUM_UNIT, 20_000, seed);
        let total_sent: u64 = sent.iter().sum();
        let total_weight: u32 = weights.iter().sum();
        for (lane, (&bytes, &weight)) in sent.iter().zip(&weights).enumerate() {
            let share = bytes as f64 / total_sent as f64;
            let want = f64::from(weight) / f64::from(total_weight);
            assert!(
                (share - want).abs() <= 0.03 * want.max(0.05),
                "lane {lane}: byte share {share:.4}, weight share {want:.4} ({weights:?})"
            );
        }
    }
}

/// Producers on every lane push one message per tick in a random order; the consumer pops
/// `budget` bytes per tick, less than they produce (about 5.5 B per lane per tick).
/// Returns each lane's delivered fraction.
fn overloaded_success_rates(
    weights: &[u32],
    max_bytes: usize,
    budget: usize,
    ticks: usize,
) -> Vec<f64> {
    let mut rng = ChaCha8Rng::seed_from_u64(7);
    let mut q = queue(10_000, max_bytes, weights, 10);
    let lanes = weights.len();
    let (mut pushed, mut popped) = (vec![0u64; lanes], vec![0u64; lanes]);
    let mut order: Vec<u8> = (0..u8::try_from(lanes).unwrap()).collect();
    for _ in 0..ticks {
        for i in (1..order.len()).rev() {
            order.swap(i, rng.next_u32() as usize % (i + 1));
        }
        for &channel in &order {
            pushed[usize::from(channel)] += 1;
            q.push(item(channel, 1 + rng.next_u32() as usize % 10));
        }
        let mut left = budget;
        while left > 0 {
            let Some(out) = q.pop() else { break };
            left = left.saturating_sub(out.size());
            popped[usize::from(out.channel)] += 1;
        }
    }
    while let Some(out) = q.pop() {
        popped[usize::from(out.channel)] += 1;
    }
    assert_eq!((q.len(), q.bytes(), q.total_deficit()), (0, 0, 0));
    popped
        .iter()
        .zip(&pushed)
        .map(|(&o, &i)| o as f64 / i as f64)
        .collect()
}

/// v0.35 `TestWDRRQueue_EqualWeights` in our form.
#[test]
fn overloaded_equal_weights_shed_evenly() {
    let rates = overloaded_success_rates(&[1; 6], 120, 18, 5000);
    let mean = rates.iter().sum::<f64>() / rates.len() as f64;
    let var = rates.iter().map(|r| (r - mean).powi(2)).sum::<f64>() / rates.len() as f64;
    assert!(
        rates.iter().all(|&r| r < 1.0),
        "every lane loses some: {rates:?}"
    );
    assert!(var.sqrt() < 0.02, "success rates {rates:?} spread too far");
}

/// v0.35 `TestWDRRQueue_DecreasingWeights` in our form.
#[test]
fn overloaded_decreasing_weights_deliver_by_weight() {
    let rates = overloaded_success_rates(&[18, 10, 2, 1, 1, 1], 500, 6, 5000);
    assert!(
        rates[0] < 1.0 && rates[0] > rates[1] && rates[1] > rates[2],
        "top three ordered by weight: {rates:?}"
    );
    assert!(
        rates[3..].iter().all(|&r| r < rates[2]),
        "low weights drop most: {rates:?}"
    );
}

/// A visit-by-visit DRR with no shortcuts: the reference `pop` order.
struct ReferenceDrr {
    lanes: Vec<(u64, u64, VecDeque<Queued>)>,
    cursor: usize,
    granted: bool,
}

impl ReferenceDrr {
    fn pop(&mut self) -> Option<Queued> {
        if self.lanes.iter().all(|l| l.2.is_empty()) {
            return None;
        }
        loop {
            let n = self.lanes.len();
            let (quantum, deficit, items) = &mut self.lanes[self.cursor];
            match items.front() {
                None => *deficit = 0,
                Some(head) => {
                    if !self.granted {
                        *deficit += *quantum;
                        self.granted = true;
                    }
                    if head.size() as u64 <= *deficit {
                        *deficit -= head.size() as u64;
                        let out = items.pop_front();
                        if items.is_empty() {
                            *deficit = 0;
                            self.granted = false;
                            self.cursor = (self.cursor + 1) % n;
                        }
                        return out;
                    }
                }
            }
            self.granted = false;
            self.cursor = (self.cursor + 1) % n;
        }
    }
}

quickcheck! {
    /// With room for everything, the pop order equals a plain visit-by-visit DRR, so
    /// skipping idle rounds changes nothing but the cost.
    fn pop_order_matches_a_plain_drr(ops: Vec<(bool, u8, u16)>, weights: (u8, u8, u8)) -> TestResult {
        let weights = [weights.0, weights.1, weights.2].map(|w| u32::from(w % 4) + 1);
        let unit = 7;
        let mut q = queue(usize::MAX, usize::MAX, &weights, unit);
        let mut reference = ReferenceDrr {
            lanes: weights
                .iter()
                .map(|&w| (u64::from(w * unit), 0, VecDeque::new()))
                .collect(),
            cursor: 0,
            granted: false,
        };
        for (is_push, channel, size) in ops {
            if is_push {
                let it = item(channel % 3, usize::from(size % 200));
                reference.lanes[usize::from(channel % 3)].2.push_back(it.clone());
                if !q.push(it).is_empty() {
                    return TestResult::failed();
                }
            } else if q.pop() != reference.pop() {
                return TestResult::failed();
            }
        }
        loop {
            let (ours, theirs) = (q.pop(), reference.pop());
            if ours != theirs {
                return TestResult::failed();
            }
            if ours.is_none() {
                return TestResult::from_bool(q.total_deficit() == 0);
            }
        }
    }
}
