//! Classification of IP addresses into the special-purpose ranges the legacy address book
//! cares about (the RFC names are the ones v0.34's `NetAddress` methods use).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// An IPv4 prefix `a.b.c.d/len`.
struct V4Net(Ipv4Addr, u32);
/// An IPv6 prefix `addr/len`.
struct V6Net(Ipv6Addr, u32);

impl V4Net {
    fn contains(&self, ip: IpAddr) -> bool {
        let IpAddr::V4(ip) = ip.to_canonical() else {
            return false;
        };
        // cannot panic: prefix lengths are constants of the tables below, all <= 32.
        let mask = u32::MAX.checked_shl(32 - self.1).unwrap_or(0);
        u32::from(ip) & mask == u32::from(self.0) & mask
    }
}

impl V6Net {
    fn contains(&self, ip: IpAddr) -> bool {
        // As in Go, an IPv4 address (or an IPv4-mapped IPv6 one) is never inside an
        // IPv6 prefix.
        let IpAddr::V6(ip) = ip.to_canonical() else {
            return false;
        };
        // cannot panic: prefix lengths are constants of the tables below, all <= 128.
        let mask = u128::MAX.checked_shl(128 - self.1).unwrap_or(0);
        u128::from(ip) & mask == u128::from(self.0) & mask
    }
}

const fn v6(segments: [u16; 8], len: u32) -> V6Net {
    let [a, b, c, d, e, f, g, h] = segments;
    V6Net(Ipv6Addr::new(a, b, c, d, e, f, g, h), len)
}

/// RFC 1918 private IPv4: 10/8, 172.16/12, 192.168/16.
pub(super) fn is_rfc1918(ip: IpAddr) -> bool {
    [
        V4Net(Ipv4Addr::new(10, 0, 0, 0), 8),
        V4Net(Ipv4Addr::new(172, 16, 0, 0), 12),
        V4Net(Ipv4Addr::new(192, 168, 0, 0), 16),
    ]
    .iter()
    .any(|net| net.contains(ip))
}

/// RFC 3849 IPv6 documentation range 2001:db8::/32.
pub(super) fn is_rfc3849(ip: IpAddr) -> bool {
    v6([0x2001, 0xdb8, 0, 0, 0, 0, 0, 0], 32).contains(ip)
}

/// RFC 3927 IPv4 link-local 169.254/16.
pub(super) fn is_rfc3927(ip: IpAddr) -> bool {
    V4Net(Ipv4Addr::new(169, 254, 0, 0), 16).contains(ip)
}

/// RFC 3964 6to4 2002::/16.
pub(super) fn is_rfc3964(ip: IpAddr) -> bool {
    v6([0x2002, 0, 0, 0, 0, 0, 0, 0], 16).contains(ip)
}

/// RFC 4193 IPv6 unique local fc00::/7.
pub(super) fn is_rfc4193(ip: IpAddr) -> bool {
    v6([0xfc00, 0, 0, 0, 0, 0, 0, 0], 7).contains(ip)
}

/// RFC 4380 Teredo 2001::/32.
pub(super) fn is_rfc4380(ip: IpAddr) -> bool {
    v6([0x2001, 0, 0, 0, 0, 0, 0, 0], 32).contains(ip)
}

/// RFC 4843 ORCHID 2001:10::/28.
pub(super) fn is_rfc4843(ip: IpAddr) -> bool {
    v6([0x2001, 0x10, 0, 0, 0, 0, 0, 0], 28).contains(ip)
}

/// RFC 4862 IPv6 link-local fe80::/64.
pub(super) fn is_rfc4862(ip: IpAddr) -> bool {
    v6([0xfe80, 0, 0, 0, 0, 0, 0, 0], 64).contains(ip)
}

/// RFC 6052 IPv4-embedded IPv6 64:ff9b::/96.
pub(super) fn is_rfc6052(ip: IpAddr) -> bool {
    v6([0x64, 0xff9b, 0, 0, 0, 0, 0, 0], 96).contains(ip)
}

/// RFC 6145 IPv4-translated IPv6 ::ffff:0:0:0/96.
pub(super) fn is_rfc6145(ip: IpAddr) -> bool {
    v6([0, 0, 0, 0, 0xffff, 0, 0, 0], 96).contains(ip)
}

/// Loopback (127/8, ::1) or in 0.0.0.0/8: what v0.34 calls `Local`.
pub(super) fn is_local(ip: IpAddr) -> bool {
    ip.to_canonical().is_loopback() || V4Net(Ipv4Addr::new(0, 0, 0, 0), 8).contains(ip)
}

/// Whether `ip` is IPv4, or IPv6 that maps an IPv4 address (Go's `To4() != nil`).
pub(super) fn is_v4(ip: IpAddr) -> bool {
    ip.to_canonical().is_ipv4()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn ranges_have_their_edges() {
        assert!(is_rfc1918(ip("172.31.255.255")));
        assert!(!is_rfc1918(ip("172.32.0.0")));
        assert!(is_rfc1918(ip("::ffff:10.1.2.3")));
        assert!(is_rfc3849(ip("2001:db8:ffff::1")));
        assert!(!is_rfc3849(ip("2001:db9::1")));
        assert!(is_rfc3927(ip("169.254.1.1")));
        assert!(is_rfc3964(ip("2002::1")));
        assert!(is_rfc4193(ip("fdff::1")));
        assert!(!is_rfc4193(ip("fe00::1")));
        assert!(is_rfc4380(ip("2001:0:ffff::1")));
        assert!(is_rfc4843(ip("2001:1f::1")));
        assert!(!is_rfc4843(ip("2001:20::1")));
        assert!(is_rfc4862(ip("fe80::1")));
        assert!(!is_rfc4862(ip("fe80:0:0:1::1")));
        assert!(is_rfc6052(ip("64:ff9b::1.2.3.4")));
        assert!(is_rfc6145(ip("::ffff:0:1.2.3.4")));
        assert!(is_local(ip("127.0.0.2")) && is_local(ip("0.1.2.3")) && is_local(ip("::1")));
        assert!(!is_local(ip("1.0.0.0")));
        assert!(is_v4(ip("::ffff:1.2.3.4")) && !is_v4(ip("::1")));
    }
}
