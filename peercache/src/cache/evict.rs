//! What the main cache's policy does on a hit, and what it evicts when the
//! budget is exceeded: the admission of window candidates by request
//! count, probation and protected, and groupcache's hot-first rule (the
//! policy itself is described in `mod.rs`).

use super::sketch::Sketch;
use super::table::{List, Table};
use super::Cache;

impl Cache {
    /// Protected's share: four fifths of what the window leaves.
    pub(super) fn protected_budget(&self) -> u64 {
        let window = self.climber.window_budget(self.budget);
        self.budget.saturating_sub(window) / 5 * 4
    }

    pub(super) fn evict(&mut self, slot: u32) {
        if let Some((list, _)) = self.remove_slot(slot) {
            self.climber.filled();
            self.counters(list).evictions += 1;
        }
    }

    /// Whether the hot cache must give way first (groupcache's rule).
    fn hot_goes_first(&self) -> bool {
        self.table.bytes(List::Hot) > self.main_bytes() / 8
    }

    /// Moves the window's overflow to probation through admission, then
    /// evicts until the budget holds; returns whether `inserted` is still
    /// stored.
    pub(super) fn evict_to_budget(&mut self, inserted: u32) -> bool {
        let window = self.climber.window_budget(self.budget);
        let protected = self.protected_budget();
        demote_protected(&mut self.table, protected);
        while self.table.bytes(List::Window) > window {
            let Some(candidate) = self.table.oldest(List::Window) else {
                break;
            };
            self.table.move_to(candidate, List::Probation);
            self.admit(candidate);
        }
        while self.bytes() > self.budget {
            let victim = if self.hot_goes_first() {
                self.table.oldest(List::Hot)
            } else {
                [List::Probation, List::Protected, List::Window, List::Hot]
                    .into_iter()
                    .find_map(|list| self.table.oldest(list))
            };
            match victim {
                Some(victim) => self.evict(victim),
                None => break,
            }
        }
        self.table.key(inserted).is_some()
    }

    /// Makes room for `candidate` (now probation's newest entry) while the
    /// budget is exceeded: each victim (probation's oldest, else
    /// protected's) goes if the candidate was asked more often, else the
    /// candidate goes.
    fn admit(&mut self, candidate: u32) {
        while self.bytes() > self.budget {
            if self.hot_goes_first() {
                if let Some(victim) = self.table.oldest(List::Hot) {
                    self.evict(victim);
                    continue;
                }
            }
            let victim = [List::Probation, List::Protected]
                .into_iter()
                .find_map(|list| self.table.oldest(list).filter(|&v| v != candidate));
            let count = |slot| self.table.key(slot).map_or(0, |k| self.sketch.estimate(k));
            match victim {
                Some(victim) if count(candidate) > count(victim) => self.evict(victim),
                _ => {
                    self.evict(candidate);
                    return;
                }
            }
        }
    }
}

/// A main hit under exclusive access: counts the key and moves its entry
/// (to its list's front, or from probation to protected, demoting
/// protected's oldest entries while it exceeds `protected` bytes).
pub(super) fn hit_main(table: &mut Table, sketch: &mut Sketch, protected: u64, slot: u32) {
    let Some((list, _)) = table.get(slot) else {
        return;
    };
    if let Some(key) = table.key(slot) {
        sketch.record(key);
    }
    match list {
        List::Window | List::Protected => table.touch(slot),
        List::Probation => {
            table.move_to(slot, List::Protected);
            demote_protected(table, protected);
        }
        List::Hot => {}
    }
}

/// Moves protected's oldest entries to probation while protected holds
/// more than `protected` bytes (after a promotion, or when the window grew).
fn demote_protected(table: &mut Table, protected: u64) {
    while table.bytes(List::Protected) > protected {
        match table.oldest(List::Protected) {
            Some(oldest) => table.move_to(oldest, List::Probation),
            None => break,
        }
    }
}
