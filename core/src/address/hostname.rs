//! Syntax check for DNS names: what core can say about a hostname without resolving it.

/// Longest DNS name in text form (without a trailing dot).
const MAX_NAME_LEN: usize = 253;
/// Longest DNS label.
const MAX_LABEL_LEN: usize = 63;

/// Whether `name` is a syntactically valid DNS name: dot-separated labels of 1..=63 ASCII
/// letters, digits, `-` or `_` (underscore appears in container and service names), not
/// starting or ending with `-`, at most 253 characters, optionally one trailing dot.
/// This is what a resolver would accept as a query; whether it resolves is the driver's job.
pub(super) fn is_dns_name(name: &str) -> bool {
    let name = name.strip_suffix('.').unwrap_or(name);
    !name.is_empty()
        && name.len() <= MAX_NAME_LEN
        && name.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= MAX_LABEL_LEN
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_names_rejects_junk() {
        for good in ["localhost", "ya.ru", "a-b.c_d.example.", "127.0.0"] {
            assert!(is_dns_name(good), "{good}");
        }
        let long_label = "a".repeat(64);
        let long_name = ["a"; 127].join(".") + ".bb";
        for bad in [
            "",
            ".",
            "a..b",
            "-a.b",
            "a-.b",
            "127.0.0.1:80",
            "💥",
            "a b",
            long_label.as_str(),
            long_name.as_str(),
        ] {
            assert!(!is_dns_name(bad), "{bad}");
        }
    }
}
