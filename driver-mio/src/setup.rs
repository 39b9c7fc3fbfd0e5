//! What a driver is built from: the node's configuration, key, channels, peer store and
//! the driver's own work limits.

use tmp2p_core::mconn::ChannelDescriptor;
use tmp2p_core::node_config::NodeConfig;
use tmp2p_core::pex::PexConfig;
use tmp2p_core::typed::{ChannelCodec, TypedChannel};
use tmp2p_core::NodeKey;
use tmp2p_store::{MemoryPeerStore, PeerStore};

/// Bounds on the work one call to `Driver::process` does, so one busy peer cannot starve
/// the others and a caller's own sockets get their turn.
#[derive(Debug, Clone)]
pub struct DriverLimits {
    /// Bytes read from one connection per turn.
    pub read_budget: usize,
    /// Bytes written to one connection per turn.
    pub write_budget: usize,
    /// Connections serviced per turn (the rest wait for the next turn, in order).
    pub links_per_turn: usize,
    /// Connections accepted per turn.
    pub accepts_per_turn: usize,
    /// Commands from other threads handled per turn.
    pub commands_per_turn: usize,
    /// Inbound events the application has not taken yet before received messages wait in
    /// their connections (each stops reading past `NodeConfig::inbound_hold_bytes`).
    pub max_pending_inbound: usize,
}

impl Default for DriverLimits {
    fn default() -> Self {
        DriverLimits {
            read_budget: 256 * 1024,
            write_budget: 256 * 1024,
            links_per_turn: 1024,
            accepts_per_turn: 128,
            commands_per_turn: 4096,
            max_pending_inbound: 1024,
        }
    }
}

/// Everything a driver starts from.
pub struct DriverSetup {
    /// Node settings (listen address, network, peers, router limits).
    pub config: NodeConfig,
    /// Our identity.
    pub key: NodeKey,
    /// The channels we open (fixed for the node's life), with
    /// `OverflowPolicy::Backpressure` unless listed in `drop_channels`.
    pub channels: Vec<ChannelDescriptor>,
    /// Channels opened with `OverflowPolicy::Drop` (gossip a later message supersedes):
    /// a full peer queue drops by `NodeConfig`'s queue policy and counts each drop.
    pub drop_channels: Vec<u8>,
    /// Run the node machine's built-in PEX reactor (channel 0x00, seed mode included)
    /// with these settings.
    pub pex: Option<PexConfig>,
    /// Where peer records persist.
    pub store: Box<dyn PeerStore + Send>,
    /// Work bounds.
    pub limits: DriverLimits,
}

impl DriverSetup {
    /// Adds `descriptor` as a typed channel: the returned [`TypedChannel`] encodes what
    /// [`NodeHandle::send_typed`](crate::NodeHandle::send_typed) sends on it and decodes
    /// what [`NodeHandle::receive_typed`](crate::NodeHandle::receive_typed) takes from it.
    pub fn open_typed<C: ChannelCodec>(
        &mut self,
        descriptor: ChannelDescriptor,
        codec: C,
    ) -> TypedChannel<C> {
        let id = descriptor.id;
        self.channels.push(descriptor);
        TypedChannel::new(id, codec)
    }

    /// A setup with an in-memory peer store and default limits.
    pub fn new(config: NodeConfig, key: NodeKey, channels: Vec<ChannelDescriptor>) -> Self {
        DriverSetup {
            config,
            key,
            channels,
            drop_channels: Vec::new(),
            pex: None,
            store: Box::new(MemoryPeerStore::new()),
            limits: DriverLimits::default(),
        }
    }
}
