//! The bearer tokens of `--front-token-file`: each client's name, scopes
//! and token, checked in constant time.
//!
//! The file has one client per line, `NAME SCOPES TOKEN`, with `#`
//! comments and blank lines ignored:
//!
//! ```text
//! # name     scopes        token
//! billing    read          3f7c0a9d1b2e4f60a8c5d7e9b1a3c5e7
//! importer   write         9e8d7c6b5a4f3e2d1c0b9a8f7e6d5c4b
//! ops        admin         0123456789abcdef0123456789abcdef
//! prometheus metrics       fedcba9876543210fedcba9876543210
//! ```
//!
//! Only the SHA-256 digest of each token is kept. A presented token is
//! hashed and compared with every entry's digest by `subtle`'s
//! constant-time equality, without stopping at a match, so the time taken
//! says nothing about how much of a token was right, nor which entry
//! matched. The name, never the token, is what logs, limits and
//! refusals show.

use sha2::{Digest, Sha256};
use std::path::Path;
use std::sync::Arc;
use subtle::ConstantTimeEq;

/// The shortest token accepted: 16 characters (a random hex string of 16
/// has 64 bits; `openssl rand -hex 32` makes a good one).
pub const MIN_TOKEN_CHARS: usize = 16;

/// What a front request needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Need {
    /// Nothing: the status page's HTML (`/status`), `/openapi.json`.
    Public,
    /// A read: `GET` of a value, `POST _get-many`.
    Read,
    /// A change: `PUT`, `DELETE`.
    Write,
    /// Emptying a group: `POST _purge`.
    Admin,
    /// The node's counters: `/stats`, `/metrics`.
    Metrics,
}

impl Need {
    /// The scope to name in a refusal.
    pub fn scope(self) -> &'static str {
        match self {
            Need::Public => "none",
            Need::Read => "read",
            Need::Write => "write",
            Need::Admin => "admin",
            Need::Metrics => "metrics",
        }
    }
}

/// A token's scopes, as bits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Scopes(u8);

impl Scopes {
    const READ: u8 = 1;
    const WRITE: u8 = 2;
    const ADMIN: u8 = 4;
    const METRICS: u8 = 8;

    /// `read,write`-style text.
    fn parse(text: &str) -> Result<Scopes, String> {
        let mut bits = 0;
        for scope in text.split(',').map(str::trim) {
            bits |= match scope {
                "read" => Self::READ,
                "write" => Self::WRITE,
                "admin" => Self::ADMIN,
                "metrics" => Self::METRICS,
                _ => {
                    return Err("the second field (SCOPES) holds an unknown scope: use read, write, admin or metrics, joined by commas".to_owned())
                }
            };
        }
        Ok(Scopes(bits))
    }

    /// Whether these scopes allow `need`: `write` includes `read`; `admin`
    /// includes everything.
    pub fn allow(self, need: Need) -> bool {
        let has = |bit| self.0 & bit != 0;
        has(Self::ADMIN)
            || match need {
                Need::Public => true,
                Need::Read => has(Self::READ) || has(Self::WRITE),
                Need::Write => has(Self::WRITE),
                Need::Admin => false,
                Need::Metrics => has(Self::METRICS),
            }
    }
}

/// One client of the token file.
#[derive(Debug, Clone)]
pub struct Client {
    /// Its name, shown in logs and refusals.
    pub name: Arc<str>,
    /// What it may do.
    pub scopes: Scopes,
    digest: [u8; 32],
    /// Where the file lists it.
    line: usize,
}

/// Why a token file was refused; names the file and line.
#[derive(Debug, thiserror::Error)]
pub enum TokenFileError {
    /// The file could not be read.
    #[error("cannot read --front-token-file {path}: {source}")]
    Read {
        /// The file.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// A line is malformed.
    #[error("--front-token-file {path}, line {line}: {reason}")]
    Line {
        /// The file.
        path: String,
        /// The line's number, from 1.
        line: usize,
        /// What is wrong, and what to write.
        reason: String,
    },
}

/// The clients of a token file.
#[derive(Debug, Clone)]
pub struct Tokens {
    clients: Vec<Client>,
}

impl Tokens {
    /// Reads and checks `path`.
    pub fn load(path: &Path) -> Result<Tokens, TokenFileError> {
        let shown = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|source| TokenFileError::Read {
            path: shown.clone(),
            source,
        })?;
        Tokens::parse(&text).map_err(|(line, reason)| TokenFileError::Line {
            path: shown,
            line,
            reason,
        })
    }

    /// The clients of a token file's text (none is allowed: every request
    /// that needs a scope is then refused, which is how all tokens are
    /// revoked at once); the error is the line number and what is wrong.
    /// A reason quotes no field of the file: with its columns swapped, any
    /// field could be a token.
    pub fn parse(text: &str) -> Result<Tokens, (usize, String)> {
        let mut clients: Vec<Client> = Vec::new();
        for (index, line) in text.lines().enumerate() {
            let number = index + 1;
            let line = line.split('#').next().unwrap_or_default().trim();
            if line.is_empty() {
                continue;
            }
            let fields: Vec<&str> = line.split_whitespace().collect();
            let [name, scopes, token] = fields[..] else {
                return Err((
                    number,
                    format!(
                        "expected `NAME SCOPES TOKEN` (three fields), found {}",
                        fields.len()
                    ),
                ));
            };
            let name_chars = |c: char| c.is_ascii_alphanumeric() || "-_.".contains(c);
            if !name.chars().all(name_chars) {
                return Err((
                    number,
                    "the first field (NAME) may hold only letters, digits, '-', '_' and '.'"
                        .to_owned(),
                ));
            }
            let scopes = Scopes::parse(scopes).map_err(|reason| (number, reason))?;
            if token.chars().count() < MIN_TOKEN_CHARS {
                return Err((
                    number,
                    format!(
                        "the third field (TOKEN) is shorter than {MIN_TOKEN_CHARS} characters: make one with `openssl rand -hex 32`"
                    ),
                ));
            }
            let digest: [u8; 32] = Sha256::digest(token.as_bytes()).into();
            let same = |found: Option<&Client>, what: &str| match found {
                Some(other) => Err((
                    number,
                    format!(
                        "this {what} is also on line {}: give each client its own",
                        other.line
                    ),
                )),
                None => Ok(()),
            };
            same(clients.iter().find(|c| *c.name == *name), "name")?;
            same(clients.iter().find(|c| c.digest == digest), "token")?;
            clients.push(Client {
                name: name.into(),
                scopes,
                digest,
                line: number,
            });
        }
        Ok(Tokens { clients })
    }

    /// The client whose token `presented` is, compared in constant time
    /// with every entry.
    pub fn find(&self, presented: &[u8]) -> Option<&Client> {
        let digest: [u8; 32] = Sha256::digest(presented).into();
        let mut found = None;
        for client in &self.clients {
            if bool::from(client.digest.ct_eq(&digest)) {
                found = Some(client);
            }
        }
        found
    }

    /// How many clients the file lists.
    pub fn len(&self) -> usize {
        self.clients.len()
    }

    /// Whether the file lists nobody (every request needing a scope is
    /// refused).
    #[cfg_attr(not(test), allow(dead_code))]
    pub fn is_empty(&self) -> bool {
        self.clients.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FILE: &str = "# comment\n\
        reader read  aaaaaaaaaaaaaaaa\n\
        \n\
        writer write bbbbbbbbbbbbbbbb   # trailing comment\n\
        ops admin cccccccccccccccc\n\
        prom metrics,read dddddddddddddddd\n";

    #[test]
    fn finds_each_client_by_its_token_only() {
        let tokens = Tokens::parse(FILE).unwrap();
        assert_eq!(tokens.len(), 4);
        assert_eq!(&*tokens.find(b"aaaaaaaaaaaaaaaa").unwrap().name, "reader");
        assert_eq!(&*tokens.find(b"dddddddddddddddd").unwrap().name, "prom");
        assert!(tokens.find(b"aaaaaaaaaaaaaaa").is_none());
        assert!(tokens.find(b"aaaaaaaaaaaaaaaaa").is_none());
        assert!(tokens.find(b"").is_none());
        assert!(tokens.find(b"reader").is_none());
    }

    #[test]
    fn scopes_allow_what_the_readme_says() {
        let tokens = Tokens::parse(FILE).unwrap();
        let allows = |token: &[u8], need| tokens.find(token).unwrap().scopes.allow(need);
        use Need::*;
        let table: [(&[u8], [bool; 4]); 4] = [
            // read, write, admin, metrics
            (b"aaaaaaaaaaaaaaaa", [true, false, false, false]),
            (b"bbbbbbbbbbbbbbbb", [true, true, false, false]),
            (b"cccccccccccccccc", [true, true, true, true]),
            (b"dddddddddddddddd", [true, false, false, true]),
        ];
        for (token, expected) in table {
            let got = [Read, Write, Admin, Metrics].map(|need| allows(token, need));
            assert_eq!(got, expected, "{}", String::from_utf8_lossy(token));
        }
    }

    #[test]
    fn bad_files_name_the_line_and_never_quote_a_field() {
        let cases = [
            ("a read\n", 1, "three fields"),
            ("\nname read short\n", 2, "shorter than 16"),
            ("n read,delete aaaaaaaaaaaaaaaa\n", 1, "unknown scope"),
            ("n/x read aaaaaaaaaaaaaaaa\n", 1, "may hold only"),
            (
                "a read aaaaaaaaaaaaaaaa\na write bbbbbbbbbbbbbbbb\n",
                2,
                "name is also on line 1",
            ),
            (
                "a read aaaaaaaaaaaaaaaa\nb write aaaaaaaaaaaaaaaa\n",
                2,
                "token is also on line 1",
            ),
            // Columns swapped: the token sits in another field.
            ("n aaaaaaaaaaaaaaaa read\n", 1, "unknown scope"),
            (
                "aaaa+aaaaaaaaaaaa/= read bbbbbbbbbbbbbbbb\n",
                1,
                "may hold only",
            ),
            ("aaaaaaaaaaaaaaaa read n\n", 1, "shorter than 16"),
        ];
        for (text, line, reason) in cases {
            let (got_line, got_reason) = Tokens::parse(text).unwrap_err();
            assert_eq!(got_line, line, "{text:?}");
            assert!(got_reason.contains(reason), "{text:?}: {got_reason}");
            assert!(!got_reason.contains("aaaa"), "{got_reason}");
        }
        // A file with no token is valid: it refuses everyone.
        assert!(Tokens::parse("# nothing\n\n").unwrap().is_empty());
    }
}
