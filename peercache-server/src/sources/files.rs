//! The `files` source: the key is a path relative to the group's `dir`,
//! and the value the content of that regular file.
//!
//! Keys come from clients, so a key names at most one regular file under
//! `dir`, in one spelling, and never makes the node wait or swell:
//!
//! - Only the canonical spelling is a key: `a/b.txt`, not `./a/b.txt`,
//!   `a//b.txt`, `a/./b.txt`, `/a/b.txt` or `a/` (else one file would be
//!   loaded and cached once per spelling). Those, `..` segments, an empty
//!   key and NUL are not found (404).
//! - A segment starting with `.` (`.env`, `.git/config`) is not found
//!   unless the group sets `dotfiles = true`; nor is a symbolic link that
//!   leads to one, or outside `dir`.
//! - Only regular files are values: a directory, a FIFO, a socket or a
//!   device is not found. The file is checked before it is opened, opened
//!   with `O_NONBLOCK` (a FIFO swapped in meanwhile does not wait for a
//!   writer) and `O_NOFOLLOW`, and checked again once open.
//! - A file over the group's `max_file_bytes` (default 64 MiB) is a load
//!   error (503) naming the key, its size and the setting; at most
//!   `max_file_bytes` + 1 bytes are read, so a file growing meanwhile is
//!   caught too.
//! - The content is read in chunks by tokio's files: when the group's
//!   `--load-timeout` gives up on a load (dropping it), the reading stops
//!   at the end of the chunk in progress, not at the end of the file.
//!
//! Refusals are logged at debug level, without the key (the group's
//! `--trace-keys` governs keys in logs).

use peercache::{LoadError, Loader, Value};
use std::path::{Component, Path, PathBuf};
use std::sync::Arc;
use tokio::io::{AsyncRead, AsyncReadExt};

/// The loader of a `files` group.
#[derive(Clone)]
pub struct FilesSource {
    root: Arc<Path>,
    max_file_bytes: u64,
    dotfiles: bool,
}

/// Why a key has no value, besides an I/O error.
#[derive(Debug, PartialEq, Eq)]
enum Unservable {
    /// Not found, for the reason given (logged, not shown).
    NotFound(&'static str),
    /// A file of this many bytes, over `max_file_bytes`.
    TooBig(u64),
}

impl FilesSource {
    /// A source reading files under the group's `dir` (which must be a
    /// directory) with its `max_file_bytes` and `dotfiles` settings. The
    /// error says which setting is wrong.
    pub fn new(group: &super::FilesConfig) -> Result<Self, String> {
        let max_file_bytes = match &group.max_file_bytes {
            Some(text) => {
                crate::args::parse_bytes(text).map_err(|e| format!("max_file_bytes: {e}"))?
            }
            None => super::MAX_VALUE_BYTES,
        };
        Self::with_settings(&group.dir, max_file_bytes, group.dotfiles)
    }

    /// The largest file served, in bytes.
    pub fn max_file_bytes(&self) -> u64 {
        self.max_file_bytes
    }

    /// A source reading files of at most `max_file_bytes` under `dir`,
    /// dotfiles included if `dotfiles`.
    fn with_settings(dir: &Path, max_file_bytes: u64, dotfiles: bool) -> Result<Self, String> {
        let root = dir
            .canonicalize()
            .map_err(|e| format!("dir {}: {e}", dir.display()))?;
        if !root.is_dir() {
            return Err(format!("dir {} is not a directory", dir.display()));
        }
        Ok(FilesSource {
            root: root.into(),
            max_file_bytes,
            dotfiles,
        })
    }

    /// Why `key` is not a canonical key of this group, if it is not.
    fn refusal(&self, key: &str) -> Option<&'static str> {
        if key.is_empty() {
            return Some("empty key");
        }
        if key.contains('\0') {
            return Some("NUL in the key");
        }
        for segment in key.split('/') {
            match segment {
                "" => return Some("empty segment (a leading, trailing or doubled '/')"),
                "." | ".." => return Some("a `.` or `..` segment"),
                _ if segment.starts_with('.') && !self.dotfiles => {
                    return Some("a dotfile, and the group does not set dotfiles = true")
                }
                _ => {}
            }
        }
        // Whatever else the platform reads as a way out (`C:`, `\`).
        if !Path::new(key)
            .components()
            .all(|c| matches!(c, Component::Normal(_)))
        {
            return Some("not a plain relative path");
        }
        None
    }

    /// The file a key names, if the key is canonical and the file, links
    /// followed, is inside the directory (and no dotfile unless allowed).
    /// Touches the file system: call it on a blocking thread.
    fn path_of(&self, key: &str) -> Result<PathBuf, Unservable> {
        if let Some(reason) = self.refusal(key) {
            return Err(Unservable::NotFound(reason));
        }
        let path = match self.root.join(key).canonicalize() {
            Ok(path) => path,
            Err(_) => return Err(Unservable::NotFound("no such file")),
        };
        let Ok(inside) = path.strip_prefix(&self.root) else {
            return Err(Unservable::NotFound("a link leading outside dir"));
        };
        let dotted = inside
            .components()
            .any(|c| c.as_os_str().as_encoded_bytes().starts_with(b"."));
        if dotted && !self.dotfiles {
            return Err(Unservable::NotFound("a link leading to a dotfile"));
        }
        Ok(path)
    }

    /// Resolves and opens the file of `key`: the open file and its size.
    /// Never waits on a FIFO or a device; may wait on the disk.
    fn open(&self, key: &str) -> Result<(std::fs::File, u64), OpenError> {
        let path = self.path_of(key)?;
        match std::fs::metadata(&path) {
            Ok(meta) if meta.is_file() => {}
            Ok(_) => return Err(Unservable::NotFound("not a regular file").into()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(Unservable::NotFound("no such file").into())
            }
            Err(e) => return Err(OpenError::Io(e)),
        }
        let (file, size) = open_regular(&path)?;
        if size > self.max_file_bytes {
            return Err(Unservable::TooBig(size).into());
        }
        Ok((file, size))
    }

    /// The error for a file of `size` bytes (or more) over the bound.
    fn too_big(&self, key: &str, size: &str) -> LoadError {
        LoadError::msg(format!(
            "file {key:?} is {size} bytes, over the group's max_file_bytes ({} bytes): raise max_file_bytes in the group's [[group]] of --config, or keep the file smaller",
            self.max_file_bytes
        ))
    }
}

/// Why a file could not be opened.
#[derive(Debug)]
enum OpenError {
    /// Not a value of this group.
    Unservable(Unservable),
    /// Reading the file system failed.
    Io(std::io::Error),
}

impl From<Unservable> for OpenError {
    fn from(reason: Unservable) -> Self {
        OpenError::Unservable(reason)
    }
}

/// Opens `path` without waiting (`O_NONBLOCK`: a FIFO does not wait for a
/// writer; `O_NOFOLLOW`: the final component is not a link that appeared
/// since `path` was resolved; `O_NOCTTY`), and checks that what was opened
/// is a regular file: the file and its size.
fn open_regular(path: &Path) -> Result<(std::fs::File, u64), OpenError> {
    let mut options = std::fs::OpenOptions::new();
    options.read(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.custom_flags(libc::O_NONBLOCK | libc::O_NOFOLLOW | libc::O_NOCTTY);
    }
    let file = match options.open(path) {
        Ok(file) => file,
        // Removed, or replaced by a link, since it was resolved.
        #[cfg(unix)]
        Err(e) if e.raw_os_error() == Some(libc::ELOOP) => {
            return Err(Unservable::NotFound("replaced by a link").into())
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(Unservable::NotFound("no such file").into())
        }
        Err(e) => return Err(OpenError::Io(e)),
    };
    let meta = file.metadata().map_err(OpenError::Io)?;
    if !meta.is_file() {
        return Err(Unservable::NotFound("not a regular file").into());
    }
    Ok((file, meta.len()))
}

/// Reads `reader` to its end, but at most `max + 1` bytes: the content, or
/// `Err(bytes read)` when there is more than `max`. `size` is the expected
/// length (the capacity reserved, up to `max`).
async fn read_bounded(
    reader: impl AsyncRead + Unpin,
    size: u64,
    max: u64,
) -> std::io::Result<Result<Vec<u8>, u64>> {
    let capacity = usize::try_from(size.min(max).saturating_add(1)).unwrap_or(usize::MAX);
    let mut bytes = Vec::with_capacity(capacity);
    reader
        .take(max.saturating_add(1))
        .read_to_end(&mut bytes)
        .await?;
    let read = bytes.len() as u64;
    Ok(if read > max { Err(read) } else { Ok(bytes) })
}

impl Loader for FilesSource {
    async fn load(&self, key: &str) -> Result<Value, LoadError> {
        // Cheap refusals first, without a blocking thread.
        if let Some(reason) = self.refusal(key) {
            tracing::debug!(reason, "files source: key refused, answered not found");
            return Err(LoadError::NotFound);
        }
        let source = self.clone();
        let owned = key.to_owned();
        // Resolving and opening never wait on a FIFO, but touch the disk.
        let opened = tokio::task::spawn_blocking(move || source.open(&owned))
            .await
            .map_err(|e| LoadError::msg(format!("opening file {key:?}: {e}")))?;
        let (file, size) = match opened {
            Ok(opened) => opened,
            Err(OpenError::Unservable(Unservable::NotFound(reason))) => {
                tracing::debug!(reason, "files source: key refused, answered not found");
                return Err(LoadError::NotFound);
            }
            Err(OpenError::Unservable(Unservable::TooBig(size))) => {
                return Err(self.too_big(key, &size.to_string()))
            }
            Err(OpenError::Io(e)) => {
                return Err(LoadError::msg(format!(
                    "cannot open file {key:?}: {e} (check that the server's user can read it)"
                )))
            }
        };
        // Chunk by chunk: dropping this future (the load timeout) stops it.
        let file = tokio::fs::File::from_std(file);
        match read_bounded(file, size, self.max_file_bytes).await {
            Ok(Ok(bytes)) => Ok(Value::new(bytes)),
            Ok(Err(read)) => Err(self.too_big(key, &format!("at least {read}"))),
            Err(e) => Err(LoadError::msg(format!("reading file {key:?}: {e}"))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A scratch directory for one test, removed when dropped.
    struct Scratch(PathBuf);

    impl Scratch {
        fn new(name: &str) -> Self {
            let dir = std::env::temp_dir().join(format!("peercache-{name}-{}", std::process::id()));
            let _ = std::fs::remove_dir_all(&dir);
            std::fs::create_dir_all(dir.join("sub")).unwrap();
            Scratch(dir)
        }
    }

    impl Drop for Scratch {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    fn not_found(outcome: Result<PathBuf, Unservable>) -> bool {
        matches!(outcome, Err(Unservable::NotFound(_)))
    }

    fn runtime() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
    }

    #[test]
    fn file_keys_cannot_leave_the_directory() {
        let dir = Scratch::new("files-leave");
        std::fs::write(dir.0.join("sub/page.html"), "hi").unwrap();
        let source = FilesSource::with_settings(&dir.0, 1 << 20, false).unwrap();
        assert!(source.path_of("sub/page.html").is_ok());
        for bad in ["../etc/passwd", "/etc/passwd", "sub/../../x", "", "a\0b"] {
            assert!(not_found(source.path_of(bad)), "{bad:?}");
        }
        #[cfg(unix)]
        {
            std::os::unix::fs::symlink("/etc", dir.0.join("escape")).unwrap();
            assert!(not_found(source.path_of("escape/hostname")));
        }
    }

    #[test]
    fn file_keys_must_be_canonical() {
        let dir = Scratch::new("files-canonical");
        std::fs::write(dir.0.join("sub/page.html"), "hi").unwrap();
        for dotfiles in [false, true] {
            let source = FilesSource::with_settings(&dir.0, 1 << 20, dotfiles).unwrap();
            assert_eq!(source.refusal("sub/page.html"), None);
            assert_eq!(source.refusal("a..b/c.d"), None);
            for bad in [
                ".",
                "..",
                "./sub/page.html",
                "././sub/page.html",
                "sub/./page.html",
                "sub/../sub/page.html",
                "sub//page.html",
                "/sub/page.html",
                "sub/page.html/",
                "sub/",
                "",
                "sub/page\0.html",
            ] {
                assert!(
                    source.refusal(bad).is_some(),
                    "{bad:?}, dotfiles {dotfiles}"
                );
                assert!(
                    not_found(source.path_of(bad)),
                    "{bad:?}, dotfiles {dotfiles}"
                );
            }
        }
    }

    #[test]
    fn dotfiles_only_when_the_group_allows_them() {
        let dir = Scratch::new("files-dot");
        std::fs::write(dir.0.join(".env"), "SECRET=1").unwrap();
        std::fs::create_dir_all(dir.0.join(".git")).unwrap();
        std::fs::write(dir.0.join(".git/config"), "[core]").unwrap();
        let hidden = FilesSource::with_settings(&dir.0, 1 << 20, false).unwrap();
        let shown = FilesSource::with_settings(&dir.0, 1 << 20, true).unwrap();
        for key in [".env", ".git/config", "..env"] {
            assert!(
                hidden.refusal(key).unwrap().contains("dotfiles = true"),
                "{key}"
            );
        }
        assert!(shown.path_of(".env").is_ok());
        assert!(shown.path_of(".git/config").is_ok());
        #[cfg(unix)]
        {
            std::os::unix::fs::symlink(".env", dir.0.join("env")).unwrap();
            assert!(not_found(hidden.path_of("env")));
            assert!(shown.path_of("env").is_ok());
        }
    }

    #[cfg(unix)]
    #[test]
    fn a_fifo_is_refused_without_waiting_for_a_writer() {
        let dir = Scratch::new("files-fifo");
        let fifo = dir.0.join("pipe");
        let made = std::process::Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap();
        assert!(made.success());
        // The open itself, as when a file was swapped for a FIFO after the
        // check: bounded, on a thread of its own.
        let (done, outcome) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let _ = done.send(open_regular(&fifo).map(|(_, size)| size));
        });
        let outcome = outcome
            .recv_timeout(std::time::Duration::from_secs(5))
            .expect("opening a FIFO waited for a writer");
        assert!(
            matches!(
                outcome,
                Err(OpenError::Unservable(Unservable::NotFound(
                    "not a regular file"
                )))
            ),
            "{outcome:?}"
        );
        let source = FilesSource::with_settings(&dir.0, 1 << 20, false).unwrap();
        let loaded = runtime().block_on(async {
            tokio::time::timeout(std::time::Duration::from_secs(5), source.load("pipe")).await
        });
        assert!(matches!(loaded, Ok(Err(LoadError::NotFound))), "{loaded:?}");
        assert!(runtime()
            .block_on(source.load("sub"))
            .unwrap_err()
            .is_not_found());
    }

    #[test]
    fn files_over_max_file_bytes_are_errors_naming_the_setting() {
        let dir = Scratch::new("files-big");
        std::fs::write(dir.0.join("big.bin"), vec![1u8; 4096]).unwrap();
        std::fs::write(dir.0.join("exact.bin"), vec![2u8; 1024]).unwrap();
        let source = FilesSource::with_settings(&dir.0, 1024, false).unwrap();
        let runtime = runtime();
        let error = runtime.block_on(source.load("big.bin")).unwrap_err();
        let text = error.to_string();
        assert!(
            text.contains("\"big.bin\"")
                && text.contains("4096")
                && text.contains("max_file_bytes (1024 bytes)"),
            "{text}"
        );
        let exact = runtime.block_on(source.load("exact.bin")).unwrap();
        assert_eq!(exact.len(), 1024);
        // A file that grows past the bound while read is caught as well.
        let grown = runtime.block_on(read_bounded(&[3u8; 2000][..], 10, 1024));
        assert_eq!(grown.unwrap(), Err(1025));
        let fits = runtime.block_on(read_bounded(&[3u8; 1000][..], 2000, 1024));
        assert_eq!(fits.unwrap().map(|b| b.len()), Ok(1000));
    }

    #[test]
    fn max_file_bytes_is_parsed_from_the_group() {
        let dir = Scratch::new("files-settings");
        let group = |extra: &str| -> super::super::FilesConfig {
            let text = format!(
                "[[group]]\nname = \"f\"\nsource = \"files\"\ndir = {:?}\n{extra}\n",
                dir.0.display().to_string()
            );
            match toml::from_str::<super::super::Config>(&text)
                .unwrap()
                .groups
                .remove(0)
                .source
            {
                super::super::Source::Files(files) => files,
                other => panic!("{other:?}"),
            }
        };
        let source = FilesSource::new(&group("")).unwrap();
        assert_eq!((source.max_file_bytes, source.dotfiles), (64 << 20, false));
        let source =
            FilesSource::new(&group("max_file_bytes = \"1KiB\"\ndotfiles = true")).unwrap();
        assert_eq!((source.max_file_bytes, source.dotfiles), (1024, true));
        let error = FilesSource::new(&group("max_file_bytes = \"lots\""))
            .err()
            .unwrap();
        assert!(error.starts_with("max_file_bytes: "), "{error}");
    }
}
