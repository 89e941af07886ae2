//! Range walks over the keys: snapshot scans and validators' walks over
//! the intent states of a range, under a re-pinned epoch guard.

use std::ops::{Bound, ControlFlow};
use std::sync::Arc;

use arrow_array::RecordBatch;
use crossbeam_epoch as epoch;

use super::chain::Head;
use super::state::{self, IntentState};
use super::{Overwritten, TxnBuffer};
use crate::{Key, Timestamp};

/// Heads a range walk visits under one epoch guard before it re-pins.
pub(super) const HEADS_PER_PIN: usize = 1024;

impl TxnBuffer {
    /// Every key in `range` with a live value at snapshot `ts`, in key order.
    ///
    /// One ordered walk over the keys; per key, the first version of its
    /// chain at or below `ts` is the visible one.
    #[must_use]
    pub fn scan_at(
        &self,
        start: Bound<&Key>,
        end: Bound<&Key>,
        ts: Timestamp,
    ) -> Vec<(Key, Arc<RecordBatch>)> {
        let mut out = Vec::new();
        let _ = self.walk_heads::<()>(start, end, |key, head| {
            if let Some(batch) = head.read_at(ts).value {
                out.push((key.clone(), batch));
            }
            ControlFlow::Continue(())
        });
        out
    }

    /// Up to `limit` keys of a range with a live value at snapshot `ts`,
    /// from the start of the range (or from its end, in descending key
    /// order, when `reverse`): one page of a streaming scan, walked under
    /// one epoch guard.
    #[must_use]
    pub fn scan_page_at(
        &self,
        start: Bound<&Key>,
        end: Bound<&Key>,
        ts: Timestamp,
        limit: usize,
        reverse: bool,
    ) -> Vec<(Key, Arc<RecordBatch>)> {
        let mut out = Vec::with_capacity(limit.min(HEADS_PER_PIN));
        if limit == 0 {
            return out;
        }
        let guard = &epoch::pin();
        let mut visit = |key: &Key, head: &Head| {
            if let Some(batch) = head.read_at(ts).value {
                out.push((key.clone(), batch));
            }
            out.len() < limit
        };
        let range = self.heads.range::<Key, _>((start, end), guard);
        if reverse {
            for entry in range.rev() {
                if !visit(entry.key(), entry.value()) {
                    break;
                }
            }
        } else {
            for entry in range {
                if !visit(entry.key(), entry.value()) {
                    break;
                }
            }
        }
        out
    }

    /// Visits the heads of a range in key order until `visit` breaks.
    ///
    /// Each stretch of [`HEADS_PER_PIN`] heads is walked under one epoch
    /// guard; the walk then re-pins and resumes after the last key it
    /// visited, so a long scan does not hold back reclamation in the
    /// process-wide collector (which every `crossbeam-epoch` structure
    /// shares) for its whole length.
    pub(super) fn walk_heads<B>(
        &self,
        start: Bound<&Key>,
        end: Bound<&Key>,
        mut visit: impl FnMut(&Key, &Head) -> ControlFlow<B>,
    ) -> ControlFlow<B> {
        let mut resume: Option<Key> = None;
        loop {
            let guard = &epoch::pin();
            let from = resume.as_ref().map_or(start, Bound::Excluded);
            let mut stopped_at = None;
            for (seen, entry) in self.heads.range::<Key, _>((from, end), guard).enumerate() {
                visit(entry.key(), entry.value())?;
                if seen + 1 == HEADS_PER_PIN {
                    stopped_at = Some(entry.key().clone());
                    break;
                }
            }
            match stopped_at {
                Some(key) => resume = Some(key),
                None => return ControlFlow::Continue(()),
            }
        }
    }

    /// Visits the intent state of every key in a range, in key order, until
    /// `visit` breaks (validators' phantom checks; the load is pair 1 of the
    /// state word's memory-ordering contract).
    pub fn for_each_intent<B>(
        &self,
        start: Bound<&Key>,
        end: Bound<&Key>,
        mut visit: impl FnMut(&Key, IntentState) -> ControlFlow<B>,
    ) -> ControlFlow<B> {
        self.walk_heads(start, end, |key, head| {
            visit(key, IntentState::from_word(state::load(&head.word)))
        })
    }

    /// Visits every key of a range that changed after `ts` or whose intent
    /// is held ([`TxnBuffer::overwritten_after`]), in key order, until
    /// `visit` breaks.
    pub fn for_each_overwritten<B>(
        &self,
        start: Bound<&Key>,
        end: Bound<&Key>,
        ts: Timestamp,
        mut visit: impl FnMut(&Key, Overwritten) -> ControlFlow<B>,
    ) -> ControlFlow<B> {
        self.walk_heads(start, end, |key, head| match Overwritten::of(head, ts) {
            Some(changed) => visit(key, changed),
            None => ControlFlow::Continue(()),
        })
    }
}
