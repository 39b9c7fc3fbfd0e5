//! CometBFT's `config/config.toml`, read for the keys a P2P node needs: the top-level
//! `moniker`, `node_key_file` and `genesis_file`, and the `[p2p]` section. Parsed with
//! serde and the toml crate into [`FileSettings`]; every other key and section (CometBFT
//! has dozens that do not concern us) is ignored. A malformed file or value is one
//! [`ConfigError`] naming the file, the key and what was expected.
//!
//! [`FileSettings::apply`] folds the settings into a [`NodeConfig`] and [`PexConfig`];
//! what a key asks for that tmp2p does differently comes back as notes for the log.

use std::net::{SocketAddr, ToSocketAddrs as _};
use std::path::{Path, PathBuf};
use std::str::FromStr as _;
use std::time::Duration;

use serde::Deserialize;
use tmp2p_core::address::NodeAddress;
use tmp2p_core::node_config::NodeConfig;
use tmp2p_core::pex::PexConfig;
use tmp2p_core::NodeId;

/// Why config.toml cannot be used; the message names the file, the key and what was
/// expected.
#[derive(Debug, thiserror::Error)]
#[error("{file}: {what}")]
pub(crate) struct ConfigError {
    file: PathBuf,
    what: String,
}

/// The file as written: every key optional, unknown keys ignored.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct RawConfig {
    moniker: Option<String>,
    node_key_file: Option<String>,
    genesis_file: Option<String>,
    p2p: RawP2p,
}

/// The `[p2p]` section as written.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct RawP2p {
    laddr: Option<String>,
    external_address: Option<String>,
    seeds: Option<String>,
    persistent_peers: Option<String>,
    upnp: Option<bool>,
    addr_book_file: Option<String>,
    addr_book_strict: Option<bool>,
    max_num_inbound_peers: Option<u16>,
    max_num_outbound_peers: Option<u16>,
    unconditional_peer_ids: Option<String>,
    persistent_peers_max_dial_period: Option<String>,
    flush_throttle_timeout: Option<String>,
    max_packet_msg_payload_size: Option<usize>,
    send_rate: Option<i64>,
    recv_rate: Option<i64>,
    pex: Option<bool>,
    seed_mode: Option<bool>,
    private_peer_ids: Option<String>,
    allow_duplicate_ip: Option<bool>,
    handshake_timeout: Option<String>,
    dial_timeout: Option<String>,
}

/// What config.toml sets, typed and checked; `None` (or empty) where the file is silent.
#[derive(Debug, Default, Clone)]
pub(crate) struct FileSettings {
    pub(crate) moniker: Option<String>,
    /// Paths as written: relative ones are relative to the home directory.
    pub(crate) node_key_file: Option<PathBuf>,
    pub(crate) genesis_file: Option<PathBuf>,
    pub(crate) addr_book_file: Option<PathBuf>,
    pub(crate) listen: Option<SocketAddr>,
    pub(crate) external_address: Option<String>,
    pub(crate) seeds: Vec<NodeAddress>,
    pub(crate) persistent_peers: Vec<NodeAddress>,
    pub(crate) unconditional_peer_ids: Vec<NodeId>,
    pub(crate) private_peer_ids: Vec<NodeId>,
    pub(crate) max_num_inbound_peers: Option<u16>,
    pub(crate) max_num_outbound_peers: Option<u16>,
    pub(crate) pex: Option<bool>,
    pub(crate) seed_mode: Option<bool>,
    pub(crate) addr_book_strict: Option<bool>,
    pub(crate) allow_duplicate_ip: Option<bool>,
    pub(crate) upnp: Option<bool>,
    pub(crate) handshake_timeout: Option<Duration>,
    pub(crate) dial_timeout: Option<Duration>,
    pub(crate) flush_throttle_timeout: Option<Duration>,
    pub(crate) persistent_peers_max_dial_period: Option<Duration>,
    pub(crate) max_packet_msg_payload_size: Option<usize>,
    /// Bytes per second; `Some(None)` is CometBFT's 0 (no limit).
    pub(crate) send_rate: Option<Option<u64>>,
    pub(crate) recv_rate: Option<Option<u64>>,
}

impl FileSettings {
    /// Reads and checks `path`.
    ///
    /// # Errors
    /// The file cannot be read, is not TOML, or a key holds a value of the wrong form.
    pub(crate) fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError {
            file: path.to_owned(),
            what: format!("cannot read: {e}"),
        })?;
        Self::parse(&text).map_err(|what| ConfigError {
            file: path.to_owned(),
            what,
        })
    }

    /// Parses config.toml's text; the error names the key and what was expected.
    pub(crate) fn parse(text: &str) -> Result<Self, String> {
        let raw: RawConfig = toml::from_str(text).map_err(|e| describe_toml_error(text, &e))?;
        let p2p = raw.p2p;
        let key = |name: &str| format!("p2p.{name}");
        Ok(FileSettings {
            moniker: raw.moniker,
            node_key_file: non_empty(raw.node_key_file).map(PathBuf::from),
            genesis_file: non_empty(raw.genesis_file).map(PathBuf::from),
            addr_book_file: non_empty(p2p.addr_book_file).map(PathBuf::from),
            listen: non_empty(p2p.laddr)
                .map(|v| parse_laddr(&v).map_err(|e| at(&key("laddr"), &v, &e)))
                .transpose()?,
            external_address: non_empty(p2p.external_address)
                .map(|v| parse_external(&v).map_err(|e| at(&key("external_address"), &v, &e)))
                .transpose()?,
            seeds: parse_list(&key("seeds"), p2p.seeds, crate::ping::parse_address)?,
            persistent_peers: parse_list(
                &key("persistent_peers"),
                p2p.persistent_peers,
                crate::ping::parse_address,
            )?,
            unconditional_peer_ids: parse_list(
                &key("unconditional_peer_ids"),
                p2p.unconditional_peer_ids,
                parse_id,
            )?,
            private_peer_ids: parse_list(&key("private_peer_ids"), p2p.private_peer_ids, parse_id)?,
            max_num_inbound_peers: p2p.max_num_inbound_peers,
            max_num_outbound_peers: p2p.max_num_outbound_peers,
            pex: p2p.pex,
            seed_mode: p2p.seed_mode,
            addr_book_strict: p2p.addr_book_strict,
            allow_duplicate_ip: p2p.allow_duplicate_ip,
            upnp: p2p.upnp,
            handshake_timeout: duration(&key("handshake_timeout"), p2p.handshake_timeout)?,
            dial_timeout: duration(&key("dial_timeout"), p2p.dial_timeout)?,
            flush_throttle_timeout: duration(
                &key("flush_throttle_timeout"),
                p2p.flush_throttle_timeout,
            )?,
            persistent_peers_max_dial_period: duration(
                &key("persistent_peers_max_dial_period"),
                p2p.persistent_peers_max_dial_period,
            )?,
            max_packet_msg_payload_size: p2p.max_packet_msg_payload_size,
            send_rate: rate(&key("send_rate"), p2p.send_rate)?,
            recv_rate: rate(&key("recv_rate"), p2p.recv_rate)?,
        })
    }

    /// Folds the settings into `config` and `pex` (`None` when `pex = false`). Returns
    /// one note per key whose setting tmp2p honours differently from CometBFT, for the
    /// caller to log once.
    pub(crate) fn apply(
        &self,
        config: &mut NodeConfig,
        pex: &mut Option<PexConfig>,
    ) -> Vec<String> {
        let mut notes = Vec::new();
        if let Some(moniker) = &self.moniker {
            config.moniker.clone_from(moniker);
        }
        if let Some(listen) = self.listen {
            config.listen = listen;
        }
        if self.external_address.is_some() {
            config.external_address.clone_from(&self.external_address);
        }
        config.bootstrap_peers.extend(self.seeds.iter().cloned());
        config
            .persistent_peers
            .extend(self.persistent_peers.iter().cloned());
        config
            .private_peer_ids
            .extend(self.private_peer_ids.iter().copied());
        let router = &mut config.router;
        let pm = &mut router.peer_manager;
        pm.unconditional_peers
            .extend(self.unconditional_peer_ids.iter().copied());
        if !self.unconditional_peer_ids.is_empty() {
            notes.push(
                "p2p.unconditional_peer_ids: these peers are exempt from the IP-group caps but, \
                 unlike CometBFT, still count toward the connection limits"
                    .to_owned(),
            );
        }
        self.apply_peer_limits(pm, &mut notes);
        if self.allow_duplicate_ip == Some(true) {
            pm.max_connected_per_ip_group = 0;
        } else if self.allow_duplicate_ip == Some(false) {
            notes.push(format!(
                "p2p.allow_duplicate_ip = false: tmp2p caps connections per IP group ({} per \
                 /{} IPv4, /{} IPv6) instead of refusing a second connection from one IP",
                pm.max_connected_per_ip_group, pm.ipv4_group_prefix, pm.ipv6_group_prefix
            ));
        }
        if let Some(period) = self.persistent_peers_max_dial_period {
            if !period.is_zero() {
                pm.max_retry_time_persistent = period;
            }
        }
        if let Some(timeout) = self.handshake_timeout {
            router.connection.handshake_timeout = timeout;
        }
        if let Some(timeout) = self.dial_timeout {
            router.dial_timeout = timeout;
        }
        let mconn = &mut router.connection.mconn;
        if let Some(throttle) = self.flush_throttle_timeout {
            mconn.flush_throttle = (!throttle.is_zero()).then_some(throttle);
        }
        if let Some(size) = self.max_packet_msg_payload_size {
            mconn.max_packet_payload_size = size;
        }
        if let Some(rate) = self.send_rate {
            mconn.send_rate = rate;
        }
        if let Some(rate) = self.recv_rate {
            mconn.recv_rate = rate;
        }
        if self.upnp == Some(true) {
            notes.push("p2p.upnp = true: tmp2p does not do UPnP port mapping".to_owned());
        }
        self.apply_pex(pex);
        notes
    }

    /// CometBFT caps inbound and outbound peers separately; the PeerManager caps all
    /// connections and the outgoing ones.
    fn apply_peer_limits(
        &self,
        pm: &mut tmp2p_core::peer_manager::PeerManagerOptions,
        notes: &mut Vec<String>,
    ) {
        let (inbound, outbound) = (self.max_num_inbound_peers, self.max_num_outbound_peers);
        if let Some(outbound) = outbound {
            pm.max_outgoing_connections = outbound;
        }
        if inbound.is_none() && outbound.is_none() {
            return;
        }
        let inbound =
            inbound.unwrap_or(pm.max_connected.saturating_sub(pm.max_outgoing_connections));
        pm.max_connected = inbound.saturating_add(pm.max_outgoing_connections);
        pm.max_peers = pm.max_peers.max(pm.max_connected);
        notes.push(format!(
            "p2p.max_num_inbound_peers = {inbound}: tmp2p caps all connections at {} \
             (inbound + outbound), so inbound peers may use outbound slots left free",
            pm.max_connected
        ));
    }

    fn apply_pex(&self, pex: &mut Option<PexConfig>) {
        match self.pex {
            Some(false) => *pex = None,
            Some(true) if pex.is_none() => *pex = Some(PexConfig::default()),
            _ => {}
        }
        if let Some(pex) = pex {
            if let Some(seed_mode) = self.seed_mode {
                pex.seed_mode = seed_mode;
            }
            if let Some(strict) = self.addr_book_strict {
                pex.strict = strict;
            }
        }
    }
}

/// `None` for an absent or empty string (CometBFT writes `""` for "not set").
fn non_empty(value: Option<String>) -> Option<String> {
    value.filter(|v| !v.trim().is_empty())
}

fn at(key: &str, value: &str, expected: &str) -> String {
    format!("key {key}: {expected}, got {value:?}")
}

/// `tcp://HOST:PORT` (or `HOST:PORT`); a host name is resolved.
fn parse_laddr(value: &str) -> Result<SocketAddr, String> {
    let rest = value.strip_prefix("tcp://").unwrap_or(value);
    if rest.contains("://") {
        return Err("expected tcp://HOST:PORT (only TCP is supported)".to_owned());
    }
    if let Ok(addr) = SocketAddr::from_str(rest) {
        return Ok(addr);
    }
    rest.to_socket_addrs()
        .ok()
        .and_then(|mut addrs| addrs.next())
        .ok_or_else(|| "expected tcp://HOST:PORT with a resolvable HOST".to_owned())
}

/// `HOST:PORT`, optionally with `tcp://`, as CometBFT's NetAddress parser takes it.
fn parse_external(value: &str) -> Result<String, String> {
    let rest = value.strip_prefix("tcp://").unwrap_or(value);
    match rest.rsplit_once(':') {
        Some((host, port)) if !host.is_empty() && port.parse::<u16>().is_ok_and(|p| p > 0) => {
            Ok(rest.to_owned())
        }
        _ => Err("expected HOST:PORT".to_owned()),
    }
}

fn parse_id(value: &str) -> Result<NodeId, String> {
    NodeId::from_str(value).map_err(|e| format!("malformed node id: {e}"))
}

/// A comma-separated list (CometBFT's form); blanks around entries are ignored.
fn parse_list<T>(
    key: &str,
    value: Option<String>,
    parse: impl Fn(&str) -> Result<T, String>,
) -> Result<Vec<T>, String> {
    let Some(value) = value else {
        return Ok(Vec::new());
    };
    value
        .split(',')
        .map(str::trim)
        .filter(|entry| !entry.is_empty())
        .map(|entry| parse(entry).map_err(|e| at(key, entry, &e)))
        .collect()
}

fn duration(key: &str, value: Option<String>) -> Result<Option<Duration>, String> {
    non_empty(value)
        .map(|v| {
            parse_go_duration(&v).ok_or_else(|| {
                at(
                    key,
                    &v,
                    "expected a duration such as \"100ms\", \"3s\" or \"1m0s\"",
                )
            })
        })
        .transpose()
}

/// CometBFT's rates: bytes per second, 0 for no limit.
fn rate(key: &str, value: Option<i64>) -> Result<Option<Option<u64>>, String> {
    match value {
        None => Ok(None),
        Some(0) => Ok(Some(None)),
        Some(n) => u64::try_from(n)
            .map(|n| Some(Some(n)))
            .map_err(|_| at(key, &n.to_string(), "expected bytes per second, 0 or more")),
    }
}

/// Parses Go's `time.Duration` text (`"100ms"`, `"1m0s"`, `"1.5s"`, `"0"`), the form
/// CometBFT writes durations in. Hand-written because humantime, the usual crate, takes
/// neither fractions nor Go's unit spellings (`us`, `µs`); negative values are refused.
pub(crate) fn parse_go_duration(text: &str) -> Option<Duration> {
    if text == "0" {
        return Some(Duration::ZERO);
    }
    if text.is_empty() {
        return None;
    }
    let mut rest = text;
    let mut total = Duration::ZERO;
    while !rest.is_empty() {
        let number_end = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .filter(|&end| end > 0)?;
        let (number, after) = rest.split_at(number_end);
        let unit_end = after
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(after.len());
        let (unit, next) = after.split_at(unit_end);
        let nanos_per_unit: f64 = match unit {
            "ns" => 1.0,
            "us" | "µs" | "μs" => 1e3,
            "ms" => 1e6,
            "s" => 1e9,
            "m" => 60e9,
            "h" => 3600e9,
            _ => return None,
        };
        let value: f64 = number.parse().ok()?;
        let nanos = value * nanos_per_unit;
        if !nanos.is_finite() || nanos > u64::MAX as f64 {
            return None;
        }
        total = total.checked_add(Duration::from_nanos(nanos.round() as u64))?;
        rest = next;
    }
    Some(total)
}

/// One line for a TOML error: the line number, and for a value of the wrong type the key
/// (`p2p.send_rate`) read off the offending line and its section header.
fn describe_toml_error(text: &str, error: &toml::de::Error) -> String {
    let message = error.message().trim();
    let Some(span) = error.span() else {
        return message.to_owned();
    };
    let before = text.get(..span.start).unwrap_or(text);
    let line_number = before.matches('\n').count().saturating_add(1);
    let line = text
        .lines()
        .nth(line_number.saturating_sub(1))
        .unwrap_or("");
    let section = before.lines().rev().find_map(|l| {
        let l = l.trim();
        l.strip_prefix('[')
            .and_then(|s| s.strip_suffix(']'))
            .map(str::to_owned)
    });
    match line.split_once('=') {
        Some((key, _)) if !key.trim().is_empty() && !key.contains('[') => {
            let key = key.trim();
            let key = match section {
                Some(section) => format!("{section}.{key}"),
                None => key.to_owned(),
            };
            format!("line {line_number}, key {key}: {message}")
        }
        _ => format!("line {line_number}: {message}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const V038: &str = include_str!("../tests/fixtures/cometbft-v0.38-config.toml");
    const V034: &str = include_str!("../tests/fixtures/tendermint-v0.34-config.toml");

    fn applied(text: &str) -> (NodeConfig, Option<PexConfig>, Vec<String>) {
        let settings = FileSettings::parse(text).unwrap();
        let mut config = NodeConfig::new("n", "127.0.0.1:1".parse().unwrap());
        let mut pex = Some(PexConfig::default());
        let notes = settings.apply(&mut config, &mut pex);
        (config, pex, notes)
    }

    #[test]
    fn the_default_configs_of_v034_and_v038_map_to_cometbfts_defaults() {
        for (text, moniker) in [(V038, "fixture-v038"), (V034, "fixture-v034")] {
            let (config, pex, notes) = applied(text);
            assert_eq!(config.moniker, moniker);
            assert_eq!(config.listen, "0.0.0.0:26656".parse().unwrap());
            assert_eq!(config.external_address, None);
            assert!(config.persistent_peers.is_empty() && config.bootstrap_peers.is_empty());
            let pm = &config.router.peer_manager;
            assert_eq!((pm.max_connected, pm.max_outgoing_connections), (50, 10));
            let connection = &config.router.connection;
            assert_eq!(connection.handshake_timeout, Duration::from_secs(20));
            assert_eq!(config.router.dial_timeout, Duration::from_secs(3));
            let mconn = &connection.mconn;
            assert_eq!(mconn.flush_throttle, Some(Duration::from_millis(100)));
            assert_eq!(mconn.max_packet_payload_size, 1024);
            assert_eq!(
                (mconn.send_rate, mconn.recv_rate),
                (Some(5_120_000), Some(5_120_000))
            );
            let pex = pex.unwrap();
            assert!(pex.strict && !pex.seed_mode);
            // Inbound cap and duplicate-IP guard are honoured differently: two notes.
            assert_eq!(notes.len(), 2, "{notes:?}");
            config
                .validate(tmp2p_core::NodeKey::generate(&mut rand_core::OsRng).node_id())
                .unwrap();
        }
    }

    #[test]
    fn peers_ids_and_switches_are_read() {
        let id = "e13acb3e5c5c913caf21fbd1a318ca84970c877b";
        let text = format!(
            "moniker = \"m\"\n[p2p]\nladdr = \"tcp://127.0.0.1:7\"\n\
             external_address = \"tcp://1.2.3.4:26656\"\n\
             seeds = \"{id}@seed.example:26656, {id}@10.0.0.1:1\"\n\
             persistent_peers = \"{id}@10.0.0.2:26656\"\n\
             private_peer_ids = \"{id}\"\nunconditional_peer_ids = \"{id},\"\n\
             pex = true\nseed_mode = true\naddr_book_strict = false\nallow_duplicate_ip = true\n\
             send_rate = 0\nflush_throttle_timeout = \"0s\"\n\
             persistent_peers_max_dial_period = \"1m30s\"\nupnp = true\n"
        );
        let (config, pex, notes) = applied(&text);
        assert_eq!(config.listen, "127.0.0.1:7".parse().unwrap());
        assert_eq!(config.external_address.as_deref(), Some("1.2.3.4:26656"));
        assert_eq!(config.bootstrap_peers.len(), 2);
        assert_eq!(config.bootstrap_peers[0].hostname, "seed.example");
        assert_eq!(config.persistent_peers.len(), 1);
        assert_eq!(config.private_peer_ids.len(), 1);
        let pm = &config.router.peer_manager;
        assert_eq!(pm.unconditional_peers.len(), 1);
        assert_eq!(pm.max_connected_per_ip_group, 0);
        assert_eq!(pm.max_retry_time_persistent, Duration::from_secs(90));
        let mconn = &config.router.connection.mconn;
        assert_eq!((mconn.send_rate, mconn.flush_throttle), (None, None));
        let pex = pex.unwrap();
        assert!(pex.seed_mode && !pex.strict);
        assert!(notes.iter().any(|n| n.contains("upnp")), "{notes:?}");
        assert!(
            notes.iter().any(|n| n.contains("unconditional")),
            "{notes:?}"
        );
    }

    #[test]
    fn pex_false_turns_peer_exchange_off() {
        let (_, pex, _) = applied("[p2p]\npex = false\nseed_mode = true\n");
        assert!(pex.is_none());
    }

    #[test]
    fn bad_values_name_their_key() {
        let cases = [
            (
                "[p2p]\nladdr = \"unix:///tmp/s\"\n",
                "key p2p.laddr: expected tcp://HOST:PORT",
            ),
            (
                "[p2p]\nexternal_address = \"1.2.3.4\"\n",
                "key p2p.external_address: expected HOST:PORT",
            ),
            (
                "[p2p]\nprivate_peer_ids = \"abc\"\n",
                "key p2p.private_peer_ids: malformed node id",
            ),
            (
                "[p2p]\nrecv_rate = -1\n",
                "key p2p.recv_rate: expected bytes per second",
            ),
            (
                "[p2p]\nhandshake_timeout = \"-1s\"\n",
                "key p2p.handshake_timeout: expected a duration",
            ),
            (
                "[p2p]\npex = \"yes\"\n",
                "line 2, key p2p.pex: invalid type: string \"yes\", expected a boolean",
            ),
            (
                "moniker = 7\n",
                "line 1, key moniker: invalid type: integer",
            ),
            ("[p2p\n", "line 1: "),
        ];
        for (text, expected) in cases {
            let error = FileSettings::parse(text).unwrap_err();
            assert!(error.starts_with(expected), "{text:?}: {error}");
            assert!(!error.contains('\n'), "{error}");
        }
    }

    #[test]
    fn go_durations_parse_as_go_writes_them() {
        let ms = Duration::from_millis;
        for (text, expected) in [
            ("0", Some(Duration::ZERO)),
            ("0s", Some(Duration::ZERO)),
            ("100ms", Some(ms(100))),
            ("1m0s", Some(ms(60_000))),
            ("168h0m0s", Some(Duration::from_secs(168 * 3600))),
            ("1.5s", Some(ms(1500))),
            ("250us", Some(Duration::from_micros(250))),
            ("250µs", Some(Duration::from_micros(250))),
            ("10ns", Some(Duration::from_nanos(10))),
            ("", None),
            ("3", None),
            ("s", None),
            ("-1s", None),
            ("1d", None),
            ("1e3s", None),
            ("99999999999999999999h", None),
        ] {
            assert_eq!(parse_go_duration(text), expected, "{text:?}");
        }
    }
}
