//! `Protocol`: the transport protocol an address or endpoint names (its URL scheme).

use std::borrow::Cow;
use std::fmt;

/// A transport protocol, as the lower-cased scheme of an address (`mconn`, `tcp`, `memory`,
/// or any other scheme a transport may register). May be empty: an address without a
/// protocol parses and prints, but fails validation.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct Protocol(Cow<'static, str>);

impl Protocol {
    /// The MConnection protocol over TCP (the default for scheme-less addresses).
    pub const MCONN: Protocol = Protocol(Cow::Borrowed("mconn"));
    /// `tcp`: an alias of [`Protocol::MCONN`] for the MConnection transport.
    pub const TCP: Protocol = Protocol(Cow::Borrowed("tcp"));
    /// The in-memory test transport (`memory:<node id>`).
    pub const MEMORY: Protocol = Protocol(Cow::Borrowed("memory"));

    /// A protocol from a scheme; lower-cased (Unicode-aware, as Go's `strings.ToLower`).
    pub fn new(scheme: &str) -> Self {
        if scheme.chars().any(char::is_uppercase) {
            Protocol(Cow::Owned(scheme.to_lowercase()))
        } else {
            Protocol(Cow::Owned(scheme.to_owned()))
        }
    }

    /// The lower-cased scheme text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Whether no protocol is set.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Whether the MConnection transport serves this protocol (`mconn` or `tcp`).
    pub fn is_mconn(&self) -> bool {
        *self == Self::MCONN || *self == Self::TCP
    }
}

impl fmt::Display for Protocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for Protocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Protocol({:?})", self.0)
    }
}

impl From<&str> for Protocol {
    fn from(scheme: &str) -> Self {
        Protocol::new(scheme)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lower_cases_and_compares_with_constants() {
        assert_eq!(Protocol::new("MConn"), Protocol::MCONN);
        assert_eq!(Protocol::new("tcp"), Protocol::TCP);
        assert!(Protocol::new("TCP").is_mconn());
        assert!(!Protocol::MEMORY.is_mconn());
        assert!(Protocol::new("").is_empty());
        assert_eq!(Protocol::new("💬").as_str(), "💬");
    }
}
