//! The flags of the front API: its own port, who may call it, and how
//! often. See `front/access.rs` for what they decide.

use super::parse::{parse_count, parse_rate};
use crate::front::access::AccessSettings;
use clap::Args;
use std::path::PathBuf;

/// Who may call the front API (the client routes, the status page,
/// `/stats`, `/metrics`), and where it listens.
#[derive(Debug, Clone, Default, Args)]
pub struct FrontArgs {
    /// Serve the front API (client routes, status page, /stats, /metrics)
    /// on this HOST:PORT, apart from --addr, which then serves the peer
    /// endpoint only: firewall --addr to the cluster and expose this one to
    /// applications [default: the front API shares --addr]
    #[arg(long, value_name = "HOST:PORT")]
    pub front_addr: Option<String>,

    /// Let front clients change the cache without a token: PUT, DELETE and
    /// POST _purge (changes reach every node). Without it, and without
    /// --front-token-file, they are refused with 403
    #[arg(long, conflicts_with = "front_token_file")]
    pub front_writes: bool,

    /// Serve front clients beyond loopback without a token (reads, and
    /// writes with --front-writes). Without it, and without
    /// --front-token-file, only clients on this machine are served; others
    /// get 403
    #[arg(long, conflicts_with = "front_token_file")]
    pub front_open: bool,

    /// Require a bearer token on the front API: a file of lines `NAME
    /// SCOPES TOKEN`, SCOPES being read, write, admin or metrics joined by
    /// commas, each TOKEN at least 16 characters ('#' comments). Re-read on
    /// SIGHUP. The status page and /openapi.json stay open
    #[arg(long, value_name = "PATH")]
    pub front_token_file: Option<PathBuf>,

    /// Requests per second each front client may make (a token, or without
    /// tokens an address; IPv6 by /64); over it: 429 with Retry-After
    /// [default: no limit]
    #[arg(long, value_name = "PER_SECOND", value_parser = parse_rate)]
    pub front_rate_limit: Option<f64>,

    /// Requests a front client may make at once above --front-rate-limit
    /// before it is held to the rate [default: one second's worth]
    #[arg(long, value_name = "N", value_parser = parse_count, requires = "front_rate_limit")]
    pub front_rate_burst: Option<usize>,
}

impl FrontArgs {
    /// The access rules these flags ask for (the burst defaults to one
    /// second's worth of requests).
    pub fn access(&self) -> AccessSettings {
        AccessSettings {
            token_file: self.front_token_file.clone(),
            writes: self.front_writes,
            open: self.front_open,
            rate: self.front_rate_limit.map(|per_second| {
                let second = per_second.ceil() as usize;
                (per_second, self.front_rate_burst.unwrap_or(second.max(1)))
            }),
        }
    }
}
