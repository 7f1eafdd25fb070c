//! When a value fetched from its owner is also kept in the hot cache.
//!
//! A node mirrors keys it does not own in its hot cache so that popular
//! keys stop crossing the network. Which fetched values deserve a place is
//! the policy's call; with [`HotCachePolicy::Frequent`] the cache itself
//! decides, by the request counts of its frequency sketch (`sketch.rs`).

/// When a value fetched from its owning peer is also kept in the hot cache.
///
/// The default is [`HotCachePolicy::Frequent`]. A group sets its own with
/// [`crate::GroupBuilder::hot_cache`]; a group that does not takes its
/// node's default, [`crate::Node::set_hot_cache_default`] (this is the one
/// place the default is documented; `peercache-server --hot-cache` sets the
/// node's). With `Always`, the second get of a key owned elsewhere is a
/// local hit:
///
/// ```
/// use peercache::in_process::InProcessNetwork;
/// use peercache::{loader_fn, CacheKind, HotCachePolicy, LoadError};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let network = InProcessNetwork::new();
/// let (a, b) = (network.node("a", &["a", "b"])?, network.node("b", &["a", "b"])?);
/// for (node, id) in [(&a, "a"), (&b, "b")] {
///     let loader = loader_fn(move |key: String| async move { Ok::<_, LoadError>(format!("{key} by {id}")) });
///     node.group_builder("g").hot_cache(HotCachePolicy::Always).build(loader)?;
/// }
///
/// // The ring puts "green" on b: a fetches it once, then serves its copy.
/// let g = a.group("g").unwrap();
/// assert_eq!(g.get("green").await?.as_str()?, "green by b");
/// assert_eq!(g.get("green").await?.as_str()?, "green by b");
/// assert_eq!(network.fetches(), 1);
/// assert_eq!(g.cached_keys(CacheKind::Hot), ["green"]);
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HotCachePolicy {
    /// Never: every get of a key owned elsewhere crosses to the owner.
    Never,
    /// Always (mailgun/groupcache's behaviour).
    Always,
    /// With probability `1/n` per fetch (golang/groupcache uses 1 in 10, so
    /// only keys fetched often end up mirrored). `OneIn(1)` is always,
    /// `OneIn(0)` never.
    OneIn(u32),
    /// By how often the key is asked (the default): a fetched value is
    /// mirrored at once while the budget has room for it, and under
    /// pressure only if its key was asked more often recently than the hot
    /// entry it would evict, by the request counts its main cache keeps for
    /// its own policy (a count-min sketch, `cache/sketch.rs`). A popular key crosses the network
    /// once instead of about ten times, and a key asked once cannot push a
    /// popular one out. Go's protocol carries a `minute_qps` field for this
    /// decision that golang/groupcache never used; this policy needs no
    /// help from the owner.
    Frequent,
}

impl Default for HotCachePolicy {
    /// [`HotCachePolicy::Frequent`].
    fn default() -> Self {
        HotCachePolicy::Frequent
    }
}

impl HotCachePolicy {
    /// Whether a fetched value may go to the hot cache at all; `Frequent`
    /// decides in the cache, with the counts (`Cache::admits_hot`).
    pub(crate) fn admits(self) -> bool {
        match self {
            HotCachePolicy::Never | HotCachePolicy::OneIn(0) => false,
            HotCachePolicy::Always | HotCachePolicy::OneIn(1) | HotCachePolicy::Frequent => true,
            HotCachePolicy::OneIn(n) => fastrand::u32(..n) == 0,
        }
    }
}
