//! [`batch_loader_fn`]: a [`Loader`] made from one async closure that reads
//! a batch of keys, the shape of a `SELECT ... WHERE id IN (...)`.
//!
//! The closure answers the rows it found as `(key, value)` pairs, in any
//! order; a key without a row is not found, a row for a key not asked is
//! ignored, and an error fails every key of the batch. A single get calls
//! it with one key, so one closure serves [`crate::Group::get`] and
//! [`crate::Group::get_many`] alike.

use crate::loader::{LoadError, Loader};
use crate::Value;
use std::collections::HashMap;
use std::fmt;
use std::future::Future;

/// A [`Loader`] made from an async closure over a batch of keys; see
/// [`batch_loader_fn`] (the only way to make one).
#[derive(Clone)]
pub struct BatchLoaderFn<F>(F);

impl<F> fmt::Debug for BatchLoaderFn<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("BatchLoaderFn")
    }
}

/// Adapts a closure that takes a batch of keys (owned, distinct, at least
/// one) and returns a future of the rows it found: anything iterable as
/// `(String, V)` pairs, such as a `HashMap<String, V>` or a
/// `Vec<(String, V)>`, where `V` converts into a [`Value`].
///
/// ```
/// use peercache::{batch_loader_fn, LoadError, Node};
/// use std::collections::HashMap;
/// use std::sync::atomic::{AtomicU32, Ordering};
/// use std::sync::Arc;
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), peercache::Error> {
/// let queries = Arc::new(AtomicU32::new(0));
/// let counted = Arc::clone(&queries);
/// let users = Node::new().new_group("users", 1 << 20, batch_loader_fn(move |ids: Vec<String>| {
///     counted.fetch_add(1, Ordering::SeqCst);
///     async move {
///         // One query for the whole batch: SELECT id, name FROM users WHERE id IN (...)
///         let table = HashMap::from([("1", "ada"), ("2", "grace")]);
///         let rows: HashMap<String, String> = ids
///             .into_iter()
///             .filter_map(|id| table.get(id.as_str()).map(|name| (id, name.to_string())))
///             .collect();
///         Ok::<_, LoadError>(rows)
///     }
/// }))?;
///
/// let answers = users.get_many(&["1", "2", "3"]).await;
/// assert_eq!(answers[0].as_ref().unwrap().as_str().unwrap(), "ada");
/// assert_eq!(answers[1].as_ref().unwrap().as_str().unwrap(), "grace");
/// assert!(answers[2].as_ref().unwrap_err().is_not_found()); // no row
/// assert_eq!(queries.load(Ordering::SeqCst), 1); // one query for three keys
///
/// assert_eq!(users.get("2").await?.as_str().unwrap(), "grace"); // cached
/// # Ok(())
/// # }
/// ```
///
/// The closure's error fails every key of its batch (and is never cached);
/// for a different error per key, implement [`Loader::load_many`] instead.
/// Long batches are passed whole: split them inside the closure where the
/// source limits a query's size.
pub fn batch_loader_fn<F, Fut, I, V>(f: F) -> BatchLoaderFn<F>
where
    F: Fn(Vec<String>) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<I, LoadError>> + Send,
    I: IntoIterator<Item = (String, V)>,
    V: Into<Value>,
{
    BatchLoaderFn(f)
}

impl<F, Fut, I, V> Loader for BatchLoaderFn<F>
where
    F: Fn(Vec<String>) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<I, LoadError>> + Send,
    I: IntoIterator<Item = (String, V)>,
    V: Into<Value>,
{
    fn load(&self, key: &str) -> impl Future<Output = Result<Value, LoadError>> + Send {
        let load = (self.0)(vec![key.to_owned()]);
        async move {
            let rows = load.await?;
            rows.into_iter()
                .find(|(found, _)| found == key)
                .map(|(_, value)| value.into())
                .ok_or(LoadError::NotFound)
        }
    }

    fn load_many(
        &self,
        keys: &[&str],
    ) -> impl Future<Output = Vec<Result<Value, LoadError>>> + Send {
        let load = (self.0)(keys.iter().map(|key| (*key).to_owned()).collect());
        async move {
            match load.await {
                Ok(rows) => match_rows(keys, rows),
                Err(error) => vec![Err(error); keys.len()],
            }
        }
    }
}

/// Each key's row, in the order of `keys`; a key without one is not found.
fn match_rows<V: Into<Value>>(
    keys: &[&str],
    rows: impl IntoIterator<Item = (String, V)>,
) -> Vec<Result<Value, LoadError>> {
    let at: HashMap<&str, usize> = keys.iter().enumerate().map(|(i, k)| (*k, i)).collect();
    let mut found: Vec<Option<Value>> = vec![None; keys.len()];
    for (key, value) in rows {
        if let Some(&i) = at.get(key.as_str()) {
            found[i] = Some(value.into());
        }
    }
    found
        .into_iter()
        .map(|value| value.ok_or(LoadError::NotFound))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_are_matched_to_keys_whatever_their_order() {
        let rows = vec![
            ("c".to_owned(), "3"),
            ("x".to_owned(), "not asked"),
            ("a".to_owned(), "1"),
        ];
        let answers = match_rows(&["a", "b", "c"], rows);
        assert_eq!(answers[0].as_ref().unwrap().as_bytes(), b"1");
        assert!(answers[1].as_ref().unwrap_err().is_not_found());
        assert_eq!(answers[2].as_ref().unwrap().as_bytes(), b"3");
    }
}
