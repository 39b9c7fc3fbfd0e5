//! Import of a CometBFT `addrbook.json` (protocol.md §5.2, lower-case format:
//! `{"key": …, "addrs": [{"addr": {"id", "ip", "port"}, "src": …, "buckets": …,
//! "attempts": …, "bucket_type": …, "last_attempt": …, "last_success": …,
//! "last_ban_time": …}]}`) as a pure function over the file's bytes.
//!
//! Every entry is judged on its own: good ones become `mconn://id@ip:port` addresses for
//! the PeerManager, malformed ones are listed with their index and a typed reason, and one
//! bad entry never spoils the rest. Only the `addr` of an entry is used (bucket, attempt
//! and ban bookkeeping is CometBFT's and does not map onto the PeerManager). The legacy
//! capitalised format (`Addrs[].Addr{IP,Port}`, no node ids) is recognised and each of its
//! entries reported as [`AddrbookError::LegacyEntry`].

use std::collections::BTreeSet;
use std::net::IpAddr;
use std::time::Instant;

use serde_json::{Map, Value};

use super::{to_node_address, PexPeers};
use crate::address::{AddressError, NetAddress, NodeAddress};
use crate::id::{IdError, NodeId};

/// Why an address book, or one of its entries, cannot be imported.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AddrbookError {
    /// The file is not JSON (whole file).
    #[error("address book is not JSON: {0}")]
    NotJson(String),
    /// The top level is not an object with an `addrs` (or legacy `Addrs`) array (whole
    /// file).
    #[error("address book has no \"addrs\" array at the top level")]
    NoAddressList,
    /// The entry is not a JSON object.
    #[error("entry is not a JSON object")]
    EntryNotObject,
    /// The entry is in the legacy capitalised format, which has no node id.
    #[error("entry is in the legacy capitalised format (Addr/IP/Port) and has no node id")]
    LegacyEntry,
    /// A required field is missing.
    #[error("entry has no {0:?} field")]
    MissingField(&'static str),
    /// A field has the wrong JSON type.
    #[error("entry field {field:?} is not {expected}")]
    WrongType {
        /// The field.
        field: &'static str,
        /// The JSON type it must have.
        expected: &'static str,
    },
    /// The node id is malformed.
    #[error("entry node id is malformed: {0}")]
    BadId(#[source] IdError),
    /// The IP is not an IP address.
    #[error("entry ip {0:?} is not an IP address")]
    BadIp(String),
    /// The port is not in 1..=65535.
    #[error("entry port {0} is not in 1..=65535")]
    BadPort(i128),
    /// The address is not a valid peer address (unspecified, documentation, broadcast).
    #[error("entry address is not valid: {0}")]
    InvalidAddress(#[source] AddressError),
}

/// One entry that was not imported.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RejectedEntry {
    /// Its index in the `addrs` array.
    pub index: usize,
    /// Why.
    pub reason: AddrbookError,
}

/// The result of an import.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ImportedAddrbook {
    /// Good addresses, in file order, without duplicates.
    pub addresses: Vec<NodeAddress>,
    /// Malformed entries, in file order.
    pub rejected: Vec<RejectedEntry>,
}

impl ImportedAddrbook {
    /// Offers every address to the PeerManager (its caps apply); returns how many were
    /// new. Refusals are traced at debug level.
    pub fn add_to(&self, now: Instant, peers: &mut impl PexPeers) -> usize {
        let mut added = 0usize;
        for address in &self.addresses {
            match peers.add_address(now, address.clone()) {
                Ok(true) => added = added.saturating_add(1),
                Ok(false) => {}
                Err(e) => tracing::debug!(%address, %e, "imported address refused"),
            }
        }
        peers.addresses_added(now);
        added
    }
}

/// Parses an `addrbook.json` (see the module docs).
///
/// # Errors
/// [`AddrbookError::NotJson`] or [`AddrbookError::NoAddressList`] when the file as a whole
/// is unusable; entry problems are in [`ImportedAddrbook::rejected`] instead.
pub fn import_addrbook(bytes: &[u8]) -> Result<ImportedAddrbook, AddrbookError> {
    let root: Value =
        serde_json::from_slice(bytes).map_err(|e| AddrbookError::NotJson(e.to_string()))?;
    let entries = root
        .get("addrs")
        .or_else(|| root.get("Addrs"))
        .and_then(Value::as_array)
        .ok_or(AddrbookError::NoAddressList)?;
    let mut book = ImportedAddrbook::default();
    let mut seen = BTreeSet::new();
    for (index, entry) in entries.iter().enumerate() {
        match entry_address(entry) {
            Ok(address) => {
                if seen.insert(address.to_string()) {
                    book.addresses.push(address);
                }
            }
            Err(reason) => book.rejected.push(RejectedEntry { index, reason }),
        }
    }
    Ok(book)
}

fn entry_address(entry: &Value) -> Result<NodeAddress, AddrbookError> {
    let entry = entry.as_object().ok_or(AddrbookError::EntryNotObject)?;
    let Some(addr) = entry.get("addr") else {
        return Err(if entry.contains_key("Addr") {
            AddrbookError::LegacyEntry
        } else {
            AddrbookError::MissingField("addr")
        });
    };
    let addr = addr.as_object().ok_or(AddrbookError::WrongType {
        field: "addr",
        expected: "an object",
    })?;
    let id = string_field(addr, "id")?;
    let id = NodeId::parse_legacy(id).map_err(AddrbookError::BadId)?;
    let ip = string_field(addr, "ip")?;
    let ip: IpAddr = ip
        .parse()
        .map_err(|_| AddrbookError::BadIp(ip.to_owned()))?;
    let port = addr
        .get("port")
        .ok_or(AddrbookError::MissingField("port"))?;
    let port = port
        .as_i64()
        .map(i128::from)
        .or_else(|| port.as_u64().map(i128::from))
        .ok_or(AddrbookError::WrongType {
            field: "port",
            expected: "an integer",
        })?;
    let port = u16::try_from(port)
        .ok()
        .filter(|p| *p != 0)
        .ok_or(AddrbookError::BadPort(port))?;
    let address = NetAddress { id, ip, port };
    address.valid().map_err(AddrbookError::InvalidAddress)?;
    Ok(to_node_address(&address))
}

fn string_field<'a>(
    object: &'a Map<String, Value>,
    field: &'static str,
) -> Result<&'a str, AddrbookError> {
    object
        .get(field)
        .ok_or(AddrbookError::MissingField(field))?
        .as_str()
        .ok_or(AddrbookError::WrongType {
            field,
            expected: "a string",
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: &str = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
    const B: &str = "BBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBB";

    fn book() -> String {
        format!(
            r#"{{
  "key": "badd73ebd4eeafbaefc01e0c",
  "addrs": [
    {{"addr": {{"id": "{A}", "ip": "1.2.3.4", "port": 26656}},
      "src": {{"id": "{A}", "ip": "1.2.3.4", "port": 26656}},
      "buckets": [12], "attempts": 0, "bucket_type": 2,
      "last_attempt": "2024-01-01T00:00:00Z", "last_success": "2024-01-01T00:00:00Z",
      "last_ban_time": "0001-01-01T00:00:00Z"}},
    {{"addr": {{"id": "{B}", "ip": "2a00:1450::1", "port": 26656}}, "bucket_type": 1}},
    {{"addr": {{"id": "abc", "ip": "1.2.3.5", "port": 26656}}}},
    {{"addr": {{"id": "{A}", "ip": "not-an-ip", "port": 26656}}}},
    {{"addr": {{"id": "{A}", "ip": "1.2.3.6", "port": 70000}}}},
    {{"addr": {{"id": "{A}", "ip": "1.2.3.6", "port": -1}}}},
    {{"addr": {{"id": "{A}", "ip": "0.0.0.0", "port": 26656}}}},
    {{"addr": {{"ip": "1.2.3.7", "port": 26656}}}},
    {{"addr": {{"id": 5, "ip": "1.2.3.7", "port": 26656}}}},
    {{"src": {{}}}},
    7,
    {{"addr": {{"id": "{A}", "ip": "1.2.3.4", "port": 26656}}}},
    {{"addr": {{"id": "{A}", "ip": "1.2.3.8", "port": "26656"}}}},
    {{"addr": {{"id": "{A}", "ip": "1.2.3.9", "port": 0}}}}
  ]
}}"#
        )
    }

    #[test]
    fn good_entries_are_imported_and_every_bad_one_is_reported() {
        let book = import_addrbook(book().as_bytes()).unwrap();
        let got: Vec<String> = book.addresses.iter().map(|a| a.to_string()).collect();
        assert_eq!(
            got,
            vec![
                format!("mconn://{A}@1.2.3.4:26656"),
                format!("mconn://{}@[2a00:1450::1]:26656", B.to_lowercase()),
            ]
        );
        let reasons: Vec<(usize, AddrbookError)> = book
            .rejected
            .into_iter()
            .map(|r| (r.index, r.reason))
            .collect();
        assert!(matches!(reasons[0], (2, AddrbookError::BadId(_))));
        assert_eq!(reasons[1], (3, AddrbookError::BadIp("not-an-ip".into())));
        assert_eq!(reasons[2], (4, AddrbookError::BadPort(70000)));
        assert_eq!(reasons[3], (5, AddrbookError::BadPort(-1)));
        assert!(matches!(
            reasons[4],
            (
                6,
                AddrbookError::InvalidAddress(AddressError::UnspecifiedIp(_))
            )
        ));
        assert_eq!(reasons[5], (7, AddrbookError::MissingField("id")));
        assert!(matches!(
            reasons[6],
            (8, AddrbookError::WrongType { field: "id", .. })
        ));
        assert_eq!(reasons[7], (9, AddrbookError::MissingField("addr")));
        assert_eq!(reasons[8], (10, AddrbookError::EntryNotObject));
        // index 11 is a duplicate of index 0: neither imported twice nor an error.
        assert!(matches!(
            reasons[9],
            (12, AddrbookError::WrongType { field: "port", .. })
        ));
        assert_eq!(reasons[10], (13, AddrbookError::BadPort(0)));
        assert_eq!(reasons.len(), 11);
    }

    #[test]
    fn the_legacy_capitalised_book_is_reported_entry_by_entry() {
        let legacy = include_str!("../../../testdata/addrbook1");
        let book = import_addrbook(legacy.as_bytes()).unwrap();
        assert!(book.addresses.is_empty());
        assert_eq!(book.rejected.len(), 100);
        for (i, r) in book.rejected.iter().enumerate() {
            assert_eq!(r.index, i);
            assert_eq!(r.reason, AddrbookError::LegacyEntry);
        }
    }

    #[test]
    fn whole_file_problems_are_errors() {
        assert!(matches!(
            import_addrbook(b"{not json"),
            Err(AddrbookError::NotJson(_))
        ));
        assert_eq!(
            import_addrbook(b"[1, 2]"),
            Err(AddrbookError::NoAddressList)
        );
        assert_eq!(
            import_addrbook(br#"{"addrs": 5}"#),
            Err(AddrbookError::NoAddressList)
        );
        assert_eq!(
            import_addrbook(br#"{"addrs": []}"#),
            Ok(ImportedAddrbook::default())
        );
    }

    quickcheck::quickcheck! {
        // The importer takes any bytes without panicking.
        fn arbitrary_bytes_never_panic(bytes: Vec<u8>) -> bool {
            let _ = import_addrbook(&bytes);
            true
        }
    }
}
