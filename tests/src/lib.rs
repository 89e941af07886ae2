//! Shared helpers for the scenario tests in `tests/tests/*.rs`.
//!
//! The scenario tests store single-column `Int64` record batches (column `v`) so a value can be
//! written with [`batch`] and read back with [`value`]. Anything unexpected (an error where a
//! success was required, a success where a conflict was required) panics with a readable message;
//! errors are rendered with [`snafu::Report`] so the whole cause chain is visible.
//!
//! Stress tests draw their randomness from [`Rng`], a seeded xorshift generator; [`seed`] prints
//! the seed it picked (or the one given in `KHONSU_SEED`) so a failing run can be replayed.
//!
//! [`durable`] holds the helpers of the durable-store tests (a bank whose invariants show
//! whether a recovered state is made of whole transactions, the `crash-child` process, and
//! file copies to damage).

pub mod dsg;
pub mod durable;
pub mod spec;

use std::ops::Bound;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use arrow_array::{Array, ArrayRef, Int64Array, RecordBatch, StringArray, StructArray};
use arrow_schema::{DataType, Field, FieldRef};
use khonsu::prelude::*;
use khonsu::{ConflictKind, ConflictTarget, Error};

/// The three isolation levels, weakest first.
pub const LEVELS: [TransactionIsolation; 3] = [
    TransactionIsolation::ReadCommitted,
    TransactionIsolation::RepeatableRead,
    TransactionIsolation::Serializable,
];

/// The isolation levels that read from a snapshot (`RepeatableRead` and `Serializable`).
pub const SNAPSHOT_LEVELS: [TransactionIsolation; 2] = [
    TransactionIsolation::RepeatableRead,
    TransactionIsolation::Serializable,
];

/// Every conflict resolution policy.
pub const RESOLUTIONS: [ConflictResolution; 4] = [
    ConflictResolution::Fail,
    ConflictResolution::Replace,
    ConflictResolution::Ignore,
    ConflictResolution::Append,
];

/// A single-row batch with one non-nullable `Int64` column named `v` holding `v`.
#[must_use]
pub fn batch(v: i64) -> RecordBatch {
    batch_of(&[v])
}

/// A batch with one non-nullable `Int64` column named `v` holding `values`, one row each.
#[must_use]
pub fn batch_of(values: &[i64]) -> RecordBatch {
    let field: FieldRef = Arc::new(Field::new("v", DataType::Int64, false));
    let array: ArrayRef = Arc::new(Int64Array::from(values.to_vec()));
    RecordBatch::from(StructArray::from(vec![(field, array)]))
}

/// A single-row batch with one `Utf8` column named `v`: same column name as [`batch`] but a
/// different type, so its schema does not match.
#[must_use]
pub fn utf8_batch(s: &str) -> RecordBatch {
    let field: FieldRef = Arc::new(Field::new("v", DataType::Utf8, false));
    let array: ArrayRef = Arc::new(StringArray::from(vec![s]));
    RecordBatch::from(StructArray::from(vec![(field, array)]))
}

/// All values of the first column of `b`, if it is an `Int64` column; empty otherwise.
#[must_use]
pub fn values(b: &RecordBatch) -> Vec<i64> {
    b.columns()
        .first()
        .and_then(|c| c.as_any().downcast_ref::<Int64Array>())
        .map(|a| a.iter().flatten().collect())
        .unwrap_or_default()
}

/// The single value of a batch made by [`batch`].
///
/// # Panics
/// If `b` does not hold exactly one `Int64` value.
#[must_use]
pub fn value(b: &Arc<RecordBatch>) -> i64 {
    match values(b).as_slice() {
        [v] => *v,
        other => panic!(
            "expected a single Int64 value, got {other:?} (schema {:?})",
            b.schema()
        ),
    }
}

/// A [`Key`] from anything that converts into one (`&str`, `u64`, bytes, ...).
#[must_use]
pub fn key(k: impl Into<Key>) -> Key {
    k.into()
}

/// Panics with the full [`snafu::Report`] of `err`, saying what was being done.
///
/// # Panics
/// Always.
pub fn fail<E: std::error::Error + 'static>(what: &str, err: E) -> ! {
    panic!(
        "{what} failed unexpectedly:\n{}",
        snafu::Report::from_error(err)
    )
}

/// Unwraps `r`, panicking with the full error report (and `what`) on error.
///
/// # Panics
/// If `r` is an error.
pub fn ok<T>(r: Result<T, Error>, what: &str) -> T {
    match r {
        Ok(v) => v,
        Err(e) => fail(what, e),
    }
}

/// Unwraps `r` of any error type, panicking with the full error report (and `what`) on error.
///
/// # Panics
/// If `r` is an error.
pub fn must<T, E: std::error::Error + 'static>(r: Result<T, E>, what: &str) -> T {
    match r {
        Ok(v) => v,
        Err(e) => fail(what, e),
    }
}

/// Returns the error of `r` (of any error type), panicking if `r` succeeded.
///
/// # Panics
/// If `r` is `Ok`.
pub fn must_fail<T, E>(r: Result<T, E>, what: &str) -> E {
    match r {
        Ok(_) => panic!("{what}: expected an error, but it succeeded"),
        Err(e) => e,
    }
}

/// Returns the error of `r`, panicking if `r` succeeded.
///
/// # Panics
/// If `r` is `Ok`.
pub fn expect_err<T>(r: Result<T, Error>, what: &str) -> Error {
    match r {
        Ok(_) => panic!("{what}: expected an error, but it succeeded"),
        Err(e) => e,
    }
}

/// A fresh in-memory database (no storage) with the given defaults.
///
/// # Panics
/// If the builder fails.
#[must_use]
pub fn db(isolation: TransactionIsolation, resolution: ConflictResolution) -> Khonsu {
    ok(
        Khonsu::builder()
            .isolation(isolation)
            .conflict_resolution(resolution)
            .build(),
        "Khonsu::builder().build()",
    )
}

/// Commits one transaction that writes `batch(v)` for every `(key, v)` in `entries`.
///
/// # Panics
/// If the commit fails.
pub fn seed_values<K: Into<Key> + Clone>(db: &Khonsu, entries: &[(K, i64)]) -> CommitInfo {
    let mut t = db.start_transaction();
    for (k, v) in entries {
        ok(t.write(k.clone(), batch(*v)), "seed write");
    }
    ok(t.commit(), "seed commit")
}

/// Reads `k` in `t` and returns its single value, `None` if absent.
///
/// # Panics
/// If the read fails or the value is not a single `Int64`.
pub fn read(t: &mut Transaction, k: impl Into<Key>) -> Option<i64> {
    ok(t.read(k), "read").map(|b| value(&b))
}

/// Reads `k` in `t` and returns all values of its batch, `None` if absent.
///
/// # Panics
/// If the read fails.
pub fn read_rows(t: &mut Transaction, k: impl Into<Key>) -> Option<Vec<i64>> {
    ok(t.read(k), "read").map(|b| values(&b))
}

/// Writes `batch(v)` to `k` in `t`.
///
/// # Panics
/// If the write fails.
pub fn write(t: &mut Transaction, k: impl Into<Key>, v: i64) {
    ok(t.write(k, batch(v)), "write");
}

/// Deletes `k` in `t`.
///
/// # Panics
/// If the delete fails.
pub fn delete(t: &mut Transaction, k: impl Into<Key>) {
    ok(t.delete(k), "delete");
}

/// Converts scan output to `(key, single value)` pairs.
#[must_use]
pub fn pairs(rows: &[(Key, Arc<RecordBatch>)]) -> Vec<(Key, i64)> {
    rows.iter().map(|(k, b)| (k.clone(), value(b))).collect()
}

/// Scans `range` in `t` and returns `(key, value)` pairs in key order.
///
/// # Panics
/// If the scan fails.
pub fn scan(t: &mut Transaction, range: impl khonsu::KeyRange) -> Vec<(Key, i64)> {
    pairs(&ok(t.scan(range), "scan"))
}

/// Scans keys starting with `prefix` in `t` and returns `(key, value)` pairs in key order.
///
/// # Panics
/// If the scan fails.
pub fn scan_prefix(t: &mut Transaction, prefix: impl AsRef<[u8]>) -> Vec<(Key, i64)> {
    pairs(&ok(t.scan_prefix(prefix), "scan_prefix"))
}

/// Commits `t`, panicking with the error report if it fails.
///
/// # Panics
/// If the commit fails.
#[expect(
    clippy::must_use_candidate,
    reason = "scenarios often commit only for the side effect"
)]
pub fn commit(t: Transaction) -> CommitInfo {
    ok(t.commit(), "commit")
}

/// The committed value of `k` as seen by a fresh transaction (`None` if absent).
///
/// # Panics
/// If the read fails.
#[must_use]
pub fn committed(db: &Khonsu, k: impl Into<Key>) -> Option<i64> {
    let mut t = db.start_transaction();
    let v = read(&mut t, k);
    t.rollback();
    v
}

/// All committed rows of `k` as seen by a fresh transaction (`None` if absent).
///
/// # Panics
/// If the read fails.
#[must_use]
pub fn committed_rows(db: &Khonsu, k: impl Into<Key>) -> Option<Vec<i64>> {
    let mut t = db.start_transaction();
    let v = read_rows(&mut t, k);
    t.rollback();
    v
}

/// Every committed `(key, value)` pair, as seen by a fresh transaction's full scan.
///
/// # Panics
/// If the scan fails.
#[must_use]
pub fn committed_all(db: &Khonsu) -> Vec<(Key, i64)> {
    let mut t = db.start_transaction();
    let v = scan(&mut t, ..);
    t.rollback();
    v
}

/// Whether two conflict kinds are the same variant.
#[must_use]
pub fn same_kind(a: &ConflictKind, b: &ConflictKind) -> bool {
    std::mem::discriminant(a) == std::mem::discriminant(b)
}

/// Whether `c` is the dangerous structure a stale read or phantom (one of
/// `kinds`) closes at precise `Serializable`: there the abort names the
/// key that links the aborted transaction to the structure (its stale read,
/// or a key it writes that the structure's reader read) and the other
/// transactions' timestamps, so the key is not checked against the stale
/// read's, but the structure must be complete.
///
/// # Panics
/// If it is a dangerous structure without its timestamps.
#[must_use]
pub fn is_read_conflict_as_structure(kinds: &[&ConflictKind], c: &khonsu::Conflict) -> bool {
    let read_conflict = kinds
        .iter()
        .any(|k| matches!(k, ConflictKind::StaleRead | ConflictKind::Phantom));
    if !read_conflict || c.kind != ConflictKind::DangerousStructure {
        return false;
    }
    let structure = c
        .structure
        .as_deref()
        .unwrap_or_else(|| panic!("a dangerous structure without its timestamps: {c:?}"));
    assert_eq!(c.other_commit_ts, Some(structure.out_ts), "{c:?}");
    assert!(
        structure.reader_ts.is_none() || structure.pivot_ts.is_none(),
        "the aborted transaction is the reader or the pivot: {c:?}"
    );
    true
}

/// A database whose `Serializable` is the conservative validation (abort
/// any read-write transaction whose read was overwritten): for tests of
/// read tracking itself, where precise `Serializable` rightly commits a
/// transaction that is only ordered before an earlier commit.
#[must_use]
pub fn conservative_db(isolation: TransactionIsolation, resolution: ConflictResolution) -> Khonsu {
    ok(
        Khonsu::builder()
            .isolation(isolation)
            .conflict_resolution(resolution)
            .serializable_validation(khonsu::SerializableValidation::Conservative)
            .build(),
        "Khonsu::builder().build()",
    )
}

/// Asserts that `err` is a conflict of kind `kind` on exactly the key `k`.
///
/// # Panics
/// If it is not.
pub fn assert_conflict(err: &Error, kind: &ConflictKind, k: &Key) {
    assert_conflict_on_any(err, &[kind], &[k]);
}

/// Asserts that `err` is a conflict whose kind is one of `kinds` and whose target is a key in
/// `keys`. A `Range` target is accepted only if `kinds` contains `Phantom` and the range contains
/// one of `keys`. Use it where a schedule gives several equally valid reasons to abort.
///
/// # Panics
/// If it is not.
pub fn assert_conflict_on_any(err: &Error, kinds: &[&ConflictKind], keys: &[&Key]) {
    assert!(
        err.is_conflict(),
        "expected a conflict, got a non-conflict error:\n{}",
        snafu::Report::from_error(err)
    );
    let Some(c) = err.conflict() else {
        panic!("is_conflict() is true but conflict() is None for {err:?}");
    };
    if is_read_conflict_as_structure(kinds, c) {
        return;
    }
    assert!(
        kinds.iter().any(|k| same_kind(k, &c.kind)),
        "conflict kind {:?} is not one of {kinds:?} ({c:?})",
        c.kind
    );
    let target_ok = match &c.target {
        ConflictTarget::Key(t) => keys.contains(&t),
        ConflictTarget::Range { start, end } => {
            kinds.iter().any(|k| same_kind(k, &ConflictKind::Phantom))
                && keys.iter().any(|k| range_contains(start, end, k))
        }
    };
    assert!(
        target_ok,
        "conflict target {:?} is not one of {keys:?} ({c:?})",
        c.target
    );
}

/// Asserts that `err` is a `Phantom` conflict whose target range contains `k`.
///
/// # Panics
/// If it is not.
pub fn assert_phantom(err: &Error, k: &Key) {
    assert!(
        err.is_conflict(),
        "expected a phantom conflict, got:\n{}",
        snafu::Report::from_error(err)
    );
    let Some(c) = err.conflict() else {
        panic!("is_conflict() is true but conflict() is None for {err:?}");
    };
    if is_read_conflict_as_structure(&[&ConflictKind::Phantom], c) {
        return;
    }
    assert!(
        same_kind(&c.kind, &ConflictKind::Phantom),
        "expected Phantom, got {c:?}"
    );
    match &c.target {
        ConflictTarget::Range { start, end } => assert!(
            range_contains(start, end, k),
            "phantom range {c:?} does not contain the inserted key {k:?}"
        ),
        ConflictTarget::Key(_) => panic!("a phantom conflict should name the range: {c:?}"),
    }
}

/// Whether `k` lies within the bounds `start..end`.
#[must_use]
pub fn range_contains(start: &Bound<Key>, end: &Bound<Key>, k: &Key) -> bool {
    let after_start = match start {
        Bound::Included(s) => k >= s,
        Bound::Excluded(s) => k > s,
        Bound::Unbounded => true,
    };
    let before_end = match end {
        Bound::Included(e) => k <= e,
        Bound::Excluded(e) => k < e,
        Bound::Unbounded => true,
    };
    after_start && before_end
}

/// Asserts that `actual` holds the same elements as `expected`, in any order.
///
/// # Panics
/// If they differ.
pub fn assert_same_keys(actual: &[Key], expected: &[Key], what: &str) {
    let mut a = actual.to_vec();
    let mut e = expected.to_vec();
    a.sort();
    e.sort();
    assert_eq!(a, e, "{what}");
}

/// The seed for a randomised test: `KHONSU_SEED` if set (decimal), otherwise derived from the
/// clock. Printed on stderr with `test` so a failure can be replayed with `KHONSU_SEED=<seed>`.
#[must_use]
pub fn seed(test: &str) -> u64 {
    let from_env = std::env::var("KHONSU_SEED")
        .ok()
        .and_then(|s| s.trim().parse().ok());
    let seed = from_env.unwrap_or_else(|| {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0x9E37_79B9_7F4A_7C15, |d| {
                d.as_secs() ^ u64::from(d.subsec_nanos()).rotate_left(32)
            })
    });
    eprintln!("{test}: seed = {seed} (replay with KHONSU_SEED={seed})");
    seed
}

/// A tiny xorshift64* pseudo-random generator: deterministic for a given seed, good enough to
/// pick keys and amounts in stress tests, not for anything else.
#[derive(Clone, Debug)]
pub struct Rng(u64);

impl Rng {
    /// A generator seeded with `seed` (a zero seed is replaced, xorshift needs a non-zero state).
    #[must_use]
    pub fn new(seed: u64) -> Self {
        // splitmix64 step so that nearby seeds (per-thread `seed + i`) diverge at once.
        let mut z = seed.wrapping_add(0x9E37_79B9_7F4A_7C15);
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        Self(if z == 0 { 0x2545_F491_4F6C_DD1D } else { z })
    }

    /// The next 64 pseudo-random bits.
    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// A value in `0..n` (`0` if `n == 0`).
    pub fn below(&mut self, n: u64) -> u64 {
        if n == 0 { 0 } else { self.next_u64() % n }
    }

    /// An index in `0..n` (`0` if `n == 0`).
    pub fn index(&mut self, n: usize) -> usize {
        let n64 = u64::try_from(n).unwrap_or(u64::MAX);
        usize::try_from(self.below(n64)).unwrap_or(0)
    }

    /// Two distinct indices in `0..n` (`n` must be at least 2, otherwise both are `0`).
    pub fn two_distinct(&mut self, n: usize) -> (usize, usize) {
        if n < 2 {
            return (0, 0);
        }
        let a = self.index(n);
        let b = (a + 1 + self.index(n - 1)) % n;
        (a, b)
    }
}

/// Whether `err` is (or is caused by) an `Append` merge failure such as a schema mismatch:
/// `khonsu::engine::concurrency::Error::Append` anywhere in its source chain.
#[must_use]
pub fn is_append_error(err: &Error) -> bool {
    let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(err);
    while let Some(e) = cur {
        if let Some(khonsu::engine::concurrency::Error::Append { .. }) =
            e.downcast_ref::<khonsu::engine::concurrency::Error>()
        {
            return true;
        }
        cur = e.source();
    }
    false
}

/// Reads `k` in `t` and returns its single value; the key must exist.
///
/// # Panics
/// If the read fails or the key is absent.
pub fn read_some(t: &mut Transaction, k: impl Into<Key>) -> i64 {
    let k = k.into();
    let shown = k.to_string();
    match read(t, k) {
        Some(v) => v,
        None => panic!("key {shown} is absent"),
    }
}

/// `n` as an `i64` (saturating; test counts are far below `i64::MAX`).
#[must_use]
pub fn int(n: usize) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

/// Joins every thread, re-raising the first thread panic in the caller so the test fails with
/// the thread's own message.
#[expect(
    clippy::must_use_candidate,
    reason = "threads returning () are joined for completion only"
)]
pub fn join_all<T>(handles: Vec<std::thread::JoinHandle<T>>) -> Vec<T> {
    let mut out = Vec::with_capacity(handles.len());
    let mut first_panic = None;
    for h in handles {
        match h.join() {
            Ok(v) => out.push(v),
            Err(p) => {
                first_panic.get_or_insert(p);
            }
        }
    }
    if let Some(p) = first_panic {
        std::panic::resume_unwind(p);
    }
    out
}

/// Locks `m`, ignoring poisoning (a panicked holder already failed the test).
pub fn lock<T>(m: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}
