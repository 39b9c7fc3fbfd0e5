//! The legacy v0.34 / CometBFT address `id@ip:port` (protocol.md §3.2): parsing of the
//! string form, the PEX protobuf form, and the IP classification the address book uses
//! (`Valid`, `Local`, `Routable`, `ReachabilityTo`).

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use tmp2p_proto::p2p::NetAddress as ProtoNetAddress;

use super::hostname::is_dns_name;
use super::ip_class;
use super::AddressError;
use crate::id::NodeId;

/// A legacy peer address: node id, IP and port. Printed as `id@ip:port` (IPv6 bracketed).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct NetAddress {
    /// The peer's node id.
    pub id: NodeId,
    /// The peer's IP address.
    pub ip: IpAddr,
    /// The peer's port.
    pub port: u16,
}

/// A legacy address whose host is a DNS name: Go resolves it while parsing, core leaves
/// that to the driver ([`UnresolvedNetAddress::with_ip`] finishes it).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct UnresolvedNetAddress {
    /// The peer's node id.
    pub id: NodeId,
    /// The syntactically valid DNS name to look up.
    pub hostname: String,
    /// The peer's port.
    pub port: u16,
}

/// The outcome of parsing a legacy address string.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum ParsedNetAddress {
    /// The host was an IP literal: the address is complete.
    Resolved(NetAddress),
    /// The host is a DNS name that must be looked up first.
    NeedsLookup(UnresolvedNetAddress),
}

/// How well one address can reach another (v0.34 `ReachabilityTo`; higher is better).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Reachability {
    /// This address is not routable.
    Unreachable = 0,
    /// Reachable in principle, no better match.
    Default = 1,
    /// Through Teredo tunnelling.
    Teredo = 2,
    /// IPv6 to a tunnelled IPv6 address.
    Ipv6Weak = 3,
    /// IPv4 to IPv4.
    Ipv4 = 4,
    /// Native IPv6 to IPv6.
    Ipv6Strong = 5,
}

/// Strips a `scheme://` prefix as v0.34 does: keep the text between the first `://` and the
/// next one, if any.
fn strip_scheme(s: &str) -> &str {
    match s.split_once("://") {
        Some((_, rest)) => rest.split("://").next().unwrap_or_default(),
        None => s,
    }
}

/// Go's `net.SplitHostPort`: `host:port` or `[host]:port`; the port is required.
fn split_host_port(s: &str) -> Result<(&str, &str), AddressError> {
    let malformed = || AddressError::MalformedHostPort(s.to_owned());
    let Some(colon) = s.rfind(':') else {
        return Err(AddressError::MissingPort(s.to_owned()));
    };
    let (host_part, colon_port) = s.split_at(colon);
    let port = colon_port.get(1..).unwrap_or_default();
    let host = if let Some(bracketed) = host_part.strip_prefix('[') {
        let Some(inner) = bracketed.strip_suffix(']') else {
            // `[::1]` with no port has its last colon inside the brackets.
            return Err(if s.ends_with(']') {
                AddressError::MissingPort(s.to_owned())
            } else {
                malformed()
            });
        };
        if inner.contains(['[', ']']) {
            return Err(malformed());
        }
        inner
    } else {
        if host_part.contains([':', '[', ']']) {
            return Err(malformed());
        }
        host_part
    };
    if port.contains(['[', ']']) {
        return Err(malformed());
    }
    Ok((host, port))
}

impl NetAddress {
    /// Parses `id@host:port`, optionally behind `scheme://`, as v0.34's
    /// `NewNetAddressString` does: exactly one `@`, an id that hex-decodes to 20 bytes
    /// (either case), a non-empty host and a base-10 `u16` port. A host that is not an IP
    /// literal must be a valid DNS name and yields [`ParsedNetAddress::NeedsLookup`].
    pub fn parse(s: &str) -> Result<ParsedNetAddress, AddressError> {
        let without_scheme = strip_scheme(s);
        let mut parts = without_scheme.split('@');
        let (Some(id), Some(host_port), None) = (parts.next(), parts.next(), parts.next()) else {
            return Err(AddressError::NoIdSeparator(s.to_owned()));
        };
        let id = NodeId::parse_legacy(id).map_err(AddressError::InvalidNodeId)?;
        let (host, port) = split_host_port(host_port)?;
        if host.is_empty() {
            return Err(AddressError::EmptyHost);
        }
        let port = port
            .parse::<u16>()
            .ok()
            .filter(|_| port.bytes().all(|b| b.is_ascii_digit()))
            .ok_or_else(|| AddressError::PortOutOfRange(port.to_owned()))?;
        if let Ok(ip) = host.parse::<IpAddr>() {
            return Ok(ParsedNetAddress::Resolved(NetAddress { id, ip, port }));
        }
        if !is_dns_name(host) {
            return Err(AddressError::InvalidHostname(host.to_owned()));
        }
        Ok(ParsedNetAddress::NeedsLookup(UnresolvedNetAddress {
            id,
            hostname: host.to_owned(),
            port,
        }))
    }

    /// The address of `id` at a socket address (v0.34 `NewNetAddress` from a TCP address).
    pub fn from_socket_addr(id: NodeId, addr: SocketAddr) -> Self {
        NetAddress {
            id,
            ip: addr.ip(),
            port: addr.port(),
        }
    }

    /// `ip:port` without the id (v0.34 `DialString`), IPv6 bracketed.
    pub fn dial_string(&self) -> String {
        SocketAddr::new(self.ip.to_canonical(), self.port).to_string()
    }

    /// v0.34 `Valid`: the IP is not unspecified, not in 2001:db8::/32 and not the IPv4
    /// broadcast address (the id is valid by construction).
    pub fn valid(&self) -> Result<(), AddressError> {
        let ip = self.ip.to_canonical();
        if ip.is_unspecified() {
            return Err(AddressError::UnspecifiedIp(self.ip));
        }
        if ip_class::is_rfc3849(ip) {
            return Err(AddressError::DocumentationIp(self.ip));
        }
        if ip == IpAddr::V4(Ipv4Addr::BROADCAST) {
            return Err(AddressError::BroadcastIp(self.ip));
        }
        Ok(())
    }

    /// v0.34 `Local`: loopback or in 0.0.0.0/8.
    pub fn is_local(&self) -> bool {
        ip_class::is_local(self.ip)
    }

    /// v0.34 `Routable`: valid, and not private, link-local, unique-local, ORCHID or local.
    pub fn is_routable(&self) -> bool {
        let ip = self.ip;
        self.valid().is_ok()
            && !(ip_class::is_rfc1918(ip)
                || ip_class::is_rfc3927(ip)
                || ip_class::is_rfc4862(ip)
                || ip_class::is_rfc4193(ip)
                || ip_class::is_rfc4843(ip)
                || self.is_local())
    }

    /// v0.34 `ReachabilityTo`: how well this address reaches `other`.
    pub fn reachability_to(&self, other: &NetAddress) -> Reachability {
        let other_v4 = ip_class::is_v4(other.ip);
        if !self.is_routable() {
            Reachability::Unreachable
        } else if ip_class::is_rfc4380(self.ip) {
            if !other.is_routable() {
                Reachability::Default
            } else if ip_class::is_rfc4380(other.ip) {
                Reachability::Teredo
            } else if other_v4 {
                Reachability::Ipv4
            } else {
                Reachability::Ipv6Weak
            }
        } else if ip_class::is_v4(self.ip) {
            if other.is_routable() && other_v4 {
                Reachability::Ipv4
            } else {
                Reachability::Default
            }
        } else {
            let tunnelled = ip_class::is_rfc3964(other.ip)
                || ip_class::is_rfc6052(other.ip)
                || ip_class::is_rfc6145(other.ip);
            if !other.is_routable() {
                Reachability::Default
            } else if ip_class::is_rfc4380(other.ip) {
                Reachability::Teredo
            } else if other_v4 {
                Reachability::Ipv4
            } else if tunnelled {
                Reachability::Ipv6Weak
            } else {
                Reachability::Ipv6Strong
            }
        }
    }
}

impl UnresolvedNetAddress {
    /// The address once the driver has resolved the hostname (v0.34 takes the first IP).
    pub fn with_ip(&self, ip: IpAddr) -> NetAddress {
        NetAddress {
            id: self.id,
            ip,
            port: self.port,
        }
    }
}

impl fmt::Display for NetAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}@{}", self.id, self.dial_string())
    }
}

impl From<&NetAddress> for ProtoNetAddress {
    fn from(address: &NetAddress) -> Self {
        ProtoNetAddress {
            id: address.id.to_string(),
            ip: address.ip.to_canonical().to_string(),
            port: u32::from(address.port),
        }
    }
}

impl TryFrom<ProtoNetAddress> for NetAddress {
    type Error = AddressError;

    /// Decodes a PEX address: the id must hex-decode to 20 bytes, `ip` must be an IP
    /// address in text form and `port` below 65536.
    fn try_from(proto: ProtoNetAddress) -> Result<Self, Self::Error> {
        let id = NodeId::parse_legacy(&proto.id).map_err(AddressError::InvalidNodeId)?;
        let ip = proto
            .ip
            .parse::<IpAddr>()
            .map_err(|_| AddressError::InvalidIp(proto.ip.clone()))?;
        let port = u16::try_from(proto.port).map_err(|_| AddressError::PortTooLarge(proto.port))?;
        Ok(NetAddress { id, ip, port })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const D: &str = "deadbeefdeadbeefdeadbeefdeadbeefdeadbeef";

    fn resolved(s: &str) -> NetAddress {
        match NetAddress::parse(s).unwrap() {
            ParsedNetAddress::Resolved(a) => a,
            other => panic!("{s}: {other:?}"),
        }
    }

    #[test]
    fn split_host_port_like_go() {
        assert_eq!(split_host_port("[::1]:80").unwrap(), ("::1", "80"));
        assert_eq!(split_host_port("h:").unwrap(), ("h", ""));
        assert!(matches!(
            split_host_port("[::1]"),
            Err(AddressError::MissingPort(_))
        ));
        assert!(matches!(
            split_host_port("::1:80"),
            Err(AddressError::MalformedHostPort(_))
        ));
        assert!(matches!(
            split_host_port("h"),
            Err(AddressError::MissingPort(_))
        ));
    }

    #[test]
    fn ipv6_and_names() {
        let v6 = resolved(&format!("{D}@[2001:4860::1]:26656"));
        assert_eq!(v6.to_string(), format!("{D}@[2001:4860::1]:26656"));
        assert!(v6.is_routable());
        assert!(matches!(
            NetAddress::parse(&format!("{D}@seed.example:26656")).unwrap(),
            ParsedNetAddress::NeedsLookup(UnresolvedNetAddress { port: 26656, .. })
        ));
        assert!(matches!(
            NetAddress::parse(&format!("{D}@bad host:1")),
            Err(AddressError::InvalidHostname(_))
        ));
        assert!(matches!(
            NetAddress::parse(&format!("{D}@h:+1")),
            Err(AddressError::PortOutOfRange(_))
        ));
    }

    #[test]
    fn validity_classes() {
        for (ip, expect_valid) in [
            ("0.0.0.0", false),
            ("::", false),
            ("2001:db8::1", false),
            ("255.255.255.255", false),
            ("10.0.0.1", true),
        ] {
            let a = resolved(&format!("{D}@{}", SocketAddr::new(ip.parse().unwrap(), 1)));
            assert_eq!(a.valid().is_ok(), expect_valid, "{ip}");
        }
        assert!(!resolved(&format!("{D}@10.0.0.1:1")).is_routable());
        assert!(!resolved(&format!("{D}@[fe80::1]:1")).is_routable());
        assert!(resolved(&format!("{D}@8.8.8.8:1")).is_routable());
    }

    #[test]
    fn reachability_between_families() {
        let v4 = resolved(&format!("{D}@8.8.8.8:1"));
        let v6 = resolved(&format!("{D}@[2a00::1]:1"));
        let teredo = resolved(&format!("{D}@[2001::1]:1"));
        let six_to_four = resolved(&format!("{D}@[2002::1]:1"));
        assert_eq!(v4.reachability_to(&v6), Reachability::Default);
        assert_eq!(v6.reachability_to(&v4), Reachability::Ipv4);
        assert_eq!(v6.reachability_to(&v6), Reachability::Ipv6Strong);
        assert_eq!(v6.reachability_to(&six_to_four), Reachability::Ipv6Weak);
        assert_eq!(v6.reachability_to(&teredo), Reachability::Teredo);
        assert_eq!(teredo.reachability_to(&v4), Reachability::Ipv4);
        assert_eq!(teredo.reachability_to(&v6), Reachability::Ipv6Weak);
    }

    #[test]
    fn proto_round_trip_and_checks() {
        let a = resolved(&format!("{D}@1.2.3.4:26656"));
        let proto = ProtoNetAddress::from(&a);
        assert_eq!(proto.ip, "1.2.3.4");
        assert_eq!(NetAddress::try_from(proto.clone()).unwrap(), a);
        let bad_ip = ProtoNetAddress {
            ip: "1.2.3".into(),
            ..proto.clone()
        };
        assert_eq!(
            NetAddress::try_from(bad_ip),
            Err(AddressError::InvalidIp("1.2.3".into()))
        );
        let big_port = ProtoNetAddress {
            port: 65536,
            ..proto.clone()
        };
        assert_eq!(
            NetAddress::try_from(big_port),
            Err(AddressError::PortTooLarge(65536))
        );
        let bad_id = ProtoNetAddress {
            id: "abc".into(),
            ..proto
        };
        assert!(matches!(
            NetAddress::try_from(bad_id),
            Err(AddressError::InvalidNodeId(_))
        ));
    }
}
