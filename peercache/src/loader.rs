//! The loader: how a group fills a missing key from the real data source.
//!
//! This is Go's `Getter`. Only the owner of a key calls its loader (unless the
//! owner cannot be reached), and concurrent gets of one key share one call. A
//! loader is an async trait so that a slow source never blocks a thread;
//! [`loader_fn`] adapts an async closure.
//!
//! [`Loader`] uses `impl Future` in the trait (stable since Rust 1.75), so an
//! implementation is written with a plain `async fn`. Groups store loaders as
//! trait objects through the private `DynLoader` twin, which boxes the
//! future; that allocation happens once per actual load, never on a hit.

use crate::Value;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

/// A boxed, sendable future (what trait objects in this crate return).
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Why a loader could not produce a value. Cheap to clone: every waiter of a
/// merged load gets the same error.
///
/// A get turns it into [`crate::Error::NotFound`] or [`crate::Error::Load`]
/// (which keeps it as `source`). `?` converts I/O errors and messages:
///
/// ```
/// use peercache::{loader_fn, Error, LoadError, Node};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), peercache::Error> {
/// let files = Node::new().new_group("files", 1 << 20, loader_fn(|path: String| async move {
///     if path.contains("..") {
///         return Err(LoadError::msg(format!("refusing {path:?}: it leaves the directory")));
///     }
///     match tokio::fs::read(&path).await {
///         Ok(bytes) => Ok(bytes),
///         Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(LoadError::NotFound),
///         Err(e) => Err(LoadError::other(e)), // or `?`: io::Error converts
///     }
/// }))?;
///
/// assert!(files.get("no/such/file").await.unwrap_err().is_not_found());
/// match files.get("../etc/passwd").await {
///     Err(Error::Load { source, .. }) => assert!(source.to_string().starts_with("refusing")),
///     other => panic!("{other:?}"),
/// }
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone, thiserror::Error)]
pub enum LoadError {
    /// The key does not exist in the data source. Not cached, unless the
    /// group caches not-found ([`crate::GroupBuilder::cache_not_found`]);
    /// over the wire it becomes 404, which mailgun clients report as not-found without
    /// loading again.
    #[error("not found")]
    NotFound,
    /// Any other failure of the data source.
    #[error("{0}")]
    Failed(Arc<dyn std::error::Error + Send + Sync>),
}

impl LoadError {
    /// A failure described by a message.
    pub fn msg(message: impl Into<String>) -> Self {
        LoadError::Failed(Arc::new(Message(message.into())))
    }

    /// A failure caused by another error.
    pub fn other(error: impl std::error::Error + Send + Sync + 'static) -> Self {
        LoadError::Failed(Arc::new(error))
    }

    /// True for [`LoadError::NotFound`].
    pub fn is_not_found(&self) -> bool {
        matches!(self, LoadError::NotFound)
    }

    /// A failure that says the origin itself cannot be reached or does not
    /// answer (a refused connection, a timeout, a 5xx), as opposed to one
    /// key's trouble: what a group's breaker counts
    /// ([`crate::GroupBuilder::origin_breaker`]). Its message is the error's.
    ///
    /// ```
    /// use peercache::LoadError;
    ///
    /// let error = LoadError::unavailable("connection refused by db:5432");
    /// assert!(error.is_unavailable());
    /// assert_eq!(error.to_string(), "connection refused by db:5432");
    /// assert!(!LoadError::msg("row 7 is malformed").is_unavailable());
    ///
    /// // `?` on an I/O error that says the other end cannot be reached:
    /// let refused = std::io::Error::from(std::io::ErrorKind::ConnectionRefused);
    /// assert!(LoadError::from(refused).is_unavailable());
    /// let missing = std::io::Error::from(std::io::ErrorKind::PermissionDenied);
    /// assert!(!LoadError::from(missing).is_unavailable());
    /// ```
    pub fn unavailable(error: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> Self {
        LoadError::Failed(Arc::new(Unavailable(error.into())))
    }

    /// True for a failure made by [`LoadError::unavailable`].
    pub fn is_unavailable(&self) -> bool {
        match self {
            LoadError::Failed(error) => error.downcast_ref::<Unavailable>().is_some(),
            LoadError::NotFound => false,
        }
    }
}

/// The mark of [`LoadError::unavailable`]: the origin is down.
#[derive(Debug)]
struct Unavailable(Box<dyn std::error::Error + Send + Sync>);

impl fmt::Display for Unavailable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

impl std::error::Error for Unavailable {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.0.source()
    }
}

/// An I/O error that says the other end cannot be reached (a refused,
/// reset or broken connection, a timeout) is [`LoadError::unavailable`];
/// any other is a failure of its own.
impl From<std::io::Error> for LoadError {
    fn from(error: std::io::Error) -> Self {
        use std::io::ErrorKind::*;
        match error.kind() {
            ConnectionRefused | ConnectionReset | ConnectionAborted | NotConnected | BrokenPipe
            | TimedOut | HostUnreachable | NetworkUnreachable => LoadError::unavailable(error),
            _ => LoadError::other(error),
        }
    }
}

impl From<String> for LoadError {
    fn from(message: String) -> Self {
        LoadError::msg(message)
    }
}

impl From<&str> for LoadError {
    fn from(message: &str) -> Self {
        LoadError::msg(message)
    }
}

#[derive(Debug)]
struct Message(String);

impl fmt::Display for Message {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Message {}

/// Produces the value of a key from the real source (database, file, API).
///
/// Implement it on a type that holds the source's handle (a connection
/// pool, a client); for a closure, use [`loader_fn`].
///
/// ```
/// use peercache::{LoadError, Loader, Node, Value};
/// use std::collections::HashMap;
///
/// struct Motd {
///     by_language: HashMap<String, String>,
/// }
///
/// impl Loader for Motd {
///     async fn load(&self, key: &str) -> Result<Value, LoadError> {
///         match self.by_language.get(key) {
///             Some(text) => Ok(Value::from(text.clone())),
///             None => Err(LoadError::NotFound),
///         }
///     }
/// }
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), peercache::Error> {
/// let motd = Motd { by_language: HashMap::from([("en".to_owned(), "hello".to_owned())]) };
/// let group = Node::new().new_group("motd", 1 << 20, motd)?;
/// assert_eq!(group.get("en").await?.as_str().unwrap(), "hello");
/// assert!(group.get("fr").await.unwrap_err().is_not_found());
/// # Ok(())
/// # }
/// ```
///
/// A source that can read many keys in one query (`SELECT ... WHERE id IN
/// (...)`, a multi-get) also implements [`Loader::load_many`], which
/// [`crate::Group::get_many`] calls once per batch of keys this node owns;
/// [`crate::batch_loader_fn`] makes such a loader from one async closure.
pub trait Loader: Send + Sync + 'static {
    /// Loads `key`. The result is cached by the group when it is `Ok`; errors
    /// are never cached.
    fn load(&self, key: &str) -> impl Future<Output = Result<Value, LoadError>> + Send;

    /// Loads several keys at once: the answer holds one result per key, in
    /// the order of `keys` (which are distinct). A batch of
    /// [`crate::Group::get_many`] whose keys this node owns (or a peer's
    /// batch request) calls it once, with every key not already cached or
    /// being loaded.
    ///
    /// The default calls [`Loader::load`] for each key, at most
    /// [`LOAD_MANY_CONCURRENCY`] at once. Override it where the source reads
    /// many keys in one query; split very long batches as the source needs
    /// (a query's parameter limit). An answer with fewer results than keys
    /// fails the keys left without one.
    fn load_many(
        &self,
        keys: &[&str],
    ) -> impl Future<Output = Vec<Result<Value, LoadError>>> + Send {
        use futures_util::stream::{self, StreamExt};
        stream::iter(keys.iter().map(|key| self.load(key)))
            .buffered(LOAD_MANY_CONCURRENCY)
            .collect()
    }
}

/// Most single-key loads [`Loader::load_many`]'s default runs at once.
pub const LOAD_MANY_CONCURRENCY: usize = 16;

/// Object-safe twin of [`Loader`], implemented for every loader.
pub(crate) trait DynLoader: Send + Sync + 'static {
    fn load_boxed<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<Value, LoadError>>;

    fn load_many_boxed<'a>(
        &'a self,
        keys: &'a [&'a str],
    ) -> BoxFuture<'a, Vec<Result<Value, LoadError>>>;
}

impl<L: Loader> DynLoader for L {
    fn load_boxed<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<Value, LoadError>> {
        Box::pin(self.load(key))
    }

    fn load_many_boxed<'a>(
        &'a self,
        keys: &'a [&'a str],
    ) -> BoxFuture<'a, Vec<Result<Value, LoadError>>> {
        Box::pin(self.load_many(keys))
    }
}

/// A [`Loader`] made from an async closure; see [`loader_fn`] (the only way
/// to make one).
#[derive(Clone)]
pub struct LoaderFn<F>(F);

impl<F> fmt::Debug for LoaderFn<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("LoaderFn")
    }
}

/// Adapts a closure that takes the key (owned, so the future may keep it)
/// and returns a future of anything convertible into a [`Value`].
///
/// ```
/// use peercache::{loader_fn, LoadError, Node};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), peercache::Error> {
/// let loader = loader_fn(|key: String| async move {
///     if key.is_empty() {
///         return Err(LoadError::NotFound);
///     }
///     Ok(key.to_uppercase()) // a String; &'static str, Vec<u8>, Bytes and Value work too
/// });
/// let shout = Node::new().new_group("shout", 1 << 20, loader)?;
/// assert_eq!(shout.get("hi").await?.as_str().unwrap(), "HI");
/// # Ok(())
/// # }
/// ```
///
/// The closure is `Fn`, called once per load: to share state with the
/// loads, clone an `Arc` into each future:
///
/// ```
/// use peercache::loader_fn;
/// use std::sync::Arc;
///
/// let prefix = Arc::new(String::from("user:"));
/// let loader = loader_fn(move |key: String| {
///     let prefix = Arc::clone(&prefix);
///     async move { Ok(format!("{prefix}{key}")) }
/// });
/// # let _ = loader;
/// ```
///
/// # The error type
///
/// `loader_fn`'s bound says the future resolves to `Result<V, LoadError>`,
/// and that is what types a plain `Ok(value)`: no `Ok::<_, LoadError>` is
/// needed, also not with `?` on an [`std::io::Error`], a `String`, a `&str`
/// or an error of yours with a `From` impl into [`LoadError`]:
///
/// ```
/// use peercache::{loader_fn, Error, LoadError, Node};
///
/// #[derive(Debug)]
/// struct DbError(String);
///
/// impl std::fmt::Display for DbError {
///     fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
///         f.write_str(&self.0)
///     }
/// }
///
/// impl std::error::Error for DbError {}
///
/// impl From<DbError> for LoadError {
///     fn from(error: DbError) -> Self {
///         LoadError::other(error)
///     }
/// }
///
/// async fn query(id: &str) -> Result<String, DbError> {
///     match id {
///         "1" => Ok("ada".to_owned()),
///         _ => Err(DbError(format!("no row {id}"))),
///     }
/// }
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), peercache::Error> {
/// let users = Node::new().new_group("users", 1 << 20, loader_fn(|id: String| async move {
///     if id.is_empty() {
///         return Err(LoadError::NotFound);
///     }
///     let name = query(&id).await?; // DbError -> LoadError, by the From impl
///     Ok(name)
/// }))?;
/// assert_eq!(users.get("1").await?.as_str().unwrap(), "ada");
/// assert!(matches!(users.get("2").await, Err(Error::Load { .. })));
/// # Ok(())
/// # }
/// ```
///
/// A future that resolves to another error type is refused ("expected ...
/// to be a future that resolves to `Result<_, LoadError>`"): write
/// `Ok(query(&id).await?)`, not `query(&id).await`.
///
/// ```compile_fail,E0271
/// # use peercache::{loader_fn, LoadError};
/// # async fn query(id: &str) -> Result<String, std::io::Error> { Ok(id.to_owned()) }
/// let loader = loader_fn(|id: String| async move { query(&id).await });
/// ```
///
/// (The bound names `LoadError` rather than any `E: Into<LoadError>` for
/// that reason: with an open error type, nothing would say which error a
/// plain `Ok(value)` or a `?` means, and the two shapes above would both
/// need the annotation.) An annotation is only needed where the bound does
/// not reach, such as an async block spawned or boxed inside the loader.
pub fn loader_fn<F, Fut, V>(f: F) -> LoaderFn<F>
where
    F: Fn(String) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<V, LoadError>> + Send,
    V: Into<Value>,
{
    LoaderFn(f)
}

impl<F, Fut, V> Loader for LoaderFn<F>
where
    F: Fn(String) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<V, LoadError>> + Send,
    V: Into<Value>,
{
    fn load(&self, key: &str) -> impl Future<Output = Result<Value, LoadError>> + Send {
        let load = (self.0)(key.to_owned());
        async move { load.await.map(Into::into) }
    }
}
