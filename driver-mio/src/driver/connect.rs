//! Opening connections: the router's dials (non-blocking connect, completed when the
//! socket reports readiness), DNS lookups on short-lived helper threads, and accepts
//! (admission by the router before any handshake work).

use std::io::ErrorKind;
use std::net::{IpAddr, SocketAddr, ToSocketAddrs};
use std::sync::Arc;
use std::time::Instant;

use mio::net::TcpStream;
use mio::Interest;
use rand_core::OsRng;
use tmp2p_core::address::{NodeAddress, Resolution};
use tmp2p_core::connection::PeerEvent;
use tmp2p_core::node::{Link as ConnLink, LinkReport};
use tmp2p_core::router::ConnectionId;

use super::Driver;
use crate::link::{Link, Stage};

impl Driver {
    pub(super) fn dial(&mut self, now: Instant, conn: ConnectionId, socket: SocketAddr) {
        if self.shutdown {
            self.node.dial_failed(now, conn);
            return;
        }
        let entry = self.links.vacant_entry();
        let Some(token) = self.tokens.connection(entry.key()) else {
            tracing::debug!(%conn, "no free token for a dial");
            self.node.dial_failed(now, conn);
            return;
        };
        let interest = Interest::READABLE | Interest::WRITABLE;
        let mut stream = match TcpStream::connect(socket) {
            Ok(stream) => stream,
            Err(error) => {
                tracing::info!(%conn, %socket, %error, "dial failed");
                self.node.dial_failed(now, conn);
                return;
            }
        };
        if let Err(error) = self.registry.register(&mut stream, token, interest) {
            tracing::warn!(%conn, %error, "cannot register a dialed socket");
            self.node.dial_failed(now, conn);
            return;
        }
        let slot = entry.key();
        let span = peer_span(conn, socket, "outbound");
        entry.insert(Link::new(
            conn,
            stream,
            token,
            Stage::Connecting { socket },
            interest,
            span,
        ));
        self.by_conn.insert(conn, slot);
    }

    pub(super) fn resolve(&mut self, address: NodeAddress) {
        let (hostname, port) = match address.resolution() {
            Ok(Resolution::Lookup { hostname, port }) => (hostname, port),
            _ => (address.hostname.clone(), address.port),
        };
        let tx = self.resolved_tx.clone();
        let notify = self.remote.as_ref().map(|r| Arc::clone(&r.shared));
        self.resolving += 1;
        let spawned = std::thread::Builder::new()
            .name("tmp2p-dns".into())
            .spawn(move || {
                let ips: Vec<IpAddr> = match (hostname.as_str(), port).to_socket_addrs() {
                    Ok(found) => found.map(|s| s.ip()).collect(),
                    Err(error) => {
                        tracing::debug!(%hostname, %error, "lookup failed");
                        Vec::new()
                    }
                };
                let _ = tx.send((address, ips));
                if let Some(shared) = notify {
                    (shared.notify)();
                }
            });
        if let Err(error) = spawned {
            tracing::warn!(%error, "cannot start a DNS lookup thread");
        }
    }

    pub(super) fn accept(&mut self, now: Instant) {
        if !self.listener_ready || self.shutdown {
            return;
        }
        for _ in 0..self.limits.accepts_per_turn {
            match self.listener.accept() {
                Ok((stream, remote)) => self.admit(now, stream, remote),
                Err(e) if e.kind() == ErrorKind::WouldBlock => {
                    self.listener_ready = false;
                    return;
                }
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(error) => {
                    // E.g. out of descriptors: wait for the next listener event.
                    tracing::warn!(%error, "accept failed");
                    self.listener_ready = false;
                    return;
                }
            }
        }
    }

    pub(super) fn admit(&mut self, now: Instant, mut stream: TcpStream, remote: SocketAddr) {
        let entry = self.links.vacant_entry();
        let Some(token) = self.tokens.connection(entry.key()) else {
            tracing::debug!(%remote, "no free token: inbound connection dropped");
            return;
        };
        // A refusal is logged by the node machine.
        let Ok(params) = self.node.accept(now, remote) else {
            return;
        };
        let interest = Interest::READABLE | Interest::WRITABLE;
        if let Err(error) = self.registry.register(&mut stream, token, interest) {
            tracing::warn!(%remote, %error, "cannot register an accepted socket");
            let closed = LinkReport::Event(PeerEvent::Closed { reason: None });
            self.node.handle_link_report(now, params.conn, closed);
            return;
        }
        let _ = stream.set_nodelay(true);
        let conn = params.conn;
        let span = peer_span(conn, remote, params.direction.name());
        let settings = self.node.link_settings();
        let machine = ConnLink::new(now, &self.key, params, settings, &mut OsRng);
        let slot = entry.key();
        let link = entry.insert(Link::new(
            conn,
            stream,
            token,
            Stage::Open(Box::new(machine)),
            interest,
            span,
        ));
        // The dialer speaks when it has its own key ready, rarely before we accept: wait
        // for the readiness event (registration reports bytes already there) instead of a
        // read that would find nothing. Our first bytes go out on this turn.
        link.readable = false;
        self.by_conn.insert(conn, slot);
        self.enqueue(slot);
    }

    /// Completes (or fails) a non-blocking connect once the socket reported readiness.
    pub(super) fn check_connect(&mut self, slot: usize, now: Instant) {
        let Some(link) = self.links.get_mut(slot) else {
            return;
        };
        let Stage::Connecting { socket } = link.stage else {
            return;
        };
        if !link.readable && !link.writable {
            return;
        }
        let conn = link.conn;
        let failed = match link.stream.take_error() {
            Ok(Some(error)) | Err(error) => Some(error),
            Ok(None) => match link.stream.peer_addr() {
                Ok(_) => None,
                Err(e) if e.kind() == ErrorKind::NotConnected => {
                    link.readable = false;
                    link.writable = false;
                    return;
                }
                Err(error) => Some(error),
            },
        };
        if let Some(error) = failed {
            tracing::info!(%conn, %socket, %error, "dial failed");
            self.remove(slot, now);
            self.node.dial_failed(now, conn);
            return;
        }
        match self.node.dial_succeeded(now, conn, socket) {
            Ok(params) => {
                let _ = link.stream.set_nodelay(true);
                let settings = self.node.link_settings();
                let machine = ConnLink::new(now, &self.key, params, settings, &mut OsRng);
                link.stage = Stage::Open(Box::new(machine));
                link.readable = true;
                link.writable = true;
                self.enqueue(slot);
            }
            Err(error) => {
                tracing::debug!(%conn, %error, "connected too late");
                self.remove(slot, now);
            }
        }
    }
}

/// The span of one connection (the smol driver names its fields the same).
fn peer_span(conn: ConnectionId, remote: SocketAddr, direction: &'static str) -> tracing::Span {
    tracing::info_span!(
        "peer",
        %conn,
        %remote,
        direction,
        peer = tracing::field::Empty
    )
}
