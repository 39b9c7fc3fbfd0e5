//! One connection's turn on the loop: read within its budget (unless inbound room ran
//! out), hand its events to the router, hand queued sends and a close to its machine (the
//! core's `Outbox`), write within its budget,
//! re-derive its socket interest and timer, and remove it once it is over.

use std::time::Instant;

use tmp2p_core::connection::PeerEvent;
use tmp2p_core::deadline::later;

use super::Driver;
use crate::link::{ReadOutcome, Stage};

impl Driver {
    /// One connection's turn. Returns whether work is left over (budget spent).
    pub(super) fn service(&mut self, slot: usize, now: Instant) -> bool {
        let connecting = match self.links.get(slot) {
            Some(link) => matches!(link.stage, Stage::Connecting { .. }),
            None => return false,
        };
        if connecting {
            self.check_connect(slot, now);
            // A completed connect was re-queued; its IO happens on that turn.
            return false;
        }
        let paused = self.reading_paused();
        let mut more = false;
        if let Some(link) = self.links.get_mut(slot) {
            if !paused && link.wants_read() && link.readable {
                let budget = self.limits.read_budget;
                more |= link.read(now, &mut self.scratch, budget) == ReadOutcome::BudgetSpent;
            }
        }
        self.drain_link_events(slot, now);
        self.flush_outbox(slot, now);
        if let Some(link) = self.links.get_mut(slot) {
            more |= link.write(now, self.limits.write_budget);
        }
        // Messages the machine takes now were not written this turn: come back for them.
        more |= self.flush_outbox(slot, now) > 0;
        self.drain_link_events(slot, now);
        let may_read = !self.reading_paused();
        let Some(link) = self.links.get_mut(slot) else {
            return false;
        };
        if link.finished() {
            self.remove(slot, now);
            return false;
        }
        if !may_read && link.wants_read() && !link.parked {
            // Its interest drops reading below (whether or not bytes are known to wait):
            // parked links are revisited, and their interest re-derived, once the
            // application makes room.
            link.parked = true;
            self.parked.push(slot);
        }
        if let Err(error) = link.update_interest(&self.registry, may_read) {
            tracing::warn!(conn = %link.conn, %error, "cannot update socket interest");
        }
        self.refresh_timer(slot);
        more
    }

    /// Hands the link's queued sends (and a close behind them) to its machine, reporting
    /// each message taken to the router; returns how many it took.
    pub(super) fn flush_outbox(&mut self, slot: usize, now: Instant) -> usize {
        let taken = self.hand_over(slot, now);
        if taken > 0 {
            self.run_actions(now);
        }
        taken
    }

    /// [`Link::flush_outbox`](crate::link::Link::flush_outbox) plus
    /// `Router::messages_accepted` for what the machine took; the router's resulting actions
    /// are left for the caller's action loop. Returns how many messages it took.
    pub(super) fn hand_over(&mut self, slot: usize, now: Instant) -> usize {
        let Some(link) = self.links.get_mut(slot) else {
            return 0;
        };
        let conn = link.conn;
        let taken = link.flush_outbox(now);
        if !taken.is_empty() {
            self.router.messages_accepted(conn, taken);
        }
        taken.messages
    }

    pub(super) fn drain_link_events(&mut self, slot: usize, now: Instant) {
        loop {
            let Some(link) = self.links.get_mut(slot) else {
                return;
            };
            let Some(event) = link.poll_event() else {
                break;
            };
            let conn = link.conn;
            if matches!(event, PeerEvent::Closed { .. }) {
                link.reported_closed = true;
                link.linger_until
                    .get_or_insert(later(now, self.limits.close_linger));
            }
            self.router.handle_connection_event(now, conn, event);
        }
        self.run_actions(now);
    }

    pub(super) fn refresh_timer(&mut self, slot: usize) {
        let Some(link) = self.links.get_mut(slot) else {
            return;
        };
        let next = link.deadline();
        if next == link.timer {
            return;
        }
        if let Some(old) = link.timer.take() {
            self.timers.remove(&(old, link.conn));
        }
        if let Some(at) = next {
            self.timers.insert((at, link.conn));
            link.timer = Some(at);
        }
    }

    pub(super) fn remove(&mut self, slot: usize, now: Instant) {
        if !self.links.contains(slot) {
            return;
        }
        let mut link = self.links.remove(slot);
        link.deregister(&self.registry);
        self.by_conn.remove(&link.conn);
        if let Some(at) = link.timer.take() {
            self.timers.remove(&(at, link.conn));
        }
        let open = matches!(link.stage, Stage::Open(_));
        if open && !link.reported_closed {
            self.router
                .handle_connection_event(now, link.conn, PeerEvent::Closed { reason: None });
            self.run_actions(now);
        }
        tracing::trace!(conn = %link.conn, "connection removed");
    }
}
