//! Typed groups: a cache of Rust values over a byte [`Group`] (feature
//! `typed`).
//!
//! A [`Group`] caches bytes, because bytes are what travel between peers and
//! what Go nodes understand. A [`TypedGroup<T>`] puts a [`Codec`] on each
//! side: its loader returns a `T`, which is encoded once, on the node that
//! loads it; a get decodes the cached bytes into a fresh `T`. The default
//! codec is [`Json`] (serde_json, already a dependency of the crate for the
//! wire), so values stay readable by any other language on the cluster;
//! implement [`Codec`] for a denser format (bincode, postcard, protobuf).
//!
//! Decoding runs on every get, hits included: a JSON decode of a small struct
//! costs far more than the hit itself (tens of nanoseconds). When a value is
//! read very often and is expensive to decode, keep the byte [`Group`] and
//! decode where the value is used, or memoise decoded values beside it.
//!
//! ```
//! use peercache::typed::TypedGroup;
//! use peercache::{LoadError, Node};
//! use serde::{Deserialize, Serialize};
//!
//! #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
//! struct User {
//!     id: u64,
//!     name: String,
//! }
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), peercache::Error> {
//! let node = Node::new();
//! let users: TypedGroup<User> = TypedGroup::build(
//!     node.group_builder("users").cache_bytes(16 << 20),
//!     |id: String| async move {
//!         let id: u64 = id.parse().map_err(|_| LoadError::NotFound)?;
//!         Ok(User { id, name: format!("user {id}") })
//!     },
//! )?;
//!
//! let user = users.get("7").await?;
//! assert_eq!(user, User { id: 7, name: "user 7".into() });
//! assert!(users.get("nobody").await.unwrap_err().is_not_found());
//!
//! users.set("7", &User { id: 7, name: "renamed".into() }, None).await?;
//! assert_eq!(users.get("7").await?.name, "renamed");
//! # Ok(())
//! # }
//! ```

use crate::{Applied, Error, Group, GroupBuilder, GroupStats, LoadError, Loader, Value};
use bytes::Bytes;
use serde::de::DeserializeOwned;
use serde::Serialize;
use std::fmt;
use std::future::Future;
use std::marker::PhantomData;
use std::sync::Arc;
use std::time::SystemTime;

/// The error a [`Codec`] returns.
pub type CodecError = Box<dyn std::error::Error + Send + Sync>;

/// Turns values of `T` into the bytes a group caches, and back.
///
/// Every node of a cluster sharing a group must use the same codec and the
/// same shape of `T`: bytes written by one node are read by the others.
///
/// ```
/// use bytes::Bytes;
/// use peercache::typed::{Codec, CodecError};
///
/// /// Counters cached as 8 little-endian bytes.
/// struct U64Le;
///
/// impl Codec<u64> for U64Le {
///     fn encode(&self, value: &u64) -> Result<Bytes, CodecError> {
///         Ok(Bytes::copy_from_slice(&value.to_le_bytes()))
///     }
///     fn decode(&self, bytes: &[u8]) -> Result<u64, CodecError> {
///         let array: [u8; 8] = bytes.try_into()?;
///         Ok(u64::from_le_bytes(array))
///     }
/// }
///
/// assert_eq!(U64Le.decode(&U64Le.encode(&42).unwrap()).unwrap(), 42);
/// assert!(U64Le.decode(b"short").is_err());
/// ```
pub trait Codec<T>: Send + Sync + 'static {
    /// The bytes of `value`.
    fn encode(&self, value: &T) -> Result<Bytes, CodecError>;
    /// The value these bytes encode.
    fn decode(&self, bytes: &[u8]) -> Result<T, CodecError>;
}

/// JSON through serde_json: readable by any language, and what the default
/// [`TypedGroup`] uses.
#[derive(Debug, Clone, Copy, Default)]
pub struct Json;

impl<T: Serialize + DeserializeOwned> Codec<T> for Json {
    fn encode(&self, value: &T) -> Result<Bytes, CodecError> {
        Ok(serde_json::to_vec(value)?.into())
    }

    fn decode(&self, bytes: &[u8]) -> Result<T, CodecError> {
        Ok(serde_json::from_slice(bytes)?)
    }
}

/// Produces the value of a key as a `T` (the typed twin of [`Loader`]).
///
/// Implemented for async closures taking the key as a `String`, and for
/// your own types:
///
/// ```
/// use peercache::typed::TypedLoader;
/// use peercache::LoadError;
///
/// struct Squares;
///
/// impl TypedLoader<u64> for Squares {
///     async fn load(&self, key: &str) -> Result<u64, LoadError> {
///         let n: u64 = key.parse().map_err(|_| LoadError::NotFound)?;
///         Ok(n * n)
///     }
/// }
/// ```
pub trait TypedLoader<T>: Send + Sync + 'static {
    /// Loads `key`. `Ok` values are encoded and cached; errors never are.
    fn load(&self, key: &str) -> impl Future<Output = Result<T, LoadError>> + Send;
}

impl<T, F, Fut> TypedLoader<T> for F
where
    F: Fn(String) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<T, LoadError>> + Send,
{
    fn load(&self, key: &str) -> impl Future<Output = Result<T, LoadError>> + Send {
        self(key.to_owned())
    }
}

/// A [`Group`] whose values are `T`, encoded by the codec `C`.
///
/// Cheap to clone (the group and codec are shared). Gets, sets, removes and
/// purges have the byte group's meaning and guarantees; see [`Group`].
pub struct TypedGroup<T, C = Json> {
    group: Group,
    codec: Arc<C>,
    _values: PhantomData<fn() -> T>,
}

impl<T, C> Clone for TypedGroup<T, C> {
    fn clone(&self) -> Self {
        TypedGroup {
            group: self.group.clone(),
            codec: Arc::clone(&self.codec),
            _values: PhantomData,
        }
    }
}

impl<T, C> fmt::Debug for TypedGroup<T, C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TypedGroup")
            .field("group", &self.group.name())
            .field("type", &std::any::type_name::<T>())
            .field("codec", &std::any::type_name::<C>())
            .finish()
    }
}

impl<T: Send + 'static, C: Codec<T> + Default> TypedGroup<T, C> {
    /// Builds the group from `builder` with a loader of `T`s and the
    /// default codec (JSON for `TypedGroup<T>`).
    pub fn build(builder: GroupBuilder<'_>, loader: impl TypedLoader<T>) -> Result<Self, Error> {
        Self::build_with_codec(builder, C::default(), loader)
    }
}

impl<T: Send + 'static, C: Codec<T>> TypedGroup<T, C> {
    /// Builds the group from `builder` with a loader of `T`s and `codec`.
    pub fn build_with_codec(
        builder: GroupBuilder<'_>,
        codec: C,
        loader: impl TypedLoader<T>,
    ) -> Result<Self, Error> {
        let codec = Arc::new(codec);
        let group = builder.build(Encoding {
            loader,
            codec: Arc::clone(&codec),
            _values: PhantomData,
        })?;
        Ok(TypedGroup {
            group,
            codec,
            _values: PhantomData,
        })
    }

    /// Views an existing byte group (for instance from [`crate::Node::group`])
    /// as values of `T`. Its loader must produce bytes that `codec` decodes.
    pub fn from_group(group: Group, codec: C) -> Self {
        TypedGroup {
            group,
            codec: Arc::new(codec),
            _values: PhantomData,
        }
    }

    /// The byte group underneath: its name, stats and untyped reads.
    pub fn group(&self) -> &Group {
        &self.group
    }

    /// The value of `key`, decoded; see [`Group::get`]. A cached value that
    /// does not decode gives [`Error::Codec`] and stays cached.
    pub async fn get(&self, key: &str) -> Result<T, Error> {
        let value = self.group.get(key).await?;
        self.codec
            .decode(value.as_bytes())
            .map_err(|e| self.codec_error(key, "decode", &*e))
    }

    /// Encodes `value` and stores it for `key` on every node; see
    /// [`Group::set`]. A value the codec cannot encode gives
    /// [`Error::Codec`] and changes nothing.
    pub async fn set(
        &self,
        key: &str,
        value: &T,
        expiry: Option<SystemTime>,
    ) -> Result<Applied, Error> {
        let bytes = self
            .codec
            .encode(value)
            .map_err(|e| self.codec_error(key, "encode", &*e))?;
        self.group.set(key, bytes, expiry).await
    }

    /// Removes `key` from the whole cluster; see [`Group::remove`].
    pub async fn remove(&self, key: &str) -> Result<Applied, Error> {
        self.group.remove(key).await
    }

    /// Empties the group on every node; see [`Group::purge`].
    pub async fn purge(&self) -> Result<Applied, Error> {
        self.group.purge().await
    }

    /// The group's counters; see [`Group::stats`].
    pub fn stats(&self) -> GroupStats {
        self.group.stats()
    }

    fn codec_error(
        &self,
        key: &str,
        action: &'static str,
        error: &(dyn std::error::Error + Send + Sync),
    ) -> Error {
        Error::Codec {
            group: Arc::from(self.group.name()),
            key: Arc::from(key),
            action,
            type_name: std::any::type_name::<T>(),
            reason: error.to_string(),
        }
    }
}

/// The byte [`Loader`] of a typed group: the typed loader, then the codec.
struct Encoding<L, C, T> {
    loader: L,
    codec: Arc<C>,
    _values: PhantomData<fn() -> T>,
}

impl<T: Send + 'static, L: TypedLoader<T>, C: Codec<T>> Loader for Encoding<L, C, T> {
    async fn load(&self, key: &str) -> Result<Value, LoadError> {
        let value = self.loader.load(key).await?;
        let bytes = self.codec.encode(&value).map_err(|e| {
            LoadError::msg(format!(
                "the loaded value does not encode as {}: {e}",
                std::any::type_name::<T>()
            ))
        })?;
        Ok(Value::new(bytes))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Node;
    use serde::Deserialize;
    use std::collections::BTreeMap;

    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
    struct Page {
        title: String,
        views: u32,
    }

    fn pages(node: &Node) -> TypedGroup<Page> {
        TypedGroup::build(node.group_builder("pages"), |key: String| async move {
            match key.as_str() {
                "home" => Ok(Page {
                    title: "Home".into(),
                    views: 3,
                }),
                "broken" => Err(LoadError::msg("database down")),
                _ => Err(LoadError::NotFound),
            }
        })
        .unwrap()
    }

    #[tokio::test]
    async fn values_round_trip_through_the_byte_cache_as_json() {
        let node = Node::new();
        let pages = pages(&node);
        let home = pages.get("home").await.unwrap();
        assert_eq!(home.title, "Home");
        // The bytes cached are plain JSON, readable by any other node.
        let raw = pages.group().get("home").await.unwrap();
        assert_eq!(raw.as_str().unwrap(), r#"{"title":"Home","views":3}"#);
        assert_eq!(pages.stats().loads, 1);
        assert!(pages.get("nope").await.unwrap_err().is_not_found());
        assert!(matches!(
            pages.get("broken").await.unwrap_err(),
            Error::Load { .. }
        ));
    }

    #[tokio::test]
    async fn a_value_that_does_not_decode_is_a_typed_error_and_stays_cached() {
        let node = Node::new();
        let pages = pages(&node);
        pages.group().set("odd", "not json", None).await.unwrap();
        let err = pages.get("odd").await.unwrap_err();
        match &err {
            Error::Codec {
                key,
                action,
                type_name,
                ..
            } => {
                assert_eq!(&**key, "odd");
                assert_eq!(*action, "decode");
                assert!(type_name.ends_with("Page"), "{type_name}");
            }
            other => panic!("expected a codec error, got {other:?}"),
        }
        assert!(err.to_string().contains("same type and codec"), "{err}");
        assert_eq!(
            pages.group().get("odd").await.unwrap().as_str().unwrap(),
            "not json"
        );
    }

    #[tokio::test]
    async fn a_value_that_does_not_encode_changes_nothing() {
        // JSON maps need string keys: this map cannot be encoded.
        let node = Node::new();
        let maps: TypedGroup<BTreeMap<Vec<u8>, u8>> =
            TypedGroup::build(node.group_builder("maps"), |_key: String| async move {
                Ok(BTreeMap::from([(vec![1u8], 1u8)]))
            })
            .unwrap();
        maps.group().set("k", "{}", None).await.unwrap();
        let err = maps
            .set("k", &BTreeMap::from([(vec![2u8], 2u8)]), None)
            .await
            .unwrap_err();
        assert!(
            matches!(
                err,
                Error::Codec {
                    action: "encode",
                    ..
                }
            ),
            "{err}"
        );
        assert_eq!(maps.get("k").await.unwrap(), BTreeMap::new());
        // A loaded value that does not encode fails the load, uncached.
        let err = maps.get("other").await.unwrap_err();
        assert!(err.to_string().contains("does not encode"), "{err}");
        assert_eq!(maps.stats().local_load_errs, 1);
    }

    #[tokio::test]
    async fn a_custom_codec_is_used_on_both_sides() {
        struct Decimal;
        impl Codec<u64> for Decimal {
            fn encode(&self, value: &u64) -> Result<Bytes, CodecError> {
                Ok(value.to_string().into())
            }
            fn decode(&self, bytes: &[u8]) -> Result<u64, CodecError> {
                Ok(std::str::from_utf8(bytes)?.parse()?)
            }
        }
        let node = Node::new();
        let squares = TypedGroup::build_with_codec(
            node.group_builder("squares"),
            Decimal,
            |key: String| async move { Ok(key.len() as u64 * key.len() as u64) },
        )
        .unwrap();
        assert_eq!(squares.get("abc").await.unwrap(), 9);
        assert_eq!(
            squares.group().get("abc").await.unwrap().as_str().unwrap(),
            "9"
        );
        let again = TypedGroup::from_group(node.group("squares").unwrap(), Decimal);
        assert_eq!(again.get("abc").await.unwrap(), 9);
    }
}
