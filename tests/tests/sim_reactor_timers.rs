#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! Reactor timers in the simulator, and the hot-loop detector fed by a deliberately broken
//! reactor: one whose timer stays due while it does nothing, and one that stays due while
//! it keeps sending (busy at one virtual instant). A working heartbeat reactor shows the
//! timers themselves: it fires once a virtual second and its peer counts the beats.

use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use tmp2p_core::router::Envelope;
use tmp2p_tests::sim::{NodeSpec, Reactor, ReactorCtx, Sim, SimError};

const BEAT: u8 = 0x40;

fn ip(i: usize) -> IpAddr {
    IpAddr::from([10, i as u8 + 1, 0, 1])
}

/// Two connected nodes with channel [`BEAT`].
fn pair(seed: u64) -> Sim {
    let mut sim = Sim::new(seed);
    sim.add_node(NodeSpec::new(ip(0), &[BEAT]));
    sim.add_node(NodeSpec::new(ip(1), &[BEAT]));
    sim.start_all().unwrap();
    sim.add_peer(0, 1).unwrap();
    sim.drive().unwrap();
    assert_eq!(sim.node(0).unwrap().connected().len(), 1);
    sim
}

/// Broadcasts a beat every `period`, starting one period from when it is installed.
struct Heartbeat {
    period: Duration,
    next: Option<Duration>,
    /// The timer is never moved forward (the bug the detector must catch).
    stuck: bool,
    /// Whether a due timer sends a beat.
    sends: bool,
}

impl Reactor for Heartbeat {
    fn on_message(&mut self, _ctx: &mut ReactorCtx, _envelope: &Envelope) {}

    fn next_timer(&self) -> Option<Duration> {
        self.next
    }

    fn on_timer(&mut self, ctx: &mut ReactorCtx) {
        if self.sends {
            ctx.broadcast(BEAT, Bytes::from_static(b"beat"));
        }
        if !self.stuck {
            self.next = Some(ctx.now + self.period);
        }
    }
}

fn heartbeat(at: Duration, stuck: bool, sends: bool) -> Heartbeat {
    Heartbeat {
        period: Duration::from_secs(1),
        next: Some(at),
        stuck,
        sends,
    }
}

#[test]
fn a_reactor_timer_fires_on_schedule() {
    let mut sim = pair(1);
    let start = sim.elapsed();
    sim.set_reactor(
        0,
        BEAT,
        heartbeat(start + Duration::from_secs(1), false, true),
    )
    .unwrap();
    let beats = Arc::new(Mutex::new(Vec::new()));
    let seen = Arc::clone(&beats);
    sim.set_reactor(1, BEAT, move |ctx: &mut ReactorCtx, _: &Envelope| {
        seen.lock().unwrap().push(ctx.now);
    })
    .unwrap();
    sim.run_for(Duration::from_millis(10_500)).unwrap();
    let beats = beats.lock().unwrap();
    assert_eq!(beats.len(), 10, "one beat per virtual second: {beats:?}");
    for pair in beats.windows(2) {
        let gap = pair[1] - pair[0];
        assert!(
            gap >= Duration::from_millis(900) && gap <= Duration::from_millis(1100),
            "beats {gap:?} apart"
        );
    }
}

#[test]
fn a_reactor_due_forever_doing_nothing_is_a_hot_loop() {
    let mut sim = pair(2);
    let due = sim.elapsed() + Duration::from_secs(5);
    sim.set_reactor(0, BEAT, heartbeat(due, true, false))
        .unwrap();
    match sim.run_for(Duration::from_secs(10)) {
        Err(SimError::HotLoop { at, node, machine }) => {
            assert_eq!(node, 0);
            assert_eq!(at, due, "caught the first time it stayed due");
            assert_eq!(machine, format!("reactor on channel {BEAT:#04x}"));
        }
        other => panic!("expected a hot loop, got {other:?}"),
    }
}

#[test]
fn a_reactor_busy_at_one_instant_is_a_hot_loop() {
    let mut sim = pair(3);
    let due = sim.elapsed() + Duration::from_secs(5);
    // Sends on every call, so each wake-up does something, but time never moves on.
    sim.set_reactor(0, BEAT, heartbeat(due, true, true))
        .unwrap();
    match sim.run_for(Duration::from_secs(10)) {
        Err(SimError::HotLoop { at, node, machine }) => {
            assert_eq!(node, 0);
            assert_eq!(at, due);
            assert_eq!(machine, format!("reactor on channel {BEAT:#04x}"));
        }
        other => panic!("expected a hot loop, got {other:?}"),
    }
}
