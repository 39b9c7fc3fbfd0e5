//! `NodeAddress`: the v0.35 URL form of a peer address (protocol.md §3.3), its parsing,
//! printing, validation, and what must be done to turn it into endpoints.

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

use super::endpoint::Endpoint;
use super::hostname::is_dns_name;
use super::protocol::Protocol;
use super::url_syntax::{escape, Component, ParsedUrl, UrlWriter};
use super::AddressError;
use crate::id::{IdError, NodeId};

/// A peer's address: `protocol://node_id@hostname:port/path`, or the opaque
/// `protocol:node_id` (e.g. `memory:<id>`), or a bare `node_id@hostname[:port]` (protocol
/// `mconn`). Port 0 means "not given"; `path` keeps the query and fragment.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct NodeAddress {
    /// The peer's node id.
    pub node_id: NodeId,
    /// The transport protocol (lower-cased URL scheme).
    pub protocol: Protocol,
    /// Lower-cased host name or IP literal (no IPv6 brackets); empty for opaque addresses.
    pub hostname: String,
    /// The port, 0 if none was given.
    pub port: u16,
    /// Path, with `?query` and `#fragment` appended; empty if none.
    pub path: String,
}

/// What it takes to turn a [`NodeAddress`] into [`Endpoint`]s. Core never resolves names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Resolution {
    /// The endpoints are known without IO: the hostname is an IP literal, or the address is
    /// a hostless one such as `memory:<id>`.
    Endpoints(Vec<Endpoint>),
    /// `hostname` must be looked up (A and AAAA records); pass the IPs found to
    /// [`NodeAddress::endpoints_from_ips`]. Finding no IP means the address does not resolve.
    Lookup {
        /// The DNS name to look up.
        hostname: String,
        /// The port every resolved endpoint gets.
        port: u16,
    },
}

/// Scheme-less strings that look like `host:port` (Go: `^[^/:]+:\d+(/|$)`), which a URL
/// parser would otherwise read as `scheme:opaque`.
fn looks_like_host_port(s: &str) -> bool {
    let Some((host, rest)) = s.split_once(':') else {
        return false;
    };
    let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
    !host.is_empty()
        && !host.contains('/')
        && digits > 0
        && matches!(rest.as_bytes().get(digits), None | Some(b'/'))
}

impl NodeAddress {
    /// Parses an address string as v0.35's `ParseNodeAddress` does, then [`validate`]s it.
    ///
    /// [`validate`]: NodeAddress::validate
    pub fn parse(s: &str) -> Result<Self, AddressError> {
        let first = ParsedUrl::parse(s);
        let needs_default_scheme = first.as_ref().map_or(true, |url| url.scheme.is_empty());
        let url = if needs_default_scheme && (!s.contains("://") || looks_like_host_port(s)) {
            ParsedUrl::parse(&format!("{}://{s}", Protocol::MCONN))?
        } else {
            first?
        };
        let protocol = Protocol::new(&url.scheme);
        if !url.opaque.is_empty() {
            // `scheme:opaque` carries only a node id, taken as written (not lower-cased).
            let node_id =
                NodeId::parse_canonical(&url.opaque).map_err(AddressError::InvalidNodeId)?;
            let address = NodeAddress {
                node_id,
                protocol,
                hostname: String::new(),
                port: 0,
                path: String::new(),
            };
            address.validate()?;
            return Ok(address);
        }
        let user = url.user.as_deref().unwrap_or_default().to_lowercase();
        let hostname = url.hostname().to_lowercase();
        let port = match url.port() {
            "" => 0,
            digits => digits
                .parse::<u16>()
                .map_err(|_| AddressError::PortOutOfRange(digits.to_owned()))?,
        };
        let mut path = url.path.clone();
        if !url.raw_query.is_empty() {
            path.push('?');
            path.push_str(&url.raw_query);
        }
        if !url.fragment.is_empty() {
            path.push('#');
            path.push_str(&url.fragment);
        }
        if !path.is_empty() && !path.starts_with(['/', '?', '#']) {
            path.insert(0, '/');
        }
        // Go validates the protocol before the node id.
        if protocol.is_empty() {
            return Err(AddressError::NoProtocol);
        }
        let node_id = match NodeId::parse_canonical(&user) {
            Ok(id) => id,
            Err(IdError::Empty) => return Err(AddressError::NoNodeId),
            Err(e) => return Err(AddressError::InvalidNodeId(e)),
        };
        let address = NodeAddress {
            node_id,
            protocol,
            hostname,
            port,
            path,
        };
        address.validate()?;
        Ok(address)
    }

    /// v0.35 `NodeAddress.Validate`: a protocol is required and a port needs a hostname.
    /// (The node id is valid by construction.)
    pub fn validate(&self) -> Result<(), AddressError> {
        if self.protocol.is_empty() {
            return Err(AddressError::NoProtocol);
        }
        if self.port > 0 && self.hostname.is_empty() {
            return Err(AddressError::PortWithoutHostname(self.port));
        }
        Ok(())
    }

    /// What must be done to get this address's endpoints (v0.35 `Resolve` without the IO):
    /// a hostless address yields one endpoint `{protocol, path: node id}`; an IP literal
    /// yields its endpoint; a DNS name asks the driver for a [`Resolution::Lookup`].
    pub fn resolution(&self) -> Result<Resolution, AddressError> {
        if self.protocol.is_empty() {
            return Err(AddressError::NoProtocol);
        }
        if self.hostname.is_empty() {
            return Ok(Resolution::Endpoints(vec![Endpoint {
                protocol: self.protocol.clone(),
                ip: None,
                port: 0,
                path: self.node_id.to_string(),
            }]));
        }
        if let Ok(ip) = self.hostname.parse::<IpAddr>() {
            return Ok(Resolution::Endpoints(self.endpoints_from_ips(&[ip])));
        }
        if is_dns_name(&self.hostname) {
            return Ok(Resolution::Lookup {
                hostname: self.hostname.clone(),
                port: self.port,
            });
        }
        Err(AddressError::InvalidHostname(self.hostname.clone()))
    }

    /// One endpoint per IP the driver resolved the hostname to, with this address's
    /// protocol, port and path.
    pub fn endpoints_from_ips(&self, ips: &[IpAddr]) -> Vec<Endpoint> {
        ips.iter()
            .map(|&ip| Endpoint {
                protocol: self.protocol.clone(),
                ip: Some(ip),
                port: self.port,
                path: self.path.clone(),
            })
            .collect()
    }
}

impl fmt::Display for NodeAddress {
    /// Prints the URL form that [`NodeAddress::parse`] reads back to an equal address:
    /// `protocol://id@host:port/path`, or `protocol:id` when there is no hostname and the
    /// path is empty or the id. Unlike Go, an IPv6 hostname is bracketed even without a
    /// port (Go prints `mconn://id@1::`, which reads back as host `1:`).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let id = self.node_id.to_string();
        let host = match (self.hostname.contains(':'), self.port) {
            (true, 0) => format!("[{}]", self.hostname),
            (true, port) => format!("[{}]:{port}", self.hostname),
            (false, 0) => self.hostname.clone(),
            (false, port) => format!("{}:{port}", self.hostname),
        };
        let opaque = self.hostname.is_empty()
            && !self.protocol.is_empty()
            && (self.path.is_empty() || self.path == id);
        // A path that is only `?query` / `#fragment` (what parsing `host?q` gives) is
        // written as a query and fragment, not as an escaped path, so it reads back equal.
        let (path, query_fragment) = if self.path.starts_with(['?', '#']) {
            (String::new(), query_and_fragment(&self.path))
        } else if self.hostname.is_empty() && !self.path.is_empty() && !self.path.starts_with('/') {
            (format!("/{}", self.path), String::new())
        } else {
            (self.path.clone(), String::new())
        };
        let url = if opaque {
            UrlWriter {
                scheme: self.protocol.as_str(),
                opaque: &id,
                user: None,
                host: "",
                path: "",
            }
        } else {
            UrlWriter {
                scheme: self.protocol.as_str(),
                opaque: "",
                user: Some(&id),
                host: if self.hostname.is_empty() { "" } else { &host },
                path: &path,
            }
        };
        f.write_str(&url.write())?;
        f.write_str(&query_fragment)
    }
}

/// `?query#fragment` text as parsing reads it back: the query verbatim (queries are not
/// unescaped), the fragment escaped (fragments are).
fn query_and_fragment(path: &str) -> String {
    match path.split_once('#') {
        Some((query, fragment)) => format!("{query}#{}", escape(fragment, Component::Fragment)),
        None => path.to_owned(),
    }
}

impl FromStr for NodeAddress {
    type Err = AddressError;
    /// Parses with [`NodeAddress::parse`].
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const U: &str = "00112233445566778899aabbccddeeff00112233";

    #[test]
    fn host_port_heuristic_matches_go_regex() {
        assert!(looks_like_host_port("host:80"));
        assert!(looks_like_host_port("host:80/x"));
        assert!(!looks_like_host_port("host:80x"));
        assert!(!looks_like_host_port(":80"));
        assert!(!looks_like_host_port("a/b:80"));
        assert!(!looks_like_host_port("host:"));
    }

    #[test]
    fn ipv6_without_port_round_trips() {
        let address = NodeAddress::parse(&format!("{U}@[1::]")).unwrap();
        assert_eq!(address.hostname, "1::");
        assert_eq!(address.to_string(), format!("mconn://{U}@[1::]"));
        assert_eq!(NodeAddress::parse(&address.to_string()).unwrap(), address);
    }

    #[test]
    fn lookup_needed_only_for_names() {
        let named = NodeAddress::parse(&format!("{U}@example.com:26656")).unwrap();
        assert_eq!(
            named.resolution().unwrap(),
            Resolution::Lookup {
                hostname: "example.com".into(),
                port: 26656
            }
        );
        let ip: IpAddr = "10.0.0.1".parse().unwrap();
        let endpoints = named.endpoints_from_ips(&[ip]);
        assert_eq!(endpoints.len(), 1);
        assert_eq!(endpoints[0].ip, Some(ip));
        assert_eq!(endpoints[0].port, 26656);
        let literal = NodeAddress::parse(&format!("{U}@10.0.0.1:1")).unwrap();
        assert!(matches!(literal.resolution().unwrap(), Resolution::Endpoints(e) if e.len() == 1));
    }

    /// Every combination of tricky pieces: parsing never panics, and whatever parses
    /// prints to a string that parses back to the same address.
    #[test]
    fn assembled_addresses_round_trip() {
        let upper = U.to_uppercase();
        let ids = [U, upper.as_str(), "", "foo"];
        let schemes = ["", "mconn://", "TCP://", "memory:", "x+y://", "//"];
        let hosts = [
            "127.0.0.1",
            "[::1]",
            "[fd80:b10c::2]",
            "Host.Example",
            "%F0%9F%91%8B",
            "",
            "a b",
            "h%41",
            "[::1",
        ];
        let ports = ["", ":0", ":80", ":65535", ":65536", ":", ":8a"];
        let paths = [
            "", "/p", "/a%20b", "?q=1", "#f", "/x?y#z", "/%3F", "/🛣", "/%zz",
        ];
        let mut parsed = 0;
        for scheme in schemes {
            for id in ids {
                for host in hosts {
                    for port in ports {
                        for path in paths {
                            let s = format!("{scheme}{id}@{host}{port}{path}");
                            let Ok(address) = NodeAddress::parse(&s) else {
                                continue;
                            };
                            parsed += 1;
                            let printed = address.to_string();
                            assert_eq!(
                                NodeAddress::parse(&printed).as_ref(),
                                Ok(&address),
                                "{s} printed as {printed}"
                            );
                        }
                    }
                }
            }
        }
        assert!(parsed > 500, "only {parsed} combinations parsed");
    }

    #[test]
    fn arbitrary_strings_never_panic() {
        fn prop(s: String) -> bool {
            match NodeAddress::parse(&s) {
                Ok(address) => NodeAddress::parse(&address.to_string()) == Ok(address),
                Err(_) => true,
            }
        }
        quickcheck::quickcheck(prop as fn(String) -> bool);
    }

    #[test]
    fn memory_address_is_opaque() {
        let address = NodeAddress::parse(&format!("memory:{U}")).unwrap();
        assert_eq!(address.protocol, Protocol::MEMORY);
        assert_eq!(address.to_string(), format!("memory:{U}"));
        // The opaque id is taken as written: upper case is not a canonical id.
        assert!(matches!(
            NodeAddress::parse(&format!("memory:{}", U.to_uppercase())),
            Err(AddressError::InvalidNodeId(IdError::NotLowerCase))
        ));
    }
}
