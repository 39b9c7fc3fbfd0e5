//! The wire side of the simulated driver: dials become `Connect` events, accepted
//! connections become links, bytes and FINs travel as timed events, and each arriving
//! event is fed to the right `PeerConnection` (or held until the dialer learns of the
//! accept). Loss kills a link; a partition black-holes it.

use std::net::SocketAddr;

use bytes::{Bytes, BytesMut};
use tmp2p_core::node::Link as ConnLink;
use tmp2p_core::router::{ConnectionId, ConnectionParams};

use super::network::{End, Link, LinkId, NetEvent};
use super::node::SimConn;
use super::{Sim, SimError};

impl Sim {
    pub(crate) fn dial(&mut self, i: usize, conn: ConnectionId, to: SocketAddr) {
        self.next_port = self.next_port.wrapping_add(1);
        let port = 1024 + u16::try_from(self.next_port % 60_000).unwrap_or(0);
        let (Some(from_ip), Some(incarnation)) = (
            self.nodes.get(i).map(|n| n.spec.ip),
            self.nodes.get(i).map(|n| n.incarnation),
        ) else {
            return;
        };
        let target = self.by_ip.get(&to.ip()).copied();
        self.record(
            "dial",
            &[i as u64, target.map_or(u64::MAX, |t| t as u64)],
            &[],
        );
        let params = target.map_or(self.default_link, |t| self.link_between(i, t));
        let at = self.now + params.delay(&mut self.rng);
        self.events.push(
            at,
            NetEvent::Connect {
                dialer: i,
                incarnation,
                conn,
                from: SocketAddr::new(from_ip, port),
                to,
            },
        );
    }

    /// Puts bytes sent by end `side` of `link` on the wire.
    pub(crate) fn transmit(&mut self, link_id: LinkId, side: usize, bytes: Bytes) {
        let now = self.now;
        let Some(link) = self.links.get_mut(&link_id) else {
            return;
        };
        let open = link.ends.get(side).is_some_and(|e| e.open);
        if link.dead || link.blackholed || !open {
            return;
        }
        let other = 1 - (side & 1);
        let [a, b] = [link.ends[0].node, link.ends[1].node];
        if self.partition.separated(a, b) {
            link.blackholed = true;
            self.stats.blackholed += 1;
            self.record("blackhole", &[link_id], &[]);
            return;
        }
        if link.params.lose(&mut self.rng) {
            link.dead = true;
            self.stats.lost += 1;
            let far = (now + link.params.delay(&mut self.rng)).max(link.last_arrival[side & 1]);
            self.events.push(
                far,
                NetEvent::Fin {
                    link: link_id,
                    to: other,
                },
            );
            self.events.push(
                now,
                NetEvent::Fin {
                    link: link_id,
                    to: side,
                },
            );
            self.record("lost", &[link_id, side as u64], &bytes);
            return;
        }
        let at = link.schedule(side, bytes.len(), now, &mut self.rng);
        self.stats.segments += 1;
        self.record("tx", &[link_id, side as u64], &bytes);
        self.events.push(
            at,
            NetEvent::Segment {
                link: link_id,
                to: other,
                bytes,
            },
        );
    }

    /// End `side` of `link` is closed: FIN to the far end after what it already sent.
    pub(crate) fn close_end(&mut self, link_id: LinkId, side: usize) {
        let now = self.now;
        let Some(link) = self.links.get_mut(&link_id) else {
            return;
        };
        let side = side & 1;
        let other = 1 - side;
        if !link.ends[side].open {
            return;
        }
        link.ends[side].open = false;
        if !link.ends[other].open {
            self.links.remove(&link_id);
            return;
        }
        let [a, b] = [link.ends[0].node, link.ends[1].node];
        if link.dead || link.blackholed || self.partition.separated(a, b) {
            return;
        }
        let at = (now + link.params.delay(&mut self.rng)).max(link.last_arrival[side]);
        self.events.push(
            at,
            NetEvent::Fin {
                link: link_id,
                to: other,
            },
        );
    }

    pub(crate) fn handle_event(&mut self, event: NetEvent) -> Result<(), SimError> {
        let kind = event.kind();
        match event {
            NetEvent::Connect {
                dialer,
                incarnation,
                conn,
                from,
                to,
            } => self.on_connect(dialer, incarnation, conn, from, to),
            NetEvent::Accepted { link, conn, to } => self.on_accepted(link, conn, to),
            NetEvent::Refused {
                dialer,
                incarnation,
                conn,
            } => {
                self.record(kind, &[dialer as u64], &[]);
                let now = self.now;
                if let Some(r) = self.running_as(dialer, incarnation) {
                    r.node.dial_failed(now, conn);
                }
                self.service(dialer)
            }
            NetEvent::Segment { link, to, bytes } => self.on_bytes(link, to, Some(bytes)),
            NetEvent::Fin { link, to } => self.on_bytes(link, to, None),
        }
    }

    fn running_as(&mut self, i: usize, incarnation: u32) -> Option<&mut super::node::Running> {
        self.nodes
            .get_mut(i)
            .filter(|n| n.incarnation == incarnation)
            .and_then(|n| n.running.as_mut())
    }

    fn on_connect(
        &mut self,
        dialer: usize,
        incarnation: u32,
        conn: ConnectionId,
        from: SocketAddr,
        to: SocketAddr,
    ) -> Result<(), SimError> {
        let now = self.now;
        let target = self
            .by_ip
            .get(&to.ip())
            .copied()
            .filter(|_| to.port() == super::LISTEN_PORT);
        let target_up = target.filter(|&t| self.nodes.get(t).is_some_and(|n| n.is_running()));
        self.record(
            "connect",
            &[dialer as u64, target_up.map_or(u64::MAX, |t| t as u64)],
            &[],
        );
        let Some(t) = target_up else {
            if target.is_some_and(|t| self.partition.separated(dialer, t)) {
                return Ok(());
            }
            self.stats.refused += 1;
            let params = self.default_link;
            let at = now + params.delay(&mut self.rng);
            self.events.push(
                at,
                NetEvent::Refused {
                    dialer,
                    incarnation,
                    conn,
                },
            );
            return Ok(());
        };
        if self.partition.separated(dialer, t) {
            return Ok(());
        }
        let params = self.link_between(dialer, t);
        let Some(node) = self.nodes.get_mut(t) else {
            return Err(SimError::NoSuchNode(t));
        };
        let target_incarnation = node.incarnation;
        let Some(running) = node.running.as_mut() else {
            return Ok(());
        };
        let accepted = running.node.accept(now, from);
        let link_id = self.next_link;
        self.next_link += 1;
        let end = |node, incarnation, conn| End {
            node,
            incarnation,
            conn,
            open: true,
            early: BytesMut::new(),
            early_eof: false,
        };
        let target_conn = accepted.as_ref().ok().map(|p| p.conn);
        let mut link = Link::new(
            [
                end(dialer, incarnation, None),
                end(t, target_incarnation, target_conn),
            ],
            params,
            now,
        );
        let ack = now + params.delay(&mut self.rng);
        link.last_arrival[1] = ack;
        self.links.insert(link_id, link);
        self.stats.links += 1;
        self.events.push(
            ack,
            NetEvent::Accepted {
                link: link_id,
                conn,
                to,
            },
        );
        match accepted {
            Ok(params) => {
                self.attach(t, link_id, 1, params);
                self.service(t)
            }
            Err(error) => {
                tracing::debug!(node = t, %error, "connection refused at admission");
                self.record(
                    "refused-admission",
                    &[t as u64],
                    error.to_string().as_bytes(),
                );
                self.refresh_timer(t);
                self.close_end(link_id, 1);
                Ok(())
            }
        }
    }

    /// Creates the connection machine (`Link`) of end `side` of `link` on node `i`.
    fn attach(&mut self, i: usize, link: LinkId, side: usize, params: ConnectionParams) {
        let now = self.now;
        let Some(node) = self.nodes.get_mut(i) else {
            return;
        };
        let key = &node.key;
        let Some(running) = node.running.as_mut() else {
            return;
        };
        let conn = params.conn;
        let settings = running.node.link_settings();
        let mut machine = ConnLink::new(now, key, params, settings, &mut running.rng);
        if let Some(end) = self.links.get_mut(&link).and_then(|l| l.ends.get_mut(side)) {
            end.conn = Some(conn);
            if !end.early.is_empty() {
                let early = std::mem::take(&mut end.early);
                let _ = machine.handle_input(now, &early);
            }
            if end.early_eof {
                machine.handle_eof(now);
            }
        }
        running.conns.insert(
            conn,
            SimConn {
                machine,
                link,
                side,
            },
        );
    }

    fn on_accepted(
        &mut self,
        link: LinkId,
        conn: ConnectionId,
        to: SocketAddr,
    ) -> Result<(), SimError> {
        let now = self.now;
        let Some((dialer, incarnation)) = self
            .links
            .get(&link)
            .map(|l| (l.ends[0].node, l.ends[0].incarnation))
        else {
            return Ok(());
        };
        self.record("accepted", &[dialer as u64, link], &[]);
        let result = self
            .running_as(dialer, incarnation)
            .map(|r| r.node.dial_succeeded(now, conn, to));
        match result {
            Some(Ok(params)) => {
                self.attach(dialer, link, 0, params);
                self.service(dialer)
            }
            // Timed out, stale or the dialer is gone: close our end of the socket.
            _ => {
                self.close_end(link, 0);
                Ok(())
            }
        }
    }

    fn on_bytes(
        &mut self,
        link_id: LinkId,
        to: usize,
        bytes: Option<Bytes>,
    ) -> Result<(), SimError> {
        let now = self.now;
        let Some(link) = self.links.get_mut(&link_id) else {
            return Ok(());
        };
        let Some(end) = link.ends.get_mut(to) else {
            return Ok(());
        };
        let (node, incarnation, conn) = (end.node, end.incarnation, end.conn);
        let Some(conn) = conn else {
            match &bytes {
                Some(b) => end.early.extend_from_slice(b),
                None => end.early_eof = true,
            }
            return Ok(());
        };
        self.record(
            if bytes.is_some() { "rx" } else { "eof" },
            &[link_id, to as u64],
            &[],
        );
        let Some(c) = self
            .running_as(node, incarnation)
            .and_then(|r| r.conns.get_mut(&conn))
        else {
            return Ok(());
        };
        let _entered = tracing::debug_span!("node", idx = node, inc = incarnation).entered();
        match bytes {
            // An error closes the connection; its Closed event carries the reason.
            Some(bytes) => {
                let _ = c.machine.handle_input(now, &bytes);
            }
            None => c.machine.handle_eof(now),
        }
        self.service(node)
    }
}
