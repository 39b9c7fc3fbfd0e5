//! `tmp2p node --driver mio`: the node on the mio driver's loop thread, its raw echo
//! reactor on this thread. An echo waits (`NodeHandle::send` blocks) while the peer's
//! queue is full; meanwhile this thread takes no more inbound events, so the driver stops
//! reading that node's sockets: backpressure end to end, nothing dropped.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tmp2p_core::address::NodeAddress;
use tmp2p_core::node_config::NodeConfig;
use tmp2p_core::pex::PexConfig;
use tmp2p_core::router::Envelope;
use tmp2p_core::NodeKey;
use tmp2p_driver_mio::{AppEvent, DriverError, DriverSetup, RunningNode};
use tmp2p_store::RedbPeerStore;

use crate::live_view::UpdateSink;
use crate::node::{echo_descriptor, print_stopping};
use crate::CliError;

/// Inbound events the application may leave untaken before the driver stops reading.
const INBOUND_CAPACITY: usize = 1024;
/// How often the loop looks at the stop flag while idle.
const STOP_POLL: Duration = Duration::from_millis(200);

/// Runs the node until Ctrl-C (or SIGTERM), then stops it gracefully.
pub(crate) fn run(
    echo_channel: u8,
    config: NodeConfig,
    key: NodeKey,
    store: Box<RedbPeerStore>,
    pex: Option<PexConfig>,
    imported: Option<Vec<NodeAddress>>,
    metrics: Option<std::net::SocketAddr>,
) -> Result<(), CliError> {
    let chain_id = config.network.clone();
    let mut setup = DriverSetup::new(config, key, vec![echo_descriptor(echo_channel)]);
    setup.store = store;
    setup.pex = pex;
    let mut node = RunningNode::spawn(setup, INBOUND_CAPACITY).map_err(|e| match e {
        DriverError::Bind { .. } | DriverError::Io(_) => CliError::Runtime(e.to_string()),
        e => CliError::BadInput(e.to_string()),
    })?;
    let title = format!("node {} listening on {}", node.node_id(), node.local_addr());
    println!("{title}");
    let handle = node.handle().clone();
    let source: crate::metrics::CountersSource =
        Arc::new(move || (handle.counters(), handle.peer_counters()));
    if let Some(addr) = metrics {
        let scrape = crate::metrics::one_network(chain_id, source.clone());
        let bound = crate::metrics::serve(addr, scrape)?;
        println!("metrics on http://{bound}/metrics");
    }
    if let Some(addresses) = imported {
        let count = addresses.len();
        for address in addresses {
            if let Err(e) = node.handle().add_peer(address.clone()) {
                eprintln!("tmp2p: addrbook address {address} refused: {e}");
            }
        }
        println!("imported {count} address(es) from the address book");
    }
    let stop = Arc::new(AtomicBool::new(false));
    let flag = Arc::clone(&stop);
    ctrlc::set_handler(move || flag.store(true, Ordering::Relaxed))
        .map_err(|e| CliError::Runtime(format!("cannot install the Ctrl-C handler: {e}")))?;
    let inbound = node
        .take_inbound()
        .ok_or_else(|| CliError::Runtime("the node has no inbound channel".into()))?;
    let handle = node.handle().clone();
    let mut sink = UpdateSink::for_stdout(source, title);
    while !stop.load(Ordering::Relaxed) {
        let event = match inbound.recv_timeout(STOP_POLL) {
            Ok(Some(event)) => event,
            Ok(None) => continue,
            Err(_) => break,
        };
        match event {
            AppEvent::Message(envelope) if envelope.channel == echo_channel => {
                let Some(from) = envelope.from else { continue };
                let echo = Envelope::to_peer(from, echo_channel, envelope.message);
                match handle.send(echo) {
                    Ok(()) => {}
                    Err(DriverError::Stopped) => break,
                    // The peer left before its echo went out: that echo alone is lost.
                    Err(error) => tracing::debug!(%error, "echo not sent"),
                }
            }
            AppEvent::PeerUpdate(update) => sink.update(&update),
            AppEvent::Message(_) | AppEvent::Writable { .. } => {}
        }
    }
    print_stopping();
    node.stop()
        .map_err(|e| CliError::Runtime(format!("the node did not stop cleanly: {e}")))
}
