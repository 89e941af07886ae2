//! Randomized history checker: several threads run random transactions against one database
//! while long-lived snapshots stay open, a thread collects garbage in a loop and the storage
//! fails now and then; every transaction's history is recorded, and afterwards the committed
//! writes are replayed in commit-timestamp order, every observation is checked against the
//! replay, and the dependency graph of the committed transactions is checked for cycles
//! (`khonsu_tests::dsg`).
//!
//! # The workload
//!
//! [`WORKERS`] threads each run `KHONSU_HISTORY_TXNS` (default [`DEFAULT_TXNS`]) transactions
//! over 18 keys — twelve short ones (`s/00`..`s/11`, four of them hot) and six of about 200
//! bytes (`l/00/xxx…`), so both the inline and the heap key paths are used. A transaction makes
//! one to five steps (one in ten makes eight to sixteen, yielding in between, so lifetimes
//! overlap): point reads, range scans (`scan` with every kind of bound, `scan_prefix`,
//! `scan_iter` with a limit, forwards or in reverse — recorded as the stretch it went
//! through), blind
//! writes, deletes, read-modify-writes, and toggles that delete a present key or insert an
//! absent one (keys come and go all the time). Each transaction picks its conflict resolution
//! (`Fail`, `Replace`, `Ignore`, `Append`) at random; one in eight is read-only (one in four of
//! those reads at a snapshot pin taken for it), one in twelve read-write ones rolls back. A value is a one-column `Int64` batch holding a write id unique
//! in the run, so every value read names the write that produced it (an `Append` holds the
//! ids of every batch it concatenated, the installing write last).
//!
//! Meanwhile long-lived read-only snapshots (at the test's level; `RepeatableRead` in the
//! `ReadCommitted` test) are opened at staggered points, read in full when opened, touched now
//! and then, and read in full again when closed; a thread calls
//! [`Khonsu::collect_garbage`] in a loop; and the database's storage is a double over
//! `MemoryStorage` (or `RedbStorage` with `KHONSU_HISTORY_STORAGE=redb`) that fails about one
//! write in [`FAIL_ONE_IN`] with `WriteFailure::NothingWritten`.
//!
//! # What is recorded
//!
//! Per transaction: its isolation level, resolution, snapshot timestamp (and the visible
//! timestamps around `start_transaction`), each read with what it returned and the visible
//! timestamps just before and after it (`read` does not report the version's commit
//! timestamp; the write id in the value names the commit that installed it), each scan with its rows (same window), each write and
//! delete, and the commit outcome: `CommitInfo` (commit timestamp, ignored, replaced, appended
//! keys), or the conflict (kind, target, the winner's timestamp if named), or the storage
//! failure (with the commit timestamp it would have had), or a rollback. The storage double
//! records the mutations of every commit it wrote and the commit timestamps of every write
//! it failed.
//!
//! # What is checked
//!
//! The replay installs, in commit-timestamp order, each committed writer's final write of each
//! key, except keys its `CommitInfo` says were ignored; an appended key gets the replayed value
//! before it with this write's rows after. Then:
//!
//! 1. **Reads** (every transaction, whatever its outcome). At `RepeatableRead`/`Serializable`
//!    each read equals the replayed state at the snapshot; at `ReadCommitted` it equals the
//!    replayed state at some timestamp in the read's window `[visible before, visible after]`
//!    (so it is a committed value — never one of an aborted, failed or rolled-back commit —
//!    no older than the previous read and no newer than what was visible when it returned).
//!    A read of a key the transaction wrote returns its own write.
//! 2. **Scans** return exactly the keys live at that state with their values (no phantom, no
//!    missing key, own writes and deletes overlaid); a `ReadCommitted` scan is one state.
//! 3. **First committer wins.** No committed transaction wrote a key that another transaction
//!    installed after the write's base (the snapshot; at `ReadCommitted`, for a key it read
//!    first, its newest observation of the key) and before its commit, when that conflict is
//!    fatal: the key was read first at `RepeatableRead`/`Serializable` (a read-modify-write:
//!    the version it read was overwritten), the resolution is `Fail`, or it is an `Append`
//!    of a delete.
//! 4. **Resolutions are reported exactly when a concurrent commit happened.** Under `Replace`,
//!    `Ignore`, `Append` a written key is in `replaced`/`ignored`/`appended` iff some other
//!    transaction installed that key in the window of 3, never in the wrong list, and never
//!    for a key not written; an ignored write is not in the state (the replay leaves it out, and
//!    every later read, the final state, the storage and the recovered state must agree).
//! 5. **Serializable** (`docs/isolation.md`: serializable among `Serializable` transactions;
//!    every transaction of that test is one): the committed transactions' dependency graph —
//!    `ww` between consecutive replayed versions, `wr` from the installer of each version a
//!    read or scan saw, `rw` to the installer of the next one (every key of a scanned range)
//!    — has no cycle. With the conservative validation, moreover, each committed writer's
//!    reads and scans equal the replayed state just before its commit timestamp (serializable
//!    in commit-timestamp order). At `RepeatableRead` the graph has no G-single (a cycle with
//!    one `rw` edge; `ww` edges of blind writes a resolution let land on a concurrent commit
//!    left out). A transaction that wrote nothing and did not declare itself read-only may
//!    abort at precise `Serializable` (a dangerous structure's reader).
//! 6. **Durability and recovery.** Every acknowledged commit was written to storage with
//!    exactly the mutations the replay installs (an all-ignored commit as an empty record)
//!    before `commit` returned; no storage write holds an unacknowledged commit; every
//!    `Error::Storage` names a commit of a failed write and every commit of a failed write got
//!    one. The live database's final state (point reads and a full scan, before and after a
//!    last `collect_garbage`), the storage's recovered entries (values and commit timestamps),
//!    and a database rebuilt from the storage all equal the replayed final state, and the
//!    rebuilt clock is past every commit.
//!
//! Also: a commit timestamp is unique, above the snapshot and the visible timestamp when
//! `commit` was called, and visible once `commit` returns; a snapshot is a visible
//! timestamp of the moment it began; a transaction that wrote nothing never aborts and reports
//! its snapshot as its commit timestamp; the only errors are conflicts and injected storage
//! failures. An abort is always allowed (it is never a violation); aborts are counted by
//! kind, and by whether the replay confirms the winner the conflict names, and printed.
//!
//! # Reproducing
//!
//! The seed is printed at start (`KHONSU_HISTORY_SEED` sets it, as does `KHONSU_SEED`); it
//! fixes every transaction script and the storage's failures, not the thread interleaving, so
//! a violation is reported with everything needed to understand it without a replay: the
//! seed, the transaction's whole history, the observation, what the replay expected, and the
//! key's replayed versions around it with the transactions that wrote them.
//! `KHONSU_HISTORY_TXNS=20000` selects a longer run (ten times the default), and
//! `KHONSU_HISTORY_REPORT=<n>` prints the first `n` violations in full (default
//! [`MAX_REPORTED`]; the first of each kind come first).

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt::Write as _;
use std::ops::Bound;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use arrow_array::RecordBatch;
use khonsu::prelude::*;
use khonsu::storage::{RecoveredState, WriteFailure, WriteGroup};
use khonsu::{ConflictTarget, SerializableValidation, Timestamp};
use khonsu_tests::dsg::{self, Edge, Graph};
use khonsu_tests::{RESOLUTIONS, Rng, batch_of, lock, must, ok, range_contains, values};

/// Worker threads running random transactions (besides the garbage collector).
const WORKERS: usize = 3;
/// Transactions per worker unless `KHONSU_HISTORY_TXNS` says otherwise.
const DEFAULT_TXNS: usize = 2_000;
/// Short keys `s/00`.. (the first [`HOT_KEYS`] are picked most often).
const SHORT_KEYS: usize = 12;
/// Short keys that get most of the traffic, so that transactions conflict.
const HOT_KEYS: usize = 4;
/// Long keys `l/00/xxx…`.
const LONG_KEYS: usize = 6;
/// Length of a long key in bytes.
const LONG_KEY_LEN: usize = 200;
/// About one storage write in this many fails (nothing written).
const FAIL_ONE_IN: u64 = 12;
/// Violations reported in full (the rest are counted).
const MAX_REPORTED: usize = 10;
/// Write ids of worker `w` start at `(w + 1) * ID_STRIDE`.
const ID_STRIDE: i64 = 1_000_000_000_000;

/// A key's value as the checker sees it: the write ids in the batch, or `None` when absent.
type Val = Option<Vec<i64>>;

// ---------------------------------------------------------------------------------------------
// Configuration

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum StorageKind {
    Memory,
    Redb,
}

#[derive(Clone, Copy, Debug)]
struct Config {
    seed: u64,
    txns: usize,
    storage: StorageKind,
}

fn env_u64(name: &str) -> Option<u64> {
    std::env::var(name).ok().and_then(|s| s.trim().parse().ok())
}

fn config(test: &str) -> Config {
    let seed = env_u64("KHONSU_HISTORY_SEED")
        .or_else(|| env_u64("KHONSU_SEED"))
        .unwrap_or_else(|| {
            SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0x9E37_79B9_7F4A_7C15, |d| {
                    d.as_secs() ^ u64::from(d.subsec_nanos()).rotate_left(32)
                })
        });
    let txns = env_u64("KHONSU_HISTORY_TXNS")
        .and_then(|n| usize::try_from(n).ok())
        .filter(|&n| n > 0)
        .unwrap_or(DEFAULT_TXNS);
    let storage = match std::env::var("KHONSU_HISTORY_STORAGE").as_deref() {
        Ok("redb") => StorageKind::Redb,
        _ => StorageKind::Memory,
    };
    eprintln!(
        "{test}: seed = {seed}, {WORKERS} workers x {txns} transactions, {storage:?} storage \
         (replay with KHONSU_HISTORY_SEED={seed}; longer: KHONSU_HISTORY_TXNS=20000; \
         KHONSU_HISTORY_STORAGE=redb)"
    );
    Config {
        seed,
        txns,
        storage,
    }
}

// ---------------------------------------------------------------------------------------------
// Keys and scans

/// The run's keys, by index; scans and conflicts name keys, the records use indices.
struct KeySpace {
    keys: Vec<Key>,
    index: BTreeMap<Key, usize>,
    /// Key indices in key (byte) order, the order scans return.
    sorted: Vec<usize>,
}

impl KeySpace {
    fn new() -> Self {
        let mut keys: Vec<Key> = (0..SHORT_KEYS)
            .map(|i| Key::from(format!("s/{i:02}")))
            .collect();
        for i in 0..LONG_KEYS {
            let mut name = format!("l/{i:02}/");
            while name.len() < LONG_KEY_LEN {
                name.push('x');
            }
            keys.push(Key::from(name));
        }
        let index: BTreeMap<Key, usize> = keys
            .iter()
            .enumerate()
            .map(|(i, k)| (k.clone(), i))
            .collect();
        let sorted = index.values().copied().collect();
        Self {
            keys,
            index,
            sorted,
        }
    }

    fn len(&self) -> usize {
        self.keys.len()
    }

    fn key(&self, i: usize) -> Key {
        self.keys.get(i).cloned().unwrap_or_else(|| Key::from("?"))
    }

    fn name_of(&self, key: &Key) -> String {
        self.index.get(key).map_or_else(
            || format!("{key:?} (not a key of the run)"),
            |&i| key_name(i),
        )
    }

    fn pick_scan(&self, rng: &mut Rng) -> ScanSpec {
        let prefix = |p: &'static str| ScanSpec {
            start: Bound::Included(Key::from(p)),
            end: Bound::Unbounded,
            prefix: Some(p),
        };
        match rng.below(8) {
            0 => prefix("s/"),
            1 => prefix("l/"),
            2 => prefix("s/0"),
            3 => ScanSpec {
                start: Bound::Unbounded,
                end: Bound::Unbounded,
                prefix: None,
            },
            4 => {
                let (a, b) = rng.two_distinct(SHORT_KEYS);
                ScanSpec {
                    start: Bound::Included(self.key(a.min(b))),
                    end: Bound::Excluded(self.key(a.max(b))),
                    prefix: None,
                }
            }
            5 => {
                let (a, b) = (rng.index(self.len()), rng.index(self.len()));
                let (a, b) = (self.key(a), self.key(b));
                ScanSpec {
                    start: Bound::Excluded(a.clone().min(b.clone())),
                    end: Bound::Included(a.max(b)),
                    prefix: None,
                }
            }
            6 => ScanSpec {
                start: Bound::Excluded(self.key(rng.index(self.len()))),
                end: Bound::Unbounded,
                prefix: None,
            },
            _ => {
                // Inverted: yields nothing.
                let (a, b) = rng.two_distinct(self.len());
                let (a, b) = (self.key(a), self.key(b));
                ScanSpec {
                    start: Bound::Included(a.clone().max(b.clone())),
                    end: Bound::Excluded(a.min(b)),
                    prefix: None,
                }
            }
        }
    }
}

/// A key's short display name: long keys are abbreviated.
fn key_name(i: usize) -> String {
    if i < SHORT_KEYS {
        format!("s/{i:02}")
    } else {
        format!("l/{:02}/x…({LONG_KEY_LEN} B)", i - SHORT_KEYS)
    }
}

/// A random key index, hot keys most often.
fn pick_key(rng: &mut Rng) -> usize {
    match rng.below(100) {
        0..45 => rng.index(HOT_KEYS),
        45..75 => rng.index(SHORT_KEYS),
        _ => SHORT_KEYS + rng.index(LONG_KEYS),
    }
}

/// A scanned range: `scan_prefix(prefix)` when `prefix` is set, else `scan((start, end))`.
#[derive(Clone, Debug)]
struct ScanSpec {
    start: Bound<Key>,
    end: Bound<Key>,
    prefix: Option<&'static str>,
}

impl ScanSpec {
    fn contains(&self, key: &Key) -> bool {
        match self.prefix {
            Some(p) => key.as_ref().starts_with(p.as_bytes()),
            None => range_contains(&self.start, &self.end, key),
        }
    }

    fn show(&self, keys: &KeySpace) -> String {
        if let Some(p) = self.prefix {
            return format!("scan_prefix({p:?})");
        }
        let bound = |b: &Bound<Key>, open: &str, closed: &str| match b {
            Bound::Included(k) => format!("{closed}{}", keys.name_of(k)),
            Bound::Excluded(k) => format!("{open}{}", keys.name_of(k)),
            Bound::Unbounded => "∞".to_owned(),
        };
        format!(
            "scan({} .. {})",
            bound(&self.start, "(", "["),
            bound(&self.end, ")", "]")
        )
    }
}

// ---------------------------------------------------------------------------------------------
// The recorded history

#[derive(Clone, Debug)]
enum Op {
    /// A point read, with the visible timestamps just before and after it.
    Read {
        key: usize,
        lo: Timestamp,
        hi: Timestamp,
        got: Val,
    },
    /// A scan, with the visible timestamps just before and after it.
    Scan {
        spec: ScanSpec,
        lo: Timestamp,
        hi: Timestamp,
        got: Vec<(Key, Vec<i64>)>,
    },
    Write {
        key: usize,
        id: i64,
    },
    Delete {
        key: usize,
    },
}

#[derive(Clone, Debug)]
enum Outcome {
    Open,
    Committed {
        info: CommitInfo,
        /// Visible timestamps just before `commit` was called and just after it returned.
        before: Timestamp,
        after: Timestamp,
    },
    Conflict {
        kind: ConflictKind,
        target: ConflictTarget,
        other_commit_ts: Option<Timestamp>,
    },
    StorageFailed {
        commit_ts: Timestamp,
    },
    OtherError(String),
    RolledBack,
}

#[derive(Clone, Debug)]
struct Txn {
    name: String,
    id: u64,
    isolation: TransactionIsolation,
    resolution: ConflictResolution,
    read_only: bool,
    snapshot_ts: Timestamp,
    /// Visible timestamps just before and after `start_transaction`.
    begin: (Timestamp, Timestamp),
    ops: Vec<Op>,
    outcome: Outcome,
}

impl Txn {
    fn writes(&self) -> bool {
        self.ops
            .iter()
            .any(|op| matches!(op, Op::Write { .. } | Op::Delete { .. }))
    }

    fn reads_snapshot(&self) -> bool {
        self.isolation != TransactionIsolation::ReadCommitted
    }

    fn committed(&self) -> Option<&CommitInfo> {
        match &self.outcome {
            Outcome::Committed { info, .. } => Some(info),
            _ => None,
        }
    }
}

/// A live transaction that records what it does.
struct Live<'a> {
    db: &'a Khonsu,
    keys: &'a KeySpace,
    txn: Transaction,
    rec: Txn,
}

impl<'a> Live<'a> {
    fn begin(
        db: &'a Khonsu,
        keys: &'a KeySpace,
        name: String,
        options: TransactionOptions,
    ) -> Self {
        let before = db.visible_ts();
        let txn = db.start_transaction_with(options);
        let after = db.visible_ts();
        Self::started(db, keys, name, txn, (before, after))
    }

    /// A read-only transaction at a snapshot pin taken now (`pin_snapshot`, then
    /// `SnapshotPin::start_transaction`); the pin is dropped once the transaction started.
    fn begin_pinned(db: &'a Khonsu, keys: &'a KeySpace, name: String) -> Self {
        let before = db.visible_ts();
        let pin = db.pin_snapshot();
        let after = db.visible_ts();
        let txn = pin.start_transaction();
        drop(pin);
        Self::started(db, keys, name, txn, (before, after))
    }

    /// Starts recording `txn`, begun while the visible timestamp went from `begin.0` to
    /// `begin.1`.
    fn started(
        db: &'a Khonsu,
        keys: &'a KeySpace,
        name: String,
        txn: Transaction,
        begin: (Timestamp, Timestamp),
    ) -> Self {
        let rec = Txn {
            name,
            id: txn.id(),
            isolation: txn.isolation(),
            resolution: txn.conflict_resolution(),
            read_only: txn.is_read_only(),
            snapshot_ts: txn.snapshot_ts(),
            begin,
            ops: Vec::new(),
            outcome: Outcome::Open,
        };
        Self { db, keys, txn, rec }
    }

    fn read(&mut self, key: usize) -> bool {
        let lo = self.db.visible_ts();
        let got = ok(self.txn.read(self.keys.key(key)), "read").map(|b| values(&b));
        let hi = self.db.visible_ts();
        let present = got.is_some();
        self.rec.ops.push(Op::Read { key, lo, hi, got });
        present
    }

    fn scan(&mut self, spec: ScanSpec) {
        let lo = self.db.visible_ts();
        let rows = match spec.prefix {
            Some(p) => ok(self.txn.scan_prefix(p), "scan_prefix"),
            None => ok(
                self.txn.scan((spec.start.clone(), spec.end.clone())),
                "scan",
            ),
        };
        let hi = self.db.visible_ts();
        let got = rows.iter().map(|(k, b)| (k.clone(), values(b))).collect();
        self.rec.ops.push(Op::Scan { spec, lo, hi, got });
    }

    /// A streaming scan of a range (not a prefix) yielding at most `limit` rows, forwards
    /// or in reverse; recorded as the stretch it went through (the whole range once it ran
    /// out, else up to the last row it yielded), rows in key order.
    fn scan_iter(&mut self, spec: &ScanSpec, limit: usize, reverse: bool) {
        let lo = self.db.visible_ts();
        let range = (spec.start.clone(), spec.end.clone());
        let iter = self.txn.scan_iter(range).limit(limit);
        let iter = if reverse { iter.reverse() } else { iter };
        let mut rows: Vec<(Key, Arc<RecordBatch>)> = iter.map(|row| ok(row, "scan_iter")).collect();
        let hi = self.db.visible_ts();
        let stretch = match rows.last() {
            Some((last, _)) if rows.len() == limit && reverse => ScanSpec {
                start: Bound::Included(last.clone()),
                end: spec.end.clone(),
                prefix: None,
            },
            Some((last, _)) if rows.len() == limit => ScanSpec {
                start: spec.start.clone(),
                end: Bound::Included(last.clone()),
                prefix: None,
            },
            _ => spec.clone(),
        };
        rows.sort_by(|a, b| a.0.cmp(&b.0));
        let got = rows.iter().map(|(k, b)| (k.clone(), values(b))).collect();
        self.rec.ops.push(Op::Scan {
            spec: stretch,
            lo,
            hi,
            got,
        });
    }

    fn read_everything(&mut self) {
        for key in 0..self.keys.len() {
            self.read(key);
        }
        self.scan(ScanSpec {
            start: Bound::Unbounded,
            end: Bound::Unbounded,
            prefix: None,
        });
    }

    fn write(&mut self, key: usize, id: i64) {
        ok(self.txn.write(self.keys.key(key), batch_of(&[id])), "write");
        self.rec.ops.push(Op::Write { key, id });
    }

    fn delete(&mut self, key: usize) {
        ok(self.txn.delete(self.keys.key(key)), "delete");
        self.rec.ops.push(Op::Delete { key });
    }

    fn commit(self) -> Txn {
        let Self {
            db, txn, mut rec, ..
        } = self;
        let before = db.visible_ts();
        let result = txn.commit();
        let after = db.visible_ts();
        rec.outcome = match result {
            Ok(info) => Outcome::Committed {
                info,
                before,
                after,
            },
            Err(err) => {
                if let Some(c) = err.conflict() {
                    Outcome::Conflict {
                        kind: c.kind,
                        target: c.target.clone(),
                        other_commit_ts: c.other_commit_ts,
                    }
                } else if let khonsu::Error::Storage { commit_ts, .. } = &err {
                    Outcome::StorageFailed {
                        commit_ts: *commit_ts,
                    }
                } else {
                    Outcome::OtherError(snafu::Report::from_error(err).to_string())
                }
            }
        };
        rec
    }

    fn rollback(self) -> Txn {
        let Self { txn, mut rec, .. } = self;
        txn.rollback();
        rec.outcome = Outcome::RolledBack;
        rec
    }
}

// ---------------------------------------------------------------------------------------------
// The storage double

/// Forwards to an inner storage and fails about one write in [`FAIL_ONE_IN`] (while
/// `failing`), having written nothing; records what it wrote and which commits it failed.
#[derive(Debug)]
struct FlakyStorage {
    inner: Arc<dyn Storage>,
    seed: u64,
    failing: AtomicBool,
    writes: AtomicU64,
    /// Commit timestamps of the commits carried by failed writes.
    failed: Mutex<BTreeSet<Timestamp>>,
    /// Mutations of every written commit, by commit timestamp.
    persisted: Mutex<BTreeMap<Timestamp, Vec<(Key, Val)>>>,
}

impl FlakyStorage {
    fn new(inner: Arc<dyn Storage>, seed: u64) -> Arc<Self> {
        Arc::new(Self {
            inner,
            seed,
            failing: AtomicBool::new(false),
            writes: AtomicU64::new(0),
            failed: Mutex::new(BTreeSet::new()),
            persisted: Mutex::new(BTreeMap::new()),
        })
    }
}

impl Storage for FlakyStorage {
    fn name(&self) -> &'static str {
        "flaky"
    }

    fn check_value(&self, batch: &RecordBatch) -> khonsu::storage::Result<()> {
        self.inner.check_value(batch)
    }

    fn check_key(&self, key: &[u8]) -> khonsu::storage::Result<()> {
        self.inner.check_key(key)
    }

    fn write(&self, group: WriteGroup<'_>) -> Result<(), WriteFailure> {
        let n = self.writes.fetch_add(1, Ordering::SeqCst) + 1;
        let commits: Vec<(Timestamp, Vec<(Key, Val)>)> = group
            .commits()
            .map(|c| {
                let mut seen: Vec<(Key, Val)> = c
                    .mutations
                    .iter()
                    .map(|m| match m {
                        StorageMutation::Put { key, batch, .. } => {
                            (key.clone(), Some(values(batch)))
                        }
                        StorageMutation::Delete { key } => (key.clone(), None),
                    })
                    .collect();
                seen.sort();
                (c.commit_ts, seen)
            })
            .collect();
        let doomed =
            Rng::new(self.seed ^ n.wrapping_mul(0xA24B_AED4_963E_E407)).below(FAIL_ONE_IN) == 0;
        if doomed && self.failing.load(Ordering::SeqCst) {
            lock(&self.failed).extend(commits.iter().map(|(ts, _)| *ts));
            return Err(WriteFailure::NothingWritten(
                khonsu::storage::Error::backend(format!("injected failure of storage write {n}")),
            ));
        }
        self.inner.write(group)?;
        lock(&self.persisted).extend(commits);
        Ok(())
    }

    fn recover(&self) -> khonsu::storage::Result<RecoveredState> {
        self.inner.recover()
    }
}

// ---------------------------------------------------------------------------------------------
// Running the workload

struct Ctx<'a> {
    db: &'a Khonsu,
    keys: &'a KeySpace,
    level: TransactionIsolation,
    cfg: Config,
}

impl Ctx<'_> {
    /// Options of the long-lived snapshots: read-only, at the test's level unless that level
    /// reads the latest state.
    fn snapshot_options(&self) -> TransactionOptions {
        let level = match self.level {
            TransactionIsolation::ReadCommitted => TransactionIsolation::RepeatableRead,
            other => other,
        };
        TransactionOptions::new().isolation(level).read_only(true)
    }
}

/// One random transaction named `name`, its write ids taken from `next_id`.
fn random_txn(ctx: &Ctx<'_>, rng: &mut Rng, name: String, next_id: &mut i64) -> Txn {
    let keys = ctx.keys;
    let resolution = RESOLUTIONS
        .get(rng.index(RESOLUTIONS.len()))
        .copied()
        .unwrap_or(ConflictResolution::Fail);
    let read_only = rng.below(8) == 0;
    let options = TransactionOptions::new()
        .isolation(ctx.level)
        .conflict_resolution(resolution)
        .read_only(read_only);
    // One read-only transaction in four reads at a snapshot pin.
    let mut t = if read_only && rng.below(4) == 0 {
        Live::begin_pinned(ctx.db, keys, name)
    } else {
        Live::begin(ctx.db, keys, name, options)
    };
    let steps = if rng.below(10) == 0 {
        8 + rng.index(9)
    } else {
        1 + rng.index(5)
    };
    let mut fresh = || {
        *next_id += 1;
        *next_id
    };
    for _ in 0..steps {
        let key = pick_key(rng);
        let roll = rng.below(100);
        let spec = keys.pick_scan(rng);
        let streaming = spec.prefix.is_none() && rng.below(3) == 0;
        let (limit, reverse) = (1 + rng.index(4), rng.below(2) == 0);
        if read_only {
            if roll < 70 {
                t.read(key);
            } else if streaming {
                t.scan_iter(&spec, limit, reverse);
            } else {
                t.scan(spec);
            }
        } else {
            match roll {
                0..28 => {
                    t.read(key);
                }
                28..40 if streaming => t.scan_iter(&spec, limit, reverse),
                28..40 => t.scan(spec),
                40..60 => t.write(key, fresh()),
                60..70 => t.delete(key),
                70..86 => {
                    // A read-modify-write.
                    t.read(key);
                    t.write(key, fresh());
                }
                _ => {
                    // A toggle: the key comes or goes.
                    if t.read(key) {
                        t.delete(key);
                    } else {
                        t.write(key, fresh());
                    }
                }
            }
        }
        if rng.below(6) == 0 {
            thread::yield_now();
        }
    }
    if !read_only && rng.below(12) == 0 {
        t.rollback()
    } else {
        t.commit()
    }
}

/// Worker `w`: `cfg.txns` random transactions, and the long-lived snapshots of `plans`
/// (`(open before transaction i, close before transaction j)`).
fn worker(ctx: &Ctx<'_>, w: usize, plans: &[(usize, usize)]) -> Vec<Txn> {
    let stream = (u64::from(ctx.level as u8) << 32) | u64::try_from(w).unwrap_or(0);
    let mut rng = Rng::new(ctx.cfg.seed ^ stream);
    let mut next_id = (i64::try_from(w).unwrap_or(0) + 1) * ID_STRIDE;
    let mut out = Vec::with_capacity(ctx.cfg.txns + plans.len());
    let mut open: Vec<(usize, Live<'_>)> = Vec::new();
    for seq in 0..=ctx.cfg.txns {
        let (closing, staying): (Vec<_>, Vec<_>) =
            open.into_iter().partition(|(close, _)| *close <= seq);
        open = staying;
        for (_, mut snapshot) in closing {
            snapshot.read_everything();
            out.push(snapshot.commit());
        }
        for &(at, close) in plans {
            if at == seq {
                let name = format!("w{w}/long@{seq}");
                let mut snapshot = Live::begin(ctx.db, ctx.keys, name, ctx.snapshot_options());
                snapshot.read_everything();
                open.push((close, snapshot));
            }
        }
        if seq == ctx.cfg.txns {
            break;
        }
        if seq % 16 == 7 {
            for (_, snapshot) in &mut open {
                snapshot.read(pick_key(&mut rng));
                snapshot.scan(ctx.keys.pick_scan(&mut rng));
            }
        }
        out.push(random_txn(
            ctx,
            &mut rng,
            format!("w{w}#{seq}"),
            &mut next_id,
        ));
    }
    for (_, mut snapshot) in open {
        snapshot.read_everything();
        out.push(snapshot.commit());
    }
    out
}

fn build(
    storage: Arc<dyn Storage>,
    level: TransactionIsolation,
    validation: SerializableValidation,
) -> Khonsu {
    ok(
        Khonsu::builder()
            .isolation(level)
            .conflict_resolution(ConflictResolution::Fail)
            .serializable_validation(validation)
            .storage(storage)
            .build(),
        "build the database on the flaky storage",
    )
}

/// Every key's value as a fresh transaction sees it, by point reads and by one full scan.
fn final_state(db: &Khonsu, keys: &KeySpace) -> (Vec<Val>, Vec<(Key, Vec<i64>)>) {
    let mut t = db.start_transaction_with(
        TransactionOptions::new()
            .isolation(TransactionIsolation::RepeatableRead)
            .read_only(true),
    );
    let points = (0..keys.len())
        .map(|k| ok(t.read(keys.key(k)), "final read").map(|b| values(&b)))
        .collect();
    let scan = ok(t.scan(..), "final scan")
        .iter()
        .map(|(k, b)| (k.clone(), values(b)))
        .collect();
    t.rollback();
    (points, scan)
}

/// The workers, the garbage collector and the long-lived snapshots; returns every
/// transaction's record (after `init`) and the number of `collect_garbage` calls.
fn run_workload(ctx: &Ctx<'_>, init: Txn) -> (Vec<Txn>, u64) {
    let n = ctx.cfg.txns;
    let plans: [Vec<(usize, usize)>; WORKERS] = [
        vec![(0, n / 2), (3 * n / 4, n)],
        vec![(n / 4, 3 * n / 4)],
        vec![(n / 2, n)],
    ];
    let done = AtomicBool::new(false);
    thread::scope(|s| {
        let gc = s.spawn(|| {
            let mut calls = 0_u64;
            while !done.load(Ordering::SeqCst) {
                ctx.db.collect_garbage();
                calls += 1;
                thread::yield_now();
            }
            calls
        });
        let workers: Vec<_> = plans
            .iter()
            .enumerate()
            .map(|(w, plan)| s.spawn(move || worker(ctx, w, plan)))
            .collect();
        let results: Vec<_> = workers
            .into_iter()
            .map(thread::ScopedJoinHandle::join)
            .collect();
        done.store(true, Ordering::SeqCst);
        let gc_calls = gc.join();
        let mut history = vec![init];
        for result in results {
            match result {
                Ok(txns) => history.extend(txns),
                Err(panic) => std::panic::resume_unwind(panic),
            }
        }
        match gc_calls {
            Ok(calls) => (history, calls),
            Err(panic) => std::panic::resume_unwind(panic),
        }
    })
}

/// Runs the workload at `level` and checks its history; panics with the violations found.
fn run(test: &str, level: TransactionIsolation, validation: SerializableValidation) {
    let cfg = config(test);
    let started = Instant::now();
    let keys = KeySpace::new();
    let dir = must(tempfile::tempdir(), "temp dir");
    let inner: Arc<dyn Storage> = match cfg.storage {
        StorageKind::Memory => Arc::new(MemoryStorage::new()),
        StorageKind::Redb => Arc::new(must(RedbStorage::open(dir.path()), "open redb")),
    };
    let store = FlakyStorage::new(inner, cfg.seed);
    let db = build(store.clone(), level, validation);

    // Half the keys exist at the start (written with failures off).
    let mut init = Live::begin(&db, &keys, "init".to_owned(), TransactionOptions::new());
    for k in (0..keys.len()).step_by(2) {
        init.write(k, i64::try_from(k).unwrap_or(0) + 1);
    }
    let init = init.commit();
    assert!(
        init.committed().is_some(),
        "the initial commit failed: {:?}",
        init.outcome
    );
    store.failing.store(true, Ordering::SeqCst);

    let ctx = Ctx {
        db: &db,
        keys: &keys,
        level,
        cfg,
    };
    let (history, gc_calls) = run_workload(&ctx, init);
    let ran = started.elapsed();
    store.failing.store(false, Ordering::SeqCst);

    let live = final_state(&db, &keys);
    db.collect_garbage();
    let live_after_gc = final_state(&db, &keys);
    let stats = db.stats();
    let memory = (stats.keys, stats.versions);
    drop(db);
    let failed = lock(&store.failed).clone();
    let persisted = lock(&store.persisted).clone();
    let recovered_entries = must(store.recover(), "Storage::recover");
    let rebuilt = build(store.clone(), level, validation);
    let recovered = final_state(&rebuilt, &keys);
    let mut probe = rebuilt.start_transaction();
    ok(probe.write(keys.key(0), batch_of(&[-1])), "probe write");
    let probe = ok(probe.commit(), "probe commit on the rebuilt database");

    let precise = validation == SerializableValidation::Precise;
    let checker = Checker::new(
        cfg.seed, level, precise, &keys, &history, &failed, &persisted,
    );
    checker.check_history();
    checker.check_final("final state", "the live database's final state", &live);
    checker.check_final(
        "final state",
        "the live database after collect_garbage",
        &live_after_gc,
    );
    checker.check_final("recovery", "the database rebuilt from storage", &recovered);
    checker.check_recovered_entries(&recovered_entries);
    let last = checker.last_commit_ts();
    if probe.commit_ts <= last {
        checker.global(
            "recovery",
            &format!(
                "the rebuilt database's first commit got timestamp {} <= {last}, the newest \
             acknowledged commit: the clock was not recovered",
                probe.commit_ts
            ),
        );
    }

    let summary = checker.summary(&history, gc_calls, memory, ran);
    eprintln!("{test}: {summary}");
    checker.finish(test);
    drop(dir);
}

// ---------------------------------------------------------------------------------------------
// The checker

/// One replayed version of a key.
#[derive(Clone, Debug)]
struct Version {
    ts: Timestamp,
    value: Val,
    /// Index of the installing transaction in the history.
    txn: usize,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Reported {
    Ignored,
    Replaced,
    Appended,
}

/// The list a resolution reports a settled conflict in (`Fail` aborts instead).
fn reported_as(resolution: ConflictResolution) -> Option<Reported> {
    match resolution {
        ConflictResolution::Ignore => Some(Reported::Ignored),
        ConflictResolution::Replace => Some(Reported::Replaced),
        ConflictResolution::Append => Some(Reported::Appended),
        ConflictResolution::Fail => None,
    }
}

/// A transaction's final write of a key.
#[derive(Clone, Copy, Debug)]
struct FinalWrite {
    /// The id written, `None` for a delete.
    value: Option<i64>,
    /// Position of the first write of the key among the transaction's ops.
    first_op: usize,
}

fn final_writes(t: &Txn) -> BTreeMap<usize, FinalWrite> {
    let mut out: BTreeMap<usize, FinalWrite> = BTreeMap::new();
    for (o, op) in t.ops.iter().enumerate() {
        let (key, value) = match op {
            Op::Write { key, id } => (*key, Some(*id)),
            Op::Delete { key } => (*key, None),
            _ => continue,
        };
        out.entry(key)
            .and_modify(|w| w.value = value)
            .or_insert(FinalWrite { value, first_op: o });
    }
    out
}

/// The kind of a failed read or scan check: check 5 is "serializability".
fn read_kind(at: At, what: &'static str) -> &'static str {
    match (at, what) {
        (At::Reads, _) => what,
        (At::BeforeCommit(_), "read") => "serializability (read)",
        (At::BeforeCommit(_), _) => "serializability (scan)",
    }
}

/// The rule a failed read check broke.
fn rule(t: &Txn, at: At) -> String {
    match at {
        At::BeforeCommit(ts) => format!(
            "not serializable in commit order (a Serializable writer must read the state \
             just before its commit_ts {ts})"
        ),
        At::Reads if t.reads_snapshot() => {
            format!("not the state at its snapshot {}", t.snapshot_ts)
        }
        At::Reads => "not a state committed while the read ran".to_owned(),
    }
}

/// A transaction's outcome in a few words.
fn outcome_short(t: &Txn) -> String {
    match &t.outcome {
        Outcome::Open => "never finished".to_owned(),
        Outcome::Committed { info, .. } if info.read_only => {
            format!("committed read-only at {}", info.commit_ts)
        }
        Outcome::Committed { info, .. } => format!("committed at {}", info.commit_ts),
        Outcome::Conflict { kind, .. } => format!("aborted ({kind})"),
        Outcome::StorageFailed { commit_ts } => {
            format!("aborted by a failed storage write (would have been {commit_ts})")
        }
        Outcome::OtherError(_) => "failed with an unexpected error".to_owned(),
        Outcome::RolledBack => "rolled back".to_owned(),
    }
}

/// When a transaction's observations are checked: at the state its level reads from
/// (checks 1 and 2), or just before its commit timestamp (check 5).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum At {
    Reads,
    BeforeCommit(Timestamp),
}

struct Checker<'h> {
    seed: u64,
    level: TransactionIsolation,
    /// Whether `Serializable` is the precise validation: serializable by the dependency graph
    /// (check 5 by cycles), not in commit order.
    precise: bool,
    keys: &'h KeySpace,
    txns: &'h [Txn],
    failed: &'h BTreeSet<Timestamp>,
    persisted: &'h BTreeMap<Timestamp, Vec<(Key, Val)>>,
    /// Write id → (transaction, key).
    writer: HashMap<i64, (usize, usize)>,
    /// Replayed versions per key, oldest first.
    versions: Vec<Vec<Version>>,
    /// Committed writers' indices in commit-timestamp order.
    order: Vec<usize>,
    /// Violations found, each with its kind (for the summary).
    violations: RefCell<Vec<(&'static str, String)>>,
}

impl<'h> Checker<'h> {
    fn new(
        seed: u64,
        level: TransactionIsolation,
        precise: bool,
        keys: &'h KeySpace,
        txns: &'h [Txn],
        failed: &'h BTreeSet<Timestamp>,
        persisted: &'h BTreeMap<Timestamp, Vec<(Key, Val)>>,
    ) -> Self {
        let mut writer = HashMap::new();
        for (i, t) in txns.iter().enumerate() {
            for op in &t.ops {
                if let Op::Write { key, id } = op {
                    let earlier = writer.insert(*id, (i, *key));
                    assert!(earlier.is_none(), "test bug: write id {id} used twice");
                }
            }
        }
        let mut checker = Self {
            seed,
            level,
            precise,
            keys,
            txns,
            failed,
            persisted,
            writer,
            versions: vec![Vec::new(); keys.len()],
            order: Vec::new(),
            violations: RefCell::new(Vec::new()),
        };
        checker.replay();
        checker
    }

    fn txn(&self, i: usize) -> &'h Txn {
        let txns: &'h [Txn] = self.txns;
        match txns.get(i) {
            Some(t) => t,
            None => panic!("test bug: no transaction {i}"),
        }
    }

    fn versions_of(&self, key: usize) -> &[Version] {
        self.versions.get(key).map_or(&[], Vec::as_slice)
    }

    /// The newest replayed version of `key` at or below `ts`.
    fn version_at(&self, key: usize, ts: Timestamp) -> Option<&Version> {
        let vs = self.versions_of(key);
        let n = vs.partition_point(|v| v.ts <= ts);
        n.checked_sub(1).and_then(|i| vs.get(i))
    }

    fn value_at(&self, key: usize, ts: Timestamp) -> Val {
        self.version_at(key, ts).and_then(|v| v.value.clone())
    }

    /// The replayed state of the keys `spec` covers at `ts`, with `own` writes overlaid, in
    /// key order.
    fn scan_at(
        &self,
        spec: &ScanSpec,
        ts: Timestamp,
        own: &BTreeMap<usize, Option<i64>>,
    ) -> Vec<(Key, Vec<i64>)> {
        self.keys
            .sorted
            .iter()
            .filter(|&&k| spec.contains(&self.keys.key(k)))
            .filter_map(|&k| {
                let value = match own.get(&k) {
                    Some(staged) => staged.map(|id| vec![id]),
                    None => self.value_at(k, ts),
                };
                value.map(|v| (self.keys.key(k), v))
            })
            .collect()
    }

    /// The timestamps in `[lo, hi]` at which the state of `keys` can differ: `lo` and every
    /// replayed version of them in `(lo, hi]`.
    fn change_points(
        &self,
        keys: impl Iterator<Item = usize>,
        lo: Timestamp,
        hi: Timestamp,
    ) -> Vec<Timestamp> {
        let mut points = vec![lo];
        for k in keys {
            points.extend(
                self.versions_of(k)
                    .iter()
                    .map(|v| v.ts)
                    .filter(|&ts| ts > lo && ts <= hi),
            );
        }
        points.sort_unstable();
        points.dedup();
        points
    }

    // -- describing --------------------------------------------------------------------------

    fn origin(&self, id: i64) -> String {
        match self.writer.get(&id) {
            Some(&(i, key)) => {
                let t = self.txn(i);
                format!(
                    "{id} (written to {} by {}, {})",
                    key_name(key),
                    t.name,
                    outcome_short(t)
                )
            }
            None => format!("{id} (written by nobody)"),
        }
    }

    fn show_val(&self, val: &Val) -> String {
        match val {
            None => "absent".to_owned(),
            Some(ids) => {
                let shown: Vec<String> = ids.iter().map(|&id| self.origin(id)).collect();
                format!("[{}]", shown.join(", "))
            }
        }
    }

    fn show_rows(&self, rows: &[(Key, Vec<i64>)]) -> String {
        let shown: Vec<String> = rows
            .iter()
            .map(|(k, ids)| format!("{}={ids:?}", self.keys.name_of(k)))
            .collect();
        format!("{{{}}}", shown.join(", "))
    }

    /// The replayed versions of `key` around `[lo, hi]`.
    fn history(&self, key: usize, lo: Timestamp, hi: Timestamp) -> String {
        let vs = self.versions_of(key);
        let first = vs.partition_point(|v| v.ts < lo).saturating_sub(3);
        let last = (vs.partition_point(|v| v.ts <= hi) + 3).min(vs.len());
        let mut out = format!("    replayed versions of {}:", key_name(key));
        if first > 0 {
            out.push_str(" …");
        }
        for v in vs.get(first..last).unwrap_or(&[]) {
            let value = match &v.value {
                None => "tombstone".to_owned(),
                Some(ids) => format!("{ids:?}"),
            };
            let _ = write!(
                out,
                "\n      ts {}: {value} by {}",
                v.ts,
                self.txn(v.txn).name
            );
        }
        if vs.is_empty() {
            out.push_str(" none");
        } else if last < vs.len() {
            out.push_str("\n      …");
        }
        out
    }

    fn dump(&self, i: usize) -> String {
        let t = self.txn(i);
        let mut out = format!(
            "    {} (id {}): {:?}, {:?}{}, snapshot {} (visible {}..{} at begin), {}",
            t.name,
            t.id,
            t.isolation,
            t.resolution,
            if t.read_only { ", read-only" } else { "" },
            t.snapshot_ts,
            t.begin.0,
            t.begin.1,
            outcome_short(t),
        );
        match &t.outcome {
            Outcome::Committed {
                info,
                before,
                after,
            } => {
                let names = |ks: &[Key]| -> Vec<String> {
                    ks.iter().map(|k| self.keys.name_of(k)).collect()
                };
                let _ = write!(
                    out,
                    " (visible {before} before commit, {after} after); ignored {:?}, replaced \
                     {:?}, appended {:?}",
                    names(&info.ignored),
                    names(&info.replaced),
                    names(&info.appended)
                );
            }
            Outcome::Conflict {
                kind,
                target,
                other_commit_ts,
            } => {
                let _ = write!(
                    out,
                    ": {kind} on {}, winner {other_commit_ts:?}",
                    self.show_target(target)
                );
            }
            Outcome::OtherError(report) => {
                let _ = write!(out, ": {report}");
            }
            _ => {}
        }
        for (o, op) in t.ops.iter().enumerate() {
            let line = match op {
                Op::Read { key, lo, hi, got } => format!(
                    "read {} (visible {lo}..{hi}) -> {}",
                    key_name(*key),
                    self.show_val(got)
                ),
                Op::Scan { spec, lo, hi, got } => format!(
                    "{} (visible {lo}..{hi}) -> {}",
                    spec.show(self.keys),
                    self.show_rows(got)
                ),
                Op::Write { key, id } => format!("write {} = {id}", key_name(*key)),
                Op::Delete { key } => format!("delete {}", key_name(*key)),
            };
            let _ = write!(out, "\n      #{o} {line}");
        }
        out
    }

    fn show_target(&self, target: &ConflictTarget) -> String {
        match target {
            ConflictTarget::Key(k) => self.keys.name_of(k),
            ConflictTarget::Range { start, end } => ScanSpec {
                start: start.clone(),
                end: end.clone(),
                prefix: None,
            }
            .show(self.keys),
        }
    }

    fn violation(&self, kind: &'static str, i: usize, what: &str, detail: &str) {
        let t = self.txn(i);
        let mut text = format!("{kind}: {} ({:?} test): {what}", t.name, self.level);
        if !detail.is_empty() {
            text.push('\n');
            text.push_str(detail);
        }
        text.push_str("\n  the transaction:\n");
        text.push_str(&self.dump(i));
        self.violations.borrow_mut().push((kind, text));
    }

    fn global(&self, kind: &'static str, what: &str) {
        let text = format!("{kind}: ({:?} test) {what}", self.level);
        self.violations.borrow_mut().push((kind, text));
    }

    // -- the replay --------------------------------------------------------------------------

    /// What `CommitInfo` reports per key of the run (unknown keys are reported by
    /// [`install`](Self::install)).
    fn reported(&self, i: usize) -> BTreeMap<usize, Vec<Reported>> {
        let mut out: BTreeMap<usize, Vec<Reported>> = BTreeMap::new();
        let Some(info) = self.txn(i).committed() else {
            return out;
        };
        let lists = [
            (Reported::Ignored, &info.ignored),
            (Reported::Replaced, &info.replaced),
            (Reported::Appended, &info.appended),
        ];
        for (kind, list) in lists {
            for key in list {
                if let Some(&k) = self.keys.index.get(key) {
                    out.entry(k).or_default().push(kind);
                }
            }
        }
        out
    }

    fn replay(&mut self) {
        let mut writers: Vec<(Timestamp, usize)> = self
            .txns
            .iter()
            .enumerate()
            .filter_map(|(i, t)| match t.committed() {
                Some(info) if !info.read_only => Some((info.commit_ts, i)),
                _ => None,
            })
            .collect();
        writers.sort_unstable();
        for pair in writers.windows(2) {
            if let [(a, i), (b, j)] = *pair
                && a == b
            {
                let what = format!(
                    "commit timestamp {a} was given to two committed writers, {} and {}",
                    self.txn(i).name,
                    self.txn(j).name
                );
                self.violation("commit timestamps", j, &what, &self.dump(i));
            }
        }
        for &(ts, i) in &writers {
            self.install(ts, i);
        }
        self.order = writers.into_iter().map(|(_, i)| i).collect();
        let acknowledged: BTreeSet<Timestamp> = self
            .order
            .iter()
            .filter_map(|&i| self.txn(i).committed().map(|info| info.commit_ts))
            .collect();
        let unacknowledged: Vec<Timestamp> = self
            .persisted
            .keys()
            .filter(|ts| !acknowledged.contains(ts))
            .copied()
            .collect();
        if !unacknowledged.is_empty() {
            self.global(
                "durability",
                &format!(
                    "storage holds commits no transaction was told committed: {unacknowledged:?}"
                ),
            );
        }
    }

    /// Installs committed writer `i`'s writes at `ts` in the replay, and checks that storage
    /// got exactly them.
    fn install(&mut self, ts: Timestamp, i: usize) {
        let t = self.txn(i);
        let reported = self.reported(i);
        let finals = final_writes(t);
        if let Some(info) = t.committed() {
            for key in info
                .ignored
                .iter()
                .chain(&info.replaced)
                .chain(&info.appended)
            {
                if !self.keys.index.contains_key(key) {
                    let what =
                        format!("CommitInfo reports a resolution for an unknown key {key:?}");
                    self.violation("CommitInfo", i, &what, "");
                }
            }
        }
        for (&k, kinds) in &reported {
            let name = key_name(k);
            if !finals.contains_key(&k) {
                let what =
                    format!("CommitInfo reports {kinds:?} for {name}, which it did not write");
                self.violation("CommitInfo", i, &what, "");
            }
            if kinds.len() > 1 {
                let what = format!("CommitInfo reports {name} in several lists: {kinds:?}");
                self.violation("CommitInfo", i, &what, "");
            }
            let allowed = reported_as(t.resolution);
            if kinds.iter().any(|&kind| Some(kind) != allowed) {
                let what = format!(
                    "CommitInfo reports {kinds:?} for {name} under {:?}",
                    t.resolution
                );
                self.violation("CommitInfo", i, &what, "");
            }
        }
        let mut stored: Vec<(Key, Val)> = Vec::new();
        for (&k, write) in &finals {
            let value = match reported.get(&k).and_then(|kinds| kinds.first()) {
                Some(Reported::Ignored) => continue,
                Some(Reported::Appended) => {
                    if let Some(id) = write.value {
                        let mut rows = self.value_at(k, ts.saturating_sub(1)).unwrap_or_default();
                        rows.push(id);
                        Some(rows)
                    } else {
                        let what = format!(
                            "CommitInfo reports an append to {}, which it deleted",
                            key_name(k)
                        );
                        self.violation("CommitInfo", i, &what, "");
                        None
                    }
                }
                _ => write.value.map(|id| vec![id]),
            };
            stored.push((self.keys.key(k), value.clone()));
            if let Some(vs) = self.versions.get_mut(k) {
                vs.push(Version { ts, value, txn: i });
            }
        }
        stored.sort();
        match self.persisted.get(&ts) {
            None => {
                let what = format!(
                    "commit {ts} was acknowledged but no successful storage write carried it"
                );
                self.violation("durability", i, &what, "");
            }
            Some(seen) if *seen != stored => {
                let detail =
                    format!("    storage got:      {seen:?}\n    replay installed: {stored:?}");
                let what = format!("storage got other mutations for commit {ts} than it installed");
                self.violation("durability", i, &what, &detail);
            }
            Some(_) => {}
        }
    }

    // -- the checks --------------------------------------------------------------------------

    fn check_history(&self) {
        for i in 0..self.txns.len() {
            self.check_outcome(i);
            self.check_reads(i, At::Reads);
            let t = self.txn(i);
            if let Some(info) = t.committed()
                && !info.read_only
            {
                self.check_resolutions(i, info);
                if t.isolation == TransactionIsolation::Serializable && !self.precise {
                    self.check_reads(i, At::BeforeCommit(info.commit_ts));
                }
            }
        }
        let reported: BTreeSet<Timestamp> = self
            .txns
            .iter()
            .filter_map(|t| match t.outcome {
                Outcome::StorageFailed { commit_ts } => Some(commit_ts),
                _ => None,
            })
            .collect();
        if self.level != TransactionIsolation::ReadCommitted {
            self.check_dependencies();
        }
        let silent: Vec<Timestamp> = self.failed.difference(&reported).copied().collect();
        if !silent.is_empty() {
            self.global(
                "durability",
                &format!(
                    "storage writes carrying commits {silent:?} failed, but no transaction got \
                 Error::Storage for them"
                ),
            );
        }
    }

    /// Check 5 by the dependency graph of the committed snapshot transactions
    /// (`khonsu_tests::dsg`): `ww` between consecutive replayed versions of a key, `wr` from the
    /// installer of the version each read or scan saw (at the snapshot) to the reader, `rw`
    /// from the reader to the installer of the next version (a scan: of every key of its
    /// range, present or not). `Serializable`: no cycle; `RepeatableRead`: no G-single (a
    /// cycle with one `rw` edge), leaving out the `ww` edges of blind writes a resolution let
    /// land on a concurrent commit.
    fn check_dependencies(&self) {
        let mut graph = Graph::new(self.txns.len());
        for (k, vs) in self.versions.iter().enumerate() {
            for pair in vs.windows(2) {
                if let [a, b] = pair {
                    // At `RepeatableRead` a blind write may land on a concurrent commit when
                    // its resolution says so (check 4 holds it to that): snapshot isolation
                    // with the user's resolution, whose G-single leaves such edges out.
                    let concurrent = self.txn(b.txn).snapshot_ts < a.ts;
                    if concurrent && self.level == TransactionIsolation::RepeatableRead {
                        continue;
                    }
                    let why = format!("{} at {} then {}", key_name(k), a.ts, b.ts);
                    graph.add(a.txn, b.txn, Edge::Ww, why);
                }
            }
        }
        for (i, t) in self.txns.iter().enumerate() {
            if t.committed().is_none() || !t.reads_snapshot() {
                continue;
            }
            let mut own: BTreeSet<usize> = BTreeSet::new();
            for op in &t.ops {
                match op {
                    Op::Read { key, .. } if !own.contains(key) => {
                        self.read_edges(&mut graph, i, *key, "read");
                    }
                    Op::Scan { spec, .. } => {
                        for &k in &self.keys.sorted {
                            if !own.contains(&k) && spec.contains(&self.keys.key(k)) {
                                self.read_edges(&mut graph, i, k, "scan");
                            }
                        }
                    }
                    Op::Write { key, .. } | Op::Delete { key } => {
                        own.insert(*key);
                    }
                    Op::Read { .. } => {}
                }
            }
        }
        let name = |i: usize| self.txn(i).name.clone();
        let found = match self.level {
            TransactionIsolation::Serializable => {
                graph.cycle().map(|c| ("serializability (cycle)", c))
            }
            _ => graph
                .g_single()
                .map(|c| ("snapshot isolation (G-single)", c)),
        };
        if let Some((kind, cycle)) = found {
            let first = cycle.first().map_or(0, |s| s.from);
            let what = format!(
                "the committed transactions' dependencies form a cycle:\n{}",
                dsg::describe(&cycle, name)
            );
            let detail: Vec<String> = cycle.iter().map(|s| self.dump(s.to)).collect();
            self.violation(kind, first, &what, &detail.join("\n"));
        }
    }

    /// The `wr` and `rw` edges of transaction `i`'s read of `key` at its snapshot.
    fn read_edges(&self, graph: &mut Graph, i: usize, key: usize, what: &str) {
        let t = self.txn(i);
        let vs = self.versions_of(key);
        let n = vs.partition_point(|v| v.ts <= t.snapshot_ts);
        if let Some(seen) = n.checked_sub(1).and_then(|j| vs.get(j)) {
            let why = format!("{what} of {} saw the version at {}", key_name(key), seen.ts);
            graph.add(seen.txn, i, Edge::Wr, why);
        }
        if let Some(next) = vs.get(n) {
            let why = format!(
                "{what} of {} at snapshot {} missed the version at {}",
                key_name(key),
                t.snapshot_ts,
                next.ts
            );
            graph.add(i, next.txn, Edge::Rw, why);
        }
    }

    fn check_outcome(&self, i: usize) {
        let t = self.txn(i);
        let writes = t.writes();
        if t.snapshot_ts < t.begin.0 || t.snapshot_ts > t.begin.1 {
            let what = format!(
                "snapshot {} is not a timestamp visible while the transaction began ({}..{})",
                t.snapshot_ts, t.begin.0, t.begin.1
            );
            self.violation("snapshot", i, &what, "");
        }
        match &t.outcome {
            Outcome::Committed {
                info,
                before,
                after,
            } => {
                if info.read_only == writes {
                    let what = format!(
                        "CommitInfo.read_only is {} but the transaction {} writes",
                        info.read_only,
                        if writes { "has" } else { "has no" }
                    );
                    self.violation("CommitInfo", i, &what, "");
                } else if info.read_only {
                    if info.commit_ts != t.snapshot_ts {
                        let what = format!(
                            "a transaction without writes reports commit_ts {} instead of its \
                             snapshot {}",
                            info.commit_ts, t.snapshot_ts
                        );
                        self.violation("CommitInfo", i, &what, "");
                    }
                } else if info.commit_ts <= t.snapshot_ts
                    || info.commit_ts <= *before
                    || info.commit_ts > *after
                {
                    let what = format!(
                        "commit_ts {} must be above the snapshot {} and the visible timestamp \
                         when commit was called ({before}), and visible when commit returned \
                         ({after})",
                        info.commit_ts, t.snapshot_ts
                    );
                    self.violation("commit timestamps", i, &what, "");
                }
            }
            // At precise `Serializable` a transaction that wrote nothing without declaring
            // itself read-only may be the reader of a dangerous structure.
            Outcome::Conflict {
                kind: ConflictKind::DangerousStructure,
                ..
            } if !writes
                && !t.read_only
                && self.precise
                && t.isolation == TransactionIsolation::Serializable => {}
            Outcome::Conflict { .. } | Outcome::StorageFailed { .. } if !writes => {
                self.violation(
                    "read-only abort",
                    i,
                    "a transaction without writes aborted",
                    "",
                );
            }
            Outcome::StorageFailed { commit_ts } if !self.failed.contains(commit_ts) => {
                let what = format!(
                    "Error::Storage for commit {commit_ts}, which no failed storage write carried"
                );
                self.violation("durability", i, &what, "");
            }
            Outcome::OtherError(_) => self.violation(
                "unexpected error",
                i,
                "commit failed with an unexpected error",
                "",
            ),
            Outcome::Open => self.violation(
                "test bug",
                i,
                "test bug: the transaction never finished",
                "",
            ),
            _ => {}
        }
    }

    /// Checks 1 and 2 (`At::Reads`), or 5 (`At::BeforeCommit`).
    fn check_reads(&self, i: usize, at: At) {
        let t = self.txn(i);
        let mut own: BTreeMap<usize, Option<i64>> = BTreeMap::new();
        for (o, op) in t.ops.iter().enumerate() {
            match op {
                Op::Write { key, id } => {
                    own.insert(*key, Some(*id));
                }
                Op::Delete { key } => {
                    own.insert(*key, None);
                }
                Op::Read { key, lo, hi, got } => {
                    if let Some(staged) = own.get(key) {
                        let expected = staged.map(|id| vec![id]);
                        if at == At::Reads && *got != expected {
                            let what = format!(
                                "op #{o}: read {} returned {}, not its own write {}",
                                key_name(*key),
                                self.show_val(got),
                                self.show_val(&expected)
                            );
                            self.violation("read your writes", i, &what, "");
                        }
                    } else {
                        self.check_read(i, at, o, *key, (*lo, *hi), got);
                    }
                }
                Op::Scan { spec, lo, hi, got } => {
                    self.check_scan(i, (at, o), spec, (*lo, *hi), got, &own);
                }
            }
        }
    }

    /// Op `o` of transaction `i`, a read of a key it had not written: checks 1 and 5.
    fn check_read(
        &self,
        i: usize,
        at: At,
        o: usize,
        key: usize,
        (lo, hi): (Timestamp, Timestamp),
        got: &Val,
    ) {
        let t = self.txn(i);
        let candidates = self.read_points(t, at, std::iter::once(key), lo, hi);
        if candidates.iter().any(|&ts| self.value_at(key, ts) == *got) {
            return;
        }
        let expected: Vec<String> = candidates
            .iter()
            .map(|&ts| format!("at {ts}: {}", self.show_val(&self.value_at(key, ts))))
            .collect();
        let what = format!(
            "op #{o}: {}: read {} returned {}",
            rule(t, at),
            key_name(key),
            self.show_val(got)
        );
        let (from, to) = candidates
            .first()
            .zip(candidates.last())
            .map_or((lo, hi), |(a, b)| (*a, *b));
        let detail = format!(
            "    the replay expected {}\n{}",
            expected.join(" or "),
            self.history(key, from, to)
        );
        self.violation(read_kind(at, "read"), i, &what, &detail);
    }

    /// Op `o` of transaction `i`, a scan, with the transaction's writes before it (`own`):
    /// checks 2 and 5.
    fn check_scan(
        &self,
        i: usize,
        (at, o): (At, usize),
        spec: &ScanSpec,
        (lo, hi): (Timestamp, Timestamp),
        got: &[(Key, Vec<i64>)],
        own: &BTreeMap<usize, Option<i64>>,
    ) {
        let t = self.txn(i);
        let covered: Vec<usize> = self
            .keys
            .sorted
            .iter()
            .copied()
            .filter(|&k| spec.contains(&self.keys.key(k)))
            .collect();
        let candidates = self.read_points(t, at, covered.iter().copied(), lo, hi);
        if candidates
            .iter()
            .any(|&ts| self.scan_at(spec, ts, own) == got)
        {
            return;
        }
        let ts = candidates.first().copied().unwrap_or(lo);
        let expected = self.scan_at(spec, ts, own);
        let what = format!(
            "op #{o}: {}: {} returned {}",
            rule(t, at),
            spec.show(self.keys),
            self.show_rows(got)
        );
        let mut detail = format!(
            "    the replay expected at {candidates:?}, e.g. at {ts}: {}",
            self.show_rows(&expected)
        );
        let got_map: BTreeMap<&Key, &Vec<i64>> = got.iter().map(|(k, v)| (k, v)).collect();
        let exp_map: BTreeMap<&Key, &Vec<i64>> = expected.iter().map(|(k, v)| (k, v)).collect();
        for k in &covered {
            let key = self.keys.key(*k);
            let (seen, wanted) = (got_map.get(&key), exp_map.get(&key));
            if seen != wanted {
                let kind = match (seen, wanted) {
                    (Some(_), None) => "phantom",
                    (None, Some(_)) => "missing",
                    _ => "different value",
                };
                let _ = write!(
                    detail,
                    "\n    {kind}: {} got {} expected {}\n{}",
                    key_name(*k),
                    self.show_val(&seen.map(|v| (*v).clone())),
                    self.show_val(&wanted.map(|v| (*v).clone())),
                    self.history(*k, lo, hi)
                );
            }
        }
        for (k, _) in got {
            if !self.keys.index.contains_key(k) || !spec.contains(k) {
                let _ = write!(detail, "\n    a key outside the range: {k:?}");
            }
        }
        self.violation(read_kind(at, "scan"), i, &what, &detail);
    }

    /// The timestamps a read may have read at.
    fn read_points(
        &self,
        t: &Txn,
        at: At,
        keys: impl Iterator<Item = usize>,
        lo: Timestamp,
        hi: Timestamp,
    ) -> Vec<Timestamp> {
        match at {
            At::BeforeCommit(commit_ts) => vec![commit_ts.saturating_sub(1)],
            At::Reads if t.reads_snapshot() => vec![t.snapshot_ts],
            At::Reads => self.change_points(keys, lo, hi),
        }
    }

    /// The base of a `ReadCommitted` read-modify-write observed by a point read: the
    /// timestamp of the version it saw (a tombstone's, or 0 for none), as an interval over
    /// the timestamps the read can have read at. `None` when the read matches no state (a
    /// violation reported by the read check).
    fn observed(
        &self,
        key: usize,
        lo: Timestamp,
        hi: Timestamp,
        got: &Val,
    ) -> Option<(Timestamp, Timestamp)> {
        let bases: Vec<Timestamp> = self
            .change_points(std::iter::once(key), lo, hi)
            .into_iter()
            .filter(|&ts| self.value_at(key, ts) == *got)
            .map(|ts| self.version_at(key, ts).map_or(0, |v| v.ts))
            .collect();
        Some((*bases.iter().min()?, *bases.iter().max()?))
    }

    /// Whether transaction `t` read `k` before first writing it (a read-modify-write), and
    /// the base its write of `k` conflicts above, as an interval (`ReadCommitted` reads leave
    /// it uncertain between the visible timestamps around them): the snapshot, or at
    /// `ReadCommitted` for a read-modify-write its newest observation of `k` — the version a
    /// point read saw, the timestamp a covering scan read at. `None` when a read of `k`
    /// matches no state.
    fn write_base(
        &self,
        t: &Txn,
        k: usize,
        write: &FinalWrite,
    ) -> Option<(bool, Timestamp, Timestamp)> {
        let mut rmw = false;
        let mut observations: Vec<(Timestamp, Timestamp)> = Vec::new();
        for op in t.ops.get(..write.first_op).unwrap_or(&[]) {
            match op {
                Op::Read { key, lo, hi, got } if *key == k => {
                    rmw = true;
                    if !t.reads_snapshot() {
                        observations.push(self.observed(k, *lo, *hi, got)?);
                    }
                }
                Op::Scan { spec, lo, hi, .. } if spec.contains(&self.keys.key(k)) => {
                    rmw = true;
                    observations.push((*lo, *hi));
                }
                _ => {}
            }
        }
        if rmw && !t.reads_snapshot() {
            let (min, max) = observations
                .iter()
                .fold((0, 0), |(a, b), &(lo, hi)| (a.max(lo), b.max(hi)));
            Some((true, min, max))
        } else {
            Some((rmw, t.snapshot_ts, t.snapshot_ts))
        }
    }

    /// Checks 3 and 4 for committed writer `i`.
    fn check_resolutions(&self, i: usize, info: &CommitInfo) {
        let t = self.txn(i);
        let commit_ts = info.commit_ts;
        let reported = self.reported(i);
        for (&k, write) in &final_writes(t) {
            let Some((rmw, base_min, base_max)) = self.write_base(t, k, write) else {
                continue; // the read it was based on matches no state: reported by check 1
            };
            let concurrent = |base: Timestamp| -> Vec<&Version> {
                self.versions_of(k)
                    .iter()
                    .filter(|v| v.ts > base && v.ts < commit_ts && v.txn != i)
                    .collect()
            };
            let certain = concurrent(base_max);
            let possible = !concurrent(base_min).is_empty();
            let fatal = (rmw && t.reads_snapshot())
                || t.resolution == ConflictResolution::Fail
                || (t.resolution == ConflictResolution::Append && write.value.is_none());
            let expected = reported_as(t.resolution);
            let got = reported.get(&k).and_then(|kinds| kinds.first()).copied();
            let name = key_name(k);
            let base = if base_min == base_max {
                format!("{base_min}")
            } else {
                format!("{base_min}..{base_max}")
            };
            let why = if rmw {
                "a read-modify-write"
            } else {
                "a blind write"
            };
            let winners = |vs: &[&Version]| -> String {
                let shown: Vec<String> = vs
                    .iter()
                    .map(|v| format!("{} at {}", self.txn(v.txn).name, v.ts))
                    .collect();
                shown.join(", ")
            };
            let detail = || {
                let mut d = self.history(k, base_min, commit_ts);
                for v in &certain {
                    d.push_str("\n  the concurrent commit:\n");
                    d.push_str(&self.dump(v.txn));
                }
                d
            };
            if !certain.is_empty() && fatal {
                let rule = if rmw && t.reads_snapshot() {
                    "first committer wins: a read-modify-write whose read version was overwritten"
                } else if t.resolution == ConflictResolution::Fail {
                    "first committer wins under ConflictResolution::Fail"
                } else {
                    "an Append of a delete cannot be settled"
                };
                let what = format!(
                    "committed its write of {name} ({why}, base {base}) although {} committed \
                     {name} after the base and before its commit {commit_ts} ({rule}); \
                     CommitInfo reports {got:?}",
                    winners(&certain)
                );
                self.violation("first committer wins", i, &what, &detail());
            } else if !certain.is_empty() && got != expected {
                let what = format!(
                    "{} committed {name} after this transaction's base {base} and before its \
                     commit {commit_ts}, so its {:?} write ({why}) must be reported as \
                     {expected:?}, but CommitInfo reports {got:?}",
                    winners(&certain),
                    t.resolution
                );
                self.violation("unreported resolution", i, &what, &detail());
            } else if !possible && got.is_some() {
                let what = format!(
                    "CommitInfo reports {name} as {got:?}, but no other transaction committed \
                     {name} between this transaction's base {base} ({why}) and its commit \
                     {commit_ts}: a resolution that never happened{}",
                    if got == Some(Reported::Ignored) {
                        " (the write was silently dropped)"
                    } else {
                        ""
                    }
                );
                self.violation("resolution that never happened", i, &what, &detail());
            } else if possible && certain.is_empty() && got.is_some() && (fatal || got != expected)
            {
                let what = format!(
                    "CommitInfo reports {name} as {got:?} ({why}, base {base}, resolution {:?})",
                    t.resolution
                );
                self.violation("resolution that never happened", i, &what, &detail());
            }
        }
    }

    /// Check 6 on one view of the final state.
    fn check_final(
        &self,
        kind: &'static str,
        what: &str,
        (points, scan): &(Vec<Val>, Vec<(Key, Vec<i64>)>),
    ) {
        let expected: Vec<Val> = (0..self.keys.len())
            .map(|k| self.value_at(k, Timestamp::MAX))
            .collect();
        for (k, (got, exp)) in points.iter().zip(&expected).enumerate() {
            if got != exp {
                let message = format!(
                    "{what}: {} is {}, the replay's final state is {}\n{}",
                    key_name(k),
                    self.show_val(got),
                    self.show_val(exp),
                    self.history(k, Timestamp::MAX, Timestamp::MAX)
                );
                self.global(kind, &message);
            }
        }
        let expected_scan = self.scan_at(
            &ScanSpec {
                start: Bound::Unbounded,
                end: Bound::Unbounded,
                prefix: None,
            },
            Timestamp::MAX,
            &BTreeMap::new(),
        );
        if *scan != expected_scan {
            let message = format!(
                "{what}: a full scan returned {}, the replay's final state is {}",
                self.show_rows(scan),
                self.show_rows(&expected_scan)
            );
            self.global(kind, &message);
        }
    }

    /// Check 6 on what the storage recovers: every live key with its newest value and the
    /// commit timestamp that wrote it.
    fn check_recovered_entries(&self, state: &RecoveredState) {
        let mut recovered: BTreeMap<usize, (Timestamp, Vec<i64>)> = BTreeMap::new();
        for entry in &state.entries {
            match self.keys.index.get(&entry.key) {
                Some(&k) => {
                    recovered.insert(k, (entry.commit_ts, values(&entry.batch)));
                }
                None => self.global(
                    "recovery",
                    &format!("storage recovered an unknown key {:?}", entry.key),
                ),
            }
        }
        for k in 0..self.keys.len() {
            let expected = self
                .version_at(k, Timestamp::MAX)
                .and_then(|v| v.value.clone().map(|ids| (v.ts, ids)));
            let got = recovered.get(&k).cloned();
            if got != expected {
                let message = format!(
                    "storage recovers {} as {got:?} (commit_ts, ids), the replay's newest \
                     version is {expected:?}\n{}",
                    key_name(k),
                    self.history(k, Timestamp::MAX, Timestamp::MAX)
                );
                self.global("recovery", &message);
            }
        }
    }

    fn last_commit_ts(&self) -> Timestamp {
        self.order
            .iter()
            .filter_map(|&i| self.txn(i).committed().map(|info| info.commit_ts))
            .max()
            .unwrap_or(0)
    }

    /// What the run did, for the log: outcomes, abort kinds (and whether the replay confirms
    /// the winner a conflict names), resolutions, reclamation.
    fn summary(
        &self,
        history: &[Txn],
        gc_calls: u64,
        (keys, versions): (usize, usize),
        ran: std::time::Duration,
    ) -> String {
        let mut outcomes: BTreeMap<String, usize> = BTreeMap::new();
        let mut aborts: BTreeMap<String, usize> = BTreeMap::new();
        let (mut ignored, mut replaced, mut appended) = (0, 0, 0);
        for t in history {
            let outcome = match &t.outcome {
                Outcome::Committed { info, .. } if info.read_only => "committed read-only",
                Outcome::Committed { info, .. } => {
                    ignored += info.ignored.len();
                    replaced += info.replaced.len();
                    appended += info.appended.len();
                    "committed writers"
                }
                Outcome::Conflict {
                    kind,
                    target,
                    other_commit_ts,
                } => {
                    let confirmed = match (target, other_commit_ts) {
                        (_, None) => "no winner named",
                        (ConflictTarget::Key(key), Some(ts)) => {
                            let found =
                                self.keys.index.get(key).is_some_and(|&k| {
                                    self.versions_of(k).iter().any(|v| v.ts == *ts)
                                });
                            if found {
                                "winner confirmed"
                            } else {
                                "named winner not in the replay"
                            }
                        }
                        (ConflictTarget::Range { start, end }, Some(ts)) => {
                            let found = self.versions.iter().enumerate().any(|(k, vs)| {
                                range_contains(start, end, &self.keys.key(k))
                                    && vs.iter().any(|v| v.ts == *ts)
                            });
                            if found {
                                "winner confirmed"
                            } else {
                                "named winner not in the replay"
                            }
                        }
                    };
                    *aborts.entry(format!("{kind} ({confirmed})")).or_default() += 1;
                    "conflicts"
                }
                Outcome::StorageFailed { .. } => "storage failures",
                Outcome::OtherError(_) => "other errors",
                Outcome::RolledBack => "rolled back",
                Outcome::Open => "unfinished",
            };
            *outcomes.entry(outcome.to_owned()).or_default() += 1;
        }
        let resolutions: BTreeMap<String, usize> = history
            .iter()
            .filter(|t| t.committed().is_some_and(|info| !info.read_only))
            .fold(BTreeMap::new(), |mut acc, t| {
                *acc.entry(format!("{:?}", t.resolution)).or_default() += 1;
                acc
            });
        format!(
            "ran {:.1?}; {} transactions: {outcomes:?}; aborts: {aborts:?}; committed writers \
             by resolution: {resolutions:?}; reported ignored {ignored}, replaced {replaced}, \
             appended {appended}; {} storage writes failed; {gc_calls} collect_garbage calls; \
             {} keys and {} versions left in memory; {} violations",
            ran,
            history.len(),
            self.failed.len(),
            keys,
            versions,
            self.violations.borrow().len()
        )
    }

    fn finish(self, test: &str) {
        let violations = self.violations.into_inner();
        if violations.is_empty() {
            return;
        }
        let mut kinds: BTreeMap<&str, usize> = BTreeMap::new();
        for (kind, _) in &violations {
            *kinds.entry(kind).or_default() += 1;
        }
        let mut report = format!(
            "{test}: {} violation(s) (seed {seed}; KHONSU_HISTORY_SEED={seed} replays the \
             scripts, not the interleaving, so each violation below carries what is needed to \
             understand it): {kinds:?}\n",
            violations.len(),
            seed = self.seed,
        );
        // The first violation of each kind, then the others, up to the limit.
        let mut shown = BTreeSet::new();
        let mut order: Vec<usize> = Vec::new();
        for (n, (kind, _)) in violations.iter().enumerate() {
            if shown.insert(*kind) {
                order.push(n);
            }
        }
        let firsts: BTreeSet<usize> = order.iter().copied().collect();
        order.extend((0..violations.len()).filter(|n| !firsts.contains(n)));
        let limit = env_u64("KHONSU_HISTORY_REPORT")
            .and_then(|n| usize::try_from(n).ok())
            .unwrap_or(MAX_REPORTED);
        for (shown, n) in order.iter().take(limit).enumerate() {
            if let Some((_, text)) = violations.get(*n) {
                let _ = writeln!(report, "\n[{}] {text}", shown + 1);
            }
        }
        if violations.len() > limit {
            let _ = writeln!(
                report,
                "\n… and {} more (KHONSU_HISTORY_REPORT=<n> shows more)",
                violations.len() - limit
            );
        }
        panic!("{report}");
    }
}

// ---------------------------------------------------------------------------------------------
// The tests: one per isolation level, each mixing every conflict resolution.

#[test]
fn read_committed_history_is_consistent() {
    run(
        "read_committed_history_is_consistent",
        TransactionIsolation::ReadCommitted,
        SerializableValidation::Precise,
    );
}

#[test]
fn repeatable_read_history_is_snapshot_isolated() {
    run(
        "repeatable_read_history_is_snapshot_isolated",
        TransactionIsolation::RepeatableRead,
        SerializableValidation::Precise,
    );
}

#[test]
fn serializable_history_has_no_dependency_cycle() {
    run(
        "serializable_history_has_no_dependency_cycle",
        TransactionIsolation::Serializable,
        SerializableValidation::Precise,
    );
}

#[test]
fn conservative_serializable_history_is_serializable_in_commit_order() {
    run(
        "conservative_serializable_history_is_serializable_in_commit_order",
        TransactionIsolation::Serializable,
        SerializableValidation::Conservative,
    );
}
