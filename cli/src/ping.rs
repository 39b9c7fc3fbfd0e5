//! `tmp2p ping`: dials one peer, completes the handshake, prints the peer's node info, then
//! measures round trips: MConnection PacketPing/PacketPong by default, or messages sent to
//! a raw echo reactor (`--echo-channel`), one at a time or as a flood (`--flood`).

use std::future::Future;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use crate::session::{connect_learning_network, Session, SessionError};
use async_io::Timer;
use bytes::Bytes;
use futures_lite::future;
use rand_core::OsRng;
use tmp2p_core::address::NodeAddress;
use tmp2p_core::connection::PeerConfig;
use tmp2p_core::mconn::ChannelDescriptor;
use tmp2p_core::node_info::NodeInfo;
use tmp2p_core::NodeKey;

use crate::latency::{human, LatencySummary};
use crate::CliError;

/// The channels a default CometBFT node serves (blocksync, consensus state / data / vote /
/// vote-set-bits, mempool, evidence, state-sync snapshot / chunk, PEX): advertising them
/// gives the peer the common channel it requires.
pub(crate) const COMETBFT_CHANNELS: [u8; 10] =
    [0x40, 0x20, 0x21, 0x22, 0x23, 0x30, 0x38, 0x60, 0x61, 0x00];

/// The network advertised first when `--network` is not given.
pub(crate) const DEFAULT_NETWORK: &str = "tmp2p-local";

/// Largest message accepted on any channel (the echo channel gets at least `--size`).
const RECV_MESSAGE_CAPACITY: usize = 4 * 1024 * 1024;

/// Arguments of `tmp2p ping`.
#[derive(clap::Args)]
pub(crate) struct PingArgs {
    /// The peer to dial: ID@HOST:PORT (HOST may be a DNS name).
    #[arg(value_name = "ID@HOST:PORT", value_parser = parse_address)]
    address: NodeAddress,
    /// Network (chain id) to advertise. Without it, tmp2p-local is tried first and a peer of
    /// another network is dialed again as a node of the network its NodeInfo names.
    #[arg(long)]
    network: Option<String>,
    /// Round trips to measure.
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u32).range(1..))]
    count: u32,
    /// Measure with messages echoed by a raw echo reactor on this channel (decimal or 0xHEX)
    /// instead of MConnection pings.
    #[arg(long, value_name = "ID", value_parser = parse_channel)]
    echo_channel: Option<u8>,
    /// Size in bytes of each echo message.
    #[arg(long, value_name = "BYTES", default_value_t = 64, requires = "echo_channel",
          value_parser = clap::value_parser!(u32).range(1..=(RECV_MESSAGE_CAPACITY as i64)))]
    size: u32,
    /// Send N echo messages as fast as possible and report messages/s and MB/s.
    #[arg(long, value_name = "N", requires = "echo_channel",
          value_parser = clap::value_parser!(u64).range(1..))]
    flood: Option<u64>,
    /// The node_key.json to dial with; without it a throwaway key is used.
    #[arg(long, value_name = "FILE")]
    key: Option<PathBuf>,
    /// Node name to advertise.
    #[arg(long, default_value = "tmp2p-ping")]
    moniker: String,
    /// Seconds allowed for the handshake and for each answer.
    #[arg(long, value_name = "SECONDS", default_value_t = 10,
          value_parser = clap::value_parser!(u64).range(1..))]
    timeout: u64,
    /// Print one JSON object instead of tables.
    #[arg(long)]
    json: bool,
}

pub(crate) fn parse_address(s: &str) -> Result<NodeAddress, String> {
    let address = NodeAddress::parse(s).map_err(|e| format!("malformed address: {e}"))?;
    if address.hostname.is_empty() || address.port == 0 {
        return Err("malformed address: expected ID@HOST:PORT".to_owned());
    }
    Ok(address)
}

pub(crate) fn parse_channel(s: &str) -> Result<u8, String> {
    let parsed = match s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
        Some(hex) => u8::from_str_radix(hex, 16),
        None => s.parse::<u8>(),
    };
    parsed.map_err(|_| "expected a channel id 0..=255 (decimal or 0xHEX)".to_owned())
}

/// The echo payload number `seq`: `size` bytes that differ for every sequence number.
fn payload(seq: u64, size: usize) -> Bytes {
    let tag = seq.to_be_bytes();
    tag.iter()
        .cycle()
        .take(size)
        .enumerate()
        .map(|(i, b)| b ^ (i as u8).wrapping_mul(31))
        .collect()
}

/// What was measured after the handshake.
enum Measurement {
    Ping(LatencySummary),
    Echo {
        channel: u8,
        size: usize,
        rtt: LatencySummary,
    },
    Flood {
        channel: u8,
        size: usize,
        messages: u64,
        elapsed: Duration,
    },
}

/// Runs `tmp2p ping`.
pub(crate) fn run(args: &PingArgs) -> Result<(), CliError> {
    let key = match &args.key {
        Some(path) => crate::load_key(path)?,
        None => NodeKey::generate(&mut OsRng),
    };
    let mut channels = COMETBFT_CHANNELS.to_vec();
    if let Some(echo) = args.echo_channel {
        if !channels.contains(&echo) {
            channels.push(echo);
        }
    }
    let info = crate::our_node_info(
        &key,
        args.network
            .clone()
            .unwrap_or_else(|| DEFAULT_NETWORK.to_owned()),
        args.moniker.clone(),
        "tcp://0.0.0.0:26656".to_owned(),
        channels.clone(),
    )?;
    let size = usize::try_from(args.size).unwrap_or(RECV_MESSAGE_CAPACITY);
    let timeout = Duration::from_secs(args.timeout);
    let config = PeerConfig {
        channels: channels
            .iter()
            .map(|&id| ChannelDescriptor {
                id,
                priority: 1,
                send_queue_capacity: 64,
                recv_message_capacity: RECV_MESSAGE_CAPACITY,
            })
            .collect(),
        handshake_timeout: timeout,
        ..PeerConfig::default()
    };
    async_io::block_on(async {
        let learn = args.network.is_none();
        let (mut session, learned) =
            connect_learning_network(&args.address, &key, info, config, learn)
                .await
                .map_err(|e| refused(&e))?;
        if let Some(network) = learned {
            eprintln!(
                "tmp2p: {} is on network {network:?}: using it",
                args.address.node_id
            );
        }
        let peer = session.peer_info().cloned().ok_or_else(|| {
            CliError::Runtime("handshake completed without the peer's node info".to_owned())
        })?;
        if !args.json {
            print_peer(&peer, &args.address);
        }
        let measured = match (args.echo_channel, args.flood) {
            (None, _) => Measurement::Ping(ping_rounds(&mut session, args.count, timeout).await?),
            (Some(channel), None) => Measurement::Echo {
                channel,
                size,
                rtt: echo_rounds(&mut session, channel, size, args.count, timeout).await?,
            },
            (Some(channel), Some(messages)) => Measurement::Flood {
                channel,
                size,
                messages,
                elapsed: flood(&mut session, channel, size, messages, timeout).await?,
            },
        };
        if let Err(e) = with_timeout(timeout, session.close()).await {
            tracing::debug!(error = %e, "closing the session");
        }
        if args.json {
            println!("{}", result_json(&peer, &args.address, &measured));
        } else {
            print_measurement(&measured);
        }
        Ok(())
    })
}

/// A failure to open the session, with the typed reason of a refused handshake.
fn refused(error: &SessionError) -> CliError {
    match error {
        SessionError::Connection(reason) => {
            CliError::Runtime(format!("handshake refused ({:?}): {reason}", reason.kind()))
        }
        other => CliError::Runtime(other.to_string()),
    }
}

/// A failure after the handshake.
fn failed(error: SessionError) -> CliError {
    match error {
        SessionError::Connection(reason) => {
            CliError::Runtime(format!("connection failed ({:?}): {reason}", reason.kind()))
        }
        other => CliError::Runtime(other.to_string()),
    }
}

/// Runs `work`, failing with a timeout error after `limit`.
async fn with_timeout<T>(
    limit: Duration,
    work: impl Future<Output = Result<T, SessionError>>,
) -> Result<T, CliError> {
    let timer = async {
        Timer::after(limit).await;
        Err(CliError::Runtime(format!(
            "no answer from the peer within {limit:?}"
        )))
    };
    future::or(async { work.await.map_err(failed) }, timer).await
}

async fn ping_rounds(
    session: &mut Session,
    count: u32,
    timeout: Duration,
) -> Result<LatencySummary, CliError> {
    let mut samples = Vec::new();
    for _ in 0..count {
        samples.push(with_timeout(timeout, session.ping()).await?);
    }
    LatencySummary::of(&samples).ok_or_else(|| CliError::Runtime("no round trip".to_owned()))
}

/// Waits for the next message on `channel` (messages on other channels are ignored) and
/// checks it is `expected`.
async fn expect_echo(
    session: &mut Session,
    channel: u8,
    seq: u64,
    expected: &[u8],
    timeout: Duration,
) -> Result<(), CliError> {
    loop {
        let (on, message) = with_timeout(timeout, session.recv()).await?;
        if on != channel {
            continue;
        }
        if message.as_ref() != expected {
            return Err(CliError::Runtime(format!(
                "echo #{seq} differs from what was sent ({} bytes back, {} sent)",
                message.len(),
                expected.len()
            )));
        }
        return Ok(());
    }
}

async fn echo_rounds(
    session: &mut Session,
    channel: u8,
    size: usize,
    count: u32,
    timeout: Duration,
) -> Result<LatencySummary, CliError> {
    let mut samples = Vec::new();
    for seq in 0..u64::from(count) {
        let message = payload(seq, size);
        let start = Instant::now();
        with_timeout(timeout, session.send(channel, message.clone())).await?;
        expect_echo(session, channel, seq, &message, timeout).await?;
        samples.push(start.elapsed());
    }
    LatencySummary::of(&samples).ok_or_else(|| CliError::Runtime("no round trip".to_owned()))
}

/// Echoes a flood may have sent and not yet seen back. The session keeps at most 4096
/// unread messages (past that it drops the oldest), so the flood stays well below.
const FLOOD_IN_FLIGHT: u64 = 1024;

/// Sends `messages` echo messages as fast as the connection takes them, with at most
/// [`FLOOD_IN_FLIGHT`] awaiting their echo, verifying echoes as they come back; returns
/// the time from the first send to the last echo.
async fn flood(
    session: &mut Session,
    channel: u8,
    size: usize,
    messages: u64,
    timeout: Duration,
) -> Result<Duration, CliError> {
    let start = Instant::now();
    let mut verified = 0u64;
    for seq in 0..messages {
        if seq - verified >= FLOOD_IN_FLIGHT {
            let expected = payload(verified, size);
            expect_echo(session, channel, verified, &expected, timeout).await?;
            verified += 1;
        }
        with_timeout(timeout, session.send(channel, payload(seq, size))).await?;
        while let Some((on, message)) = session.try_recv() {
            if on == channel {
                verify_flood_echo(verified, size, &message)?;
                verified += 1;
            }
        }
    }
    while verified < messages {
        expect_echo(
            session,
            channel,
            verified,
            &payload(verified, size),
            timeout,
        )
        .await?;
        verified += 1;
    }
    if session.dropped() > 0 {
        return Err(CliError::Runtime(format!(
            "this tool dropped {} unread echoes (its inbox was full)",
            session.dropped()
        )));
    }
    Ok(start.elapsed())
}

fn verify_flood_echo(seq: u64, size: usize, message: &[u8]) -> Result<(), CliError> {
    if message == payload(seq, size).as_ref() {
        Ok(())
    } else {
        Err(CliError::Runtime(format!(
            "echo #{seq} differs from what was sent ({} bytes back)",
            message.len()
        )))
    }
}

fn print_peer(peer: &NodeInfo, address: &NodeAddress) {
    let v = &peer.protocol_version;
    println!("peer      {}", peer.node_id);
    println!("address   {}:{}", address.hostname, address.port);
    println!("moniker   {}", peer.moniker);
    println!("network   {}", peer.network);
    println!("version   {}", peer.version);
    println!("protocol  p2p {}, block {}, app {}", v.p2p, v.block, v.app);
    println!("listen    {}", peer.listen_addr);
    println!("channels  {}", channel_list(&peer.channels));
    println!();
}

fn channel_list(channels: &[u8]) -> String {
    channels
        .iter()
        .map(|c| format!("{c:02x}"))
        .collect::<Vec<_>>()
        .join(" ")
}

fn print_measurement(measured: &Measurement) {
    match measured {
        Measurement::Ping(s) => {
            println!("{} MConnection ping round trips", s.count);
            print_latency(s);
        }
        Measurement::Echo { channel, size, rtt } => {
            println!(
                "{} echo round trips of {size} B on channel {channel:#04x}, all verified",
                rtt.count
            );
            print_latency(rtt);
        }
        Measurement::Flood {
            channel,
            size,
            messages,
            elapsed,
        } => {
            let (rate, mbps) = flood_rates(*messages, *size, *elapsed);
            println!(
                "flood of {messages} messages of {size} B on channel {channel:#04x}, all echoed and verified"
            );
            println!("elapsed   {:.3} s", elapsed.as_secs_f64());
            println!("rate      {rate:.0} messages/s");
            println!("bandwidth {mbps:.2} MB/s (each way)");
        }
    }
}

fn print_latency(s: &LatencySummary) {
    println!("{:>12} {:>12} {:>12} {:>12}", "min", "p50", "p99", "max");
    println!(
        "{:>12} {:>12} {:>12} {:>12}",
        human(s.min),
        human(s.p50),
        human(s.p99),
        human(s.max)
    );
}

/// Messages per second and megabytes (10^6 B) per second, one way.
fn flood_rates(messages: u64, size: usize, elapsed: Duration) -> (f64, f64) {
    let secs = elapsed.as_secs_f64().max(1e-9);
    let rate = messages as f64 / secs;
    (rate, rate * size as f64 / 1e6)
}

fn latency_json(s: &LatencySummary) -> serde_json::Value {
    let us = |d: Duration| d.as_secs_f64() * 1e6;
    serde_json::json!({
        "count": s.count,
        "min_us": us(s.min),
        "p50_us": us(s.p50),
        "p99_us": us(s.p99),
        "max_us": us(s.max),
    })
}

fn result_json(peer: &NodeInfo, address: &NodeAddress, measured: &Measurement) -> String {
    let peer_json: serde_json::Value =
        serde_json::from_str(&crate::node_info_json(peer)).unwrap_or_default();
    let mut value = serde_json::json!({
        "address": format!("{}:{}", address.hostname, address.port),
        "peer": peer_json,
    });
    let fields = match measured {
        Measurement::Ping(s) => serde_json::json!({"mode": "ping", "rtt": latency_json(s)}),
        Measurement::Echo { channel, size, rtt } => serde_json::json!({
            "mode": "echo", "channel": channel, "size": size, "verified": rtt.count,
            "rtt": latency_json(rtt),
        }),
        Measurement::Flood {
            channel,
            size,
            messages,
            elapsed,
        } => {
            let (rate, mbps) = flood_rates(*messages, *size, *elapsed);
            serde_json::json!({
                "mode": "flood", "channel": channel, "size": size, "messages": messages,
                "verified": messages, "elapsed_s": elapsed.as_secs_f64(),
                "messages_per_s": rate, "mb_per_s": mbps,
            })
        }
    };
    if let (Some(target), serde_json::Value::Object(extra)) = (value.as_object_mut(), fields) {
        target.extend(extra);
    }
    value.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payloads_differ_by_sequence_and_have_the_size() {
        assert_eq!(payload(3, 100).len(), 100);
        assert_ne!(payload(3, 100), payload(4, 100));
        assert_eq!(payload(3, 100), payload(3, 100));
        assert_eq!(payload(0, 1).len(), 1);
    }

    #[test]
    fn channel_ids_parse_in_decimal_and_hex() {
        assert_eq!(parse_channel("99"), Ok(99));
        assert_eq!(parse_channel("0x63"), Ok(0x63));
        assert!(parse_channel("256").is_err());
        assert!(parse_channel("0xzz").is_err());
    }

    #[test]
    fn addresses_need_id_host_and_port() {
        let id = "00112233445566778899aabbccddeeff00112233";
        assert!(parse_address(&format!("{id}@127.0.0.1:26656")).is_ok());
        assert!(parse_address(&format!("{id}@seed.example.com:26656")).is_ok());
        assert!(parse_address(&format!("{id}@127.0.0.1")).is_err());
        assert!(parse_address("127.0.0.1:26656").is_err());
        assert!(parse_address("nonsense").is_err());
    }

    #[test]
    fn flood_rates_are_per_second() {
        let (rate, mbps) = flood_rates(1000, 1000, Duration::from_millis(500));
        assert!((rate - 2000.0).abs() < 1e-6);
        assert!((mbps - 2.0).abs() < 1e-9);
    }
}
