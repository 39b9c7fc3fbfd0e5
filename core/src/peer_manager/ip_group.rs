//! IP groups for eclipse resistance: addresses sharing a prefix (/16 IPv4, /32 IPv6 by
//! default) form one group, and the manager caps connected and stored peers per group.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// The masked network prefix that names one IP group.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct IpGroup(pub IpAddr);

impl std::fmt::Display for IpGroup {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// How addresses are grouped (a copy of the relevant options).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Grouping {
    pub(super) ipv4_prefix: u8,
    pub(super) ipv6_prefix: u8,
    pub(super) exempt_loopback: bool,
}

impl Grouping {
    /// The group of `ip`; `None` for loopback when loopback is exempt. IPv4-mapped IPv6
    /// addresses group as IPv4.
    pub(super) fn group_of(&self, ip: IpAddr) -> Option<IpGroup> {
        let ip = ip.to_canonical();
        if self.exempt_loopback && ip.is_loopback() {
            return None;
        }
        Some(IpGroup(match ip {
            IpAddr::V4(v4) => {
                let mask = prefix_mask_u32(self.ipv4_prefix);
                IpAddr::V4(Ipv4Addr::from(u32::from(v4) & mask))
            }
            IpAddr::V6(v6) => {
                let mask = prefix_mask_u128(self.ipv6_prefix);
                IpAddr::V6(Ipv6Addr::from(u128::from(v6) & mask))
            }
        }))
    }

    /// The group of a hostname that is an IP literal; `None` for names (their group is
    /// unknown until a connection reveals the IP) and exempt loopback.
    pub(super) fn group_of_hostname(&self, hostname: &str) -> Option<IpGroup> {
        let bare = hostname.trim_start_matches('[').trim_end_matches(']');
        bare.parse::<IpAddr>().ok().and_then(|ip| self.group_of(ip))
    }
}

fn prefix_mask_u32(prefix: u8) -> u32 {
    match prefix {
        0 => 0,
        p if p >= 32 => u32::MAX,
        p => u32::MAX << (32 - u32::from(p)), // cannot panic: 0 < p < 32
    }
}

fn prefix_mask_u128(prefix: u8) -> u128 {
    match prefix {
        0 => 0,
        p if p >= 128 => u128::MAX,
        p => u128::MAX << (128 - u32::from(p)), // cannot panic: 0 < p < 128
    }
}

/// Members per group.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(super) struct GroupCounts(BTreeMap<IpGroup, u32>);

impl GroupCounts {
    pub(super) fn get(&self, group: IpGroup) -> u32 {
        self.0.get(&group).copied().unwrap_or(0)
    }

    pub(super) fn increment(&mut self, group: IpGroup) {
        let n = self.0.entry(group).or_insert(0);
        *n = n.saturating_add(1);
    }

    pub(super) fn decrement(&mut self, group: IpGroup) {
        if let Some(n) = self.0.get_mut(&group) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                self.0.remove(&group);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DEFAULT: Grouping = Grouping {
        ipv4_prefix: 16,
        ipv6_prefix: 32,
        exempt_loopback: false,
    };

    #[test]
    fn ipv4_groups_by_slash_16_and_ipv6_by_slash_32() {
        let g = |s: &str| DEFAULT.group_of_hostname(s);
        assert_eq!(g("10.1.2.3"), g("10.1.200.9"));
        assert_ne!(g("10.1.2.3"), g("10.2.2.3"));
        assert_eq!(g("2001:db8:1::1"), g("2001:db8:ffff::2"));
        assert_ne!(g("2001:db8::1"), g("2001:db9::1"));
        assert_eq!(g("[2001:db8::1]"), g("2001:db8::2"));
        assert_eq!(g("::ffff:10.1.2.3"), g("10.1.9.9"));
        assert_eq!(g("example.com"), None);
    }

    #[test]
    fn loopback_is_exempt_only_when_configured() {
        assert!(DEFAULT.group_of_hostname("127.0.0.1").is_some());
        let exempt = Grouping {
            exempt_loopback: true,
            ..DEFAULT
        };
        assert_eq!(exempt.group_of_hostname("127.0.0.1"), None);
        assert_eq!(exempt.group_of_hostname("::1"), None);
    }

    #[test]
    fn extreme_prefixes_do_not_overflow() {
        let all = Grouping {
            ipv4_prefix: 0,
            ipv6_prefix: 0,
            exempt_loopback: false,
        };
        assert_eq!(
            all.group_of_hostname("1.2.3.4"),
            all.group_of_hostname("9.9.9.9")
        );
        let each = Grouping {
            ipv4_prefix: 32,
            ipv6_prefix: 128,
            exempt_loopback: false,
        };
        assert_ne!(
            each.group_of_hostname("1.2.3.4"),
            each.group_of_hostname("1.2.3.5")
        );
    }
}
