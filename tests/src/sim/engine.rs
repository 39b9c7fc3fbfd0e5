//! The simulator's driver loop: what a real driver does for each `NodeOutput` and each
//! connection's `LinkReport`, for every node, in a deterministic order; and the step that
//! advances virtual time to the next event or timer, with the hot-loop check. Every
//! node-level decision is the node machine's (`tmp2p_core::node`); this loop only moves
//! bytes, fires timers and records what the application sees.

use std::time::Instant;

use bytes::BytesMut;
use tmp2p_core::connection::PeerEvent;
use tmp2p_core::node::{LinkReport, NodeOutput, PexEvent};
use tmp2p_core::pex::PEX_CHANNEL;
use tmp2p_core::router::{ConnectionId, Envelope};

use super::node::Received;
use super::reactor::ReactorCtx;
use super::{Sim, SimError};

/// Service rounds of one node in one call before the driver itself is declared looping.
const MAX_ROUNDS: usize = 1_000_000;

fn nanos(d: std::time::Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

fn earliest(a: Option<Instant>, b: Option<Instant>) -> Option<Instant> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

impl Sim {
    /// Adds a record to the trace, stamped with the virtual time.
    pub(crate) fn record(&mut self, tag: &str, fields: &[u64], bytes: &[u8]) {
        let at = nanos(self.elapsed());
        self.trace.record(tag, at, fields, bytes);
    }

    fn node_timer(&self, i: usize) -> Option<Instant> {
        let node = self.nodes.get(i)?;
        let running = node.running.as_ref()?;
        let pex = running.pex.as_ref().and_then(|p| p.poll_timeout());
        let reactors = node
            .reactors
            .values()
            .filter_map(|r| r.next_timer())
            .min()
            .map(|at| self.base + at);
        running
            .conns
            .values()
            .fold(earliest(running.node.poll_timeout(), pex), |t, c| {
                earliest(t, c.machine.poll_timeout())
            })
            .map_or(reactors, |t| earliest(Some(t), reactors))
    }

    /// The next instant something is due: a network event or a machine's timer.
    pub(crate) fn next_time(&self) -> Option<Instant> {
        earliest(
            self.events.next_time(),
            self.timers.first().map(|(t, _)| *t),
        )
    }

    /// Re-reads node `i`'s earliest timer into the timer index (after any change to it).
    pub(crate) fn refresh_timer(&mut self, i: usize) {
        let due = self.node_timer(i);
        if let Some(old) = self.timer_of.remove(&i) {
            self.timers.remove(&(old, i));
        }
        if let Some(due) = due {
            self.timer_of.insert(i, due);
            self.timers.insert((due, i));
        }
    }

    /// Advances virtual time to the next network event or timer and handles everything due
    /// then. Returns `false` when nothing at all is left to happen.
    ///
    /// # Errors
    /// [`SimError::HotLoop`] when a machine woken for its timer did nothing and is still
    /// due.
    pub fn step(&mut self) -> Result<bool, SimError> {
        let Some(next) = self.next_time() else {
            return Ok(false);
        };
        if next > self.now {
            self.now = next;
        }
        let now = self.now;
        if self.events.next_time().is_some_and(|t| t <= now) {
            while let Some(event) = self.events.pop_due(now) {
                self.handle_event(event)?;
            }
            return Ok(true);
        }
        let due: Vec<usize> = self
            .timers
            .iter()
            .take_while(|(t, _)| *t <= now)
            .map(|(_, i)| *i)
            .collect();
        for i in due {
            let fires = match self.fires_at.get(&i) {
                Some(&(at, count)) if at == now => count.saturating_add(1),
                _ => 1,
            };
            self.fires_at.insert(i, (now, fires));
            if fires > super::MAX_FIRES_PER_INSTANT {
                return Err(self.hot_loop(i));
            }
            let Some(running) = self.nodes.get_mut(i).and_then(|n| n.running.as_mut()) else {
                continue;
            };
            if running.node.poll_timeout().is_some_and(|t| t <= now) {
                running.node.handle_timeout(now);
            }
            if let Some(pex) = running.pex.as_mut() {
                let peers: Vec<_> = running.node.connected_peers().collect();
                for request in pex.on_timeout(now, &peers) {
                    running.send(now, request);
                }
            }
            for conn in running.conns.values_mut() {
                if conn.machine.poll_timeout().is_some_and(|t| t <= now) {
                    conn.machine.handle_timeout(now);
                }
            }
            self.fire_reactor_timers(i);
            let progressed = self.service_rounds(i)?;
            if !progressed && self.node_timer(i).is_some_and(|t| t <= now) {
                return Err(self.hot_loop(i));
            }
        }
        Ok(true)
    }

    fn hot_loop(&self, i: usize) -> SimError {
        let now = self.now;
        let machine = self
            .nodes
            .get(i)
            .and_then(|n| n.running.as_ref())
            .map_or_else(String::new, |r| {
                if r.node.poll_timeout().is_some_and(|t| t <= now) {
                    "node".to_owned()
                } else if r
                    .pex
                    .as_ref()
                    .is_some_and(|p| p.poll_timeout().is_some_and(|t| t <= now))
                {
                    "pex".to_owned()
                } else if let Some((id, _)) = r
                    .conns
                    .iter()
                    .find(|(_, c)| c.machine.poll_timeout().is_some_and(|t| t <= now))
                {
                    format!("connection {id}")
                } else {
                    let elapsed = self.elapsed();
                    self.nodes
                        .get(i)
                        .and_then(|n| {
                            n.reactors
                                .iter()
                                .find(|(_, r)| r.next_timer().is_some_and(|t| t <= elapsed))
                        })
                        .map_or_else(String::new, |(ch, _)| {
                            format!("reactor on channel {ch:#04x}")
                        })
                }
            });
        SimError::HotLoop {
            at: self.elapsed(),
            node: i,
            machine,
        }
    }

    /// Does all of node `i`'s work that needs no time to pass.
    pub(crate) fn service(&mut self, i: usize) -> Result<(), SimError> {
        self.service_rounds(i).map(|_| ())
    }

    /// As [`Sim::service`]; returns whether anything happened.
    fn service_rounds(&mut self, i: usize) -> Result<bool, SimError> {
        let Some(node) = self.nodes.get(i) else {
            return Err(SimError::NoSuchNode(i));
        };
        let span = tracing::debug_span!("node", idx = i, inc = node.incarnation);
        let _entered = span.enter();
        let mut any = false;
        for _ in 0..MAX_ROUNDS {
            let mut progress = false;
            while let Some(output) = self
                .nodes
                .get_mut(i)
                .and_then(|n| n.running.as_mut())
                .and_then(|r| r.node.poll_output())
            {
                progress = true;
                self.on_output(i, output);
            }
            progress |= self.pump_connections(i);
            progress |= self.dispatch(i);
            if !progress {
                self.refresh_timer(i);
                return Ok(any);
            }
            any = true;
        }
        Err(SimError::HotLoop {
            at: self.elapsed(),
            node: i,
            machine: "driver service loop".to_owned(),
        })
    }

    fn on_output(&mut self, i: usize, output: NodeOutput) {
        let now = self.now;
        let at = self.elapsed();
        match output {
            NodeOutput::Dial { conn, socket, .. } => self.dial(i, conn, socket),
            NodeOutput::Resolve { address } => {
                // No DNS in the simulation: every hostname fails to resolve.
                if let Some(r) = self.nodes.get_mut(i).and_then(|n| n.running.as_mut()) {
                    r.node.resolved(now, &address, &[]);
                }
            }
            NodeOutput::Link { conn, command } => {
                // A close for a dial still in flight has no connection yet: the dial's
                // late success is refused as stale.
                if let Some(c) = self
                    .nodes
                    .get_mut(i)
                    .and_then(|n| n.running.as_mut())
                    .and_then(|r| r.conns.get_mut(&conn))
                {
                    c.machine.handle_command(now, command);
                }
            }
            // The simulated applications send on the node's own thread and are told of a
            // full peer by `Writable`: no senders' windows to keep.
            NodeOutput::Windows(_) => {}
            NodeOutput::PeerUpdate(update) => {
                let peer = self.index_of(update.node_id).map_or(u64::MAX, |p| p as u64);
                self.record("update", &[i as u64, peer, update.status as u64], &[]);
                if let Some(node) = self.nodes.get_mut(i) {
                    node.updates.push((at, update));
                }
            }
            NodeOutput::Store(ops) => {
                if let Some(node) = self.nodes.get_mut(i) {
                    for op in ops {
                        node.apply_store(op);
                    }
                }
            }
            NodeOutput::Writable { node, channel } => {
                if let Some(r) = self.nodes.get_mut(i).and_then(|n| n.running.as_mut()) {
                    r.retry_held(now, node, channel);
                }
            }
            NodeOutput::Pex(event) => {
                if let PexEvent::PeerError(error) = &event {
                    let peer = self.index_of(error.node).map_or(u64::MAX, |p| p as u64);
                    self.record("pex_error", &[i as u64, peer], &[]);
                }
                if let Some(pex) = self
                    .nodes
                    .get_mut(i)
                    .and_then(|n| n.running.as_mut())
                    .and_then(|r| r.pex.as_mut())
                {
                    pex.on_event(at, event);
                }
            }
        }
    }

    /// An inbound message for node `i`'s application: recorded, and queued for the
    /// channel's reactor. A flooder ignores what arrives on the PEX channel.
    fn deliver(&mut self, i: usize, envelope: Envelope) {
        let from = envelope.from.and_then(|id| self.index_of(id));
        let from_field = from.map_or(u64::MAX, |f| f as u64);
        self.record(
            "deliver",
            &[i as u64, from_field, u64::from(envelope.channel)],
            &envelope.message,
        );
        let at = self.elapsed();
        let Some(node) = self.nodes.get_mut(i) else {
            return;
        };
        if envelope.channel == PEX_CHANNEL && node.pex_role.is_some() {
            return;
        }
        node.received_count += 1;
        if node.record_messages {
            if let Some(from) = envelope.from {
                let updates_before = node.updates.len();
                node.received.push(Received {
                    at,
                    from,
                    channel: envelope.channel,
                    message: envelope.message.clone(),
                    updates_before,
                });
            }
        }
        if node.reactors.contains_key(&envelope.channel) {
            node.inbox
                .entry(envelope.channel)
                .or_default()
                .push_back(envelope);
        }
    }

    fn pump_connections(&mut self, i: usize) -> bool {
        let now = self.now;
        let Some(running) = self.nodes.get_mut(i).and_then(|n| n.running.as_mut()) else {
            return false;
        };
        let ids: Vec<ConnectionId> = running.conns.keys().copied().collect();
        let mut progress = false;
        for conn in ids {
            let Some(node) = self.nodes.get_mut(i) else {
                return progress;
            };
            let Some(running) = node.running.as_mut() else {
                return progress;
            };
            let Some(c) = running.conns.get_mut(&conn) else {
                continue;
            };

            let mut out = BytesMut::new();
            let mut reports = Vec::new();
            while let Some(report) = c.machine.poll_report() {
                reports.push(report);
            }
            while c.machine.poll_transmit(now, &mut out) {}
            while let Some(report) = c.machine.poll_report() {
                reports.push(report);
            }
            let closed = reports
                .iter()
                .any(|r| matches!(r, LinkReport::Event(PeerEvent::Closed { .. })));
            if closed {
                while c.machine.poll_transmit(now, &mut out) {}
            }
            // The application's messages: a paused channel's receiver counts as full, so
            // its messages wait in the link (core's inbound rule) until it resumes.
            let mut delivered = Vec::new();
            while let Some(envelope) = c.machine.poll_delivery() {
                if node.paused.contains(&envelope.channel) {
                    c.machine.refused(envelope);
                } else {
                    delivered.push(envelope);
                }
            }
            let (link, side) = (c.link, c.side);
            for report in reports {
                progress = true;
                running.node.handle_link_report(now, conn, report);
            }
            if closed {
                running.conns.remove(&conn);
            }
            if !out.is_empty() {
                progress = true;
                self.transmit(link, side, out.freeze());
            }
            if closed {
                self.record("closed", &[i as u64, link], &[]);
                self.close_end(link, side);
            }
            for envelope in delivered {
                progress = true;
                self.deliver(i, envelope);
            }
        }
        progress
    }

    /// Calls `on_timer` of every reactor of node `i` whose timer is due, and hands what it
    /// sent and reported to the node's router.
    fn fire_reactor_timers(&mut self, i: usize) {
        let now = self.now;
        let elapsed = self.elapsed();
        let Some(node) = self.nodes.get_mut(i) else {
            return;
        };
        let node_id = node.id();
        for reactor in node.reactors.values_mut() {
            if reactor.next_timer().is_none_or(|t| t > elapsed) {
                continue;
            }
            let mut ctx = ReactorCtx {
                now: elapsed,
                node: i,
                node_id,
                sends: Vec::new(),
                errors: Vec::new(),
            };
            reactor.on_timer(&mut ctx);
            if let Some(running) = node.running.as_mut() {
                for send in ctx.sends {
                    running.send(now, send);
                }
                for error in ctx.errors {
                    running.node.report_error(now, error);
                }
            }
        }
    }

    fn dispatch(&mut self, i: usize) -> bool {
        let now = self.now;
        let elapsed = self.elapsed();
        let Some(node) = self.nodes.get_mut(i) else {
            return false;
        };
        let node_id = node.id();
        let mut progress = false;
        let channels: Vec<u8> = node
            .inbox
            .iter()
            .filter(|(ch, q)| !q.is_empty() && !node.paused.contains(ch))
            .map(|(ch, _)| *ch)
            .collect();
        for channel in channels {
            while let Some(envelope) = node.inbox.get_mut(&channel).and_then(|q| q.pop_front()) {
                let Some(reactor) = node.reactors.get_mut(&channel) else {
                    break;
                };
                progress = true;
                let mut ctx = ReactorCtx {
                    now: elapsed,
                    node: i,
                    node_id,
                    sends: Vec::new(),
                    errors: Vec::new(),
                };
                reactor.on_message(&mut ctx, &envelope);
                if let Some(running) = node.running.as_mut() {
                    for send in ctx.sends {
                        running.send(now, send);
                    }
                    for error in ctx.errors {
                        running.node.report_error(now, error);
                    }
                }
            }
        }
        progress
    }
}
