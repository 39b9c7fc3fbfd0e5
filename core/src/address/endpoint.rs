//! `Endpoint`: a transport-level address that can be dialed or listened on, without a node
//! id (ADR 062; protocol.md §3.3).

use std::fmt;
use std::net::{IpAddr, SocketAddr};

use super::node_address::NodeAddress;
use super::protocol::Protocol;
use super::url_syntax::UrlWriter;
use super::AddressError;
use crate::id::NodeId;

/// The port an MConnection dial uses when an endpoint has port 0 (v0.35 uses 26657 here,
/// the RPC port, not the P2P default 26656; kept for compatibility).
pub const MCONN_DEFAULT_DIAL_PORT: u16 = 26657;

/// A transport address: protocol plus either an IP (and port) or a path (e.g. the node id
/// of a `memory` endpoint).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Endpoint {
    /// The transport protocol.
    pub protocol: Protocol,
    /// The IP address, for networked transports.
    pub ip: Option<IpAddr>,
    /// The port (0 = none); requires an IP.
    pub port: u16,
    /// A transport-specific path.
    pub path: String,
}

impl Endpoint {
    /// v0.35 `Endpoint.Validate`: protocol set, an IP or a path, and a port only with an IP.
    /// (An `IpAddr` is always 4 or 16 bytes, so Go's IP length check holds by construction.)
    pub fn validate(&self) -> Result<(), AddressError> {
        if self.protocol.is_empty() {
            return Err(AddressError::NoProtocol);
        }
        if self.ip.is_none() && self.path.is_empty() {
            return Err(AddressError::NoIpNorPath);
        }
        if self.port > 0 && self.ip.is_none() {
            return Err(AddressError::PortWithoutIp(self.port));
        }
        Ok(())
    }

    /// What the MConnection transport accepts to listen on or dial: a valid endpoint with
    /// protocol `mconn` or `tcp`, an IP and no path.
    pub fn validate_mconn(&self) -> Result<(), AddressError> {
        self.validate()?;
        if !self.protocol.is_mconn() {
            return Err(AddressError::UnsupportedProtocol(self.protocol.to_string()));
        }
        if self.ip.is_none() {
            return Err(AddressError::NoIp);
        }
        if !self.path.is_empty() {
            return Err(AddressError::PathNotSupported(self.path.clone()));
        }
        Ok(())
    }

    /// The socket address an MConnection dial connects to: [`validate_mconn`], the IP must
    /// be unicast (TCP cannot reach broadcast or multicast addresses), and port 0 becomes
    /// [`MCONN_DEFAULT_DIAL_PORT`].
    ///
    /// [`validate_mconn`]: Endpoint::validate_mconn
    pub fn mconn_dial_addr(&self) -> Result<SocketAddr, AddressError> {
        self.validate_mconn()?;
        let Some(ip) = self.ip else {
            return Err(AddressError::NoIp);
        };
        let undialable = match ip.to_canonical() {
            IpAddr::V4(v4) => v4.is_broadcast() || v4.is_multicast(),
            IpAddr::V6(v6) => v6.is_multicast(),
        };
        if undialable {
            return Err(AddressError::NotDialable(ip));
        }
        let port = if self.port == 0 {
            MCONN_DEFAULT_DIAL_PORT
        } else {
            self.port
        };
        Ok(SocketAddr::new(ip, port))
    }

    /// The node address of the peer `node_id` reached at this endpoint: the IP becomes the
    /// hostname (IPv4-mapped IPv6 printed as IPv4) and the port is kept only with an IP.
    pub fn node_address(&self, node_id: NodeId) -> NodeAddress {
        let (hostname, port) = match self.ip {
            Some(ip) => (ip.to_canonical().to_string(), self.port),
            None => (String::new(), 0),
        };
        NodeAddress {
            node_id,
            protocol: self.protocol.clone(),
            hostname,
            port,
            path: self.path.clone(),
        }
    }
}

impl fmt::Display for Endpoint {
    /// As v0.35 `Endpoint.String`: `protocol:id` when there is no IP and the path is a node
    /// id; otherwise `protocol://ip[:port]/path` (IPv6 bracketed only with a port,
    /// IPv4-mapped IPv6 printed as IPv4, a relative path given a leading `/`).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.ip.is_none() {
            if let Ok(id) = NodeId::parse(&self.path) {
                let id = id.to_string();
                let url = UrlWriter {
                    scheme: self.protocol.as_str(),
                    opaque: &id,
                    user: None,
                    host: "",
                    path: "",
                };
                return f.write_str(&url.write());
            }
        }
        let host = match self.ip.map(|ip| ip.to_canonical()) {
            None => String::new(),
            Some(ip) if self.port == 0 => ip.to_string(),
            Some(ip) => SocketAddr::new(ip, self.port).to_string(),
        };
        let path = if !self.path.is_empty() && !self.path.starts_with('/') {
            format!("/{}", self.path)
        } else {
            self.path.clone()
        };
        let url = UrlWriter {
            scheme: self.protocol.as_str(),
            opaque: "",
            user: None,
            host: &host,
            path: &path,
        };
        f.write_str(&url.write())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tcp(ip: &str, port: u16) -> Endpoint {
        Endpoint {
            protocol: Protocol::TCP,
            ip: Some(ip.parse().unwrap()),
            port,
            path: String::new(),
        }
    }

    #[test]
    fn dial_addr_defaults_port_and_rejects_non_unicast() {
        assert_eq!(
            tcp("1.2.3.4", 0).mconn_dial_addr().unwrap(),
            "1.2.3.4:26657".parse().unwrap()
        );
        assert_eq!(
            tcp("::1", 5).mconn_dial_addr().unwrap(),
            "[::1]:5".parse().unwrap()
        );
        assert!(matches!(
            tcp("ff02::1", 5).mconn_dial_addr(),
            Err(AddressError::NotDialable(_))
        ));
        let memory = Endpoint {
            protocol: Protocol::MEMORY,
            ip: None,
            port: 0,
            path: "x".into(),
        };
        assert_eq!(
            memory.mconn_dial_addr(),
            Err(AddressError::UnsupportedProtocol("memory".into()))
        );
    }
}
