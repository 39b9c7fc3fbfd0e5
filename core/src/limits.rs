//! Every limit on what a peer may send us, in one table, against what CometBFT's Go nodes
//! (v0.34.x and v0.38.x, which agree on each of these) enforce and can legitimately emit.
//! The rule: never stricter than an honest Go sender can produce, and always bounded.
//! Sizes are in bytes and exclude the uvarint length prefix unless said otherwise.
//! Exceeding any of them is a typed error that closes that one connection (PEX answers
//! are judged per entry instead, see below).
//!
//! | what | Go reads at most | Go sends at most | we accept at most | why |
//! |---|---|---|---|---|
//! | ephemeral key message | 1 MiB (`protoio` reader) | 35 with prefix, always | exactly [`KEY_MESSAGE_SIZE`] (35) | the message has one fixed form (`BytesValue` of a 32-byte X25519 key); anything else is refused from its first wrong byte |
//! | AuthSig message | 1 MiB | 102 (Ed25519 key + 64-byte signature) | [`AUTH_SIG_MAX_SIZE`] (1024) | one frame's worth is ten times what a real AuthSig needs; a larger one could only be padding, and reading 1 MiB before verifying invites memory abuse |
//! | SecretConnection frame data | 1024 per 1044-byte sealed frame | 1024 | [`DATA_MAX_SIZE`] (1024) per [`FRAME_SEALED_SIZE`] (1044) frame | identical: the frame size is fixed by the protocol |
//! | NodeInfo | 10 240 (`MaxNodeInfoSize`) | ≤ 10 240 | [`MAX_NODE_INFO_SIZE`] (10 240) | identical |
//! | NodeInfo channels | 16 (`maxNumChannels`) | 16 | [`MAX_CHANNELS`] (16) | identical |
//! | NodeInfo p2p version, version string | not checked | 8 (v0.34–v0.40), 9 (v1.x) | any | compatibility rests on the block version, the network and a shared channel only ([`NodeInfo::compatible_with`]) |
//! | MConnection packet | 1034 for a 1024 payload (sized for channel id 0x01) | **1035**: a full 1024-byte chunk with eof on a channel id ≥ 0x80 | [`max_received_packet_size`] (1035 for 1024) | Go chunks at 1024 bytes on every channel id, so on ids ≥ 0x80 it emits packets its own reader refuses; we accept them, and send at most [`max_sent_packet_size`] (1034, chunking at [`chunk_size`] 1023 there) so a Go peer accepts ours |
//! | payload size (`max_packet_msg_payload_size`) | configured, 1024 by default | configured | [`MConnConfig::max_packet_payload_size`], 1024 by default, 64..=1 MiB | both ends of a network must configure the same value, as among Go nodes |
//! | reassembled message, per channel | `RecvMessageCapacity` (22 020 096 when a reactor leaves it unset) | what its reactor sends | [`ChannelDescriptor::recv_message_capacity`], set by whoever opens the channel | no default: each channel names its capacity, and CometBFT's channels are opened with CometBFT's values |
//! | PEX message | 64 000 (`maxAddressSize` 256 × `maxGetSelection` 250) | 64 000 | [`PEX_RECV_MESSAGE_CAPACITY`] (64 000) | identical |
//! | PEX addresses per answer | not checked (only the 64 000-byte capacity) | 250 (`maxGetSelection`) | [`MAX_ADDRESSES_RECEIVED`] (250) | Go never sends more; a longer answer is dropped as a whole, a non-fatal peer error |
//! | malformed PEX entries | one bad entry fails the whole answer, disconnects and bans the peer | 0 | skipped one by one ([`PexError::BadAddress`], non-fatal), the rest kept | liberal: an entry we cannot use is not worth a peer; an undecodable PEX message is non-fatal too |
//! | PEX requests | two free, then one per `ensurePeersPeriod / 3` (10 s) | one per `ensurePeersPeriod` (30 s) | two free, then one per [`PexConfig::min_receive_interval`] (at least [`MIN_REQUEST_INTERVAL`], 10 s) | CometBFT's own rule; a faster requester is a fatal peer error, as CometBFT disconnects and bans it |
//! | bytes per second (`recv_rate`) | 5 120 000 by default | – | [`MConnConfig::recv_rate`], off by default | a pacing limit, not a validity one: reading slows, nothing is refused |
//!
//! [`KEY_MESSAGE_SIZE`]: crate::secret::KEY_MESSAGE_SIZE
//! [`AUTH_SIG_MAX_SIZE`]: crate::secret::AUTH_SIG_MAX_SIZE
//! [`DATA_MAX_SIZE`]: crate::secret::DATA_MAX_SIZE
//! [`FRAME_SEALED_SIZE`]: crate::secret::FRAME_SEALED_SIZE
//! [`MAX_NODE_INFO_SIZE`]: crate::node_info::MAX_NODE_INFO_SIZE
//! [`MAX_CHANNELS`]: crate::node_info::MAX_CHANNELS
//! [`NodeInfo::compatible_with`]: crate::node_info::NodeInfo::compatible_with
//! [`max_received_packet_size`]: crate::mconn::max_received_packet_size
//! [`max_sent_packet_size`]: crate::mconn::max_sent_packet_size
//! [`chunk_size`]: crate::mconn::chunk_size
//! [`MConnConfig::max_packet_payload_size`]: crate::mconn::MConnConfig::max_packet_payload_size
//! [`MConnConfig::recv_rate`]: crate::mconn::MConnConfig::recv_rate
//! [`ChannelDescriptor::recv_message_capacity`]: crate::mconn::ChannelDescriptor::recv_message_capacity
//! [`PEX_RECV_MESSAGE_CAPACITY`]: crate::pex::PEX_RECV_MESSAGE_CAPACITY
//! [`MAX_ADDRESSES_RECEIVED`]: crate::pex::MAX_ADDRESSES_RECEIVED
//! [`PexError::BadAddress`]: crate::pex::PexError::BadAddress
//! [`MIN_REQUEST_INTERVAL`]: crate::pex::MIN_REQUEST_INTERVAL
//! [`PexConfig::min_receive_interval`]: crate::pex::PexConfig::min_receive_interval
