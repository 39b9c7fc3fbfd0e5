//! The subset of URL syntax that node addresses use, with the rules of Go's `net/url`
//! (which defines what a Tendermint v0.35 address string means): scheme detection,
//! opaque URLs, userinfo, host with optional port, percent-escaping per component.

use super::AddressError;
use std::fmt::Write as _;

/// Which URL component a string belongs to: each has its own escaping rules.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Component {
    Host,
    Path,
    UserPassword,
    Fragment,
}

/// A URL split into the parts a node address needs, with escapes decoded.
#[derive(Debug, Default, PartialEq, Eq)]
pub(super) struct ParsedUrl {
    /// Lower-cased scheme, possibly empty.
    pub(super) scheme: String,
    /// The opaque part of `scheme:opaque` URLs.
    pub(super) opaque: String,
    /// The decoded user name (before any `:password`), if a `user@` part was present.
    pub(super) user: Option<String>,
    /// The decoded host, including any `:port` and IPv6 brackets.
    pub(super) host: String,
    /// The decoded path.
    pub(super) path: String,
    /// The query, still escaped, without its `?`.
    pub(super) raw_query: String,
    /// The decoded fragment, without its `#`.
    pub(super) fragment: String,
}

impl ParsedUrl {
    /// Parses `raw` as Go's `url.Parse` would.
    pub(super) fn parse(raw: &str) -> Result<Self, AddressError> {
        let (main, fragment) = match raw.split_once('#') {
            Some((main, fragment)) => (main, Some(fragment)),
            None => (raw, None),
        };
        let mut url = Self::parse_without_fragment(main)?;
        if let Some(fragment) = fragment {
            url.fragment = unescape(fragment, Component::Fragment)?;
        }
        Ok(url)
    }

    fn parse_without_fragment(raw: &str) -> Result<Self, AddressError> {
        if raw.bytes().any(|b| b < 0x20 || b == 0x7f) {
            return Err(AddressError::ControlCharacter);
        }
        let mut url = ParsedUrl::default();
        let (scheme, rest) = split_scheme(raw)?;
        url.scheme = scheme.to_lowercase();
        let rest = match rest.split_once('?') {
            Some((rest, query)) => {
                url.raw_query = query.to_owned();
                rest
            }
            None => rest,
        };
        if !rest.starts_with('/') {
            if !url.scheme.is_empty() {
                url.opaque = rest.to_owned();
                return Ok(url);
            }
            let first_segment = rest.split('/').next().unwrap_or_default();
            if first_segment.contains(':') {
                return Err(AddressError::ColonInFirstSegment);
            }
        }
        let mut path = rest;
        if (!url.scheme.is_empty() || !rest.starts_with("///")) && rest.starts_with("//") {
            let after_slashes = rest.get(2..).unwrap_or_default();
            let (authority, remainder) = match after_slashes.find('/') {
                Some(i) => after_slashes.split_at(i),
                None => (after_slashes, ""),
            };
            let (user, host) = parse_authority(authority)?;
            url.user = user;
            url.host = host;
            path = remainder;
        }
        url.path = unescape(path, Component::Path)?;
        Ok(url)
    }

    /// The host without port and without IPv6 brackets (Go's `URL.Hostname`).
    pub(super) fn hostname(&self) -> &str {
        let host = split_host_port(&self.host).0;
        host.strip_prefix('[')
            .and_then(|h| h.strip_suffix(']'))
            .unwrap_or(host)
    }

    /// The port text after the host, possibly empty (Go's `URL.Port`).
    pub(super) fn port(&self) -> &str {
        split_host_port(&self.host).1
    }
}

/// Splits off a valid `scheme:`; a string that does not start with one has no scheme.
fn split_scheme(raw: &str) -> Result<(&str, &str), AddressError> {
    for (i, c) in raw.char_indices() {
        match c {
            'a'..='z' | 'A'..='Z' => {}
            '0'..='9' | '+' | '-' | '.' if i > 0 => {}
            ':' if i == 0 => return Err(AddressError::MissingScheme),
            ':' => {
                let (scheme, colon_rest) = raw.split_at(i);
                return Ok((scheme, colon_rest.get(1..).unwrap_or_default()));
            }
            _ => return Ok(("", raw)),
        }
    }
    Ok(("", raw))
}

fn parse_authority(authority: &str) -> Result<(Option<String>, String), AddressError> {
    let Some(at) = authority.rfind('@') else {
        return Ok((None, parse_host(authority)?));
    };
    let (userinfo, host_with_at) = authority.split_at(at);
    let host = parse_host(host_with_at.get(1..).unwrap_or_default())?;
    if !userinfo.chars().all(is_userinfo_char) {
        return Err(AddressError::InvalidUserinfo);
    }
    let user = userinfo.split(':').next().unwrap_or_default();
    Ok((Some(unescape(user, Component::UserPassword)?), host))
}

fn is_userinfo_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || "-._:~!$&'()*+,;=%@".contains(c)
}

/// Checks the port syntax of a host and decodes its escapes.
fn parse_host(host: &str) -> Result<String, AddressError> {
    if host.starts_with('[') {
        let Some(close) = host.rfind(']') else {
            return Err(AddressError::MissingBracket(host.to_owned()));
        };
        // cannot panic: `close` indexes a byte of `host`, so `close + 1 <= host.len()`.
        let colon_port = host.get(close + 1..).unwrap_or_default();
        if !is_valid_optional_port(colon_port) {
            return Err(AddressError::InvalidPortSyntax(colon_port.to_owned()));
        }
    } else if let Some(colon) = host.rfind(':') {
        let colon_port = host.get(colon..).unwrap_or_default();
        if !is_valid_optional_port(colon_port) {
            return Err(AddressError::InvalidPortSyntax(colon_port.to_owned()));
        }
    }
    unescape(host, Component::Host)
}

/// `""` or `:` followed by zero or more ASCII digits.
fn is_valid_optional_port(colon_port: &str) -> bool {
    colon_port.is_empty()
        || colon_port
            .strip_prefix(':')
            .is_some_and(|digits| digits.bytes().all(|b| b.is_ascii_digit()))
}

/// Splits `host:port` at the last colon when what follows is a valid (maybe empty) port.
fn split_host_port(host_port: &str) -> (&str, &str) {
    // Indexes come from `rfind` of an ASCII ':', so they are on char boundaries.
    match host_port.rfind(':').map(|colon| host_port.split_at(colon)) {
        Some((host, colon_port)) if is_valid_optional_port(colon_port) => {
            (host, colon_port.get(1..).unwrap_or_default())
        }
        _ => (host_port, ""),
    }
}

/// Decodes `%XX` escapes with Go's per-component rules.
pub(super) fn unescape(s: &str, component: Component) -> Result<String, AddressError> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    // cannot panic (all `i + n` below): `i < bytes.len() <= isize::MAX`, so `i + 3` fits.
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        if b == b'%' {
            let escape = s.get(i..i + 3).or_else(|| s.get(i..)).unwrap_or("%");
            let (Some(hi), Some(lo)) = (
                bytes.get(i + 1).copied().and_then(hex_value),
                bytes.get(i + 2).copied().and_then(hex_value),
            ) else {
                return Err(AddressError::BadEscape(escape.to_owned()));
            };
            // In a host only non-ASCII bytes (and %25) may be escaped.
            if component == Component::Host && hi < 8 && escape != "%25" {
                return Err(AddressError::BadEscape(escape.to_owned()));
            }
            out.push(hi << 4 | lo);
            i += 3;
        } else {
            if component == Component::Host && b < 0x80 && needs_escape(b, Component::Host) {
                return Err(AddressError::InvalidHostCharacter(char::from(b)));
            }
            out.push(b);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| AddressError::NotUtf8)
}

/// Percent-encodes `s` for `component`, with upper-case hex as Go does.
pub(super) fn escape(s: &str, component: Component) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if needs_escape(b, component) {
            // Writing to a String cannot fail.
            let _ = write!(out, "%{b:02X}");
        } else {
            out.push(char::from(b));
        }
    }
    out
}

/// Go's `shouldEscape` for the components node addresses use.
fn needs_escape(b: u8, component: Component) -> bool {
    if b.is_ascii_alphanumeric() {
        return false;
    }
    if component == Component::Host && b"!$&'()*+,;=:[]<>\"".contains(&b) {
        return false;
    }
    match b {
        b'-' | b'_' | b'.' | b'~' => false,
        b'$' | b'&' | b'+' | b',' | b'/' | b':' | b';' | b'=' | b'?' | b'@' => match component {
            Component::Path => b == b'?',
            Component::UserPassword => matches!(b, b'@' | b'/' | b'?' | b':'),
            Component::Fragment => false,
            Component::Host => true,
        },
        b'!' | b'(' | b')' | b'*' if component == Component::Fragment => false,
        _ => true,
    }
}

fn hex_value(b: u8) -> Option<u8> {
    // cannot panic: each subtraction is guarded by its range pattern.
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// Assembles a URL string as Go's `URL.String` does, then trims a leading `//`
/// (the form both `NodeAddress.String` and `Endpoint.String` print).
pub(super) struct UrlWriter<'a> {
    pub(super) scheme: &'a str,
    pub(super) opaque: &'a str,
    pub(super) user: Option<&'a str>,
    /// Host (and `:port`), unescaped.
    pub(super) host: &'a str,
    /// Path, unescaped.
    pub(super) path: &'a str,
}

impl UrlWriter<'_> {
    pub(super) fn write(&self) -> String {
        let mut out = String::new();
        if !self.scheme.is_empty() {
            out.push_str(self.scheme);
            out.push(':');
        }
        if !self.opaque.is_empty() {
            out.push_str(self.opaque);
        } else {
            if !self.scheme.is_empty() || !self.host.is_empty() || self.user.is_some() {
                if !self.host.is_empty() || !self.path.is_empty() || self.user.is_some() {
                    out.push_str("//");
                }
                if let Some(user) = self.user {
                    out.push_str(&escape(user, Component::UserPassword));
                    out.push('@');
                }
                out.push_str(&escape(self.host, Component::Host));
            }
            let path = escape(self.path, Component::Path);
            if !path.is_empty() && !path.starts_with('/') && !self.host.is_empty() {
                out.push('/');
            }
            if out.is_empty() {
                let first_segment = path.split('/').next().unwrap_or_default();
                if first_segment.contains(':') {
                    out.push_str("./");
                }
            }
            out.push_str(&path);
        }
        match out.strip_prefix("//") {
            Some(trimmed) => trimmed.to_owned(),
            None => out,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_scheme_like_go() {
        assert_eq!(split_scheme("mconn://x").unwrap(), ("mconn", "//x"));
        assert_eq!(split_scheme("0abc:1").unwrap(), ("", "0abc:1"));
        assert_eq!(split_scheme("a0+.-:x").unwrap(), ("a0+.-", "x"));
        assert_eq!(split_scheme("ab@c:1").unwrap(), ("", "ab@c:1"));
        assert_eq!(split_scheme("://x"), Err(AddressError::MissingScheme));
    }

    #[test]
    fn host_escapes_only_non_ascii() {
        assert_eq!(unescape("%F0%9F%91%8B", Component::Host).unwrap(), "👋");
        assert_eq!(unescape("a%25b", Component::Host).unwrap(), "a%b");
        assert!(matches!(
            unescape("%41", Component::Host),
            Err(AddressError::BadEscape(_))
        ));
        assert_eq!(
            unescape("a b", Component::Host),
            Err(AddressError::InvalidHostCharacter(' '))
        );
        assert_eq!(unescape("%41", Component::Path).unwrap(), "A");
        assert!(unescape("%4", Component::Path).is_err());
        assert_eq!(unescape("%ff", Component::Path), Err(AddressError::NotUtf8));
    }

    #[test]
    fn host_and_port_split() {
        let url = ParsedUrl::parse("x://u@[::1]:80/p?q#f").unwrap();
        assert_eq!(url.hostname(), "::1");
        assert_eq!(url.port(), "80");
        assert_eq!(url.user.as_deref(), Some("u"));
        assert_eq!(url.path, "/p");
        assert_eq!(url.raw_query, "q");
        assert_eq!(url.fragment, "f");
        assert!(ParsedUrl::parse("x://[::1").is_err());
        assert!(ParsedUrl::parse("x://h:8a").is_err());
        assert!(ParsedUrl::parse("x://h\n").is_err());
    }

    #[test]
    fn path_escaping_matches_go() {
        assert_eq!(escape("/a?b#c d", Component::Path), "/a%3Fb%23c%20d");
        assert_eq!(escape("u@:", Component::UserPassword), "u%40%3A");
        assert_eq!(escape("[::1]:80", Component::Host), "[::1]:80");
    }
}
