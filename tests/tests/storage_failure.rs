//! Storage integration, through a failure-injecting double: the storage sees exactly the
//! committed mutations, each group of commits in one write; a write that fails and wrote
//! nothing aborts exactly its transactions (non-conflict `Error::Storage`), leaves nothing
//! visible, and the database keeps working; a write whose outcome is unknown makes the
//! database refuse commits until it is reopened; a panicking adapter is an unknown outcome, not
//! a hang; nothing is visible before its write returns; `build()` and `Khonsu::new` recover data
//! and the clock, so no commit is acknowledged and then lost to older data.

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};

use khonsu::Timestamp;
use khonsu::prelude::*;
use khonsu::storage::{RecoveredEntry, RecoveredState, WriteFailure, WriteGroup};
use khonsu_tests::*;

/// One mutation as the storage saw it: key and the rows of a put, `None` for a delete.
type Seen = (Key, Option<Vec<i64>>);

/// How the double answers the next writes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Mode {
    Succeed,
    /// Fails, having written nothing.
    FailNothingWritten,
    /// Fails after writing the group: the outcome a failed sync leaves.
    FailOutcomeUnknown,
    /// Panics inside `write`.
    Panic,
}

/// A storage that records every write, forwards to a `MemoryStorage`, and fails on demand.
#[derive(Debug)]
struct FlakyStorage {
    inner: MemoryStorage,
    mode: Mutex<Mode>,
    /// Fail (nothing written) every write whose number is a multiple of this (0: never).
    fail_every: AtomicU64,
    fail_recover: AtomicBool,
    writes: AtomicUsize,
    /// Recorded successful commits, mutations sorted by key.
    log: Mutex<Vec<(Timestamp, Vec<Seen>)>>,
    /// Sizes of the successful writes.
    groups: Mutex<Vec<usize>>,
}

impl FlakyStorage {
    fn new() -> Arc<Self> {
        Arc::new(Self {
            inner: MemoryStorage::new(),
            mode: Mutex::new(Mode::Succeed),
            fail_every: AtomicU64::new(0),
            fail_recover: AtomicBool::new(false),
            writes: AtomicUsize::new(0),
            log: Mutex::new(Vec::new()),
            groups: Mutex::new(Vec::new()),
        })
    }

    fn set_mode(&self, mode: Mode) {
        *lock(&self.mode) = mode;
    }

    fn log(&self) -> Vec<(Timestamp, Vec<Seen>)> {
        let mut log = lock(&self.log).clone();
        log.sort_by_key(|(ts, _)| *ts);
        log
    }
}

fn seen(group: &WriteGroup<'_>) -> Vec<(Timestamp, Vec<Seen>)> {
    group
        .commits()
        .map(|c| {
            let mut seen: Vec<Seen> = c
                .mutations
                .iter()
                .map(|m| match m {
                    StorageMutation::Put { key, batch, .. } => (key.clone(), Some(values(batch))),
                    StorageMutation::Delete { key } => (key.clone(), None),
                })
                .collect();
            seen.sort();
            (c.commit_ts, seen)
        })
        .collect()
}

impl Storage for FlakyStorage {
    fn name(&self) -> &'static str {
        "flaky"
    }

    fn write(&self, group: WriteGroup<'_>) -> Result<(), WriteFailure> {
        let n = self.writes.fetch_add(1, Ordering::SeqCst) as u64 + 1;
        let every = self.fail_every.load(Ordering::SeqCst);
        if every != 0 && n.is_multiple_of(every) {
            return Err(WriteFailure::NothingWritten(
                khonsu::storage::Error::backend(format!("injected failure of write {n}")),
            ));
        }
        let mode = *lock(&self.mode);
        let backend = |what: &str| khonsu::storage::Error::backend(format!("injected {what}"));
        match mode {
            Mode::Succeed => {}
            Mode::FailNothingWritten => {
                return Err(WriteFailure::NothingWritten(backend("write failure")));
            }
            Mode::FailOutcomeUnknown => {
                // The data reached the store, but the caller cannot know it.
                self.inner.write(group)?;
                return Err(WriteFailure::OutcomeUnknown(backend("fsync failure")));
            }
            Mode::Panic => panic!("injected panic in Storage::write"),
        }
        lock(&self.log).extend(seen(&group));
        lock(&self.groups).push(group.len());
        self.inner.write(group)
    }

    fn recover(&self) -> khonsu::storage::Result<RecoveredState> {
        if self.fail_recover.load(Ordering::SeqCst) {
            return Err(khonsu::storage::Error::backend("injected recover failure"));
        }
        self.inner.recover()
    }
}

fn db_on(storage: Arc<dyn Storage>, iso: TransactionIsolation, res: ConflictResolution) -> Khonsu {
    ok(
        Khonsu::builder()
            .isolation(iso)
            .conflict_resolution(res)
            .storage(storage)
            .build(),
        "build with storage",
    )
}

fn assert_storage_error(err: &khonsu::Error, ctx: &str) {
    assert!(
        !err.is_conflict(),
        "{ctx}: a storage failure is not a conflict: {err:?}"
    );
    assert!(err.conflict().is_none(), "{ctx}");
    assert!(
        matches!(err, khonsu::Error::Storage { .. }),
        "{ctx}: expected Error::Storage, got {err:?}"
    );
    let report = snafu::Report::from_error(err).to_string();
    assert!(
        report.contains("injected"),
        "{ctx}: the cause is named: {report}"
    );
}

#[test]
fn failed_write_aborts_commit_and_db_keeps_working() {
    for iso in LEVELS {
        let ctx = format!("{iso:?}");
        let store = FlakyStorage::new();
        let db = db_on(store.clone(), iso, ConflictResolution::Fail);
        let c0 = seed_values(&db, &[("a", 1), ("b", 2)]);

        store.set_mode(Mode::FailNothingWritten);
        let mut t = db.start_transaction();
        write(&mut t, "a", 10);
        write(&mut t, "c", 30);
        delete(&mut t, "b");
        let err = expect_err(t.commit(), &ctx);
        assert_storage_error(&err, &ctx);
        assert_eq!(
            committed_all(&db),
            vec![(key("a"), 1), (key("b"), 2)],
            "{ctx}: nothing visible"
        );
        assert_eq!(
            store.inner.get(b"a").map(|(ts, _)| ts),
            Some(c0.commit_ts),
            "{ctx}"
        );

        store.set_mode(Mode::Succeed);
        // The same keys commit afterwards with Fail: the failed transaction left no intents.
        let mut t = db.start_transaction();
        let a = read_some(&mut t, "a");
        write(&mut t, "a", a + 1);
        write(&mut t, "c", 31);
        delete(&mut t, "b");
        let c = commit(t);
        assert!(c.commit_ts > c0.commit_ts, "{ctx}");
        assert_eq!(
            committed_all(&db),
            vec![(key("a"), 2), (key("c"), 31)],
            "{ctx}"
        );
        let (ts, b) = store.inner.get(b"a").unwrap();
        assert_eq!((ts, values(&b)), (c.commit_ts, vec![2]), "{ctx}");
        assert!(store.inner.get(b"b").is_none(), "{ctx}");
    }
}

/// A transaction running concurrently with the failed one is not affected by it: with `Fail` it
/// writes the same key (no committed version appeared), and at Serializable its read of a key
/// the failed transaction wrote is not stale.
#[test]
fn failed_commit_does_not_conflict_with_concurrent_transactions() {
    for iso in LEVELS {
        let ctx = format!("{iso:?}");
        let store = FlakyStorage::new();
        let db = db_on(store.clone(), iso, ConflictResolution::Fail);
        seed_values(&db, &[("a", 1), ("b", 2)]);
        let mut blind = db.start_transaction();
        let mut reader = db.start_transaction();
        assert_eq!(read(&mut reader, "b"), Some(2));

        store.set_mode(Mode::FailNothingWritten);
        let mut failing = db.start_transaction();
        write(&mut failing, "a", 10);
        write(&mut failing, "b", 20);
        assert_storage_error(&expect_err(failing.commit(), &ctx), &ctx);
        store.set_mode(Mode::Succeed);

        write(&mut blind, "a", 100);
        commit(blind);
        write(&mut reader, "r", 1);
        commit(reader);
        assert_eq!(
            committed_all(&db),
            vec![(key("a"), 100), (key("b"), 2), (key("r"), 1)],
            "{ctx}"
        );
    }
}

/// The storage sees exactly the committed mutations, each with its commit timestamp; aborted,
/// rolled-back and read-only transactions contribute nothing; Ignore drops the ignored key (and a
/// transaction whose every write was ignored persists only its timestamp); Append persists the
/// merged batch.
#[test]
fn storage_receives_exactly_committed_mutations() {
    let store = FlakyStorage::new();
    let db = db_on(
        store.clone(),
        TransactionIsolation::Serializable,
        ConflictResolution::Fail,
    );
    let mut expected: Vec<(Timestamp, Vec<Seen>)> = Vec::new();
    let put = |k: &str, rows: &[i64]| (key(k), Some(rows.to_vec()));

    let c = seed_values(&db, &[("a", 1), ("b", 2), ("c", 3)]);
    expected.push((
        c.commit_ts,
        vec![put("a", &[1]), put("b", &[2]), put("c", &[3])],
    ));

    // update + delete
    let mut t = db.start_transaction();
    write(&mut t, "a", 10);
    delete(&mut t, "c");
    let c = commit(t);
    expected.push((c.commit_ts, vec![put("a", &[10]), (key("c"), None)]));

    // rolled back: nothing
    let mut t = db.start_transaction();
    write(&mut t, "z", 1);
    t.rollback();

    // conflict-aborted: nothing
    let mut loser = db.start_transaction();
    write(&mut loser, "b", 99);
    write(&mut loser, "y", 99);
    let mut winner = db.start_transaction();
    write(&mut winner, "b", 20);
    let c = commit(winner);
    expected.push((c.commit_ts, vec![put("b", &[20])]));
    assert!(expect_err(loser.commit(), "loser").is_conflict());

    // read-only: nothing
    let mut r = db.start_transaction();
    read(&mut r, "a");
    scan(&mut r, ..);
    commit(r);

    // Ignore: the ignored key is not persisted, the rest is
    let ignoring = TransactionOptions::new().conflict_resolution(ConflictResolution::Ignore);
    let mut ig = db.start_transaction_with(ignoring);
    let mut all_ignored = db.start_transaction_with(ignoring);
    let mut t = db.start_transaction();
    write(&mut t, "b", 21);
    let c = commit(t);
    expected.push((c.commit_ts, vec![put("b", &[21])]));
    write(&mut ig, "b", 22);
    write(&mut ig, "d", 4);
    let c = commit(ig);
    assert_eq!(c.ignored, vec![key("b")]);
    expected.push((c.commit_ts, vec![put("d", &[4])]));
    write(&mut all_ignored, "b", 23);
    let c = commit(all_ignored);
    assert_eq!(c.ignored, vec![key("b")]);
    // A commit whose every write was ignored persists no mutation, only its timestamp.
    expected.push((c.commit_ts, vec![]));
    assert_eq!(store.inner.last_commit_ts(), c.commit_ts);

    // Append: the merged batch is persisted
    let mut ap = db.start_transaction_with(
        TransactionOptions::new().conflict_resolution(ConflictResolution::Append),
    );
    let mut t = db.start_transaction();
    write(&mut t, "d", 40);
    let c = commit(t);
    expected.push((c.commit_ts, vec![put("d", &[40])]));
    write(&mut ap, "d", 41);
    let c = commit(ap);
    assert_eq!(c.appended, vec![key("d")]);
    expected.push((c.commit_ts, vec![put("d", &[40, 41])]));

    assert_eq!(store.log(), expected);

    // And the MemoryStorage behind it holds exactly the committed state.
    assert_eq!(store.inner.len(), 3);
    for (k, v) in [("a", vec![10]), ("b", vec![21]), ("d", vec![40, 41])] {
        let (_, b) = store.inner.get(k.as_bytes()).unwrap();
        assert_eq!(values(&b), v, "{k}");
    }
    assert!(store.inner.get(b"c").is_none());
}

/// A failed `fsync` leaves the outcome unknown: the commit reports it, nothing of it is
/// visible, and every later commit is refused with a clear error until the database is
/// reopened; reads keep working; reopened, the database holds what the storage holds.
#[test]
fn an_unknown_outcome_refuses_commits_until_reopened() {
    let store = FlakyStorage::new();
    let db = db_on(
        store.clone(),
        TransactionIsolation::Serializable,
        ConflictResolution::Fail,
    );
    seed_values(&db, &[("a", 1)]);
    store.set_mode(Mode::FailOutcomeUnknown);
    let mut t = db.start_transaction();
    write(&mut t, "a", 2);
    let err = expect_err(t.commit(), "unknown outcome");
    assert!(
        matches!(err, khonsu::Error::StorageOutcomeUnknown { .. }),
        "{err:?}"
    );
    assert!(!err.is_conflict());
    assert!(err.to_string().contains("unknown"), "{err}");
    assert_eq!(committed(&db, "a"), Some(1), "not visible");
    assert!(db.durability_stats().unwrap().unusable);

    // Even with a healthy storage again, the engine does not guess.
    store.set_mode(Mode::Succeed);
    for k in ["a", "b"] {
        let mut t = db.start_transaction();
        write(&mut t, k, 3);
        let err = expect_err(t.commit(), "commit after an unknown outcome");
        assert!(
            matches!(err, khonsu::Error::StorageUnusable { .. }),
            "{err:?}"
        );
        assert!(
            snafu::Report::from_error(&err)
                .to_string()
                .contains("reopened"),
            "{err}"
        );
    }
    // Read-only transactions are not commits to storage: they still work.
    let mut r = db.start_transaction();
    assert_eq!(read(&mut r, "a"), Some(1));
    commit(r);
    drop(db);

    // Reopened: the write did reach the store (this double wrote it), so it is there.
    let db = db_on(
        store.clone(),
        TransactionIsolation::Serializable,
        ConflictResolution::Fail,
    );
    assert_eq!(committed(&db, "a"), Some(2));
    let mut t = db.start_transaction();
    write(&mut t, "b", 4);
    commit(t);
    assert_eq!(committed(&db, "b"), Some(4));
}

/// An adapter that panics in `write` must neither unwind through `commit` nor leave the other
/// committers of its group waiting forever: it is an unknown outcome.
#[test]
fn a_panicking_adapter_is_an_unknown_outcome_not_a_hang() {
    let store = FlakyStorage::new();
    let db = db_on(
        store.clone(),
        TransactionIsolation::RepeatableRead,
        ConflictResolution::Fail,
    );
    store.set_mode(Mode::Panic);
    let results: Vec<khonsu::Error> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..4_u64)
            .map(|i| {
                let db = db.clone();
                s.spawn(move || {
                    let mut t = db.start_transaction();
                    write(&mut t, i, 1);
                    t.commit().unwrap_err()
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    for err in results {
        assert!(
            matches!(
                err,
                khonsu::Error::StorageOutcomeUnknown { .. } | khonsu::Error::StorageUnusable { .. }
            ),
            "{err:?}"
        );
    }
    assert!(committed_all(&db).is_empty());
}

/// A storage that fails every Nth write while threads run transfers: every transfer that
/// committed is stored, none that failed is, money is conserved in memory and on "disk", and
/// the database keeps committing after each failure. Seeded, bounded by a transfer count.
#[test]
fn a_storage_failing_every_nth_write_keeps_every_invariant() {
    const ACCOUNTS: usize = 16;
    const TRANSFERS_PER_THREAD: u64 = 300;
    let seed = seed("a_storage_failing_every_nth_write_keeps_every_invariant");
    for group_commit in [true, false] {
        let store = FlakyStorage::new();
        let db = ok(
            Khonsu::builder()
                .storage(store.clone())
                .group_commit(group_commit)
                .build(),
            "build",
        );
        let initial: Vec<(u64, i64)> = (0..ACCOUNTS as u64).map(|a| (a, 100)).collect();
        seed_values(&db, &initial);
        store.fail_every.store(7, Ordering::SeqCst);
        let failures = AtomicUsize::new(0);
        std::thread::scope(|s| {
            for thread in 0..4_u64 {
                let (db, failures) = (db.clone(), &failures);
                s.spawn(move || {
                    let mut rng = Rng::new(seed ^ thread);
                    let mut done = 0;
                    while done < TRANSFERS_PER_THREAD {
                        let (from, to) = rng.two_distinct(ACCOUNTS);
                        let result = db.atomically(|t| {
                            let a = t.read(key(from as u64))?.map_or(0, |b| value(&b));
                            let b = t.read(key(to as u64))?.map_or(0, |b| value(&b));
                            let amount = a.min(5);
                            t.write(from as u64, batch(a - amount))?;
                            t.write(to as u64, batch(b + amount))
                        });
                        match result {
                            Ok(()) => done += 1,
                            Err(khonsu::Error::Storage { .. }) => {
                                failures.fetch_add(1, Ordering::Relaxed);
                            }
                            Err(e) => fail("transfer", e),
                        }
                    }
                });
            }
        });
        let ctx = format!("group commit {group_commit}, seed {seed}");
        assert!(
            failures.load(Ordering::Relaxed) > 0,
            "{ctx}: no write failed"
        );
        let live = committed_all(&db);
        let total: i64 = live.iter().map(|(_, v)| v).sum();
        assert_eq!(
            total,
            100 * int(ACCOUNTS),
            "{ctx}: money conserved in memory"
        );
        // The storage holds exactly the live state: every acknowledged transfer, no failed one.
        let stored: Vec<(Key, i64)> = store
            .inner
            .recover()
            .unwrap()
            .entries
            .iter()
            .map(|e| (e.key.clone(), value(&e.batch)))
            .collect();
        assert_eq!(stored, live, "{ctx}: storage equals memory");
        // Stays usable.
        let mut t = db.start_transaction();
        write(&mut t, "after", 1);
        store.fail_every.store(0, Ordering::SeqCst);
        commit(t);
    }
}

/// A storage whose writes wait at a gate the test opens.
#[derive(Debug, Default)]
struct GatedStorage {
    inner: MemoryStorage,
    /// (writes that reached the gate, gate open)
    state: Mutex<(usize, bool)>,
    changed: Condvar,
}

impl GatedStorage {
    fn wait_for_writes(&self, n: usize) {
        let mut state = lock(&self.state);
        while state.0 < n {
            state = self
                .changed
                .wait(state)
                .unwrap_or_else(std::sync::PoisonError::into_inner);
        }
    }

    fn open(&self) {
        self.set_open(true);
    }

    fn set_open(&self, open: bool) {
        lock(&self.state).1 = open;
        self.changed.notify_all();
    }
}

impl Storage for GatedStorage {
    fn write(&self, group: WriteGroup<'_>) -> Result<(), WriteFailure> {
        let mut state = lock(&self.state);
        state.0 += 1;
        self.changed.notify_all();
        while !state.1 {
            state = self
                .changed
                .wait(state)
                .unwrap_or_else(std::sync::PoisonError::into_inner);
        }
        drop(state);
        self.inner.write(group)
    }

    fn recover(&self) -> khonsu::storage::Result<RecoveredState> {
        self.inner.recover()
    }
}

/// Nothing is visible before its storage write returns: while the write is held at a gate, no
/// reader sees the commit (at any level) and the visible timestamp has not reached it; commits
/// that arrive meanwhile queue and go down together in the next write.
#[test]
fn nothing_is_visible_before_it_is_durable_and_waiting_commits_share_a_write() {
    let store = Arc::new(GatedStorage::default());
    let db = ok(Khonsu::builder().storage(store.clone()).build(), "build");
    std::thread::scope(|s| {
        let first = {
            let db = db.clone();
            s.spawn(move || {
                let mut t = db.start_transaction();
                write(&mut t, "k", 1);
                t.commit().unwrap().commit_ts
            })
        };
        store.wait_for_writes(1);
        for iso in LEVELS {
            let mut r = db.start_transaction_with(TransactionOptions::new().isolation(iso));
            assert_eq!(read(&mut r, "k"), None, "{iso:?}: visible before durable");
        }
        // Three more commits arrive while the first write is in flight.
        let later: Vec<_> = (0..3_u64)
            .map(|i| {
                let db = db.clone();
                s.spawn(move || {
                    let mut t = db.start_transaction();
                    write(&mut t, i, 1);
                    t.commit().unwrap().commit_ts
                })
            })
            .collect();
        // They queue behind the first write; none is written while it is in flight.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        while db.durability_stats().unwrap().group.waiting < 3 {
            assert!(std::time::Instant::now() < deadline, "commits never queued");
            std::thread::yield_now();
        }
        assert_eq!(lock(&store.state).0, 1, "one write in flight");
        assert_eq!(db.visible_ts(), 0, "nothing visible yet");
        store.open();
        let ts = first.join().unwrap();
        let mut later_ts: Vec<u64> = later.into_iter().map(|h| h.join().unwrap()).collect();
        later_ts.sort_unstable();
        assert!(later_ts.iter().all(|t| *t > ts));
    });
    assert_eq!(committed(&db, "k"), Some(1));
    let stats = db.durability_stats().unwrap();
    assert_eq!(
        (
            stats.group.groups,
            stats.group.commits,
            stats.group.largest_group
        ),
        (2, 4, 3),
        "the three queued commits went down in one write: {stats:?}"
    );
}

/// Found by review: a transaction that lost a write-write conflict took a commit timestamp and
/// then, aborting, waited for every earlier commit — including another key's storage write in
/// flight — before its empty ticket could publish. A doomed transaction now aborts when it takes
/// the key's intent, before it has a timestamp: it returns while the other write is still held.
#[test]
fn a_doomed_transaction_aborts_without_waiting_for_another_commits_write() {
    let store = Arc::new(GatedStorage::default());
    store.open();
    let db = ok(
        Khonsu::builder()
            .isolation(TransactionIsolation::RepeatableRead)
            .storage(store.clone())
            .build(),
        "build",
    );
    seed_values(&db, &[("x", 0), ("y", 0)]);
    let mut doomed = db.start_transaction();
    assert_eq!(read(&mut doomed, "y"), Some(0));
    seed_values(&db, &[("y", 1)]); // doomed's read of y is now stale
    store.set_open(false);
    std::thread::scope(|s| {
        let blocked = s.spawn(|| {
            let mut t = db.start_transaction();
            write(&mut t, "x", 1);
            t.commit().unwrap().commit_ts
        });
        store.wait_for_writes(3);
        write(&mut doomed, "y", 2);
        let aborting = s.spawn(move || doomed.commit());
        // A liveness bound, not a timing assertion: the abort needs nothing from the held write.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        while !aborting.is_finished() && std::time::Instant::now() < deadline {
            std::thread::yield_now();
        }
        let waited = !aborting.is_finished();
        assert!(
            !blocked.is_finished(),
            "the other write is still held at the gate"
        );
        store.open();
        let err = expect_err(aborting.join().unwrap(), "doomed read-modify-write");
        blocked.join().unwrap();
        assert!(
            !waited,
            "the doomed commit waited for another commit's storage write"
        );
        assert!(err.is_conflict(), "{err:?}");
    });
    assert_eq!(committed(&db, "y"), Some(1));
    assert_eq!(committed(&db, "x"), Some(1));
}

/// `Khonsu::new` with a `MemoryStorage` persists commits with their timestamps.
#[test]
fn memory_storage_via_new() {
    let mem = Arc::new(MemoryStorage::new());
    let db = ok(
        Khonsu::new(
            mem.clone(),
            TransactionIsolation::RepeatableRead,
            ConflictResolution::Fail,
        ),
        "Khonsu::new",
    );
    let c1 = seed_values(&db, &[("a", 1), ("b", 2)]);
    let mut t = db.start_transaction();
    delete(&mut t, "a");
    write(&mut t, "b", 3);
    let c2 = commit(t);
    assert_eq!(mem.len(), 1);
    assert!(mem.get(b"a").is_none());
    let (ts, b) = mem.get(b"b").unwrap();
    assert_eq!((ts, values(&b)), (c2.commit_ts, vec![3]));
    assert!(c2.commit_ts > c1.commit_ts);
}

/// Found by review: `Khonsu::new` over a storage that already held data started the clock at 0,
/// so a new commit was acknowledged at ts 1 and lost, on the next recovery, to the older value
/// stored at a higher timestamp. `new` recovers now: the new commit is above every stored one,
/// and survives the next recovery.
#[test]
fn khonsu_new_over_stored_data_recovers_it_and_never_loses_a_new_commit() {
    let mem = Arc::new(MemoryStorage::new());
    {
        let db = db_on(
            mem.clone(),
            TransactionIsolation::Serializable,
            ConflictResolution::Fail,
        );
        for v in 0..5 {
            seed_values(&db, &[("k", v)]);
        }
    }
    let stored_ts = mem.last_commit_ts();
    let db = ok(
        Khonsu::new(
            mem.clone(),
            TransactionIsolation::Serializable,
            ConflictResolution::Fail,
        ),
        "Khonsu::new over data",
    );
    assert_eq!(
        committed(&db, "k"),
        Some(4),
        "new recovered the stored value"
    );
    let c = seed_values(&db, &[("k", 100)]);
    assert!(c.commit_ts > stored_ts, "{} <= {stored_ts}", c.commit_ts);
    drop(db);
    let db = db_on(
        mem.clone(),
        TransactionIsolation::Serializable,
        ConflictResolution::Fail,
    );
    assert_eq!(
        committed(&db, "k"),
        Some(100),
        "the acknowledged commit survived"
    );
}

/// Found by review: a commit whose every write was dropped by `Ignore` returned `Ok` with a
/// timestamp that nothing persisted, so after a restart the clock handed the same timestamp out
/// again. Every acknowledged commit timestamp is durable now: the next one is above it.
#[test]
fn an_acknowledged_commit_timestamp_is_never_handed_out_again() {
    let mem = Arc::new(MemoryStorage::new());
    let acknowledged = {
        let db = db_on(
            mem.clone(),
            TransactionIsolation::RepeatableRead,
            ConflictResolution::Ignore,
        );
        seed_values(&db, &[("k", 1)]);
        let mut ignored = db.start_transaction();
        seed_values(&db, &[("k", 2)]);
        write(&mut ignored, "k", 3);
        let c = commit(ignored);
        assert_eq!(c.ignored, vec![key("k")]);
        c.commit_ts
    };
    let db = db_on(
        mem.clone(),
        TransactionIsolation::RepeatableRead,
        ConflictResolution::Ignore,
    );
    assert!(db.visible_ts() >= acknowledged);
    let next = seed_values(&db, &[("k", 4)]).commit_ts;
    assert!(next > acknowledged, "{next} <= acknowledged {acknowledged}");
}

/// Found by review: two live databases on one storage each ran their own clock, and the next
/// recovery kept only one of two acknowledged writes of a key. A storage now serves one live
/// database at a time; after the first is dropped, the same storage can be handed over.
#[test]
fn a_storage_serves_one_live_database_at_a_time() {
    let mem = Arc::new(MemoryStorage::new());
    let first = db_on(
        mem.clone(),
        TransactionIsolation::Serializable,
        ConflictResolution::Fail,
    );
    let second = Khonsu::builder().storage(mem.clone()).build();
    let err = expect_err(second, "a second database on the same storage");
    assert!(matches!(err, khonsu::Error::StorageInUse { .. }), "{err:?}");
    assert!(err.to_string().contains("memory"), "{err}");
    seed_values(&first, &[("k", 1)]);
    // A live transaction keeps the database, and so the storage, attached.
    let t = first.start_transaction();
    drop(first);
    assert!(Khonsu::builder().storage(mem.clone()).build().is_err());
    drop(t);
    let again = db_on(
        mem.clone(),
        TransactionIsolation::Serializable,
        ConflictResolution::Fail,
    );
    assert_eq!(committed(&again, "k"), Some(1));
}

#[test]
fn recovery_restores_data_and_clock() {
    let mem = Arc::new(MemoryStorage::new());
    let db1 = db_on(
        mem.clone(),
        TransactionIsolation::Serializable,
        ConflictResolution::Fail,
    );
    let mut last = 0;
    for i in 0..20_u64 {
        let mut t = db1.start_transaction();
        write(&mut t, i % 7, i64::try_from(i).unwrap());
        if i % 5 == 4 {
            delete(&mut t, (i + 1) % 7);
        }
        last = commit(t).commit_ts;
    }
    let before = committed_all(&db1);
    assert!(!before.is_empty());
    drop(db1);

    let db2 = db_on(
        mem.clone(),
        TransactionIsolation::Serializable,
        ConflictResolution::Fail,
    );
    assert_eq!(committed_all(&db2), before, "recovered data");
    let t = db2.start_transaction();
    assert!(
        t.snapshot_ts() >= last,
        "recovered snapshot {} < last commit {last}",
        t.snapshot_ts()
    );
    t.rollback();
    let mut t = db2.start_transaction();
    write(&mut t, "new", 1);
    let c = commit(t);
    assert!(
        c.commit_ts > last,
        "new commit ts {} must exceed recovered {last}",
        c.commit_ts
    );
    // The recovered db keeps persisting.
    assert_eq!(mem.get(b"new").map(|(ts, _)| ts), Some(c.commit_ts));
}

/// Recovery from a storage that reports its own state: entries are readable, the clock starts
/// after `last_commit_ts` (even if that is larger than any entry's ts).
#[derive(Debug)]
struct FixedStorage;

impl Storage for FixedStorage {
    fn write(&self, _: WriteGroup<'_>) -> Result<(), WriteFailure> {
        Ok(())
    }

    fn recover(&self) -> khonsu::storage::Result<RecoveredState> {
        Ok(RecoveredState::new(
            1_000,
            (0..10_u32)
                .map(|i| RecoveredEntry {
                    key: key(u64::from(i)),
                    commit_ts: 500 + u64::from(i),
                    batch: Arc::new(batch(i64::from(i) * 10)),
                })
                .collect(),
        ))
    }
}

#[test]
fn recovery_from_reported_state() {
    let db = db_on(
        Arc::new(FixedStorage),
        TransactionIsolation::RepeatableRead,
        ConflictResolution::Fail,
    );
    let all = committed_all(&db);
    let expected: Vec<(Key, i64)> = (0..10_u64)
        .map(|i| (key(i), i64::try_from(i).unwrap() * 10))
        .collect();
    assert_eq!(all, expected);
    assert_eq!(db.stats().keys, 10);
    let mut t = db.start_transaction();
    let v = read(&mut t, key(3_u64)).unwrap();
    write(&mut t, 3_u64, v + 1);
    let c = commit(t);
    assert!(
        c.commit_ts > 1_000,
        "commit ts {} must exceed recovered last_commit_ts",
        c.commit_ts
    );
    assert_eq!(committed(&db, key(3_u64)), Some(31));
}

#[test]
fn recovery_failure_is_an_error() {
    let store = FlakyStorage::new();
    store.fail_recover.store(true, Ordering::SeqCst);
    let storage: Arc<dyn Storage> = store;
    let r = Khonsu::builder().storage(storage).build();
    let err = expect_err(r, "build with failing recover");
    assert!(!err.is_conflict(), "{err:?}");
    assert!(matches!(err, khonsu::Error::Recovery { .. }), "{err:?}");
}
