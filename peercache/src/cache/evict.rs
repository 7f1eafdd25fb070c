//! What the main cache's policy does on a hit, and what it evicts when the
//! budget is exceeded: the admission of window candidates by request
//! count, probation and protected, and groupcache's hot-first rule (the
//! policy itself is described in `mod.rs`).

use super::sketch::Sketch;
use super::table::{List, Table};
use super::Cache;

/// The most entries one change moves out of the window, and out of
/// protected, to follow a new share.
const MOVES_PER_CHANGE: usize = 64;

impl Cache {
    /// Protected's share: four fifths of what the window leaves.
    pub(super) fn protected_budget(&self) -> u64 {
        let window = self.climber.window_budget(self.budget);
        self.budget.saturating_sub(window) / 5 * 4
    }

    /// Evicts the entry in `slot`. Only while over budget, and by
    /// groupcache's rule: a hot entry only while hot holds more than
    /// main/8, a main one only while it does not (checked in debug builds,
    /// so every test of the crate checks it).
    pub(super) fn evict(&mut self, slot: u32) {
        debug_assert!(self.bytes() > self.budget, "an eviction under budget");
        debug_assert_eq!(
            self.table.get(slot).map(|(list, _)| list == List::Hot),
            Some(self.hot_goes_first()),
            "an eviction against the hot/main rule"
        );
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
    ///
    /// When the climber has just shrunk the window (or grown it, shrinking
    /// protected), a change moves at most [`MOVES_PER_CHANGE`] entries out
    /// of each, and the next changes move the rest: the budget holds at
    /// once, the shares within a few changes, and no insert holds the lock
    /// for the tens of thousands of moves a large cache's step would take.
    pub(super) fn evict_to_budget(&mut self, inserted: u32) -> bool {
        let window = self.climber.window_budget(self.budget);
        let protected = self.protected_budget();
        let protected_settled = demote_protected(&mut self.table, protected);
        let mut window_settled = true;
        let mut moves = 0;
        while self.table.bytes(List::Window) > window {
            if moves == MOVES_PER_CHANGE {
                window_settled = false;
                break;
            }
            let Some(candidate) = self.table.oldest(List::Window) else {
                break;
            };
            self.table.move_to(candidate, List::Probation);
            self.admit(candidate);
            moves += 1;
        }
        self.settling = [!window_settled, !protected_settled];
        self.evict_while_over(
            &[List::Probation, List::Protected, List::Window, List::Hot],
            None,
        );
        self.table.key(inserted).is_some()
    }

    /// Makes room for `candidate` (now probation's newest entry) if it
    /// earns it. Hot entries go first while the hot cache is over its
    /// share, as they would for any insert. Then the main entries that
    /// would have to go (probation's oldest first, then protected's) are
    /// looked at *before* any goes: the candidate is admitted only if it
    /// was asked more often than every one of them, and otherwise it alone
    /// goes. So a large value evicts several small ones only by out-counting
    /// each, and a candidate never evicts some victims and then loses to
    /// the next.
    fn admit(&mut self, candidate: u32) {
        while self.bytes() > self.budget && self.hot_goes_first() {
            match self.table.oldest(List::Hot) {
                Some(victim) => self.evict(victim),
                None => break,
            }
        }
        if self.bytes() <= self.budget {
            return;
        }
        let excess = self.bytes() - self.budget;
        let count = |slot| self.table.key(slot).map_or(0, |k| self.sketch.estimate(k));
        let wanted = count(candidate);
        let mut freed = 0;
        let mut earned = false;
        'lists: for list in [List::Probation, List::Protected] {
            let mut at = self.table.oldest(list);
            while let Some(victim) = at {
                if victim != candidate {
                    if count(victim) >= wanted {
                        break 'lists;
                    }
                    freed += self.table.cost(victim);
                    if freed >= excess {
                        earned = true;
                        break 'lists;
                    }
                }
                at = self.table.newer(victim);
            }
        }
        if !earned {
            self.evict(candidate);
            return;
        }
        self.evict_while_over(&[List::Probation, List::Protected], Some(candidate));
    }

    /// Evicts while over budget by groupcache's rule: hot's oldest while hot
    /// is over its share, else the oldest entry of the first of `lists`
    /// that has one (`spared` excepted).
    fn evict_while_over(&mut self, lists: &[List], spared: Option<u32>) {
        while self.bytes() > self.budget {
            let victim = if self.hot_goes_first() {
                self.table.oldest(List::Hot)
            } else {
                lists
                    .iter()
                    .find_map(|&list| self.table.oldest(list).filter(|&v| Some(v) != spared))
            };
            match victim {
                Some(victim) => self.evict(victim),
                None => break,
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
            // One promotion overflows by one entry; a larger overflow (the
            // share just moved) is the next insert's to settle.
            demote_protected(table, protected);
        }
        List::Hot => {}
    }
}

/// Moves protected's oldest entries to probation while protected holds
/// more than `protected` bytes (after a promotion, or when the window
/// grew), at most [`MOVES_PER_CHANGE`] of them; returns whether protected
/// is within its share.
fn demote_protected(table: &mut Table, protected: u64) -> bool {
    for _ in 0..MOVES_PER_CHANGE {
        if table.bytes(List::Protected) <= protected {
            return true;
        }
        match table.oldest(List::Protected) {
            Some(oldest) => table.move_to(oldest, List::Probation),
            None => return true,
        }
    }
    table.bytes(List::Protected) <= protected
}
