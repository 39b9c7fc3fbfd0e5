//! Temporary stand-in for `crate::address::NodeAddress` (being written by another
//! engineer): only the fields and methods the peer manager needs, with the promised
//! names, so the swap is a one-line `use` change.

use std::fmt;

use crate::id::NodeId;

/// Why an address string was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AddressError {
    /// The string is not `id@host:port`.
    #[error("address is not of the form id@host[:port]: {0:?}")]
    Malformed(String),
}

/// A peer address (stand-in): `mconn://id@host:port`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct NodeAddress {
    /// The node expected at this address.
    pub node_id: NodeId,
    /// Transport protocol (`mconn`).
    pub protocol: String,
    /// Host name or IP literal.
    pub hostname: String,
    /// TCP port, 0 when absent.
    pub port: u16,
    /// Path, empty when absent.
    pub path: String,
}

impl NodeAddress {
    /// Parses `id@host[:port]` or `mconn://id@host[:port]`.
    ///
    /// # Errors
    /// [`AddressError::Malformed`] when the shape or node id is wrong.
    pub fn parse(s: &str) -> Result<Self, AddressError> {
        let bad = || AddressError::Malformed(s.to_owned());
        let rest = s.strip_prefix("mconn://").unwrap_or(s);
        let (id, host_port) = rest.split_once('@').ok_or_else(bad)?;
        let node_id = NodeId::parse(id).map_err(|_| bad())?;
        let (hostname, port) = match host_port.rsplit_once(':') {
            Some((h, p)) => (h, p.parse::<u16>().map_err(|_| bad())?),
            None => (host_port, 0),
        };
        if hostname.is_empty() {
            return Err(bad());
        }
        Ok(NodeAddress {
            node_id,
            protocol: "mconn".to_owned(),
            hostname: hostname.to_owned(),
            port,
            path: String::new(),
        })
    }
}

impl fmt::Display for NodeAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}://{}@{}:{}",
            self.protocol, self.node_id, self.hostname, self.port
        )
    }
}
