//! Between the PEX wire form of an address (`NetAddress {id, ip, port}`) and the
//! PeerManager's `NodeAddress`, with the checks a received entry must pass.

use std::net::IpAddr;

use tmp2p_proto::p2p::NetAddress as ProtoNetAddress;

use crate::address::{AddressError, NetAddress, NodeAddress, Protocol};
use crate::id::NodeId;

pub(super) fn is_routable_ip(ip: IpAddr) -> bool {
    NetAddress {
        id: NodeId::from_public_key(&[0; 32]),
        ip,
        port: 1,
    }
    .is_routable()
}

/// A PEX entry's id, IP and port checked (port 0 is refused too: nothing listens there).
pub(super) fn checked_address(proto: ProtoNetAddress) -> Result<NetAddress, AddressError> {
    let address = NetAddress::try_from(proto)?;
    if address.port == 0 {
        return Err(AddressError::PortOutOfRange("0".to_owned()));
    }
    Ok(address)
}

/// The `mconn://id@ip:port` form of a PEX address.
pub(super) fn to_node_address(address: &NetAddress) -> NodeAddress {
    NodeAddress {
        node_id: address.id,
        protocol: Protocol::MCONN,
        hostname: address.ip.to_canonical().to_string(),
        port: address.port,
        path: String::new(),
    }
}

/// The PEX form of an address we advertise: only MConnection addresses with an IP literal
/// and a port fit in a `NetAddress`.
pub(super) fn to_net_address(address: &NodeAddress) -> Option<NetAddress> {
    if !address.protocol.is_mconn() || address.port == 0 || !address.path.is_empty() {
        return None;
    }
    let ip = address.hostname.parse::<IpAddr>().ok()?;
    Some(NetAddress {
        id: address.node_id,
        ip,
        port: address.port,
    })
}
