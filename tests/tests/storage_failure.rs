//! Storage integration: `Storage::apply` is called inside the commit with the commit timestamp
//! and exactly the committed mutations; a failing `apply` aborts the commit with a non-conflict
//! `Error::Storage`, leaves nothing visible and the db keeps working; `build()` recovers data and
//! the clock.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use khonsu::Timestamp;
use khonsu::prelude::*;
use khonsu::storage::{RecoveredEntry, RecoveredState};
use khonsu_tests::*;

/// One mutation as the storage saw it: key and the rows of a put, `None` for a delete.
type Seen = (Key, Option<Vec<i64>>);

/// A storage that records every `apply`, forwards to a `MemoryStorage`, and fails on demand.
#[derive(Debug)]
struct FlakyStorage {
    inner: MemoryStorage,
    fail: AtomicBool,
    fail_recover: AtomicBool,
    applies: AtomicUsize,
    log: Mutex<Vec<(Timestamp, Vec<Seen>)>>,
}

impl FlakyStorage {
    fn new() -> Arc<Self> {
        Arc::new(Self {
            inner: MemoryStorage::new(),
            fail: AtomicBool::new(false),
            fail_recover: AtomicBool::new(false),
            applies: AtomicUsize::new(0),
            log: Mutex::new(Vec::new()),
        })
    }

    fn set_fail(&self, fail: bool) {
        self.fail.store(fail, Ordering::SeqCst);
    }

    /// The recorded non-empty applies, mutations sorted by key.
    fn log(&self) -> Vec<(Timestamp, Vec<Seen>)> {
        lock(&self.log).clone()
    }
}

impl Storage for FlakyStorage {
    fn apply(
        &self,
        commit_ts: Timestamp,
        mutations: &[StorageMutation],
    ) -> khonsu::storage::Result<()> {
        self.applies.fetch_add(1, Ordering::SeqCst);
        if self.fail.load(Ordering::SeqCst) {
            return Err(khonsu::storage::Error::backend("injected apply failure"));
        }
        let mut seen: Vec<Seen> = mutations
            .iter()
            .map(|m| match m {
                StorageMutation::Put { key, batch } => (key.clone(), Some(values(batch))),
                StorageMutation::Delete { key } => (key.clone(), None),
            })
            .collect();
        seen.sort();
        if !seen.is_empty() {
            lock(&self.log).push((commit_ts, seen));
        }
        self.inner.apply(commit_ts, mutations)
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
}

#[test]
fn failed_apply_aborts_commit_and_db_keeps_working() {
    for iso in LEVELS {
        let ctx = format!("{iso:?}");
        let store = FlakyStorage::new();
        let db = db_on(store.clone(), iso, ConflictResolution::Fail);
        let c0 = seed_values(&db, &[("a", 1), ("b", 2)]);

        store.set_fail(true);
        let mut t = db.start_transaction();
        write(&mut t, "a", 10);
        write(&mut t, "c", 30);
        delete(&mut t, "b");
        let err = expect_err(t.commit(), &ctx);
        assert_storage_error(&err, &ctx);
        assert!(
            store.applies.load(Ordering::SeqCst) >= 2,
            "{ctx}: apply was called for the failed commit"
        );
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

        store.set_fail(false);
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

        store.set_fail(true);
        let mut failing = db.start_transaction();
        write(&mut failing, "a", 10);
        write(&mut failing, "b", 20);
        assert_storage_error(&expect_err(failing.commit(), &ctx), &ctx);
        store.set_fail(false);

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
/// rolled-back and read-only transactions contribute nothing; Ignore drops the ignored key; Append
/// persists the merged batch. (Calls with an empty mutation list are tolerated and not recorded.)
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
    let mut ig = db.start_transaction_with(
        TransactionOptions::new().conflict_resolution(ConflictResolution::Ignore),
    );
    let mut t = db.start_transaction();
    write(&mut t, "b", 21);
    let c = commit(t);
    expected.push((c.commit_ts, vec![put("b", &[21])]));
    write(&mut ig, "b", 22);
    write(&mut ig, "d", 4);
    let c = commit(ig);
    assert_eq!(c.ignored, vec![key("b")]);
    expected.push((c.commit_ts, vec![put("d", &[4])]));

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
    let ts: Vec<Timestamp> = store.log().iter().map(|(ts, _)| *ts).collect();
    assert!(
        ts.windows(2).all(|w| w[0] < w[1]),
        "commit ts strictly increasing: {ts:?}"
    );

    // And the MemoryStorage behind it holds exactly the committed state.
    assert_eq!(store.inner.len(), 3);
    for (k, v) in [("a", vec![10]), ("b", vec![21]), ("d", vec![40, 41])] {
        let (_, b) = store.inner.get(k.as_bytes()).unwrap();
        assert_eq!(values(&b), v, "{k}");
    }
    assert!(store.inner.get(b"c").is_none());
}

/// `Khonsu::new` with a `MemoryStorage` persists commits with their timestamps.
#[test]
fn memory_storage_via_new() {
    let mem = Arc::new(MemoryStorage::new());
    let db = Khonsu::new(
        mem.clone(),
        TransactionIsolation::RepeatableRead,
        ConflictResolution::Fail,
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
    fn apply(&self, _: Timestamp, _: &[StorageMutation]) -> khonsu::storage::Result<()> {
        Ok(())
    }

    fn recover(&self) -> khonsu::storage::Result<RecoveredState> {
        Ok(RecoveredState {
            last_commit_ts: 1_000,
            entries: (0..10_u32)
                .map(|i| RecoveredEntry {
                    key: key(u64::from(i)),
                    commit_ts: 500 + u64::from(i),
                    batch: Arc::new(batch(i64::from(i) * 10)),
                })
                .collect(),
        })
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
}
