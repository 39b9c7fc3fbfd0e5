//! [`PexConfig`]: the PEX reactor's settings and their validation.

use std::time::Duration;

use super::{PexError, MAX_ADDRESSES_RECEIVED, MIN_REQUEST_INTERVAL};

/// PEX settings; [`PexConfig::default`] is CometBFT-compatible.
#[derive(Debug, Clone, PartialEq)]
pub struct PexConfig {
    /// Least time between two requests to the same peer (default 30 s, at least
    /// [`MIN_REQUEST_INTERVAL`]).
    pub request_interval: Duration,
    /// Least time a peer must leave between its requests, after its first two (CometBFT:
    /// 10 s). Faster is a fatal [`PexError::RequestTooSoon`]. Zero disables the check.
    pub min_receive_interval: Duration,
    /// How long an answer may take; after it the request is forgotten (a late answer is
    /// ignored, not unsolicited).
    pub response_timeout: Duration,
    /// Most addresses put in one answer (default 100, at most [`MAX_ADDRESSES_RECEIVED`]).
    pub max_addresses_sent: usize,
    /// Requests stop once `PeerManager::peer_ratio()` reaches this (default 0.95).
    pub full_ratio: f64,
    /// Drop non-routable addresses learned from routable peers (default on).
    pub strict: bool,
    /// Seed mode (see the module docs).
    pub seed_mode: bool,
    /// Seed mode: least time before a crawled (and then disconnected) peer is dialed and
    /// asked again (default 2 min). The reactor raises the PeerManager's redial cooldown to
    /// it; without that a seed would reconnect to every peer each cooldown (2 s).
    pub seed_recrawl_interval: Duration,
}

impl Default for PexConfig {
    fn default() -> Self {
        PexConfig {
            request_interval: Duration::from_secs(30),
            min_receive_interval: MIN_REQUEST_INTERVAL,
            response_timeout: Duration::from_secs(30),
            max_addresses_sent: 100,
            full_ratio: 0.95,
            strict: true,
            seed_mode: false,
            seed_recrawl_interval: Duration::from_secs(120),
        }
    }
}

impl PexConfig {
    /// Checks every setting.
    ///
    /// # Errors
    /// The first bad setting as a [`PexError`].
    pub fn validate(&self) -> Result<(), PexError> {
        if self.request_interval < MIN_REQUEST_INTERVAL {
            return Err(PexError::RequestIntervalTooShort {
                interval: self.request_interval,
                min: MIN_REQUEST_INTERVAL,
            });
        }
        if self.response_timeout.is_zero() {
            return Err(PexError::ZeroResponseTimeout);
        }
        if self.max_addresses_sent == 0 || self.max_addresses_sent > MAX_ADDRESSES_RECEIVED {
            return Err(PexError::MaxAddressesSentOutOfRange {
                value: self.max_addresses_sent,
                max: MAX_ADDRESSES_RECEIVED,
            });
        }
        if !(self.full_ratio.is_finite() && self.full_ratio > 0.0) {
            return Err(PexError::InvalidFullRatio(self.full_ratio));
        }
        Ok(())
    }
}
