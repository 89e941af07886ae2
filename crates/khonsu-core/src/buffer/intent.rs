//! Holding a key: a committer's write intent ([`KeyIntent`], the `LOCKED`
//! bit) and reclamation's hold ([`PruneHold`], the `PRUNING` bit), both on a
//! head kept alive by a reference count.

use std::fmt;
use std::sync::Arc;

use arrow_array::RecordBatch;
use crossbeam_epoch as epoch;
use crossbeam_skiplist::base::RefEntry;

use super::TxnBuffer;
use super::chain::{Head, Pruned};
use super::state::{self, LOCKED, PRUNING};
use crate::error::{Result, StaleInstallSnafu, TimestampOutOfRangeSnafu};
use crate::{Key, Pins, Timestamp, VersionedValue};

/// Versions below the newest a committer looks at when it prunes the key
/// it installed (an open snapshot may pin a long history; what is deeper is
/// left to deferred reclamation, which walks further).
const COMMIT_WALK_LIMIT: usize = 8;

/// A key's head whose skiplist node is kept alive by a reference count
/// rather than an epoch guard, for holders (write intents) that live
/// across storage writes and waits. The count is released on drop.
pub(super) struct CountedHead<'a>(Option<RefEntry<'a, Key, Head>>);

impl<'a> CountedHead<'a> {
    pub(super) fn new(entry: RefEntry<'a, Key, Head>) -> Self {
        Self(Some(entry))
    }

    fn entry(&self) -> &RefEntry<'a, Key, Head> {
        match &self.0 {
            Some(entry) => entry,
            // Only `drop` empties it.
            None => unreachable!("a counted head is used after its release"),
        }
    }

    pub(super) fn key(&self) -> &Key {
        self.entry().key()
    }

    pub(super) fn head(&self) -> &Head {
        self.entry().value()
    }

    /// Marks the head dead and unlinks it from the skiplist (it stays valid
    /// while counted). The caller holds the key, so no committer is between
    /// taking it and installing; lockers that meet `DEAD` look the key up
    /// again.
    ///
    /// The head's versions are let go here, in this thread, not when the
    /// skiplist frees the head: that happens in whichever thread next
    /// collects the epoch's garbage — possibly while a thread exits, after
    /// `sdd`'s thread-local collector is gone, where releasing a version
    /// would panic in a thread-local destructor and abort the process.
    /// (Only a tombstone is left when a key's head goes; a reader still
    /// holding the head finds no version, which reads as absent too.)
    fn unlink(&self) {
        state::mark_dead(&self.head().word);
        self.head().let_go_of_versions();
        self.entry().remove(&epoch::pin());
    }
}

impl Drop for CountedHead<'_> {
    fn drop(&mut self) {
        if let Some(entry) = self.0.take() {
            // Pins only if this was the last reference (the node is freed).
            entry.release_with_pin(epoch::pin);
        }
    }
}

impl fmt::Debug for CountedHead<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.0 {
            Some(entry) => f.debug_tuple("CountedHead").field(entry.key()).finish(),
            None => f.write_str("CountedHead(released)"),
        }
    }
}

/// A held write intent on one key.
///
/// While it is held no other committer can install a version of the key.
/// Finish it with [`install`](Self::install), [`finish`](Self::finish) or
/// [`release`](Self::release); dropping it releases it unchanged.
#[derive(Debug)]
#[must_use = "an intent blocks other writers of the key until released"]
pub struct KeyIntent<'a> {
    pub(super) buffer: &'a TxnBuffer,
    pub(super) entry: CountedHead<'a>,
    pub(super) latest_ts: Timestamp,
    /// Whether this intent pushed a version (`finish` prunes below it).
    pub(super) installed: bool,
    pub(super) finished: bool,
}

impl<'a> KeyIntent<'a> {
    /// The key this intent is on.
    #[must_use]
    pub fn key(&self) -> &Key {
        self.entry.key()
    }

    /// Commit timestamp of the key's newest committed version (stable while
    /// the intent is held; `0` if the key has none).
    #[must_use]
    pub fn latest_ts(&self) -> Timestamp {
        self.latest_ts
    }

    /// The key's newest committed version.
    #[must_use]
    pub fn latest(&self) -> VersionedValue {
        self.entry.head().read_at(Timestamp::MAX)
    }

    /// Installs a version committed at `ts` (`None`: a tombstone), prunes
    /// what `pins` allow and releases the intent:
    /// [`insert_version`](Self::insert_version) then [`finish`](Self::finish).
    ///
    /// # Errors
    /// As [`insert_version`](Self::insert_version); nothing is installed and
    /// the intent is released.
    pub fn install(
        mut self,
        ts: Timestamp,
        value: Option<Arc<RecordBatch>>,
        pins: &Pins,
    ) -> Result<()> {
        self.insert_version(ts, value)?;
        self.finish(pins);
        Ok(())
    }

    /// Whether [`insert_version`](Self::insert_version) at `ts` would be
    /// accepted. A committer installing several keys checks them all first,
    /// so an error cannot leave part of a commit installed.
    ///
    /// # Errors
    /// As [`insert_version`](Self::insert_version).
    pub fn check_install(&self, ts: Timestamp) -> Result<()> {
        snafu::ensure!(
            (1..=crate::MAX_TIMESTAMP).contains(&ts),
            TimestampOutOfRangeSnafu { ts }
        );
        snafu::ensure!(
            ts > self.latest_ts,
            StaleInstallSnafu {
                key: self.key().clone(),
                ts,
                latest: self.latest_ts,
            }
        );
        Ok(())
    }

    /// Pushes a version committed at `ts` (`None`: a tombstone) on the
    /// key's chain and keeps the intent.
    ///
    /// # Errors
    /// * [`Error::TimestampOutOfRange`](crate::Error::TimestampOutOfRange)
    ///   when `ts` is 0 or above [`MAX_TIMESTAMP`](crate::MAX_TIMESTAMP);
    /// * [`Error::StaleInstall`](crate::Error::StaleInstall) when `ts` is
    ///   not above the key's newest version (a chain is newest first).
    ///
    /// Nothing is inserted on error.
    pub fn insert_version(&mut self, ts: Timestamp, value: Option<Arc<RecordBatch>>) -> Result<()> {
        self.check_install(ts)?;
        let covered = self.entry.head().push(ts, value);
        self.buffer
            .tally
            .version_pushed(covered, self.latest_ts == 0);
        // From here on the key has a version: never treat it as an aborted
        // insert (even if something below unwinds).
        self.latest_ts = ts;
        self.installed = true;
        Ok(())
    }

    /// Prunes, below the version pushed by
    /// [`insert_version`](Self::insert_version) (if any), what `pins` allow
    /// (a bounded walk), queues the key for a later pass if more may become
    /// reclaimable, and releases the intent.
    ///
    /// A committer calls it *before* publishing its timestamp: once the
    /// commit is visible, no transaction whose snapshot contains it may
    /// find the key locked (validators would abort on the lock, and
    /// fail-fast writers on a conflict that is not one).
    pub fn finish(mut self, pins: &Pins) {
        if self.installed {
            let pruned = self
                .entry
                .head()
                .prune(pins, COMMIT_WALK_LIMIT, &self.buffer.tally);
            if pruned.revisit() {
                self.buffer.enqueue_head(&self.entry, pins.seq);
            }
        }
        self.finish_without_install();
    }

    /// Releases the intent after [`insert_version`](Self::insert_version)
    /// *without* pruning, and returns the key for the committer to prune
    /// once its commit is published ([`Installed::prune`]); `None` when
    /// nothing was installed (the intent is just released).
    ///
    /// This is the commit path's split of [`finish`](Self::finish): the
    /// intent goes before the publish (a transaction whose snapshot
    /// contains the commit must not find the key locked), and pruning — a
    /// walk, and now and then a scan of the snapshot registry — waits until
    /// after it, outside the window in which later commits wait to publish
    /// in timestamp order. Pruned then, with pins taken after the publish,
    /// the version the commit covered goes at once unless a snapshot reads
    /// it.
    #[must_use = "an installed key is pruned once the commit is published"]
    pub fn release_installed(mut self) -> Option<Installed<'a>> {
        let installed = self.installed;
        self.finish_without_install();
        if !installed {
            return None;
        }
        let entry = std::mem::replace(&mut self.entry, CountedHead(None));
        Some(Installed {
            buffer: self.buffer,
            entry,
        })
    }

    /// Releases the intent without installing anything. A head this intent
    /// created for a key that never had a version is unlinked again, so
    /// aborted inserts leave nothing behind.
    pub fn release(mut self) {
        self.finish_without_install();
    }

    fn finish_without_install(&mut self) {
        if self.latest_ts == 0 {
            self.entry.unlink();
        } else {
            state::release(&self.entry.head().word, LOCKED, self.latest_ts);
        }
        self.finished = true;
    }
}

impl Drop for KeyIntent<'_> {
    fn drop(&mut self) {
        if !self.finished {
            self.finish_without_install();
        }
        // Then `entry` drops its reference to the head.
    }
}

/// A key a committer installed a version of and released
/// ([`KeyIntent::release_installed`]), still to be pruned.
///
/// It holds the key's head (a reference count), not the key: dropping it
/// without [`prune`](Self::prune) leaves the versions to the key's next
/// commit, the deferred queue or a sweep.
#[derive(Debug)]
#[must_use = "prune it once the commit is published"]
pub struct Installed<'a> {
    buffer: &'a TxnBuffer,
    entry: CountedHead<'a>,
}

impl Installed<'_> {
    /// Prunes what `pins` allow below the key's newest version (a bounded
    /// walk) and queues the key if a later pass may reclaim more. If
    /// another committer or a reclaimer holds the key by now, it is left to
    /// them (a committer prunes what it installs) and queued.
    pub fn prune(self, pins: &Pins) {
        let head = self.entry.head();
        let state::Taken::Yes(latest_ts) = state::take(&head.word, PRUNING) else {
            self.buffer.enqueue_head(&self.entry, pins.seq);
            return;
        };
        let hold = PruneHold::new(self.entry, latest_ts);
        let pruned = hold.prune(pins, COMMIT_WALK_LIMIT, self.buffer);
        if pruned.revisit() {
            self.buffer.enqueue_head(&hold.entry, pins.seq);
        }
    }
}

/// Reclamation's hold on a key (the `PRUNING` bit): excludes committers
/// and other pruners while it unlinks versions, and is invisible to
/// validators. Released on drop.
#[derive(Debug)]
pub(super) struct PruneHold<'a> {
    pub(super) entry: CountedHead<'a>,
    pub(super) latest_ts: Timestamp,
    released: bool,
}

impl<'a> PruneHold<'a> {
    pub(super) fn new(entry: CountedHead<'a>, latest_ts: Timestamp) -> Self {
        Self {
            entry,
            latest_ts,
            released: false,
        }
    }

    /// Prunes the key's chain (see `Head::prune`).
    pub(super) fn prune(&self, pins: &Pins, walk_limit: usize, buffer: &TxnBuffer) -> Pruned {
        self.entry.head().prune(pins, walk_limit, &buffer.tally)
    }

    /// Unlinks the key altogether: only a tombstone is left and no open
    /// transaction predates it.
    pub(super) fn unlink_head(mut self, buffer: &TxnBuffer) {
        let left = self.entry.head().version_count();
        buffer.tally.key_unlinked(left);
        self.entry.unlink();
        self.released = true;
    }
}

impl Drop for PruneHold<'_> {
    fn drop(&mut self) {
        if !self.released {
            state::release(&self.entry.head().word, PRUNING, self.latest_ts);
        }
    }
}
