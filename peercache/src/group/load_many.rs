//! One loader call for a batch of keys ([`crate::Loader::load_many`]):
//! within the load timeout, panics caught, a short answer padded with
//! errors, timed and traced once per call; and what each key gets when
//! the call fails as a whole. `many.rs` decides which keys go in it.

use super::breaker::Verdict;
use super::Inner;
use crate::error::Error;
use crate::flight::panic_message;
use crate::loader::LoadError;
use crate::trace::{Escaped, Timed};
use crate::Value;
use futures_util::FutureExt;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use tracing::field::Empty;
use tracing::Instrument;

impl Inner {
    /// One loader call for `keys`: an answer per key (a short answer fails
    /// the keys left without one).
    pub(super) async fn call_loader_many(&self, keys: &[&str]) -> Vec<Loaded> {
        let timed = Timed::start(tracing::debug_span!(
            target: "peercache",
            "peercache.load_many",
            group = %self.name,
            keys = keys.len(),
            outcome = Empty,
            duration_us = Empty,
        ));
        let started = std::time::Instant::now();
        // The loader's future is made inside the guard: a batch closure's
        // body runs as it is called.
        let load =
            AssertUnwindSafe(async { self.loader.load_many_boxed(keys).await }).catch_unwind();
        let loaded = match self.load_timeout {
            None => Ok(load.await),
            Some(timeout) => tokio::time::timeout(timeout, load)
                .instrument(timed.span().clone())
                .await
                .map_err(|_| timeout),
        };
        let answers = match loaded {
            Ok(Ok(mut answers)) => {
                let given = answers.len();
                if given != keys.len() {
                    tracing::warn!(group = %self.name, keys = keys.len(), given, "the loader's load_many answered a wrong number of results");
                    answers.truncate(keys.len());
                }
                let short = LoadError::msg(format!(
                    "the loader's load_many answered {given} results for {} keys",
                    keys.len()
                ));
                let mut answers: Vec<Loaded> = answers.into_iter().map(Loaded::Answer).collect();
                answers.resize_with(keys.len(), || Loaded::Answer(Err(short.clone())));
                answers
            }
            Ok(Err(payload)) => {
                let failed = BatchFailure::Panicked(panic_message(payload.as_ref()));
                vec![Loaded::Failed(failed); keys.len()]
            }
            Err(timeout) => {
                tracing::warn!(group = %self.name, keys = keys.len(), ?timeout, "batch load timed out; cancelled");
                vec![Loaded::Failed(BatchFailure::TimedOut(timeout)); keys.len()]
            }
        };
        let failures = answers
            .iter()
            .filter(|a| matches!(a, Loaded::Answer(Err(e)) if !e.is_not_found()))
            .count();
        if let Some(Loaded::Answer(Err(error))) = answers
            .iter()
            .find(|a| matches!(a, Loaded::Answer(Err(e)) if !e.is_not_found()))
        {
            tracing::warn!(group = %self.name, keys = keys.len(), failures, first = %Escaped(error), "batch load failed for some keys");
        }
        // The origin answered if it answered any key; a timed-out call, or
        // one whose every key found it unreachable, says it did not, once
        // per key (a batch is as many loads to the breaker).
        let keys_count = u32::try_from(keys.len()).unwrap_or(u32::MAX);
        let verdict = match answers.first() {
            Some(Loaded::Failed(BatchFailure::TimedOut(_))) => Verdict::Unreachable(keys_count),
            Some(Loaded::Failed(BatchFailure::Panicked(_))) | None => Verdict::Nothing,
            Some(_) => {
                let unreachable = |a: &Loaded| matches!(a, Loaded::Answer(loaded) if Verdict::of(loaded) != Verdict::Answered);
                if answers.iter().all(unreachable) {
                    Verdict::Unreachable(keys_count)
                } else {
                    Verdict::Answered
                }
            }
        };
        self.origin_answered(verdict);
        let label = match answers.first() {
            Some(Loaded::Failed(_)) => "error",
            _ if failures > 0 => "error",
            _ => "ok",
        };
        self.load_durations.record(label, started.elapsed());
        timed.finish(label);
        answers
    }
}

/// One key's part of a batch loader call.
#[derive(Clone)]
pub(super) enum Loaded {
    /// The loader's answer for the key.
    Answer(Result<Value, LoadError>),
    /// The whole call failed.
    Failed(BatchFailure),
}

/// Why a whole batch loader call failed.
#[derive(Clone)]
pub(super) enum BatchFailure {
    Panicked(String),
    TimedOut(std::time::Duration),
}

impl Inner {
    /// The error of `key` in a batch loader call that failed as a whole.
    pub(super) fn batch_failed(&self, key: &str, failure: BatchFailure) -> Error {
        let (group, key) = (self.name.clone(), Arc::from(key));
        match failure {
            BatchFailure::Panicked(message) => Error::Panicked {
                group,
                key,
                message,
            },
            BatchFailure::TimedOut(timeout) => Error::LoadTimeout {
                group,
                key,
                timeout,
            },
        }
    }
}
