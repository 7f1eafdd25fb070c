//! The error of a group operation.
//!
//! Every variant names the group and, where there is one, the key and the
//! peer, and says what to do. [`Error`] is `Clone` because a merged load hands
//! one result to every waiter.

use crate::loader::LoadError;
use std::sync::Arc;

/// What went wrong in a [`crate::Group`] or [`crate::Node`] call.
#[derive(Debug, Clone, thiserror::Error)]
pub enum Error {
    /// The loader (here, or at the owning peer) reported that the key does
    /// not exist. Not cached: the next get asks again.
    #[error("group {group:?}: key {key:?} not found{}", at_peer(peer))]
    NotFound {
        /// The group.
        group: Arc<str>,
        /// The key.
        key: Arc<str>,
        /// The owning peer whose loader answered, or `None` for this node.
        peer: Option<Arc<str>>,
    },
    /// The loader (here, or at the owning peer) failed. Not cached: the next
    /// get loads again.
    #[error(
        "group {group:?}: loading key {key:?} failed{}: {source}",
        at_peer(peer)
    )]
    Load {
        /// The group.
        group: Arc<str>,
        /// The key.
        key: Arc<str>,
        /// The owning peer whose loader failed, or `None` for this node.
        peer: Option<Arc<str>>,
        /// The loader's error.
        source: LoadError,
    },
    /// The loader or the peer transport panicked while loading the key. Every
    /// waiter gets this error; the next get loads again.
    #[error("group {group:?}: loading key {key:?} {message}; fix the loader, the next get will load again")]
    Panicked {
        /// The group.
        group: Arc<str>,
        /// The key.
        key: Arc<str>,
        /// The panic message.
        message: String,
    },
    /// A get was made outside a tokio runtime; loads are spawned on the
    /// current runtime, so call from within one (e.g. `#[tokio::main]`).
    #[error("group {group:?}: key {key:?} needs a load, but no tokio runtime is running; call get from within a tokio runtime")]
    NoRuntime {
        /// The group.
        group: Arc<str>,
        /// The key.
        key: Arc<str>,
    },
    /// A group with this name already exists on this node.
    #[error("a group named {name:?} already exists on this node; use Node::group({name:?}) to get it, or pick another name")]
    DuplicateGroup {
        /// The name asked for.
        name: String,
    },
    /// The group name cannot be used.
    #[error("invalid group name {name:?}: {reason}")]
    InvalidGroupName {
        /// The name asked for.
        name: String,
        /// What is wrong with it.
        reason: &'static str,
    },
}

fn at_peer(peer: &Option<Arc<str>>) -> String {
    match peer {
        Some(peer) => format!(" at owner {peer}"),
        None => String::new(),
    }
}

impl Error {
    /// True when the key does not exist in the data source.
    pub fn is_not_found(&self) -> bool {
        matches!(self, Error::NotFound { .. })
    }
}
