//! Peer addresses: the v0.35 [`NodeAddress`] URL form (`mconn://id@host:port`, `id@host`,
//! `memory:id`), the [`Endpoint`]s a transport dials or listens on, their [`Protocol`], and the
//! legacy v0.34 / CometBFT [`NetAddress`] (`id@ip:port`, carried by PEX) with its IP
//! classification (protocol.md §3.2, §3.3).
//!
//! DNS resolution is IO and belongs to the drivers: [`NodeAddress::resolution`] says whether
//! the endpoints are known already or a lookup of a hostname is needed, and
//! [`NodeAddress::endpoints_from_ips`] finishes the job once the driver has the IPs.

use std::net::IpAddr;

use crate::id::IdError;

mod endpoint;
mod hostname;
mod ip_class;
mod net_address;
mod node_address;
mod protocol;
mod url_syntax;

pub use endpoint::{Endpoint, MCONN_DEFAULT_DIAL_PORT};
pub use net_address::{NetAddress, ParsedNetAddress, Reachability, UnresolvedNetAddress};
pub use node_address::{NodeAddress, Resolution};
pub use protocol::Protocol;

/// Why an address, endpoint or legacy net address is malformed or unusable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AddressError {
    /// The text contains an ASCII control character (bytes 0x00–0x1f or 0x7f).
    #[error("address contains an ASCII control character")]
    ControlCharacter,
    /// The text starts with `:`, so the URL scheme is empty.
    #[error("address has an empty scheme before ':'")]
    MissingScheme,
    /// A scheme-less address whose first path segment contains `:`.
    #[error("first path segment of a scheme-less address contains ':'")]
    ColonInFirstSegment,
    /// The user part (before `@`) contains a character a URL does not allow there.
    #[error("user part of the address contains a character not allowed in a URL")]
    InvalidUserinfo,
    /// An IPv6 host has `[` without a closing `]`.
    #[error("host {0:?} is missing ']'")]
    MissingBracket(String),
    /// What follows the host is not `:` and digits.
    #[error("invalid port {0:?} after host")]
    InvalidPortSyntax(String),
    /// The port is not a base-10 number in 0..=65535.
    #[error("port {0:?} is not a number in 0..=65535")]
    PortOutOfRange(String),
    /// A `%` escape is not followed by two hex digits (or, in a host, escapes an ASCII byte).
    #[error("invalid percent escape {0:?}")]
    BadEscape(String),
    /// The host contains an ASCII character that must be percent-escaped.
    #[error("host contains the character {0:?}, which is not allowed there")]
    InvalidHostCharacter(char),
    /// Percent-decoding produced bytes that are not UTF-8.
    #[error("percent-decoded address part is not valid UTF-8")]
    NotUtf8,
    /// The address has no protocol (URL scheme).
    #[error("address has no protocol")]
    NoProtocol,
    /// The address has no node id.
    #[error("address has no node id")]
    NoNodeId,
    /// The node id is malformed.
    #[error("invalid node id: {0}")]
    InvalidNodeId(#[source] IdError),
    /// A port was given without a hostname.
    #[error("port {0} given without a hostname")]
    PortWithoutHostname(u16),
    /// The hostname is neither an IP literal nor a syntactically valid DNS name.
    #[error("hostname {0:?} is neither an IP address nor a valid DNS name")]
    InvalidHostname(String),
    /// An endpoint has neither an IP address nor a path.
    #[error("endpoint has neither an IP address nor a path")]
    NoIpNorPath,
    /// An endpoint has a port but no IP address.
    #[error("endpoint has port {0} but no IP address")]
    PortWithoutIp(u16),
    /// The MConnection transport serves only `mconn` and `tcp`.
    #[error("protocol {0:?} is not served by the MConnection transport (mconn or tcp)")]
    UnsupportedProtocol(String),
    /// The MConnection transport needs an IP address.
    #[error("MConnection endpoint has no IP address")]
    NoIp,
    /// The MConnection transport does not support endpoint paths.
    #[error("MConnection endpoint has path {0:?}; paths are not supported")]
    PathNotSupported(String),
    /// TCP cannot connect to a broadcast or multicast address.
    #[error("cannot dial {0}: broadcast and multicast addresses are not dialable")]
    NotDialable(IpAddr),
    /// A legacy address is not `id@host:port` with exactly one `@`.
    #[error("legacy address {0:?} must be id@host:port with exactly one '@'")]
    NoIdSeparator(String),
    /// A legacy address lacks its `:port`.
    #[error("legacy address host:port {0:?} is missing the port")]
    MissingPort(String),
    /// A legacy address host has unbracketed colons or stray brackets.
    #[error("legacy address host:port {0:?} is malformed (colons or brackets)")]
    MalformedHostPort(String),
    /// A legacy address has an empty host.
    #[error("legacy address host is empty")]
    EmptyHost,
    /// The IP is unspecified (`0.0.0.0` / `::`), so not a valid peer address.
    #[error("IP {0} is unspecified")]
    UnspecifiedIp(IpAddr),
    /// The IP is in the RFC 3849 documentation range `2001:db8::/32`.
    #[error("IP {0} is in the documentation range 2001:db8::/32")]
    DocumentationIp(IpAddr),
    /// The IP is the IPv4 broadcast address.
    #[error("IP {0} is the broadcast address")]
    BroadcastIp(IpAddr),
    /// A PEX `NetAddress` whose `ip` field is not an IP address.
    #[error("net address ip {0:?} is not an IP address")]
    InvalidIp(String),
    /// A PEX `NetAddress` whose `port` field does not fit in 16 bits.
    #[error("net address port {0} is not below 65536")]
    PortTooLarge(u32),
}
