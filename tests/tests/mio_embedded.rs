//! The embedded example as a test: a user-owned mio loop serves an unrelated TCP echo
//! socket and a tmp2p node at once, and both work.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "../../driver-mio/examples/embedded.rs"]
#[allow(dead_code)]
mod embedded;

use std::time::Duration;

#[test]
fn driver_and_echo_service_share_a_user_owned_mio_loop() {
    let outcome = embedded::run(50, Duration::from_secs(60)).unwrap();
    assert_eq!(
        outcome,
        embedded::Outcome {
            echo_lines: 50,
            p2p_replies: 50,
        }
    );
}
