//! Load admission: a cap on a group's loader calls running at once, with a
//! bounded wait for a place ([`crate::GroupBuilder::max_concurrent_loads`]).
//!
//! A burst of distinct misses (a cold start, a scan, an attack on keys that
//! do not exist) would otherwise open as many origin queries as there are
//! keys. The cap is a tokio semaphore taken around each loader call (a
//! single key's, or a batch's one call), after the flight table has merged
//! the gets of each key, so a popular key's waiters take no places. A load
//! that finds no place within the wait fails with [`Error::Overloaded`],
//! which is never cached.

use super::Inner;
use crate::error::Error;
use crate::stats::bump;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// The cap's settings, as given to the builder.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Admission {
    /// Most loader calls at once.
    pub limit: usize,
    /// Longest wait for a place.
    pub wait: Duration,
}

/// The cap at work: its places and settings.
pub(super) struct Places {
    semaphore: Arc<Semaphore>,
    settings: Admission,
}

impl Places {
    pub(super) fn new(settings: Admission) -> Self {
        Places {
            semaphore: Arc::new(Semaphore::new(settings.limit)),
            settings,
        }
    }
}

impl Inner {
    /// A place for one loader call of `keys` (held until dropped), or the
    /// error each of them gets when none is free within the wait; `None`
    /// without a cap.
    pub(super) async fn admit(
        &self,
        keys: &[&str],
    ) -> Result<Option<OwnedSemaphorePermit>, Vec<Error>> {
        let Some(places) = &self.admission else {
            return Ok(None);
        };
        let semaphore = Arc::clone(&places.semaphore);
        let placed = match semaphore.clone().try_acquire_owned() {
            Ok(permit) => Ok(permit),
            Err(_) if places.settings.wait.is_zero() => Err(()),
            Err(_) => {
                match tokio::time::timeout(places.settings.wait, semaphore.acquire_owned()).await {
                    Ok(Ok(permit)) => Ok(permit),
                    _ => Err(()),
                }
            }
        };
        match placed {
            Ok(permit) => Ok(Some(permit)),
            Err(()) => {
                let Admission { limit, wait } = places.settings;
                tracing::debug!(group = %self.name, keys = keys.len(), limit, ?wait, "load refused: the group's loads are at their cap");
                Err(keys
                    .iter()
                    .map(|key| {
                        bump(&self.counters.loads_refused);
                        Error::Overloaded {
                            group: self.name.clone(),
                            key: Arc::from(*key),
                            limit,
                            wait,
                        }
                    })
                    .collect())
            }
        }
    }
}
