//! The truth: a directory every node reads through a `files` data source
//! (group [`GROUP`]), which the test's writers change before they tell the
//! cluster.
//!
//! A key's file holds its current value; a node must serve exactly that
//! once a partition has healed and the window has passed. Files are
//! replaced with a rename, so a node's load reads the old value or the new
//! one, never a half-written file.

use crate::support::Scratch;
use std::path::PathBuf;

/// The group the nodes serve from the directory.
pub const GROUP: &str = "kv";

/// The shared directory, its staging area and the nodes' `--config` file.
pub struct Store {
    scratch: Scratch,
}

impl Store {
    /// A fresh directory holding `value(key)` for each of `keys`.
    pub fn new(keys: &[String], value: impl Fn(&str) -> String) -> Store {
        let store = Store {
            scratch: Scratch::new("partition"),
        };
        std::fs::create_dir_all(store.data()).unwrap();
        std::fs::create_dir_all(store.staging()).unwrap();
        let config = format!(
            "[[group]]\nname = \"{GROUP}\"\nsource = \"files\"\ndir = \"{}\"\n",
            store.data().display()
        );
        std::fs::write(store.config(), config).unwrap();
        for key in keys {
            store.write(key, &value(key));
        }
        store
    }

    /// The `--config` file declaring group [`GROUP`].
    pub fn config(&self) -> PathBuf {
        self.scratch.0.join("groups.toml")
    }

    fn data(&self) -> PathBuf {
        self.scratch.0.join("data")
    }

    /// Beside `data`, on the same file system (so a rename is atomic), and
    /// outside it (so a node never serves a file being written).
    fn staging(&self) -> PathBuf {
        self.scratch.0.join("staging")
    }

    /// Replaces `key`'s file with `value`, atomically.
    pub fn write(&self, key: &str, value: &str) {
        let staged = self.staging().join(key);
        std::fs::write(&staged, value).unwrap();
        std::fs::rename(&staged, self.data().join(key)).unwrap();
    }

    /// `key`'s current value.
    pub fn read(&self, key: &str) -> String {
        let path = self.data().join(key);
        std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
    }
}
