//! The tools some tests need beyond a Rust toolchain (Go, Chromium,
//! Python), and the one gate that runs, skips or fails those tests.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;

/// Where Debian's golang/groupcache package puts its GOPATH sources.
const GOCODE: &str = "/usr/share/gocode";

/// A tool that some tests need beyond a Rust toolchain.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Tool {
    /// `go` and Debian's golang/groupcache sources, to build `interop/go`.
    Go,
    /// Chromium (or Chrome), to render the status page headless.
    Chromium,
    /// Python 3 with `requests`, to run the example client.
    Python,
}

impl Tool {
    /// The variable that skips the tests needing this tool knowingly.
    pub fn skip_var(self) -> &'static str {
        match self {
            Tool::Go => "PEERCACHE_SKIP_GO_INTEROP",
            Tool::Chromium => "PEERCACHE_SKIP_BROWSER",
            Tool::Python => "PEERCACHE_SKIP_PYTHON",
        }
    }

    /// What installs the tool (Debian, Ubuntu).
    pub fn install(self) -> &'static str {
        match self {
            Tool::Go => "apt-get install -y golang-go golang-github-golang-groupcache-dev",
            Tool::Chromium => "apt-get install -y chromium",
            Tool::Python => "apt-get install -y python3 python3-requests",
        }
    }

    /// The tool's binary, or why it is not there (with what installs it).
    pub fn find(self) -> Result<PathBuf, String> {
        let install = self.install();
        match self {
            Tool::Go => {
                let go = on_path(&["go"]).ok_or(format!("Go not installed; {install}"))?;
                let groupcache = Path::new(GOCODE).join("src/github.com/golang/groupcache");
                if !groupcache.is_dir() {
                    return Err(format!(
                        "golang/groupcache not installed (no {}); {install}",
                        groupcache.display()
                    ));
                }
                Ok(go)
            }
            Tool::Chromium => on_path(&["chromium", "chromium-browser", "google-chrome"])
                .ok_or(format!("Chromium not installed; {install}")),
            // The first python3 that has `requests` (a pyenv's, or the
            // system's, where apt installs python3-requests).
            Tool::Python => {
                let candidates = on_path(&["python3"])
                    .into_iter()
                    .chain([PathBuf::from("/usr/bin/python3")]);
                let mut found_python = false;
                for python in candidates {
                    let Ok(output) = Command::new(&python)
                        .args(["-c", "import requests"])
                        .output()
                    else {
                        continue;
                    };
                    found_python = true;
                    if output.status.success() {
                        return Ok(python);
                    }
                }
                Err(match found_python {
                    true => format!("Python's requests not installed; {install}"),
                    false => format!("python3 not installed; {install}"),
                })
            }
        }
    }
}

/// The first executable file named one of `names` in a directory of `PATH`.
fn on_path(names: &[&str]) -> Option<PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    let path = std::env::var_os("PATH").unwrap_or_default();
    names.iter().find_map(|name| {
        std::env::split_paths(&path)
            .map(|dir| dir.join(name))
            .find(|file| {
                file.metadata()
                    .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
            })
    })
}

/// What a test that needs a tool does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Decision {
    /// Run it with the tool.
    Run,
    /// Pass without running it, saying why in one line.
    Skip,
    /// Fail, saying what to install.
    Fail,
}

/// The decision of [`require`]: a tool's skip variable skips knowingly;
/// otherwise the test runs if the tool is there; a missing tool skips the
/// test, unless `CI` or `PEERCACHE_FULL_TESTS` is set, where it fails.
pub fn decide(present: bool, ci: bool, full: bool, skip: bool) -> Decision {
    if skip {
        Decision::Skip
    } else if present {
        Decision::Run
    } else if ci || full {
        Decision::Fail
    } else {
        Decision::Skip
    }
}

/// Whether the environment variable `name` is set and not empty.
pub fn env_set(name: &str) -> bool {
    std::env::var_os(name).is_some_and(|value| !value.is_empty())
}

/// The one gate of every test (or part of one) that needs Go or Chromium:
/// the tool's binary when `what` runs; `None` when it is skipped, after one
/// line on the terminal (`skipped WHAT: Go not installed; apt-get ...`,
/// shown even though the test's output is captured); a panic when the tool
/// is missing and `CI` or `PEERCACHE_FULL_TESTS` is set.
pub fn require(tool: Tool, what: &str) -> Option<PathBuf> {
    let skip = env_set(tool.skip_var());
    let found = tool.find();
    let ci = env_set("CI");
    match decide(found.is_ok(), ci, env_set("PEERCACHE_FULL_TESTS"), skip) {
        Decision::Run => found.ok(),
        Decision::Skip => {
            let why = match found {
                _ if skip => format!("{} is set", tool.skip_var()),
                Err(why) => why,
                Ok(_) => unreachable!("a present tool is skipped only knowingly"),
            };
            // Straight to the terminal: libtest captures `println!` and
            // `eprintln!` of passing tests.
            let line = format!("skipped {what}: {why}\n");
            let _ = std::io::stderr().lock().write_all(line.as_bytes());
            None
        }
        Decision::Fail => panic!(
            "{what}: {}; {} is set, so a missing tool fails the test \
             ({}=1 skips it knowingly)",
            found.err().unwrap_or_default(),
            if ci { "CI" } else { "PEERCACHE_FULL_TESTS" },
            tool.skip_var()
        ),
    }
}

/// The golang/groupcache node of `interop/go`, built as `name` in the
/// tests' scratch directory, when [`require`] lets `what` run.
pub fn go_node(name: &str, what: &str) -> Option<PathBuf> {
    let go = require(Tool::Go, what)?;
    Some(build_go_node(&go, name))
}

/// Builds the golang/groupcache node of `interop/go` with `go` (GOPATH
/// mode, offline, with Debian's packages) as `name` in the tests' scratch
/// directory; panics when the build fails.
pub fn build_go_node(go: &Path, name: &str) -> PathBuf {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
    let tmp = PathBuf::from(env!("CARGO_TARGET_TMPDIR"));
    let binary = tmp.join(name);
    let gopath = format!("{}:{GOCODE}", repo.join("interop/go").display());
    let output = Command::new(go)
        .args(["build", "-o"])
        .arg(&binary)
        .arg("peercache-interop")
        .env("GO111MODULE", "off")
        .env("GOPROXY", "off")
        .env("GOFLAGS", "")
        .env("GOPATH", gopath)
        .env("GOCACHE", tmp.join("gocache"))
        .output()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", go.display()));
    assert!(
        output.status.success(),
        "building interop/go failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    binary
}
