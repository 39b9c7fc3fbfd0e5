//! Properties every queue kind must keep over arbitrary push/pop sequences: within its item
//! and byte bounds at every step, byte accounting equal to the payloads held, every pushed
//! message popped or reported dropped exactly once, and empty accounting (and zero WDRR
//! deficits) once drained. Plus the priority queue's overload guarantee.

use std::collections::BTreeMap;

use bytes::Bytes;
use quickcheck::{quickcheck, TestResult};

use super::*;

/// One step of an arbitrary sequence: `Some((channel, extra))` pushes a message, `None` pops.
type Op = Option<(u8, u8)>;

/// A config of `kind` from arbitrary numbers: channels 0..=3 configured (channel 4 is not),
/// small bounds so that drops are frequent.
fn arbitrary_config(kind: QueueKind, items: u8, bytes: u16, qos: [(u8, u8); 4]) -> QueueConfig {
    QueueConfig {
        kind,
        max_items: usize::from(items % 16) + 1,
        max_bytes: usize::from(bytes % 400) + 1,
        channels: qos
            .iter()
            .zip(0u8..)
            .map(|(&(priority, weight), channel)| ChannelQos {
                channel,
                priority: u32::from(priority % 4) + 1,
                weight: u32::from(weight % 4) + 1,
            })
            .collect(),
    }
}

/// A message whose first four bytes are its unique id; `extra` more bytes follow.
fn tagged(id: u32, channel: u8, extra: u8) -> Queued {
    let mut message = id.to_le_bytes().to_vec();
    message.resize(4 + usize::from(extra % 150), channel);
    Queued {
        channel,
        message: Bytes::from(message),
    }
}

fn id_of(item: &Queued) -> Result<u32, String> {
    let head = item.message.get(..4).ok_or("message lost its id")?;
    let head: [u8; 4] = head.try_into().map_err(|_| "id is not 4 bytes")?;
    Ok(u32::from_le_bytes(head))
}

/// Runs `ops` against `queue`, checking the bounds, the accounting and exactly-once
/// delivery at every step, then drains it and checks it is empty.
fn check_sequence<Q: MessageQueue + ?Sized>(
    queue: &mut Q,
    config: &QueueConfig,
    ops: &[Op],
) -> Result<(), String> {
    let mut held: BTreeMap<u32, usize> = BTreeMap::new();
    let mut next_id = 0u32;
    let take = |held: &mut BTreeMap<u32, usize>, item: &Queued, how: &str| {
        let id = id_of(item)?;
        match held.remove(&id) {
            Some(size) if size == item.size() => Ok(()),
            Some(_) => Err(format!("message {id} {how} with a different size")),
            None => Err(format!(
                "message {id} {how} but not held (twice, or never pushed)"
            )),
        }
    };
    for op in ops {
        match *op {
            Some((channel, extra)) => {
                let item = tagged(next_id, channel % 5, extra);
                held.insert(next_id, item.size());
                next_id += 1;
                for dropped in queue.push(item) {
                    take(&mut held, &dropped, "dropped")?;
                }
            }
            None => {
                if let Some(item) = queue.pop() {
                    take(&mut held, &item, "popped")?;
                } else if !held.is_empty() {
                    return Err(format!("pop gave nothing while {} are held", held.len()));
                }
            }
        }
        if queue.len() > config.max_items || queue.bytes() > config.max_bytes {
            return Err(format!(
                "out of bounds: {} items / {} bytes",
                queue.len(),
                queue.bytes()
            ));
        }
        let held_bytes: usize = held.values().sum();
        if queue.len() != held.len() || queue.bytes() != held_bytes {
            return Err(format!(
                "accounting says {} items / {} bytes, {} / {} are held",
                queue.len(),
                queue.bytes(),
                held.len(),
                held_bytes
            ));
        }
        if queue.is_empty() != held.is_empty() {
            return Err("is_empty disagrees with len".into());
        }
    }
    while let Some(item) = queue.pop() {
        take(&mut held, &item, "popped while draining")?;
    }
    if !held.is_empty() || queue.len() != 0 || queue.bytes() != 0 {
        return Err(format!(
            "drained queue lost {} messages, accounts {} items / {} bytes",
            held.len(),
            queue.len(),
            queue.bytes()
        ));
    }
    Ok(())
}

fn verdict(result: Result<(), String>) -> TestResult {
    match result {
        Ok(()) => TestResult::passed(),
        Err(why) => TestResult::error(why),
    }
}

quickcheck! {
    fn fifo_keeps_bounds_and_accounting(items: u8, bytes: u16, qos: [(u8, u8); 4], ops: Vec<Op>) -> TestResult {
        let config = arbitrary_config(QueueKind::Fifo, items, bytes, qos);
        let mut queue = new_queue(&config).unwrap();
        verdict(check_sequence(queue.as_mut(), &config, &ops))
    }

    fn priority_keeps_bounds_and_accounting(items: u8, bytes: u16, qos: [(u8, u8); 4], ops: Vec<Op>) -> TestResult {
        let config = arbitrary_config(QueueKind::Priority, items, bytes, qos);
        let mut queue = new_queue(&config).unwrap();
        verdict(check_sequence(queue.as_mut(), &config, &ops))
    }

    fn wdrr_keeps_bounds_and_accounting_and_ends_with_no_deficit(items: u8, bytes: u16, qos: [(u8, u8); 4], unit: u8, ops: Vec<Op>) -> TestResult {
        let config = arbitrary_config(QueueKind::Wdrr, items, bytes, qos);
        let mut queue = WdrrQueue::with_quantum_unit(&config, u32::from(unit % 64) + 1).unwrap();
        verdict(check_sequence(&mut queue, &config, &ops).and_then(|()| {
            match queue.total_deficit() {
                0 => Ok(()),
                left => Err(format!("drained WDRR queue keeps {left} bytes of deficit")),
            }
        }))
    }

    /// Under overload (pushes only, equal sizes, so both bounds bind at once) the priority
    /// queue holds exactly the highest priorities that were offered.
    fn priority_under_overload_keeps_the_highest_priorities(items: u8, qos: [(u8, u8); 4], pushes: Vec<u8>) -> bool {
        let mut config = arbitrary_config(QueueKind::Priority, items, 0, qos);
        config.max_bytes = config.max_items * 8;
        let table = QosTable::new(&config.channels);
        let mut queue = new_queue(&config).unwrap();
        let mut offered = Vec::new();
        for (id, channel) in (0u32..).zip(pushes) {
            let item = tagged(id, channel % 5, 4);
            offered.push(table.get(item.channel).priority);
            queue.push(item);
        }
        let mut held: Vec<u32> = std::iter::from_fn(|| queue.pop())
            .map(|item| table.get(item.channel).priority)
            .collect();
        offered.sort_unstable_by(|a, b| b.cmp(a));
        offered.truncate(config.max_items);
        // Popped highest first, so `held` is already in descending order.
        let in_order = held.windows(2).all(|w| w[0] >= w[1]);
        held.sort_unstable_by(|a, b| b.cmp(a));
        in_order && held == offered
    }

    /// Every priority-queue push either holds the newcomer after evicting only messages of
    /// lower priority, lowest first, or drops the newcomer when evicting every lower message
    /// could not have made room.
    fn priority_evicts_only_lower_and_only_usefully(items: u8, bytes: u16, qos: [(u8, u8); 4], ops: Vec<Op>) -> TestResult {
        let config = arbitrary_config(QueueKind::Priority, items, bytes, qos);
        let table = QosTable::new(&config.channels);
        let mut queue = PriorityQueue::new(&config).unwrap();
        let mut held: BTreeMap<u32, Queued> = BTreeMap::new();
        for (id, op) in (0u32..).zip(ops) {
            let Some((channel, extra)) = op else {
                if let Some(item) = queue.pop() {
                    held.remove(&id_of(&item).unwrap());
                }
                continue;
            };
            let item = tagged(id, channel % 5, extra);
            let p = table.get(item.channel).priority;
            let (lower_items, lower_bytes) = held
                .values()
                .filter(|h| table.get(h.channel).priority < p)
                .fold((0, 0), |(n, b), h| (n + 1, b + h.size()));
            let room_items = config.max_items + lower_items - held.len();
            let room_bytes = config.max_bytes + lower_bytes - held.values().map(Queued::size).sum::<usize>();
            let could_fit = room_items >= 1 && room_bytes >= item.size();
            let dropped = queue.push(item.clone());
            if dropped.contains(&item) {
                if could_fit || dropped.len() != 1 {
                    return TestResult::error(format!("newcomer {id} dropped though it could fit, or with company"));
                }
                continue;
            }
            if !could_fit {
                return TestResult::error(format!("newcomer {id} held though it could not fit"));
            }
            for victim in &dropped {
                let vp = table.get(victim.channel).priority;
                held.remove(&id_of(victim).unwrap());
                if vp >= p {
                    return TestResult::error(format!("evicted priority {vp} for priority {p}"));
                }
                if held.values().any(|h| table.get(h.channel).priority < vp) {
                    return TestResult::error(format!("evicted priority {vp} while lower ones stay"));
                }
            }
            held.insert(id, item);
        }
        TestResult::passed()
    }
}

#[test]
fn zero_length_messages_are_bounded_by_items() {
    for kind in [QueueKind::Fifo, QueueKind::Priority, QueueKind::Wdrr] {
        let config = QueueConfig {
            kind,
            max_items: 3,
            max_bytes: 1,
            channels: Vec::new(),
        };
        let mut queue = new_queue(&config).unwrap();
        let empty = Queued {
            channel: 0,
            message: Bytes::new(),
        };
        let dropped: usize = (0..10).map(|_| queue.push(empty.clone()).len()).sum();
        assert_eq!((dropped, queue.len(), queue.bytes()), (7, 3, 0), "{kind:?}");
        assert_eq!(std::iter::from_fn(|| queue.pop()).count(), 3, "{kind:?}");
    }
}
