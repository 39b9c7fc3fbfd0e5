//! The binary's log output: one `tracing` subscriber on stderr (stdout stays the command's
//! report), filtered by `--log-level` or else `RUST_LOG`, as plain lines or JSON.
//!
//! Without either, `tmp2p node` logs at info (refusals, disconnects, bans, failed dials
//! each once, with their typed reason) and the one-shot commands at warn, so their report
//! on stdout is not interleaved with a node's chatter.

use clap::ValueEnum;
use tracing_subscriber::EnvFilter;

use crate::CliError;

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum LogFormat {
    /// Human-readable lines.
    Plain,
    /// One JSON object per line (fields, span fields, level, target, timestamp).
    Json,
}

/// Installs the subscriber. `level` is a `tracing` filter (`info`, `tmp2p_core=debug,warn`,
/// ...); without it `RUST_LOG` applies (a malformed one is reported and ignored), else
/// `default`.
///
/// # Errors
/// [`CliError::BadInput`] for a filter that does not parse.
pub(crate) fn install(
    level: Option<&str>,
    format: LogFormat,
    default: &str,
) -> Result<(), CliError> {
    let filter = match level {
        Some(level) => EnvFilter::try_new(level)
            .map_err(|e| CliError::BadInput(format!("--log-level {level:?}: {e}")))?,
        // A malformed RUST_LOG is the environment's, not this command's: it is said once
        // and the default applies.
        None => match std::env::var("RUST_LOG") {
            Ok(value) if !value.is_empty() => EnvFilter::try_new(&value).unwrap_or_else(|e| {
                eprintln!("tmp2p: RUST_LOG {value:?} ignored: {e}");
                EnvFilter::new(default)
            }),
            _ => EnvFilter::new(default),
        },
    };
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let installed = match format {
        LogFormat::Plain => builder.try_init(),
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
    };
    // Installed once per process, before any command runs: a second call is a bug here.
    installed.map_err(|e| CliError::Runtime(format!("cannot install the logger: {e}")))
}
