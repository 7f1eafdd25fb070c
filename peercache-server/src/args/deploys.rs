//! The flags of warm handoff (README "Deploys and scaling"): how long a
//! node peeks keys' previous owners after its ring changes, and how much
//! it hands over when it stops.

use super::parse::{parse_bytes, parse_duration, parse_wait};
use clap::Args;
use std::time::Duration;

/// Peeks after a ring change, and the handoff on SIGTERM.
#[derive(Debug, Clone, Args)]
pub struct DeployArgs {
    /// For this long after a planned change of its ring (its start, a node
    /// joining or leaving gracefully), a node asks a key's previous owner
    /// for its cached value before loading it from the origin; 0 turns
    /// peeks off
    #[arg(long, value_name = "DURATION", default_value = "60s", value_parser = parse_wait)]
    pub peek_window: Duration,

    /// Time allowed for a peek; past it the key is loaded
    #[arg(long, value_name = "DURATION", default_value = "250ms", value_parser = parse_duration)]
    pub peek_timeout: Duration,

    /// On SIGTERM or Ctrl-C: bytes of cached values (the most valuable
    /// first) handed to their new owners before the node stops; 0 hands
    /// nothing over (the other nodes are still told it leaves)
    #[arg(long, value_name = "SIZE", default_value = "1GiB", value_parser = parse_bytes)]
    pub handoff_bytes: u64,

    /// On SIGTERM or Ctrl-C: the longest the handoff may take before the
    /// node drains its requests and stops
    #[arg(long, value_name = "DURATION", default_value = "5s", value_parser = parse_wait)]
    pub handoff_time: Duration,
}

impl DeployArgs {
    /// The handoff these flags ask for.
    pub fn handoff(&self) -> peercache::Handoff {
        peercache::Handoff {
            max_bytes: self.handoff_bytes,
            max_time: self.handoff_time,
        }
    }
}
