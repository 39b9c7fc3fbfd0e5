//! A reference MConnection peer built only from independent crates: tendermint-p2p's
//! SecretConnection and tendermint-proto's `DefaultNodeInfo` and `Packet` types. The
//! MConnection rules it follows (uvarint-delimited Packets, 1024-byte chunks with `eof` on
//! the last, pong for every ping) are written here from protocol.md §4, independently of
//! tmp2p's own mconn code, so interop tests never have our code on both ends.

use std::collections::HashMap;
use std::io::{self, Read, Write};
use std::net::TcpStream;
use std::sync::mpsc::{channel, Receiver, Sender};
use std::thread;
use std::time::Duration;

use prost::Message;
use tendermint_p2p::secret_connection::{SecretConnection, Version};
use tendermint_proto::v0_38::p2p::{
    packet::Sum, DefaultNodeInfo, DefaultNodeInfoOther, Packet, PacketMsg, PacketPing, PacketPong,
    ProtocolVersion,
};

/// The node info a reference peer advertises: CometBFT v0.38's (p2p 8, block 11, version
/// 0.38.25) with `seed`'s id, on `network` and `channels`. Tests that need another dialect
/// change the fields they care about.
pub fn reference_info(seed: [u8; 32], network: &str, channels: &[u8]) -> DefaultNodeInfo {
    let key = ed25519_consensus::SigningKey::from(seed);
    let public = key.verification_key();
    let id = tendermint_p2p::secret_connection::PublicKey::from_raw_ed25519(public.as_bytes())
        .map(|public| public.peer_id().to_string())
        .unwrap_or_default();
    DefaultNodeInfo {
        protocol_version: Some(ProtocolVersion {
            p2p: 8,
            block: 11,
            app: 0,
        }),
        default_node_id: id,
        listen_addr: "tcp://127.0.0.1:26657".into(),
        network: network.into(),
        version: "0.38.25".into(),
        channels: channels.to_vec(),
        moniker: "reference".into(),
        other: Some(DefaultNodeInfoOther {
            tx_index: "on".into(),
            rpc_address: String::new(),
        }),
    }
}

/// Chunk size of the reference peer (CometBFT's default).
const CHUNK: usize = 1024;

/// What the reference peer observed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RefEvent {
    /// A reassembled message.
    Message(u8, Vec<u8>),
    /// A pong arrived.
    Pong,
    /// A ping arrived (and was answered).
    Ping,
    /// The connection ended, with the error text if any.
    Closed(String),
}

enum Command {
    Send(u8, Vec<u8>),
    Ping,
    Pong,
}

/// A running reference peer: send commands, read events.
pub struct ReferencePeer {
    commands: Sender<Command>,
    /// Events, in arrival order.
    pub events: Receiver<RefEvent>,
    /// The node info the peer received from us (decoded with tendermint-proto).
    pub their_info: DefaultNodeInfo,
    /// The id of the key that authenticated at the other end.
    pub remote_id: String,
}

fn read_delimited(rx: &mut impl Read, buf: &mut Vec<u8>, max: usize) -> io::Result<Vec<u8>> {
    let mut chunk = vec![0u8; 4096];
    loop {
        let mut cursor: &[u8] = buf;
        if let Ok(len) = prost::encoding::decode_varint(&mut cursor) {
            let prefix = buf.len() - cursor.len();
            if len as usize > max {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    "message too large",
                ));
            }
            if cursor.len() >= len as usize {
                let body = buf[prefix..prefix + len as usize].to_vec();
                buf.drain(..prefix + len as usize);
                return Ok(body);
            }
        }
        let n = rx.read(&mut chunk)?;
        if n == 0 {
            return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "eof"));
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}

fn write_packet(tx: &mut impl Write, sum: Sum) -> io::Result<()> {
    let packet = Packet { sum: Some(sum) };
    tx.write_all(&packet.encode_length_delimited_to_vec())
}

/// Writes `data` on `channel` as CometBFT's MConnection does: 1024-byte chunks, `eof` on
/// the last.
pub fn write_message(tx: &mut impl Write, channel: u8, data: &[u8]) -> io::Result<()> {
    let chunks: Vec<&[u8]> = if data.is_empty() {
        vec![&[][..]]
    } else {
        data.chunks(CHUNK).collect()
    };
    let last = chunks.len() - 1;
    chunks.iter().enumerate().try_for_each(|(i, c)| {
        write_packet(
            tx,
            Sum::PacketMsg(PacketMsg {
                channel_id: i32::from(channel),
                eof: i == last,
                data: c.to_vec(),
            }),
        )
    })
}

/// A connection right after the SecretConnection handshake and the node-info exchange.
pub struct Handshaken {
    /// The authenticated connection.
    pub conn: SecretConnection<TcpStream>,
    /// The id of the key that authenticated at the other end.
    pub remote_id: String,
    /// The node info the other end sent (decoded with tendermint-proto).
    pub their_info: DefaultNodeInfo,
    /// Bytes read past the node info (the start of the first packets).
    pub buf: Vec<u8>,
}

/// A full handshake as a CometBFT node makes it, from the independent crates only:
/// tendermint-p2p's SecretConnection as `seed`'s key, then our `info` out and theirs in
/// (at most 10 240 bytes, CometBFT's limit).
pub fn handshake(
    stream: TcpStream,
    seed: [u8; 32],
    info: &DefaultNodeInfo,
) -> io::Result<Handshaken> {
    let key = ed25519_consensus::SigningKey::from(seed);
    let mut conn = SecretConnection::new(stream, key, Version::V0_34)
        .map_err(|e| io::Error::other(e.to_string()))?;
    let remote_id = conn.remote_pubkey().peer_id().to_string();
    conn.write_all(&info.encode_length_delimited_to_vec())?;
    let mut buf = Vec::new();
    let their = read_delimited(&mut conn, &mut buf, 10240)?;
    let their_info = DefaultNodeInfo::decode(&their[..])
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
    Ok(Handshaken {
        conn,
        remote_id,
        their_info,
        buf,
    })
}

impl ReferencePeer {
    /// Runs the handshake and node-info exchange on `stream` as `seed`'s key, advertising
    /// `info`, then starts reader and writer threads.
    pub fn start(stream: TcpStream, seed: [u8; 32], info: DefaultNodeInfo) -> io::Result<Self> {
        Self::start_paced(stream, seed, info, Duration::ZERO)
    }

    /// As [`ReferencePeer::start`], with a reader that sleeps `pace` after each packet: a
    /// slow reader, whose receive window fills.
    pub fn start_paced(
        stream: TcpStream,
        seed: [u8; 32],
        info: DefaultNodeInfo,
        pace: Duration,
    ) -> io::Result<Self> {
        // Closed once the reader ends, as a CometBFT node closes a connection it cannot
        // read from any more.
        let socket = stream.try_clone()?;
        let Handshaken {
            conn,
            remote_id,
            their_info,
            mut buf,
        } = handshake(stream, seed, &info)?;
        let (mut tx, mut rx) = conn.split().map_err(|e| io::Error::other(e.to_string()))?;

        let (cmd_tx, cmd_rx) = channel::<Command>();
        let (ev_tx, ev_rx) = channel();
        let pong_tx = cmd_tx.clone();
        thread::spawn(move || {
            for cmd in cmd_rx {
                let result = match cmd {
                    Command::Send(channel_id, data) => write_message(&mut tx, channel_id, &data),
                    Command::Ping => write_packet(&mut tx, Sum::PacketPing(PacketPing {})),
                    Command::Pong => write_packet(&mut tx, Sum::PacketPong(PacketPong {})),
                };
                if result.is_err() {
                    return;
                }
            }
        });
        thread::spawn(move || {
            let mut partial: HashMap<u8, Vec<u8>> = HashMap::new();
            loop {
                let body = match read_delimited(&mut rx, &mut buf, 1034) {
                    Ok(body) => body,
                    Err(e) => {
                        let _ = socket.shutdown(std::net::Shutdown::Both);
                        let _ = ev_tx.send(RefEvent::Closed(e.to_string()));
                        return;
                    }
                };
                let event = match Packet::decode(&body[..]).map(|p| p.sum) {
                    Ok(Some(Sum::PacketPing(_))) => {
                        let _ = pong_tx.send(Command::Pong);
                        Some(RefEvent::Ping)
                    }
                    Ok(Some(Sum::PacketPong(_))) => Some(RefEvent::Pong),
                    Ok(Some(Sum::PacketMsg(m))) => {
                        let channel_id = u8::try_from(m.channel_id).unwrap_or(0xff);
                        let entry = partial.entry(channel_id).or_default();
                        entry.extend_from_slice(&m.data);
                        m.eof
                            .then(|| RefEvent::Message(channel_id, std::mem::take(entry)))
                    }
                    other => Some(RefEvent::Closed(format!("bad packet {other:?}"))),
                };
                if let Some(event) = event {
                    if ev_tx.send(event).is_err() {
                        return;
                    }
                }
                if !pace.is_zero() {
                    thread::sleep(pace);
                }
            }
        });
        Ok(ReferencePeer {
            commands: cmd_tx,
            events: ev_rx,
            their_info,
            remote_id,
        })
    }

    /// Sends `data` on `channel`, chunked as CometBFT does.
    pub fn send(&self, channel: u8, data: Vec<u8>) {
        let _ = self.commands.send(Command::Send(channel, data));
    }

    /// Sends a ping.
    pub fn ping(&self) {
        let _ = self.commands.send(Command::Ping);
    }
}

/// What a seed answered one [`ask_seed`] client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SeedAnswer {
    /// The addresses of its `PexAddrs`.
    pub addresses: Vec<tendermint_proto::v0_38::p2p::NetAddress>,
    /// The seed closed the connection after answering (read an end of stream within the
    /// wait).
    pub closed: bool,
}

/// A CometBFT node's first contact with a seed, from the independent crates only: the
/// handshake, one `PexRequest` on channel 0x00, its `PexAddrs`, then the seed's close,
/// waited for at most `close_wait`. Pings are ignored; any other message is an error.
pub fn ask_seed(
    stream: TcpStream,
    seed: [u8; 32],
    info: &DefaultNodeInfo,
    close_wait: std::time::Duration,
) -> io::Result<SeedAnswer> {
    use tendermint_proto::v0_38::p2p::{message, Message as PexMessage, PexRequest};
    let socket = stream.try_clone()?;
    let Handshaken {
        mut conn, mut buf, ..
    } = handshake(stream, seed, info)?;
    let request = PexMessage {
        sum: Some(message::Sum::PexRequest(PexRequest {})),
    };
    write_packet(
        &mut conn,
        Sum::PacketMsg(PacketMsg {
            channel_id: 0,
            eof: true,
            data: request.encode_to_vec(),
        }),
    )?;
    let invalid = |what: String| io::Error::new(io::ErrorKind::InvalidData, what);
    let mut message = Vec::new();
    let addresses = loop {
        let body = read_delimited(&mut conn, &mut buf, 1035)?;
        match Packet::decode(&body[..]).map(|p| p.sum) {
            Ok(Some(Sum::PacketMsg(m))) if m.channel_id == 0 => {
                message.extend_from_slice(&m.data);
                if !m.eof {
                    continue;
                }
                match PexMessage::decode(&message[..]).map(|m| m.sum) {
                    Ok(Some(message::Sum::PexAddrs(addrs))) => break addrs.addrs,
                    other => return Err(invalid(format!("not PexAddrs: {other:?}"))),
                }
            }
            Ok(Some(Sum::PacketPing(_) | Sum::PacketPong(_))) => {}
            other => return Err(invalid(format!("unexpected packet {other:?}"))),
        }
    };
    socket.set_read_timeout(Some(close_wait))?;
    let closed = loop {
        match read_delimited(&mut conn, &mut buf, 1035) {
            // Pings may still come before the close.
            Ok(_) => {}
            Err(e) => {
                break !matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                )
            }
        }
    };
    Ok(SeedAnswer { addresses, closed })
}
