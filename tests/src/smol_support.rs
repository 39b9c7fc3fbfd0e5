//! Small helpers shared by the smol driver's integration tests: a bounded wait that fails
//! the test by name instead of hanging, and a raw channel descriptor.
#![allow(clippy::panic)]

use std::future::Future;
use std::time::Duration;

use futures_lite::future;
use smol::Timer;
use tmp2p_core::mconn::ChannelDescriptor;

/// The longest any single wait in these tests may take.
pub const WAIT: Duration = Duration::from_secs(30);

/// Runs `fut` to completion on this thread, or fails the test naming `what` after [`WAIT`].
pub fn within<T>(what: &str, fut: impl Future<Output = T>) -> T {
    smol::block_on(future::or(fut, async {
        Timer::after(WAIT).await;
        panic!("timed out after {WAIT:?} waiting for {what}");
    }))
}

/// A channel descriptor for test traffic: priority 5, 16 queued messages, 1 MiB messages.
pub fn descriptor(id: u8) -> ChannelDescriptor {
    ChannelDescriptor {
        id,
        priority: 5,
        send_queue_capacity: 16,
        recv_message_capacity: 1 << 20,
    }
}
