//! The one place core reads the wall clock: an arbitrary starting `Instant` for unit tests
//! and fuzz bodies, which need some real instant to count virtual time from. Library code
//! never calls it (it is compiled only for tests and the `fuzzing` feature); machines take
//! `now` from their caller.

use std::time::Instant;

/// Some real instant to start virtual time from.
#[allow(clippy::disallowed_methods)]
pub(crate) fn epoch() -> Instant {
    Instant::now()
}
