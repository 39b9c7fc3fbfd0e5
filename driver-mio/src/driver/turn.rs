//! One connection's turn on the loop: read within its budget (while its machine wants
//! input: core's inbound rule), hand its machine's reports to the node and its received
//! messages to the application's queue, write within its budget (the machine takes the
//! node's queued sends as it transmits), re-derive its socket interest and timer, and
//! remove it once it is over.

use std::time::Instant;

use tmp2p_core::connection::PeerEvent;
use tmp2p_core::node::LinkReport;

use super::Driver;
use crate::app::AppEvent;
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
        let mut more = false;
        if let Some(link) = self.links.get_mut(slot) {
            let _entered = link.span.clone().entered();
            let allowance = link.recv_allowance(now);
            if link.wants_read() && link.readable && allowance > 0 {
                // Under a receive rate limit the allowance caps the read; what it leaves
                // waits for the link's timer (the refill), not for another turn.
                let rate_limited = allowance < self.limits.read_budget;
                let budget = self.limits.read_budget.min(allowance);
                let spent = link.read(now, &mut self.scratch, budget) == ReadOutcome::BudgetSpent;
                // The limit counts whole packets, so a capped read can leave some
                // allowance: read on while there is any.
                more |= spent && (!rate_limited || link.recv_allowance(now) > 0);
            }
        }
        self.drain_link_reports(slot, now);
        if let Some(link) = self.links.get_mut(slot) {
            let _entered = link.span.clone().entered();
            more |= link.write(now, self.limits.write_budget);
        }
        self.take_deliveries(slot);
        // The link holds its `Closed` until the application took what came before it.
        self.drain_link_reports(slot, now);
        let Some(link) = self.links.get_mut(slot) else {
            return false;
        };
        if link.finished() {
            self.remove(slot, now);
            return false;
        }
        if let Err(error) = link.update_interest(&self.registry) {
            tracing::warn!(conn = %link.conn, %error, "cannot update socket interest");
        }
        self.refresh_timer(slot);
        more
    }

    /// Hands the link machine's reports (its events, the messages it took) to the node
    /// inside the connection's span, then carries out the node's outputs outside it (they
    /// may concern other connections).
    pub(super) fn drain_link_reports(&mut self, slot: usize, now: Instant) {
        let span = self.links.get(slot).map(|link| link.span.clone());
        let entered = span.as_ref().map(tracing::Span::enter);
        loop {
            let Some(link) = self.links.get_mut(slot) else {
                return;
            };
            let Some(report) = link.poll_report() else {
                break;
            };
            let conn = link.conn;
            if let LinkReport::Event(PeerEvent::Authenticated { node_info, .. }) = &report {
                let peer = tracing::field::display(node_info.node_id);
                link.span.record("peer", peer);
            }
            self.node.handle_link_report(now, conn, report);
        }
        drop(entered);
        self.run_outputs(now);
    }

    /// Moves the link's received messages into the application's queue while it has room;
    /// what is left waits in the link (which stops reading past its hold budget) until the
    /// application makes room (`resume_waiting`). Once the connection is closed, all of
    /// them go, past the queue's soft limit: the link holds its `Closed` (the peer's
    /// `Down`) until they are taken, and reads nothing more into the application, so this
    /// is bounded by what it held (`NodeConfig::inbound_hold_bytes`).
    pub(super) fn take_deliveries(&mut self, slot: usize) {
        let Some(link) = self.links.get_mut(slot) else {
            return;
        };
        let Some(machine) = link.machine() else {
            return;
        };
        let room = if machine.is_closed() {
            usize::MAX
        } else {
            let queued = self.events.len();
            self.limits.max_pending_inbound.saturating_sub(queued)
        };
        for _ in 0..room {
            let Some(envelope) = machine.poll_delivery() else {
                break;
            };
            self.events.push_back(AppEvent::Message(envelope));
        }
        if machine.has_delivery() && !link.waiting {
            link.waiting = true;
            self.waiting.push(slot);
        }
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
        let unreported = matches!(&link.stage, Stage::Open(m) if !m.closed_reported());
        if unreported {
            let closed = LinkReport::Event(PeerEvent::Closed { reason: None });
            self.node.handle_link_report(now, link.conn, closed);
            self.run_outputs(now);
        }
        tracing::trace!(conn = %link.conn, "connection removed");
    }
}
